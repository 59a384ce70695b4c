"""Checks that the reference formulations timed by bench/compare_pytorch.py and
bench/compare_numpy.py compute what the segloss-bench case they are paired with computes.

A speed-up is only honest if both sides do the same work. For EVERY case that compare_pytorch.py
times, this script takes the case's torch function from compare_pytorch.py itself (its
BINARY_CASES / MULTICLASS_CASES table, with the shared option constants), runs it on a small
float64 input of the same kind (the same data pattern: logits normal(0, 3), the checkerboard
target and weights 1 + 2t, labels (i // 64) % C with 255 on a tenth for ignore_index), and takes
the value and the gradient (torch autograd) to the case's leaf. It runs the same case through
segloss's C API (libsegloss_c.so, loaded with ctypes): the option structs filled by their _init
functions, then the options segloss_bench.cpp sets for that case (and nothing else), then the
loss's _value_and_grad entry point (the metrics: segloss_dice_score, segloss_boundary_weights).
For compare_numpy.py's cases it does the same with numpy against the confusion-matrix API.

Shapes: binary (2,1,128,128) and (1,1,512,512) (the planar cases need H in the Carvana kernel
table, 11 at H = 128 and the benchmark's 21 at H = 512, and at least 51 pixels for the k = 51
weight map) and the volume (2,4,12,12,12); multi-class (2,21,32,32), (2,150,16,16) and the
volume (2,4,8,8,8) (at these sizes each image holds only some of the classes, so absent classes,
the generalized Dice's infinite weights and Lovasz's "present" classes are exercised too).

What a match proves: the torch (numpy) code that compare_pytorch.py (compare_numpy.py) times
computes the loss and gradient that segloss's benchmark case computes, with the same options,
reduction, smooth terms, weights, ignore_index and per-image/batch split, on data of the
benchmark's kind. It says nothing about the timings, and the data pattern has no empty masks,
so the empty-mask policies are not exercised (both sides would differ there: e.g. the seeds'
thresholded Dice gives NaN where segloss's dice_score skips).

A case matches when, in double,
    |value_ref - value_segloss| <= 1e-9 max(|value_ref|, |value_segloss|)   and
    max_i |grad_ref_i - grad_segloss_i| <= 1e-9 max_i |grad_ref_i|
(the gradient relative to its largest element: tiny entries are compared at that scale). For
forward-only metrics max_grad_diff is the difference of the output maps (boundary weights,
confusion counts) or null.

Output: one JSON line per case and shape
    {"case", "shape", "reference", "value_torch" (or "value_numpy"), "value_segloss",
     "value_rel_diff", "max_grad_diff", "max_grad_rel", "match"}
then a summary line {"summary": ..., "cases": n, "matched": m, "mismatched": [...]}.
Exit status 1 if any case mismatches (2 if the library cannot be loaded).

Run with the system interpreter (torch 1.13 and numpy), after building the C library:
    cmake --build build --target segloss_c
    /usr/bin/python3 bench/check_reference.py [--lib build/libsegloss_c.so] [--filter text]
"""

import argparse
import contextlib
import ctypes as C
import io
import json
import math
import os
import sys

try:
    import numpy as np
    import torch
except ImportError:  # no torch or numpy here (the python3 on PATH, a bare CI image): skipped
    print("check_reference.py: this interpreter has no torch or numpy (run it with "
          "/usr/bin/python3 after apt-get install python3-torch)", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare_numpy as cn  # noqa: E402
import compare_pytorch as cp  # noqa: E402

RTOL = 1e-9          # double
RTOL_FLOAT32 = 2e-5  # --float32: the benchmark's dtype, sums in another order on each side
# --float32, the Lovasz cases' gradient: the torch reference's lovasz_grad takes differences
# J_k - J_{k-1} of nearly equal float32 values (cancellation), which alone moves its float32
# gradient up to 7e-4 (relative to the largest element) away from its own float64 result, while
# segloss's float32 gradient stays within 9e-5 of that float64 result (measured on these inputs).
RTOL_FLOAT32_SORT_GRAD = 2e-3

# ---- the C API's types (capi/segloss.h) ----

F32, F64, I32, I64, U8 = 0, 1, 2, 3, 4
MAX_NDIM = 5


class Tensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int), ("device", C.c_int),
                ("ndim", C.c_int32), ("shape", C.c_int64 * MAX_NDIM)]


TP = C.POINTER(Tensor)
DTYPES = {np.dtype(np.float32): F32, np.dtype(np.float64): F64, np.dtype(np.int32): I32,
          np.dtype(np.int64): I64, np.dtype(np.uint8): U8}


class BceOptions(C.Structure):
    _fields_ = [("reduction", C.c_int), ("weight", TP), ("pos_weight", TP), ("mean_over", C.c_int),
                ("label_smoothing", C.c_double)]


class BinaryCrossEntropyOptions(C.Structure):
    _fields_ = [("reduction", C.c_int), ("weight", TP)]


class SigmoidFocalOptions(C.Structure):
    _fields_ = [("reduction", C.c_int), ("alpha", C.c_double), ("gamma", C.c_double),
                ("weight", TP)]


class OverlapOptions(C.Structure):
    _fields_ = [("reduction", C.c_int), ("smooth_nr", C.c_double), ("smooth_dr", C.c_double),
                ("per_image", C.c_int), ("activation", C.c_int), ("squared", C.c_int),
                ("weight", TP), ("weighting", C.c_int), ("class_weight", TP),
                ("include_background", C.c_int), ("empty", C.c_int), ("gamma", C.c_double),
                ("log", C.c_int), ("clamp", C.c_int)]


class TverskyOptions(C.Structure):
    _fields_ = [("overlap", OverlapOptions), ("alpha", C.c_double), ("beta", C.c_double)]


class BceDiceOptions(C.Structure):
    _fields_ = [("bce_weight", C.c_double), ("dice_weight", C.c_double), ("bce", BceOptions),
                ("dice", OverlapOptions)]


class CrossEntropyOptions(C.Structure):
    _fields_ = [("reduction", C.c_int), ("weight", TP), ("ignore_index", C.c_int64),
                ("label_smoothing", C.c_double), ("ignore_negative", C.c_int),
                ("mean_over", C.c_int), ("all_ignored", C.c_int)]


class SoftmaxFocalOptions(C.Structure):
    _fields_ = [("reduction", C.c_int), ("alpha", TP), ("gamma", C.c_double),
                ("ignore_index", C.c_int64)]


class SoftmaxOverlapOptions(C.Structure):
    _fields_ = [("reduction", C.c_int), ("smooth_nr", C.c_double), ("smooth_dr", C.c_double),
                ("per_image", C.c_int), ("squared", C.c_int), ("class_weight", TP),
                ("include_background", C.c_int), ("empty", C.c_int), ("gamma", C.c_double),
                ("log", C.c_int), ("clamp", C.c_int), ("ignore_index", C.c_int64)]


class SoftmaxTverskyOptions(C.Structure):
    _fields_ = [("overlap", SoftmaxOverlapOptions), ("alpha", C.c_double), ("beta", C.c_double)]


class GeneralizedDiceOptions(C.Structure):
    _fields_ = [("reduction", C.c_int), ("smooth_nr", C.c_double), ("smooth_dr", C.c_double),
                ("per_image", C.c_int), ("w_type", C.c_int), ("include_background", C.c_int),
                ("ignore_index", C.c_int64)]


class CeDiceOptions(C.Structure):
    _fields_ = [("ce_weight", C.c_double), ("dice_weight", C.c_double),
                ("ce", CrossEntropyOptions), ("dice", SoftmaxOverlapOptions)]


class DiceFocalOptions(C.Structure):
    _fields_ = [("dice_weight", C.c_double), ("focal_weight", C.c_double),
                ("dice", SoftmaxOverlapOptions), ("focal", SoftmaxFocalOptions)]


class LovaszSoftmaxOptions(C.Structure):
    _fields_ = [("reduction", C.c_int), ("per_image", C.c_int), ("classes", C.c_int),
                ("class_list", C.POINTER(C.c_int64)), ("class_list_size", C.c_int64),
                ("ignore_index", C.c_int64)]


class LovaszHingeOptions(C.Structure):
    _fields_ = [("reduction", C.c_int), ("per_image", C.c_int), ("has_ignore", C.c_int),
                ("ignore", C.c_double)]


class BoundaryWeightsOptions(C.Structure):
    _fields_ = [("kernel_size", C.c_int), ("low", C.c_double), ("high", C.c_double),
                ("boost", C.c_double), ("normalize", C.c_int)]


class DiceScoreOptions(C.Structure):
    _fields_ = [("activation", C.c_int), ("threshold", C.c_double), ("round", C.c_int),
                ("smooth_nr", C.c_double), ("smooth_dr", C.c_double), ("per_channel", C.c_int),
                ("border", C.c_int), ("empty", C.c_int), ("clamp", C.c_int),
                ("check_binary", C.c_int)]


class DiceScoreResult(C.Structure):
    _fields_ = [("mean", C.c_double), ("counted", C.c_int64), ("skipped", C.c_int64),
                ("empty", C.c_int64)]


class ScoreOptions(C.Structure):
    _fields_ = [("empty", C.c_int), ("beta", C.c_double)]


class FcnScores(C.Structure):
    _fields_ = [("pixel_accuracy", C.c_double), ("mean_class_accuracy", C.c_double),
                ("mean_iou", C.c_double), ("fw_iou", C.c_double)]


BCE_MEAN_OVER_WEIGHT_SUM = 1
SCORE_IOU, SCORE_DICE = 0, 1
AVERAGE_MACRO, AVERAGE_PER_IMAGE = 1, 3

# The loss entry points and their option structs (name in the C API -> struct).
LOSS_OPTIONS = {
    "bce_with_logits": BceOptions, "binary_cross_entropy": BinaryCrossEntropyOptions,
    "sigmoid_focal": SigmoidFocalOptions, "soft_dice": OverlapOptions,
    "soft_jaccard": OverlapOptions, "tversky": TverskyOptions, "bce_dice": BceDiceOptions,
    "lovasz_hinge": LovaszHingeOptions, "cross_entropy": CrossEntropyOptions,
    "softmax_dice": SoftmaxOverlapOptions, "softmax_jaccard": SoftmaxOverlapOptions,
    "softmax_tversky": SoftmaxTverskyOptions, "generalized_dice": GeneralizedDiceOptions,
    "ce_dice": CeDiceOptions, "softmax_focal": SoftmaxFocalOptions,
    "dice_focal": DiceFocalOptions, "lovasz_softmax": LovaszSoftmaxOptions,
}
# Option structs whose _init function has another name than the loss.
INIT_NAME = {OverlapOptions: "overlap", SoftmaxOverlapOptions: "softmax_overlap"}


class Segloss:
    """libsegloss_c through ctypes. Keeps the numpy arrays of the descriptors it made alive."""

    def __init__(self, path):
        self.lib = C.CDLL(path)
        self.lib.segloss_last_error.restype = C.c_char_p
        self.lib.segloss_version.restype = C.c_char_p
        self.keep = []

    def version(self):
        return self.lib.segloss_version().decode()

    def check(self, status, what):
        if status != 0:
            raise RuntimeError("%s: status %d: %s" % (what, status,
                                                      self.lib.segloss_last_error().decode()))

    def tensor(self, a):
        a = np.ascontiguousarray(a)
        self.keep.append(a)
        t = Tensor()
        t.data = a.ctypes.data
        t.dtype = DTYPES[a.dtype]
        t.device = 0
        t.ndim = a.ndim
        for k, e in enumerate(a.shape):
            t.shape[k] = e
        self.keep.append(t)
        return t

    def tensor_ptr(self, a):
        return C.pointer(self.tensor(a))

    def options(self, loss):
        cls = LOSS_OPTIONS[loss]
        o = cls()
        name = INIT_NAME.get(cls, loss)
        getattr(self.lib, "segloss_%s_options_init" % name)(C.byref(o))
        return o

    def value_and_grad(self, loss, logits, target, o):
        """segloss_<loss>_value_and_grad: (value, gradient shaped like the logits)."""
        grad = np.zeros_like(logits)
        value = C.c_double(float("nan"))
        tl, tt, tg = self.tensor(logits), self.tensor(target), self.tensor(grad)
        fn = getattr(self.lib, "segloss_%s_value_and_grad" % loss)
        self.check(fn(C.byref(tl), C.byref(tt), C.byref(o), C.byref(value), C.byref(tg), None),
                   "segloss_%s_value_and_grad" % loss)
        return value.value, grad

    def boundary_weights(self, mask, kernel_size=0):
        o = BoundaryWeightsOptions()
        self.lib.segloss_boundary_weights_options_init(C.byref(o))
        if kernel_size:
            o.kernel_size = kernel_size
        out = np.zeros_like(mask)
        tm, to = self.tensor(mask), self.tensor(out)
        self.check(self.lib.segloss_boundary_weights(C.byref(tm), C.byref(o), C.byref(to), None),
                   "segloss_boundary_weights")
        return out

    def dice_score(self, x, t):
        o = DiceScoreOptions()
        self.lib.segloss_dice_score_options_init(C.byref(o))
        r = DiceScoreResult()
        tx, tt = self.tensor(x), self.tensor(t)
        self.check(self.lib.segloss_dice_score(C.byref(tx), C.byref(tt), C.byref(o), C.byref(r),
                                               None, None), "segloss_dice_score")
        return r.mean

    # ---- confusion matrices ----

    def matrix(self, c):
        cm = C.c_void_p()
        self.check(self.lib.segloss_confusion_matrix_create(C.c_int64(c), None, C.byref(cm)),
                   "segloss_confusion_matrix_create")
        return cm

    def destroy(self, cm):
        self.lib.segloss_confusion_matrix_destroy(cm)

    def update(self, cm, pred, truth):
        tp, tt = self.tensor(pred), self.tensor(truth)
        self.check(self.lib.segloss_confusion_matrix_update(cm, C.byref(tp), C.byref(tt), None),
                   "segloss_confusion_matrix_update")

    def update_from_logits(self, cm, x, truth):
        tx, tt = self.tensor(x), self.tensor(truth)
        self.check(self.lib.segloss_confusion_matrix_update_from_logits(cm, C.byref(tx),
                                                                        C.byref(tt), None),
                   "segloss_confusion_matrix_update_from_logits")

    def counts(self, cm, c):
        out = np.zeros(c * c, dtype=np.int64)
        self.check(self.lib.segloss_confusion_matrix_counts(
            cm, out.ctypes.data_as(C.POINTER(C.c_int64)), C.c_int64(c * c)),
            "segloss_confusion_matrix_counts")
        return out.reshape(c, c)

    def fcn_scores(self, cm):
        s = FcnScores()
        self.check(self.lib.segloss_confusion_matrix_fcn_scores(cm, C.byref(s), None,
                                                                C.c_int64(0)),
                   "segloss_confusion_matrix_fcn_scores")
        return s

    def average_score(self, cm, score, average):
        v = C.c_double()
        self.check(self.lib.segloss_confusion_matrix_average_score(cm, score, average, None,
                                                                   C.byref(v)),
                   "segloss_confusion_matrix_average_score")
        return v.value

    def average_score_images(self, cms, score, average):
        arr = (C.c_void_p * len(cms))(*[m.value for m in cms])
        v = C.c_double()
        self.check(self.lib.segloss_average_score_images(arr, C.c_int64(len(cms)), score,
                                                         average, None, C.byref(v)),
                   "segloss_average_score_images")
        return v.value


# ---- segloss's side of every case: segloss_bench.cpp's options, through the C API ----
# Each function takes (lib, d) with d the case's inputs as numpy float64 / int64 arrays and
# returns (value, gradient or output map or None).

def set_fields(o, **kw):
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def bce(**kw):
    def run(s, d):
        o = s.options("bce_with_logits")
        if kw.get("weighted"):
            o.weight = s.tensor_ptr(d.w)
        if kw.get("pos_weight"):
            o.pos_weight = s.tensor_ptr(np.full((d.x.shape[1],), cp.POS_WEIGHT,
                                                        dtype=d.x.dtype))
        if "label_smoothing" in kw:
            o.label_smoothing = kw["label_smoothing"]
        return s.value_and_grad("bce_with_logits", d.x, d.t, o)
    return run


def overlap(loss, weighted=False, **fields):
    def run(s, d):
        o = s.options(loss)
        target = o.overlap if loss == "tversky" else o
        if weighted:
            target.weight = s.tensor_ptr(d.w)
        for k, v in fields.items():
            setattr(o if k in ("alpha", "beta") else target, k, v)
        return s.value_and_grad(loss, d.x, d.t, o)
    return run


def bce_dice(weighted_log=False):
    def run(s, d):
        o = s.options("bce_dice")
        if weighted_log:  # segloss_bench.cpp's bce_dice_weighted
            o.bce.weight = s.tensor_ptr(d.w)
            o.dice.weight = s.tensor_ptr(d.w)
            o.dice.log = 1
        return s.value_and_grad("bce_dice", d.x, d.t, o)
    return run


def carvana(s, d):
    # segloss_bench.cpp's carvana_combined_loss: boundary_weights(t) with the default kernel
    # (from the height), then bce_dice with those weights in both terms, BCE normalized by the
    # weight sum, Dice smooth 2 and 1.
    bw = s.boundary_weights(d.t)
    o = s.options("bce_dice")
    o.bce.weight = s.tensor_ptr(bw)
    o.bce.mean_over = BCE_MEAN_OVER_WEIGHT_SUM
    o.dice.weight = s.tensor_ptr(bw)
    o.dice.smooth_nr = 2.0
    o.dice.smooth_dr = 1.0
    return s.value_and_grad("bce_dice", d.x, d.t, o)


def simple(loss, target="t", logits="x", **fields):
    def run(s, d):
        o = set_fields(s.options(loss), **fields)
        return s.value_and_grad(loss, getattr(d, logits), getattr(d, target), o)
    return run


def with_tensor(loss, field, attr, logits="x", target="t"):
    def run(s, d):
        o = s.options(loss)
        setattr(o, field, s.tensor_ptr(getattr(d, attr)))
        return s.value_and_grad(loss, getattr(d, logits), getattr(d, target), o)
    return run


def boundary(k):
    return lambda s, d: (None, s.boundary_weights(d.t, k))


def tversky_fields(s, d, loss, gamma=None):
    o = s.options(loss)
    o.alpha, o.beta = cp.TVERSKY_ALPHA, cp.TVERSKY_BETA
    if gamma is not None:
        o.overlap.gamma = gamma
    return s.value_and_grad(loss, d.x, d.t if loss == "tversky" else d.y, o)


SEGLOSS_BINARY = {
    "bce_with_logits": bce(),
    "bce_with_logits_weighted": bce(weighted=True),
    "bce_with_logits_pos_weight": bce(pos_weight=True),
    "bce_with_logits_smoothing": bce(label_smoothing=cp.BCE_SMOOTHING),
    "soft_dice": overlap("soft_dice"),
    "soft_dice_weighted": overlap("soft_dice", weighted=True),
    "soft_dice_squared": overlap("soft_dice", squared=1),
    "soft_dice_batch": overlap("soft_dice", per_image=0),
    "soft_jaccard": overlap("soft_jaccard"),
    "soft_jaccard_squared": overlap("soft_jaccard", squared=1),
    "tversky": lambda s, d: tversky_fields(s, d, "tversky"),
    "focal_tversky": lambda s, d: tversky_fields(s, d, "tversky", cp.FOCAL_TVERSKY_GAMMA),
    "bce_with_logits+soft_dice": bce_dice(),
    "bce_with_logits+soft_dice_weighted_log": bce_dice(weighted_log=True),
    "sigmoid_focal": simple("sigmoid_focal"),  # the bench uses the defaults
    "sigmoid_focal_weighted": with_tensor("sigmoid_focal", "weight", "w"),
    "lovasz_hinge": simple("lovasz_hinge"),
    "lovasz_hinge_batch": simple("lovasz_hinge", per_image=0),
    "carvana_combined_loss": carvana,
    "binary_cross_entropy": simple("binary_cross_entropy", logits="p"),
    "binary_cross_entropy_weighted": with_tensor("binary_cross_entropy", "weight", "w",
                                                 logits="p"),
    "dice_score": lambda s, d: (s.dice_score(d.x, d.t), None),
    "boundary_weights_k11": boundary(cp.BOUNDARY_KERNELS["boundary_weights_k11"]),
    "boundary_weights_k51": boundary(cp.BOUNDARY_KERNELS["boundary_weights_k51"]),
}

SEGLOSS_MULTICLASS = {
    "cross_entropy": simple("cross_entropy", target="y"),
    "cross_entropy_weight": with_tensor("cross_entropy", "weight", "cw", target="y"),
    "cross_entropy_ignore_index": simple("cross_entropy", target="yi",
                                         ignore_index=cp.CE_IGNORE_INDEX),
    "cross_entropy_smoothing": simple("cross_entropy", target="y",
                                      label_smoothing=cp.CE_SMOOTHING),
    "softmax_focal": simple("softmax_focal", target="y"),  # the bench uses the defaults
    "softmax_dice": simple("softmax_dice", target="y"),
    "softmax_jaccard": simple("softmax_jaccard", target="y"),
    "softmax_tversky": lambda s, d: tversky_fields(s, d, "softmax_tversky"),
    "generalized_dice": simple("generalized_dice", target="y"),
    "ce_dice": simple("ce_dice", target="y"),
    "dice_focal": simple("dice_focal", target="y"),
    "lovasz_softmax": simple("lovasz_softmax", target="y"),
}

BINARY_CHECK_SHAPES = [(2, 1, 128, 128), (1, 1, 512, 512), (2, 4, 12, 12, 12)]
MULTICLASS_CHECK_SHAPES = [(2, 21, 32, 32), (2, 150, 16, 16), (2, 4, 8, 8, 8)]
NUMPY_CHECK_SHAPES = [(2, 21, 32, 32), (2, 150, 16, 16), (2, 4, 8, 8, 8)]


def as_numpy(d):
    """The same inputs as numpy arrays (detached), for the C API."""
    out = cp.Inputs()
    for k, v in d.__dict__.items():
        out.__dict__[k] = np.ascontiguousarray(v.detach().numpy())
    return out


def torch_side(fn, leaf, d):
    """Value and gradient (to the leaf) of the case's torch formulation; for a metric the value,
    or the output map when it is not a scalar."""
    if leaf is None:
        with torch.no_grad():
            r = fn(d)
        return (float(r), None) if r.dim() == 0 else (None, r.numpy())
    t = getattr(d, leaf)
    t.grad = None
    loss = fn(d)
    loss.backward()
    return float(loss), t.grad.numpy().copy()


def rel(a, b):
    if a is None or b is None:
        return None
    scale = max(abs(a), abs(b))
    return 0.0 if scale == 0 else abs(a - b) / scale


def compare(name, shape, ref_name, ref, seg, rtol=RTOL, grad_rtol=None):
    (vr, gr), (vs, gs) = ref, seg
    vrel = rel(vr, vs)
    ok = True
    if vr is not None or vs is not None:
        ok = vr is not None and vs is not None and math.isfinite(vr) and vrel <= rtol
    gdiff = grel = None
    if gr is not None or gs is not None:
        if gr is None or gs is None or gr.shape != gs.shape:
            ok = False
        else:
            gdiff = float(np.max(np.abs(gr.astype(np.float64) - gs.astype(np.float64))))
            gmax = float(np.max(np.abs(gr)))
            grel = 0.0 if gmax == 0 and gdiff == 0 else gdiff / gmax if gmax else math.inf
            ok = ok and grel <= (rtol if grad_rtol is None else grad_rtol)
    line = {"case": name, "shape": cp.shape_str(shape), "reference": ref_name,
            "value_" + ref_name: vr, "value_segloss": vs, "value_rel_diff": vrel,
            "max_grad_diff": gdiff, "max_grad_rel": grel, "match": bool(ok)}
    print(json.dumps(line), flush=True)
    return ok


def check_torch(s, args, results, seg_binary=None, seg_multiclass=None, shapes=None):
    dtype = torch.float32 if args.float32 else torch.float64
    rtol = RTOL_FLOAT32 if args.float32 else RTOL
    torch.set_default_dtype(dtype)
    seg_binary = seg_binary or SEGLOSS_BINARY
    seg_multiclass = seg_multiclass or SEGLOSS_MULTICLASS
    binary_shapes, multiclass_shapes = shapes or (BINARY_CHECK_SHAPES, MULTICLASS_CHECK_SHAPES)
    for family_shapes, table, seg, inputs in (
            (binary_shapes, cp.BINARY_CASES, seg_binary, cp.binary_inputs),
            (multiclass_shapes, cp.MULTICLASS_CASES, seg_multiclass, cp.label_inputs)):
        for shape in family_shapes:
            d = inputs(shape, dtype)
            nd = as_numpy(d)
            for name, _impl, leaf, fn, flag in table:
                if flag == "planar" and len(shape) != 4:
                    continue
                if args.filter and args.filter not in name + " " + cp.shape_str(shape):
                    continue
                if name not in seg:
                    print(json.dumps({"case": name, "shape": cp.shape_str(shape),
                                      "match": False, "error": "no segloss side in the check"}))
                    results.append((name, shape, False))
                    continue
                try:
                    ref = torch_side(fn, leaf, d)
                    got = seg[name](s, nd)
                    grad_rtol = (RTOL_FLOAT32_SORT_GRAD if args.float32 and "lovasz" in name
                                 else None)
                    ok = compare(name, shape, "torch", ref, got, rtol, grad_rtol)
                except Exception as e:  # report, and count as a mismatch
                    print(json.dumps({"case": name, "shape": cp.shape_str(shape),
                                      "match": False, "error": str(e)}), flush=True)
                    ok = False
                results.append((name, shape, ok))


def check_numpy(s, args, results):
    for shape in NUMPY_CHECK_SHAPES:
        n, c = shape[0], shape[1]
        label_shape = (n,) + tuple(shape[2:])
        truth, pred = cn.label_maps(label_shape, c)
        x = cn.logits_of(shape)

        def labels():
            cm = s.matrix(c)
            s.update(cm, pred, truth)
            got = s.counts(cm, c)
            s.destroy(cm)
            ref = cn.fcn_case_labels(truth, pred, c)
            return (float(ref.sum()), ref), (float(got.sum()), got)

        def logits():
            cm = s.matrix(c)
            s.update_from_logits(cm, x, truth)
            got = s.counts(cm, c)
            s.destroy(cm)
            ref = cn.fcn_case_logits(truth, x, c)
            return (float(ref.sum()), ref), (float(got.sum()), got)

        def mean_iou():
            cm = s.matrix(c)
            s.update(cm, pred, truth)
            f = s.fcn_scores(cm)
            dice = s.average_score(cm, SCORE_DICE, AVERAGE_MACRO)
            s.destroy(cm)
            ref = np.array(cn.fcn_case_mean_iou(truth, pred, c), dtype=np.float64)
            got = np.array([f.pixel_accuracy, f.mean_class_accuracy, f.mean_iou, f.fw_iou, dice])
            # value: mean IoU; the "map": (acc, acc_cls, mean_iu, fwavacc, macro Dice)
            return (float(ref[2]), ref), (float(got[2]), got)

        def per_image():
            cms = []
            for k in range(n):
                cm = s.matrix(c)
                s.update(cm, pred[k], truth[k])
                cms.append(cm)
            got = s.average_score_images(cms, SCORE_IOU, AVERAGE_PER_IMAGE)
            for cm in cms:
                s.destroy(cm)
            return (cn.per_image_iou(truth, pred, c), None), (got, None)

        cases = [("confusion_matrix_labels", label_shape, labels),
                 ("confusion_matrix_logits", shape, logits),
                 ("mean_iou", label_shape, mean_iou),
                 ("per_image_scores", label_shape, per_image)]
        for name, sh, work in cases:
            if args.filter and args.filter not in name + " " + cp.shape_str(sh):
                continue
            try:
                ref, got = work()
                ok = compare(name, sh, "numpy", ref, got)
            except Exception as e:
                print(json.dumps({"case": name, "shape": cp.shape_str(sh), "match": False,
                                  "error": str(e)}), flush=True)
                ok = False
            results.append((name, sh, ok))


# --self-test: segloss's side of these cases with one option off from segloss_bench.cpp's, each
# a difference a wrong formulation could make: Dice over the batch instead of per image, a
# dropped pos_weight, a label smoothing 1e-6 off, the Carvana Dice with 2I + 1 instead of the
# seed's 2 (I + 1), log Dice without the log, a missing class weight, a missing smoothing,
# per-image Lovasz-Softmax. Every one must be reported as a mismatch.
PERTURBED = {
    "soft_dice": overlap("soft_dice", per_image=0),
    "bce_with_logits_pos_weight": bce(),
    "bce_with_logits_smoothing": bce(label_smoothing=0.1 + 1e-6),
    "carvana_combined_loss": lambda s, d: carvana_smooth(s, d, 1.0, 1.0),
    "bce_with_logits+soft_dice_weighted_log": lambda s, d: (
        lambda o: (setattr(o.bce, "weight", s.tensor_ptr(d.w)),
                   setattr(o.dice, "weight", s.tensor_ptr(d.w)),
                   s.value_and_grad("bce_dice", d.x, d.t, o))[-1])(s.options("bce_dice")),
    "cross_entropy_weight": simple("cross_entropy", target="y"),
    "cross_entropy_smoothing": simple("cross_entropy", target="y"),
    "lovasz_softmax": simple("lovasz_softmax", target="y", per_image=1),
}


def carvana_smooth(s, d, smooth_nr, smooth_dr):
    bw = s.boundary_weights(d.t)
    o = s.options("bce_dice")
    o.bce.weight = s.tensor_ptr(bw)
    o.bce.mean_over = BCE_MEAN_OVER_WEIGHT_SUM
    o.dice.weight = s.tensor_ptr(bw)
    o.dice.smooth_nr = smooth_nr
    o.dice.smooth_dr = smooth_dr
    return s.value_and_grad("bce_dice", d.x, d.t, o)


def self_test(s, args):
    binary = {k: v for k, v in PERTURBED.items() if k in SEGLOSS_BINARY}
    multiclass = {k: v for k, v in PERTURBED.items() if k in SEGLOSS_MULTICLASS}
    results = []
    out = io.StringIO()
    # The shapes with N = 2 (with N = 1, per image and batch are the same problem).
    shapes = ([sh for sh in BINARY_CHECK_SHAPES if sh[0] > 1],
              [sh for sh in MULTICLASS_CHECK_SHAPES if sh[0] > 1])
    with contextlib.redirect_stdout(out):
        check_torch(s, args, results, binary, multiclass, shapes)
    results = [r for r in results if r[0] in PERTURBED]
    caught = [r for r in results if not r[2]]
    missed = ["%s %s" % (n, cp.shape_str(sh)) for n, sh, ok in results if ok]
    print(json.dumps({"self_test": "passed" if not missed and results else "FAILED",
                      "perturbed_cases": len(results), "reported_as_mismatch": len(caught),
                      "missed": missed}))
    return 0 if not missed and results else 1


def default_lib():
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "build", "libsegloss_c.so")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lib", default=default_lib(),
                    help="libsegloss_c.so (default: build/libsegloss_c.so of this checkout)")
    ap.add_argument("--filter", default="", help="only the cases whose 'name shape' contain this")
    ap.add_argument("--no-numpy", action="store_true", help="skip compare_numpy.py's cases")
    ap.add_argument("--float32", action="store_true",
                    help="float32 inputs (the benchmark's dtype) with rtol %g instead of float64"
                    % RTOL_FLOAT32)
    ap.add_argument("--self-test", action="store_true",
                    help="run a few cases with a wrong segloss option each; exit 0 only if every "
                    "one of them is reported as a mismatch (the check can fail)")
    args = ap.parse_args()
    try:
        s = Segloss(args.lib)
    except OSError as e:
        print("check_reference.py: cannot load %s: %s (build the target segloss_c)"
              % (args.lib, e), file=sys.stderr)
        return 2
    print("segloss", s.version(), "torch", torch.__version__, "numpy", np.__version__,
          file=sys.stderr)
    if args.self_test:
        return self_test(s, args)
    results = []
    check_torch(s, args, results)
    if not args.no_numpy:
        check_numpy(s, args, results)
    bad = ["%s %s" % (n, cp.shape_str(sh)) for n, sh, ok in results if not ok]
    print(json.dumps({"summary": "all match" if not bad else "MISMATCH",
                      "cases": len(results), "matched": len(results) - len(bad),
                      "mismatched": bad, "rtol": RTOL_FLOAT32 if args.float32 else RTOL}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

// @brief The autodiff tape (namespace segloss::ad): record tensor operations, then walk them
// backwards to get the gradient of a scalar loss with respect to every leaf that asks for one.
//
// Design (in the spirit of micrograd, karpathy/micrograd engine.py):
//  - A Tape<T> owns a list of nodes. A node holds its value (a Tensor<T>), the ids of its
//    inputs, and a backward closure written right next to the op's forward. Nodes are appended
//    in the order they are computed, so the list is already a topological order: backward()
//    seeds the loss's gradient with 1 and calls the closures from the loss down to the first
//    node. No graph search, no reference counting.
//  - A closure receives the gradient of the loss with respect to its node's value and ADDS its
//    contribution into the gradients of the inputs (Tape::grad_buffer(input) += ...). A value
//    used twice (x * x, or logits fed to two losses) therefore collects both contributions.
//  - Var<T> is a handle: the tape and a node id. Copying it copies the handle; the value lives
//    on the tape until the tape is cleared or destroyed.
//  - Leaves (tape.leaf) are the tensors to differentiate; constants (tape.constant) are inputs
//    that get no gradient (targets, masks, weights). A node requires a gradient when one of
//    its inputs does; backward() skips the closures of nodes that do not, and allocates a
//    gradient only for the nodes it reaches.
//  - Two kinds of ops: the primitives of this header (elementwise math with broadcasting,
//    softmax over the class axis, sums over chosen axes, masks, and a sort, running sums and
//    gathers along groups for sort-based losses), from which a new loss can be
//    written without deriving it; and the fused losses (losses/tape_losses.hpp), recorded by
//    fused_node(): their value and gradient come out of one fused value_and_grad call in the
//    forward, and backward only scales that gradient by the incoming scalar and adds it in.
//    A loss used alone thus costs what the fused call costs: when nothing else flows into the
//    logits' gradient, backward hands the fused gradient buffer over without copying it
//    (copy-on-write protects it if more is added later).
//  - Determinism: every primitive's loop runs over the chunks of core/parallel.hpp, and every
//    sum (the reductions, and the gradient of a broadcast operand) is taken in double in a
//    fixed order, so values and gradients do not depend on the thread count.
//
// Broadcasting (the binary ops +, -, *, /, and where): operands of equal shape; or one operand
// that broadcasts to the other's shape by PyTorch's rule (aligned on the right, each extent 1
// or equal: a scalar (), (N,C,1,1), (1,C,1,1), (C,1,1), ...). One exception, segloss's
// convention for class weights: a rank-1 operand of C values against a tensor of rank >= 2 is
// read along the class axis (axis 1), not along the last axis as PyTorch would. Both operands
// broadcasting at once ((N,1) with (1,C)) is not supported.
//
// Reductions: sum and mean over everything (shape ()), per image (N), per class (C), per image
// and class (N, C); class_sum over the class axis only (N, 1, spatial...). A mean divides by
// the number of elements summed. Sums are accumulated in double.
//
// Scalar algebra: a one-element Var is a scalar (a loss value); the same ops combine them with
// each other and with constants (loss_a + 0.5 * loss_b, log(l), pow(l, 2), ...).
//
// Edge cases: NaN propagates through every op. log of 0 is -inf and its gradient inf, pow(x, p)
// with x = 0 and p < 1 has an infinite gradient: the tape adds no guards of its own (write the
// loss in a form that avoids them, e.g. log_sigmoid instead of log(sigmoid)). clamp passes the
// gradient where lo <= x <= hi (the bounds included, as torch.clamp) and 0 outside.
//
// Errors (segloss::Error, naming the op): a Var from another tape or an undefined Var, shapes
// that do not broadcast, backward() from a Var that is not a one-element scalar, grad() of a
// Var that does not require a gradient, axes the input lacks, labels outside [0, C) that are
// not ignore_index, and offsets or indices outside the input (the same messages on CUDA).
//
// CUDA: a leaf may be a CUDA tensor (Tensor::to(Device::cuda), or a view of the caller's device
// pointer). The fused loss nodes of losses/tape_losses.hpp run on it wherever the fused loss
// has a CUDA path (docs/cuda.md): the value comes back to the host as the node's scalar, the
// gradient stays on the device, and backward scales it and adds it into the leaf's gradient
// with one elementwise kernel on the current stream (backends/cuda/tape.cu), or adopts it
// without a copy when the loss is used alone. Scalar algebra on the loss values (host scalars)
// works as on the CPU, so `bce + 0.5 * dice` on CUDA logits is a CUDA tape. The primitives run
// on CUDA values too (forward and backward on the device, on the current stream; docs/cuda.md,
// "The tape's primitives on CUDA"): the elementwise ops, where, reshape, the sums and means,
// class_sum, softmax and log_softmax. A host operand of a binary op or where (a loss value, a
// constant, the mask) is copied to the device; the gradient of a host operand comes back to
// the host. The group primitives run on CUDA values too (docs/cuda.md, "The tape's group
// primitives on CUDA"), with the CPU's bits: sort_desc (the same permutation; perm is then a
// CUDA tensor), cumsum, adjacent_diff, segment_sum (one thread per group, in double, in the
// CPU's order), gather (a host or a CUDA index; a CUDA index is copied back once to check it,
// the call waits; the backward's scatter-add is atomic-free, in index order). The offsets stay
// host vectors and are copied to the device per call. one_hot and valid_mask of CUDA labels
// build CUDA constants on the device; one_hot waits once to raise the CPU's bad-label message.
// The composed losses (losses/composed.hpp) therefore run on a CUDA tape; the ones that read
// target values on the host (the label checks, the Lovász groups) copy them back (a wait). The
// tape does not record streams: run the forward and backward of a CUDA tape on one stream (or
// synchronize between).
//
// Cost: each op allocates its output (and, in backward, its inputs' gradients). Primitives are
// correct first and fast second; bench/segloss_bench.cpp reports composed-versus-fused ratios.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <deque>
#include <vector>

#include "tensor.hpp"

namespace segloss::ad {

template <class T>
class Tape;

// A value recorded on a tape: the tape and the node's id. Cheap to copy.
template <class T>
class Var {
 public:
  Var() = default;  // undefined: using it in an op is an error

  bool defined() const { return tape_ != nullptr; }
  Tape<T>& tape() const;
  int64_t id() const { return id_; }
  const Tensor<T>& value() const;
  const Shape& shape() const { return value().shape(); }
  bool requires_grad() const;
  double item() const;  // the value of a one-element Var, as a double

 private:
  friend class Tape<T>;
  Var(Tape<T>* tape, int64_t id, uint64_t generation)
      : tape_(tape), id_(id), generation_(generation) {}
  Tape<T>* tape_ = nullptr;
  int64_t id_ = -1;
  uint64_t generation_ = 0;  // the tape's clear() count when the Var was made
};

template <class T>
class Tape {
 public:
  // A node's backward: given dL/d(value) (shaped like the value), add into the inputs'
  // gradients through tape.grad_buffer(input) or tape.accumulate(input, ...).
  using Backward = std::function<void(Tape& tape, const Tensor<T>& grad)>;

  Tape() = default;
  Tape(const Tape&) = delete;  // closures and Vars refer to the tape by address
  Tape& operator=(const Tape&) = delete;

  // A tensor to differentiate (requires_grad) or not. The tensor is not copied: the tape keeps
  // a handle, so the caller must not change its elements while the tape is used.
  Var<T> leaf(const Tensor<T>& value, bool requires_grad = true);
  // An input that gets no gradient (a target, a mask, a weight); not copied either.
  Var<T> constant(const Tensor<T>& value);
  // A constant scalar (shape ()).
  Var<T> scalar(double value);

  // Records a node computed from `inputs` (all on this tape). It requires a gradient when one
  // of its inputs does; only then is `backward` kept and called.
  Var<T> record(const char* op, Tensor<T> value, const std::vector<Var<T>>& inputs,
                Backward backward);

  // Computes dL/dv for every v that requires a gradient and that L depends on. L must be a
  // one-element Var of this tape. Gradients of an earlier backward() are discarded first.
  void backward(const Var<T>& loss);

  // dL/dv after backward(); zeros when L does not depend on v. Error when v does not require a
  // gradient, before backward(), or after a backward() that raised an error (it keeps none). The
  // tensor may share its storage with a fused loss node's gradient (see accumulate): read it, or
  // clone() it before writing into it.
  const Tensor<T>& grad(const Var<T>& v) const;

  // For node backwards: v's gradient buffer, allocated as zeros on first use, to add into.
  Tensor<T>& grad_buffer(const Var<T>& v);
  // For node backwards: adds scale * contribution into v's gradient. With adopt, the tape may
  // keep `contribution` itself as v's gradient when nothing has flowed into v yet and scale is
  // 1 (no copy); the caller must then never write into `contribution` again.
  void accumulate(const Var<T>& v, const Tensor<T>& contribution, double scale = 1.0,
                  bool adopt = false);

  // Checks that v is a defined Var of this tape (error names `op`).
  void check_var(const char* op, const Var<T>& v) const;
  // The same, and that v's value is on the CPU: for ops recorded with record() that compute on
  // the CPU only (every primitive of this header also runs on CUDA values).
  void check_cpu_var(const char* op, const Var<T>& v) const;

  int64_t size() const { return static_cast<int64_t>(nodes_.size()); }
  const char* op_name(const Var<T>& v) const { return node(v).op; }
  // Drops every node and gradient: Vars made before are no longer valid (an op given one
  // raises an error naming it, also once new nodes took its position), and grad() needs a new
  // backward().
  void clear() {
    nodes_.clear();
    has_grads_ = false;
    ++generation_;
  }

 private:
  friend class Var<T>;
  struct Node {
    const char* op = "";
    Tensor<T> value;
    bool requires_grad = false;
    std::vector<int64_t> inputs;
    Backward backward;
    Tensor<T> grad;             // undefined until a gradient flows in
    bool grad_adopted = false;  // grad is a tensor another node also holds (copy on write)
  };
  const Node& node(const Var<T>& v) const;
  Node& node(const Var<T>& v);
  Var<T> push(Node n);

  // A deque, not a vector: recording a node never moves the others, so a reference to a value
  // (Var::value(), Tape::value) stays valid while later ops are recorded.
  std::deque<Node> nodes_;
  bool has_grads_ = false;
  uint64_t generation_ = 0;  // clear() calls so far
};

// The tape of a Var that the op `op` takes, after Tape::check_var (so that an undefined Var's
// error names the op, not ad::Var).
template <class T>
Tape<T>& tape_of(const char* op, const Var<T>& v) {
  SEGLOSS_CHECK(v.defined(), op, "a Var is undefined (default-constructed)");
  v.tape().check_var(op, v);
  return v.tape();
}

// ---------------------------------------------------------------------------------------------
// Primitives. Each records one node; its backward is next to its forward in tape.cpp.
// ---------------------------------------------------------------------------------------------

// Elementwise with broadcasting (see the header comment).
template <class T>
Var<T> add(const Var<T>& a, const Var<T>& b);
template <class T>
Var<T> sub(const Var<T>& a, const Var<T>& b);
template <class T>
Var<T> mul(const Var<T>& a, const Var<T>& b);
template <class T>
Var<T> div(const Var<T>& a, const Var<T>& b);

// With a constant c: a + c, a * c, c - a (rsub), c / a (rdiv). a - c and a / c are add and
// mul with -c and 1 / c.
template <class T>
Var<T> add(const Var<T>& a, double c);
template <class T>
Var<T> mul(const Var<T>& a, double c);
template <class T>
Var<T> rsub(double c, const Var<T>& a);
template <class T>
Var<T> rdiv(double c, const Var<T>& a);

// Elementwise functions.
template <class T>
Var<T> neg(const Var<T>& a);
template <class T>
Var<T> exp(const Var<T>& a);
template <class T>
Var<T> log(const Var<T>& a);  // log of x <= 0 is -inf or NaN, as std::log
template <class T>
Var<T> log1p(const Var<T>& a);
template <class T>
Var<T> sigmoid(const Var<T>& a);  // 1 / (1 + exp(-x)), without overflow
template <class T>
Var<T> log_sigmoid(const Var<T>& a);  // log sigmoid(x) = min(x, 0) - log1p(exp(-|x|))
template <class T>
Var<T> softplus(const Var<T>& a);  // log(1 + exp(x)) = -log_sigmoid(-x)
template <class T>
Var<T> clamp(const Var<T>& a, double lo, double hi);  // gradient 1 on [lo, hi], else 0
template <class T>
Var<T> pow(const Var<T>& a, double p);  // x^p; p = 2 is x * x, p = 1 returns a

// Softmax and log-softmax over the class axis (axis 1) of a tensor of rank >= 2, relative to
// the max logit: log_softmax = (x - max) - log(sum exp(x - max)).
template <class T>
Var<T> softmax(const Var<T>& a);
template <class T>
Var<T> log_softmax(const Var<T>& a);

// Sums and means. sum/mean: over everything, shape (). *_per_image: keep axis 0, shape (N).
// *_per_class: keep axis 1, shape (C). *_per_image_class: keep axes 0 and 1, shape (N, C).
// class_sum: over axis 1 only, keeping it with extent 1: (N, 1, spatial...).
template <class T>
Var<T> sum(const Var<T>& a);
template <class T>
Var<T> mean(const Var<T>& a);
template <class T>
Var<T> sum_per_image(const Var<T>& a);
template <class T>
Var<T> mean_per_image(const Var<T>& a);
template <class T>
Var<T> sum_per_class(const Var<T>& a);
template <class T>
Var<T> mean_per_class(const Var<T>& a);
template <class T>
Var<T> sum_per_image_class(const Var<T>& a);
template <class T>
Var<T> mean_per_image_class(const Var<T>& a);
template <class T>
Var<T> class_sum(const Var<T>& a);

// The same elements under another shape of equal element count (copied).
template <class T>
Var<T> reshape(const Var<T>& a, const Shape& shape);

// a where mask != 0, else b. a and b have one shape; mask broadcasts to it and is a constant
// (no gradient flows into it). The gradient goes to a where mask is set, to b elsewhere, so a
// NaN value in the branch not taken does not reach the result. It can still reach the gradient:
// the branch not taken gets gradient 0, and an op inside it whose slope is inf or NaN there
// multiplies that 0 into NaN (as in PyTorch): where(m, log(x), 0) at x = 0 gives d/dx = NaN.
// Guard the op's input instead (where(m, log(where(m, x, 1)), 0)), so that it never sees the
// bad value.
template <class T>
Var<T> where(const Tensor<T>& mask, const Var<T>& a, const Var<T>& b);

// Label maps (N, spatial...) of int32 or int64, as constants:
//   one_hot: (N, C, spatial...) with 1 at the label's class; a pixel labelled ignore_index
//            gets a row of zeros. Another label outside [0, C) is an error.
//   valid_mask: (N, 1, spatial...), 1 where the label is not ignore_index, else 0.
template <class T, class L>
Var<T> one_hot(Tape<T>& tape, const Tensor<L>& labels, int64_t classes,
               int64_t ignore_index = -100);
template <class T, class L>
Var<T> valid_mask(Tape<T>& tape, const Tensor<L>& labels, int64_t ignore_index = -100);

// Groups (segments) along the flattened elements, for the ops a sort-based loss needs (the
// Lovász losses of losses/composed.hpp). `offsets` holds G + 1 nondecreasing positions with
// offsets[0] = 0 and offsets[G] = numel(a): group j is the elements [offsets[j], offsets[j+1])
// of a in row-major order. A group may be empty (two equal offsets). The caller lays the
// groups out with gather (for example one group per image and class, over the pixels that are
// not ignored). Error: offsets that are not such a partition of a's elements.
//
// sort_desc: the values of each group in descending order, and the permutation: perm[k] is
//   the (flat) index into a of the element at sorted position k (perm stays inside each group;
//   an int64 tensor shaped like a, a constant). Stable: equal values keep their order in a
//   (the first index first), -0 and +0 are equal, and a NaN sorts before every number (as the
//   largest value), NaNs in index order. These are the fused Lovász kernels' rules
//   (backends/cpu/lovasz.cpp), so the two pick the same permutation where errors tie.
//   Backward: the permutation is held fixed (a subgradient where values tie):
//   a_bar[perm[k]] += g[k].
template <class T>
struct Sorted {
  Var<T> values;         // shaped like a
  Tensor<int64_t> perm;  // shaped like a: the flat index into a of each sorted value
};
template <class T>
Sorted<T> sort_desc(const Var<T>& a, const std::vector<int64_t>& offsets);
// cumsum: the inclusive running sum within each group, y[k] = sum_{offsets[j] <= i <= k} a[i]
//   (summed in double). Backward: the reverse running sum, a_bar[k] += sum_{k <= i < end} g[i].
template <class T>
Var<T> cumsum(const Var<T>& a, const std::vector<int64_t>& offsets);
// adjacent_diff: y[k] = a[k] - a[k-1] within a group, and y = a at each group's first element
//   (the inverse of cumsum). Backward: a_bar[k] += g[k] - g[k+1], without g[k+1] at a group's
//   last element.
template <class T>
Var<T> adjacent_diff(const Var<T>& a, const std::vector<int64_t>& offsets);
// segment_sum: the sum of each group (in double, in order), shape (G); an empty group sums
//   to 0. Backward: every element of group j gets g[j].
template <class T>
Var<T> segment_sum(const Var<T>& a, const std::vector<int64_t>& offsets);

// gather: y[i] = a.flat[index[i]], shaped like index (int64 indices into a's elements, in
//   [0, numel(a)); an index may repeat: gather also broadcasts a per-group value to the group's
//   elements). Backward: scatter-add, a_bar.flat[index[i]] += g[i], summed in double in index
//   order. Error: an index outside [0, numel(a)).
template <class T>
Var<T> gather(const Var<T>& a, const Tensor<int64_t>& index);

// relu: max(x, 0); the gradient is 1 for x > 0 and 0 for x <= 0 (relu'(0) = 0, as PyTorch;
// clamp(x, 0, inf) passes the gradient at 0). NaN passes through, with slope 1.
template <class T>
Var<T> relu(const Var<T>& a);

// A fused loss: `value` and its gradient `grad` (shaped like input) were computed together.
// backward adds g * grad into input's gradient, adopting `grad` without a copy when it can.
template <class T>
Var<T> fused_node(const char* op, const Var<T>& input, double value, Tensor<T> grad);

// Operators: the same ops with the usual spelling.
template <class T>
Var<T> operator+(const Var<T>& a, const Var<T>& b) {
  return add(a, b);
}
template <class T>
Var<T> operator-(const Var<T>& a, const Var<T>& b) {
  return sub(a, b);
}
template <class T>
Var<T> operator*(const Var<T>& a, const Var<T>& b) {
  return mul(a, b);
}
template <class T>
Var<T> operator/(const Var<T>& a, const Var<T>& b) {
  return div(a, b);
}
template <class T>
Var<T> operator-(const Var<T>& a) {
  return neg(a);
}
template <class T>
Var<T> operator+(const Var<T>& a, double c) {
  return add(a, c);
}
template <class T>
Var<T> operator+(double c, const Var<T>& a) {
  return add(a, c);
}
template <class T>
Var<T> operator-(const Var<T>& a, double c) {
  return add(a, -c);
}
template <class T>
Var<T> operator-(double c, const Var<T>& a) {
  return rsub(c, a);
}
template <class T>
Var<T> operator*(const Var<T>& a, double c) {
  return mul(a, c);
}
template <class T>
Var<T> operator*(double c, const Var<T>& a) {
  return mul(a, c);
}
template <class T>
Var<T> operator/(const Var<T>& a, double c) {
  return mul(a, 1.0 / c);
}
template <class T>
Var<T> operator/(double c, const Var<T>& a) {
  return rdiv(c, a);
}

}  // namespace segloss::ad

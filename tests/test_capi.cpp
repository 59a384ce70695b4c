// The C API (capi/segloss.h, libsegloss_c): every entry point against the C++ call it wraps (the
// same code, so the results are bitwise equal), every options_init against the C++ defaults, and
// the error paths: null pointers, dtypes, shapes, devices, bad options, and an allocation that
// fails, each with its status and message and no exception crossing the boundary.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <segloss/capi/segloss.h>

#include "capi_helpers.hpp"
#include "helpers.hpp"

using namespace segloss;
using segloss::testing::desc;
using segloss::testing::labels;
using segloss::testing::last_error;
using segloss::testing::mask;
using segloss::testing::randn;
using segloss::testing::uniform;

namespace {

// Element-wise equal, NaN equal to NaN; shapes equal.
template <class T>
bool same(const Tensor<T>& a, const Tensor<T>& b) {
  if (a.shape() != b.shape()) return false;
  for (int64_t i = 0; i < a.numel(); ++i)
    if (!(a[i] == b[i] || (std::isnan(double(a[i])) && std::isnan(double(b[i]))))) return false;
  return true;
}

bool same_value(double a, double b) {
  return a == b || (std::isnan(a) && std::isnan(b));
}

// The four entry points of a loss against the C++ calls with the same options. `fused`: the
// reduction is mean or sum, so value_and_grad (and its form with a value tensor) is defined;
// otherwise value_and_grad_into must refuse, as value_and_grad does.
template <class T, class U, class CO, class PO, class CVag, class CFwd, class CBwd, class CInto,
          class PVag, class PFwd, class PBwd>
void check_loss(const Tensor<T>& x, const Tensor<U>& t, const CO* co, const PO& po, bool fused,
                CVag cvag, CFwd cfwd, CBwd cbwd, CInto cinto, PVag pvag, PFwd pfwd, PBwd pbwd) {
  const segloss_tensor dx = desc(x), dt = desc(t);
  auto value = Tensor<T>::full(Shape{1}, T(-7));
  const segloss_tensor dv = desc(value);
  auto g3 = Tensor<T>::full(x.shape(), T(-7));
  const segloss_tensor dg3 = desc(g3);
  if (fused) {
    auto g = Tensor<T>::full(x.shape(), T(-7));
    const segloss_tensor dg = desc(g);
    double v = -1;
    REQUIRE_MESSAGE(cvag(&dx, &dt, co, &v, &dg, nullptr) == SEGLOSS_OK, last_error());
    const auto ref = pvag(x, t, po);
    CHECK(same_value(v, ref.value));
    CHECK(same(g, ref.grad));
    // The value into a tensor: the value rounded to T, the same gradient.
    REQUIRE_MESSAGE(cinto(&dx, &dt, co, &dv, &dg3, nullptr) == SEGLOSS_OK, last_error());
    CHECK(
        same_value(static_cast<double>(value[0]), static_cast<double>(static_cast<T>(ref.value))));
    CHECK(same(g3, ref.grad));
  } else {
    CHECK(cinto(&dx, &dt, co, &dv, &dg3, nullptr) == SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(value[0] == T(-7));
  }
  const Tensor<T> f = pfwd(x, t, po);
  auto out = Tensor<T>::full(f.shape(), T(-7));
  const segloss_tensor dout = desc(out);
  REQUIRE_MESSAGE(cfwd(&dx, &dt, co, &dout, nullptr) == SEGLOSS_OK, last_error());
  CHECK(same(out, f));

  const auto go = uniform<T>(f.shape(), 17, 0.5, 1.5);
  const segloss_tensor dgo = desc(go);
  auto g2 = Tensor<T>::full(x.shape(), T(-7));
  const segloss_tensor dg2 = desc(g2);
  REQUIRE_MESSAGE(cbwd(&dx, &dt, &dgo, co, &dg2, nullptr) == SEGLOSS_OK, last_error());
  CHECK(same(g2, pbwd(x, t, go, po)));
}

#define LOSS_FNS(NAME)                                                                            \
  [](auto... a) { return segloss_##NAME##_value_and_grad(a...); },                                \
      [](auto... a) { return segloss_##NAME##_forward(a...); },                                   \
      [](auto... a) { return segloss_##NAME##_backward(a...); },                                  \
      [](auto... a) { return segloss_##NAME##_value_and_grad_into(a...); },                       \
      [](const auto& x, const auto& t, const auto& o) { return NAME##_value_and_grad(x, t, o); }, \
      [](const auto& x, const auto& t, const auto& o) { return NAME(x, t, o); },                  \
      [](const auto& x, const auto& t, const auto& go, const auto& o) {                           \
        return NAME##_backward(x, t, go, o);                                                      \
      }

}  // namespace

TEST_CASE("capi: version") {
  CHECK(std::string(segloss_version()) == "0.1.0");
  int major = -1, minor = -1, patch = -1;
  segloss_version_numbers(&major, &minor, &patch);
  CHECK(major == SEGLOSS_VERSION_MAJOR);
  CHECK(minor == SEGLOSS_VERSION_MINOR);
  CHECK(patch == SEGLOSS_VERSION_PATCH);
  CHECK(SEGLOSS_C_VERSION_MAJOR == SEGLOSS_VERSION_MAJOR);
  CHECK(SEGLOSS_C_VERSION_MINOR == SEGLOSS_VERSION_MINOR);
  segloss_version_numbers(nullptr, nullptr, nullptr);
  CHECK(segloss_abi_version() == SEGLOSS_C_ABI_VERSION);
  CHECK(segloss_has_cuda() == (cuda::available() ? 1 : 0));
  CHECK(std::string(segloss_status_name(SEGLOSS_ERROR_DTYPE)) == "SEGLOSS_ERROR_DTYPE");
  CHECK(std::string(segloss_status_name(segloss_status(99))) == "unknown status");
}

TEST_CASE("capi: options_init gives the C++ defaults") {
  {
    segloss_bce_with_logits_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_bce_with_logits_options_init(&c);
    const BceWithLogitsOptions<float> d;
    CHECK(int(c.reduction) == int(d.reduction));
    CHECK(c.weight == nullptr);
    CHECK(c.pos_weight == nullptr);
    CHECK(int(c.mean_over) == int(d.mean_over));
    CHECK(c.label_smoothing == d.label_smoothing);
  }
  {
    segloss_binary_cross_entropy_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_binary_cross_entropy_options_init(&c);
    CHECK(int(c.reduction) == int(BinaryCrossEntropyOptions<float>{}.reduction));
    CHECK(c.weight == nullptr);
  }
  {
    segloss_sigmoid_focal_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_sigmoid_focal_options_init(&c);
    const SigmoidFocalOptions<float> d;
    CHECK(int(c.reduction) == int(d.reduction));
    CHECK(c.alpha == d.alpha);
    CHECK(c.gamma == d.gamma);
    CHECK(c.weight == nullptr);
  }
  const auto check_overlap = [](const segloss_overlap_options& c) {
    const OverlapOptions<float> d;
    CHECK(int(c.reduction) == int(d.reduction));
    CHECK(c.smooth_nr == d.smooth_nr);
    CHECK(c.smooth_dr == d.smooth_dr);
    CHECK(bool(c.per_image) == d.per_image);
    CHECK(int(c.activation) == int(d.activation));
    CHECK(bool(c.squared) == d.squared);
    CHECK(c.weight == nullptr);
    CHECK(int(c.weighting) == int(d.weighting));
    CHECK(c.class_weight == nullptr);
    CHECK(bool(c.include_background) == d.include_background);
    CHECK(int(c.empty) == int(d.empty));
    CHECK(c.gamma == d.gamma);
    CHECK(bool(c.log) == d.log);
    CHECK(bool(c.clamp) == d.clamp);
  };
  {
    segloss_overlap_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_overlap_options_init(&c);
    check_overlap(c);
  }
  {
    segloss_tversky_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_tversky_options_init(&c);
    check_overlap(c.overlap);
    CHECK(c.alpha == TverskyOptions<float>{}.alpha);
    CHECK(c.beta == TverskyOptions<float>{}.beta);
  }
  const auto check_bce = [](const segloss_bce_with_logits_options& c) {
    const BceWithLogitsOptions<float> d;
    CHECK(int(c.reduction) == int(d.reduction));
    CHECK(c.weight == nullptr);
    CHECK(c.pos_weight == nullptr);
    CHECK(int(c.mean_over) == int(d.mean_over));
    CHECK(c.label_smoothing == d.label_smoothing);
  };
  {
    segloss_bce_dice_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_bce_dice_options_init(&c);
    const BceDiceOptions<float> d;
    CHECK(c.bce_weight == d.bce_weight);
    CHECK(c.dice_weight == d.dice_weight);
    check_bce(c.bce);
    check_overlap(c.dice);
  }
  const auto check_ce = [](const segloss_cross_entropy_options& c) {
    const CrossEntropyOptions<float> d;
    CHECK(int(c.reduction) == int(d.reduction));
    CHECK(c.weight == nullptr);
    CHECK(c.ignore_index == d.ignore_index);
    CHECK(c.label_smoothing == d.label_smoothing);
    CHECK(bool(c.ignore_negative) == d.ignore_negative);
    CHECK(int(c.mean_over) == int(d.mean_over));
    CHECK(int(c.all_ignored) == int(d.all_ignored));
  };
  const auto check_softmax_overlap = [](const segloss_softmax_overlap_options& c) {
    const SoftmaxOverlapOptions<float> d;
    CHECK(int(c.reduction) == int(d.reduction));
    CHECK(c.smooth_nr == d.smooth_nr);
    CHECK(c.smooth_dr == d.smooth_dr);
    CHECK(bool(c.per_image) == d.per_image);
    CHECK(bool(c.squared) == d.squared);
    CHECK(c.class_weight == nullptr);
    CHECK(bool(c.include_background) == d.include_background);
    CHECK(int(c.empty) == int(d.empty));
    CHECK(c.gamma == d.gamma);
    CHECK(bool(c.log) == d.log);
    CHECK(bool(c.clamp) == d.clamp);
    CHECK(c.ignore_index == d.ignore_index);
  };
  const auto check_focal = [](const segloss_softmax_focal_options& c) {
    const SoftmaxFocalOptions<float> d;
    CHECK(int(c.reduction) == int(d.reduction));
    CHECK(c.alpha == nullptr);
    CHECK(c.gamma == d.gamma);
    CHECK(c.ignore_index == d.ignore_index);
  };
  {
    segloss_cross_entropy_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_cross_entropy_options_init(&c);
    check_ce(c);
  }
  {
    segloss_softmax_focal_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_softmax_focal_options_init(&c);
    check_focal(c);
  }
  {
    segloss_softmax_overlap_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_softmax_overlap_options_init(&c);
    check_softmax_overlap(c);
  }
  {
    segloss_softmax_tversky_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_softmax_tversky_options_init(&c);
    check_softmax_overlap(c.overlap);
    CHECK(c.alpha == SoftmaxTverskyOptions<float>{}.alpha);
    CHECK(c.beta == SoftmaxTverskyOptions<float>{}.beta);
  }
  {
    segloss_generalized_dice_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_generalized_dice_options_init(&c);
    const GeneralizedDiceOptions<float> d;
    CHECK(int(c.reduction) == int(d.reduction));
    CHECK(c.smooth_nr == d.smooth_nr);
    CHECK(c.smooth_dr == d.smooth_dr);
    CHECK(bool(c.per_image) == d.per_image);
    CHECK(int(c.w_type) == int(d.w_type));
    CHECK(bool(c.include_background) == d.include_background);
    CHECK(c.ignore_index == d.ignore_index);
  }
  {
    segloss_ce_dice_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_ce_dice_options_init(&c);
    CHECK(c.ce_weight == CeDiceOptions<float>{}.ce_weight);
    CHECK(c.dice_weight == CeDiceOptions<float>{}.dice_weight);
    check_ce(c.ce);
    check_softmax_overlap(c.dice);
  }
  {
    segloss_dice_focal_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_dice_focal_options_init(&c);
    CHECK(c.dice_weight == DiceFocalOptions<float>{}.dice_weight);
    CHECK(c.focal_weight == DiceFocalOptions<float>{}.focal_weight);
    check_softmax_overlap(c.dice);
    check_focal(c.focal);
  }
  {
    segloss_lovasz_softmax_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_lovasz_softmax_options_init(&c);
    const LovaszSoftmaxOptions<float> d;
    CHECK(int(c.reduction) == int(d.reduction));
    CHECK(bool(c.per_image) == d.per_image);
    CHECK(int(c.classes) == int(d.classes));
    CHECK(c.class_list == nullptr);
    CHECK(c.class_list_size == 0);
    CHECK(c.ignore_index == d.ignore_index);
  }
  {
    segloss_lovasz_hinge_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_lovasz_hinge_options_init(&c);
    const LovaszHingeOptions<float> d;
    CHECK(int(c.reduction) == int(d.reduction));
    CHECK(bool(c.per_image) == d.per_image);
    CHECK(bool(c.has_ignore) == d.ignore.has_value());
  }
  {
    segloss_boundary_weights_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_boundary_weights_options_init(&c);
    const BoundaryWeightOptions d;
    CHECK(c.kernel_size == d.kernel_size);
    CHECK(c.low == d.low);
    CHECK(c.high == d.high);
    CHECK(c.boost == d.boost);
    CHECK(bool(c.normalize) == d.normalize);
  }
  {
    segloss_confusion_matrix_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_confusion_matrix_options_init(&c);
    const ConfusionMatrixOptions d;
    CHECK(c.ignore_index == d.ignore_index);
    CHECK(int(c.out_of_range) == int(d.out_of_range));
  }
  {
    segloss_score_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_score_options_init(&c);
    CHECK(int(c.empty) == int(ScoreOptions{}.empty));
    CHECK(c.beta == ScoreOptions{}.beta);
  }
  {
    segloss_dice_score_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_dice_score_options_init(&c);
    const DiceScoreOptions d;
    CHECK(int(c.activation) == int(d.activation));
    CHECK(c.threshold == d.threshold);
    CHECK(bool(c.round) == d.round);
    CHECK(c.smooth_nr == d.smooth_nr);
    CHECK(c.smooth_dr == d.smooth_dr);
    CHECK(bool(c.per_channel) == d.per_channel);
    CHECK(c.border == d.border);
    CHECK(int(c.empty) == int(d.empty));
    CHECK(bool(c.clamp) == d.clamp);
    CHECK(bool(c.check_binary) == d.check_binary);
  }
  {
    segloss_surface_distance_options c;
    std::memset(&c, 0x5a, sizeof c);
    segloss_surface_distance_options_init(&c);
    const SurfaceDistanceOptions d;
    CHECK(c.spacing == nullptr);
    CHECK(c.spacing_size == 0);
    CHECK(c.percentile == d.percentile);
    CHECK(c.tolerance == d.tolerance);
    CHECK(c.class_tolerance == nullptr);
    CHECK(c.class_tolerance_size == 0);
    CHECK(bool(c.directed) == d.directed);
    CHECK(int(c.empty) == int(d.empty));
    CHECK(c.ignore_index == d.ignore_index);
  }
  // NULL is a no-op.
  segloss_overlap_options_init(nullptr);
  segloss_cross_entropy_options_init(nullptr);
}

TEST_CASE_TEMPLATE("capi: binary losses match C++", T, float, double) {
  const Shape s{2, 3, 5, 4};
  const auto x = randn<T>(s, 1, 2.0);
  const auto z = mask<T>(s, 2);
  const auto w = uniform<T>({3, 1, 1}, 3, 0.5, 2.0);
  const auto pw = uniform<T>({3}, 4, 0.5, 2.0);
  const segloss_tensor dw = desc(w), dpw = desc(pw);

  SUBCASE("bce_with_logits") {
    segloss_bce_with_logits_options c;
    segloss_bce_with_logits_options_init(&c);
    check_loss(x, z, &c, BceWithLogitsOptions<T>{}, true, LOSS_FNS(bce_with_logits));
    check_loss(x, z, static_cast<const segloss_bce_with_logits_options*>(nullptr),
               BceWithLogitsOptions<T>{}, true, LOSS_FNS(bce_with_logits));
    c.weight = &dw;
    c.pos_weight = &dpw;
    c.mean_over = SEGLOSS_BCE_MEAN_OVER_WEIGHT_SUM;
    c.label_smoothing = 0.1;
    BceWithLogitsOptions<T> o;
    o.weight = w;
    o.pos_weight = pw;
    o.mean_over = BceMeanOver::weight_sum;
    o.label_smoothing = 0.1;
    check_loss(x, z, &c, o, true, LOSS_FNS(bce_with_logits));
    c.reduction = SEGLOSS_REDUCTION_SUM;
    o.reduction = Reduction::sum;
    check_loss(x, z, &c, o, true, LOSS_FNS(bce_with_logits));
    c.reduction = SEGLOSS_REDUCTION_NONE;
    o.reduction = Reduction::none;
    check_loss(x, z, &c, o, false, LOSS_FNS(bce_with_logits));
  }
  SUBCASE("binary_cross_entropy") {
    const auto p = uniform<T>(s, 5, 0.01, 0.99);
    segloss_binary_cross_entropy_options c;
    segloss_binary_cross_entropy_options_init(&c);
    c.weight = &dw;
    BinaryCrossEntropyOptions<T> o;
    o.weight = w;
    check_loss(p, z, &c, o, true, LOSS_FNS(binary_cross_entropy));
    c.reduction = SEGLOSS_REDUCTION_NONE;
    o.reduction = Reduction::none;
    check_loss(p, z, &c, o, false, LOSS_FNS(binary_cross_entropy));
  }
  SUBCASE("sigmoid_focal") {
    segloss_sigmoid_focal_options c;
    segloss_sigmoid_focal_options_init(&c);
    c.alpha = 0.4;
    c.gamma = 1.5;
    c.weight = &dw;
    SigmoidFocalOptions<T> o;
    o.alpha = 0.4;
    o.gamma = 1.5;
    o.weight = w;
    check_loss(x, z, &c, o, true, LOSS_FNS(sigmoid_focal));
  }
  SUBCASE("soft_dice, soft_jaccard, tversky, bce_dice") {
    const auto cw = uniform<T>({3}, 6, 0.5, 2.0);
    const auto pixel_w = uniform<T>({2, 1, 5, 4}, 7, 0.2, 1.0);
    const segloss_tensor dcw = desc(cw), dpix = desc(pixel_w);
    segloss_overlap_options c;
    segloss_overlap_options_init(&c);
    c.smooth_nr = 1.0;
    c.smooth_dr = 2.0;
    c.per_image = 0;
    c.weight = &dpix;
    c.weighting = SEGLOSS_OVERLAP_WEIGHTING_ON_INPUTS;
    c.class_weight = &dcw;
    c.include_background = 0;
    c.empty = SEGLOSS_EMPTY_ONE;
    c.gamma = 1.5;
    OverlapOptions<T> o;
    o.smooth_nr = 1.0;
    o.smooth_dr = 2.0;
    o.per_image = false;
    o.weight = pixel_w;
    o.weighting = OverlapWeighting::on_inputs;
    o.class_weight = cw;
    o.include_background = false;
    o.empty = EmptyPolicy::one;
    o.gamma = 1.5;
    check_loss(x, z, &c, o, true, LOSS_FNS(soft_dice));
    check_loss(x, z, &c, o, true, LOSS_FNS(soft_jaccard));
    c.reduction = SEGLOSS_REDUCTION_NONE;
    o.reduction = Reduction::none;
    check_loss(x, z, &c, o, false, LOSS_FNS(soft_dice));

    segloss_overlap_options_init(&c);
    c.activation = SEGLOSS_ACTIVATION_NONE;
    c.squared = 1;
    c.log = 1;
    o = OverlapOptions<T>{};
    o.activation = Activation::none;
    o.squared = true;
    o.log = true;
    const auto p = uniform<T>(s, 8, 0.01, 0.99);
    check_loss(p, z, &c, o, true, LOSS_FNS(soft_dice));
    c.log = 0;
    c.clamp = 1;
    o.log = false;
    o.clamp = true;
    check_loss(p, z, &c, o, true, LOSS_FNS(soft_jaccard));

    segloss_tversky_options tc;
    segloss_tversky_options_init(&tc);
    tc.alpha = 0.3;
    tc.beta = 0.7;
    tc.overlap.reduction = SEGLOSS_REDUCTION_SUM;
    TverskyOptions<T> to;
    to.alpha = 0.3;
    to.beta = 0.7;
    to.reduction = Reduction::sum;
    check_loss(x, z, &tc, to, true, LOSS_FNS(tversky));

    segloss_bce_dice_options bc;
    segloss_bce_dice_options_init(&bc);
    bc.bce_weight = 0.3;
    bc.dice_weight = 2.0;
    bc.bce.pos_weight = &dpw;
    bc.dice.smooth_nr = 2.0;
    bc.dice.smooth_dr = 1.0;
    BceDiceOptions<T> bo;
    bo.bce_weight = 0.3;
    bo.dice_weight = 2.0;
    bo.bce.pos_weight = pw;
    bo.dice.smooth_nr = 2.0;
    bo.dice.smooth_dr = 1.0;
    check_loss(x, z, &bc, bo, true, LOSS_FNS(bce_dice));
  }
  SUBCASE("lovasz_hinge") {
    auto lab = mask<T>(s, 9);
    lab[3] = T(255);
    segloss_lovasz_hinge_options c;
    segloss_lovasz_hinge_options_init(&c);
    c.has_ignore = 1;
    c.ignore = 255;
    c.per_image = 0;
    LovaszHingeOptions<T> o;
    o.ignore = 255.0;
    o.per_image = false;
    check_loss(x, lab, &c, o, true, LOSS_FNS(lovasz_hinge));
  }
}

TEST_CASE_TEMPLATE("capi: multi-class losses match C++", T, float, double) {
  const Shape s{2, 4, 6, 5};
  const auto x = randn<T>(s, 11, 2.0);
  const auto y32 = labels<int32_t>({2, 6, 5}, 4, 12, 0.1, 255);
  const auto y64 = testing::cast<int64_t>(y32);
  const auto cw = uniform<T>({4}, 13, 0.5, 2.0);
  const segloss_tensor dcw = desc(cw);

  SUBCASE("cross_entropy: int32, int64, u8 labels and probabilities") {
    segloss_cross_entropy_options c;
    segloss_cross_entropy_options_init(&c);
    c.weight = &dcw;
    c.ignore_index = 255;
    c.label_smoothing = 0.05;
    c.mean_over = SEGLOSS_MEAN_OVER_VALID_PIXELS;
    CrossEntropyOptions<T> o;
    o.weight = cw;
    o.ignore_index = 255;
    o.label_smoothing = 0.05;
    o.mean_over = MeanOver::valid_pixels;
    check_loss(x, y32, &c, o, true, LOSS_FNS(cross_entropy));
    check_loss(x, y64, &c, o, true, LOSS_FNS(cross_entropy));
    c.reduction = SEGLOSS_REDUCTION_NONE;
    o.reduction = Reduction::none;
    check_loss(x, y64, &c, o, false, LOSS_FNS(cross_entropy));

    // u8 labels give the int32 result.
    std::vector<uint8_t> y8(static_cast<size_t>(y32.numel()));
    for (int64_t i = 0; i < y32.numel(); ++i) y8[static_cast<size_t>(i)] = uint8_t(y32[i]);
    const int64_t ls[3] = {2, 6, 5};
    const segloss_tensor d8 = segloss_tensor_make(y8.data(), SEGLOSS_U8, 3, ls);
    const segloss_tensor dx = desc(x);
    auto g = Tensor<T>::empty(s);
    const segloss_tensor dg = desc(g);
    c.reduction = SEGLOSS_REDUCTION_MEAN;
    o.reduction = Reduction::mean;
    double v = 0;
    REQUIRE(segloss_cross_entropy_value_and_grad(&dx, &d8, &c, &v, &dg, nullptr) == SEGLOSS_OK);
    const auto ref = cross_entropy_value_and_grad(x, y32, o);
    CHECK(v == ref.value);
    CHECK(same(g, ref.grad));

    const auto q = uniform<T>(s, 14, 0.0, 1.0);
    segloss_cross_entropy_options_init(&c);
    c.label_smoothing = 0.1;
    CrossEntropyOptions<T> po;
    po.label_smoothing = 0.1;
    check_loss(x, q, &c, po, true, LOSS_FNS(cross_entropy));
  }
  SUBCASE("softmax_focal") {
    segloss_softmax_focal_options c;
    segloss_softmax_focal_options_init(&c);
    c.alpha = &dcw;
    c.gamma = 0.5;
    c.ignore_index = 255;
    SoftmaxFocalOptions<T> o;
    o.alpha = cw;
    o.gamma = 0.5;
    o.ignore_index = 255;
    check_loss(x, y32, &c, o, true, LOSS_FNS(softmax_focal));
    c.reduction = SEGLOSS_REDUCTION_NONE;
    o.reduction = Reduction::none;
    check_loss(x, y64, &c, o, false, LOSS_FNS(softmax_focal));
  }
  SUBCASE("softmax_dice, softmax_jaccard, softmax_tversky") {
    segloss_softmax_overlap_options c;
    segloss_softmax_overlap_options_init(&c);
    c.class_weight = &dcw;
    c.ignore_index = 255;
    c.include_background = 0;
    c.empty = SEGLOSS_EMPTY_SKIP;
    c.squared = 1;
    c.smooth_nr = 0.5;
    SoftmaxOverlapOptions<T> o;
    o.class_weight = cw;
    o.ignore_index = 255;
    o.include_background = false;
    o.empty = EmptyPolicy::skip;
    o.squared = true;
    o.smooth_nr = 0.5;
    check_loss(x, y32, &c, o, true, LOSS_FNS(softmax_dice));
    check_loss(x, y64, &c, o, true, LOSS_FNS(softmax_jaccard));
    c.reduction = SEGLOSS_REDUCTION_NONE;
    o.reduction = Reduction::none;
    check_loss(x, y32, &c, o, false, LOSS_FNS(softmax_dice));

    const auto q = uniform<T>(s, 15, 0.0, 1.0);
    segloss_softmax_tversky_options tc;
    segloss_softmax_tversky_options_init(&tc);
    tc.alpha = 0.7;
    tc.beta = 0.3;
    tc.overlap.per_image = 0;
    tc.overlap.gamma = 2.0;
    tc.overlap.ignore_index = 255;
    SoftmaxTverskyOptions<T> to;
    to.alpha = 0.7;
    to.beta = 0.3;
    to.per_image = false;
    to.gamma = 2.0;
    to.ignore_index = 255;
    check_loss(x, y32, &tc, to, true, LOSS_FNS(softmax_tversky));
    tc.overlap.ignore_index = to.ignore_index = -100;  // probabilities take no ignore_index
    check_loss(x, q, &tc, to, true, LOSS_FNS(softmax_tversky));
  }
  SUBCASE("generalized_dice") {
    segloss_generalized_dice_options c;
    segloss_generalized_dice_options_init(&c);
    c.w_type = SEGLOSS_GDICE_WEIGHT_SIMPLE;
    c.ignore_index = 255;
    c.per_image = 0;
    GeneralizedDiceOptions<T> o;
    o.w_type = GeneralizedDiceWeight::simple;
    o.ignore_index = 255;
    o.per_image = false;
    check_loss(x, y64, &c, o, true, LOSS_FNS(generalized_dice));
    c.reduction = SEGLOSS_REDUCTION_NONE;
    o.reduction = Reduction::none;
    check_loss(x, y64, &c, o, false, LOSS_FNS(generalized_dice));
  }
  SUBCASE("ce_dice and dice_focal") {
    segloss_ce_dice_options c;
    segloss_ce_dice_options_init(&c);
    c.ce_weight = 0.5;
    c.dice_weight = 1.5;
    c.ce.ignore_index = 255;
    c.ce.weight = &dcw;
    c.dice.ignore_index = 255;
    CeDiceOptions<T> o;
    o.ce_weight = 0.5;
    o.dice_weight = 1.5;
    o.ce.ignore_index = 255;
    o.ce.weight = cw;
    o.dice.ignore_index = 255;
    check_loss(x, y32, &c, o, true, LOSS_FNS(ce_dice));

    segloss_dice_focal_options f;
    segloss_dice_focal_options_init(&f);
    f.focal_weight = 2.0;
    f.focal.gamma = 1.0;
    f.focal.ignore_index = 255;
    f.dice.ignore_index = 255;
    DiceFocalOptions<T> fo;
    fo.focal_weight = 2.0;
    fo.focal.gamma = 1.0;
    fo.focal.ignore_index = 255;
    fo.dice.ignore_index = 255;
    check_loss(x, y64, &f, fo, true, LOSS_FNS(dice_focal));
  }
  SUBCASE("lovasz_softmax") {
    const int64_t list[2] = {1, 3};
    segloss_lovasz_softmax_options c;
    segloss_lovasz_softmax_options_init(&c);
    c.per_image = 1;
    c.class_list = list;
    c.class_list_size = 2;
    c.ignore_index = 255;
    LovaszSoftmaxOptions<T> o;
    o.per_image = true;
    o.class_list = {1, 3};
    o.ignore_index = 255;
    check_loss(x, y32, &c, o, true, LOSS_FNS(lovasz_softmax));
    c.class_list = nullptr;
    c.class_list_size = 0;
    c.classes = SEGLOSS_LOVASZ_CLASSES_ALL;
    c.reduction = SEGLOSS_REDUCTION_NONE;
    o.class_list.clear();
    o.classes = LovaszClasses::all;
    o.reduction = Reduction::none;
    check_loss(x, y64, &c, o, false, LOSS_FNS(lovasz_softmax));
  }
}

namespace {

// The first or second half of a tensor along axis 0 (a shard of the batch).
template <class T>
Tensor<T> half_of(const Tensor<T>& t, int which) {
  Shape s = t.shape();
  s.set(0, s[0] / 2);
  return Tensor<T>::view(t.data() + which * s.numel(), s);
}

// statistics / finalize through C against C++ on the whole batch, then the protocol on two
// shards (halves of the batch) against one process's value_and_grad.
template <class T, class U, class CO, class PO, class CStats, class CFinal, class PStats,
          class PFinal, class PVag>
void check_split(const Tensor<T>& x, const Tensor<U>& z, const CO* co, const PO& po, CStats cstats,
                 CFinal cfinal, PStats pstats, PFinal pfinal, PVag pvag,
                 double float_value_eps = 1e-10) {
  const segloss_tensor dx = desc(x), dz = desc(z);
  segloss_statistics* st = nullptr;
  REQUIRE_MESSAGE(cstats(&dx, &dz, co, &st, nullptr) == SEGLOSS_OK, last_error());
  const auto ref = pstats(x, z, po);
  double* data = nullptr;
  int64_t count = -1;
  REQUIRE(segloss_statistics_global(st, &data, &count) == SEGLOSS_OK);
  REQUIRE(count == static_cast<int64_t>(ref.global.size()));
  for (int64_t i = 0; i < count; ++i) CHECK(data[i] == ref.global[static_cast<size_t>(i)]);
  auto g = Tensor<T>::empty(x.shape());
  const segloss_tensor dg = desc(g);
  double v = 0;
  REQUIRE_MESSAGE(cfinal(&dx, &dz, st, co, &v, &dg, nullptr) == SEGLOSS_OK, last_error());
  Tensor<T> rg;
  CHECK(v == pfinal(x, z, ref, rg, po));
  CHECK(same(g, rg));
  segloss_statistics_destroy(st);

  // Two shards: sum the global statistics (the all-reduce), then finalize each shard.
  segloss_statistics* sh[2] = {nullptr, nullptr};
  double* d[2] = {nullptr, nullptr};
  int64_t n[2] = {0, 0};
  auto grad = Tensor<T>::empty(x.shape());
  for (int k = 0; k < 2; ++k) {
    const auto xk = half_of(x, k);
    const auto zk = half_of(z, k);
    const segloss_tensor dxk = desc(xk), dzk = desc(zk);
    REQUIRE_MESSAGE(cstats(&dxk, &dzk, co, &sh[k], nullptr) == SEGLOSS_OK, last_error());
    REQUIRE(segloss_statistics_global(sh[k], &d[k], &n[k]) == SEGLOSS_OK);
  }
  REQUIRE(n[0] == n[1]);
  for (int64_t i = 0; i < n[0]; ++i) d[0][i] = d[1][i] = d[0][i] + d[1][i];
  double vk[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    const auto xk = half_of(x, k);
    const auto zk = half_of(z, k);
    const auto gk = half_of(grad, k);
    const segloss_tensor dxk = desc(xk), dzk = desc(zk), dgk = desc(gk);
    REQUIRE_MESSAGE(cfinal(&dxk, &dzk, sh[k], co, &vk[k], &dgk, nullptr) == SEGLOSS_OK,
                    last_error());
    segloss_statistics_destroy(sh[k]);
  }
  const auto whole = pvag(x, z, po);
  CHECK(vk[0] == vk[1]);
  CHECK(vk[0] ==
        doctest::Approx(whole.value).epsilon(std::is_same_v<T, float> ? float_value_eps : 1e-10));
  for (int64_t i = 0; i < x.numel(); ++i)
    CHECK(double(grad[i]) == doctest::Approx(double(whole.grad[i])).epsilon(1e-5));
}

#define SPLIT_FNS(NAME)                                                                       \
  [](auto... a) { return segloss_##NAME##_statistics(a...); },                                \
      [](auto... a) { return segloss_##NAME##_finalize(a...); },                              \
      [](const auto& x, const auto& t, const auto& o) { return NAME##_statistics(x, t, o); }, \
      [](const auto& x, const auto& t, const auto& st, auto& g, const auto& o) {              \
        return NAME##_finalize(x, t, st, g, o);                                               \
      },                                                                                      \
      [](const auto& x, const auto& t, const auto& o) { return NAME##_value_and_grad(x, t, o); }

}  // namespace

TEST_CASE_TEMPLATE("capi: statistics and finalize match C++ and split exactly", T, float, double) {
  const Shape s{4, 3, 6, 5};
  const auto x = randn<T>(s, 21, 2.0);
  const auto z = mask<T>(s, 22);
  const auto y = labels<int32_t>({4, 6, 5}, 3, 23, 0.1, 255);
  const auto cw = uniform<T>({3}, 24, 0.5, 2.0);
  const segloss_tensor dcw = desc(cw);

  SUBCASE("binary") {
    segloss_overlap_options c;
    segloss_overlap_options_init(&c);
    OverlapOptions<T> o;
    check_split(x, z, &c, o, SPLIT_FNS(soft_dice));
    c.per_image = 0;
    o.per_image = false;
    check_split(x, z, &c, o, SPLIT_FNS(soft_jaccard));
    segloss_tversky_options tc;
    segloss_tversky_options_init(&tc);
    tc.alpha = 0.2;
    tc.overlap.per_image = 0;
    TverskyOptions<T> to;
    to.alpha = 0.2;
    to.per_image = false;
    check_split(x, z, &tc, to, SPLIT_FNS(tversky));
    segloss_bce_with_logits_options bc;
    segloss_bce_with_logits_options_init(&bc);
    bc.reduction = SEGLOSS_REDUCTION_SUM;
    BceWithLogitsOptions<T> bo;
    bo.reduction = Reduction::sum;
    // These two walk the small planes of (4, 3, 6, 5) as one plane (backends/cpu/
    // flat_planes.hpp), whose float packets add in float blocks before widening: the shards'
    // blocks are not the whole batch's, so the sums agree to float rounding (at most about
    // 8e-7 relative for these nonnegative terms; docs/distributed.md).
    check_split(x, z, &bc, bo, SPLIT_FNS(bce_with_logits), 1e-6);
    check_split(x, z, static_cast<const segloss_sigmoid_focal_options*>(nullptr),
                SigmoidFocalOptions<T>{}, SPLIT_FNS(sigmoid_focal), 1e-6);
    segloss_bce_dice_options bd;
    segloss_bce_dice_options_init(&bd);
    bd.dice.per_image = 0;
    BceDiceOptions<T> bdo;
    bdo.dice.per_image = false;
    check_split(x, z, &bd, bdo, SPLIT_FNS(bce_dice));
  }
  SUBCASE("multi-class") {
    segloss_cross_entropy_options c;
    segloss_cross_entropy_options_init(&c);
    c.weight = &dcw;
    c.ignore_index = 255;
    CrossEntropyOptions<T> o;
    o.weight = cw;
    o.ignore_index = 255;
    check_split(x, y, &c, o, SPLIT_FNS(cross_entropy));
    segloss_softmax_focal_options f;
    segloss_softmax_focal_options_init(&f);
    f.ignore_index = 255;
    SoftmaxFocalOptions<T> fo;
    fo.ignore_index = 255;
    check_split(x, y, &f, fo, SPLIT_FNS(softmax_focal));
    segloss_softmax_overlap_options d;
    segloss_softmax_overlap_options_init(&d);
    d.ignore_index = 255;
    d.per_image = 0;
    SoftmaxOverlapOptions<T> dop;
    dop.ignore_index = 255;
    dop.per_image = false;
    check_split(x, y, &d, dop, SPLIT_FNS(softmax_dice));
    check_split(x, y, &d, dop, SPLIT_FNS(softmax_jaccard));
    segloss_softmax_tversky_options t;
    segloss_softmax_tversky_options_init(&t);
    t.overlap.ignore_index = 255;
    t.alpha = 0.7;
    SoftmaxTverskyOptions<T> tov;
    tov.ignore_index = 255;
    tov.alpha = 0.7;
    check_split(x, y, &t, tov, SPLIT_FNS(softmax_tversky));
    segloss_generalized_dice_options gd;
    segloss_generalized_dice_options_init(&gd);
    gd.ignore_index = 255;
    gd.per_image = 0;
    GeneralizedDiceOptions<T> gdo;
    gdo.ignore_index = 255;
    gdo.per_image = false;
    check_split(x, y, &gd, gdo, SPLIT_FNS(generalized_dice));
    segloss_ce_dice_options cd;
    segloss_ce_dice_options_init(&cd);
    cd.ce.ignore_index = cd.dice.ignore_index = 255;
    CeDiceOptions<T> cdo;
    cdo.ce.ignore_index = cdo.dice.ignore_index = 255;
    check_split(x, y, &cd, cdo, SPLIT_FNS(ce_dice));
    segloss_dice_focal_options df;
    segloss_dice_focal_options_init(&df);
    df.focal.ignore_index = df.dice.ignore_index = 255;
    DiceFocalOptions<T> dfo;
    dfo.focal.ignore_index = dfo.dice.ignore_index = 255;
    check_split(x, y, &df, dfo, SPLIT_FNS(dice_focal));
  }
  SUBCASE("errors") {
    const segloss_tensor dx = desc(x), dz = desc(z);
    segloss_statistics_destroy(nullptr);
    CHECK(segloss_statistics_global(nullptr, nullptr, nullptr) == SEGLOSS_ERROR_NULL_POINTER);
    double v = 0;
    auto g = Tensor<T>::empty(s);
    const segloss_tensor dg = desc(g);
    CHECK(segloss_soft_dice_finalize(&dx, &dz, nullptr, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_NULL_POINTER);
    CHECK(last_error() == "segloss_soft_dice_finalize: reduced is a null pointer");
    CHECK(segloss_soft_dice_statistics(&dx, &dz, nullptr, nullptr, nullptr) ==
          SEGLOSS_ERROR_NULL_POINTER);
    segloss_statistics* st = reinterpret_cast<segloss_statistics*>(&v);
    const segloss_tensor dy = desc(y);
    CHECK(segloss_cross_entropy_statistics(&dx, &dy, nullptr, &st, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);  // label 255 is not ignored by default
    CHECK(st == nullptr);
    // Another loss's statistics, of the same layout (soft_dice's and soft_jaccard's per-image
    // totals), are refused, and the grad is not written.
    REQUIRE_MESSAGE(segloss_soft_dice_statistics(&dx, &dz, nullptr, &st, nullptr) == SEGLOSS_OK,
                    last_error());
    for (int64_t i = 0; i < g.numel(); ++i) g[i] = T(7);
    CHECK(segloss_soft_jaccard_finalize(&dx, &dz, st, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error().find("soft_jaccard_finalize: the statistics come from "
                            "soft_dice_statistics, not soft_jaccard_statistics") !=
          std::string::npos);
    bool untouched = true;
    for (int64_t i = 0; i < g.numel(); ++i) untouched = untouched && g[i] == T(7);
    CHECK(untouched);
    // The same loss's statistics made with other options are refused too, grad untouched.
    segloss_overlap_options smooth;
    segloss_overlap_options_init(&smooth);
    smooth.smooth_nr = 1.0;
    CHECK(segloss_soft_dice_finalize(&dx, &dz, st, &smooth, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error().find("soft_dice_finalize: the statistics were made with other options "
                            "than these") != std::string::npos);
    for (int64_t i = 0; i < g.numel(); ++i) untouched = untouched && g[i] == T(7);
    CHECK(untouched);
    CHECK(segloss_soft_dice_finalize(&dx, &dz, st, nullptr, &v, &dg, nullptr) == SEGLOSS_OK);
    segloss_statistics_destroy(st);
  }
}
#undef SPLIT_FNS

TEST_CASE("capi: boundary_weights matches C++") {
  const auto m = mask<float>({2, 1, 16, 12}, 31, 0.5);
  auto w = Tensor<float>::empty(m.shape());
  const segloss_tensor dm = desc(m), dw = desc(w);
  segloss_boundary_weights_options c;
  segloss_boundary_weights_options_init(&c);
  REQUIRE(segloss_boundary_weights(&dm, &c, &dw, nullptr) == SEGLOSS_OK);
  CHECK(same(w, boundary_weights(m)));
  c.kernel_size = 3;
  c.boost = 4.0;
  c.normalize = 0;
  BoundaryWeightOptions o;
  o.kernel_size = 3;
  o.boost = 4.0;
  o.normalize = false;
  REQUIRE(segloss_boundary_weights(&dm, &c, &dw, nullptr) == SEGLOSS_OK);
  CHECK(same(w, boundary_weights(m, o)));
  c.kernel_size = 4;
  CHECK(segloss_boundary_weights(&dm, &c, &dw, nullptr) == SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error().find("kernel_size") != std::string::npos);
}

TEST_CASE("capi: confusion matrix and scores match C++") {
  const int64_t C = 5;
  const auto truth = labels<int32_t>({3, 7, 9}, C, 41, 0.1, 255);
  const auto pred = labels<int64_t>({3, 7, 9}, C, 42);
  const auto logits = randn<double>({3, C, 7, 9}, 43);
  const segloss_tensor dt = desc(truth), dp = desc(pred), dl = desc(logits);

  segloss_confusion_matrix_options co;
  segloss_confusion_matrix_options_init(&co);
  co.ignore_index = 255;
  ConfusionMatrixOptions o;
  o.ignore_index = 255;

  segloss_confusion_matrix* cm = nullptr;
  REQUIRE(segloss_confusion_matrix_create(C, &co, &cm) == SEGLOSS_OK);
  REQUIRE(segloss_confusion_matrix_update(cm, &dp, &dt, nullptr) == SEGLOSS_OK);
  REQUIRE(segloss_confusion_matrix_update_from_logits(cm, &dl, &dt, nullptr) == SEGLOSS_OK);
  ConfusionMatrix ref(C, o);
  ref.update(pred, truth);
  ref.update_from_logits(logits, truth);

  int64_t classes = 0;
  REQUIRE(segloss_confusion_matrix_num_classes(cm, &classes) == SEGLOSS_OK);
  CHECK(classes == C);
  std::vector<int64_t> counts(C * C, -1);
  REQUIRE(segloss_confusion_matrix_counts(cm, counts.data(), C * C) == SEGLOSS_OK);
  CHECK(counts == ref.counts());
  CHECK(segloss_confusion_matrix_counts(cm, counts.data(), C * C - 1) ==
        SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error() == "segloss_confusion_matrix_counts: counts holds 24 values; it needs 25");

  int64_t* inplace = nullptr;
  int64_t inplace_count = 0;
  REQUIRE(segloss_confusion_matrix_data(cm, &inplace, &inplace_count) == SEGLOSS_OK);
  CHECK(inplace_count == C * C);
  CHECK(std::vector<int64_t>(inplace, inplace + inplace_count) == ref.counts());

  // Merge: a second matrix from the counts (as after an all-reduce), added to the first.
  segloss_confusion_matrix* copy = nullptr;
  REQUIRE(segloss_confusion_matrix_from_counts(C, counts.data(), &co, &copy) == SEGLOSS_OK);
  REQUIRE(segloss_confusion_matrix_merge(cm, copy) == SEGLOSS_OK);
  ref.merge(ConfusionMatrix::from_counts(C, ref.counts(), o));
  REQUIRE(segloss_confusion_matrix_counts(cm, counts.data(), C * C) == SEGLOSS_OK);
  CHECK(counts == ref.counts());

  segloss_fcn_scores fs;
  std::vector<double> iou(C);
  REQUIRE(segloss_confusion_matrix_fcn_scores(cm, &fs, iou.data(), C) == SEGLOSS_OK);
  const FcnScores rf = label_accuracy_score(ref);
  CHECK(fs.pixel_accuracy == rf.pixel_accuracy);
  CHECK(fs.mean_class_accuracy == rf.mean_class_accuracy);
  CHECK(fs.mean_iou == rf.mean_iou);
  CHECK(fs.fw_iou == rf.fw_iou);
  CHECK(iou == rf.iou);

  segloss_score_options so;
  segloss_score_options_init(&so);
  so.beta = 2.0;
  ScoreOptions ro;
  ro.beta = 2.0;
  for (int score = SEGLOSS_SCORE_IOU; score <= SEGLOSS_SCORE_FBETA; ++score) {
    std::vector<double> v(C);
    REQUIRE(segloss_confusion_matrix_class_scores(cm, segloss_score(score), &so, v.data(), C) ==
            SEGLOSS_OK);
    const auto rv = class_scores(ref, Score(score), ro);
    for (int64_t c = 0; c < C; ++c) CHECK(same_value(v[size_t(c)], rv[size_t(c)]));
    for (int avg = SEGLOSS_AVERAGE_MICRO; avg <= SEGLOSS_AVERAGE_WEIGHTED; ++avg) {
      double a = 0;
      REQUIRE(segloss_confusion_matrix_average_score(cm, segloss_score(score), segloss_average(avg),
                                                     &so, &a) == SEGLOSS_OK);
      CHECK(same_value(a, average_score(ref, Score(score), Average(avg), ro)));
    }
  }
  double a = 0;
  REQUIRE(segloss_confusion_matrix_pixel_accuracy(cm, &a) == SEGLOSS_OK);
  CHECK(a == pixel_accuracy(ref));
  REQUIRE(segloss_confusion_matrix_cohen_kappa(cm, nullptr, &a) == SEGLOSS_OK);
  CHECK(a == cohen_kappa(ref));
  REQUIRE(segloss_confusion_matrix_matthews_corrcoef(cm, nullptr, &a) == SEGLOSS_OK);
  CHECK(a == matthews_corrcoef(ref));
  CHECK(segloss_confusion_matrix_average_score(cm, SEGLOSS_SCORE_IOU, SEGLOSS_AVERAGE_PER_IMAGE,
                                               nullptr, &a) == SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(segloss_confusion_matrix_average_score(cm, segloss_score(9), SEGLOSS_AVERAGE_MACRO, nullptr,
                                               &a) == SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error() ==
        "segloss_confusion_matrix_average_score: score is 9, not a value of segloss_score");

  // Per-image matrices: the per_image average over a list.
  std::vector<segloss_confusion_matrix*> images(3, nullptr);
  std::vector<ConfusionMatrix> ref_images;
  for (int64_t n = 0; n < 3; ++n) {
    const auto tn = Tensor<int32_t>::view(truth.data() + n * 63, {7, 9});
    const auto pn = Tensor<int64_t>::view(pred.data() + n * 63, {7, 9});
    const segloss_tensor dtn = desc(tn), dpn = desc(pn);
    REQUIRE(segloss_confusion_matrix_create(C, &co, &images[size_t(n)]) == SEGLOSS_OK);
    REQUIRE(segloss_confusion_matrix_update(images[size_t(n)], &dpn, &dtn, nullptr) == SEGLOSS_OK);
    ref_images.emplace_back(C, o);
    ref_images.back().update(pn, tn);
  }
  REQUIRE(segloss_average_score_images(images.data(), 3, SEGLOSS_SCORE_DICE,
                                       SEGLOSS_AVERAGE_PER_IMAGE, nullptr, &a) == SEGLOSS_OK);
  CHECK(a == average_score(ref_images, Score::dice, Average::per_image));
  CHECK(segloss_average_score_images(images.data(), 0, SEGLOSS_SCORE_DICE,
                                     SEGLOSS_AVERAGE_PER_IMAGE, nullptr,
                                     &a) == SEGLOSS_ERROR_INVALID_ARGUMENT);
  // A count outside [0, 2^31 - 1] is refused before the list is read or reserved, as the
  // header's other counts are (it was an out-of-memory status from the reservation).
  for (const int64_t count : {int64_t{-1}, int64_t{1} << 31, std::numeric_limits<int64_t>::max()}) {
    CAPTURE(count);
    CHECK(segloss_average_score_images(images.data(), count, SEGLOSS_SCORE_DICE,
                                       SEGLOSS_AVERAGE_PER_IMAGE, nullptr,
                                       &a) == SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(std::string(segloss_last_error()) == "segloss_average_score_images: count is " +
                                                   std::to_string(count) +
                                                   "; it must be in [0, 2147483647]");
  }
  for (auto* m : images) segloss_confusion_matrix_destroy(m);

  // Reset; errors leave the matrix unchanged.
  REQUIRE(segloss_confusion_matrix_reset(cm) == SEGLOSS_OK);
  REQUIRE(segloss_confusion_matrix_counts(cm, counts.data(), C * C) == SEGLOSS_OK);
  CHECK(counts == std::vector<int64_t>(C * C, 0));
  const auto bad = labels<int32_t>({3, 7, 9}, C + 1, 44);
  const segloss_tensor dbad = desc(bad);
  CHECK(segloss_confusion_matrix_update(cm, &dbad, &dt, nullptr) == SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error().rfind("segloss_confusion_matrix_update: ", 0) == 0);
  segloss_confusion_matrix* other = nullptr;
  REQUIRE(segloss_confusion_matrix_create(C + 1, nullptr, &other) == SEGLOSS_OK);
  CHECK(segloss_confusion_matrix_merge(cm, other) == SEGLOSS_ERROR_INVALID_ARGUMENT);
  segloss_confusion_matrix_destroy(other);
  CHECK(segloss_confusion_matrix_create(0, nullptr, &other) == SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(other == nullptr);
  co.out_of_range = segloss_out_of_range(5);
  CHECK(segloss_confusion_matrix_create(3, &co, &other) == SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error() ==
        "segloss_confusion_matrix_create: options.out_of_range is 5, not a value of "
        "segloss_out_of_range");
  CHECK(segloss_confusion_matrix_update(nullptr, &dp, &dt, nullptr) == SEGLOSS_ERROR_NULL_POINTER);
  segloss_confusion_matrix_destroy(cm);
  segloss_confusion_matrix_destroy(copy);
  segloss_confusion_matrix_destroy(nullptr);
}

TEST_CASE("capi: dice_score and surface distances match C++") {
  const auto x = randn<double>({2, 2, 9, 8}, 51);
  const auto z = mask<double>({2, 2, 9, 8}, 52);
  const segloss_tensor dx = desc(x), dz = desc(z);
  segloss_dice_score_options c;
  segloss_dice_score_options_init(&c);
  c.threshold = 0.4;
  c.smooth_nr = 1.0;
  c.smooth_dr = 1.0;
  DiceScoreOptions o;
  o.threshold = 0.4;
  o.smooth_nr = 1.0;
  o.smooth_dr = 1.0;
  segloss_dice_score_result r;
  auto scores = Tensor<double>::empty({2, 2});
  const segloss_tensor ds = desc(scores);
  REQUIRE(segloss_dice_score(&dx, &dz, &c, &r, &ds, nullptr) == SEGLOSS_OK);
  const auto ref = dice_score(x, z, o);
  CHECK(r.mean == ref.mean);
  CHECK(r.counted == ref.counted);
  CHECK(r.skipped == ref.skipped);
  CHECK(r.empty == ref.empty);
  CHECK(same(scores, ref.scores));
  REQUIRE(segloss_dice_score(&dx, &dz, nullptr, &r, nullptr, nullptr) == SEGLOSS_OK);
  CHECK(r.mean == dice_score(x, z).mean);

  // Surface distances on masks with anisotropic spacing, and on label maps.
  const auto pm = mask<float>({2, 2, 9, 8}, 53, 0.5), tm = mask<float>({2, 2, 9, 8}, 54, 0.5);
  const segloss_tensor dpm = desc(pm), dtm = desc(tm);
  const double spacing[2] = {1.5, 0.5};
  segloss_surface_distance_options sc;
  segloss_surface_distance_options_init(&sc);
  sc.spacing = spacing;
  sc.spacing_size = 2;
  sc.percentile = 90;
  sc.empty = SEGLOSS_SURFACE_EMPTY_BOUNDED;
  SurfaceDistanceOptions so;
  so.spacing = {1.5, 0.5};
  so.percentile = 90;
  so.empty = SurfaceEmpty::bounded;
  segloss_surface_distance_result sr;
  auto per_pair = Tensor<double>::empty({4, 2, 2});
  const segloss_tensor dpp = desc(per_pair);
  REQUIRE(segloss_surface_distance(&dpm, &dtm, &sc, &sr, &dpp) == SEGLOSS_OK);
  const auto sref = surface_distance(pm, tm, so);
  CHECK(same_value(sr.mean_hausdorff, sref.mean_hausdorff));
  CHECK(same_value(sr.mean_hausdorff_percentile, sref.mean_hausdorff_percentile));
  CHECK(same_value(sr.mean_average_surface_distance, sref.mean_average_surface_distance));
  CHECK(same_value(sr.mean_surface_dice, sref.mean_surface_dice));
  CHECK(sr.empty == sref.empty);
  CHECK(sr.one_empty == sref.one_empty);
  for (int64_t i = 0; i < 4; ++i) {
    CHECK(same_value(per_pair[i], sref.hausdorff[i]));
    CHECK(same_value(per_pair[4 + i], sref.hausdorff_percentile[i]));
    CHECK(same_value(per_pair[8 + i], sref.average_surface_distance[i]));
    CHECK(same_value(per_pair[12 + i], sref.surface_dice[i]));
  }

  const auto pl = labels<int32_t>({2, 9, 8}, 3, 55);
  const auto tl = labels<int64_t>({2, 9, 8}, 3, 56);
  const segloss_tensor dpl = desc(pl), dtl = desc(tl);
  const int64_t classes[2] = {1, 2};
  REQUIRE(segloss_surface_distance_labels(&dpl, &dtl, classes, 2, nullptr, &sr, &dpp) ==
          SEGLOSS_OK);
  const auto lref = surface_distance_labels(pl, tl, {1, 2});
  CHECK(same_value(sr.mean_hausdorff, lref.mean_hausdorff));
  CHECK(same_value(sr.mean_surface_dice, lref.mean_surface_dice));
  for (int64_t i = 0; i < 4; ++i) CHECK(same_value(per_pair[i], lref.hausdorff[i]));
  auto wrong = Tensor<double>::empty({4, 2, 3});
  const segloss_tensor dwrong = desc(wrong);
  CHECK(segloss_surface_distance_labels(&dpl, &dtl, classes, 2, nullptr, &sr, &dwrong) ==
        SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error() ==
        "segloss_surface_distance_labels: per_pair has shape (4,2,3); expected (4,2,2)");

  // The _on_stream forms (a NULL stream here, CPU tensors): the same results, and errors under
  // their own names.
  segloss_surface_distance_result so_r;
  auto per_pair2 = Tensor<double>::empty({4, 2, 2});
  const segloss_tensor dpp2 = desc(per_pair2);
  REQUIRE(segloss_surface_distance_on_stream(&dpm, &dtm, &sc, &so_r, &dpp2, nullptr) == SEGLOSS_OK);
  CHECK(same_value(so_r.mean_hausdorff, sref.mean_hausdorff));
  CHECK(same_value(so_r.mean_hausdorff_percentile, sref.mean_hausdorff_percentile));
  CHECK(same_value(so_r.mean_surface_dice, sref.mean_surface_dice));
  for (int64_t i = 0; i < 4; ++i) CHECK(same_value(per_pair2[4 + i], sref.hausdorff_percentile[i]));
  REQUIRE(segloss_surface_distance_labels_on_stream(&dpl, &dtl, classes, 2, nullptr, &so_r, &dpp2,
                                                    nullptr) == SEGLOSS_OK);
  CHECK(same_value(so_r.mean_average_surface_distance, lref.mean_average_surface_distance));
  for (int64_t i = 0; i < 4; ++i) CHECK(same_value(per_pair2[12 + i], lref.surface_dice[i]));
  CHECK(segloss_surface_distance_labels_on_stream(&dpl, &dtl, classes, 2, nullptr, &so_r, &dwrong,
                                                  nullptr) == SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error() ==
        "segloss_surface_distance_labels_on_stream: per_pair has shape (4,2,3); expected "
        "(4,2,2)");
  CHECK(segloss_surface_distance_on_stream(&dpm, &dtm, &sc, nullptr, nullptr, nullptr) ==
        SEGLOSS_ERROR_NULL_POINTER);
  CHECK(last_error() == "segloss_surface_distance_on_stream: result is a null pointer");
  sc.spacing = nullptr;  // a count above 0 needs a pointer
  CHECK(segloss_surface_distance(&dpm, &dtm, &sc, &sr, nullptr) == SEGLOSS_ERROR_NULL_POINTER);
  CHECK(last_error() == "segloss_surface_distance: options.spacing is a null pointer");
}

TEST_CASE("capi: errors give a status and a message naming function, argument and values") {
  const auto x = randn<float>({2, 1, 4, 5}, 61);
  const auto z = mask<float>({2, 1, 4, 5}, 62);
  auto g = Tensor<float>::empty(x.shape());
  segloss_tensor dx = desc(x), dz = desc(z), dg = desc(g);
  double v = 0;

  SUBCASE("null pointers") {
    CHECK(segloss_bce_with_logits_value_and_grad(nullptr, &dz, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_NULL_POINTER);
    CHECK(last_error() == "segloss_bce_with_logits_value_and_grad: logits is a null pointer");
    CHECK(segloss_soft_dice_value_and_grad(&dx, nullptr, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_NULL_POINTER);
    CHECK(last_error() == "segloss_soft_dice_value_and_grad: target is a null pointer");
    CHECK(segloss_soft_dice_value_and_grad(&dx, &dz, nullptr, &v, nullptr, nullptr) ==
          SEGLOSS_ERROR_NULL_POINTER);
    CHECK(last_error() == "segloss_soft_dice_value_and_grad: grad is a null pointer");
    CHECK(segloss_tversky_forward(&dx, &dz, nullptr, nullptr, nullptr) ==
          SEGLOSS_ERROR_NULL_POINTER);
    CHECK(last_error() == "segloss_tversky_forward: out is a null pointer");
    CHECK(segloss_sigmoid_focal_backward(&dx, &dz, nullptr, nullptr, &dg, nullptr) ==
          SEGLOSS_ERROR_NULL_POINTER);
    CHECK(last_error() == "segloss_sigmoid_focal_backward: grad_out is a null pointer");
    segloss_tensor no_data = dx;
    no_data.data = nullptr;
    CHECK(segloss_bce_with_logits_value_and_grad(&no_data, &dz, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_NULL_POINTER);
    CHECK(last_error() ==
          "segloss_bce_with_logits_value_and_grad: logits.data is a null pointer for shape "
          "(2,1,4,5)");
    segloss_lovasz_softmax_options lo;
    segloss_lovasz_softmax_options_init(&lo);
    lo.class_list_size = 2;
    const auto y = labels<int32_t>({2, 4, 5}, 1, 63);
    const segloss_tensor dy = desc(y);
    CHECK(segloss_lovasz_softmax_value_and_grad(&dx, &dy, &lo, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_NULL_POINTER);
    CHECK(last_error() ==
          "segloss_lovasz_softmax_value_and_grad: options.class_list is a null pointer");
    // A count far past any array (an uninitialised field, say) is refused before the array's
    // end is formed: 2^61 wrapped the pointer, and the call ran on an empty list.
    const int64_t one_class[] = {1};
    lo.class_list = one_class;
    lo.class_list_size = int64_t{1} << 61;
    CHECK(segloss_lovasz_softmax_value_and_grad(&dx, &dy, &lo, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_lovasz_softmax_value_and_grad: options.class_list_size is "
          "2305843009213693952; it must be in [0, 2147483647]");
    lo.class_list_size = -1;
    CHECK(segloss_lovasz_softmax_value_and_grad(&dx, &dy, &lo, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_lovasz_softmax_value_and_grad: options.class_list_size is -1; "
          "it must be in [0, 2147483647]");
    // Both out-pointers are checked before either is written.
    segloss_confusion_matrix* cm = nullptr;
    REQUIRE(segloss_confusion_matrix_create(3, nullptr, &cm) == SEGLOSS_OK);
    int64_t* data = nullptr;
    CHECK(segloss_confusion_matrix_data(cm, &data, nullptr) == SEGLOSS_ERROR_NULL_POINTER);
    CHECK(data == nullptr);
    segloss_confusion_matrix_destroy(cm);
  }
  SUBCASE("value_and_grad_into's value tensor") {
    CHECK(segloss_bce_dice_value_and_grad_into(&dx, &dz, nullptr, nullptr, &dg, nullptr) ==
          SEGLOSS_ERROR_NULL_POINTER);
    CHECK(last_error() == "segloss_bce_dice_value_and_grad_into: value is a null pointer");
    auto two = Tensor<float>::zeros({2});
    const segloss_tensor d2 = desc(two);
    CHECK(segloss_bce_dice_value_and_grad_into(&dx, &dz, nullptr, &d2, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_bce_dice_value_and_grad_into: value has shape (2); expected one element");
    auto vd = Tensor<double>::zeros({});
    const segloss_tensor dvd = desc(vd);
    CHECK(segloss_ce_dice_value_and_grad_into(&dx, &dz, nullptr, &dvd, &dg, nullptr) ==
          SEGLOSS_ERROR_DTYPE);
    CHECK(last_error() == "segloss_ce_dice_value_and_grad_into: value has dtype f64; expected f32");
    CHECK(two[0] == 0.f);
  }
  SUBCASE("dtypes") {
    const auto xi = labels<int32_t>({2, 1, 4, 5}, 2, 64);
    const segloss_tensor dxi = desc(xi);
    CHECK(segloss_bce_with_logits_value_and_grad(&dxi, &dz, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_DTYPE);
    CHECK(last_error() ==
          "segloss_bce_with_logits_value_and_grad: logits has dtype i32; expected f32 or f64");
    const auto zd = mask<double>({2, 1, 4, 5}, 65);
    const segloss_tensor dzd = desc(zd);
    CHECK(segloss_bce_with_logits_value_and_grad(&dx, &dzd, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_DTYPE);
    CHECK(last_error() ==
          "segloss_bce_with_logits_value_and_grad: target has dtype f64; expected f32");
    CHECK(segloss_cross_entropy_value_and_grad(&dx, &dzd, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_DTYPE);
    CHECK(last_error() ==
          "segloss_cross_entropy_value_and_grad: target has dtype f64; expected i32, i64 or u8 "
          "labels, or f32 probabilities like the logits");
    CHECK(segloss_softmax_focal_value_and_grad(&dx, &dz, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_DTYPE);
    CHECK(last_error() ==
          "segloss_softmax_focal_value_and_grad: target has dtype f32; expected i32, i64 or u8 "
          "labels");
    segloss_tensor weird = dx;
    weird.dtype = segloss_dtype(42);
    CHECK(segloss_soft_dice_forward(&weird, &dz, nullptr, &dg, nullptr) == SEGLOSS_ERROR_DTYPE);
    CHECK(last_error() ==
          "segloss_soft_dice_forward: logits has dtype unknown (42); expected f32 or f64");
    auto gd = Tensor<double>::empty(x.shape());
    const segloss_tensor dgd = desc(gd);
    CHECK(segloss_soft_dice_value_and_grad(&dx, &dz, nullptr, &v, &dgd, nullptr) ==
          SEGLOSS_ERROR_DTYPE);
    CHECK(last_error() == "segloss_soft_dice_value_and_grad: grad has dtype f64; expected f32");
    const auto wd = uniform<double>({1}, 66, 1, 2);
    const segloss_tensor dwd = desc(wd);
    segloss_bce_with_logits_options o;
    segloss_bce_with_logits_options_init(&o);
    o.pos_weight = &dwd;
    CHECK(segloss_bce_with_logits_value_and_grad(&dx, &dz, &o, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_DTYPE);
    CHECK(last_error() ==
          "segloss_bce_with_logits_value_and_grad: options.pos_weight has dtype f64; expected "
          "f32");
    // Inside bce_dice's options the BCE fields are named with their prefix, as the Dice ones.
    segloss_bce_dice_options bd;
    segloss_bce_dice_options_init(&bd);
    bd.bce.pos_weight = &dwd;
    CHECK(segloss_bce_dice_value_and_grad(&dx, &dz, &bd, &v, &dg, nullptr) == SEGLOSS_ERROR_DTYPE);
    CHECK(last_error() ==
          "segloss_bce_dice_value_and_grad: options.bce.pos_weight has dtype f64; expected f32");
    segloss_bce_dice_options_init(&bd);
    bd.bce.weight = &dwd;
    CHECK(segloss_bce_dice_value_and_grad(&dx, &dz, &bd, &v, &dg, nullptr) == SEGLOSS_ERROR_DTYPE);
    CHECK(last_error() ==
          "segloss_bce_dice_value_and_grad: options.bce.weight has dtype f64; expected f32");
    segloss_bce_dice_options_init(&bd);
    const int nine = 9, seven = 7;  // ints the enums do not hold, stored through their bytes
    std::memcpy(&bd.bce.reduction, &nine, sizeof nine);
    CHECK(segloss_bce_dice_value_and_grad(&dx, &dz, &bd, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_bce_dice_value_and_grad: options.bce.reduction is 9, not a value of "
          "segloss_reduction");
    segloss_bce_dice_options_init(&bd);
    std::memcpy(&bd.bce.mean_over, &seven, sizeof seven);
    CHECK(segloss_bce_dice_value_and_grad(&dx, &dz, &bd, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_bce_dice_value_and_grad: options.bce.mean_over is 7, not a value of "
          "segloss_bce_mean_over");
  }
  SUBCASE("shapes") {
    const auto zs = mask<float>({2, 1, 4, 4}, 67);
    const segloss_tensor dzs = desc(zs);
    CHECK(segloss_bce_with_logits_value_and_grad(&dx, &dzs, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_bce_with_logits_value_and_grad: bce_with_logits_value_and_grad: target "
          "(2,1,4,4) does not match logits (2,1,4,5)");
    // A forward buffer of the wrong shape, a backward grad of the wrong shape.
    auto out = Tensor<float>::empty({2});
    const segloss_tensor dout = desc(out);
    CHECK(segloss_bce_with_logits_forward(&dx, &dz, nullptr, &dout, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_bce_with_logits_forward: out has shape (2); the result has shape ()");
    const auto go = Tensor<float>::full({}, 1.0f);
    const segloss_tensor dgo = desc(go);
    const segloss_tensor dgs = desc(zs);
    CHECK(segloss_soft_dice_backward(&dx, &dz, &dgo, nullptr, &dgs, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_soft_dice_backward: grad has shape (2,1,4,4); expected the logits' shape "
          "(2,1,4,5)");
    segloss_tensor rank6 = dx;
    rank6.ndim = 6;
    CHECK(segloss_soft_dice_value_and_grad(&rank6, &dz, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() == "segloss_soft_dice_value_and_grad: logits has ndim 6; expected 0 to 5");
    const int64_t six[6] = {1, 1, 1, 1, 1, 1};
    CHECK(segloss_tensor_make(x.data(), SEGLOSS_F32, 6, six).ndim == -1);
    segloss_tensor negative = dx;
    negative.shape[2] = -4;
    CHECK(segloss_soft_dice_value_and_grad(&negative, &dz, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() == "segloss_soft_dice_value_and_grad: logits has extent -4 at axis 2");
    segloss_tensor overflow = dx;
    overflow.shape[0] = overflow.shape[1] = overflow.shape[2] = int64_t(1) << 40;
    CHECK(segloss_soft_dice_value_and_grad(&overflow, &dz, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error().find("2^63 - 1") != std::string::npos);
  }
  SUBCASE("devices") {
    segloss_tensor on_cuda = dx;
    on_cuda.device = SEGLOSS_CUDA;
    if (!cuda::available()) {
      CHECK(segloss_bce_with_logits_value_and_grad(&on_cuda, &dz, nullptr, &v, &dg, nullptr) ==
            SEGLOSS_ERROR_DEVICE);
      CHECK(last_error() ==
            std::string("segloss_bce_with_logits_value_and_grad: logits is on cuda; ") +
                (cuda::built() ? "no CUDA device is available" : "this build has no CUDA backend") +
                " (segloss_has_cuda() is 0)");
    }
    on_cuda.device = segloss_device(7);
    CHECK(segloss_bce_with_logits_value_and_grad(&on_cuda, &dz, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_DEVICE);
    CHECK(last_error() ==
          "segloss_bce_with_logits_value_and_grad: logits has device 7; expected SEGLOSS_CPU or "
          "SEGLOSS_CUDA");
  }
  SUBCASE("bad options") {
    segloss_bce_with_logits_options o;
    segloss_bce_with_logits_options_init(&o);
    o.reduction = segloss_reduction(7);
    CHECK(segloss_bce_with_logits_value_and_grad(&dx, &dz, &o, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_bce_with_logits_value_and_grad: options.reduction is 7, not a value of "
          "segloss_reduction");
    segloss_bce_with_logits_options_init(&o);
    o.label_smoothing = 2.0;
    CHECK(segloss_bce_with_logits_value_and_grad(&dx, &dz, &o, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error().rfind("segloss_bce_with_logits_value_and_grad: bce_with_logits", 0) == 0);
    CHECK(last_error().find("label_smoothing") != std::string::npos);
    segloss_tversky_options t;
    segloss_tversky_options_init(&t);
    t.overlap.empty = segloss_empty_policy(-1);
    CHECK(segloss_tversky_value_and_grad(&dx, &dz, &t, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_tversky_value_and_grad: options.overlap.empty is -1, not a value of "
          "segloss_empty_policy");
    segloss_bce_dice_options b;
    segloss_bce_dice_options_init(&b);
    b.dice.weighting = segloss_overlap_weighting(3);
    CHECK(segloss_bce_dice_value_and_grad(&dx, &dz, &b, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_bce_dice_value_and_grad: options.dice.weighting is 3, not a value of "
          "segloss_overlap_weighting");
    segloss_overlap_options d;
    segloss_overlap_options_init(&d);
    d.smooth_dr = -1;
    CHECK(segloss_soft_dice_value_and_grad(&dx, &dz, &d, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error().find("smooth_dr") != std::string::npos);
    // Reduction none has no single value.
    segloss_overlap_options_init(&d);
    d.reduction = SEGLOSS_REDUCTION_NONE;
    CHECK(segloss_soft_dice_value_and_grad(&dx, &dz, &d, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    // Labels out of range name their position.
    const auto x3 = randn<float>({2, 3, 4, 5}, 68);
    auto y = labels<int64_t>({2, 4, 5}, 3, 69);
    y[7] = 3;
    auto g3 = Tensor<float>::empty(x3.shape());
    const segloss_tensor dx3 = desc(x3), dy = desc(y), dg3 = desc(g3);
    CHECK(segloss_cross_entropy_value_and_grad(&dx3, &dy, nullptr, &v, &dg3, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error().find("3") != std::string::npos);
    CHECK(last_error().rfind("segloss_cross_entropy_value_and_grad: cross_entropy", 0) == 0);
  }
}

// AddressSanitizer aborts on an oversized allocation instead of letting operator new throw.
#if defined(__SANITIZE_ADDRESS__)
#define SEGLOSS_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SEGLOSS_TEST_ASAN 1
#endif
#endif

TEST_CASE("capi: a failed allocation is a status, not an exception") {
#if defined(SEGLOSS_TEST_ASAN)
  MESSAGE("skipped under AddressSanitizer: it aborts on an oversized allocation");
  return;
#endif
  // u8 labels are copied to int32 before the call: 2^62 labels cannot be allocated.
  uint8_t one = 0;
  const int64_t huge[2] = {int64_t(1) << 31, int64_t(1) << 31};
  const segloss_tensor labels8 = segloss_tensor_make(&one, SEGLOSS_U8, 2, huge);
  segloss_confusion_matrix* cm = nullptr;
  REQUIRE(segloss_confusion_matrix_create(2, nullptr, &cm) == SEGLOSS_OK);
  CHECK(segloss_confusion_matrix_update(cm, &labels8, &labels8, nullptr) ==
        SEGLOSS_ERROR_OUT_OF_MEMORY);
  CHECK(last_error() == "segloss_confusion_matrix_update: out of memory");
  segloss_confusion_matrix_destroy(cm);
}

TEST_CASE("capi: the last error is per thread") {
  const auto x = randn<float>({1, 1, 2, 2}, 71);
  const segloss_tensor dx = desc(x);
  double v = 0;
  CHECK(segloss_soft_dice_value_and_grad(&dx, nullptr, nullptr, &v, &dx, nullptr) ==
        SEGLOSS_ERROR_NULL_POINTER);
  const std::string mine = last_error();
  std::string theirs = "unset";
  std::thread([&] {
    theirs = last_error();  // nothing failed on this thread yet
    segloss_confusion_matrix* cm = nullptr;
    segloss_confusion_matrix_create(-1, nullptr, &cm);
  }).join();
  CHECK(theirs.empty());
  CHECK(last_error() == mine);
  // Success does not clear it.
  auto g = Tensor<float>::empty(x.shape());
  const segloss_tensor dg = desc(g);
  REQUIRE(segloss_bce_with_logits_value_and_grad(&dx, &dx, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_OK);
  CHECK(last_error() == mine);
}

// Any int in a C enum field, as a C caller may store it (in C++, through its bytes). Enum
// arguments are passed as a cast prvalue, as the tests above do: UBSan checks loads of enum
// objects, and the C layer must not load them as enums either.
template <class E>
void set_raw_enum(E& field, int value) {
  std::memcpy(&field, &value, sizeof value);
}

// Values far outside each enum's range (beyond the bits its values need): the C layer reads them
// as integers, so UBSan's -fsanitize=enum (on in .ci/run's stage 3) stays quiet and the call
// refuses them with the value in the message.
TEST_CASE("capi: enum fields and arguments far out of range are read as integers") {
  const auto x = randn<float>({1, 2, 3, 3}, 81);
  const auto z = Tensor<float>::full(x.shape(), 1.0f);
  auto g = Tensor<float>::empty(x.shape());
  const segloss_tensor dx = desc(x);
  const segloss_tensor dz = desc(z), dg = desc(g);
  double v = 0;
  segloss_tensor bad = dx;
  set_raw_enum(bad.dtype, 1 << 20);
  CHECK(segloss_soft_dice_value_and_grad(&bad, &dz, nullptr, &v, &dg, nullptr) ==
        SEGLOSS_ERROR_DTYPE);
  CHECK(last_error() ==
        "segloss_soft_dice_value_and_grad: logits has dtype unknown (1048576); expected f32 or "
        "f64");
  bad = dx;
  set_raw_enum(bad.device, -5);
  CHECK(segloss_soft_dice_value_and_grad(&bad, &dz, nullptr, &v, &dg, nullptr) ==
        SEGLOSS_ERROR_DEVICE);
  CHECK(last_error() ==
        "segloss_soft_dice_value_and_grad: logits has device -5; expected SEGLOSS_CPU or "
        "SEGLOSS_CUDA");
  const int64_t shape[1] = {2};
  const segloss_tensor made = segloss_tensor_make(g.data(), segloss_dtype(77), 1, shape);
  int made_dtype = 0;
  std::memcpy(&made_dtype, &made.dtype, sizeof made_dtype);
  CHECK(made_dtype == 77);
  CHECK(std::string(segloss_status_name(segloss_status(1 << 30))) == "unknown status");

  segloss_cross_entropy_options ce;
  segloss_cross_entropy_options_init(&ce);
  set_raw_enum(ce.all_ignored, -2);
  const auto labels = Tensor<int64_t>::zeros({1, 3, 3});
  const segloss_tensor dl = desc(labels);
  CHECK(segloss_cross_entropy_value_and_grad(&dx, &dl, &ce, &v, &dg, nullptr) ==
        SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error() ==
        "segloss_cross_entropy_value_and_grad: options.all_ignored is -2, not a value of "
        "segloss_all_ignored");
  segloss_generalized_dice_options gd;
  segloss_generalized_dice_options_init(&gd);
  set_raw_enum(gd.w_type, 1000);
  CHECK(segloss_generalized_dice_forward(&dx, &dl, &gd, &dg, nullptr) ==
        SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error() ==
        "segloss_generalized_dice_forward: options.w_type is 1000, not a value of "
        "segloss_generalized_dice_weight");
  segloss_lovasz_softmax_options lo;
  segloss_lovasz_softmax_options_init(&lo);
  set_raw_enum(lo.classes, 64);
  CHECK(segloss_lovasz_softmax_value_and_grad(&dx, &dl, &lo, &v, &dg, nullptr) ==
        SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error() ==
        "segloss_lovasz_softmax_value_and_grad: options.classes is 64, not a value of "
        "segloss_lovasz_classes");

  segloss_confusion_matrix_options co;
  segloss_confusion_matrix_options_init(&co);
  set_raw_enum(co.out_of_range, 1 << 16);
  segloss_confusion_matrix* cm = nullptr;
  CHECK(segloss_confusion_matrix_create(2, &co, &cm) == SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(cm == nullptr);
  CHECK(last_error() ==
        "segloss_confusion_matrix_create: options.out_of_range is 65536, not a value of "
        "segloss_out_of_range");
  REQUIRE(segloss_confusion_matrix_create(2, nullptr, &cm) == SEGLOSS_OK);
  CHECK(segloss_confusion_matrix_average_score(cm, SEGLOSS_SCORE_IOU, segloss_average(1000),
                                               nullptr, &v) == SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error() ==
        "segloss_confusion_matrix_average_score: average is 1000, not a value of "
        "segloss_average");
  std::vector<double> values(2);
  CHECK(segloss_confusion_matrix_class_scores(cm, segloss_score(-3), nullptr, values.data(), 2) ==
        SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error() ==
        "segloss_confusion_matrix_class_scores: score is -3, not a value of segloss_score");
  segloss_score_options so;
  segloss_score_options_init(&so);
  set_raw_enum(so.empty, 99);
  CHECK(segloss_confusion_matrix_cohen_kappa(cm, &so, &v) == SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error() ==
        "segloss_confusion_matrix_cohen_kappa: options.empty is 99, not a value of "
        "segloss_empty_policy");
  segloss_confusion_matrix_destroy(cm);

  segloss_dice_score_options dso;
  segloss_dice_score_options_init(&dso);
  set_raw_enum(dso.activation, 5);
  segloss_dice_score_result dr;
  CHECK(segloss_dice_score(&dx, &dz, &dso, &dr, nullptr, nullptr) ==
        SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error() ==
        "segloss_dice_score: options.activation is 5, not a value of segloss_activation");
  segloss_surface_distance_options sdo;
  segloss_surface_distance_options_init(&sdo);
  set_raw_enum(sdo.empty, -100);
  segloss_surface_distance_result sr;
  CHECK(segloss_surface_distance(&dz, &dz, &sdo, &sr, nullptr) == SEGLOSS_ERROR_INVALID_ARGUMENT);
  CHECK(last_error() ==
        "segloss_surface_distance: options.empty is -100, not a value of segloss_surface_empty");
}

// A reviewer's reports: a misaligned data pointer (an FFI buffer at an odd byte offset) reached
// the vector loads (UB; a clean status in a release build); a grad or value over the caller's u8
// labels was not refused (the C++ check saw the int32 copy) and the call wrote into the labels;
// extents whose product passes 2^63 - 1 gave Shape's message without the argument's name.
TEST_CASE("capi: misaligned data, a grad or value over u8 labels, extents that overflow") {
  SUBCASE("misaligned data is refused, naming the argument and the alignment") {
    std::vector<double> storage(64, 0.0);  // 8-byte aligned
    auto* bytes = reinterpret_cast<unsigned char*>(storage.data());
    const int64_t shape[4] = {1, 1, 2, 4};
    segloss_tensor dx = segloss_tensor_make(bytes + 1, SEGLOSS_F32, 4, shape);
    segloss_tensor dz = segloss_tensor_make(bytes + 64, SEGLOSS_F32, 4, shape);
    segloss_tensor dg = segloss_tensor_make(bytes + 128, SEGLOSS_F32, 4, shape);
    double v = 0;
    CHECK(segloss_bce_with_logits_value_and_grad(&dx, &dz, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error().find("segloss_bce_with_logits_value_and_grad: logits.data ") == 0);
    CHECK(last_error().find(" is not aligned to 4 bytes, as f32 elements must be") !=
          std::string::npos);
    dx.data = bytes;  // aligned now; the grad at an odd offset
    dg.data = bytes + 130;
    CHECK(segloss_bce_with_logits_value_and_grad(&dx, &dz, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error().find("grad.data ") != std::string::npos);
    dg.data = bytes + 128;
    CHECK(segloss_bce_with_logits_value_and_grad(&dx, &dz, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_OK);
    // f64 wants 8 bytes: an address 4 bytes off is refused.
    segloss_tensor dxd = segloss_tensor_make(bytes + 4, SEGLOSS_F64, 4, shape);
    const int64_t lshape[3] = {1, 2, 4};
    segloss_tensor dy = segloss_tensor_make(bytes + 256, SEGLOSS_I32, 3, lshape);
    segloss_tensor dgd = segloss_tensor_make(bytes + 320, SEGLOSS_F64, 4, shape);
    CHECK(segloss_cross_entropy_value_and_grad(&dxd, &dy, nullptr, &v, &dgd, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error().find("is not aligned to 8 bytes, as f64 elements must be") !=
          std::string::npos);
    // i32 labels 2 bytes off.
    segloss_tensor dx1 = segloss_tensor_make(bytes, SEGLOSS_F64, 4, shape);
    segloss_tensor dy2 = segloss_tensor_make(bytes + 258, SEGLOSS_I32, 3, lshape);
    CHECK(segloss_cross_entropy_value_and_grad(&dx1, &dy2, nullptr, &v, &dgd, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error().find("target.data ") != std::string::npos);
  }
  SUBCASE("a misaligned output pointer is refused, naming it, and nothing is written there") {
    std::vector<double> storage(64, 0.0);
    auto* bytes = reinterpret_cast<unsigned char*>(storage.data());
    const int64_t shape[4] = {1, 1, 2, 4};
    segloss_tensor dx = segloss_tensor_make(bytes, SEGLOSS_F32, 4, shape);
    segloss_tensor dz = segloss_tensor_make(bytes + 64, SEGLOSS_F32, 4, shape);
    segloss_tensor dg = segloss_tensor_make(bytes + 128, SEGLOSS_F32, 4, shape);
    std::memset(bytes + 256, 0xAB, 64);
    auto* odd_value = reinterpret_cast<double*>(bytes + 260);  // 4 bytes off 8
    CHECK(segloss_bce_with_logits_value_and_grad(&dx, &dz, nullptr, odd_value, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error().find("segloss_bce_with_logits_value_and_grad: value ") == 0);
    CHECK(last_error().find(" is not aligned to 8 bytes") != std::string::npos);
    segloss_confusion_matrix* cm = nullptr;
    REQUIRE(segloss_confusion_matrix_create(3, nullptr, &cm) == SEGLOSS_OK);
    auto* odd_count = reinterpret_cast<int64_t*>(bytes + 290);  // 2 bytes off 8
    CHECK(segloss_confusion_matrix_num_classes(cm, odd_count) == SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error().find("num_classes ") != std::string::npos);
    CHECK(last_error().find(" is not aligned to 8 bytes") != std::string::npos);
    auto* odd_accuracy = reinterpret_cast<double*>(bytes + 301);
    CHECK(segloss_confusion_matrix_pixel_accuracy(cm, odd_accuracy) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    segloss_confusion_matrix_destroy(cm);
    // An options struct holding an int64 at an address 4 bytes off 8, never read.
    const auto* odd_options =
        reinterpret_cast<const segloss_confusion_matrix_options*>(bytes + 308);
    segloss_confusion_matrix* cm2 = nullptr;
    CHECK(segloss_confusion_matrix_create(3, odd_options, &cm2) == SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error().find("segloss_confusion_matrix_create: options ") == 0);
    CHECK(cm2 == nullptr);
    for (int i = 256; i < 320; ++i) CHECK(bytes[i] == 0xAB);
    double v = 0;  // aligned: the same call succeeds
    CHECK(segloss_bce_with_logits_value_and_grad(&dx, &dz, nullptr, &v, &dg, nullptr) ==
          SEGLOSS_OK);
  }
  SUBCASE("a grad or value over u8 labels is refused and the labels are left alone") {
    const auto x = randn<float>({1, 3, 2, 4}, 71);
    // 8 u8 labels at the start of a 128-byte buffer (new[]-aligned); a float grad of 24
    // elements, or a float value, placed 4 bytes in overlaps labels 4 to 7.
    std::vector<uint8_t> buffer(128, 1);
    const int64_t lshape[3] = {1, 2, 4};
    const segloss_tensor dx = desc(x);
    const segloss_tensor dy = segloss_tensor_make(buffer.data(), SEGLOSS_U8, 3, lshape);
    double v = 0;
    segloss_tensor dg_over = dx;
    dg_over.data = buffer.data() + 4;
    CHECK(segloss_cross_entropy_value_and_grad(&dx, &dy, nullptr, &v, &dg_over, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_cross_entropy_value_and_grad: grad overlaps target (u8 labels); pass a "
          "buffer apart from it");
    auto g = Tensor<float>::empty(x.shape());
    const segloss_tensor dg = desc(g);
    const segloss_tensor dv_over = segloss_tensor_make(buffer.data() + 4, SEGLOSS_F32, 0, nullptr);
    CHECK(segloss_cross_entropy_value_and_grad_into(&dx, &dy, nullptr, &dv_over, &dg, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_cross_entropy_value_and_grad_into: value overlaps target (u8 labels); pass a "
          "buffer apart from it");
    segloss_statistics* st = nullptr;
    REQUIRE(segloss_cross_entropy_statistics(&dx, &dy, nullptr, &st, nullptr) == SEGLOSS_OK);
    CHECK(segloss_cross_entropy_finalize(&dx, &dy, st, nullptr, &v, &dg_over, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_cross_entropy_finalize: grad overlaps target (u8 labels); pass a buffer "
          "apart from it");
    segloss_statistics_destroy(st);
    CHECK(std::all_of(buffer.begin(), buffer.end(), [](uint8_t b) { return b == 1; }));
    // Apart: accepted, with the value of the same labels as i32.
    const auto y32 = Tensor<int32_t>::full({1, 2, 4}, 1);
    const segloss_tensor dy32 = desc(y32);
    double v32 = 0;
    REQUIRE(segloss_cross_entropy_value_and_grad(&dx, &dy, nullptr, &v, &dg, nullptr) ==
            SEGLOSS_OK);
    REQUIRE(segloss_cross_entropy_value_and_grad(&dx, &dy32, nullptr, &v32, &dg, nullptr) ==
            SEGLOSS_OK);
    CHECK(v == v32);
  }
  SUBCASE("extents whose product passes 2^63 - 1 are named") {
    const int64_t shape[4] = {INT64_MAX / 2, 4, 1, 1};
    float dummy[4] = {0, 0, 0, 0};
    segloss_tensor dx = segloss_tensor_make(dummy, SEGLOSS_F32, 4, shape);
    double v = 0;
    CHECK(segloss_bce_with_logits_value_and_grad(&dx, &dx, nullptr, &v, &dx, nullptr) ==
          SEGLOSS_ERROR_INVALID_ARGUMENT);
    CHECK(last_error() ==
          "segloss_bce_with_logits_value_and_grad: logits has extent 4 at axis 1, and its "
          "extents multiply past 2^63 - 1");
  }
}

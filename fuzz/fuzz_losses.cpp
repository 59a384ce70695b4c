// libFuzzer target: decodes a shape, options and values from the input and calls the losses and
// metrics through the C++ API (segloss.hpp).
//
// Contract under test:
//   - nothing crashes, reads or writes out of bounds, or hits undefined behaviour (ASan, UBSan);
//   - bad input raises segloss::Error and nothing else (any other exception aborts);
//   - with finite logits in [-1e4, 1e4], targets in [0, 1], in-range labels and default
//     options, every value and gradient is finite (docs/edge-cases.md).
//
// fuzz/fuzz_capi.cpp is the target on the C API (capi/segloss.h), the one scripts/fuzz.sh and
// .ci/run run by default; this one stays for the C++ entry points.
//
// Build and run: SEGLOSS_FUZZ_TARGET=fuzz_losses scripts/fuzz.sh SECONDS (clang,
// -DSEGLOSS_FUZZ=ON).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

#include <segloss/segloss.hpp>

using namespace segloss;

namespace {

// Reads bytes from the input; past its end, zeros.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), n_(size) {}
  uint8_t byte() { return i_ < n_ ? p_[i_++] : 0; }
  bool empty() const { return i_ >= n_; }
  template <class T>
  T raw() {
    T v{};
    uint8_t b[sizeof(T)];
    for (auto& x : b) x = byte();
    std::memcpy(&v, b, sizeof(T));
    return v;
  }
  // An option value: usually a sane one, sometimes a raw double (negative, NaN, huge).
  double option(double sane_lo, double sane_hi) {
    const uint8_t k = byte();
    if (k < 200) return sane_lo + (sane_hi - sane_lo) * (k / 199.0);
    return raw<double>();
  }

 private:
  const uint8_t* p_;
  size_t n_;
  size_t i_ = 0;
};

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "fuzz_losses: %s\n", what);
  std::abort();
}

template <class T>
bool finite(const Tensor<T>& t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(static_cast<double>(t[i]))) return false;
  return true;
}

template <class T>
struct Case {
  Tensor<T> x, t;       // logits, binary/soft target (same shape)
  Tensor<int64_t> lab;  // labels (N, spatial...)
  int64_t classes = 1;
  bool clean = true;  // finite |x| <= 1e4, t in [0, 1], labels in range
};

template <class T>
Case<T> decode(Reader& r) {
  Case<T> c;
  const int rank = 3 + r.byte() % 3;
  std::vector<int64_t> ext(static_cast<size_t>(rank));
  int64_t numel = 1;
  for (int d = 0; d < rank; ++d) {
    // Mostly 1..6; a 0 extent now and then (an error), and a long axis to cross chunks.
    const uint8_t b = r.byte();
    ext[static_cast<size_t>(d)] = b == 255 ? 0 : (b >= 250 && d == rank - 1 ? 20000 : 1 + b % 6);
    numel *= ext[static_cast<size_t>(d)];
  }
  if (numel > 200000) ext[static_cast<size_t>(rank - 1)] = 7;
  c.classes = ext[1];
  const Shape s(ext.begin(), ext.end());
  std::vector<int64_t> lext{ext[0]};
  for (int d = 2; d < rank; ++d) lext.push_back(ext[static_cast<size_t>(d)]);
  c.x = Tensor<T>::empty(s);
  c.t = Tensor<T>::empty(s);
  c.lab = Tensor<int64_t>::empty(Shape(lext.begin(), lext.end()));
  const uint8_t mode = r.byte();
  for (int64_t i = 0; i < c.x.numel(); ++i) {
    const uint8_t b = r.empty() ? static_cast<uint8_t>(i * 37) : r.byte();
    T v;
    if (mode % 4 == 0 && b >= 250) {
      v = static_cast<T>(r.raw<float>());  // NaN, Inf, denormals, huge
    } else if (mode % 4 == 1) {
      v = static_cast<T>(b & 1 ? 1e4 : -1e4) * static_cast<T>(b >> 1) / T(127);
    } else {
      v = static_cast<T>((static_cast<int>(b) - 128) / 8.0);
    }
    c.x[i] = v;
    if (!std::isfinite(v) || std::fabs(v) > T(1e4)) c.clean = false;
    c.t[i] = mode & 4 ? static_cast<T>((b * 7 % 256) / 255.0) : static_cast<T>((b >> 3) & 1);
  }
  for (int64_t i = 0; i < c.lab.numel(); ++i) {
    const uint8_t b = r.empty() ? static_cast<uint8_t>(i * 11) : r.byte();
    int64_t l = b % (c.classes > 0 ? c.classes : 1);
    if (b == 254) l = -100;  // ignored
    if (b == 255) {
      l = c.classes + (i & 3);  // out of range: an error
      c.clean = false;
    }
    c.lab[i] = l;
  }
  return c;
}

template <class T>
void check_finite_result(bool clean, const ValueAndGrad<T>& vg, const char* what) {
  if (clean && (!std::isfinite(vg.value) || !finite(vg.grad))) finding(what);
}

template <class T>
void run(Reader& r) {
  Case<T> c = decode<T>(r);
  const uint8_t family = r.byte();
  const uint8_t flags = r.byte();
  const bool defaults = (flags & 1) == 0;
  const bool clean = c.clean && defaults;
  const Reduction red = static_cast<Reduction>(r.byte() % 3);
  try {
    switch (family % 12) {
      case 0: {
        BceWithLogitsOptions<T> o;
        if (!defaults) {
          o.reduction = red;
          o.label_smoothing = r.option(0, 1);
          o.mean_over = flags & 2 ? BceMeanOver::weight_sum : BceMeanOver::elements;
          if (flags & 4) o.pos_weight = Tensor<T>::full({c.classes}, T(r.option(0, 5)));
        }
        const Tensor<T> v = bce_with_logits(c.x, c.t, o);
        if (o.reduction != Reduction::none)
          check_finite_result(clean, bce_with_logits_value_and_grad(c.x, c.t, o),
                              "bce_with_logits not finite");
        else
          bce_with_logits_backward(c.x, c.t, v, o);
        break;
      }
      case 1:
      case 2: {
        SoftDiceOptions<T> o;
        if (!defaults) {
          o.reduction = red;
          o.smooth_nr = r.option(0, 2);
          o.smooth_dr = r.option(1e-6, 2);
          o.per_image = flags & 2;
          o.squared = flags & 4;
          o.include_background = !(flags & 8);
          o.empty = static_cast<EmptyPolicy>(r.byte() % 4);
          o.gamma = r.option(0.5, 3);
          o.log = flags & 16;
          o.activation = flags & 32 ? Activation::none : Activation::sigmoid;
        }
        const Tensor<T> v = family % 12 == 1 ? soft_dice(c.x, c.t, o) : soft_jaccard(c.x, c.t, o);
        if (o.reduction != Reduction::none)
          check_finite_result(clean, soft_dice_value_and_grad(c.x, c.t, o), "soft_dice not finite");
        else
          soft_dice_backward(c.x, c.t, v, o);
        break;
      }
      case 3: {
        CrossEntropyOptions<T> o;
        if (!defaults) {
          o.reduction = red;
          o.label_smoothing = r.option(0, 1);
          o.ignore_index = flags & 2 ? 0 : -100;
          o.mean_over = flags & 4 ? MeanOver::valid_pixels : MeanOver::weights;
          if (flags & 8) o.weight = Tensor<T>::full({c.classes}, T(r.option(0, 3)));
        }
        const Tensor<T> v = cross_entropy(c.x, c.lab, o);
        if (o.reduction != Reduction::none)
          check_finite_result(clean, cross_entropy_value_and_grad(c.x, c.lab, o),
                              "cross_entropy not finite");
        else
          cross_entropy_backward(c.x, c.lab, v, o);
        // Class-probability targets (the soft target, per pixel not normalized: allowed).
        cross_entropy(c.x, c.t, o);
        break;
      }
      case 4: {
        SoftmaxOverlapOptions<T> o;
        if (!defaults) {
          o.reduction = red;
          o.smooth_nr = r.option(0, 2);
          o.smooth_dr = r.option(1e-6, 2);
          o.per_image = flags & 2;
          o.squared = flags & 4;
          o.include_background = !(flags & 8);
          o.empty = static_cast<EmptyPolicy>(r.byte() % 4);
          o.log = flags & 16;
          o.clamp = flags & 32;
        }
        const Tensor<T> v = softmax_dice(c.x, c.lab, o);
        if (o.reduction != Reduction::none)
          check_finite_result(clean, softmax_dice_value_and_grad(c.x, c.lab, o),
                              "softmax_dice not finite");
        else
          softmax_dice_backward(c.x, c.lab, v, o);
        softmax_jaccard(c.x, c.t, o);
        break;
      }
      case 5: {
        SigmoidFocalOptions<T> o;
        SoftmaxFocalOptions<T> so;
        if (!defaults) {
          o.reduction = so.reduction = red;
          o.alpha = r.option(-1, 1);
          o.gamma = so.gamma = r.option(0, 5);
        }
        if (o.reduction != Reduction::none) {
          check_finite_result(clean, sigmoid_focal_value_and_grad(c.x, c.t, o),
                              "sigmoid_focal not finite");
          check_finite_result(clean, softmax_focal_value_and_grad(c.x, c.lab, so),
                              "softmax_focal not finite");
        } else {
          sigmoid_focal_backward(c.x, c.t, sigmoid_focal(c.x, c.t, o), o);
          softmax_focal_backward(c.x, c.lab, softmax_focal(c.x, c.lab, so), so);
        }
        break;
      }
      case 6: {
        LovaszSoftmaxOptions<T> o;
        if (!defaults) {
          o.reduction = red == Reduction::none ? Reduction::sum : red;
          o.per_image = flags & 2;
          o.classes = flags & 4 ? LovaszClasses::all : LovaszClasses::present;
          o.ignore_index = flags & 8 ? 1 : -100;
        }
        check_finite_result(clean, lovasz_softmax_value_and_grad(c.x, c.lab, o),
                            "lovasz_softmax not finite");
        LovaszHingeOptions<T> h;
        h.per_image = flags & 16;
        Tensor<T> binary = c.t.clone();
        for (auto& v : binary) v = v > T(0.5) ? T(1) : T(0);
        check_finite_result(clean, lovasz_hinge_value_and_grad(c.x, binary, h),
                            "lovasz_hinge not finite");
        break;
      }
      case 7: {
        GeneralizedDiceOptions<T> o;
        check_finite_result(clean, generalized_dice_value_and_grad(c.x, c.lab, o),
                            "generalized_dice not finite");
        check_finite_result(clean, ce_dice_value_and_grad(c.x, c.lab), "ce_dice not finite");
        check_finite_result(clean, dice_focal_value_and_grad(c.x, c.lab), "dice_focal not finite");
        check_finite_result(clean, bce_dice_value_and_grad(c.x, c.t), "bce_dice not finite");
        break;
      }
      case 8: {
        ConfusionMatrixOptions o;
        if (flags & 2) o = ConfusionMatrixOptions::pytorch_fcn();
        if (flags & 4) o.ignore_index = 0;
        ConfusionMatrix cm(c.classes, o);
        cm.update_from_logits(c.x, c.lab);
        Tensor<int64_t> pred = c.lab.clone();
        for (auto& v : pred) v = v < 0 ? 0 : v;
        cm.update(pred, c.lab);
        (void)average_score(cm, static_cast<Score>(r.byte() % 4), Average::macro);
        (void)cohen_kappa(cm);
        (void)matthews_corrcoef(cm);
        (void)confusion_per_image(pred, c.lab, c.classes, o);
        break;
      }
      case 9: {
        DiceScoreOptions o;
        if (!defaults) {
          o.threshold = r.option(0, 1);
          o.round = flags & 2;
          o.per_channel = flags & 4;
          o.border = r.byte() % 3;
          o.empty = static_cast<EmptyPolicy>(r.byte() % 4);
          o.check_binary = flags & 8;
          o.activation = flags & 16 ? Activation::none : Activation::sigmoid;
        }
        (void)dice_score(c.x, c.t, o);
        break;
      }
      case 10: {
        SurfaceDistanceOptions o;
        if (!defaults) {
          o.percentile = r.option(0, 100);
          o.tolerance = r.option(0, 3);
          o.directed = flags & 2;
          o.empty = flags & 4 ? SurfaceEmpty::bounded : SurfaceEmpty::monai;
          if (flags & 8) o.spacing.assign(static_cast<size_t>(c.x.rank() - 2), r.option(0.1, 3));
        }
        (void)surface_distance(c.x, c.t, o);
        break;
      }
      default: {
        BinaryCrossEntropyOptions<T> o;
        o.reduction = red;
        Tensor<T> p = c.t.clone();
        binary_cross_entropy(p, c.t, o);
        BoundaryWeightOptions bo;
        (void)boundary_weights(c.t, bo);
        break;
      }
    }
  } catch (const Error&) {
    // Bad input, rejected at the boundary: the expected outcome.
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_losses: unexpected exception: %s\n", e.what());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader r(data, size);
  if (r.byte() & 1)
    run<double>(r);
  else
    run<float>(r);
  return 0;
}

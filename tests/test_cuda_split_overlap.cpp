// The statistics / finalize split of the overlap losses on CUDA (soft_dice, soft_jaccard,
// tversky, softmax_dice, softmax_jaccard, softmax_tversky, generalized_dice, bce_dice, ce_dice,
// dice_focal), against
// the CPU: one shard's statistics equal the CPU's and its finalize equals the CUDA
// value_and_grad; a batch cut into 2 and 3 shards (device views of image slices), statistics
// summed on the host, finalize per shard, gives the single-process CPU value and gradient, for
// every option that changes the statistics' layout or the finalize's math; float (1e-5
// relative) and double (1e-11); bitwise identical finalize over 10 runs; the error paths.
// ce_dice and dice_focal (session 9) are here too. Also two things of session 8 beside the split:
// bce_dice's Dice term with its weight and finalize options on CUDA (fused forms against the CPU),
// and the overlap forwards' NaN, never an exception, for a bad label or class weight with or
// without OverlapInfo.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;
using namespace segloss::testing;

namespace {

// Images [first, first + count) of a tensor whose first axis is the batch, on its device.
template <class T>
Tensor<T> slice(const Tensor<T>& v, int64_t first, int64_t count) {
  Shape s = v.shape();
  const int64_t per_image = v.numel() / s[0];
  s.set(0, count);
  return Tensor<T>::view(const_cast<T*>(v.data()) + first * per_image, s, v.device());
}

// The shard layouts of a batch of 5 images.
const std::vector<std::vector<int64_t>> kLayouts = {{2, 3}, {1, 3, 1}};

// One loss's split on any device: opts(first, count, device) gives the options of the shard of
// images [first, first + count) (a per-pixel weight with a batch axis sliced like the logits, on
// that device); stat(x, y, o), fin(x, y, st, grad, o) and vg(x, y, o) are the loss's statistics,
// finalize and value_and_grad.
template <class T, class U, class O>
struct Split {
  std::function<O(int64_t, int64_t, Device)> opts;
  std::function<OverlapStatistics(const Tensor<T>&, const Tensor<U>&, const O&)> stat;
  std::function<double(const Tensor<T>&, const Tensor<U>&, const OverlapStatistics&, Tensor<T>&,
                       const O&)>
      fin;
  std::function<ValueAndGrad<T>(const Tensor<T>&, const Tensor<U>&, const O&)> vg;
};

// Tests 1 and 2 for one loss, options and input.
template <class T, class U, class O>
void check_split(const Split<T, U, O>& L, const Tensor<T>& x, const Tensor<U>& y) {
  const double tol = parity_tol<T>();
  const int64_t N = x.shape()[0];
  const auto xd = gpu(x);
  const auto yd = gpu(y);
  const O oc = L.opts(0, N, Device::cpu), od = L.opts(0, N, Device::cuda);
  const auto ref = L.vg(x, y, oc);  // the single-process CPU loss

  // 1. One shard: the statistics equal the CPU's, and finalize the CUDA value_and_grad.
  const auto st_c = L.stat(x, y, oc);
  const auto st_d = L.stat(xd, yd, od);
  CHECK(st_d.per_image == st_c.per_image);
  CHECK(st_d.channels == st_c.channels);
  check_vector(st_c.global, st_d.global, tol, "global statistics");
  check_vector(st_c.local, st_d.local, tol, "local statistics");
  Tensor<T> grad1;
  const double v1 = L.fin(xd, yd, st_d, grad1, od);
  REQUIRE(grad1.device() == Device::cuda);
  const auto fused = L.vg(xd, yd, od);
  check_parity(fused.value, v1, tol, "one shard: value against the CUDA value_and_grad");
  check_parity(fused.grad.to(Device::cpu), grad1, tol, "one shard: grad against CUDA");
  check_parity(ref.value, v1, tol, "one shard: value against the CPU");

  // 2. Shards: statistics summed on the host, finalize per shard into its slice.
  for (const auto& layout : kLayouts) {
    CAPTURE(layout.size());
    std::vector<OverlapStatistics> st;
    int64_t first = 0;
    for (int64_t count : layout) {
      st.push_back(L.stat(slice(xd, first, count), slice(yd, first, count),
                          L.opts(first, count, Device::cuda)));
      first += count;
    }
    std::vector<double> reduced(st[0].size(), 0.0);  // the caller's all-reduce (sum)
    for (const auto& s : st) {
      REQUIRE(s.size() == reduced.size());
      for (size_t k = 0; k < reduced.size(); ++k) reduced[k] += s.data()[k];
    }
    auto grad = Tensor<T>::full(x.shape(), static_cast<T>(NAN)).to(Device::cuda);
    first = 0;
    for (size_t r = 0; r < layout.size(); ++r) {
      OverlapStatistics mine = st[r];
      mine.global = reduced;
      auto g = slice(grad, first, layout[r]);
      const double v = L.fin(slice(xd, first, layout[r]), slice(yd, first, layout[r]), mine, g,
                             L.opts(first, layout[r], Device::cuda));
      check_parity(ref.value, v, tol, "shard value against the CPU batch");
      first += layout[r];
    }
    check_parity(ref.grad, grad, tol, "concatenated shard gradients against the CPU batch");
  }
}

// The class weights of C classes, on a device.
template <class T>
Tensor<T> class_weights(int64_t C, Device d) {
  auto w = Tensor<T>::empty(Shape{C});
  for (int64_t c = 0; c < C; ++c) w[c] = static_cast<T>(0.5 + 0.75 * static_cast<double>(c));
  return d == Device::cuda ? w.to(Device::cuda) : w;
}

// ---- soft_dice, soft_jaccard, tversky ----

template <class T, class O>
void set_sigmoid_loss(Split<T, T, O>& L) {
  if constexpr (std::is_same_v<O, SoftDiceOptions<T>>) {
    L.stat = [](const Tensor<T>& x, const Tensor<T>& y, const O& o) {
      return soft_dice_statistics(x, y, o);
    };
    L.fin = [](const Tensor<T>& x, const Tensor<T>& y, const OverlapStatistics& st, Tensor<T>& g,
               const O& o) { return soft_dice_finalize(x, y, st, g, o); };
    L.vg = [](const Tensor<T>& x, const Tensor<T>& y, const O& o) {
      return soft_dice_value_and_grad(x, y, o);
    };
  } else if constexpr (std::is_same_v<O, SoftJaccardOptions<T>>) {
    L.stat = [](const Tensor<T>& x, const Tensor<T>& y, const O& o) {
      return soft_jaccard_statistics(x, y, o);
    };
    L.fin = [](const Tensor<T>& x, const Tensor<T>& y, const OverlapStatistics& st, Tensor<T>& g,
               const O& o) { return soft_jaccard_finalize(x, y, st, g, o); };
    L.vg = [](const Tensor<T>& x, const Tensor<T>& y, const O& o) {
      return soft_jaccard_value_and_grad(x, y, o);
    };
  } else {
    L.stat = [](const Tensor<T>& x, const Tensor<T>& y, const O& o) {
      return tversky_statistics(x, y, o);
    };
    L.fin = [](const Tensor<T>& x, const Tensor<T>& y, const OverlapStatistics& st, Tensor<T>& g,
               const O& o) { return tversky_finalize(x, y, st, g, o); };
    L.vg = [](const Tensor<T>& x, const Tensor<T>& y, const O& o) {
      return tversky_value_and_grad(x, y, o);
    };
  }
}

// Every finalize option case (cuda_check.hpp), mean and sum, per_image both ways where the case
// leaves it, then the options that change the statistics: a per-pixel weight with a batch axis
// (sliced per shard), squared sums, no background, probabilities (activation none).
template <class T, class O>
void sigmoid_split_all(const Shape& s, uint64_t seed) {
  const int64_t C = s[1];
  const auto x = randn<T>(s, seed);
  auto y = mask<T>(s, seed + 1, 0.3);
  const int64_t per_image = s.numel_from(1), plane = s.numel_from(2);
  for (int64_t i = 0; i < plane; ++i) y[2 * per_image + (C - 1) * plane + i] = T(0);  // absent
  const auto wfull = uniform<T>(Shape{s[0], 1, s[2], s[3]}, seed + 2, 0.2, 2.0);
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    for (int k = 0; k < kFinalizeOptionCases + 4; ++k) {
      for (int pi = 0; pi < 2; ++pi) {
        CAPTURE(k);
        CAPTURE(pi);
        CAPTURE(static_cast<int>(r));
        Split<T, T, O> L;
        set_sigmoid_loss(L);
        L.opts = [&, k, pi, r](int64_t first, int64_t count, Device d) {
          O o;
          if (k < kFinalizeOptionCases)
            o = finalize_option_case<O>(k, C, r, class_weights<T>(C, d));
          o.reduction = r;
          if (pi == 1) o.per_image = !o.per_image;
          if (k == kFinalizeOptionCases) {
            const auto w = slice(wfull, first, count);
            o.weight = d == Device::cuda ? w.to(Device::cuda) : w;
          }
          if constexpr (!std::is_same_v<O, TverskyOptions<T>>)
            if (k == kFinalizeOptionCases + 1) o.squared = true;
          if (k == kFinalizeOptionCases + 2) o.include_background = false;
          if (k == kFinalizeOptionCases + 3) o.activation = Activation::none;
          if constexpr (std::is_same_v<O, TverskyOptions<T>>) {
            o.alpha = 0.3;
            o.beta = 0.7;
          }
          return o;
        };
        if (k == kFinalizeOptionCases + 3)
          check_split(L, uniform<T>(s, seed + 3, 0.0, 1.0), y);
        else
          check_split(L, x, y);
      }
    }
  }
}

// ---- softmax_dice, softmax_jaccard, softmax_tversky ----

template <class T, class U, class O>
void set_softmax_loss(Split<T, U, O>& L, int which) {
  L.stat = [which](const Tensor<T>& x, const Tensor<U>& y, const O& o) {
    if constexpr (std::is_same_v<O, SoftmaxTverskyOptions<T>>) {
      return softmax_tversky_statistics(x, y, o);
    } else {
      return which == 0 ? softmax_dice_statistics(x, y, o) : softmax_jaccard_statistics(x, y, o);
    }
  };
  L.fin = [which](const Tensor<T>& x, const Tensor<U>& y, const OverlapStatistics& st, Tensor<T>& g,
                  const O& o) {
    if constexpr (std::is_same_v<O, SoftmaxTverskyOptions<T>>) {
      return softmax_tversky_finalize(x, y, st, g, o);
    } else {
      return which == 0 ? softmax_dice_finalize(x, y, st, g, o)
                        : softmax_jaccard_finalize(x, y, st, g, o);
    }
  };
  L.vg = [which](const Tensor<T>& x, const Tensor<U>& y, const O& o) {
    if constexpr (std::is_same_v<O, SoftmaxTverskyOptions<T>>) {
      return softmax_tversky_value_and_grad(x, y, o);
    } else {
      return which == 0 ? softmax_dice_value_and_grad(x, y, o)
                        : softmax_jaccard_value_and_grad(x, y, o);
    }
  };
}

// Labels of C classes with about 10% ignored, class C - 1 absent from image 2 (when there is
// one: the error-path tests use two images).
template <class U>
Tensor<U> split_labels(const Shape& s, int64_t C, uint64_t seed) {
  auto y = labels<U>(s, C, seed, 0.1, -100);
  const int64_t S = s.numel_from(1);
  for (int64_t i = 0; i < S && s[0] > 2; ++i)
    if (y[2 * S + i] == C - 1) y[2 * S + i] = 0;
  return y;
}

template <class T>
Tensor<T> split_probs(const Shape& s, uint64_t seed) {
  auto p = uniform<T>(s, seed, 0.0, 1.0);
  const int64_t N = s[0], C = s[1], S = s.numel_from(2);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < S; ++i) {
      double sum = 0.0;
      for (int64_t c = 0; c < C; ++c) {
        T& v = p[(n * C + c) * S + i];
        if (n == 2 && c == C - 1) v = T(0);
        sum += static_cast<double>(v);
      }
      for (int64_t c = 0; c < C; ++c) p[(n * C + c) * S + i] /= static_cast<T>(sum);
    }
  return p;
}

// Every finalize option case, mean and sum, per_image both ways, with label targets (an
// ignore_index) and probabilities; squared and no background as further cases.
template <class T, class U, class O>
void softmax_split_one(int which, const Tensor<T>& x, const Tensor<U>& y) {
  const int64_t C = x.shape()[1];
  for (Reduction r : {Reduction::mean, Reduction::sum})
    for (int k = 0; k < kFinalizeOptionCases + 2; ++k)
      for (int pi = 0; pi < 2; ++pi) {
        CAPTURE(k);
        CAPTURE(pi);
        CAPTURE(static_cast<int>(r));
        Split<T, U, O> L;
        set_softmax_loss(L, which);
        L.opts = [=](int64_t, int64_t, Device d) {
          O o;
          if (k < kFinalizeOptionCases)
            o = finalize_option_case<O>(k, C, r, class_weights<T>(C, d));
          o.reduction = r;
          if (pi == 1) o.per_image = !o.per_image;
          if constexpr (std::is_same_v<O, SoftmaxTverskyOptions<T>>) {
            o.alpha = 0.6;
            o.beta = 0.4;
          } else {
            if (k == kFinalizeOptionCases) o.squared = true;
          }
          if (k == kFinalizeOptionCases + 1) o.include_background = false;
          return o;
        };
        check_split(L, x, y);
      }
}

template <class T, class O>
void softmax_split_all(int which, const Shape& s, uint64_t seed) {
  const auto x = randn<T>(s, seed, 1.5);
  softmax_split_one<T, int64_t, O>(which, x, split_labels<int64_t>(s.without(1), s[1], seed + 1));
  softmax_split_one<T, int32_t, O>(which, x, split_labels<int32_t>(s.without(1), s[1], seed + 2));
  softmax_split_one<T, T, O>(which, x, split_probs<T>(s, seed + 3));
}

// ---- generalized_dice ----

template <class T, class U>
void gdl_split_one(const Tensor<T>& x, const Tensor<U>& y) {
  using O = GeneralizedDiceOptions<T>;
  for (Reduction r : {Reduction::mean, Reduction::sum})
    for (int pi = 0; pi < 2; ++pi)
      for (int w = 0; w < 3; ++w)
        for (int bg = 0; bg < 2; ++bg) {
          CAPTURE(static_cast<int>(r));
          CAPTURE(pi);
          CAPTURE(w);
          CAPTURE(bg);
          Split<T, U, O> L;
          L.opts = [=](int64_t, int64_t, Device) {
            O o;
            o.reduction = r;
            o.per_image = pi == 0;
            o.w_type = w == 0   ? GeneralizedDiceWeight::square
                       : w == 1 ? GeneralizedDiceWeight::simple
                                : GeneralizedDiceWeight::uniform;
            o.include_background = bg == 0;
            o.smooth_nr = 1e-4;
            return o;
          };
          L.stat = [](const Tensor<T>& a, const Tensor<U>& b, const O& o) {
            return generalized_dice_statistics(a, b, o);
          };
          L.fin = [](const Tensor<T>& a, const Tensor<U>& b, const OverlapStatistics& st,
                     Tensor<T>& g,
                     const O& o) { return generalized_dice_finalize(a, b, st, g, o); };
          L.vg = [](const Tensor<T>& a, const Tensor<U>& b, const O& o) {
            return generalized_dice_value_and_grad(a, b, o);
          };
          check_split(L, x, y);
        }
}

template <class T>
void gdl_split_all(const Shape& s, uint64_t seed) {
  const auto x = randn<T>(s, seed, 1.5);
  gdl_split_one<T, int64_t>(x, split_labels<int64_t>(s.without(1), s[1], seed + 1));
  gdl_split_one<T, int32_t>(x, split_labels<int32_t>(s.without(1), s[1], seed + 2));
  gdl_split_one<T, T>(x, split_probs<T>(s, seed + 3));
}

// ---- bce_dice ----

// The BCE term's options too: a per-pixel weight with a batch axis, pos_weight, the sum,
// label smoothing, the terms' weights.
template <class T>
void bce_dice_split_all(const Shape& s, uint64_t seed) {
  using O = BceDiceOptions<T>;
  const int64_t C = s[1];
  const auto x = randn<T>(s, seed);
  const auto y = mask<T>(s, seed + 1, 0.3);
  const auto wfull = uniform<T>(Shape{s[0], 1, s[2], s[3]}, seed + 2, 0.2, 2.0);
  for (Reduction r : {Reduction::mean, Reduction::sum})
    for (int pi = 0; pi < 2; ++pi)
      for (int k = 0; k < 5 + kFinalizeOptionCases; ++k) {
        CAPTURE(static_cast<int>(r));
        CAPTURE(pi);
        CAPTURE(k);
        Split<T, T, O> L;
        L.opts = [&, r, pi, k](int64_t first, int64_t count, Device d) {
          O o;
          if (k >= 5)  // the Dice term's finalize options (session 8)
            o.dice = finalize_option_case<SoftDiceOptions<T>>(k - 5, C, r, class_weights<T>(C, d));
          o.dice.reduction = r;
          o.bce.reduction = k == 1 ? Reduction::sum : Reduction::mean;
          o.dice.per_image = pi == 0;
          if (k == 1) {  // a per-pixel BCE weight with a batch axis, and pos_weight
            const auto w = slice(wfull, first, count);
            o.bce.weight = d == Device::cuda ? w.to(Device::cuda) : w;
            auto pw = Tensor<T>::full(Shape{C}, T(1.7));
            o.bce.pos_weight = d == Device::cuda ? pw.to(Device::cuda) : pw;
          }
          if (k == 2) {
            o.bce.label_smoothing = 0.1;
            o.bce_weight = 0.3;
            o.dice_weight = 1.7;
            o.dice.squared = true;
          }
          if (k == 3 && C > 1) o.dice.include_background = false;
          if (k == 4) {  // the Dice term's per-pixel weight, with a batch axis
            const auto w = slice(wfull, first, count);
            o.dice.weight = d == Device::cuda ? w.to(Device::cuda) : w;
            o.dice.weighting = OverlapWeighting::on_inputs;
          }
          return o;
        };
        L.stat = [](const Tensor<T>& a, const Tensor<T>& b, const O& o) {
          return bce_dice_statistics(a, b, o);
        };
        L.fin = [](const Tensor<T>& a, const Tensor<T>& b, const OverlapStatistics& st,
                   Tensor<T>& g, const O& o) { return bce_dice_finalize(a, b, st, g, o); };
        L.vg = [](const Tensor<T>& a, const Tensor<T>& b, const O& o) {
          return bce_dice_value_and_grad(a, b, o);
        };
        check_split(L, x, y);
      }
}

// ce_dice and dice_focal (session 9): the first term's split and the Dice term's, the first
// term's gradient scaled by its weight and the Dice term's added. Cases: 0 the defaults; 1 the
// terms' weights, CE class weights and label smoothing (focal: alpha per class, gamma 0.5);
// 2.. the Dice term's finalize options; with per_image both ways and mean and sum (both terms)
// combined as kCombos says.
template <class T, class U, class O>
void combined_split_one(const Tensor<T>& x, const Tensor<U>& y) {
  const int64_t C = x.shape()[1];
  constexpr bool kFocal = std::is_same_v<O, DiceFocalOptions<T>>;
  constexpr int kDiceCases[4] = {0, 1, 4, 6};  // of finalize_option_case
  // (case, reduction sum, per_image flipped): the defaults in all four, the others in two.
  const int kCombos[10][3] = {{0, 0, 0}, {0, 0, 1}, {0, 1, 0}, {0, 1, 1}, {1, 0, 0},
                              {1, 1, 1}, {2, 0, 0}, {3, 1, 1}, {4, 0, 1}, {5, 1, 0}};
  for (const auto& combo : kCombos) {
    const int k = combo[0], pi = combo[2];
    const Reduction r = combo[1] ? Reduction::sum : Reduction::mean;
    CAPTURE(static_cast<int>(r));
    CAPTURE(pi);
    CAPTURE(k);
    Split<T, U, O> L;
    L.opts = [=](int64_t, int64_t, Device d) {
      O o;
      if (k >= 2)  // Dice finalize cases: class weight, empty one, gamma 2, log
        o.dice = finalize_option_case<SoftmaxOverlapOptions<T>>(kDiceCases[k - 2], C, r,
                                                                class_weights<T>(C, d));
      o.dice.reduction = r;
      o.dice.ignore_index = -100;
      if (pi == 1) o.dice.per_image = !o.dice.per_image;
      if constexpr (kFocal) {
        o.focal.reduction = r;
        o.focal.ignore_index = -100;
        if (k == 1) {
          o.focal.alpha = class_weights<T>(C, d);
          o.focal.gamma = 0.5;
          o.focal_weight = 0.6;
          o.dice_weight = 1.4;
        }
      } else {
        o.ce.reduction = r;
        o.ce.ignore_index = -100;
        if (k == 1) {
          if constexpr (!std::is_floating_point_v<U>) o.ce.weight = class_weights<T>(C, d);
          o.ce.label_smoothing = 0.1;
          o.ce_weight = 0.6;
          o.dice_weight = 1.4;
        }
      }
      return o;
    };
    if constexpr (kFocal) {
      L.stat = [](const Tensor<T>& a, const Tensor<U>& b, const O& o) {
        return dice_focal_statistics(a, b, o);
      };
      L.fin = [](const Tensor<T>& a, const Tensor<U>& b, const OverlapStatistics& st, Tensor<T>& g,
                 const O& o) { return dice_focal_finalize(a, b, st, g, o); };
      L.vg = [](const Tensor<T>& a, const Tensor<U>& b, const O& o) {
        return dice_focal_value_and_grad(a, b, o);
      };
    } else {
      L.stat = [](const Tensor<T>& a, const Tensor<U>& b, const O& o) {
        return ce_dice_statistics(a, b, o);
      };
      L.fin = [](const Tensor<T>& a, const Tensor<U>& b, const OverlapStatistics& st, Tensor<T>& g,
                 const O& o) { return ce_dice_finalize(a, b, st, g, o); };
      L.vg = [](const Tensor<T>& a, const Tensor<U>& b, const O& o) {
        return ce_dice_value_and_grad(a, b, o);
      };
    }
    check_split(L, x, y);
  }
}

template <class T>
void combined_split_all(const Shape& s, uint64_t seed) {
  const auto x = randn<T>(s, seed, 1.5);
  const auto y64 = split_labels<int64_t>(s.without(1), s[1], seed + 1);
  const auto y32 = split_labels<int32_t>(s.without(1), s[1], seed + 2);
  combined_split_one<T, int64_t, CeDiceOptions<T>>(x, y64);
  combined_split_one<T, int32_t, CeDiceOptions<T>>(x, y32);
  combined_split_one<T, T, CeDiceOptions<T>>(x, split_probs<T>(s, seed + 3));
  combined_split_one<T, int64_t, DiceFocalOptions<T>>(x, y64);
  combined_split_one<T, int32_t, DiceFocalOptions<T>>(x, y32);
}

// bce_dice's fused forms on CUDA with the Dice term's weight and finalize options (session 8):
// the forward, the backward, both value_and_grad forms and the device value against the CPU.
template <class T>
void bce_dice_dice_options(const Shape& s, uint64_t seed) {
  const double tol = parity_tol<T>();
  const int64_t C = s[1], S = s.numel_from(2);
  const auto x = randn<T>(s, seed, 2.0);
  auto z = mask<T>(s, seed + 1, 0.3);
  for (int64_t i = 0; i < S; ++i) z[(C - 1) * S + i] = T(0);  // plane (0, C - 1) empty
  const auto xd = gpu(x), zd = gpu(z);
  const auto w = uniform<T>(Shape{s[0], 1, s[2], s[3]}, seed + 2, 0.2, 2.0);
  const auto grad_out = Tensor<T>::full(Shape{}, T(0.7));
  for (Reduction r : {Reduction::mean, Reduction::sum})
    for (int k = 0; k < kFinalizeOptionCases + 3; ++k) {
      CAPTURE(static_cast<int>(r));
      CAPTURE(k);
      BceDiceOptions<T> oc, od;
      if (k < kFinalizeOptionCases) {
        oc.dice =
            finalize_option_case<SoftDiceOptions<T>>(k, C, r, class_weights<T>(C, Device::cpu));
        od.dice =
            finalize_option_case<SoftDiceOptions<T>>(k, C, r, class_weights<T>(C, Device::cuda));
      }
      if (k >= kFinalizeOptionCases) {  // the per-pixel weight, both weightings, with options
        oc.dice.weight = w;
        od.dice.weight = gpu(w);
        if (k == kFinalizeOptionCases + 1) {
          oc.dice.weighting = od.dice.weighting = OverlapWeighting::on_inputs;
          oc.dice.gamma = od.dice.gamma = 2.0;
          oc.dice.empty = od.dice.empty = EmptyPolicy::skip;
        }
        if (k == kFinalizeOptionCases + 2) {
          oc.dice.squared = od.dice.squared = true;
          oc.dice.log = od.dice.log = true;
          oc.dice.class_weight = class_weights<T>(C, Device::cpu);
          od.dice.class_weight = class_weights<T>(C, Device::cuda);
        }
      }
      oc.dice.reduction = od.dice.reduction = r;
      oc.bce_weight = od.bce_weight = 0.6;
      oc.dice_weight = od.dice_weight = 1.4;
      check_parity(bce_dice(x, z, oc)[0], bce_dice(xd, zd, od).to(Device::cpu)[0], tol, "forward");
      check_parity(bce_dice_backward(x, z, grad_out, oc),
                   bce_dice_backward(xd, zd, gpu(grad_out), od), tol, "backward");
      const auto ref = bce_dice_value_and_grad(x, z, oc);
      const auto got = bce_dice_value_and_grad(xd, zd, od);
      check_parity(ref.value, got.value, tol, "value_and_grad: value");
      check_parity(ref.grad, got.grad, tol, "value_and_grad: grad");
      Tensor<T> g;
      auto v = Tensor<T>::empty(Shape{}, Device::cuda);
      bce_dice_value_and_grad(xd, zd, g, v, od);
      check_parity(ref.value, static_cast<double>(v.to(Device::cpu)[0]), tol, "device value");
      check_parity(ref.grad, g, tol, "device value: grad");
    }
}

}  // namespace

TEST_CASE("cuda split: soft_dice, every option, float and double") {
  SEGLOSS_REQUIRE_GPU();
  sigmoid_split_all<float, SoftDiceOptions<float>>(Shape{5, 3, 6, 5}, 100);
  sigmoid_split_all<double, SoftDiceOptions<double>>(Shape{5, 2, 4, 7}, 110);
}

TEST_CASE("cuda split: soft_jaccard and tversky, every option, float and double") {
  SEGLOSS_REQUIRE_GPU();
  sigmoid_split_all<float, SoftJaccardOptions<float>>(Shape{5, 3, 6, 5}, 120);
  sigmoid_split_all<double, SoftJaccardOptions<double>>(Shape{5, 2, 4, 7}, 130);
  sigmoid_split_all<float, TverskyOptions<float>>(Shape{5, 3, 6, 5}, 140);
  sigmoid_split_all<double, TverskyOptions<double>>(Shape{5, 2, 4, 7}, 150);
}

TEST_CASE("cuda split: softmax_dice, every option, labels and probabilities") {
  SEGLOSS_REQUIRE_GPU();
  softmax_split_all<float, SoftmaxOverlapOptions<float>>(0, Shape{5, 4, 6, 5}, 200);
  softmax_split_all<double, SoftmaxOverlapOptions<double>>(0, Shape{5, 3, 4, 7}, 210);
}

TEST_CASE("cuda split: ce_dice and dice_focal, both terms' options, labels and probabilities") {
  SEGLOSS_REQUIRE_GPU();
  combined_split_all<float>(Shape{5, 3, 6, 5}, 260);
  combined_split_all<double>(Shape{5, 4, 4, 7}, 270);
}

TEST_CASE("cuda split: softmax_jaccard and softmax_tversky, every option") {
  SEGLOSS_REQUIRE_GPU();
  softmax_split_all<float, SoftmaxOverlapOptions<float>>(1, Shape{5, 4, 6, 5}, 220);
  softmax_split_all<double, SoftmaxOverlapOptions<double>>(1, Shape{5, 3, 4, 7}, 230);
  softmax_split_all<float, SoftmaxTverskyOptions<float>>(2, Shape{5, 4, 6, 5}, 240);
  softmax_split_all<double, SoftmaxTverskyOptions<double>>(2, Shape{5, 3, 4, 7}, 250);
}

TEST_CASE("cuda split: generalized_dice, every option, labels and probabilities") {
  SEGLOSS_REQUIRE_GPU();
  gdl_split_all<float>(Shape{5, 4, 6, 5}, 300);
  gdl_split_all<double>(Shape{5, 3, 4, 7}, 310);
}

TEST_CASE("cuda split: bce_dice, both terms' options, float and double") {
  SEGLOSS_REQUIRE_GPU();
  bce_dice_split_all<float>(Shape{5, 3, 6, 5}, 400);
  bce_dice_split_all<double>(Shape{5, 2, 4, 7}, 410);
  // parts: the two terms of the finalize, as on the CPU
  const Shape s{5, 2, 4, 7};
  const auto x = randn<double>(s, 420);
  const auto y = mask<double>(s, 421, 0.3);
  const auto xd = gpu(x), yd = gpu(y);
  Tensor<double> g, gd;
  BceDiceParts pc, pd;
  bce_dice_finalize(x, y, bce_dice_statistics(x, y), g, {}, &pc);
  bce_dice_finalize(xd, yd, bce_dice_statistics(xd, yd), gd, {}, &pd);
  check_parity(pc.bce, pd.bce, 1e-11, "parts.bce");
  check_parity(pc.dice, pd.dice, 1e-11, "parts.dice");
}

TEST_CASE("cuda bce_dice: the Dice term's weight and finalize options, CPU parity") {
  SEGLOSS_REQUIRE_GPU();
  bce_dice_dice_options<float>(Shape{2, 3, 9, 11}, 450);
  bce_dice_dice_options<double>(Shape{3, 2, 5, 7}, 460);
}

TEST_CASE("cuda bce_dice: a bad Dice class weight raises on a host value, NaN on the device") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 3, 4, 5};
  const auto xd = gpu(randn<float>(s, 470));
  const auto zd = gpu(mask<float>(s, 471, 0.3));
  auto cw = Tensor<float>::full(Shape{3}, 1.0f);
  cw[1] = -2.0f;
  BceDiceOptions<float> o;
  o.dice.class_weight = cw.to(Device::cuda);
  CHECK_THROWS_WITH_AS(bce_dice_value_and_grad(xd, zd, o),
                       "bce_dice_value_and_grad: options.dice.class_weight holds a negative or "
                       "non-finite value (checked on the device)",
                       Error);
  CHECK(std::isnan(bce_dice(xd, zd, o).to(Device::cpu)[0]));
  Tensor<float> g;
  // statistics made with valid class weights of the same shape (the options' digest compares
  // shapes, not values), then finalize with the bad ones: the device's check
  BceDiceOptions<float> good;
  good.dice.class_weight = gpu(Tensor<float>::full(Shape{3}, 1.0f));
  CHECK_THROWS_WITH_AS(bce_dice_finalize(xd, zd, bce_dice_statistics(xd, zd, good), g, o),
                       doctest::Contains("options.dice.class_weight holds a negative"), Error);
  // statistics copies the class weights to the host: the CPU's message
  BceDiceOptions<float> oc;
  oc.dice.class_weight = cw;
  CHECK(error_of([&] { bce_dice_statistics(xd, zd, o); }) ==
        error_of([&] { bce_dice_statistics(xd.to(Device::cpu), zd.to(Device::cpu), oc); }));
}

TEST_CASE("cuda split: finalize is bitwise identical over 10 runs") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{3, 4, 9, 11};
  const auto xd = gpu(randn<float>(s, 500));
  const auto md = gpu(mask<float>(s, 501, 0.3));
  const auto yd = gpu(split_labels<int64_t>(s.without(1), 4, 502));
  for (int pi = 0; pi < 2; ++pi) {
    SoftDiceOptions<float> o;
    o.per_image = pi == 0;
    o.class_weight = class_weights<float>(4, Device::cuda);
    o.log = true;
    SoftmaxOverlapOptions<float> so;
    so.per_image = pi == 0;
    so.empty = EmptyPolicy::skip;
    GeneralizedDiceOptions<float> go;
    go.per_image = pi == 0;
    const auto st = soft_dice_statistics(xd, md, o);
    const auto sst = softmax_dice_statistics(xd, yd, so);
    const auto gst = generalized_dice_statistics(xd, yd, go);
    const auto bst = bce_dice_statistics(xd, md);
    Tensor<float> g0, s0, q0, b0;
    const double v0 = soft_dice_finalize(xd, md, st, g0, o);
    const double w0 = softmax_dice_finalize(xd, yd, sst, s0, so);
    const double u0 = generalized_dice_finalize(xd, yd, gst, q0, go);
    const double b0v = bce_dice_finalize(xd, md, bst, b0);
    for (int run = 1; run < 10; ++run) {
      Tensor<float> g, sg, q, b;
      const double v = soft_dice_finalize(xd, md, st, g, o);
      const double w = softmax_dice_finalize(xd, yd, sst, sg, so);
      const double u = generalized_dice_finalize(xd, yd, gst, q, go);
      const double bv = bce_dice_finalize(xd, md, bst, b);
      CHECK(std::memcmp(&v, &v0, sizeof(double)) == 0);
      CHECK(std::memcmp(&w, &w0, sizeof(double)) == 0);
      CHECK(std::memcmp(&u, &u0, sizeof(double)) == 0);
      CHECK(std::memcmp(&bv, &b0v, sizeof(double)) == 0);
      CHECK(same_bits(g, g0));
      CHECK(same_bits(sg, s0));
      CHECK(same_bits(q, q0));
      CHECK(same_bits(b, b0));
    }
  }
}

TEST_CASE("cuda split: the error paths") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 3, 4, 5};
  const auto x = randn<float>(s, 600);
  const auto m = mask<float>(s, 601, 0.3);
  const auto y = split_labels<int64_t>(s.without(1), 3, 602);
  const auto xd = gpu(x), md = gpu(m);
  const auto yd = gpu(y);
  Tensor<float> g;

  // statistics of another loss or layout: the CPU's message
  SoftmaxOverlapOptions<float> batch;
  batch.per_image = false;
  const auto other = softmax_dice_statistics(x, y, batch);
  const auto other_d = softmax_dice_statistics(xd, yd, batch);
  const std::string cpu_msg = error_of([&] { soft_dice_finalize(x, m, other, g); });
  CHECK(cpu_msg.find("the statistics come from softmax_dice_statistics, not "
                     "soft_dice_statistics") != std::string::npos);
  CHECK(error_of([&] { soft_dice_finalize(xd, md, other_d, g); }) == cpu_msg);
  const std::string cpu_sm = error_of([&] { softmax_dice_finalize(x, y, other, g); });
  CHECK(cpu_sm.find("do not come from this shard's") != std::string::npos);  // per_image differs
  CHECK(error_of([&] { softmax_dice_finalize(xd, yd, other_d, g); }) == cpu_sm);
  // statistics of the same loss made with other options: refused with the CPU's message (each
  // call with a grad of its own: the CPU call allocates its grad on the CPU)
  const auto same_refusal = [](const auto& on_cpu, const auto& on_cuda) {
    Tensor<float> gc, gd;
    const std::string cpu = error_of([&] { on_cpu(gc); });
    CHECK(cpu.find("the statistics were made with other options than these") != std::string::npos);
    CHECK(error_of([&] { on_cuda(gd); }) == cpu);
  };
#define SAME_REFUSAL(NAME, TARGET, OPTIONS)                                   \
  same_refusal(                                                               \
      [&](Tensor<float>& h) {                                                 \
        NAME##_finalize(x, TARGET, NAME##_statistics(x, TARGET, OPTIONS), h); \
      },                                                                      \
      [&](Tensor<float>& h) {                                                 \
        const auto t = gpu(TARGET);                                           \
        NAME##_finalize(xd, t, NAME##_statistics(xd, t, OPTIONS), h);         \
      })
  SoftDiceOptions<float> smooth;
  smooth.smooth_nr = 1.0;
  SAME_REFUSAL(soft_dice, m, smooth);
  CrossEntropyOptions<float> ls;
  ls.label_smoothing = 0.1;
  SAME_REFUSAL(cross_entropy, y, ls);
  SoftmaxOverlapOptions<float> nobg;
  nobg.include_background = false;
  SAME_REFUSAL(softmax_dice, y, nobg);
  SoftmaxFocalOptions<float> fg;
  fg.gamma = 1.0;
  SAME_REFUSAL(softmax_focal, y, fg);
  BceDiceOptions<float> bw;
  bw.bce_weight = 0.5;
  SAME_REFUSAL(bce_dice, m, bw);
  CeDiceOptions<float> cdw;
  cdw.dice_weight = 0.5;
  SAME_REFUSAL(ce_dice, y, cdw);
#undef SAME_REFUSAL
  const std::string cpu_gd = error_of([&] { generalized_dice_finalize(x, y, other, g); });
  CHECK(!cpu_gd.empty());
  CHECK(error_of([&] { generalized_dice_finalize(xd, yd, other_d, g); }) == cpu_gd);
  const std::string cpu_bd = error_of([&] { bce_dice_finalize(x, m, other, g); });
  CHECK(!cpu_bd.empty());
  CHECK(error_of([&] { bce_dice_finalize(xd, md, other_d, g); }) == cpu_bd);
  SoftDiceOptions<float> none;
  none.reduction = Reduction::none;
  CHECK(error_of([&] { soft_dice_statistics(xd, md, none); }) ==
        error_of([&] { soft_dice_statistics(x, m, none); }));

  // bad labels raise in statistics (the CPU's message) and in finalize
  auto bad = y.clone();
  bad[27] = 3;  // image 1, (1, 2)
  const auto bad_d = gpu(bad);
  const std::string cpu_bad = error_of([&] { softmax_dice_statistics(x, bad); });
  CHECK(cpu_bad.find("target has label 3 at (1,1,2)") != std::string::npos);
  CHECK(error_of([&] { softmax_dice_statistics(xd, bad_d); }) == cpu_bad);
  CHECK(error_of([&] { generalized_dice_statistics(xd, bad_d); }) ==
        error_of([&] { generalized_dice_statistics(x, bad); }));
  const auto good_st = softmax_dice_statistics(xd, yd);
  Tensor<float> gb;
  CHECK(error_of([&] { softmax_dice_finalize(xd, bad_d, good_st, gb); }) ==
        error_of([&] { softmax_dice_finalize(x, bad, softmax_dice_statistics(x, y), g); }));
  const auto good_gst = generalized_dice_statistics(xd, yd);
  CHECK(error_of([&] {
          generalized_dice_finalize(xd, bad_d, good_gst, gb);
        }).find("target has label 3 at (1,1,2)") != std::string::npos);

  // grad on the wrong device
  auto host_grad = Tensor<float>::empty(s);
  const auto st = soft_dice_statistics(xd, md);
  CHECK(error_of([&] { soft_dice_finalize(xd, md, st, host_grad); }).find("grad") !=
        std::string::npos);
  CHECK(error_of([&] { softmax_dice_finalize(xd, yd, good_st, host_grad); }).find("grad") !=
        std::string::npos);
  CHECK(error_of([&] {
          bce_dice_finalize(xd, md, bce_dice_statistics(xd, md), host_grad);
        }).find("grad") != std::string::npos);

  // a bad class weight: statistics checks it on the host copy (the CPU's message), finalize on
  // the device
  auto cw = Tensor<float>::full(Shape{3}, 1.0f);
  cw[1] = -1.0f;
  SoftDiceOptions<float> oc, od;
  oc.class_weight = cw;
  od.class_weight = cw.to(Device::cuda);
  CHECK(error_of([&] { soft_dice_statistics(xd, md, od); }) ==
        error_of([&] { soft_dice_statistics(x, m, oc); }));
  // A bad class weight and a bad label: the class weight is named first, as on the CPU.
  SoftmaxOverlapOptions<float> sc, sd;
  sc.class_weight = cw;
  sd.class_weight = cw.to(Device::cuda);
  const std::string cpu_both = error_of([&] { softmax_dice_statistics(x, bad, sc); });
  CHECK(cpu_both.find("class_weight") != std::string::npos);
  CHECK(error_of([&] { softmax_dice_statistics(xd, bad_d, sd); }) == cpu_both);
  // made with valid class weights of the same shape (the options' digest compares shapes)
  SoftDiceOptions<float> og;
  og.class_weight = gpu(Tensor<float>::full(Shape{3}, 1.0f));
  const auto st_cw = soft_dice_statistics(xd, md, og);
  CHECK(error_of([&] {
          soft_dice_finalize(xd, md, st_cw, gb, od);
        }).find("class_weight holds a negative or non-finite value") != std::string::npos);
}

// Not the split: the forwards of the overlap losses leave their value on the device, so a bad
// label or class weight makes it NaN and never raises, also when an OverlapInfo makes the call
// copy its counts back (an empty policy other than formula); value_and_grad returns a host
// double and raises, with or without info (docs/cuda.md, "Errors").
TEST_CASE("cuda overlap: a bad label or class weight with and without OverlapInfo") {
  SEGLOSS_REQUIRE_GPU();
  const Shape s{2, 3, 4, 5};
  const auto xd = gpu(randn<float>(s, 700));
  const auto md = gpu(mask<float>(s, 701, 0.3));
  auto y = split_labels<int64_t>(s.without(1), 3, 702);
  y[27] = 3;  // image 1, (1, 2)
  const auto bad = gpu(y);
  auto cw = Tensor<float>::full(Shape{3}, 1.0f);
  cw[2] = NAN;
  const auto cwd = cw.to(Device::cuda);
  OverlapInfo info;
  for (OverlapInfo* i : {static_cast<OverlapInfo*>(nullptr), &info}) {
    CAPTURE(i != nullptr);
    SoftmaxOverlapOptions<float> o;
    o.empty = EmptyPolicy::skip;
    Tensor<float> v;
    REQUIRE_NOTHROW(v = softmax_dice(xd, bad, o, i));
    CHECK(std::isnan(v.to(Device::cpu)[0]));
    Tensor<float> g;
    CHECK_THROWS_WITH_AS(softmax_dice_value_and_grad(xd, bad, g, o, i),
                         doctest::Contains("target has label 3 at (1,1,2)"), Error);
    const auto good = gpu(split_labels<int64_t>(s.without(1), 3, 702));
    o.class_weight = cwd;
    REQUIRE_NOTHROW(v = softmax_jaccard(xd, good, o, i));
    CHECK(std::isnan(v.to(Device::cpu)[0]));
    CHECK_THROWS_WITH_AS(softmax_jaccard_value_and_grad(xd, good, g, o, i),
                         doctest::Contains("class_weight holds a negative or non-finite value"),
                         Error);
    SoftDiceOptions<float> so;
    so.empty = EmptyPolicy::skip;
    so.class_weight = cwd;
    REQUIRE_NOTHROW(v = soft_dice(xd, md, so, i));
    CHECK(std::isnan(v.to(Device::cpu)[0]));
    CHECK_THROWS_WITH_AS(soft_dice_value_and_grad(xd, md, g, so, i),
                         doctest::Contains("class_weight holds a negative or non-finite value"),
                         Error);
  }
}

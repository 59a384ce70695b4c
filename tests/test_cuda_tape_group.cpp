// The tape's group primitives (sort_desc, cumsum, adjacent_diff, segment_sum, gather) and
// one_hot / valid_mask on CUDA (core/tape.hpp, docs/cuda.md "The tape's group primitives on
// CUDA"): each against the CPU tape, bit for bit (the same ops in the same order), 10 runs
// bitwise; then every composed loss of losses/composed.hpp on a CUDA tape against the CPU tape.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <utility>
#include <string>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

using namespace segloss;
using namespace segloss::testing;
using segloss::ad::Tape;
using segloss::ad::Var;

namespace {

template <class T>
struct GroupRun {
  Tensor<T> value, grad;  // the op's output and the leaf's gradient, on the CPU
  Tensor<int64_t> perm;   // sort_desc's permutation, on the CPU (undefined for the others)
};

// y = f(leaf) on `device`, then backward from sum(y * w) with a fixed random w, so that every
// output element sends its own gradient back (the gradient of the sum is w on both devices).
template <class T, class F>
GroupRun<T> run_group(const Tensor<T>& x, Device device, F f) {
  Tape<T> tape;
  const Var<T> v = tape.leaf(x.to(device));
  Tensor<int64_t> perm;
  const Var<T> y = f(v, perm);
  CHECK(y.value().device() == device);
  const Tensor<T> w = randn<T>(y.shape(), 77);
  tape.backward(ad::sum(y * tape.constant(w.to(device))));
  CHECK(tape.grad(v).device() == device);
  GroupRun<T> r;
  r.value = y.value().to(Device::cpu);
  r.grad = tape.grad(v).to(Device::cpu);
  if (perm.defined()) {
    CHECK(perm.device() == device);
    r.perm = perm.to(Device::cpu);
  }
  return r;
}

// The op on CUDA gives the CPU's bits (value, gradient, permutation); 10 more runs the same.
template <class T, class F>
void check_group_op(const char* what, const Tensor<T>& x, F f, bool repeat) {
  const std::string name = what;
  INFO(name);
  const GroupRun<T> cpu = run_group(x, Device::cpu, f);
  const GroupRun<T> dev = run_group(x, Device::cuda, f);
  CHECK(same_bits(cpu.value, dev.value));
  CHECK(same_bits(cpu.grad, dev.grad));
  if (cpu.perm.defined()) CHECK(same_bits(cpu.perm, dev.perm));
  if (!repeat) return;
  for (int run = 0; run < 10; ++run) {
    const GroupRun<T> again = run_group(x, Device::cuda, f);
    CHECK(same_bits(again.value, dev.value));
    CHECK(same_bits(again.grad, dev.grad));
    if (dev.perm.defined()) CHECK(same_bits(again.perm, dev.perm));
  }
}

// Values with many ties: drawn from {-1, -0, +0, 0.5, 2, NaN} (NaN optional), as T.
template <class T>
Tensor<T> tied(const Shape& s, uint64_t seed, bool with_nan) {
  const T pool[] = {T(-1), -T(0), T(0), T(0.5), T(2), std::numeric_limits<T>::quiet_NaN()};
  Tensor<T> t = Tensor<T>::empty(s);
  uint64_t state = seed;
  for (auto& v : t) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    v = pool[(state >> 33) % (with_nan ? 6 : 5)];
  }
  return t;
}

// Offsets over n elements with empty groups (at the start, in the middle, at the end) and
// groups of 1, of a few, and of more than a block's 256 threads.
std::vector<int64_t> mixed_offsets(int64_t n) {
  std::vector<int64_t> off = {0, 0, 1, 1, 4, 4, 300, 301};
  int64_t at = 301, step = 37;
  while (at + step < n) {
    at += step;
    off.push_back(at);
    step = step == 37 ? 5 : step == 5 ? 611 : 37;
  }
  off.push_back(n);
  off.push_back(n);
  return off;
}

template <class T>
void check_primitives() {
  const Shape shape{2, 3, 20, 25};  // 3000 elements: several blocks of the elementwise kernels
  const int64_t n = shape.numel();
  const std::vector<int64_t> off = mixed_offsets(n);
  const std::vector<int64_t> one = {0, n}, each = [&] {
    std::vector<int64_t> v;  // every element its own group: many groups, many blocks
    for (int64_t i = 0; i <= 600; ++i) v.push_back(i);
    v.push_back(n);
    return v;
  }();
  const Tensor<T> x = randn<T>(shape, 5), ties = tied<T>(shape, 6, false),
                  nans = tied<T>(shape, 7, true);
  using P = Tensor<int64_t>;
  for (const auto* o : {&off, &one, &each}) {
    const std::vector<int64_t>& g = *o;
    const auto sort = [&g](const Var<T>& v, P& perm) {
      const ad::Sorted<T> s = ad::sort_desc(v, g);
      perm = s.perm;
      return s.values;
    };
    const bool repeat = o == &off;
    check_group_op<T>("sort_desc random", x, sort, false);
    check_group_op<T>("sort_desc ties", ties, sort, repeat);
    check_group_op<T>("sort_desc ties and NaN", nans, sort, false);
    check_group_op<T>(
        "cumsum", x, [&g](const Var<T>& v, P&) { return ad::cumsum(v, g); }, false);
    check_group_op<T>(
        "adjacent_diff", x, [&g](const Var<T>& v, P&) { return ad::adjacent_diff(v, g); }, false);
    check_group_op<T>(
        "segment_sum", x, [&g](const Var<T>& v, P&) { return ad::segment_sum(v, g); }, false);
  }
  // sort_desc's order: descending, NaN first, ties (and -0 / +0) in index order.
  const GroupRun<T> s = run_group(nans, Device::cuda, [&off](const Var<T>& v, P& perm) {
    const ad::Sorted<T> r = ad::sort_desc(v, off);
    perm = r.perm;
    return r.values;
  });
  const auto before = [](T a, T b) {
    return std::isnan(a) ? !std::isnan(b) : !std::isnan(b) && a > b;
  };
  int64_t bad_order = 0;
  for (size_t j = 0; j + 1 < off.size(); ++j)
    for (int64_t k = off[j]; k + 1 < off[j + 1]; ++k) {
      const T a = s.value[k], b = s.value[k + 1];
      if (before(b, a) || (!before(a, b) && s.perm[k] > s.perm[k + 1])) ++bad_order;
    }
  CHECK(bad_order == 0);
  // An empty group sums to 0; the gradient of a group's sum reaches each of its elements.
  const GroupRun<T> seg =
      run_group(x, Device::cuda, [&off](const Var<T>& v, P&) { return ad::segment_sum(v, off); });
  CHECK(seg.value.numel() == static_cast<int64_t>(off.size()) - 1);
  CHECK(seg.value[0] == T(0));
  CHECK(seg.value[static_cast<int64_t>(off.size()) - 2] == T(0));
}

// gather with repeated indices (every element gathered 0 to many times), from a host and from a
// device index; a per-group broadcast (gather of a segment_sum).
template <class T>
void check_gather() {
  const Tensor<T> x = randn<T>({3, 7, 11}, 9);
  const int64_t n = x.numel();
  Tensor<int64_t> index = Tensor<int64_t>::empty(Shape{5, 211});
  uint64_t state = 3;
  for (auto& i : index) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    i = static_cast<int64_t>((state >> 33) % static_cast<uint64_t>(n - 20));  // the last 20: none
  }
  using P = Tensor<int64_t>;
  const Tensor<int64_t> on_gpu = index.to(Device::cuda);
  const GroupRun<T> cpu =
      run_group(x, Device::cpu, [&](const Var<T>& v, P&) { return ad::gather(v, index); });
  const GroupRun<T> host =
      run_group(x, Device::cuda, [&](const Var<T>& v, P&) { return ad::gather(v, index); });
  const GroupRun<T> dev =
      run_group(x, Device::cuda, [&](const Var<T>& v, P&) { return ad::gather(v, on_gpu); });
  CHECK(same_bits(cpu.value, host.value));
  CHECK(same_bits(cpu.grad, host.grad));
  CHECK(same_bits(cpu.value, dev.value));
  CHECK(same_bits(cpu.grad, dev.grad));
  for (int run = 0; run < 10; ++run) {  // the scatter-add's order is fixed: the same bits
    const GroupRun<T> again =
        run_group(x, Device::cuda, [&](const Var<T>& v, P&) { return ad::gather(v, on_gpu); });
    CHECK(same_bits(again.grad, dev.grad));
    CHECK(same_bits(again.value, dev.value));
  }
  // A per-group value broadcast to the group's elements, then the Lovász chain's gather by the
  // permutation of a sort (a device index).
  const std::vector<int64_t> off = {0, 100, 100, 231};
  std::vector<int64_t> group_of;
  for (int64_t j = 0; j + 1 < 4; ++j)
    for (int64_t i = off[j]; i < off[j + 1]; ++i) group_of.push_back(j);
  const Tensor<int64_t> gi = Tensor<int64_t>::from(group_of, x.shape());
  const auto chain = [&](const Var<T>& v, P&) {
    const ad::Sorted<T> s = ad::sort_desc(v, off);
    return ad::gather(ad::segment_sum(v, off), gi) * ad::gather(ad::cumsum(v, off), s.perm);
  };
  check_group_op<T>("segment_sum, gather, sort_desc, cumsum", x, chain, false);
}

}  // namespace

TEST_CASE("cuda tape group: sort_desc, cumsum, adjacent_diff, segment_sum give the CPU's bits") {
  SEGLOSS_REQUIRE_GPU();
  check_primitives<float>();
  check_primitives<double>();
}

TEST_CASE("cuda tape group: gather and its scatter-add backward give the CPU's bits") {
  SEGLOSS_REQUIRE_GPU();
  check_gather<float>();
  check_gather<double>();
}

TEST_CASE("cuda tape group: argument errors are the CPU's, raised before anything runs") {
  SEGLOSS_REQUIRE_CUDA_BUILD();
  const auto fake = unread_cuda_view<float>(Shape{2, 3, 4});
  Tape<float> cpu_tape, tape;
  const Var<float> c = cpu_tape.leaf(Tensor<float>::zeros(Shape{2, 3, 4}));
  const Var<float> x = tape.leaf(fake);
  const auto same_error = [](auto&& on_cpu, auto&& on_cuda) {
    std::string expected;
    try {
      on_cpu();
    } catch (const Error& e) {
      expected = e.what();
    }
    REQUIRE(!expected.empty());
    CHECK_THROWS_WITH_AS(on_cuda(), expected.c_str(), Error);
  };
  for (const std::vector<int64_t>& off :
       {std::vector<int64_t>{0, 23}, std::vector<int64_t>{1, 24}, std::vector<int64_t>{0, 9, 5, 24},
        std::vector<int64_t>{}}) {
    same_error([&] { ad::sort_desc(c, off); }, [&] { ad::sort_desc(x, off); });
    same_error([&] { ad::cumsum(c, off); }, [&] { ad::cumsum(x, off); });
    same_error([&] { ad::adjacent_diff(c, off); }, [&] { ad::adjacent_diff(x, off); });
    same_error([&] { ad::segment_sum(c, off); }, [&] { ad::segment_sum(x, off); });
  }
  const Tensor<int64_t> bad = Tensor<int64_t>::from({0, 5, 24, 1}, Shape{2, 2});
  same_error([&] { ad::gather(c, bad); }, [&] { ad::gather(x, bad); });
  const Tensor<int64_t> negative = Tensor<int64_t>::from({0, -1}, Shape{2});
  same_error([&] { ad::gather(c, negative); }, [&] { ad::gather(x, negative); });
  CHECK_THROWS_WITH_AS(ad::gather(x, Tensor<int64_t>()), "ad::gather: index is undefined", Error);
}

TEST_CASE("cuda tape group: a device index out of range raises the CPU's message") {
  SEGLOSS_REQUIRE_GPU();
  const Tensor<float> x = randn<float>({4, 5}, 1);
  const Tensor<int64_t> bad = Tensor<int64_t>::from({0, 19, 20, 1}, Shape{4});
  Tape<float> cpu_tape, tape;
  CHECK_THROWS_WITH_AS(ad::gather(cpu_tape.leaf(x), bad),
                       "ad::gather: index 20 at (2) is outside [0, 20) of the input (4,5)", Error);
  CHECK_THROWS_WITH_AS(ad::gather(tape.leaf(x.to(Device::cuda)), bad.to(Device::cuda)),
                       "ad::gather: index 20 at (2) is outside [0, 20) of the input (4,5)", Error);
}

namespace {

template <class T, class L>
void check_one_hot() {
  const Tensor<L> y = labels<L>({2, 9, 13}, 5, 31, 0.2, -100);
  const Tensor<L> y7 = labels<L>({3, 70}, 4, 32, 0.2, 7);
  const Tensor<L> yd = y.to(Device::cuda), y7d = y7.to(Device::cuda);
  Tape<T> cpu, dev;
  const Var<T> a = ad::one_hot(cpu, y, 5), b = ad::one_hot(dev, yd, 5);
  CHECK(b.value().device() == Device::cuda);
  CHECK(same_bits(a.value(), b.value()));
  CHECK(same_bits(ad::one_hot(cpu, y7, 4, 7).value(), ad::one_hot(dev, y7d, 4, 7).value()));
  CHECK(same_bits(ad::valid_mask(cpu, y).value(), ad::valid_mask(dev, yd).value()));
  const Var<T> m = ad::valid_mask(dev, y7d, 7);
  CHECK(m.value().device() == Device::cuda);
  CHECK(same_bits(ad::valid_mask(cpu, y7, 7).value(), m.value()));
  // A label outside [0, C) that is not ignore_index: the CPU's message (the first one).
  Tensor<L> bad = y.clone();
  bad[2 * 9 * 13 - 5] = static_cast<L>(-3);
  bad[40] = static_cast<L>(5);
  const char* msg =
      "ad::one_hot: label 5 at (0,3,1) is outside [0, 5) and is not ignore_index -100";
  CHECK_THROWS_WITH_AS(ad::one_hot(cpu, bad, 5), msg, Error);
  CHECK_THROWS_WITH_AS(ad::one_hot(dev, bad.to(Device::cuda), 5), msg, Error);
}

}  // namespace

TEST_CASE("cuda tape group: one_hot and valid_mask of CUDA labels are CUDA constants") {
  SEGLOSS_REQUIRE_GPU();
  check_one_hot<float, int32_t>();
  check_one_hot<float, int64_t>();
  check_one_hot<double, int32_t>();
  check_one_hot<double, int64_t>();
}

// ---------------------------------------------------------------------------------------------
// Every composed loss (losses/composed.hpp) on a CUDA tape against the CPU tape.
// ---------------------------------------------------------------------------------------------

namespace {

// f(tape, leaf, target on the device, device) on a tape whose leaf is x on `device`; backward
// from the loss (a scalar) or from sum(loss * w) (reduction none). Value and gradient on the CPU.
template <class T, class U, class F>
std::pair<Tensor<T>, Tensor<T>> run_composed(const Tensor<T>& x, const Tensor<U>& target,
                                             Device device, F f) {
  Tape<T> tape;
  const Var<T> v = tape.leaf(x.to(device));
  const Var<T> l = f(tape, v, target.to(device), device);
  const Var<T> s = l.value().numel() == 1
                       ? l
                       : ad::sum(l * tape.constant(randn<T>(l.shape(), 55).to(l.value().device())));
  tape.backward(s);
  CHECK(tape.grad(v).device() == device);
  return {l.value().to(Device::cpu), tape.grad(v).to(Device::cpu)};
}

template <class T, class U, class F>
void check_composed(const std::string& what, const Tensor<T>& x, const Tensor<U>& target, F f) {
  INFO(what);
  const auto cpu = run_composed(x, target, Device::cpu, f);
  const auto dev = run_composed(x, target, Device::cuda, f);
  // 1e-5 in float, 1e-12 in double (the sums differ in order between the devices).
  const double tol = sizeof(T) == 4 ? 1e-5 : 1e-12;
  check_parity(cpu.first, dev.first, tol, "value");
  check_parity(cpu.second, dev.second, tol, "grad");
}

const Reduction kReductions[] = {Reduction::mean, Reduction::sum, Reduction::none};

template <class T>
Tensor<T> on(const Tensor<T>& t, Device d) {
  return t.defined() ? t.to(d) : t;
}

template <class T>
void check_binary_composed() {
  const Shape s{2, 3, 5, 6};
  const Tensor<T> x = randn<T>(s, 41, 2.0), z = mask<T>(s, 42);
  const Tensor<T> w = uniform<T>({2, 1, 5, 6}, 43, 0.2, 2.0),
                  cw = Tensor<T>::from({0.5, 1, 2}, {3});
  const Tensor<T> p = uniform<T>(s, 44, 0.05, 0.95);
  for (Reduction r : kReductions) {
    const std::string rs = std::to_string(static_cast<int>(r));
    check_composed("bce_with_logits " + rs, x, z,
                   [&](Tape<T>& t, const Var<T>& v, const Tensor<T>& zz, Device d) {
                     BceWithLogitsOptions<T> o;
                     o.reduction = r;
                     o.weight = on(w, d);
                     o.pos_weight = on(cw, d);
                     o.label_smoothing = 0.1;
                     return composed::bce_with_logits(t, v, zz, o);
                   });
    check_composed("binary_cross_entropy " + rs, p, z,
                   [&](Tape<T>& t, const Var<T>& v, const Tensor<T>& zz, Device d) {
                     BinaryCrossEntropyOptions<T> o;
                     o.reduction = r;
                     o.weight = on(w, d);
                     return composed::binary_cross_entropy(t, v, zz, o);
                   });
    check_composed("sigmoid_focal " + rs, x, z,
                   [&](Tape<T>& t, const Var<T>& v, const Tensor<T>& zz, Device d) {
                     SigmoidFocalOptions<T> o;
                     o.reduction = r;
                     o.weight = on(w, d);
                     return composed::sigmoid_focal(t, v, zz, o);
                   });
    for (int variant = 0; variant < 2; ++variant) {
      const auto overlap = [&](auto& o, Device d) {
        o.reduction = r;
        if (variant == 1) {
          o.per_image = false;
          o.weight = on(w, d);
          o.class_weight = on(cw, d);
          o.empty = EmptyPolicy::one;
          o.squared = r != Reduction::none;
          o.include_background = false;
        }
      };
      const std::string vs = rs + " variant " + std::to_string(variant);
      check_composed("soft_dice " + vs, x, z,
                     [&](Tape<T>& t, const Var<T>& v, const Tensor<T>& zz, Device d) {
                       SoftDiceOptions<T> o;
                       overlap(o, d);
                       return composed::soft_dice(t, v, zz, o);
                     });
      check_composed("soft_jaccard " + vs, x, z,
                     [&](Tape<T>& t, const Var<T>& v, const Tensor<T>& zz, Device d) {
                       SoftJaccardOptions<T> o;
                       overlap(o, d);
                       return composed::soft_jaccard(t, v, zz, o);
                     });
      check_composed("tversky " + vs, x, z,
                     [&](Tape<T>& t, const Var<T>& v, const Tensor<T>& zz, Device d) {
                       TverskyOptions<T> o;
                       overlap(o, d);
                       o.squared = false;
                       o.alpha = 0.3;
                       o.beta = 0.7;
                       return composed::tversky(t, v, zz, o);
                     });
    }
    if (r == Reduction::none) continue;
    check_composed("bce_dice " + rs, x, z,
                   [&](Tape<T>& t, const Var<T>& v, const Tensor<T>& zz, Device d) {
                     BceDiceOptions<T> o;
                     o.bce.reduction = o.dice.reduction = r;
                     o.dice.class_weight = on(cw, d);
                     return composed::bce_dice(t, v, zz, o);
                   });
  }
}

template <class T, class L>
void check_label_composed() {
  const Shape s{2, 4, 5, 6};
  const Tensor<T> x = randn<T>(s, 51, 2.0);
  const Tensor<L> y = labels<L>({2, 5, 6}, 4, 52, 0.2);
  const Tensor<T> cw = Tensor<T>::from({0.5, 1, 2, 0.25}, {4});
  using V = Var<T>;
  for (Reduction r : kReductions) {
    const std::string rs = std::to_string(static_cast<int>(r));
    check_composed("cross_entropy " + rs, x, y,
                   [&](Tape<T>& t, const V& v, const Tensor<L>& yy, Device d) {
                     CrossEntropyOptions<T> o;
                     o.reduction = r;
                     o.weight = on(cw, d);
                     o.label_smoothing = 0.1;
                     return composed::cross_entropy(t, v, yy, o);
                   });
    check_composed("softmax_focal " + rs, x, y,
                   [&](Tape<T>& t, const V& v, const Tensor<L>& yy, Device d) {
                     SoftmaxFocalOptions<T> o;
                     o.reduction = r;
                     o.alpha = on(cw, d);
                     return composed::softmax_focal(t, v, yy, o);
                   });
    check_composed("softmax_dice " + rs, x, y,
                   [&](Tape<T>& t, const V& v, const Tensor<L>& yy, Device d) {
                     SoftmaxOverlapOptions<T> o;
                     o.reduction = r;
                     o.class_weight = on(cw, d);
                     o.empty = EmptyPolicy::skip;
                     return composed::softmax_dice(t, v, yy, o);
                   });
    check_composed("softmax_jaccard " + rs, x, y,
                   [&](Tape<T>& t, const V& v, const Tensor<L>& yy, Device) {
                     SoftmaxOverlapOptions<T> o;
                     o.reduction = r;
                     o.per_image = false;
                     return composed::softmax_jaccard(t, v, yy, o);
                   });
    check_composed("softmax_tversky " + rs, x, y,
                   [&](Tape<T>& t, const V& v, const Tensor<L>& yy, Device) {
                     SoftmaxTverskyOptions<T> o;
                     o.reduction = r;
                     o.alpha = 0.2;
                     o.beta = 0.8;
                     return composed::softmax_tversky(t, v, yy, o);
                   });
    check_composed("generalized_dice " + rs, x, y,
                   [&](Tape<T>& t, const V& v, const Tensor<L>& yy, Device) {
                     GeneralizedDiceOptions<T> o;
                     o.reduction = r;
                     return composed::generalized_dice(t, v, yy, o);
                   });
    for (int variant = 0; variant < 3; ++variant)
      check_composed("lovasz_softmax " + rs + " variant " + std::to_string(variant), x, y,
                     [&](Tape<T>& t, const V& v, const Tensor<L>& yy, Device) {
                       LovaszSoftmaxOptions<T> o;
                       o.reduction = r;
                       o.per_image = variant != 1;
                       if (variant == 1) o.classes = LovaszClasses::all;
                       if (variant == 2) o.class_list = {3, 1};
                       return composed::lovasz_softmax(t, v, yy, o);
                     });
    if (r == Reduction::none) continue;
    check_composed("ce_dice " + rs, x, y, [&](Tape<T>& t, const V& v, const Tensor<L>& yy, Device) {
      CeDiceOptions<T> o;
      o.ce.reduction = o.dice.reduction = r;
      return composed::ce_dice(t, v, yy, o);
    });
    check_composed("dice_focal " + rs, x, y,
                   [&](Tape<T>& t, const V& v, const Tensor<L>& yy, Device) {
                     DiceFocalOptions<T> o;
                     o.dice.reduction = o.focal.reduction = r;
                     return composed::dice_focal(t, v, yy, o);
                   });
  }
  // ignore_negative (labels -1 ignored) and an all-ignored image for lovasz_softmax.
  Tensor<L> neg = y.clone();
  for (int64_t i = 0; i < neg.numel(); i += 7) neg[i] = static_cast<L>(-1);
  check_composed("cross_entropy ignore_negative", x, neg,
                 [&](Tape<T>& t, const V& v, const Tensor<L>& yy, Device) {
                   CrossEntropyOptions<T> o;
                   o.ignore_negative = true;
                   return composed::cross_entropy(t, v, yy, o);
                 });
  Tensor<L> half = y.clone();
  for (int64_t i = 0; i < 30; ++i) half[i] = static_cast<L>(-100);
  check_composed("lovasz_softmax image 0 ignored", x, half,
                 [&](Tape<T>& t, const V& v, const Tensor<L>& yy, Device) {
                   LovaszSoftmaxOptions<T> o;
                   o.per_image = true;
                   o.reduction = Reduction::none;
                   return composed::lovasz_softmax(t, v, yy, o);
                 });
}

template <class T>
void check_probability_composed() {
  const Shape s{2, 3, 4, 5};
  const Tensor<T> x = randn<T>(s, 61, 2.0), q = normalized_uniform<T>(s, 62);
  using V = Var<T>;
  for (Reduction r : {Reduction::mean, Reduction::sum}) {
    const std::string rs = std::to_string(static_cast<int>(r));
    check_composed("cross_entropy probabilities " + rs, x, q,
                   [&](Tape<T>& t, const V& v, const Tensor<T>& qq, Device) {
                     CrossEntropyOptions<T> o;
                     o.reduction = r;
                     return composed::cross_entropy(t, v, qq, o);
                   });
    check_composed("softmax_dice probabilities " + rs, x, q,
                   [&](Tape<T>& t, const V& v, const Tensor<T>& qq, Device) {
                     SoftmaxOverlapOptions<T> o;
                     o.reduction = r;
                     return composed::softmax_dice(t, v, qq, o);
                   });
    check_composed("generalized_dice probabilities " + rs, x, q,
                   [&](Tape<T>& t, const V& v, const Tensor<T>& qq, Device) {
                     GeneralizedDiceOptions<T> o;
                     o.reduction = r;
                     o.w_type = GeneralizedDiceWeight::simple;
                     return composed::generalized_dice(t, v, qq, o);
                   });
    check_composed("ce_dice probabilities " + rs, x, q,
                   [&](Tape<T>& t, const V& v, const Tensor<T>& qq, Device) {
                     CeDiceOptions<T> o;
                     o.ce.reduction = o.dice.reduction = r;
                     return composed::ce_dice(t, v, qq, o);
                   });
  }
  // lovasz_hinge: per image or over the batch, with and without ignore (label 2 ignored).
  const Tensor<T> hx = randn<T>({3, 1, 7, 9}, 63, 1.5);
  Tensor<T> hz = mask<T>({3, 1, 7, 9}, 64);
  for (int64_t i = 0; i < hz.numel(); i += 5) hz[i] = T(2);
  for (Reduction r : kReductions)
    for (int variant = 0; variant < 3; ++variant)
      check_composed("lovasz_hinge " + std::to_string(static_cast<int>(r)) + " variant " +
                         std::to_string(variant),
                     hx, variant == 0 ? mask<T>({3, 1, 7, 9}, 64) : hz,
                     [&](Tape<T>& t, const V& v, const Tensor<T>& zz, Device) {
                       LovaszHingeOptions<T> o;
                       o.reduction = r;
                       o.per_image = variant != 2;
                       if (variant != 0) o.ignore = 2.0;
                       return composed::lovasz_hinge(t, v, zz, o);
                     });
}

}  // namespace

TEST_CASE("cuda tape group: the binary composed losses on a CUDA tape equal the CPU tape") {
  SEGLOSS_REQUIRE_GPU();
  check_binary_composed<float>();
  check_binary_composed<double>();
}

TEST_CASE("cuda tape group: the label composed losses on a CUDA tape equal the CPU tape") {
  SEGLOSS_REQUIRE_GPU();
  check_label_composed<float, int32_t>();
  check_label_composed<float, int64_t>();
  check_label_composed<double, int32_t>();
  check_label_composed<double, int64_t>();
}

TEST_CASE("cuda tape group: probability targets and lovasz_hinge on a CUDA tape equal the CPU") {
  SEGLOSS_REQUIRE_GPU();
  check_probability_composed<float>();
  check_probability_composed<double>();
}

TEST_CASE("cuda tape group: a bad CUDA target in a composed loss raises the CPU's message") {
  SEGLOSS_REQUIRE_GPU();
  const Tensor<double> x = randn<double>({2, 3, 4, 4}, 71);
  Tensor<int64_t> y = labels<int64_t>({2, 4, 4}, 3, 72);
  y[9] = 3;
  Tensor<double> z = mask<double>({2, 3, 4, 4}, 73);
  z[5] = 0.5;
  const auto same_error = [](auto&& f) {
    std::string expected;
    try {
      f(Device::cpu);
    } catch (const Error& e) {
      expected = e.what();
    }
    REQUIRE(!expected.empty());
    CHECK_THROWS_WITH_AS(f(Device::cuda), expected.c_str(), Error);
  };
  same_error([&](Device d) {
    Tape<double> t;
    composed::lovasz_softmax(t, t.leaf(x.to(d)), y.to(d));
  });
  same_error([&](Device d) {
    Tape<double> t;
    composed::cross_entropy(t, t.leaf(x.to(d)), y.to(d));
  });
  same_error([&](Device d) {
    Tape<double> t;
    composed::lovasz_hinge(t, t.leaf(x.to(d)), z.to(d));
  });
  same_error([&](Device d) {
    Tape<double> t;
    Tensor<double> probs = mask<double>({2, 3, 4, 4}, 74);
    probs[7] = 1.5;
    composed::binary_cross_entropy(t, t.leaf(probs.to(d)), probs.to(d));
  });
}

TEST_CASE("cuda tape group: the composed Lovasz losses on a CUDA tape are bitwise on repeat") {
  SEGLOSS_REQUIRE_GPU();
  const Tensor<float> x = randn<float>({2, 4, 9, 11}, 81, 2.0);
  const Tensor<int32_t> y = labels<int32_t>({2, 9, 11}, 4, 82, 0.1);
  const Tensor<float> hx = randn<float>({2, 1, 9, 11}, 83), hz = mask<float>({2, 1, 9, 11}, 84);
  const auto softmax = [&](Tape<float>& t, const Var<float>& v, const Tensor<int32_t>& yy, Device) {
    return composed::lovasz_softmax(t, v, yy);
  };
  const auto hinge = [&](Tape<float>& t, const Var<float>& v, const Tensor<float>& zz, Device) {
    return composed::lovasz_hinge(t, v, zz);
  };
  const auto first_s = run_composed(x, y, Device::cuda, softmax);
  const auto first_h = run_composed(hx, hz, Device::cuda, hinge);
  for (int run = 0; run < 10; ++run) {
    const auto s = run_composed(x, y, Device::cuda, softmax);
    const auto h = run_composed(hx, hz, Device::cuda, hinge);
    CHECK(same_bits(s.first, first_s.first));
    CHECK(same_bits(s.second, first_s.second));
    CHECK(same_bits(h.first, first_h.first));
    CHECK(same_bits(h.second, first_h.second));
  }
}

// The sigmoid overlap losses' passes with 16-byte loads and stores (backends/cuda/runtime.cuh
// quad_pass_kernel): they run where every access is whole and aligned (planes of a multiple of 4
// elements, every array 16-byte aligned), with the bits of aligned copies at other addresses;
// elsewhere (a view off a 16-byte boundary, odd planes) the scalar pass runs, with the bits of
// quad_loads off; both agree with the CPU within the parity tolerance; the gradient pass from
// the end (after the statistics pass) gives the bits of the forward order. bce_with_logits' pass
// takes the quad kernel too where the call writes only a gradient (session 17). Each test skips
// with a message where no GPU is.
#include <doctest/doctest.h>

#include <array>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_check.hpp"
#include "helpers.hpp"

#include <segloss/core/cuda_internal.hpp>

using namespace segloss;
using namespace segloss::testing;

namespace {

struct RestoreQuads {
  ~RestoreQuads() {
    cuda::detail::set_quad_loads(true);
    cuda::detail::set_gradient_from_the_end(true);
    cuda::detail::set_bce_value_in_gradient(true);
    cuda::detail::set_bce_value_in_gradient_weighted(true);
    cuda::detail::set_target_bits(true);
  }
};

// A device copy of t that starts `offset` elements past a 16-byte boundary (the storage is a
// cudaMalloc'd buffer, 256-byte aligned).
template <class T>
struct Shifted {
  Tensor<T> storage, view;
  Shifted(const Tensor<T>& t, int64_t offset) {
    storage = Tensor<T>::zeros(Shape{t.numel() + 8}, Device::cuda);
    view = Tensor<T>::view(storage.data() + offset, t.shape(), Device::cuda);
    view.copy_from(gpu(t));
  }
};

// Every sigmoid overlap entry point the passes serve, on x and z (device tensors): the values'
// and gradients' bits, in a fixed order, in three lists by what decides their kernels: [0]
// bce_dice's weight-free calls into a grad at grad_offset (x, z and the grad's alignment: its
// BCE value may be summed in the gradient pass), [1] the other weight-free calls (x and z's:
// soft_dice and Tversky sum nothing in their gradient pass, the forwards and bce_dice's backward
// write no grad or one of their own), [2] the calls with a pixel or BCE weight (the scalar
// passes always).
template <class T>
std::array<std::vector<std::vector<uint64_t>>, 3> overlap_bits(const Tensor<T>& x,
                                                               const Tensor<T>& z,
                                                               int64_t grad_offset,
                                                               const Tensor<T>& w) {
  std::array<std::vector<std::vector<uint64_t>>, 3> got;
  Shifted<T> g(Tensor<T>::zeros(x.shape()), grad_offset);
  Tensor<T> value = Tensor<T>::empty(Shape{}, Device::cuda);
  for (int variant = 0; variant < 3; ++variant) {
    SoftDiceOptions<T> o;
    o.squared = variant == 1;
    o.per_image = variant != 2;
    if (variant == 2) o.weight = w;
    auto& into = got[variant == 2 ? 2 : 1];
    auto& own = got[variant == 2 ? 2 : 1];
    into.push_back(bits_of(soft_dice_value_and_grad(x, z, g.view, o)));
    into.push_back(bits_of(g.view));
    soft_dice_value_and_grad(x, z, g.view, value, o);
    into.push_back(bits_of(value));
    own.push_back(bits_of(soft_dice(x, z, o)));
    TverskyOptions<T> to;
    to.alpha = T(0.3);
    to.beta = T(0.7);
    got[1].push_back(bits_of(tversky_value_and_grad(x, z, g.view, to)));  // no weight
    got[1].push_back(bits_of(g.view));
  }
  for (int schedule = 0; schedule < 2; ++schedule) {
    cuda::detail::set_bce_value_in_gradient(schedule == 1);
    cuda::detail::set_bce_value_in_gradient_weighted(schedule == 1);
    for (int weighted = 0; weighted < 2; ++weighted) {
      auto& into = got[weighted ? 2 : 0];
      auto& own = got[weighted ? 2 : 1];
      BceDiceOptions<T> o;
      if (weighted) o.bce.weight = w;
      BceDiceParts p;
      into.push_back(bits_of(bce_dice_value_and_grad(x, z, g.view, o, &p)));
      into.push_back(bits_of(g.view));
      into.push_back(bits_of(p.bce));
      into.push_back(bits_of(p.dice));
      bce_dice_value_and_grad(x, z, g.view, value, o);
      into.push_back(bits_of(value));
      own.push_back(bits_of(bce_dice(x, z, o)));
      const Tensor<T> up = Tensor<T>::full(Shape{}, T(0.75), Device::cuda);
      own.push_back(bits_of(bce_dice_backward(x, z, up, o)));
    }
  }
  cuda::detail::set_bce_value_in_gradient(true);
  cuda::detail::set_bce_value_in_gradient_weighted(true);
  return got;
}

// On the inputs at offsets (ox, oz) elements from a 16-byte boundary and the gradient at og: the
// bits of the quad passes (aligned copies at offset 0) where the call is in float without a
// weight, the planes' size is a multiple of 4 and every array that decides (above) is 16-byte
// aligned (an offset of 4 floats), else those of the scalar passes (quad_loads off, offset 0).
template <class T>
void quads_where_aligned(const Shape& s) {
  CAPTURE(s);
  const Tensor<T> x = randn<T>(s, 71, 3.0), z = mask<T>(s, 72);
  const Tensor<T> w = gpu(uniform<T>(s, 73, 0.5, 2.0));
  const Shifted<T> x0(x, 0), z0(z, 0);
  const auto quads = overlap_bits<T>(x0.view, z0.view, 0, w);
  cuda::detail::set_quad_loads(false);
  const auto scalar = overlap_bits<T>(x0.view, z0.view, 0, w);
  cuda::detail::set_quad_loads(true);
  const bool whole = s.numel() / (s[0] * s[1]) % 4 == 0;
  constexpr bool kFloat = std::is_same_v<T, float>;  // double runs the scalar passes
  // Where the quad kernel runs on large planes, its sums differ from the scalar kernel's in the
  // last bits (another cut), so the checks below tell the two apart: the values in double
  // (value_and_grad's) show it; a float value or gradient may round the difference away.
  if (kFloat && whole && s.numel() > 100000) {
    CHECK(quads[0] != scalar[0]);
    CHECK(quads[1] != scalar[1]);
  }
  CHECK(quads[2] == scalar[2]);  // the weighted calls: the scalar passes either way
  if (!kFloat) CHECK(quads == scalar);
  struct Offsets {
    int64_t x, z, g;
  };
  for (const Offsets o : {Offsets{4, 4, 4}, Offsets{4, 0, 8}, Offsets{1, 0, 0}, Offsets{0, 3, 0},
                          Offsets{0, 0, 2}, Offsets{2, 2, 2}, Offsets{0, 0, 1}}) {
    CAPTURE(o.x);
    CAPTURE(o.z);
    CAPTURE(o.g);
    const Shifted<T> xs(x, o.x), zs(z, o.z);
    const auto got = overlap_bits<T>(xs.view, zs.view, o.g, w);
    // 16 bytes: 4 floats, 2 doubles.
    const auto on_16 = [](int64_t offset) { return offset * sizeof(T) % 16 == 0; };
    const bool inputs_aligned = on_16(o.x) && on_16(o.z);
    for (int kind = 0; kind < 3; ++kind) {
      CAPTURE(kind);
      const bool aligned = kFloat && kind != 2 && inputs_aligned && (kind == 1 || on_16(o.g));
      const auto& want = (whole && aligned ? quads : scalar)[static_cast<size_t>(kind)];
      REQUIRE(got[static_cast<size_t>(kind)].size() == want.size());
      for (size_t k = 0; k < want.size(); ++k) {
        CAPTURE(k);
        CHECK(got[static_cast<size_t>(kind)][k] == want[k]);
      }
    }
  }
}

// bce_with_logits' calls on x and z (device tensors) into a grad at grad_offset, in two lists:
// [0] the values of the plain pass (a gradient and nothing else per element, no weight:
// value_and_grad with mean, sum, pos_weight, label smoothing, and its device-value form), whose
// kernel x, z and the grad's alignment decide; [1] the bits the kernel does not change: every
// gradient (each element's own math, with no sum: value_and_grad's and backward's, in either
// kernel) and the general pass's values (forwards, reduction none, a weight).
template <class T>
std::array<std::vector<std::vector<uint64_t>>, 2> bce_bits(const Tensor<T>& x, const Tensor<T>& z,
                                                           int64_t grad_offset,
                                                           const Tensor<T>& w) {
  std::array<std::vector<std::vector<uint64_t>>, 2> got;
  Shifted<T> g(Tensor<T>::zeros(x.shape()), grad_offset);
  Tensor<T> value = Tensor<T>::empty(Shape{}, Device::cuda);
  const Tensor<T> up = Tensor<T>::full(Shape{}, T(0.75), Device::cuda);
  for (int variant = 0; variant < 4; ++variant) {
    BceWithLogitsOptions<T> o;
    if (variant == 1) o.reduction = Reduction::sum;
    if (variant == 2) o.pos_weight = Tensor<T>::full(Shape{x.shape()[1]}, T(2.5), Device::cuda);
    if (variant == 3) o.label_smoothing = 0.1;
    got[0].push_back(bits_of(bce_with_logits_value_and_grad(x, z, g.view, o)));
    got[1].push_back(bits_of(g.view));
    bce_with_logits_value_and_grad(x, z, g.view, value, o);
    got[0].push_back(bits_of(value));
    got[1].push_back(bits_of(g.view));
    got[1].push_back(bits_of(bce_with_logits(x, z, o)));
    got[1].push_back(bits_of(bce_with_logits_backward(x, z, up, o)));
  }
  BceWithLogitsOptions<T> none;
  none.reduction = Reduction::none;
  got[1].push_back(bits_of(bce_with_logits(x, z, none)));
  got[1].push_back(
      bits_of(bce_with_logits_backward(x, z, gpu(Tensor<T>::full(x.shape(), T(0.5))), none)));
  BceWithLogitsOptions<T> weighted;
  weighted.weight = w;
  got[1].push_back(bits_of(bce_with_logits_value_and_grad(x, z, g.view, weighted)));
  got[1].push_back(bits_of(g.view));
  return got;
}

}  // namespace

TEST_CASE("cuda overlap passes: the quad pass where every access is aligned, the scalar one else") {
  SEGLOSS_REQUIRE_GPU();
  RestoreQuads restore;
  // Planes of a multiple of 4 elements (several parts per plane, a 3D volume, one quad) and not
  // (one part with a tail, odd planes over several parts, fewer elements than a quad).
  for (const Shape& s : {Shape{2, 2, 300, 302}, Shape{1, 2, 4, 6, 7}, Shape{1, 1, 1, 4},
                         Shape{2, 3, 17, 19}, Shape{2, 2, 301, 301}, Shape{1, 1, 1, 3}}) {
    quads_where_aligned<float>(s);
    if (s.numel() < 100000) quads_where_aligned<double>(s);  // scalar passes; the emulator's time
  }
}

TEST_CASE("cuda overlap passes: the gradient pass from the end gives the forward order's bits") {
  // The gradient pass after the statistics pass runs its blocks from the last range
  // (gradient_from_the_end): each range's partials (bce_dice's BCE value) in the same place.
  SEGLOSS_REQUIRE_GPU();
  RestoreQuads restore;
  for (const Shape& s : {Shape{2, 3, 16, 20}, Shape{2, 2, 300, 302}}) {
    CAPTURE(s);
    const Tensor<float> x = gpu(randn<float>(s, 75, 3.0)), z = gpu(mask<float>(s, 76));
    const Tensor<float> w = gpu(uniform<float>(s, 77, 0.5, 2.0));
    cuda::detail::set_gradient_from_the_end(false);
    const auto want = overlap_bits<float>(x, z, 0, w);
    cuda::detail::set_gradient_from_the_end(true);
    const auto got = overlap_bits<float>(x, z, 0, w);
    CHECK(got == want);
  }
  // Each range's BCE partial in its own place: three float planes of 16 elements (the quad pass)
  // whose BCE sums S0 > 2^60 and S1, S2 ~ 96 add to other bits in plane order than in the reverse
  // order (checked below on the CPU's per-plane sums), so a pass from the end that wrote its
  // partials where its block index points (plane 2's sum in plane 0's place) gives another value.
  std::vector<float> hx(48, -6.0f);
  for (int i = 0; i < 16; ++i) hx[static_cast<size_t>(i)] = -8e16f;
  const Tensor<float> x = Tensor<float>::from(hx, Shape{3, 1, 4, 4});
  const Tensor<float> z = Tensor<float>::full(Shape{3, 1, 4, 4}, 1.0);
  double plane_sum[3];
  for (int64_t q = 0; q < 3; ++q) {
    const Tensor<float> xq = Tensor<float>::view(x.data() + 16 * q, Shape{1, 1, 4, 4});
    const Tensor<float> zq = Tensor<float>::view(z.data() + 16 * q, Shape{1, 1, 4, 4});
    BceWithLogitsOptions<float> sum;
    sum.reduction = Reduction::sum;
    plane_sum[q] = bce_with_logits(xq, zq, sum)[0];
  }
  REQUIRE((plane_sum[0] + plane_sum[1]) + plane_sum[2] !=
          (plane_sum[2] + plane_sum[1]) + plane_sum[0]);
  const Tensor<float> xd = gpu(x), zd = gpu(z);
  double value[2];
  std::vector<uint64_t> grad[2];
  for (int from_the_end = 0; from_the_end < 2; ++from_the_end) {
    cuda::detail::set_gradient_from_the_end(from_the_end == 1);
    Tensor<float> g;
    value[from_the_end] = bce_dice_value_and_grad(xd, zd, g);
    grad[from_the_end] = bits_of(g);
  }
  CHECK(bits_of(value[0]) == bits_of(value[1]));
  CHECK(grad[0] == grad[1]);
}

TEST_CASE(
    "cuda overlap passes: the quad pass runs by default, and both passes agree with the CPU") {
  SEGLOSS_REQUIRE_GPU();
  RestoreQuads restore;
  for (const Shape& s :
       {Shape{2, 3, 16, 20}, Shape{2, 3, 17, 19}, Shape{2, 1, 300, 301}, Shape{1, 1, 1, 1}}) {
    CAPTURE(s);
    const Tensor<float> x = randn<float>(s, 81, 3.0), z = mask<float>(s, 82);
    const Tensor<float> xd = gpu(x), zd = gpu(z);
    SoftDiceOptions<float> per_plane;
    per_plane.per_image = true;
    per_plane.reduction = Reduction::none;
    const Tensor<float> cpu_scores = soft_dice(x, z, per_plane);
    Tensor<float> g_cpu;
    const double cpu_bd = bce_dice_value_and_grad(x, z, g_cpu);
    std::vector<uint64_t> scores_bits[2], dice_bits[2], bce_bits[2];
    for (int quads = 0; quads < 2; ++quads) {
      CAPTURE(quads);
      cuda::detail::set_quad_loads(quads == 1);
      const Tensor<float> scores = soft_dice(xd, zd, per_plane);
      check_parity(cpu_scores, scores, parity_tol<float>(), "soft_dice scores");
      Tensor<float> g;
      BceDiceParts parts;
      const double bd = bce_dice_value_and_grad(xd, zd, g, {}, &parts);
      CHECK(bd == doctest::Approx(cpu_bd).epsilon(parity_tol<float>()));
      check_parity(g_cpu, g, parity_tol<float>(), "bce_dice grad");
      scores_bits[quads] = bits_of(scores);
      dice_bits[quads] = bits_of(parts.dice);  // from the statistics pass's sums
      bce_bits[quads] = bits_of(parts.bce);    // summed in the gradient pass (the default)
    }
    // Which pass ran: the two cut each plane's sums differently (a thread adds 4 consecutive
    // elements and the 4 at +1024 in one kernel, elements 256 apart in the other, in float before
    // double), so on 90,300 elements per plane the sums differ in their last bits. Were the switch
    // ignored, or the quad pass never chosen for the statistics pass or for the gradient pass, one
    // of these would have the same bits both ways.
    if (s[2] == 300) {
      CHECK(dice_bits[0] != dice_bits[1]);
      CHECK(bce_bits[0] != bce_bits[1]);
    }
  }
}

TEST_CASE("cuda plane_grid: ranges of a multiple of 4 elements, none empty, covering each plane") {
  // Host arithmetic only (core/cuda_internal.hpp): runs without a GPU. part_size rounds up to a
  // multiple of 4 (quad_pass_kernel's ranges start on a quad); that rounding must not leave a
  // last part empty or past the plane (3 planes of 4,443,657 elements did: 1,056 parts of 4,212).
  for (int64_t planes : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{5}, int64_t{64}, int64_t{3168},
                         int64_t{5000}}) {
    std::vector<int64_t> sizes = {0, 1, 3, 4, 5, 4095, 4096, 4097, 90601, 4443657, 1 << 20};
    for (int64_t p = 1; p < 300000; p += 997) sizes.push_back(p);
    for (int64_t p = 12960000; p < 12990000; p += 331) sizes.push_back(p);
    for (const int64_t size : sizes) {
      const cuda::detail::PlaneGrid g = cuda::detail::plane_grid(planes, size);
      CAPTURE(planes);
      CAPTURE(size);
      REQUIRE(g.parts >= 1);
      CHECK(g.part_size % 4 == 0);
      CHECK(g.blocks() <= std::max<int64_t>(cuda::detail::kTargetBlocks, planes));
      if (size > 0) {
        CHECK((g.parts - 1) * g.part_size < size);  // the last part has elements
        CHECK(g.parts * g.part_size >= size);       // the parts cover the plane
      }
    }
  }
}

TEST_CASE(
    "cuda bce_with_logits: the quad pass for a plain gradient where every access is aligned") {
  // BceBody's plain form (session 17): a call that writes only a gradient (value_and_grad without
  // a weight, backward after a mean or sum, the split's finalize), in float, runs quad_pass_kernel
  // where x, z and the gradient are 16-byte aligned and the planes hold a multiple of 4 elements;
  // elsewhere, and for every other call, the scalar pass with the general body. Each value's bits
  // are those of aligned copies (quads) or of quad_loads off (scalar); no gradient's bits change;
  // both kernels agree with the CPU.
  SEGLOSS_REQUIRE_GPU();
  RestoreQuads restore;
  for (const Shape& s :
       {Shape{2, 2, 300, 302}, Shape{2, 3, 17, 19}, Shape{1, 1, 1, 4}, Shape{2, 2, 301, 301}}) {
    CAPTURE(s);
    const Tensor<float> x = randn<float>(s, 91, 3.0), z = mask<float>(s, 92);
    const Tensor<float> w = gpu(uniform<float>(s, 93, 0.5, 2.0));
    const Shifted<float> x0(x, 0), z0(z, 0);
    const auto quads = bce_bits<float>(x0.view, z0.view, 0, w);
    cuda::detail::set_quad_loads(false);
    const auto scalar = bce_bits<float>(x0.view, z0.view, 0, w);
    cuda::detail::set_quad_loads(true);
    const bool whole = s.numel() / (s[0] * s[1]) % 4 == 0;
    // The quad pass cuts each plane's sum otherwise (4 consecutive elements per thread, in
    // float before double): on 90,600 elements per plane the values' bits differ. Were the plain
    // body never chosen, or the switch ignored, they would be equal.
    if (whole && s.numel() > 100000) CHECK(quads[0] != scalar[0]);
    if (!whole) CHECK(quads[0] == scalar[0]);
    CHECK(quads[1] == scalar[1]);
    // Both against the CPU.
    Tensor<float> g_cpu;
    const double cpu_value = bce_with_logits_value_and_grad(x, z, g_cpu);
    for (int on = 0; on < 2; ++on) {
      CAPTURE(on);
      cuda::detail::set_quad_loads(on == 1);
      Tensor<float> g;
      const double v = bce_with_logits_value_and_grad(x0.view, z0.view, g);
      CHECK(v == doctest::Approx(cpu_value).epsilon(parity_tol<float>()));
      check_parity(g_cpu, g, parity_tol<float>(), "bce_with_logits grad");
    }
    cuda::detail::set_quad_loads(true);
    struct Offsets {
      int64_t x, z, g;
    };
    for (const Offsets o : {Offsets{4, 4, 4}, Offsets{4, 0, 8}, Offsets{1, 0, 0}, Offsets{0, 3, 0},
                            Offsets{0, 0, 2}, Offsets{0, 0, 1}}) {
      CAPTURE(o.x);
      CAPTURE(o.z);
      CAPTURE(o.g);
      const Shifted<float> xs(x, o.x), zs(z, o.z);
      const auto got = bce_bits<float>(xs.view, zs.view, o.g, w);
      const bool aligned = o.x % 4 == 0 && o.z % 4 == 0 && o.g % 4 == 0;
      CHECK(got[0] == (whole && aligned ? quads : scalar)[0]);
      CHECK(got[1] == scalar[1]);
    }
  }
}

TEST_CASE("cuda overlap passes: binary targets read as bits give every result's bits") {
  // The statistics pass writes the targets as bits where a thread's are all +0.0 or 1.0, and the
  // gradient pass after it reads them instead (runtime.cuh TargetBits): binary, soft and mixed
  // targets (a few non-binary entries, -0.0 and NaN among them, so that some threads of a block
  // read bits and others the targets), every entry point, the same bits with the switch off.
  SEGLOSS_REQUIRE_GPU();
  RestoreQuads restore;
  for (const Shape& s : {Shape{2, 2, 300, 302}, Shape{2, 3, 16, 20}, Shape{1, 2, 4, 6, 8}}) {
    CAPTURE(s);
    const Tensor<float> x = gpu(randn<float>(s, 101, 3.0));
    const Tensor<float> w = gpu(uniform<float>(s, 102, 0.5, 2.0));
    Tensor<float> mixed = mask<float>(s, 103);
    const int64_t n = mixed.numel();
    for (const int64_t i : {int64_t{5}, n / 3, n / 2, n - 1}) mixed.data()[i] = 0.5f;
    mixed.data()[n / 4] = -0.0f;
    mixed.data()[n / 5] = std::numeric_limits<float>::quiet_NaN();
    const Tensor<float> targets[] = {gpu(mask<float>(s, 104)),
                                     gpu(uniform<float>(s, 105, 0.0, 1.0)), gpu(mixed)};
    // Jaccard and probabilities (Activation::none: the probability passes) besides.
    const Tensor<float> p = gpu(uniform<float>(s, 106, 0.0, 1.0));
    const auto more_bits = [&](const Tensor<float>& z) {
      std::vector<std::vector<uint64_t>> got;
      Tensor<float> g;
      got.push_back(bits_of(soft_jaccard_value_and_grad(x, z, g)));
      got.push_back(bits_of(g));
      SoftDiceOptions<float> probabilities;
      probabilities.activation = Activation::none;
      got.push_back(bits_of(soft_dice_value_and_grad(p, z, g, probabilities)));
      got.push_back(bits_of(g));
      return got;
    };
    for (int kind = 0; kind < 3; ++kind) {
      CAPTURE(kind);
      cuda::detail::set_target_bits(false);
      const auto want = overlap_bits<float>(x, targets[kind], 0, w);
      const auto want_more = more_bits(targets[kind]);
      cuda::detail::set_target_bits(true);
      const auto got = overlap_bits<float>(x, targets[kind], 0, w);
      CHECK(got == want);
      CHECK(more_bits(targets[kind]) == want_more);
    }
  }
}

TEST_CASE("cuda overlap passes: the gradient pass reads binary targets as bits (emulator count)") {
  // Which arrays the passes load, counted by the emulator's load_quad: bce_dice's statistics pass
  // loads x and t (2 quads per 4 elements), its gradient pass x alone where a thread's targets
  // were binary, x and t elsewhere. 2 planes of 64 x 64: a range per plane, 2 steps per thread.
  SEGLOSS_REQUIRE_GPU();
  if (!cuda::emulated()) {
    MESSAGE("the load count is the emulator's: nothing to count on a GPU");
    return;
  }
  RestoreQuads restore;
  const Shape s{2, 1, 64, 64};
  const int64_t quads = s.numel() / 4;
  const Tensor<float> x = gpu(randn<float>(s, 111, 3.0));
  Tensor<float> one_soft = mask<float>(s, 112);
  one_soft.data()[77] = 0.25f;  // in thread 19's first quad of range 0
  const Tensor<float> binary = gpu(mask<float>(s, 112)), soft = gpu(uniform<float>(s, 113, 0, 1));
  const Tensor<float> some = gpu(one_soft);
  const Tensor<float> p = gpu(uniform<float>(s, 114, 0, 1));
  // loss 0: bce_dice, 1: soft_dice, 2: soft_dice of probabilities (the probability passes).
  const auto loads = [&](const Tensor<float>& z, bool bits, int loss) {
    cuda::detail::set_target_bits(bits);
    Tensor<float> g;
    SoftDiceOptions<float> probabilities;
    probabilities.activation = Activation::none;
    const int64_t before = cuda::detail::emulated_quad_loads().load();
    if (loss == 0) bce_dice_value_and_grad(x, z, g);
    if (loss == 1) soft_dice_value_and_grad(x, z, g);
    if (loss == 2) soft_dice_value_and_grad(p, z, g, probabilities);
    return cuda::detail::emulated_quad_loads().load() - before;
  };
  for (int loss = 0; loss < 3; ++loss) {
    CAPTURE(loss);
    CHECK(loads(binary, false, loss) == 4 * quads);
    CHECK(loads(binary, true, loss) == 3 * quads);
    CHECK(loads(soft, true, loss) == 4 * quads);
    // Thread 19 of range 0 reads its targets again: its 4 quads (2 steps of 2).
    CHECK(loads(some, true, loss) == 3 * quads + 4);
  }
  // A caller's workspace just big enough for the call without the bits (found by search: the
  // smallest that does not raise) runs without them, with the same results; one with room for
  // them takes them. The bits never make a call raise that ran before.
  const auto device_buffer = [](size_t bytes) {
    return Tensor<double>::empty(Shape{static_cast<int64_t>(bytes / sizeof(double) + 1)},
                                 Device::cuda);
  };
  const Tensor<double> ws = device_buffer(cuda::workspace_size(s) + 4096);
  const auto runs_in = [&](size_t bytes) {
    cuda::WorkspaceScope scope(ws.data(), bytes);
    try {
      Tensor<float> g;
      bce_dice_value_and_grad(x, binary, g);
      return true;
    } catch (const Error&) {
      return false;
    }
  };
  cuda::detail::set_target_bits(false);
  size_t lo = 0, hi = cuda::workspace_size(s);  // runs_in(hi), not runs_in(lo)
  REQUIRE(runs_in(hi));
  REQUIRE(!runs_in(lo));
  while (hi - lo > 1) (runs_in((lo + hi) / 2) ? hi : lo) = (lo + hi) / 2;
  Tensor<float> g_want, g_got;
  const double want = bce_dice_value_and_grad(x, binary, g_want);
  {
    cuda::WorkspaceScope scope(ws.data(), hi);
    cuda::detail::set_target_bits(true);
    const int64_t before = cuda::detail::emulated_quad_loads().load();
    const double got = bce_dice_value_and_grad(x, binary, g_got);
    CHECK(cuda::detail::emulated_quad_loads().load() - before == 4 * quads);
    CHECK(bits_of(got) == bits_of(want));
    CHECK(bits_of(g_got) == bits_of(g_want));
  }
  {
    cuda::WorkspaceScope scope(ws.data(), hi + 4096);
    const int64_t before = cuda::detail::emulated_quad_loads().load();
    const double got = bce_dice_value_and_grad(x, binary, g_got);
    CHECK(cuda::detail::emulated_quad_loads().load() - before == 3 * quads);
    CHECK(bits_of(got) == bits_of(want));
    CHECK(bits_of(g_got) == bits_of(g_want));
  }
}

// CUDA kernels of the Lovász losses (Berman et al., CVPR 2018; losses/lovasz.hpp has the math).
//
// One block of 256 threads per segment (lovasz_hinge: a problem). The block
//   1. writes the segment's records (key, index | ground-truth bit) in pixel order: each thread
//      takes a contiguous chunk of the pixels, counts the ones it keeps, an exclusive scan of the
//      counts in thread order gives its first slot, and it writes its chunk in order (a stable
//      compaction: the records are in pixel order, as the CPU writes them);
//   2. sorts them by a stable LSD radix sort on 4-bit digits (radix_sort.cuh), through the
//      workspace (A to B and back; 8 passes for a float key, 16 for a double one, so the result
//      is back in A): per pass each thread counts the digits of its contiguous chunk, an
//      exclusive scan over (digit, thread) in that order gives each thread its first slot per
//      digit, and each thread moves its chunk in order. Equal keys keep their order: the CPU's
//      permutation exactly;
//   3. walks Alg. 1 of the paper: each thread counts the ground truths of its chunk of the sorted
//      records, an exclusive scan gives the count before it, and each record's I_k, U_k, J_k,
//      J_{k-1} and g_k follow in double from integer counts with the CPU's formulas (so g_k has
//      the CPU's bits); the gradient entry is the CPU's value, and the loss sum_k e_(k) g_k is
//      added per thread in order and then by block_sum's fixed tree (another order than the
//      CPU's running sum: equal to rounding).
// The key is the CPU's (backends/cpu/lovasz.cpp): the error's bits with the sign cleared,
// complemented, so ascending keys are descending errors and a NaN comes first. A last one-thread
// kernel adds the segments' losses in problem order, as losses/lovasz.cpp's reduce().
#include "lovasz.hpp"

#include <type_traits>
#include <vector>

#include "../../core/pointwise.hpp"
#include "../cpu/lovasz_keys.hpp"
#include "radix_sort.cuh"
#include "runtime.cuh"

namespace segloss {
namespace cuda {
namespace {

constexpr unsigned long long kFg = 1ull << 63;  // the ground-truth bit of a record's index

// The CPU's keys (../cpu/lovasz_keys.hpp), with radix_sort.cuh's KeyOf.
template <class T>
__device__ __forceinline__ KeyOf<T> descending_key(T e) {
  return lovasz_keys::descending_key<T, KeyOf<T>>(e);
}
template <class T>
__device__ __forceinline__ KeyOf<T> softmax_key(bool fg, T p, T q) {
  return lovasz_keys::softmax_key<T, KeyOf<T>>(fg, p, q);
}
template <class T>
__device__ __forceinline__ double error_of(KeyOf<T> key) {
  return lovasz_keys::error_of<T, KeyOf<T>>(key);
}

// Alg. 1 over the n sorted records with G = gts ground truths: calls write(index, s g_k) for each
// (s = -1 for ground truth, +1 otherwise; index without the ground-truth bit) and returns the
// block's loss sum_k e_(k) g_k in thread 0 (a fixed-order sum). I_k and U_k are computed from
// integer counts: the CPU's running differences of 1.0 are exact, so both give the same doubles.
template <class T, class Write>
__device__ double block_walk(Shared& sh, const KeyOf<T>* keys, const unsigned long long* idx,
                             long long n, long long gts, Write&& write) {
  long long lo, hi;
  chunk_of(n, &lo, &hi);
  long long fg_here = 0;
  for (long long k = lo; k < hi; ++k) fg_here += (idx[k] & kFg) ? 1 : 0;
  long long all;
  long long fg_before = block_exclusive_scan(sh, fg_here, &all);
  const double G = static_cast<double>(gts);
  // J_{lo-1} (J_0 = 0 before the first record).
  double j_prev = 0.0;
  if (lo > 0) {
    const double inter = G - static_cast<double>(fg_before);
    const double uni = G + static_cast<double>(lo - fg_before);
    j_prev = 1.0 - inter / uni;
  }
  double acc[1] = {0.0};
  long long fgs = fg_before;
  for (long long k = lo; k < hi; ++k) {
    const bool fg = (idx[k] & kFg) != 0;
    fgs += fg ? 1 : 0;
    const double inter = G - static_cast<double>(fgs);
    const double uni = G + static_cast<double>(k + 1 - fgs);
    const double j = 1.0 - inter / uni;
    const double g = j - j_prev;
    j_prev = j;
    acc[0] += error_of<T>(keys[k]) * g;
    write(static_cast<long long>(idx[k] & ~kFg), fg ? -g : g);
  }
  SEGLOSS_STATIC_SHARED(double, loss, [1]);
  block_sum<1>(acc, loss);
  __syncthreads();
  return loss[0];
}

template <class T>
__device__ __forceinline__ double upstream_of(const LovaszUpstream<T>& up, long long j) {
  if (!up.grad_out) return up.factor;
  if (up.per_problem) return static_cast<double>(up.grad_out[j]);
  return static_cast<double>(up.grad_out[0]) * up.factor;
}

// ---- lovasz_hinge ----

template <class T>
struct HingeKernelArgs {
  cpu::LovaszHingeArgs<T> a;
  LovaszUpstream<T> up;
  double* losses;  // per problem
  KeyOf<T>*ka, *kb;
  unsigned long long *ia, *ib;
  int* flag;
  unsigned long long* first_bad;  // ~(the first bad index), atomicMax
};

template <class T>
__global__ void __launch_bounds__(kThreads) hinge_kernel(const HingeKernelArgs<T> k) {
  SEGLOSS_STATIC_SHARED(Shared, sh, [1]);
  Shared& s = sh[0];
  const cpu::LovaszHingeArgs<T>& a = k.a;
  const long long j = blockIdx.x, size = a.size, base = j * size;
  const T* x = a.x + base;
  const T* t = a.t + base;
  T* g = a.grad ? a.grad + base : nullptr;
  KeyOf<T>* ka = k.ka + base;
  unsigned long long* ia = k.ia + base;
  if (threadIdx.x == 0) s.bad = 0;
  __syncthreads();
  // 1. The records of the pixels kept (counted, error > 0 or NaN), in pixel order; the labels
  // checked as the CPU's lovasz_hinge_first_bad.
  long long lo, hi;
  chunk_of(size, &lo, &hi);
  long long kept = 0, gts = 0;
  for (long long i = lo; i < hi; ++i) {
    const T label = t[i];
    const bool ignored = a.has_ignore && static_cast<double>(label) == a.ignore;
    if (!(label == T(0) || label == T(1) || ignored)) {
      atomicMax(k.first_bad, ~static_cast<unsigned long long>(base + i));
      atomicOr(k.flag, kBadLabel);
      s.bad = 1;  // any thread may write it: the same value
    }
    const bool fg = label == T(1);
    gts += (!ignored && fg) ? 1 : 0;
    const T e = fg ? T(1) - x[i] : T(1) + x[i];
    kept += (!ignored && !(e <= T(0))) ? 1 : 0;
  }
  long long count, total_gts;
  long long slot = block_exclusive_scan(s, kept, &count);
  block_exclusive_scan(s, gts, &total_gts);
  if (s.bad) {  // read after the scans' barriers: the same in every thread
    // grad may be the labels (value_and_grad accepts it): then the host reads the bad label
    // back after this kernel to raise the CPU's message, so it must stay intact.
    if (g && static_cast<const void*>(g) != static_cast<const void*>(t))
      for (long long i = lo; i < hi; ++i) g[i] = static_cast<T>(NAN);
    if (threadIdx.x == 0) k.losses[j] = NAN;
    return;
  }
  for (long long i = lo; i < hi; ++i) {
    const T label = t[i];
    const bool ignored = a.has_ignore && static_cast<double>(label) == a.ignore;
    const bool fg = label == T(1);
    const T e = fg ? T(1) - x[i] : T(1) + x[i];  // x and t read before g[i] is written
    if (!ignored && !(e <= T(0))) {
      ka[slot] = descending_key<T>(e);
      ia[slot] = static_cast<unsigned long long>(i) | (fg ? kFg : 0ull);
      ++slot;
    }
    if (g) g[i] = T(0);
  }
  __syncthreads();
  // 2. The sort.
  block_radix_sort<KeyOf<T>>(s, ka, ia, k.kb + base, k.ib + base, count);
  // 3. The walk.
  const double scale = upstream_of(k.up, j);
  const double loss = block_walk<T>(s, ka, ia, count, total_gts, [&](long long pos, double v) {
    if (g) g[pos] = static_cast<T>(scale * v);
  });
  if (threadIdx.x == 0) k.losses[j] = loss;
}

// The reduction over the problems, in problem order (losses/lovasz.cpp's reduce), the value to
// the Call's slot, and the per-problem losses as T for reduction none.
template <class T>
__global__ void finish_kernel(const double* losses, long long problems, bool mean, double* value,
                              T* out) {
  double sum = 0.0;
  for (long long j = 0; j < problems; ++j) {
    sum += losses[j];
    if (out) out[j] = static_cast<T>(losses[j]);
  }
  *value = mean ? sum / static_cast<double>(problems) : sum;
}

// ---- lovasz_softmax ----

template <class T, class L>
struct SoftmaxKernelArgs {
  cpu::LovaszSoftmaxArgs<T, L> a;
  LovaszClassRule rule;
  LovaszUpstream<T> up;
  double* losses;     // per (problem, class)
  long long* counts;  // [4 jc]: ground truths, [4 jc + 1]: counted, [4 j + 2]: problem j is bad
  double* scales;     // [2 j]: the gradient's scale of problem j, [2 j + 1]: its classes counted
  T *m, *r, *q;       // per pixel: the max logit, 1 / sum_c exp(x_c - m), 1 - p_max
  KeyOf<T>*ka, *kb;
  unsigned long long *ia, *ib;
  int* flag;
  unsigned long long* first_bad;
  // class_list over more than kLovaszMaxListed classes: C bits (the workspace), else null
  const unsigned int* mask;
};

// The words [word0, word0 + words) of the class mask (words <= kLovaszMaxListed / 32), from bits
// passed by value (lovasz_softmax's class_list over more than kLovaszMaxListed classes).
__global__ void class_mask_kernel(unsigned int* mask, long long word0, long long words,
                                  const LovaszClassRule bits) {
  for (long long i = threadIdx.x; i < words; i += blockDim.x) mask[word0 + i] = bits.bits[i];
}

// Per pixel (grid-stride): m, r and q as the CPU's step A (the scalar form: max in class order,
// the sum of exponentials in class order, its reciprocal, and q = r times that sum over every
// class but one of the largest logit), and the label's check.
template <class T, class L>
__global__ void __launch_bounds__(kThreads) softmax_pixel_kernel(const SoftmaxKernelArgs<T, L> k) {
  const auto& a = k.a;
  const long long C = a.classes, S = a.pixels, total = a.images * S;
  for (long long i = blockIdx.x * static_cast<long long>(kThreads) + threadIdx.x; i < total;
       i += static_cast<long long>(gridDim.x) * kThreads) {
    const long long n = i / S, s = i - n * S;
    const T* x = a.x + n * C * S + s;
    T m = x[0];
    for (long long c = 1; c < C; ++c) {
      const T v = x[c * S];
      m = m > v ? m : v;  // Math<T>::max
    }
    T se = T(0), rest = T(0), ties = T(0);
    for (long long c = 0; c < C; ++c) {
      const T d = x[c * S] - m, t = Math<T>::exp(d);
      const T h = lovasz_keys::top_logit_indicator<T, Math<T>>(d);  // 1 at d = 0
      se += t;
      rest += t * (T(1) - h);
      ties += h;
    }
    k.m[i] = m;
    k.r[i] = T(1) / se;
    k.q[i] = (rest + (ties - T(1))) * k.r[i];
    const long long y = static_cast<long long>(a.labels[i]);
    if (y != a.ignore_index && (y < 0 || y >= C)) {
      atomicMax(k.first_bad, ~static_cast<unsigned long long>(i));
      atomicOr(k.flag, kBadLabel);
    }
  }
}

// One block per (problem j, class c): the problem's pixels labelled c (not ignored), and, in the
// block of class 0, whether the problem has a bad label.
template <class T, class L>
__global__ void __launch_bounds__(kThreads) softmax_count_kernel(const SoftmaxKernelArgs<T, L> k) {
  SEGLOSS_STATIC_SHARED(Shared, sh, [1]);
  const auto& a = k.a;
  const long long C = a.classes, S = a.pixels, jc = blockIdx.x, j = jc / C, c = jc - j * C;
  const long long size = a.problem_images * S;
  const L* y = a.labels + j * size;
  long long lo, hi;
  chunk_of(size, &lo, &hi);
  long long gts = 0, bad = 0;
  for (long long i = lo; i < hi; ++i) {
    const long long v = static_cast<long long>(y[i]);
    const bool counted = v != a.ignore_index;
    gts += counted && v == c ? 1 : 0;
    bad += counted && (v < 0 || v >= C) ? 1 : 0;
  }
  long long all_gts, all_bad;
  block_exclusive_scan(sh[0], gts, &all_gts);
  block_exclusive_scan(sh[0], bad, &all_bad);
  if (threadIdx.x == 0) {
    k.counts[4 * jc] = all_gts;
    if (c == 0) k.counts[4 * j + 2] = all_bad > 0 ? 1 : 0;
  }
}

// One thread: which classes count in each problem, K_j, and the gradient's scale up_j / K_j
// (losses/lovasz.cpp's softmax_plan and softmax_run).
template <class T, class L>
__global__ void softmax_plan_kernel(const SoftmaxKernelArgs<T, L> k, long long problems) {
  const long long C = k.a.classes;
  for (long long j = 0; j < problems; ++j) {
    long long valid = 0, kept = 0;
    for (long long c = 0; c < C; ++c) valid += k.counts[4 * (j * C + c)];
    for (long long c = 0; c < C; ++c) {
      bool in = false;
      if (valid > 0) {
        if (k.rule.mode == LovaszClassRule::listed && k.mask)
          in = ((k.mask[c / 32] >> (c % 32)) & 1u) != 0;
        else if (k.rule.mode == LovaszClassRule::listed)
          in = c < kLovaszMaxListed && ((k.rule.bits[c / 32] >> (c % 32)) & 1u) != 0;
        else if (k.rule.mode == LovaszClassRule::all)
          in = true;
        else
          in = k.counts[4 * (j * C + c)] > 0;
      }
      k.counts[4 * (j * C + c) + 1] = in ? 1 : 0;
      kept += in ? 1 : 0;
    }
    k.scales[2 * j] = kept > 0 ? upstream_of(k.up, j) / static_cast<double>(kept) : 0.0;
    k.scales[2 * j + 1] = static_cast<double>(kept);
  }
}

// One block per (problem j, class c): the records of the problem's pixels not ignored (e = 1 - p
// for ground truth, else p), the sort, the walk; dL/dp_c (scaled) into the class's planes of
// the gradient, 0 for ignored pixels and for a class not counted, NaN for a problem with a bad
// label.
template <class T, class L>
__global__ void __launch_bounds__(kThreads)
    softmax_segment_kernel(const SoftmaxKernelArgs<T, L> k) {
  SEGLOSS_STATIC_SHARED(Shared, sh, [1]);
  Shared& s = sh[0];
  const auto& a = k.a;
  const long long C = a.classes, S = a.pixels, PI = a.problem_images;
  const long long jc = blockIdx.x, j = jc / C, c = jc - j * C, n0 = j * PI, size = PI * S;
  T* const grad = a.grad;
  // Element (n0 + i / S, c, i % S) of the logits or the gradient, for i < size.
  const auto at = [&](long long i) {
    const long long n = n0 + i / S;
    return (n * C + c) * S + (i - (n - n0) * S);
  };
  long long lo, hi;
  chunk_of(size, &lo, &hi);
  const bool bad = k.counts[4 * j + 2] != 0, counted = k.counts[4 * jc + 1] != 0;
  if (bad || !counted) {
    if (grad)
      for (long long i = lo; i < hi; ++i) grad[at(i)] = bad ? static_cast<T>(NAN) : T(0);
    if (threadIdx.x == 0) k.losses[jc] = bad ? NAN : 0.0;
    return;
  }
  const L* y = a.labels + n0 * S;
  const T* m = k.m + n0 * S;
  const T* r = k.r + n0 * S;
  const T* q = k.q + n0 * S;
  long long kept = 0;
  for (long long i = lo; i < hi; ++i)
    kept += static_cast<long long>(y[i]) != a.ignore_index ? 1 : 0;
  long long count;
  long long slot = block_exclusive_scan(s, kept, &count);
  KeyOf<T>* ka = k.ka + jc * size;
  unsigned long long* ia = k.ia + jc * size;
  for (long long i = lo; i < hi; ++i) {
    const long long label = static_cast<long long>(y[i]);
    const long long e_at = at(i);
    if (label == a.ignore_index) {
      if (grad) grad[e_at] = T(0);
      continue;
    }
    const bool fg = label == c;
    const T p = Math<T>::exp(a.x[e_at] - m[i]) * r[i];
    ka[slot] = softmax_key<T>(fg, p, q[i]);
    ia[slot] = static_cast<unsigned long long>(i) | (fg ? kFg : 0ull);
    ++slot;
  }
  __syncthreads();
  block_radix_sort<KeyOf<T>>(s, ka, ia, k.kb + jc * size, k.ib + jc * size, count);
  const double scale = k.scales[2 * j];
  const double loss =
      block_walk<T>(s, ka, ia, count, k.counts[4 * jc], [&](long long pos, double v) {
        if (grad) grad[at(pos)] = static_cast<T>(scale * v);
      });
  if (threadIdx.x == 0) k.losses[jc] = loss;
}

// Per pixel (grid-stride): the softmax's Jacobian in place, as the CPU's step C: with G_c the
// stored dL/dp_c, p_c ((G_c - G_r) - sum_k p_k (G_k - G_r)) (the dot in T, in class order; r the
// first class of the largest logit); 0 for an ignored pixel.
template <class T, class L>
__global__ void __launch_bounds__(kThreads)
    softmax_jacobian_kernel(const SoftmaxKernelArgs<T, L> k) {
  const auto& a = k.a;
  const long long C = a.classes, S = a.pixels, total = a.images * S;
  for (long long i = blockIdx.x * static_cast<long long>(kThreads) + threadIdx.x; i < total;
       i += static_cast<long long>(gridDim.x) * kThreads) {
    const long long n = i / S, s = i - n * S, base = n * C * S + s;
    T* g = a.grad + base;
    if (static_cast<long long>(a.labels[i]) == a.ignore_index) {
      for (long long c = 0; c < C; ++c) g[c * S] = T(0);
      continue;
    }
    const T m = k.m[i], r = k.r[i];
    // G shifted by G_r, r the first class of the largest logit (the CPU's jacobian_at).
    T g_ref = T(0);
    for (long long c = C - 1; c >= 0; --c) g_ref = a.x[base + c * S] == m ? g[c * S] : g_ref;
    T dot = T(0);
    for (long long c = 0; c < C; ++c)
      dot += Math<T>::exp(a.x[base + c * S] - m) * r * (g[c * S] - g_ref);
    for (long long c = 0; c < C; ++c) {
      const T p = Math<T>::exp(a.x[base + c * S] - m) * r;
      g[c * S] = p * ((g[c * S] - g_ref) - dot);
    }
  }
}

// One thread: L_j = (1 / K_j) sum_c loss_c (classes in order; 0 without a class, NaN for a bad
// problem), then the reduction over the problems in problem order.
__global__ void softmax_finish_kernel(const double* seg_losses, const long long* counts,
                                      const double* scales, long long problems, long long classes,
                                      double* losses) {
  for (long long j = 0; j < problems; ++j) {
    double sum = 0.0;
    for (long long c = 0; c < classes; ++c) sum += seg_losses[j * classes + c];
    const double kept = scales[2 * j + 1];
    losses[j] = counts[4 * j + 2] ? NAN : kept > 0 ? sum / kept : 0.0;
  }
}

template <class T>
void read_bad(const Call& call, const T* data, LovaszBadLabel* bad) {
  unsigned long long key = 0;
  check(cudaMemcpyAsync(&key, call.at<unsigned long long>(header::kFirstBad), sizeof key,
                        cudaMemcpyDeviceToHost, call.stream()),
        call.function(), "cudaMemcpyAsync of the first bad label");
  check(cudaStreamSynchronize(call.stream()), call.function(), "cudaStreamSynchronize");
  if (key == 0) return;
  bad->index = static_cast<int64_t>(~key);
  T v{};
  check(cudaMemcpyAsync(&v, data + bad->index, sizeof(T), cudaMemcpyDeviceToHost, call.stream()),
        call.function(), "cudaMemcpyAsync of the bad label");
  check(cudaStreamSynchronize(call.stream()), call.function(), "cudaStreamSynchronize");
  bad->value = static_cast<double>(v);
}

}  // namespace

template <class T>
void lovasz_hinge(const char* function, const cpu::LovaszHingeArgs<T>& a, bool mean,
                  const LovaszUpstream<T>& up, T* losses, Result<T> r, LovaszBadLabel* bad) {
  const int64_t records = a.problems * a.size;
  const detail::LovaszLayout l = detail::lovasz_layout(a.problems, records, 0, sizeof(KeyOf<T>));
  Call call(function, l.total);
  HingeKernelArgs<T> k;
  k.a = a;
  k.up = up;
  k.losses = call.at<double>(l.losses);
  k.ka = call.at<KeyOf<T>>(l.keys_a);
  k.kb = call.at<KeyOf<T>>(l.keys_b);
  k.ia = call.at<unsigned long long>(l.idx_a);
  k.ib = call.at<unsigned long long>(l.idx_b);
  k.flag = call.flag();
  k.first_bad = call.at<unsigned long long>(header::kFirstBad);
  launch(hinge_kernel<T>, grid_of(call, a.problems, "one block per image"), kThreads, 0,
         call.stream(), k);
  call.launched();
  launch(finish_kernel<T>, 1, 1, 0, call.stream(), static_cast<const double*>(k.losses),
         static_cast<long long>(a.problems), mean, call.value(), losses);
  call.launched();
  if (r.device) call.device_value(r.device);
  if (!r.host) return;
  if (bad) read_bad(call, a.t, bad);
  if (bad && bad->index >= 0) return;
  *r.host = call.host_value("target holds a label other than 0, 1 and options.ignore");
}

template <class T, class L>
void lovasz_softmax(const char* function, const cpu::LovaszSoftmaxArgs<T, L>& a,
                    const LovaszClassRule& rule, bool mean, const LovaszUpstream<T>& up, T* losses,
                    Result<T> r, LovaszBadLabel* bad) {
  const int64_t problems = a.images / a.problem_images, segments = problems * a.classes;
  const int64_t pixels = a.images * a.pixels, records = pixels * a.classes;
  static_assert(sizeof(T) <= sizeof(double), "m, r and q fit the pixel region");
  const bool wide = rule.mode == LovaszClassRule::listed && rule.wide;
  const int64_t mask_words = wide ? (a.classes + 31) / 32 : 0;
  const detail::LovaszLayout l =
      detail::lovasz_layout(segments, records, 3 * pixels, sizeof(KeyOf<T>), mask_words);
  Call call(function, l.total);
  SoftmaxKernelArgs<T, L> k;
  k.a = a;
  k.rule = rule;
  k.rule.wide = nullptr;  // host memory: never in a kernel's arguments
  k.mask = nullptr;
  if (wide) {  // the class mask into the workspace, kLovaszMaxListed bits per launch, by value
    std::vector<unsigned int> words(static_cast<size_t>(mask_words), 0u);
    for (int64_t i = 0; i < rule.wide_count; ++i)
      words[static_cast<size_t>(rule.wide[i] / 32)] |= 1u << (rule.wide[i] % 32);
    unsigned int* mask = call.at<unsigned int>(l.mask);
    constexpr int64_t per = kLovaszMaxListed / 32;
    for (int64_t w0 = 0; w0 < mask_words; w0 += per) {
      LovaszClassRule bits;
      const int64_t n = mask_words - w0 < per ? mask_words - w0 : per;
      for (int64_t i = 0; i < n; ++i) bits.bits[i] = words[static_cast<size_t>(w0 + i)];
      launch(class_mask_kernel, 1, 32, 0, call.stream(), mask, static_cast<long long>(w0),
             static_cast<long long>(n), bits);
      call.launched();
    }
    k.mask = mask;
  }
  k.up = up;
  k.losses = call.at<double>(l.losses);
  k.counts = call.at<long long>(l.counts);
  k.scales = call.at<double>(l.scales);
  k.m = call.at<T>(l.pixels);
  k.r = k.m + pixels;
  k.q = k.r + pixels;
  k.ka = call.at<KeyOf<T>>(l.keys_a);
  k.kb = call.at<KeyOf<T>>(l.keys_b);
  k.ia = call.at<unsigned long long>(l.idx_a);
  k.ib = call.at<unsigned long long>(l.idx_b);
  k.flag = call.flag();
  k.first_bad = call.at<unsigned long long>(header::kFirstBad);
  const cudaStream_t st = call.stream();
  // The per-pixel passes: a grid that depends on the shape only (no reduction in them).
  const int64_t want = (pixels + kThreads - 1) / kThreads;
  const unsigned pixel_blocks = static_cast<unsigned>(want < 4096 ? want : 4096);
  launch(softmax_pixel_kernel<T, L>, pixel_blocks, kThreads, 0, st, k);
  call.launched();
  launch(softmax_count_kernel<T, L>, grid_of(call, segments, "one block per segment"), kThreads, 0,
         st, k);
  call.launched();
  launch(softmax_plan_kernel<T, L>, 1, 1, 0, st, k, static_cast<long long>(problems));
  call.launched();
  launch(softmax_segment_kernel<T, L>, grid_of(call, segments, "one block per segment"), kThreads,
         0, st, k);
  call.launched();
  if (a.grad) {
    launch(softmax_jacobian_kernel<T, L>, pixel_blocks, kThreads, 0, st, k);
    call.launched();
  }
  double* problem_losses = k.losses + segments;
  launch(softmax_finish_kernel, 1, 1, 0, st, static_cast<const double*>(k.losses),
         static_cast<const long long*>(k.counts), static_cast<const double*>(k.scales),
         static_cast<long long>(problems), static_cast<long long>(a.classes), problem_losses);
  call.launched();
  launch(finish_kernel<T>, 1, 1, 0, st, static_cast<const double*>(problem_losses),
         static_cast<long long>(problems), mean, call.value(), losses);
  call.launched();
  if (r.device) call.device_value(r.device);
  if (!r.host) return;
  if (bad) read_bad(call, a.labels, bad);
  if (bad && bad->index >= 0) return;
  *r.host = call.host_value("target holds a label outside [0, C) that is not ignore_index");
}

template void lovasz_hinge<float>(const char*, const cpu::LovaszHingeArgs<float>&, bool,
                                  const LovaszUpstream<float>&, float*, Result<float>,
                                  LovaszBadLabel*);
template void lovasz_hinge<double>(const char*, const cpu::LovaszHingeArgs<double>&, bool,
                                   const LovaszUpstream<double>&, double*, Result<double>,
                                   LovaszBadLabel*);
#define SEGLOSS_INSTANTIATE(T, L)                                                                \
  template void lovasz_softmax<T, L>(const char*, const cpu::LovaszSoftmaxArgs<T, L>&,           \
                                     const LovaszClassRule&, bool, const LovaszUpstream<T>&, T*, \
                                     Result<T>, LovaszBadLabel*);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
#undef SEGLOSS_INSTANTIATE

}  // namespace cuda
}  // namespace segloss

// CPU kernels of the Lovász losses.
//
// A sort key is the error's bit pattern with the sign cleared, complemented: for e >= 0 the bits
// of a float grow with its value, so ascending keys are descending errors (a NaN, whose bits
// exceed every finite value's, comes first). lovasz_softmax's errors above 1/2 use the keys
// with the top bit clear, from 1 - e (softmax_key). The records (key, position | ground-truth bit)
// are sorted by an LSD radix sort on 11-bit digits, which is stable: records with equal keys keep
// the order in which they were written, i.e. pixel order. Digits that are the same in every key
// are skipped. Each sort runs on one thread, except lovasz_hinge's batch problem (one sort, the
// whole call), which all threads sort together, with the same result. The walk then follows
// Alg. 1 of the paper in double.
//
// lovasz_softmax runs in three steps: (A) the max logit, the inverse sum of exponentials and
// 1 - p of the most probable class, of every pixel; (B) per (problem, class), in parallel: the
// errors from p = exp(x - m) * r, the sort, the walk, and dL/dp written into the class's planes
// of the gradient; (C) the softmax's Jacobian in place, pixel by pixel, with p computed again
// from (m, r).
#include "lovasz.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <type_traits>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include "../../core/parallel.hpp"
#include "class_axis.hpp"
#include "lovasz_keys.hpp"
#include "simd.hpp"

namespace segloss {
namespace cpu {
namespace {

template <class T>
using KeyOf = std::conditional_t<std::is_same_v<T, float>, uint32_t, uint64_t>;

// The keys (lovasz_keys.hpp, shared with the CUDA kernels) with this file's KeyOf.
template <class T>
SEGLOSS_INLINE KeyOf<T> descending_key(T e) {
  return lovasz_keys::descending_key<T, KeyOf<T>>(e);
}
template <class T>
SEGLOSS_INLINE KeyOf<T> softmax_key(bool fg, T p, T q) {
  return lovasz_keys::softmax_key<T, KeyOf<T>>(fg, p, q);
}
template <class T>
SEGLOSS_INLINE double error_of(KeyOf<T> key) {
  return lovasz_keys::error_of<T, KeyOf<T>>(key);
}

// A record: the key, and the pixel's position in its problem with the ground truth in the top bit.
template <class K, class I>
struct Rec {
  K key;
  I idx;
};

template <class I>
constexpr I kGroundTruthBit = I(1) << (8 * sizeof(I) - 1);

// The digit width of the radix sort. Measured against 8 bits (4 passes over a float key) and 16
// bits (2 passes, 65536 buckets) on the bench's Lovász cases (session 6): neither won by more
// than the noise (8 bits was 2-15 % slower throughout, 16 bits 7 % faster at 262144 records per
// class and 3-7 % slower at 65536, where the 65536-bucket prefix sums cost as much as a pass).
constexpr int kDigitBits = 11;

// Stable LSD radix sort of records by key on kBits-bit digits, least significant first. One read
// counts the digits of every pass, then each pass moves the records once. A pass whose digit is
// the same in every key (its histogram has all n records in one bucket) moves nothing and is
// skipped. Counts are of type I: n fits in I, since the positions do.
template <int kBits, class K, class I>
class RadixSort {
 public:
  static constexpr int kPasses = (static_cast<int>(8 * sizeof(K)) + kBits - 1) / kBits;
  static constexpr int64_t kBuckets = int64_t(1) << kBits;

  // Sorts a[0..n) by key; b is scratch of n records. Returns the array that holds the result
  // (a or b).
  Rec<K, I>* sort(Rec<K, I>* a, Rec<K, I>* b, int64_t n) {
    if (n < 2) return a;
    hist_.assign(static_cast<size_t>(kPasses * kBuckets), I(0));
    I* hist = hist_.data();
    for (int64_t i = 0; i < n; ++i) {
      const K k = a[i].key;
      for (int p = 0; p < kPasses; ++p) ++hist[p * kBuckets + digit(k, p)];
    }
    for (int p = 0; p < kPasses; ++p) {
      I* h = hist + p * kBuckets;
      if (static_cast<int64_t>(h[digit(a[0].key, p)]) == n) continue;  // nothing moves
      I sum = 0;
      for (int64_t d = 0; d < kBuckets; ++d) {
        const I c = h[d];
        h[d] = sum;
        sum += c;
      }
      scatter(a, b, 0, n, p, h);
      std::swap(a, b);
    }
    return a;
  }

  // The same result as sort() (a stable sort has one), by the threads of a parallel region that
  // all call it: each pass, thread t counts the digits of its contiguous part of the records,
  // its offset in bucket d is the count of smaller digits plus that of digit d in the parts
  // before t, and it moves its part in order. Every thread returns the array with the result.
  Rec<K, I>* sort_in_team(Rec<K, I>* a, Rec<K, I>* b, int64_t n, int thread, int threads) {
    if (n < 2) return a;
#if defined(_OPENMP)
#pragma omp single
    team_.assign(static_cast<size_t>(threads * kBuckets), I(0));
    // (the implicit barrier of single publishes team_)
    I* const all = team_.data();
    I* const mine = all + thread * kBuckets;
    std::vector<I> offset(static_cast<size_t>(kBuckets));
    const int64_t lo = n * thread / threads, hi = n * (thread + 1) / threads;
    for (int p = 0; p < kPasses; ++p) {
      std::fill(mine, mine + kBuckets, I(0));
      for (int64_t i = lo; i < hi; ++i) ++mine[digit(a[i].key, p)];
#pragma omp barrier
      I below = 0;  // records of smaller digits, all parts
      for (int64_t d = 0; d < kBuckets; ++d) {
        I before = 0, total = 0;
        for (int u = 0; u < threads; ++u) {
          const I c = all[u * kBuckets + d];
          before += u < thread ? c : I(0);
          total += c;
        }
        offset[static_cast<size_t>(d)] = below + before;
        below += total;
      }
      const int64_t d0 = digit(a[0].key, p);
      I in_d0 = 0;
      for (int u = 0; u < threads; ++u) in_d0 += all[u * kBuckets + d0];
#pragma omp barrier
      if (static_cast<int64_t>(in_d0) == n) continue;  // nothing moves (alike in every thread)
      scatter(a, b, lo, hi, p, offset.data());
#pragma omp barrier
      std::swap(a, b);
    }
    return a;
#else
    (void)thread;
    (void)threads;
    return sort(a, b, n);
#endif
  }

 private:
  static SEGLOSS_INLINE int64_t digit(K key, int p) {
    return static_cast<int64_t>((key >> (p * kBits)) & static_cast<K>(kBuckets - 1));
  }

  // Moves a[lo..hi) to b by digit p, h[d] being the next slot of digit d.
  static void scatter(const Rec<K, I>* a, Rec<K, I>* b, int64_t lo, int64_t hi, int p, I* h) {
    for (int64_t i = lo; i < hi; ++i) {
      const Rec<K, I> r = a[i];
      b[h[digit(r.key, p)]++] = r;
    }
  }

  std::vector<I> hist_;
  std::vector<I> team_;
};

// Below this many records a sort is not split across threads.
constexpr int64_t kTeamSortMin = int64_t(1) << 16;

// sorter.sort(a, b, n) by all threads (one problem, nothing else to run in parallel).
template <int kBits, class K, class I>
Rec<K, I>* sort_by_team(RadixSort<kBits, K, I>& sorter, Rec<K, I>* a, Rec<K, I>* b, int64_t n) {
#if defined(_OPENMP)
  Rec<K, I>* out = a;
#pragma omp parallel
  {
    Rec<K, I>* r = sorter.sort_in_team(a, b, n, omp_get_thread_num(), omp_get_num_threads());
#pragma omp master
    out = r;
  }
  return out;
#else
  return sorter.sort(a, b, n);
#endif
}

// Alg. 1 over the sorted records: with G = gts, I_k and U_k as in losses/lovasz.hpp,
// g_k = J_k - J_{k-1}. Returns sum_k e_k g_k; with kGrad calls write(position, s g_k), s = -1 for
// ground truth 1 and +1 otherwise (d e / d p, or d e / d x for the hinge).
template <bool kGrad, class T, class I, class Write>
double walk(const Rec<KeyOf<T>, I>* r, int64_t n, int64_t gts, Write&& write) {
  constexpr I kFg = kGroundTruthBit<I>;
  double inter = static_cast<double>(gts), uni = inter, j_prev = 0.0, loss = 0.0;
  for (int64_t k = 0; k < n; ++k) {
    const bool fg = (r[k].idx & kFg) != 0;
    if (fg)
      inter -= 1.0;
    else
      uni += 1.0;
    const double j = 1.0 - inter / uni;
    const double g = j - j_prev;
    j_prev = j;
    loss += error_of<T>(r[k].key) * g;
    if constexpr (kGrad) write(static_cast<int64_t>(r[k].idx & ~kFg), fg ? -g : g);
  }
  return loss;
}

// Per-thread record buffers and sort counts, grown as needed and freed at the end of the call.
template <int kBits, class K, class I>
struct SortBuffers {
  std::unique_ptr<Rec<K, I>[]> a, b;
  RadixSort<kBits, K, I> sorter;
  int64_t capacity = 0;
  void reserve(int64_t n) {
    if (n <= capacity) return;
    a.reset(new Rec<K, I>[static_cast<size_t>(n)]);
    b.reset(new Rec<K, I>[static_cast<size_t>(n)]);
    capacity = n;
  }
};

// ---- lovasz_softmax ----

// Step A for one packet: the max logit m, r = 1 / sum_c exp(x_c - m), and
// q = R r = 1 - p_max, with R = sum_c exp(x_c - m) over every class but one of the largest
// logit. q is the ground-truth error of the most probable class without the cancellation of
// 1 - p (for a pixel whose top logit leads by 20, p rounds to 1 in float and 1 - p to 0), and
// 1 - e of another class's error e = p_max (softmax_key). h_c is 1 for x_c = m, else 0
// (lovasz_keys::top_logit_indicator; where it is between, exp(d_c) = 1 and R is still about the
// ties' count less 1).
template <class T>
SEGLOSS_INLINE void max_and_inverse_sum(const T* x, int64_t C, int64_t S, T* m_out, T* r_out,
                                        T* q_out) {
  using V = Packet<T>;
  using M = Math<V>;
  V m = load<T>(x);
  for (int64_t c = 1; c < C; ++c) m = M::max(m, load<T>(x + c * S));
  V se = M::splat(T(0)), rest = M::splat(T(0)), ties = M::splat(T(0));
  for (int64_t c = 0; c < C; ++c) {
    const V d = load<T>(x + c * S) - m;
    const V t = M::exp(d);
    const V h = lovasz_keys::top_logit_indicator<V, M>(d);
    se += t;
    rest += t * (T(1) - h);
    ties += h;
  }
  const V r = M::recip(se);
  store<T>(m_out, m);
  store<T>(r_out, r);
  store<T>(q_out, V((rest + (ties - T(1))) * r));
}

// A plane's last k < kLanes pixels go through a packet too, its lanes k and above copies of the
// last pixel (computed, then discarded): a pixel's p, and so its error, has the same bits
// wherever it sits, and pixels with equal logits tie and keep pixel order (losses/lovasz.hpp).
// With a scalar tail, std::exp differed from the packets' exp by an ulp, and a tail pixel could
// sort ahead of an equal one before it (a differential fuzz against the reference, 2026-12-04).
// pad_rows copies `rows` rows of the k pixels at src (row c at src + c * stride) into dst,
// kLanes values per row.
template <class T, class U>
void pad_rows(const U* src, int64_t rows, int64_t stride, int64_t k, U* dst) {
  constexpr int kL = kLanes<T>;
  for (int64_t c = 0; c < rows; ++c)
    for (int64_t l = 0; l < kL; ++l) dst[c * kL + l] = src[c * stride + (l < k ? l : k - 1)];
}

template <class T>
SEGLOSS_INLINE Packet<T> probability(const T* x, const T* m, const T* r) {
  using V = Packet<T>;
  return Math<V>::exp(V(load<T>(x) - load<T>(m))) * load<T>(r);
}

// Step C for one packet: grad holds G_c = dL/dp_c; replaces it with
// p_c (G_c - sum_k p_k G_k), or 0 for an ignored pixel. As softmax_overlap's gradient_at (docs/
// gradients.md §10.2), G_c - sum_k p_k G_k is evaluated as d_c - sum_k p_k d_k with
// d_c = G_c - G_r (the two agree as sum_k p_k = 1), r the first class of the largest logit: for
// a saturated pixel the plain form cancels to an error of eps |G| where the result is about
// (1 - p_r) |G_k - G_r|. r is found from x_c = m exactly (h as in step A; take is 0 or 1, and
// select_nonneg at take - 1/2 selects exactly), not from p, so that every instruction set and
// the CUDA kernel take the same r when logits tie (logits a subnormal apart excepted, where any
// r changes only the rounding).
// x, grad: the pixels' class 0 (class c at c * S); labels, m, r: the pixels' own.
template <class T, class L>
SEGLOSS_INLINE void jacobian_at(const T* x, T* grad, const L* labels, int64_t ignore_index,
                                int64_t C, int64_t S, const T* m, const T* r, T* e) {
  using V = Packet<T>;
  using M = Math<V>;
  constexpr int kW = kLanes<T>;
  const V mv = load<T>(m);
  V pending = M::splat(T(1)), g_ref = M::splat(T(0));
  for (int64_t c = 0; c < C; ++c) {
    const V d = load<T>(x + c * S) - mv;
    store<T>(e + c * kW, V(M::exp(d) * load<T>(r)));  // probability
    const V take = lovasz_keys::top_logit_indicator<V, M>(d) * pending;
    g_ref = M::select_nonneg(V(take - T(0.5)), load<T>(grad + c * S), g_ref);
    pending -= take;
  }
  V dot = M::splat(T(0));
  for (int64_t c = 0; c < C; ++c) dot += load<T>(e + c * kW) * V(load<T>(grad + c * S) - g_ref);
  for (int64_t c = 0; c < C; ++c) {
    T* g = grad + c * S;
    store<T>(g, V(load<T>(e + c * kW) * V(V(load<T>(g) - g_ref) - dot)));
  }
  for (int l = 0; l < kW; ++l)
    if (static_cast<int64_t>(labels[l]) == ignore_index)
      for (int64_t c = 0; c < C; ++c) grad[c * S + l] = T(0);
}

// Step B for the class c of problem j: returns loss_c; with a gradient, writes G into the
// class's planes of the problem's images.
template <int kBits, class T, class L, class I>
double softmax_task(const LovaszSoftmaxArgs<T, L>& a, const T* mr, int64_t j, int64_t c,
                    SortBuffers<kBits, KeyOf<T>, I>& buf) {
  constexpr int kL = kLanes<T>;
  constexpr I kFg = kGroundTruthBit<I>;
  const int64_t C = a.classes, S = a.pixels, PI = a.problem_images, n0 = j * PI;
  const int64_t jc = j * C + c;
  if (!a.counted[jc]) {
    if (a.grad)
      for (int64_t n = n0; n < n0 + PI; ++n)
        std::fill(a.grad + (n * C + c) * S, a.grad + (n * C + c + 1) * S, T(0));
    return 0.0;
  }
  int64_t valid = 0;
  for (int64_t k = 0; k < C; ++k) valid += a.counts[j * C + k];
  buf.reserve(valid);
  Rec<KeyOf<T>, I>* rec = buf.a.get();
  int64_t count = 0;
  alignas(64) T p[kL];
  for (int64_t n = n0; n < n0 + PI; ++n) {
    const T* x = a.x + (n * C + c) * S;
    const T *m = mr + n * S, *r = mr + a.images * S + n * S, *q = mr + 2 * a.images * S + n * S;
    const L* y = a.labels + n * S;
    T* g = a.grad ? a.grad + (n * C + c) * S : nullptr;
    const I base = static_cast<I>((n - n0) * S);
    const auto add = [&](int64_t s, T prob) {
      const int64_t label = static_cast<int64_t>(y[s]);
      if (label == a.ignore_index) {
        if (g) g[s] = T(0);
        return;
      }
      const bool fg = label == c;
      rec[count++] = {softmax_key<T>(fg, prob, q[s]),
                      static_cast<I>((base + static_cast<I>(s)) | (fg ? kFg : I(0)))};
    };
    int64_t s = 0;
    for (; s + kL <= S; s += kL) {
      store(p, probability<T>(x + s, m + s, r + s));
      for (int l = 0; l < kL; ++l) add(s + l, p[l]);
    }
    if (s < S) {  // the tail, padded (pad_rows)
      alignas(64) T xb[kL], mb[kL], rb[kL];
      pad_rows<T>(x + s, 1, 0, S - s, xb);
      pad_rows<T>(m + s, 1, 0, S - s, mb);
      pad_rows<T>(r + s, 1, 0, S - s, rb);
      store(p, probability<T>(xb, mb, rb));
      for (int64_t l = 0; l < S - s; ++l) add(s + l, p[l]);
    }
  }
  Rec<KeyOf<T>, I>* sorted = buf.sorter.sort(rec, buf.b.get(), count);
  const int64_t gts = a.counts[jc];
  if (!a.grad) return walk<false, T, I>(sorted, count, gts, [](int64_t, double) {});
  const double scale = a.scale[j];
  if (PI == 1) {
    T* g = a.grad + (n0 * C + c) * S;
    return walk<true, T, I>(sorted, count, gts,
                            [&](int64_t pos, double v) { g[pos] = static_cast<T>(scale * v); });
  }
  // A batch problem: position n S + s lies in plane (n, c). n by a floating-point quotient,
  // corrected (a 64-bit division per pixel would cost more than the rest of the walk).
  const double inv_s = 1.0 / static_cast<double>(S);
  return walk<true, T, I>(sorted, count, gts, [&](int64_t pos, double v) {
    int64_t n = static_cast<int64_t>(static_cast<double>(pos) * inv_s);
    if (n * S > pos) --n;
    if ((n + 1) * S <= pos) ++n;
    a.grad[(n * C + c) * S + (pos - n * S)] = static_cast<T>(scale * v);
  });
}

template <int kBits, class T, class L, class I>
void softmax_tasks(const LovaszSoftmaxArgs<T, L>& a, const T* mr, double* per_task) {
  const int64_t tasks = a.images / a.problem_images * a.classes;
#if defined(_OPENMP)
#pragma omp parallel if (tasks > 1)
#endif
  {
    SortBuffers<kBits, KeyOf<T>, I> buf;
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t t = 0; t < tasks; ++t)
      per_task[t] = softmax_task<kBits, T, L, I>(a, mr, t / a.classes, t % a.classes, buf);
  }
}

// ---- lovasz_hinge ----

template <int kBits, class T, class I>
double hinge_task(const LovaszHingeArgs<T>& a, int64_t j, SortBuffers<kBits, KeyOf<T>, I>& buf,
                  bool team) {
  constexpr I kFg = kGroundTruthBit<I>;
  const int64_t size = a.size;
  const T* x = a.x + j * size;
  const T* t = a.t + j * size;
  T* g = a.grad ? a.grad + j * size : nullptr;
  buf.reserve(size);
  Rec<KeyOf<T>, I>* rec = buf.a.get();
  int64_t count = 0, gts = 0;
  // Without branches (whether a pixel is kept is data-dependent, often at random): every pixel's
  // record is written at the end of those kept, and the end moves past it if it is kept. Ignored
  // pixels, and errors <= 0, which add nothing (relu) and take no gradient, are not kept (they
  // would sort last, after every position whose g_k they could change); NaN is kept (it sorts
  // first). Every gradient entry is zeroed here; the walk writes those of the kept pixels.
  for (int64_t i = 0; i < size; ++i) {
    const T label = t[i];
    const bool counted = !(a.has_ignore && static_cast<double>(label) == a.ignore);
    const bool fg = label == T(1);
    gts += (counted && fg) ? 1 : 0;
    const T e = fg ? T(1) - x[i] : T(1) + x[i];
    rec[count] = {descending_key<T>(e), static_cast<I>(static_cast<I>(i) | (fg ? kFg : I(0)))};
    count += (counted && !(e <= T(0))) ? 1 : 0;
  }
  if (g) std::fill(g, g + size, T(0));
  Rec<KeyOf<T>, I>* sorted = team && count >= kTeamSortMin
                                 ? sort_by_team(buf.sorter, rec, buf.b.get(), count)
                                 : buf.sorter.sort(rec, buf.b.get(), count);
  if (!g) return walk<false, T, I>(sorted, count, gts, [](int64_t, double) {});
  const double scale = a.scale[j];
  return walk<true, T, I>(sorted, count, gts,
                          [&](int64_t pos, double v) { g[pos] = static_cast<T>(scale * v); });
}

template <int kBits, class T, class I>
void hinge_tasks(const LovaszHingeArgs<T>& a, double* out) {
#if defined(_OPENMP)
  if (a.problems == 1 && omp_get_max_threads() > 1) {  // one sort, by all threads
    SortBuffers<kBits, KeyOf<T>, I> buf;
    out[0] = hinge_task<kBits, T, I>(a, 0, buf, true);
    return;
  }
#endif
#if defined(_OPENMP)
#pragma omp parallel if (a.problems > 1)
#endif
  {
    SortBuffers<kBits, KeyOf<T>, I> buf;
#if defined(_OPENMP)
#pragma omp for schedule(dynamic, 1)
#endif
    for (int64_t j = 0; j < a.problems; ++j) out[j] = hinge_task<kBits, T, I>(a, j, buf, false);
  }
}

}  // namespace

template <class L>
void lovasz_label_counts(const L* labels, int64_t images, int64_t pixels, int64_t classes,
                         int64_t ignore_index, int64_t* counts) {
  const detail::ChunkGrid grid(images, pixels);
  std::vector<int64_t> per_chunk(static_cast<size_t>(grid.chunks() * classes), 0);
  detail::for_each_chunk(grid, [&](const detail::Chunk& ch) {
    int64_t* k = per_chunk.data() + ch.index * classes;
    for (int64_t i = ch.begin; i < ch.end; ++i) {
      const int64_t y = static_cast<int64_t>(labels[i]);
      if (y != ignore_index) ++k[y];
    }
  });
  std::fill(counts, counts + images * classes, int64_t(0));
  for (int64_t ch = 0; ch < grid.chunks(); ++ch) {
    const int64_t n = ch / grid.chunks_per_plane();
    for (int64_t c = 0; c < classes; ++c) counts[n * classes + c] += per_chunk[ch * classes + c];
  }
}

template <class T, class L>
void lovasz_softmax(const LovaszSoftmaxArgs<T, L>& a, double* out) {
  constexpr int kL = kLanes<T>;
  const int64_t N = a.images, C = a.classes, S = a.pixels;
  // Step A: m, r, then q (N S values each).
  std::unique_ptr<T[]> mr(new T[static_cast<size_t>(3 * N * S)]);
  T* m = mr.get();
  T* r = m + N * S;
  T* q = r + N * S;
  const detail::ChunkGrid grid(N, S, class_chunk_pixels(C));
  detail::for_each_chunk(grid, [&](const detail::Chunk& ch) {
    const int64_t n = ch.plane, s0 = ch.begin - n * S, s1 = ch.end - n * S;
    const T* x = a.x + n * C * S;
    int64_t s = s0;
    for (; s + kL <= s1; s += kL)
      max_and_inverse_sum<T>(x + s, C, S, m + n * S + s, r + n * S + s, q + n * S + s);
    if (s < s1) {  // the tail, padded (pad_rows)
      T* xb = class_buffer<T>(static_cast<size_t>(C * kL));
      pad_rows<T>(x + s, C, S, s1 - s, xb);
      alignas(64) T mb[kL], rb[kL], qb[kL];
      max_and_inverse_sum<T>(xb, C, kL, mb, rb, qb);
      for (int64_t l = 0; l < s1 - s; ++l) {
        m[n * S + s + l] = mb[l];
        r[n * S + s + l] = rb[l];
        q[n * S + s + l] = qb[l];
      }
    }
  });

  // Step B.
  const int64_t problems = N / a.problem_images;
  std::vector<double> per_task(static_cast<size_t>(problems * C), 0.0);
  if (a.problem_images * S < (int64_t(1) << 31))
    softmax_tasks<kDigitBits, T, L, uint32_t>(a, m, per_task.data());
  else
    softmax_tasks<kDigitBits, T, L, uint64_t>(a, m, per_task.data());
  for (int64_t j = 0; j < problems; ++j) {
    out[j] = 0.0;
    for (int64_t c = 0; c < C; ++c) out[j] += per_task[static_cast<size_t>(j * C + c)];
  }

  // Step C.
  if (!a.grad) return;
  detail::for_each_chunk(grid, [&](const detail::Chunk& ch) {
    T* e = class_buffer<T>(static_cast<size_t>(3 * C * kL));  // e, then the tail's x and G
    const int64_t n = ch.plane, s0 = ch.begin - n * S, s1 = ch.end - n * S;
    int64_t s = s0;
    for (; s + kL <= s1; s += kL) {
      const int64_t base = n * C * S + s, pix = n * S + s;
      jacobian_at<T, L>(a.x + base, a.grad + base, a.labels + pix, a.ignore_index, C, S, m + pix,
                        r + pix, e);
    }
    if (s < s1) {  // the tail, padded (pad_rows)
      const int64_t base = n * C * S + s, pix = n * S + s, k = s1 - s;
      T *xb = e + C * kL, *gb = xb + C * kL;
      pad_rows<T>(a.x + base, C, S, k, xb);
      pad_rows<T>(a.grad + base, C, S, k, gb);
      alignas(64) T mb[kL], rb[kL];
      alignas(64) L lb[kL];
      pad_rows<T>(m + pix, 1, 0, k, mb);
      pad_rows<T>(r + pix, 1, 0, k, rb);
      pad_rows<T>(a.labels + pix, 1, 0, k, lb);
      jacobian_at<T, L>(xb, gb, lb, a.ignore_index, C, kL, mb, rb, e);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t l = 0; l < k; ++l) a.grad[base + c * S + l] = gb[c * kL + l];
    }
  });
}

template <class T>
int64_t lovasz_hinge_first_bad(const T* t, int64_t n, bool has_ignore, double ignore) {
  const detail::ChunkGrid grid(1, n);
  std::vector<int64_t> first(static_cast<size_t>(grid.chunks()), -1);
  detail::for_each_chunk(grid, [&](const detail::Chunk& ch) {
    for (int64_t i = ch.begin; i < ch.end; ++i) {
      const T v = t[i];
      if (v == T(0) || v == T(1) || (has_ignore && static_cast<double>(v) == ignore)) continue;
      first[static_cast<size_t>(ch.index)] = i;
      return;
    }
  });
  for (int64_t f : first)
    if (f >= 0) return f;
  return -1;
}

template <class T>
void lovasz_hinge(const LovaszHingeArgs<T>& a, double* out) {
  if (a.size < (int64_t(1) << 31))
    hinge_tasks<kDigitBits, T, uint32_t>(a, out);
  else
    hinge_tasks<kDigitBits, T, uint64_t>(a, out);
}

template void lovasz_label_counts<int32_t>(const int32_t*, int64_t, int64_t, int64_t, int64_t,
                                           int64_t*);
template void lovasz_label_counts<int64_t>(const int64_t*, int64_t, int64_t, int64_t, int64_t,
                                           int64_t*);
#define SEGLOSS_INSTANTIATE(T, L) \
  template void lovasz_softmax<T, L>(const LovaszSoftmaxArgs<T, L>&, double*);
SEGLOSS_INSTANTIATE(float, int32_t)
SEGLOSS_INSTANTIATE(float, int64_t)
SEGLOSS_INSTANTIATE(double, int32_t)
SEGLOSS_INSTANTIATE(double, int64_t)
#undef SEGLOSS_INSTANTIATE
template int64_t lovasz_hinge_first_bad<float>(const float*, int64_t, bool, double);
template int64_t lovasz_hinge_first_bad<double>(const double*, int64_t, bool, double);
template void lovasz_hinge<float>(const LovaszHingeArgs<float>&, double*);
template void lovasz_hinge<double>(const LovaszHingeArgs<double>&, double*);

}  // namespace cpu
}  // namespace segloss

// A digest of a loss's options (not installed), kept in the statistics of the statistics /
// finalize split (ShardStatistics::options) so that finalize refuses statistics made with other
// options than its own (docs/distributed.md). Every field goes in, by its bytes, in the order
// of its struct; a tensor option by whether it is defined and by its shape, never its values
// (a per-pixel weight may be large, or on a device, and finalize must not read it twice or
// wait for it). Adding a field to an options struct: add it here too (a static_assert below
// counts each struct's fields and fails the build until its count here is changed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "../../core/tensor.hpp"
#include "../bce_dice.hpp"
#include "../bce_with_logits.hpp"
#include "../combined.hpp"
#include "../cross_entropy.hpp"
#include "../focal.hpp"
#include "../generalized_dice.hpp"
#include "../overlap.hpp"
#include "../softmax_overlap.hpp"
#include "../tversky.hpp"

namespace segloss {
namespace detail {

// FNV-1a over the bytes of the fields (64 bits); never 0, which means "not checked".
class Digest {
 public:
  template <class V>
  Digest& operator()(V v) {
    static_assert(std::is_arithmetic_v<V> || std::is_enum_v<V>, "a number, a bool or an enum");
    unsigned char bytes[sizeof(V)];
    std::memcpy(bytes, &v, sizeof(V));
    for (unsigned char b : bytes) h_ = (h_ ^ b) * 1099511628211ull;
    return *this;
  }
  template <class T>
  Digest& operator()(const Tensor<T>& t) {
    (*this)(t.defined());
    if (!t.defined()) return *this;
    (*this)(t.rank());
    for (int d = 0; d < t.rank(); ++d) (*this)(t.size(d));
    return *this;
  }
  uint64_t value() const { return h_ == 0 ? 1 : h_; }

 private:
  uint64_t h_ = 14695981039346656037ull;
};

template <class T>
void digest_fields(Digest& d, const CrossEntropyOptions<T>& o) {
  d(o.reduction)(o.weight)(o.ignore_index)(o.label_smoothing)(o.ignore_negative)(o.mean_over)(
      o.all_ignored);
}
template <class T>
void digest_fields(Digest& d, const BceWithLogitsOptions<T>& o) {
  d(o.reduction)(o.weight)(o.pos_weight)(o.mean_over)(o.label_smoothing);
}
template <class T>
void digest_fields(Digest& d, const SigmoidFocalOptions<T>& o) {
  d(o.reduction)(o.alpha)(o.gamma)(o.weight);
}
template <class T>
void digest_fields(Digest& d, const SoftmaxFocalOptions<T>& o) {
  d(o.reduction)(o.alpha)(o.gamma)(o.ignore_index);
}
template <class T>
void digest_fields(Digest& d, const OverlapOptions<T>& o) {
  d(o.reduction)(o.smooth_nr)(o.smooth_dr)(o.per_image)(o.activation)(o.squared)(o.weight)(
      o.weighting)(o.class_weight)(o.include_background)(o.empty)(o.gamma)(o.log)(o.clamp);
}
template <class T>
void digest_fields(Digest& d, const TverskyOptions<T>& o) {
  digest_fields(d, static_cast<const OverlapOptions<T>&>(o));
  d(o.alpha)(o.beta);
}
template <class T>
void digest_fields(Digest& d, const SoftmaxOverlapOptions<T>& o) {
  d(o.reduction)(o.smooth_nr)(o.smooth_dr)(o.per_image)(o.squared)(o.class_weight)(
      o.include_background)(o.empty)(o.gamma)(o.log)(o.clamp)(o.ignore_index);
}
template <class T>
void digest_fields(Digest& d, const SoftmaxTverskyOptions<T>& o) {
  digest_fields(d, static_cast<const SoftmaxOverlapOptions<T>&>(o));
  d(o.alpha)(o.beta);
}
template <class T>
void digest_fields(Digest& d, const GeneralizedDiceOptions<T>& o) {
  d(o.reduction)(o.smooth_nr)(o.smooth_dr)(o.per_image)(o.w_type)(o.include_background)(
      o.ignore_index);
}
template <class T>
void digest_fields(Digest& d, const BceDiceOptions<T>& o) {
  d(o.bce_weight)(o.dice_weight);
  digest_fields(d, o.bce);
  digest_fields(d, o.dice);
}
template <class T>
void digest_fields(Digest& d, const CeDiceOptions<T>& o) {
  d(o.ce_weight)(o.dice_weight);
  digest_fields(d, o.ce);
  digest_fields(d, o.dice);
}
template <class T>
void digest_fields(Digest& d, const DiceFocalOptions<T>& o) {
  d(o.dice_weight)(o.focal_weight);
  digest_fields(d, o.dice);
  digest_fields(d, o.focal);
}

// The number of fields of an aggregate: the most initializers T{...} takes (each an AnyField,
// which converts to any type). Tells when a field was added to an options struct above.
struct AnyField {
  template <class U>
  operator U() const;
};
template <class T, class = void, class... A>
struct TakesFields : std::false_type {};
template <class T, class... A>
struct TakesFields<T, std::void_t<decltype(T{std::declval<A>()...})>, A...> : std::true_type {};
template <class T, class... A>
constexpr size_t field_count() {
  if constexpr (TakesFields<T, void, A..., AnyField>::value)
    return field_count<T, A..., AnyField>();
  else
    return sizeof...(A);
}
// clang-format off
#define SEGLOSS_DIGEST_FIELDS(Options, n)                                                   \
  static_assert(field_count<Options<float>>() == n,                                         \
                #Options " has other fields than digest_fields(" #Options ") reads: "       \
                "add the new field there, then change the count here")
// clang-format on
SEGLOSS_DIGEST_FIELDS(CrossEntropyOptions, 7);
SEGLOSS_DIGEST_FIELDS(BceWithLogitsOptions, 5);
SEGLOSS_DIGEST_FIELDS(SigmoidFocalOptions, 4);
SEGLOSS_DIGEST_FIELDS(SoftmaxFocalOptions, 4);
SEGLOSS_DIGEST_FIELDS(OverlapOptions, 14);
SEGLOSS_DIGEST_FIELDS(SoftmaxOverlapOptions, 12);
SEGLOSS_DIGEST_FIELDS(GeneralizedDiceOptions, 7);
SEGLOSS_DIGEST_FIELDS(BceDiceOptions, 4);
SEGLOSS_DIGEST_FIELDS(CeDiceOptions, 4);
SEGLOSS_DIGEST_FIELDS(DiceFocalOptions, 4);
SEGLOSS_DIGEST_FIELDS(TverskyOptions, 3);         // the OverlapOptions base, alpha, beta
SEGLOSS_DIGEST_FIELDS(SoftmaxTverskyOptions, 3);  // the SoftmaxOverlapOptions base, alpha, beta
#undef SEGLOSS_DIGEST_FIELDS

// The digest of a loss's options (never 0).
template <class O>
uint64_t options_digest(const O& o) {
  Digest d;
  digest_fields(d, o);
  return d.value();
}

}  // namespace detail
}  // namespace segloss

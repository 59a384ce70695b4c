// Shape: up to five 64-bit extents, row-major. segloss's image tensors are (N, C, spatial...)
// with one to three spatial dimensions (so rank 3 to 5); label maps drop the class axis, and
// reduced results can be rank 0 (a scalar), 1 or 2. Shape itself only knows extents.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <locale>
#include <sstream>
#include <string>

#include "error.hpp"

namespace segloss {

class Shape {
 public:
  static constexpr int kMaxRank = 5;

  Shape() = default;  // rank 0: a scalar, one element
  Shape(std::initializer_list<int64_t> extents) {
    SEGLOSS_CHECK(extents.size() <= kMaxRank, "Shape", "rank ", extents.size(),
                  " exceeds the maximum rank ", kMaxRank);
    for (int64_t e : extents) push_back(e);
  }
  template <class It>
  Shape(It first, It last) {
    for (; first != last; ++first) push_back(static_cast<int64_t>(*first));
  }

  void push_back(int64_t extent) {
    SEGLOSS_CHECK(rank_ < kMaxRank, "Shape", "adding extent ", extent, " to ", str(),
                  " exceeds the maximum rank ", kMaxRank);
    SEGLOSS_CHECK(extent >= 0, "Shape", "extent ", extent, " at axis ", rank_, " is negative");
    // The product of the nonzero extents must fit, so that every sub-shape's count (numel_from)
    // does too, even when a zero extent makes the whole shape empty.
    int64_t n = 1;
    for (int i = 0; i < rank_; ++i)
      if (d_[i] != 0) n *= d_[i];
    int64_t product = 0;
    SEGLOSS_CHECK(!__builtin_mul_overflow(n, extent == 0 ? 1 : extent, &product), "Shape",
                  "extents ", str(), " and ", extent,
                  " multiply past 2^63 - 1 (zero extents left out)");
    d_[rank_++] = extent;
  }

  int rank() const { return rank_; }
  int64_t operator[](int axis) const { return d_[axis]; }
  // Sets the extent at `axis` (< rank()), with push_back's checks: no negative extent, and the
  // product of the nonzero extents fits in int64. (There is no writable operator[]: it let a
  // caller make Shape{-2, 1, -3}, whose numel() 6 passed every later check.)
  void set(int axis, int64_t extent) {
    SEGLOSS_CHECK(axis >= 0 && axis < rank_, "Shape::set", "axis ", axis, " is outside [0, ", rank_,
                  ") of ", str());
    Shape s;
    for (int i = 0; i < rank_; ++i) s.push_back(i == axis ? extent : d_[i]);
    *this = s;
  }

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= d_[i];
    return n;
  }
  // Product of the extents from `axis` to the end (the elements of one slice at axis-1).
  int64_t numel_from(int axis) const {
    int64_t n = 1;
    for (int i = axis; i < rank_; ++i) n *= d_[i];
    return n;
  }
  // The same shape without the axis `axis` (e.g. logits (N,C,H,W) -> labels (N,H,W)).
  Shape without(int axis) const {
    Shape s;
    for (int i = 0; i < rank_; ++i)
      if (i != axis) s.push_back(d_[i]);
    return s;
  }

  bool operator==(const Shape& o) const {
    if (rank_ != o.rank_) return false;
    for (int i = 0; i < rank_; ++i)
      if (d_[i] != o.d_[i]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }

  // "(2,1,64,64)"; "()" for a scalar.
  std::string str() const {
    std::ostringstream os;
    os.imbue(std::locale::classic());  // no digit grouping from a global locale
    os << '(';
    for (int i = 0; i < rank_; ++i) os << (i ? "," : "") << d_[i];
    os << ')';
    return os.str();
  }

  // The multi-index of linear (row-major) element i, as "(n,c,h,w)".
  std::string position(int64_t i) const {
    int64_t idx[kMaxRank] = {};
    for (int d = rank_ - 1; d >= 0; --d) {
      idx[d] = i % d_[d];
      i /= d_[d];
    }
    std::ostringstream os;
    os.imbue(std::locale::classic());  // no digit grouping from a global locale
    os << '(';
    for (int d = 0; d < rank_; ++d) os << (d ? "," : "") << idx[d];
    os << ')';
    return os.str();
  }

 private:
  int64_t d_[kMaxRank] = {};  // a C array: indexed by int without a sign conversion
  int rank_ = 0;
};

inline std::ostream& operator<<(std::ostream& os, const Shape& s) {
  return os << s.str();
}

}  // namespace segloss

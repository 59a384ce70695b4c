// detail::overlaps (core/checks.hpp): whether two byte ranges share a byte. prepare_grad and the
// combined losses' aliasing check decide with it which gradient buffers they refuse; these tests
// pin the boundaries: ranges that touch do not overlap, one shared byte does, a range inside
// another does, an empty range never does, and the order of the two ranges does not matter.
#include <doctest/doctest.h>

#include <cstddef>

#include <segloss/segloss.hpp>

#include <segloss/core/checks.hpp>

using segloss::detail::overlaps;

namespace {

// overlaps(a, b) and overlaps(b, a) agree, and the answer is `expected`.
void check_both_orders(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes,
                       bool expected) {
  CHECK(overlaps(a, a_bytes, b, b_bytes) == expected);
  CHECK(overlaps(b, b_bytes, a, a_bytes) == expected);
}

}  // namespace

TEST_CASE("overlaps: byte ranges, in either order") {
  alignas(64) unsigned char buf[64] = {};
  const unsigned char* p = buf;

  SUBCASE("adjacent ranges do not overlap") {
    check_both_orders(p, 16, p + 16, 16, false);
    check_both_orders(p, 1, p + 1, 1, false);
  }
  SUBCASE("one shared byte overlaps") {
    check_both_orders(p, 17, p + 16, 16, true);
    check_both_orders(p + 10, 1, p + 10, 1, true);
  }
  SUBCASE("a range inside another overlaps") {
    check_both_orders(p, 64, p + 20, 8, true);
    check_both_orders(p, 64, p, 64, true);  // the same range
    check_both_orders(p, 64, p + 63, 1, true);
  }
  SUBCASE("apart ranges do not overlap") {
    check_both_orders(p, 8, p + 40, 8, false);
  }
  SUBCASE("an empty range overlaps nothing, not even at the same address or inside another") {
    check_both_orders(p + 20, 0, p, 64, false);
    check_both_orders(p, 0, p, 64, false);
    check_both_orders(p, 0, p, 0, false);
  }
}

TEST_CASE("overlaps: tensors at an element offset, as prepare_grad sees them") {
  auto storage = segloss::Tensor<float>::empty({40});
  const auto bytes = [](std::size_t n) { return n * sizeof(float); };
  const float* x = storage.data();
  CHECK(overlaps(x, bytes(20), x + 20, bytes(20)) == false);  // two halves
  CHECK(overlaps(x, bytes(20), x + 19, bytes(20)) == true);   // one element shared
  CHECK(overlaps(x + 19, bytes(20), x, bytes(20)) == true);
  CHECK(segloss::detail::data_bytes(storage) == bytes(40));
}

// Loops over the loss registry (losses/registry.hpp): every registered loss and preset gets a
// double-precision gradcheck, a fused-versus-composed check where it has a composed form, a
// float32-versus-double check, and bit-identical results at 1, 2, 3 and 8 threads and from run
// to run. A loss declared in a header of segloss.hpp without a registry entry fails here.
#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "helpers.hpp"

using namespace segloss;
using segloss::testing::same_bits;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot read ", path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool identifier_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

// The loss functions a header declares: every NAME in "NAME_value_and_grad(" and in the softmax
// overlap family's declaration macro "SEGLOSS_DECLARE_SOFTMAX_OVERLAP(NAME,". Every fused loss
// has a value_and_grad (docs/conventions.md, "Reductions"), so this finds them all.
// Comments are left out (they name losses in prose, e.g. "X_value_and_grad").
std::set<std::string> declared_losses(const std::string& source) {
  std::string text;
  std::istringstream lines(source);
  for (std::string line; std::getline(lines, line);) text += line.substr(0, line.find("//")) + "\n";
  std::set<std::string> names;
  const std::string suffix = "_value_and_grad(";
  for (size_t at = text.find(suffix); at != std::string::npos; at = text.find(suffix, at + 1)) {
    size_t begin = at;
    while (begin > 0 && identifier_char(text[begin - 1])) --begin;
    if (begin < at && text[begin - 1] != '#') names.insert(text.substr(begin, at - begin));
  }
  const std::string macro = "SEGLOSS_DECLARE_SOFTMAX_OVERLAP(";
  for (size_t at = text.find(macro); at != std::string::npos; at = text.find(macro, at + 1)) {
    size_t end = at + macro.size();
    while (end < text.size() && identifier_char(text[end])) ++end;
    const std::string name = text.substr(at + macro.size(), end - at - macro.size());
    if (name != "NAME" && !name.empty()) names.insert(name);
  }
  return names;
}

// run() at 1 thread, then again at 1 (a repeated run), 2, 3 and 8 threads (the repeat only, on
// a serial library: testing::thread_counts); every result must have the bits of the first.
// `same` compares two results.
template <class Run, class Same>
void check_thread_invariance(Run run, Same same) {
  const int saved = num_threads();
  set_num_threads(1);
  const auto ref = run();
  for (int threads : testing::thread_counts({1, 2, 3, 8})) {
    set_num_threads(threads);
    CAPTURE(threads);
    CHECK(same(run(), ref));
  }
  set_num_threads(saved);
}

struct VG {
  double value;
  Tensor<float> grad;
};

}  // namespace

TEST_CASE("registry: every loss declared in segloss.hpp has an entry, and every entry a loss") {
  const std::string root = std::string(SEGLOSS_GOLDEN_DIR) + "/../../";
  const std::string umbrella = read_text(root + "segloss.hpp");
  std::set<std::string> declared;
  std::istringstream lines(umbrella);
  for (std::string line; std::getline(lines, line);) {
    const std::string prefix = "#include \"losses/";
    if (line.rfind(prefix, 0) != 0) continue;
    const std::string header = line.substr(10, line.size() - 11);  // losses/....hpp
    for (const auto& name : declared_losses(read_text(root + header))) declared.insert(name);
  }
  // The scan sees the families' headers: it must find at least the losses of the brief.
  CHECK(declared.size() >= 17);
  const auto registered = registry::losses();
  const std::set<std::string> have(registered.begin(), registered.end());
  for (const auto& name : declared) {
    CAPTURE(name);
    CHECK_MESSAGE(have.count(name) == 1, "loss ", name, " has no entry in losses/registry.cpp");
  }
  for (const auto& name : registered) {
    CAPTURE(name);
    CHECK_MESSAGE(declared.count(name) == 1, "registry entry ", name, " names no declared loss");
  }
}

TEST_CASE("registry: entry names are unique, described, and found by loss") {
  std::set<std::string> names;
  for (const auto& e : registry::entries()) {
    CAPTURE(e.name());
    CHECK(names.insert(e.name()).second);
    CHECK(!e.description.empty());
    CHECK(e.make_float);
    CHECK(e.make_double);
  }
  for (const auto& loss : registry::losses()) {
    const auto found = registry::find(loss);
    CHECK(!found.empty());
    for (const auto* e : found) CHECK(e->loss == loss);
  }
  CHECK(registry::find("no_such_loss").empty());
}

TEST_CASE("registry: every entry passes gradcheck, fused vs composed and float vs double") {
  int with_composed = 0;
  std::set<std::string> without;
  for (const auto& e : registry::entries()) {
    CAPTURE(e.name());
    const auto r = registry::check(e);
    INFO("gradcheck: ", r.gradcheck.summary());
    INFO("forward mismatch ", r.forward_mismatch, ", float error ", r.float_error, " (tolerance ",
         e.float_tolerance, "), composed error ", r.composed_error);
    INFO("error: ", r.error);
    CHECK(r.error.empty());
    CHECK(r.gradcheck_passed);
    CHECK(r.gradcheck.checked == registry::default_shape().numel());
    CHECK(r.float_passed);
    CHECK(r.composed_passed);
    CHECK(r.has_composed);  // issue 5: every loss has a composed form (the Lovász ones too)
    CHECK(r.passed);
    if (r.has_composed)
      ++with_composed;
    else
      without.insert(e.loss);
  }
  std::string lacking;
  for (const auto& l : without) lacking += " " + l;
  MESSAGE(with_composed, " of ", registry::entries().size(),
          " entries have a composed form; losses with an entry lacking one:", lacking);
}

TEST_CASE("registry: the checker catches a perturbed gradient for every loss") {
  for (const auto& loss : registry::losses()) {
    const auto* e = registry::find(loss).front();
    CAPTURE(e->name());
    registry::CheckOptions o;
    o.perturb_gradient = 1e-3;
    const auto r = registry::check(*e, o);
    CHECK_FALSE(r.gradcheck_passed);
    CHECK_FALSE(r.passed);
    CHECK(r.gradcheck.failures >= 1);
  }
}

TEST_CASE("registry: every entry is bit-identical at 1, 2, 3 and 8 threads and across runs") {
  // Two chunks of core/parallel.hpp per plane at least (16640 > 16384 elements a plane).
  const Shape shape{2, 2, 64, 260};
  for (const auto& e : registry::entries()) {
    CAPTURE(e.name());
    const auto pf = e.make_float(shape, 5);
    check_thread_invariance(
        [&] {
          VG r;
          r.value = pf.value_and_grad(pf.input, r.grad);
          return r;
        },
        [](const VG& a, const VG& b) {
          return same_bits(a.value, b.value) && same_bits(a.grad, b.grad);
        });
  }
}

TEST_CASE("registry: the metrics are bit-identical at 1, 2, 3 and 8 threads and across runs") {
  const Shape s{2, 3, 64, 260};
  const auto logits = testing::randn<float>(s, 21, 2.0);
  const auto labels = testing::labels<int64_t>({2, 64, 260}, 3, 22, 0.1);
  SUBCASE("confusion matrix from logits") {
    check_thread_invariance(
        [&] {
          ConfusionMatrix cm(3);
          cm.update_from_logits(logits, labels);
          return cm.counts();
        },
        [](const auto& a, const auto& b) { return a == b; });
    check_thread_invariance(
        [&] {
          std::vector<int64_t> all;
          for (const auto& cm : confusion_per_image_from_logits(logits, labels))
            all.insert(all.end(), cm.counts().begin(), cm.counts().end());
          return all;
        },
        [](const auto& a, const auto& b) { return a == b; });
  }
  const auto target = testing::mask<float>(s, 23);
  SUBCASE("dice_score") {
    DiceScoreOptions o;
    o.empty = EmptyPolicy::one;
    check_thread_invariance([&] { return dice_score(logits, target, o); },
                            [](const DiceScoreResult& a, const DiceScoreResult& b) {
                              return same_bits(a.mean, b.mean) && same_bits(a.scores, b.scores) &&
                                     same_bits(a.intersection, b.intersection);
                            });
  }
  SUBCASE("surface_distance") {
    auto pred = Tensor<float>::empty(s);
    for (int64_t i = 0; i < s.numel(); ++i) pred[i] = logits[i] > 0 ? 1.f : 0.f;
    check_thread_invariance(
        [&] { return surface_distance(pred, target); },
        [](const SurfaceDistanceResult& a, const SurfaceDistanceResult& b) {
          return same_bits(a.hausdorff, b.hausdorff) &&
                 same_bits(a.hausdorff_percentile, b.hausdorff_percentile) &&
                 same_bits(a.average_surface_distance, b.average_surface_distance) &&
                 same_bits(a.surface_dice, b.surface_dice) &&
                 same_bits(a.mean_hausdorff_percentile, b.mean_hausdorff_percentile);
        });
  }
}

TEST_CASE("registry: every entry passes its checks on a 1-D signal with N = 1 and on 3-D volumes") {
  for (const Shape& shape : {Shape{1, 2, 7}, Shape{2, 2, 2, 3, 3}}) {
    CAPTURE(shape);
    for (const auto& e : registry::entries()) {
      CAPTURE(e.name());
      registry::CheckOptions o;
      o.shape = shape;
      const auto r = registry::check(e, o);
      INFO("gradcheck: ", r.gradcheck.summary(), "; float error ", r.float_error,
           ", composed error ", r.composed_error, "; error: ", r.error);
      CHECK(r.passed);
    }
  }
}

// segloss-gradcheck: checks the gradients of the registered losses (losses/registry.hpp) and
// prints one row per (loss, preset): the worst error of the analytic gradient against central
// finite differences in double, the fused form against the composed (tape) form, float32
// against double, and pass or fail. Exits 1 when any check fails.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include <segloss/losses/registry.hpp>

#include "../common/cli.hpp"

namespace {

namespace registry = segloss::registry;

constexpr int kOk = 0, kFailed = 1, kUsage = 2;

const char* const kHelp = R"(Usage: segloss-gradcheck [LOSS...] [options]

Checks every registered loss and option preset (losses/registry.hpp), or those of the losses
named (e.g. segloss-gradcheck soft_dice cross_entropy), on seeded random inputs of shape
(2, 3, 5, 6) (labels (2, 5, 6) with about 10% ignored pixels for the multi-class losses):
  grad rel / abs  the fused gradient (value_and_grad) against central finite differences of
                  the forward value, in double, over every element: the worst relative error
                  (among the elements whose magnitude is above the absolute tolerance) and the
                  worst absolute error; an element passes within the entry's rtol (1e-6) plus
                  an absolute term scaled to the value's rounding (1e-14 |value| / eps)
  composed        the largest difference between the fused value and gradient and those of
                  the same loss composed from the autodiff tape's primitives; must be <= 1e-10;
                  '-' where the entry has no composed form
  float           float32 against double on the same inputs, relative to the largest
                  magnitude of the value and of the gradient; the entry's tolerance (5e-6
                  unless it says otherwise)
Reduction none is checked as the scalar <r, loss(x)> for a fixed random r, which exercises the
loss's backward.

Options:
  --list         list the losses, presets and their options, and exit
  --json         print the results as JSON on stdout instead of the table
  --seed S       the inputs' seed (default 7)
  -h, --help     print this help and exit

A progress line is drawn on stderr when stderr is a terminal.

Exit status:
  0  every check passed
  1  a check failed (the row says which), or a loss threw
  2  a usage error (unknown loss or option)
  4  stdout could not be written (a full disk, a closed descriptor)
)";
// Hidden: --self-test-perturb R changes element 0 of every analytic gradient by the relative
// amount R before the gradcheck, so that every row must fail: ctest runs it to show that the
// tool reports a failure and exits 1.

using segloss::tools::UsageError;

struct Options {
  std::vector<std::string> losses;
  bool list = false, json = false, help = false;
  registry::CheckOptions check;
};

Options parse_args(int argc, char** argv) {
  Options o;
  segloss::tools::ArgReader args(argc, argv);
  while (args.next()) {
    const std::string& arg = args.arg();
    if (args.positional()) {
      if (registry::find(arg).empty()) {
        std::string known;
        for (const auto& l : registry::losses()) known += (known.empty() ? "" : ", ") + l;
        throw UsageError{"unknown loss '" + arg + "'; the registered losses are " + known};
      }
      o.losses.push_back(arg);
    } else if (arg == "-h" || arg == "--help") {
      args.no_value();
      o.help = true;
    } else if (arg == "--list") {
      args.no_value();
      o.list = true;
    } else if (arg == "--json") {
      args.no_value();
      o.json = true;
    } else if (arg == "--seed") {
      o.check.seed = static_cast<uint64_t>(
          segloss::tools::parse_int(arg, args.value(), 0, std::numeric_limits<int64_t>::max()));
    } else if (arg == "--self-test-perturb") {
      o.check.perturb_gradient = segloss::tools::parse_number(arg, args.value());
    } else {
      throw UsageError{"unknown option " + arg};
    }
  }
  return o;
}

std::vector<const registry::Entry*> selected(const Options& o) {
  std::vector<const registry::Entry*> r;
  if (o.losses.empty()) {
    for (const auto& e : registry::entries()) r.push_back(&e);
  } else {
    for (const auto& l : o.losses)
      for (const auto* e : registry::find(l)) r.push_back(e);
  }
  return r;
}

std::string json_string(const std::string& s) {
  std::string r = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      r += '\\';
      r += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      r += buf;
    } else {
      r += c;
    }
  }
  return r + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string pass(bool ok) {
  return ok ? "pass" : "FAIL";
}

void print_list(const std::vector<const registry::Entry*>& entries) {
  std::printf("%-22s %-30s %-42s %s\n", "loss", "preset", "input", "options");
  for (const auto* e : entries)
    std::printf("%-22s %-30s %-42s %s\n", e->loss.c_str(), e->preset.c_str(),
                registry::input_kind_name(e->kind), e->description.c_str());
}

int run(int argc, char** argv) {
  Options o;
  try {
    o = parse_args(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "segloss-gradcheck: %s\nTry 'segloss-gradcheck --help'.\n",
                 e.message.c_str());
    return kUsage;
  }
  if (o.help) {
    std::fputs(kHelp, stdout);
    return segloss::tools::finish_output("segloss-gradcheck", kOk);
  }
  const auto entries = selected(o);
  if (o.list) {
    print_list(entries);
    return segloss::tools::finish_output("segloss-gradcheck", kOk);
  }

  const bool progress = isatty(STDERR_FILENO);
  std::vector<registry::CheckResult> results;
  int failed = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (progress) {
      std::fprintf(stderr, "\r\x1b[K[%zu/%zu] %s", i + 1, entries.size(),
                   entries[i]->name().c_str());
      std::fflush(stderr);
    }
    results.push_back(registry::check(*entries[i], o.check));
    if (!results.back().passed) ++failed;
  }
  if (progress) std::fputs("\r\x1b[K", stderr);

  if (o.json) {
    std::printf("{\"entries\": [\n");
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto& e = *entries[i];
      const auto& r = results[i];
      std::printf(
          "  {\"loss\": %s, \"preset\": %s, \"options\": %s, \"input\": %s, "
          "\"grad_rel_error\": %s, \"grad_abs_error\": %s, \"checked\": %lld, "
          "\"forward_mismatch\": %s, \"composed_error\": %s, \"float_error\": %s, "
          "\"float_tolerance\": %s, \"passed\": %s, \"error\": %s}%s\n",
          json_string(e.loss).c_str(), json_string(e.preset).c_str(),
          json_string(e.description).c_str(),
          json_string(registry::input_kind_name(e.kind)).c_str(),
          json_number(r.gradcheck.max_rel_error).c_str(),
          json_number(r.gradcheck.max_abs_error).c_str(),
          static_cast<long long>(r.gradcheck.checked), json_number(r.forward_mismatch).c_str(),
          r.has_composed ? json_number(r.composed_error).c_str() : "null",
          json_number(r.float_error).c_str(), json_number(e.float_tolerance).c_str(),
          r.passed ? "true" : "false", r.error.empty() ? "null" : json_string(r.error).c_str(),
          i + 1 < entries.size() ? "," : "");
    }
    std::printf("], \"checked\": %zu, \"failed\": %d}\n", entries.size(), failed);
  } else {
    std::printf("%-18s %-30s %-10s %-10s %-10s %-10s %-6s %s\n", "loss", "preset", "grad rel",
                "grad abs", "composed", "float", "result", "options");
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto& e = *entries[i];
      const auto& r = results[i];
      char composed[16] = "-";
      if (r.has_composed) std::snprintf(composed, sizeof composed, "%.2e", r.composed_error);
      std::string verdict = pass(r.passed);
      if (!r.passed) {
        if (!r.error.empty()) verdict += " (threw: " + r.error + ")";
        if (r.error.empty() && !r.gradcheck_passed) verdict += " gradient";
        if (r.error.empty() && !r.composed_passed) verdict += " composed";
        if (r.error.empty() && !r.float_passed) verdict += " float";
      }
      std::printf("%-18s %-30s %-10.2e %-10.2e %-10s %-10.2e %-6s %s\n", e.loss.c_str(),
                  e.preset.c_str(), r.gradcheck.max_rel_error, r.gradcheck.max_abs_error, composed,
                  r.float_error, verdict.c_str(), e.description.c_str());
    }
    std::printf("%zu checked, %d failed\n", entries.size(), failed);
  }
  return segloss::tools::finish_output("segloss-gradcheck", failed == 0 ? kOk : kFailed);
}

}  // namespace

int main(int argc, char** argv) {
  return run(argc, argv);
}

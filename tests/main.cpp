// The doctest main of segloss-tests and segloss-eval-tests. ctest runs each test case as
// `segloss-tests --test-case=NAME` (doctest_discover_tests), and doctest exits 0 when the filter
// matches no test case. So a name that does not survive the trip through ctest (ctest splits a
// name at ';', even one clang-format wrapped where tests/CMakeLists.txt's check cannot see it)
// would "pass" without running anything. Here a run that was given a test-case filter and ran
// no test case fails instead.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>

namespace {

// The test run's statistics, from a listener (it reports nothing itself).
struct RunStatistics : doctest::IReporter {
  static bool& ran() {
    static bool r = false;
    return r;
  }
  static unsigned& cases() {
    static unsigned n = 0;
    return n;
  }

  explicit RunStatistics(const doctest::ContextOptions&) {}
  void test_run_end(const doctest::TestRunStats& s) override {
    ran() = true;
    cases() = s.numTestCasesPassingFilters;
  }
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

DOCTEST_REGISTER_LISTENER("segloss_run_statistics", 1, RunStatistics);

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int rc = context.run();
  if (context.shouldExit() || rc != 0 || !RunStatistics::ran()) return rc;  // a query, a failure
  const char* filter = nullptr;
  for (int i = 1; i < argc; ++i)
    for (const char* option : {"--test-case=", "-tc="})
      if (std::strncmp(argv[i], option, std::strlen(option)) == 0) filter = argv[i];
  if (filter && RunStatistics::cases() == 0) {
    std::fprintf(stderr,
                 "%s: no test case matches %s; a ctest name that does not match its test case "
                 "(a ';' in the name?) would otherwise pass without running\n",
                 argv[0], filter);
    return 1;
  }
  return rc;
}

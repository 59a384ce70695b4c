#include "threads.hpp"

#include "error.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace segloss {

int num_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

void set_num_threads(int n) {
  SEGLOSS_CHECK(n >= 1, "set_num_threads", "n is ", n, "; it must be >= 1");
#if defined(_OPENMP)
  omp_set_num_threads(n);
#endif
}

}  // namespace segloss

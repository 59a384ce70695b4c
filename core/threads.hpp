// The number of threads segloss's CPU loops use.
#pragma once

namespace segloss {

// OpenMP's current setting for the calling thread (omp_get_max_threads, which OMP_NUM_THREADS
// and omp_set_num_threads control), or 1 in a build without OpenMP. Results never depend on
// it: reductions are bit-identical at any thread count.
int num_threads();

// Sets it (omp_set_num_threads) for later calls from the calling thread; n >= 1. A no-op in a
// build without OpenMP.
void set_num_threads(int n);

}  // namespace segloss

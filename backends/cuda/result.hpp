// Where a CUDA call puts its reduced value (not installed; no CUDA header): a host double, for
// which the call waits on its stream, or one element of device memory, written on the stream
// without a wait. Neither: the value is not wanted.
#pragma once

namespace segloss {
namespace cuda {

template <class T>
struct Result {
  double* host = nullptr;
  T* device = nullptr;
};

}  // namespace cuda
}  // namespace segloss

// CUDA kernel of dice_score (metrics/dice_score.hpp has the contract and the math). Host-side
// declarations only: no CUDA header, so metrics/dice_score.cpp can include it.
//
// One reducing pass over each plane's scored box (the border cropped) on the current stream:
// per element the hard prediction q (the CPU's exact rule: q = [sigmoid(x) > threshold], or
// round half to even), and the three sums I = sum q t, P = sum q, G = sum t in double, per block
// and then per plane in a fixed order (runtime.cuh's plane_pass and combine: the same bits on
// every run). Under check_binary each thread reports a non-binary value by an integer atomicMin
// on 2 * index + (1 for pred), so the smallest key is the CPU's first bad value (the target's
// before the pred's at one index). The per-plane sums and the key come back to the host, which
// waits for the stream: a metric's result is a host value.
#pragma once

#include "../cpu/dice_score.hpp"

namespace segloss {
namespace cuda {

// As cpu::dice_score_statistics, for device pointers a.pred and a.target; stats is host memory
// (planes * 3 doubles). `function` names the call in the messages of CUDA errors.
template <class T>
cpu::DiceBadValue dice_score_statistics(const char* function, const cpu::DiceScoreArgs<T>& a,
                                        double* stats);

}  // namespace cuda
}  // namespace segloss

// CPU kernel of dice_score (metrics/dice_score.hpp has the contract and the math).
#pragma once

#include <cstdint>

namespace segloss {
namespace cpu {

template <class T>
struct DiceScoreArgs {
  const T* pred = nullptr;    // logits or probabilities, planes * plane_size elements
  const T* target = nullptr;  // same layout
  int64_t planes = 0;
  int64_t extent[3] = {1, 1, 1};  // spatial extents, padded in front with 1 to three axes
  int64_t begin[3] = {0, 0, 0};   // the scored box per axis: [begin, end)
  int64_t end[3] = {1, 1, 1};
  bool sigmoid = true;  // p = sigmoid(x), else p = x
  bool round = false;   // q = round half to even (p), else q = [p > threshold]
  T threshold = T(0.5);
  bool check_target = false;  // find the first target value that is not 0 or 1
  bool check_pred = false;    // the same for pred
};

// The first value that failed check_binary: its linear index in the tensor (-1: none).
struct DiceBadValue {
  int64_t index = -1;
  double value = 0.0;
  bool in_pred = false;
};

// stats[plane * 3 + {0, 1, 2}] = I, P, G over the plane's scored box, summed in double
// (deterministic: fixed chunks combined in order). Returns the first non-binary value (lowest
// index; the target's before the pred's at one index) when a check is on.
template <class T>
DiceBadValue dice_score_statistics(const DiceScoreArgs<T>& a, double* stats);

}  // namespace cpu
}  // namespace segloss

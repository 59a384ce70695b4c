// Options shared by the losses.
#pragma once

#include <cstdint>

namespace segloss {

// How a loss reduces its per-element (or per-score) values, as in PyTorch:
//   none: the values themselves; mean: their mean; sum: their sum.
enum class Reduction { none, mean, sum };

inline const char* reduction_name(Reduction r) {
  return r == Reduction::none ? "none" : r == Reduction::mean ? "mean" : "sum";
}

// What a loss's input holds: raw logits (sigmoid applied inside) or probabilities.
enum class Activation { sigmoid, none };

}  // namespace segloss

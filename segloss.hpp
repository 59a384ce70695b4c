// segloss: segmentation losses with exact gradients, and segmentation metrics.
// Include this header for the whole public API.
#pragma once

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/gradcheck.hpp"
#include "core/reduction.hpp"
#include "core/result.hpp"
#include "core/shape.hpp"
#include "core/tensor.hpp"
#include "core/threads.hpp"
#include "losses/bce_dice.hpp"
#include "losses/bce_with_logits.hpp"
#include "losses/binary_cross_entropy.hpp"
#include "losses/cross_entropy.hpp"
#include "losses/overlap.hpp"
#include "losses/soft_dice.hpp"
#include "losses/generalized_dice.hpp"
#include "losses/soft_jaccard.hpp"
#include "losses/softmax_overlap.hpp"
#include "losses/tversky.hpp"
#include "metrics/confusion_matrix.hpp"
#include "metrics/scores.hpp"

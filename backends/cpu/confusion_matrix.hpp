// CPU kernels of ConfusionMatrix (metrics/confusion_matrix.hpp has the contract).
#pragma once

#include <cstdint>

namespace segloss {
namespace cpu {

// Which pixels count. A pixel counts when its true label t is not ignore_index and lies in
// [0, classes); a true label outside that range is dropped (drop_out_of_range) or is an error.
// A counted pixel's predicted label p must lie in [0, classes), else it is an error.
struct HistRule {
  int64_t classes = 0;
  int64_t ignore_index = -100;
  bool drop_out_of_range = false;
};

// The first offending pixel (linear index into the labels given to the kernel), or -1; and
// which label was wrong there. On an error the histogram is left unchanged.
struct HistResult {
  int64_t first_bad = -1;
  bool bad_is_pred = false;
};

// hist[t * C + p] += the number of counted pixels with true label t and predicted label p, over
// `count` pixels of the two label maps.
template <class P, class L>
HistResult confusion_from_labels(const P* pred, const L* truth, int64_t count, const HistRule& rule,
                                 int64_t* hist);

// The same with p = argmax over the class axis of logits (images, C, pixels), C = rule.classes,
// truth (images, pixels). Ties go to the lowest class index and a NaN logit is the maximum (its
// first occurrence wins), as torch.argmax and numpy.argmax. No argmax tensor is made: a block of
// pixels keeps its running maximum and index in a small buffer while the class rows stream by.
template <class T, class L>
HistResult confusion_from_logits(const T* logits, const L* truth, int64_t images, int64_t pixels,
                                 const HistRule& rule, int64_t* hist);

}  // namespace cpu
}  // namespace segloss

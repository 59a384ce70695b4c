/* c_api_demo: segloss from C (C99) through <segloss/capi/segloss.h>: a loss's value and gradient,
 * an error's status and message, and a confusion matrix with its scores. Exits 1 when a value is
 * not the one computed by hand, so the tests run it.
 *
 * Build by hand against an installed segloss:
 *   cc -std=c99 c_api_demo.c $(pkg-config --cflags --libs segloss) -lm -o c_api_demo */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <segloss/capi/segloss.h>

static int failures = 0;

static void expect(int ok, const char* what) {
  printf("%s %s\n", ok ? "ok:  " : "FAIL:", what);
  if (!ok) ++failures;
}

int main(void) {
  printf("segloss %s (C ABI %d)\n", segloss_version(), segloss_abi_version());
  expect(segloss_abi_version() == SEGLOSS_C_ABI_VERSION, "library and header ABI versions agree");

  /* 1. BCE with logits and soft Dice on a 1 x 1 x 2 x 2 image: the caller owns every buffer. */
  float logits[4] = {2.0f, -1.0f, 0.5f, -3.0f};
  float target[4] = {1.0f, 0.0f, 1.0f, 0.0f};
  float grad[4];
  const int64_t shape[4] = {1, 1, 2, 2};
  const segloss_tensor x = segloss_tensor_make(logits, SEGLOSS_F32, 4, shape);
  const segloss_tensor z = segloss_tensor_make(target, SEGLOSS_F32, 4, shape);
  const segloss_tensor g = segloss_tensor_make(grad, SEGLOSS_F32, 4, shape);

  double bce = 0.0;
  segloss_status s = segloss_bce_with_logits_value_and_grad(&x, &z, NULL, &bce, &g, NULL);
  /* By hand: mean of softplus(-x) for z = 1 and softplus(x) for z = 0; gradient (p - z) / 4. */
  double want = 0.0;
  int i;
  for (i = 0; i < 4; ++i) {
    const double xi = logits[i];
    want += target[i] > 0.5f ? log1p(exp(-xi)) : log1p(exp(xi));
  }
  want /= 4.0;
  printf("bce_with_logits = %.7f (by hand %.7f), grad[0] = %.7f\n", bce, want, grad[0]);
  expect(s == SEGLOSS_OK && fabs(bce - want) < 1e-6, "bce_with_logits value");
  expect(fabs(grad[0] - (1.0 / (1.0 + exp(-2.0)) - 1.0) / 4.0) < 1e-6, "bce_with_logits gradient");

  /* Soft Dice with options: the defaults, then one score over the batch and reduction sum. */
  segloss_overlap_options dice_options;
  segloss_overlap_options_init(&dice_options);
  dice_options.per_image = 0;
  dice_options.reduction = SEGLOSS_REDUCTION_SUM;
  double dice = 0.0;
  s = segloss_soft_dice_value_and_grad(&x, &z, &dice_options, &dice, &g, NULL);
  {
    double inter = 0.0, p_sum = 0.0, t_sum = 0.0, score;
    for (i = 0; i < 4; ++i) {
      const double p = 1.0 / (1.0 + exp(-(double)logits[i]));
      inter += p * target[i];
      p_sum += p;
      t_sum += target[i];
    }
    score = (2.0 * inter + 1e-5) / (p_sum + t_sum + 1e-5);
    printf("soft_dice = %.7f (by hand %.7f)\n", dice, 1.0 - score);
    expect(s == SEGLOSS_OK && fabs(dice - (1.0 - score)) < 1e-6, "soft_dice value");
  }

  /* 2. An error: a target of another shape. The status says what kind, the message where. */
  {
    const int64_t bad_shape[4] = {1, 1, 2, 1};
    const segloss_tensor bad = segloss_tensor_make(target, SEGLOSS_F32, 4, bad_shape);
    s = segloss_bce_with_logits_value_and_grad(&x, &bad, NULL, &bce, &g, NULL);
    printf("bad target: %s: %s\n", segloss_status_name(s), segloss_last_error());
    expect(s == SEGLOSS_ERROR_INVALID_ARGUMENT,
           "a shape mismatch is SEGLOSS_ERROR_INVALID_ARGUMENT");
    expect(strstr(segloss_last_error(), "(1,1,2,1)") != NULL, "the message names the shape");
    s = segloss_bce_with_logits_value_and_grad(&x, &z, NULL, NULL, &g, NULL);
    printf("no value pointer: %s: %s\n", segloss_status_name(s), segloss_last_error());
    expect(s == SEGLOSS_ERROR_NULL_POINTER, "a NULL output is SEGLOSS_ERROR_NULL_POINTER");
  }

  /* 3. A confusion matrix over 3 classes from two label maps, then its scores. */
  {
    int32_t truth[8] = {0, 0, 1, 1, 2, 2, 2, -100};
    int32_t pred[8] = {0, 1, 1, 1, 2, 2, 0, 2};
    const int64_t label_shape[2] = {2, 4};
    const segloss_tensor t = segloss_tensor_make(truth, SEGLOSS_I32, 2, label_shape);
    const segloss_tensor p = segloss_tensor_make(pred, SEGLOSS_I32, 2, label_shape);
    segloss_confusion_matrix* cm = NULL;
    segloss_fcn_scores scores;
    double iou[3], macro_dice = 0.0;
    int64_t counts[9];
    s = segloss_confusion_matrix_create(3, NULL, &cm);
    expect(s == SEGLOSS_OK, "confusion matrix created");
    s = segloss_confusion_matrix_update(cm, &p, &t, NULL);
    expect(s == SEGLOSS_OK, "confusion matrix updated (the pixel labelled -100 is ignored)");
    segloss_confusion_matrix_counts(cm, counts, 9);
    printf("counts (rows: truth, columns: prediction):\n");
    for (i = 0; i < 3; ++i)
      printf("  %lld %lld %lld\n", (long long)counts[3 * i], (long long)counts[3 * i + 1],
             (long long)counts[3 * i + 2]);
    segloss_confusion_matrix_fcn_scores(cm, &scores, iou, 3);
    segloss_confusion_matrix_average_score(cm, SEGLOSS_SCORE_DICE, SEGLOSS_AVERAGE_MACRO, NULL,
                                           &macro_dice);
    printf("pixel accuracy %.4f, mean class accuracy %.4f, mean IoU %.4f, fw IoU %.4f\n",
           scores.pixel_accuracy, scores.mean_class_accuracy, scores.mean_iou, scores.fw_iou);
    printf("IoU per class %.4f %.4f %.4f, macro Dice %.4f\n", iou[0], iou[1], iou[2], macro_dice);
    /* 7 pixels counted, 5 on the diagonal; IoU 1/3 (class 0), 2/3 (class 1), 2/3 (class 2). */
    expect(fabs(scores.pixel_accuracy - 5.0 / 7.0) < 1e-12, "pixel accuracy 5/7");
    expect(fabs(iou[0] - 1.0 / 3.0) < 1e-12 && fabs(iou[1] - 2.0 / 3.0) < 1e-12 &&
               fabs(iou[2] - 2.0 / 3.0) < 1e-12,
           "per-class IoU");
    expect(fabs(scores.mean_iou - 5.0 / 9.0) < 1e-12, "mean IoU 5/9");
    segloss_confusion_matrix_destroy(cm);
  }

  printf("%s\n", failures == 0 ? "c_api_demo: all checks passed" : "c_api_demo: FAILED");
  return failures == 0 ? 0 : 1;
}

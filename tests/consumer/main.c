/* Built against an installed segloss through the C API (find_package or pkg-config): soft Dice
 * on the data of main.cpp must equal the C++ consumer's value, given as argv[1]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <segloss/capi/segloss.h>

int main(int argc, char** argv) {
  double logits[48], target[48], grad[48], value = 0.0, expected;
  const int64_t shape[3] = {2, 3, 8};
  segloss_tensor x, t, g;
  segloss_status s;
  int i;
  if (argc != 2) {
    fprintf(stderr, "usage: %s <soft_dice value of the C++ consumer>\n", argv[0]);
    return 2;
  }
  expected = strtod(argv[1], NULL);
  for (i = 0; i < 48; ++i) {
    logits[i] = sin((double)i);
    target[i] = i % 3 == 0 ? 1.0 : 0.0;
  }
  x = segloss_tensor_make(logits, SEGLOSS_F64, 3, shape);
  t = segloss_tensor_make(target, SEGLOSS_F64, 3, shape);
  g = segloss_tensor_make(grad, SEGLOSS_F64, 3, shape);
  s = segloss_soft_dice_value_and_grad(&x, &t, NULL, &value, &g, NULL);
  if (s != SEGLOSS_OK) {
    fprintf(stderr, "consumer (C): %s\n", segloss_last_error());
    return 1;
  }
  printf("consumer (C, segloss %s): soft_dice = %.17g (C++: %.17g)\n", segloss_version(), value,
         expected);
  return fabs(value - expected) <= 1e-15 * fabs(expected) ? 0 : 1;
}

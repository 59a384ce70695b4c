// The installed headers under a consumer's strict warnings: run.sh compiles this file with
// -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow -Wold-style-cast
// -Wdouble-promotion -Werror. An explicit instantiation compiles every member of a class
// template, so the header code a consumer can reach (Tensor, Shape, the tape) is all checked,
// not only what one program happens to call.
#include <segloss/segloss.hpp>

template class segloss::Tensor<float>;
template class segloss::Tensor<double>;
template class segloss::Tensor<int32_t>;
template class segloss::Tensor<int64_t>;
template class segloss::Tensor<segloss::float16>;
template class segloss::Tensor<segloss::bfloat16>;
template class segloss::ad::Tape<float>;
template class segloss::ad::Tape<double>;
template class segloss::ad::Var<float>;
template class segloss::ad::Var<double>;

int main() {
  const segloss::Shape s{2, 3, 4, 5};
  return s.numel() == 120 && s.numel_from(1) == 60 && s.position(119) == "(1,2,3,4)" ? 0 : 1;
}

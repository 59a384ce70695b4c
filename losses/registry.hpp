// @brief The loss registry: every loss of segloss with its option presets, as type-erased
// problems that the tests, segloss-gradcheck and the determinism checks loop over.
//
// An entry is one (loss, preset): the loss's name as in its header ("soft_dice"), a preset name
// ("batch_squared") and a one-line description of the options it sets, the kind of input it
// takes, and a factory that builds a Problem for a logits shape (N, C, spatial...) and a seed.
// A Problem holds valid random inputs (targets or labels, with ignored pixels and an empty
// target plane where the loss has them; weights, class weights, pos_weight the preset asks for)
// and closures over them:
//   value(x)                the loss at input x (the forward call; a scalar);
//   value_and_grad(x, g)    the fused call, writing d(loss)/dx into g (shaped like x);
//   composed(x, g)          the same loss written from the autodiff tape's primitives, or an
//                           empty function where the entry has none.
// x is what the gradient is taken with respect to: logits, or probabilities for the entries of
// kind `probabilities`. Reductions mean and sum are called as they are; reduction none is made
// a scalar as <r, loss(x)> with a fixed random r of the per-element (or per-score) shape: value
// is the forward's output dotted with r, and the gradient is backward(x, r). So every entry is
// a scalar function of x, and `none` also checks each loss's backward.
//
// float and double: make_float and make_double draw the same numbers (every floating input is
// rounded to float first), so the two problems differ only in the precision of the loss.
//
// Tolerances: an entry says how far its float32 result may be from the double one (relative to
// the largest magnitude), and the gradcheck's eps and rtol; check() applies them. check() is
// what segloss-gradcheck prints and what tests/test_registry.cpp asserts.
//
// Adding a loss: declare it in its header, then add entries in losses/registry.cpp (the test
// "registry: every loss declared in segloss.hpp has an entry" fails until you do).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../core/gradcheck.hpp"
#include "../core/half.hpp"
#include "../core/result.hpp"
#include "../core/shape.hpp"
#include "../core/tensor.hpp"

namespace segloss::registry {

// What a loss reads.
enum class InputKind {
  binary_logits,      // logits (N, C, ...) and a target of the same shape in [0, 1]
  probabilities,      // probabilities (N, C, ...) in (0, 1) and a target of the same shape
  multiclass_labels,  // logits (N, C, ...) and int labels (N, ...), some ignored
  multiclass_probs,   // logits (N, C, ...) and probabilities (N, C, ...) summing to 1 over C
};

const char* input_kind_name(InputKind kind);

template <class T>
struct Problem {
  Tensor<T> input;  // logits or probabilities: the point where the loss is evaluated
  // The scale of the value's rounding: |value| for mean and sum, sum_i |r_i loss_i| for none.
  double magnitude = 0;
  std::function<double(const Tensor<T>& x)> value;
  std::function<double(const Tensor<T>& x, Tensor<T>& grad)> value_and_grad;
  std::function<double(const Tensor<T>& x, Tensor<T>& grad)> composed;  // empty: none
};

// An entry's problem with 16-bit logits (losses/half_logits.hpp), H = float16 or bfloat16: the
// entry's numbers rounded to H (x, a dense target, every option tensor; labels as they are), so
// every input is exactly representable in H, and closures over the entry's 16-bit calls, every
// public form, and over the float loss's calls on the same inputs widened to float (exact): the
// 16-bit path's contract is that its value is the float value and its gradient (and per-element
// loss) that float result rounded to H once (tests/test_half_all.cpp, and on CUDA
// tests/test_cuda_half_all.cpp). Each closure takes CPU tensors, runs the call on the problem's
// device (with the target and option tensors there) and returns CPU tensors; the into-buffer
// closures pass undefined buffers (the call allocates them) and copy the results back.
template <class H>
struct HalfProblem {
  Tensor<H> input;      // x, exactly as it is widened: to_float(input) is the float loss's x
  Tensor<H> grad_out;   // for backward: the forward's shape (one element for mean and sum)
  bool reduced = true;  // mean or sum: the value_and_grad forms apply (not for none)
  std::function<Tensor<H>(const Tensor<H>& x)> forward;
  std::function<Tensor<H>(const Tensor<H>& x, const Tensor<H>& grad_out)> backward;
  std::function<double(const Tensor<H>& x, Tensor<H>& grad)> value_and_grad;  // the double form
  std::function<ValueAndGrad<H>(const Tensor<H>& x)> value_and_grad_returned;
  std::function<void(const Tensor<H>& x, Tensor<H>& grad, Tensor<H>& value)> value_and_grad_value;
  // The float loss on the widened target and options, same forms.
  std::function<Tensor<float>(const Tensor<float>& x)> forward_float;
  std::function<Tensor<float>(const Tensor<float>& x, const Tensor<float>& grad_out)>
      backward_float;
  std::function<double(const Tensor<float>& x, Tensor<float>& grad)> value_and_grad_float;
  std::function<void(const Tensor<float>& x, Tensor<float>& grad, Tensor<float>& value)>
      value_and_grad_value_float;
};

struct Entry {
  std::string loss;         // the function's name: soft_dice, cross_entropy, ...
  std::string preset;       // the option preset: default, sum, batch_squared, ...
  std::string description;  // the options set, in one line
  InputKind kind = InputKind::binary_logits;
  // The gradcheck (core/gradcheck.hpp) step and relative tolerance; the absolute tolerance is
  // scaled to the loss's rounding by check().
  double eps = 1e-6;
  double rtol = 1e-6;
  // float32 against double: |value_f - value_d| and max_i |grad_f - grad_d| relative to
  // max(magnitude, 1e-3) and max_i |grad_d|. Measured at most 4e-7 on the default shape
  // (float's unit roundoff is 6e-8; the per-element math rounds a few times): 5e-6 leaves a
  // margin of ten.
  double float_tolerance = 5e-6;
  std::function<Problem<float>(const Shape&, uint64_t seed)> make_float;
  std::function<Problem<double>(const Shape&, uint64_t seed)> make_double;
  // The same problem (the same numbers) with the loss run on `device`: Device::cuda copies the
  // target and every option tensor (weights, class weights, pos_weight, alpha) to the GPU, and
  // its closures copy x there, run the loss's CUDA path (the composed form on a CUDA tape) and
  // copy the gradient back, so x and g stay CPU tensors and a CUDA problem is compared with the
  // CPU one element for element (tests/test_cuda_registry.cpp). Device::cpu gives make_float's
  // problem.
  std::function<Problem<float>(const Shape&, uint64_t seed, Device)> make_float_on;
  std::function<Problem<double>(const Shape&, uint64_t seed, Device)> make_double_on;
  // The same problem with 16-bit logits (HalfProblem), on `device`.
  std::function<HalfProblem<float16>(const Shape&, uint64_t seed, Device)> make_float16_on;
  std::function<HalfProblem<bfloat16>(const Shape&, uint64_t seed, Device)> make_bfloat16_on;

  std::string name() const { return loss + "/" + preset; }
};

// Every entry, in a fixed order (grouped by loss).
const std::vector<Entry>& entries();

// The names of the registered losses, in the order of entries(), each once.
std::vector<std::string> losses();

// The entries of one loss (none when the name is unknown).
std::vector<const Entry*> find(const std::string& loss);

// The shape check() and the tests use: (2, 3, 5, 6), small enough for a full gradcheck.
Shape default_shape();

struct CheckOptions {
  Shape shape = default_shape();
  uint64_t seed = 7;
  int64_t samples = 0;  // gradcheck samples; 0: every element
  // Self-test of the checker (segloss-gradcheck --self-test-perturb): the analytic gradient's
  // element 0 is changed by this relative amount before the gradcheck; it must then fail.
  double perturb_gradient = 0.0;
};

struct CheckResult {
  GradcheckResult gradcheck;    // analytic (value_and_grad) against finite differences
  double forward_mismatch = 0;  // |value_and_grad's value - value| / max(magnitude, 1e-3)
  bool has_composed = false;
  double composed_error = 0;  // max over value and gradient of |fused - composed|
  double float_error = 0;     // float32 against double, relative (see Entry)
  double value = 0;           // the double loss
  bool gradcheck_passed = false;
  bool composed_passed = true;  // true when there is no composed form
  bool float_passed = false;
  bool passed = false;
  std::string error;  // an exception's message, when a call threw (then passed = false)
};

// The composed form must match the fused one to this, absolutely, in double (issue 5).
constexpr double kComposedTolerance = 1e-10;

CheckResult check(const Entry& entry, const CheckOptions& options = {});

}  // namespace segloss::registry

// The tape and its primitives. Each op is its forward, then a backward closure that adds
// dL/d(input) = dL/d(output) * d(output)/d(input) into the inputs' gradients.
#include "tape.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "../backends/cuda/tape_ops.hpp"
#include "checks.hpp"
#include "parallel.hpp"

namespace segloss {
namespace detail {
// dst = scale * src (assign) or dst += scale * src on the current CUDA stream: defined by the
// CUDA backend (backends/cuda/tape.cu), or failing below in a build without it.
template <class T>
void tape_scale_add(T* dst, const T* src, double scale, int64_t n, bool assign);
#if !defined(SEGLOSS_WITH_CUDA)
template <class T>
void tape_scale_add(T*, const T*, double, int64_t, bool) {
  fail("ad::Tape::backward", "a CUDA gradient, but this build has no CUDA backend");
}
template void tape_scale_add<float>(float*, const float*, double, int64_t, bool);
template void tape_scale_add<double>(double*, const double*, double, int64_t, bool);
// The primitives' device functions (backends/cuda/tape_ops.hpp): never reached in a build without
// CUDA, where no tape value can be on the device (Tape::leaf refuses it).
namespace {
[[noreturn]] void no_cuda_backend() {
  fail("ad::Tape", "a CUDA value, but this build has no CUDA backend");
}
}  // namespace
template <class T>
void tape_unary(TapeUnary, const T*, T*, int64_t, T, T) {
  no_cuda_backend();
}
template <class T>
void tape_unary_grad(TapeUnary, const T*, const T*, const T*, T*, int64_t, T, T) {
  no_cuda_backend();
}
template <class T>
void tape_binary(TapeBinary, const T*, const T*, T*, const TapeLayout&, int64_t) {
  no_cuda_backend();
}
template <class T>
void tape_binary_grad(TapeBinary, int, const T*, const T*, const T*, const T*, T*,
                      const TapeLayout&, int64_t, int64_t, bool) {
  no_cuda_backend();
}
template <class T>
void tape_reduce(const T*, T*, const TapeLayout&, int64_t, double) {
  no_cuda_backend();
}
template <class T>
void tape_class_sum(const T*, T*, int64_t, int64_t, int64_t) {
  no_cuda_backend();
}
template <class T>
void tape_broadcast_grad(const T*, T*, const TapeLayout&, int64_t, double) {
  no_cuda_backend();
}
template <class T>
void tape_where(const T*, const T*, const T*, T*, const TapeLayout&, int64_t) {
  no_cuda_backend();
}
template <class T>
void tape_where_grad(const T*, const T*, T*, bool, const TapeLayout&, int64_t) {
  no_cuda_backend();
}
template <class T>
void tape_softmax(bool, const T*, T*, int64_t, int64_t, int64_t) {
  no_cuda_backend();
}
template <class T>
void tape_softmax_grad(bool, const T*, const T*, T*, int64_t, int64_t, int64_t) {
  no_cuda_backend();
}
template <class T>
void tape_sort_desc(const T*, T*, int64_t*, const std::vector<int64_t>&) {
  no_cuda_backend();
}
template <class T>
void tape_permute_grad(const int64_t*, const T*, T*, int64_t) {
  no_cuda_backend();
}
template <class T>
void tape_group_op(TapeGroup, const T*, T*, const std::vector<int64_t>&, bool) {
  no_cuda_backend();
}
template <class T>
void tape_gather(const T*, const int64_t*, bool, T*, int64_t) {
  no_cuda_backend();
}
template <class T>
void tape_gather_grad(const T*, T*, const std::vector<int64_t>&, const std::vector<int64_t>&) {
  no_cuda_backend();
}
template <class T, class L>
int64_t tape_one_hot(const L*, T*, int64_t, int64_t, int64_t, int64_t, int64_t*) {
  no_cuda_backend();
}
template <class T, class L>
void tape_valid_mask(const L*, T*, int64_t, int64_t) {
  no_cuda_backend();
}
#endif
}  // namespace detail

}  // namespace segloss

namespace segloss::ad {

// ---------------------------------------------------------------------------------------------
// Var and Tape
// ---------------------------------------------------------------------------------------------

template <class T>
Tape<T>& Var<T>::tape() const {
  SEGLOSS_CHECK(tape_ != nullptr, "ad::Var", "the Var is undefined (default-constructed)");
  return *tape_;
}
template <class T>
const Tensor<T>& Var<T>::value() const {
  return tape().node(*this).value;
}
template <class T>
bool Var<T>::requires_grad() const {
  return tape().node(*this).requires_grad;
}
template <class T>
double Var<T>::item() const {
  const Tensor<T> v = value().device() == Device::cpu ? value() : value().to(Device::cpu);
  SEGLOSS_CHECK(v.numel() == 1, "ad::Var::item", "the value ", v.shape(),
                " has more than one element");
  return static_cast<double>(v[0]);
}

template <class T>
void Tape<T>::check_var(const char* op, const Var<T>& v) const {
  SEGLOSS_CHECK(v.tape_ != nullptr, op, "a Var is undefined (default-constructed)");
  SEGLOSS_CHECK(v.tape_ == this, op, "Var #", v.id_, " belongs to another tape");
  SEGLOSS_CHECK(v.generation_ == generation_, op, "Var #", v.id_,
                " was made before the tape was cleared");
  SEGLOSS_CHECK(v.id_ >= 0 && v.id_ < size(), op, "Var #", v.id_, " is not on the tape (", size(),
                " nodes)");
}
template <class T>
void Tape<T>::check_cpu_var(const char* op, const Var<T>& v) const {
  check_var(op, v);
  const Tensor<T>& value = nodes_[static_cast<size_t>(v.id_)].value;
  SEGLOSS_CHECK(value.device() == Device::cpu, op, "Var #", v.id_, " ", value.shape(),
                " is on device ", device_name(value.device()), ", but ", op,
                " computes on the CPU only (every primitive of core/tape.hpp has a CUDA path; "
                "this check is for ops recorded with Tape::record that have none)");
}
template <class T>
const typename Tape<T>::Node& Tape<T>::node(const Var<T>& v) const {
  check_var("ad::Tape", v);
  return nodes_[static_cast<size_t>(v.id_)];
}
template <class T>
typename Tape<T>::Node& Tape<T>::node(const Var<T>& v) {
  check_var("ad::Tape", v);
  return nodes_[static_cast<size_t>(v.id_)];
}

template <class T>
Var<T> Tape<T>::push(Node n) {
  nodes_.push_back(std::move(n));
  return Var<T>(this, size() - 1, generation_);
}

template <class T>
Var<T> Tape<T>::leaf(const Tensor<T>& value, bool requires_grad) {
  SEGLOSS_CHECK(value.defined(), "ad::Tape::leaf", "the tensor is undefined");
  detail::check_input_device("ad::Tape::leaf", "the tensor", value, /*cuda_path=*/true);
  Node n;
  n.op = requires_grad ? "leaf" : "constant";
  n.value = value;
  n.requires_grad = requires_grad;
  return push(std::move(n));
}
template <class T>
Var<T> Tape<T>::constant(const Tensor<T>& value) {
  return leaf(value, false);
}
template <class T>
Var<T> Tape<T>::scalar(double value) {
  return constant(Tensor<T>::full(Shape{}, static_cast<T>(value)));
}

template <class T>
Var<T> Tape<T>::record(const char* op, Tensor<T> value, const std::vector<Var<T>>& inputs,
                       Backward backward) {
  SEGLOSS_CHECK(value.defined(), op, "the value to record is undefined");
  Node n;
  n.op = op;
  n.value = std::move(value);
  for (const Var<T>& v : inputs) {
    check_var(op, v);
    n.inputs.push_back(v.id_);
    n.requires_grad = n.requires_grad || nodes_[static_cast<size_t>(v.id_)].requires_grad;
  }
  if (n.requires_grad) n.backward = std::move(backward);
  return push(std::move(n));
}

template <class T>
void Tape<T>::backward(const Var<T>& loss) {
  check_var("ad::Tape::backward", loss);
  const Node& l = nodes_[static_cast<size_t>(loss.id_)];
  SEGLOSS_CHECK(l.value.numel() == 1, "ad::Tape::backward", "the loss (", l.op, ", Var #", loss.id_,
                ") has shape ", l.value.shape(),
                "; backward starts from a one-element scalar (reduce it with sum or mean)");
  if (l.value.device() == Device::cuda) detail::device_take_pending("ad::Tape::backward");
  for (Node& n : nodes_) {
    n.grad = Tensor<T>();
    n.grad_adopted = false;
  }
  has_grads_ = false;
  if (l.requires_grad) {
    try {
      nodes_[static_cast<size_t>(loss.id_)].grad =
          Tensor<T>::full(l.value.shape(), T(1), l.value.device());
      // The tape is in topological order: every node's inputs come before it.
      for (int64_t i = loss.id_; i >= 0; --i) {
        Node& n = nodes_[static_cast<size_t>(i)];
        if (!n.backward || !n.grad.defined()) continue;
        const Tensor<T> g = n.grad;  // a handle: the closure may add into an input's buffer
        n.backward(*this, g);
      }
    } catch (...) {  // no gradient half made: grad() asks for a backward that completes
      for (Node& n : nodes_) n.grad = Tensor<T>();
      throw;
    }
  }
  has_grads_ = true;
}

template <class T>
const Tensor<T>& Tape<T>::grad(const Var<T>& v) const {
  check_var("ad::Tape::grad", v);
  const Node& n = nodes_[static_cast<size_t>(v.id_)];
  SEGLOSS_CHECK(n.requires_grad, "ad::Tape::grad", "Var #", v.id_, " (", n.op,
                ") does not require a gradient (a constant, or computed from constants only)");
  SEGLOSS_CHECK(has_grads_, "ad::Tape::grad",
                "no gradients: call backward(loss) first (a backward that raised an error "
                "leaves none)");
  Node& m = const_cast<Node&>(n);  // the zeros of a node the loss does not reach
  if (!m.grad.defined()) m.grad = Tensor<T>::zeros(n.value.shape(), n.value.device());
  return m.grad;
}

template <class T>
Tensor<T>& Tape<T>::grad_buffer(const Var<T>& v) {
  Node& n = node(v);
  if (!n.grad.defined()) {
    n.grad = Tensor<T>::zeros(n.value.shape(), n.value.device());
  } else if (n.grad_adopted) {  // copy on write: another node still holds this tensor
    n.grad = n.grad.clone();
    n.grad_adopted = false;
  }
  return n.grad;
}

template <class T>
void Tape<T>::accumulate(const Var<T>& v, const Tensor<T>& contribution, double scale, bool adopt) {
  Node& n = node(v);
  if (!n.requires_grad) return;
  // Checked before anything is adopted or allocated (and backward drops every gradient when one
  // fails), so a caught error leaves no gradient half made.
  SEGLOSS_CHECK(contribution.defined() && contribution.shape() == n.value.shape(),
                "ad::Tape::backward", "a gradient of shape ",
                contribution.defined() ? contribution.shape().str() : std::string("(undefined)"),
                " flows into Var #", v.id_, " (", n.op, ") of shape ", n.value.shape());
  SEGLOSS_CHECK(contribution.device() == n.value.device(), "ad::Tape::backward", "a gradient on ",
                device_name(contribution.device()), " flows into Var #", v.id_, " on ",
                device_name(n.value.device()));
  if (!n.grad.defined() && adopt && scale == 1.0) {
    n.grad = contribution;
    n.grad_adopted = true;
    return;
  }
  const bool fresh = !n.grad.defined();
  Tensor<T>& g =
      fresh ? (n.grad = Tensor<T>::empty(n.value.shape(), n.value.device())) : grad_buffer(v);
  if (g.device() == Device::cuda) {  // a fused loss node's gradient on the device
    detail::tape_scale_add(g.data(), contribution.data(), scale, g.numel(), fresh);
    return;
  }
  const T s = static_cast<T>(scale);
  T* gd = g.data();
  const T* c = contribution.data();
  detail::for_each_chunk(detail::ChunkGrid(1, g.numel()), [&](const detail::Chunk& ch) {
    if (fresh)
      for (int64_t i = ch.begin; i < ch.end; ++i) gd[i] = s * c[i];
    else
      for (int64_t i = ch.begin; i < ch.end; ++i) gd[i] += s * c[i];
  });
}

// ---------------------------------------------------------------------------------------------
// Loops
// ---------------------------------------------------------------------------------------------

namespace {

// body(i) for every i in [0, n), in parallel chunks.
template <class Body>
void parallel_for(int64_t n, Body&& body) {
  detail::for_each_chunk(detail::ChunkGrid(1, n), [&](const detail::Chunk& ch) {
    for (int64_t i = ch.begin; i < ch.end; ++i) body(i);
  });
}

// The layout of an operand read against an output shape: its stride for each output axis
// (0 where it is broadcast). `identity` when the operand has the output's shape.
struct Layout {
  int rank = 0;
  int64_t extent[Shape::kMaxRank] = {};
  int64_t stride[Shape::kMaxRank] = {};
  bool identity = true;
};

// Whether `in` broadcasts to `out` (see tape.hpp: right-aligned, or a rank-1 (C) per class).
bool broadcasts(const Shape& in, const Shape& out) {
  if (in == out) return true;
  if (in.rank() == 1 && out.rank() >= 2 && in[0] == out[1]) return true;
  if (in.rank() > out.rank()) return false;
  const int lead = out.rank() - in.rank();
  for (int d = 0; d < in.rank(); ++d)
    if (in[d] != 1 && in[d] != out[d + lead]) return false;
  return true;
}

Layout layout(const Shape& in, const Shape& out) {
  Layout l;
  l.rank = out.rank();
  for (int d = 0; d < out.rank(); ++d) l.extent[d] = out[d];
  if (in == out) {
    int64_t step = 1;
    for (int d = out.rank() - 1; d >= 0; --d) {
      l.stride[d] = step;
      step *= out[d];
    }
    return l;
  }
  l.identity = false;
  if (in.rank() == 1 && out.rank() >= 2 && in[0] == out[1]) {  // (C) along the class axis
    l.stride[1] = in[0] == 1 ? 0 : 1;
    return l;
  }
  const int lead = out.rank() - in.rank();
  int64_t step = 1;
  for (int d = in.rank() - 1; d >= 0; --d) {
    l.stride[d + lead] = in[d] == 1 ? 0 : step;
    step *= in[d];
  }
  return l;
}

// Walks a row-major output, keeping the offset of each of two operands in step.
struct Cursor {
  const Layout* l[2];
  int64_t idx[Shape::kMaxRank] = {};
  int64_t off[2] = {0, 0};

  Cursor(const Layout& a, const Layout& b, int64_t i) : l{&a, &b} {
    for (int d = a.rank - 1; d >= 0; --d) {
      idx[d] = i % a.extent[d];
      i /= a.extent[d];
      for (int k = 0; k < 2; ++k) off[k] += idx[d] * l[k]->stride[d];
    }
  }
  void next() {
    for (int d = l[0]->rank - 1; d >= 0; --d) {
      ++idx[d];
      for (int k = 0; k < 2; ++k) off[k] += l[k]->stride[d];
      if (idx[d] < l[0]->extent[d]) return;
      for (int k = 0; k < 2; ++k) off[k] -= l[k]->stride[d] * l[0]->extent[d];
      idx[d] = 0;
    }
  }
};

// body(i, ia, ib) for every output element i with the operands' offsets ia and ib, in parallel.
template <class Body>
void for_each_pair(const Layout& a, const Layout& b, int64_t n, Body&& body) {
  if (a.identity && b.identity) {
    parallel_for(n, [&](int64_t i) { body(i, i, i); });
    return;
  }
  detail::for_each_chunk(detail::ChunkGrid(1, n), [&](const detail::Chunk& ch) {
    Cursor c(a, b, ch.begin);
    for (int64_t i = ch.begin; i < ch.end; ++i, c.next()) body(i, c.off[0], c.off[1]);
  });
}

// The output shape of a binary op: the shape both operands broadcast to.
template <class T>
Shape binary_shape(const char* op, const Var<T>& a, const Var<T>& b) {
  tape_of(op, a);
  a.tape().check_var(op, b);
  const Shape &sa = a.shape(), &sb = b.shape();
  if (broadcasts(sb, sa)) return sa;
  if (broadcasts(sa, sb)) return sb;
  detail::fail(op, "shapes ", sa, " and ", sb, " do not broadcast (one operand must broadcast",
               " to the other's shape)");
}

// ---- CUDA: the device functions of backends/cuda/tape_ops.hpp ----

template <class T>
bool on_cuda(const Var<T>& v) {
  return v.value().device() == Device::cuda;
}

// The tensor on the device: itself, or a copy of a host tensor (a host scalar, a constant).
template <class T>
Tensor<T> on_device(const Tensor<T>& t) {
  return t.device() == Device::cuda ? t : t.to(Device::cuda);
}

// Adds a gradient computed on the device into v's gradient: add(gv) adds into a device buffer,
// v's own when v is on the device; for a host value (a loss value or a constant combined with a
// CUDA value), a zeroed device buffer whose sum is copied back (the call waits) and added.
template <class T, class Add>
void add_device_grad(Tape<T>& tape, const Var<T>& v, Add&& add) {
  if (on_cuda(v)) {
    add(tape.grad_buffer(v).data());
    return;
  }
  const Tensor<T> dev = Tensor<T>::zeros(v.shape(), Device::cuda);
  add(dev.data());
  const Tensor<T> host = dev.to(Device::cpu);
  T* gv = tape.grad_buffer(v).data();
  for (int64_t i = 0; i < host.numel(); ++i) gv[i] += host[i];
}

detail::TapeLayout tape_layout(const Layout& a, const Layout& b) {
  detail::TapeLayout l;
  l.rank = a.rank;
  for (int d = 0; d < a.rank; ++d) {
    l.extent[d] = a.extent[d];
    l.stride[0][d] = a.stride[d];
    l.stride[1][d] = b.stride[d];
  }
  return l;
}

// The row-major strides of `shape`, in the slot `k` of a layout over the same rank.
void row_major(detail::TapeLayout& l, int k, const Shape& shape) {
  int64_t step = 1;
  for (int d = shape.rank() - 1; d >= 0; --d) {
    l.stride[k][d] = step;
    step *= shape[d];
  }
}

// A binary op on the device (either operand on CUDA; a host operand is copied there).
template <class T>
Var<T> binary_cuda(const char* op, detail::TapeBinary code, const Var<T>& a, const Var<T>& b,
                   const Shape& shape, const Layout& la, const Layout& lb) {
  const Tensor<T> av = on_device(a.value()), bv = on_device(b.value());
  const detail::TapeLayout l = tape_layout(la, lb);
  Tensor<T> out = Tensor<T>::empty(shape, Device::cuda);
  detail::tape_binary(code, av.data(), bv.data(), out.data(), l, shape.numel());
  const bool full[2] = {la.identity, lb.identity};
  return a.tape().record(
      op, out, {a, b}, [a, b, av, bv, l, out, code, full](Tape<T>& tape, const Tensor<T>& g) {
        for (int k = 0; k < 2; ++k) {
          const Var<T>& v = k == 0 ? a : b;
          if (!v.requires_grad()) continue;
          add_device_grad(tape, v, [&](T* gv) {
            detail::tape_binary_grad(code, k, av.data(), bv.data(), out.data(), g.data(), gv, l,
                                     g.numel(), v.value().numel(), full[k]);
          });
        }
      });
}

// A unary op on the device.
template <class T>
Var<T> unary_cuda(const char* op, const Var<T>& a, detail::TapeUnary code, T k, T k2) {
  const Tensor<T>& xv = a.value();
  Tensor<T> out = Tensor<T>::empty(xv.shape(), Device::cuda);
  detail::tape_unary(code, xv.data(), out.data(), xv.numel(), k, k2);
  return a.tape().record(op, out, {a}, [a, out, code, k, k2](Tape<T>& tape, const Tensor<T>& g) {
    T* gx = tape.grad_buffer(a).data();
    detail::tape_unary_grad(code, a.value().data(), out.data(), g.data(), gx, g.numel(), k, k2);
  });
}

// A binary op. f(x, y) is the value; da(x, y, out) and db(x, y, out) the partial derivatives;
// `code` the same op on the device.
template <class T, class F, class DA, class DB>
Var<T> binary(const char* op, detail::TapeBinary code, const Var<T>& a, const Var<T>& b, F f, DA da,
              DB db) {
  const Shape shape = binary_shape(op, a, b);
  const Layout la = layout(a.shape(), shape), lb = layout(b.shape(), shape);
  if (on_cuda(a) || on_cuda(b)) return binary_cuda(op, code, a, b, shape, la, lb);
  Tensor<T> out = Tensor<T>::empty(shape);
  const T *x = a.value().data(), *y = b.value().data();
  T* o = out.data();
  for_each_pair(la, lb, shape.numel(),
                [&](int64_t i, int64_t ia, int64_t ib) { o[i] = f(x[ia], y[ib]); });
  return a.tape().record(
      op, out, {a, b}, [a, b, la, lb, out, da, db](Tape<T>& tape, const Tensor<T>& g) {
        const T *x = a.value().data(), *y = b.value().data(), *gd = g.data(), *o = out.data();
        const int64_t n = g.numel();
        // The partial derivative with respect to operand k at output i (offsets ia, ib).
        auto partial = [&](int k, int64_t i, int64_t ia, int64_t ib) -> double {
          return k == 0 ? da(x[ia], y[ib], o[i]) : db(x[ia], y[ib], o[i]);
        };
        for (int k = 0; k < 2; ++k) {
          const Var<T>& v = k == 0 ? a : b;
          if (!v.requires_grad()) continue;
          T* gv = tape.grad_buffer(v).data();
          if ((k == 0 ? la : lb).identity) {  // full size: output i is element i, in parallel
            for_each_pair(la, lb, n, [&](int64_t i, int64_t ia, int64_t ib) {
              gv[i] += static_cast<T>(gd[i] * partial(k, i, ia, ib));
            });
            continue;
          }
          // Broadcast: many outputs per element, summed in double in output order.
          std::vector<double> acc(static_cast<size_t>(v.value().numel()), 0.0);
          Cursor c(la, lb, 0);
          for (int64_t i = 0; i < n; ++i, c.next())
            acc[static_cast<size_t>(c.off[k])] += gd[i] * partial(k, i, c.off[0], c.off[1]);
          for (size_t j = 0; j < acc.size(); ++j) gv[j] += static_cast<T>(acc[j]);
        }
      });
}

// A unary op: f(x) the value, d(x, y) the derivative given x and y = f(x); `code` (with the
// constants k, k2) the same op on the device.
template <class T, class F, class D>
Var<T> unary(const char* op, const Var<T>& a, F f, D d, detail::TapeUnary code, T k = T(0),
             T k2 = T(0)) {
  tape_of(op, a);
  if (on_cuda(a)) return unary_cuda(op, a, code, k, k2);
  const Tensor<T>& xv = a.value();
  Tensor<T> out = Tensor<T>::empty(xv.shape());
  const T* x = xv.data();
  T* o = out.data();
  parallel_for(xv.numel(), [&](int64_t i) { o[i] = f(x[i]); });
  // clamp, relu and pow(., 0) pass nothing where their derivative is 0, whatever comes from
  // above: an inf there (pow(0, 0.5)'s, say) would give 0 inf = NaN. PyTorch masks the same ones.
  const bool masks = detail::tape_unary_masks(code, static_cast<double>(k));
  return a.tape().record(op, out, {a}, [a, out, d, masks](Tape<T>& tape, const Tensor<T>& g) {
    const T *x = a.value().data(), *y = out.data(), *gd = g.data();
    T* gx = tape.grad_buffer(a).data();
    parallel_for(g.numel(), [&](int64_t i) {
      const T dv = d(x[i], y[i]);
      if (!(masks && dv == T(0))) gx[i] += gd[i] * dv;
    });
  });
}

// sigmoid and log(sigmoid) from e = exp(-|x|), which never overflows.
template <class T>
T stable_sigmoid(T x) {
  const T e = std::exp(-std::fabs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}
template <class T>
T stable_log_sigmoid(T x) {
  return std::min(x, T(0)) - std::log1p(std::exp(-std::fabs(x)));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Elementwise arithmetic
// ---------------------------------------------------------------------------------------------

template <class T>
Var<T> add(const Var<T>& a, const Var<T>& b) {
  return binary(
      "ad::add", detail::TapeBinary::add, a, b, [](T x, T y) { return x + y; },
      [](T, T, T) { return T(1); }, [](T, T, T) { return T(1); });
}
template <class T>
Var<T> sub(const Var<T>& a, const Var<T>& b) {
  return binary(
      "ad::sub", detail::TapeBinary::sub, a, b, [](T x, T y) { return x - y; },
      [](T, T, T) { return T(1); }, [](T, T, T) { return T(-1); });
}
template <class T>
Var<T> mul(const Var<T>& a, const Var<T>& b) {
  return binary(
      "ad::mul", detail::TapeBinary::mul, a, b, [](T x, T y) { return x * y; },
      [](T, T y, T) { return y; }, [](T x, T, T) { return x; });
}
// d(x/y)/dx = 1/y, d(x/y)/dy = -x/y^2 = -(x/y)/y.
template <class T>
Var<T> div(const Var<T>& a, const Var<T>& b) {
  return binary(
      "ad::div", detail::TapeBinary::div, a, b, [](T x, T y) { return x / y; },
      [](T, T y, T) { return T(1) / y; }, [](T, T y, T o) { return -o / y; });
}

template <class T>
Var<T> add(const Var<T>& a, double c) {
  const T k = static_cast<T>(c);
  return unary(
      "ad::add", a, [k](T x) { return x + k; }, [](T, T) { return T(1); }, detail::TapeUnary::add,
      k);
}
template <class T>
Var<T> mul(const Var<T>& a, double c) {
  const T k = static_cast<T>(c);
  return unary(
      "ad::mul", a, [k](T x) { return x * k; }, [k](T, T) { return k; }, detail::TapeUnary::mul, k);
}
template <class T>
Var<T> rsub(double c, const Var<T>& a) {
  const T k = static_cast<T>(c);
  return unary(
      "ad::rsub", a, [k](T x) { return k - x; }, [](T, T) { return T(-1); },
      detail::TapeUnary::rsub, k);
}
// d(c/x)/dx = -c/x^2 = -(c/x)/x.
template <class T>
Var<T> rdiv(double c, const Var<T>& a) {
  const T k = static_cast<T>(c);
  return unary(
      "ad::rdiv", a, [k](T x) { return k / x; }, [](T x, T y) { return -y / x; },
      detail::TapeUnary::rdiv, k);
}

// ---------------------------------------------------------------------------------------------
// Elementwise functions
// ---------------------------------------------------------------------------------------------

template <class T>
Var<T> neg(const Var<T>& a) {
  return unary(
      "ad::neg", a, [](T x) { return -x; }, [](T, T) { return T(-1); }, detail::TapeUnary::neg);
}
template <class T>
Var<T> exp(const Var<T>& a) {  // (e^x)' = e^x
  return unary(
      "ad::exp", a, [](T x) { return std::exp(x); }, [](T, T y) { return y; },
      detail::TapeUnary::exp);
}
template <class T>
Var<T> log(const Var<T>& a) {  // (log x)' = 1/x
  return unary(
      "ad::log", a, [](T x) { return std::log(x); }, [](T x, T) { return T(1) / x; },
      detail::TapeUnary::log);
}
template <class T>
Var<T> log1p(const Var<T>& a) {  // (log(1 + x))' = 1/(1 + x)
  return unary(
      "ad::log1p", a, [](T x) { return std::log1p(x); }, [](T x, T) { return T(1) / (T(1) + x); },
      detail::TapeUnary::log1p);
}
// sigma' = sigma (1 - sigma).
template <class T>
Var<T> sigmoid(const Var<T>& a) {
  return unary(
      "ad::sigmoid", a, [](T x) { return stable_sigmoid(x); },
      [](T, T y) { return y * (T(1) - y); }, detail::TapeUnary::sigmoid);
}
// (log sigma(x))' = 1 - sigma(x) = sigma(-x), without cancellation.
template <class T>
Var<T> log_sigmoid(const Var<T>& a) {
  return unary(
      "ad::log_sigmoid", a, [](T x) { return stable_log_sigmoid(x); },
      [](T x, T) { return stable_sigmoid(-x); }, detail::TapeUnary::log_sigmoid);
}
// softplus(x) = -log sigma(-x); softplus' = sigma(x).
template <class T>
Var<T> softplus(const Var<T>& a) {
  return unary(
      "ad::softplus", a, [](T x) { return -stable_log_sigmoid(-x); },
      [](T x, T) { return stable_sigmoid(x); }, detail::TapeUnary::softplus);
}
template <class T>
Var<T> clamp(const Var<T>& a, double lo, double hi) {
  SEGLOSS_CHECK(!std::isnan(lo) && !std::isnan(hi), "ad::clamp", "the bounds are lo ", lo,
                " and hi ", hi, "; neither may be NaN");
  SEGLOSS_CHECK(lo <= hi, "ad::clamp", "lo ", lo, " is above hi ", hi);
  const T l = static_cast<T>(lo), h = static_cast<T>(hi);
  return unary(
      "ad::clamp", a, [l, h](T x) { return x < l   ? l
                                           : x > h ? h
                                                   : x; },
      [l, h](T x, T) { return x >= l && x <= h ? T(1) : T(0); }, detail::TapeUnary::clamp, l, h);
}
// (x^p)' = p x^(p-1). p = 2 is the exact product x * x; p = 1 is x itself (no node).
template <class T>
Var<T> pow(const Var<T>& a, double p) {
  tape_of("ad::pow", a);
  if (p == 1.0) return a;
  const T k = static_cast<T>(p);
  if (p == 2.0)
    return unary(
        "ad::pow", a, [](T x) { return x * x; }, [](T x, T) { return T(2) * x; },
        detail::TapeUnary::square);
  return unary(
      "ad::pow", a, [k](T x) { return std::pow(x, k); },
      [k](T x, T) { return k == T(0) ? T(0) : k * std::pow(x, k - T(1)); },  // not 0 inf at 0
      detail::TapeUnary::pow, k);
}

// ---------------------------------------------------------------------------------------------
// Softmax over the class axis
// ---------------------------------------------------------------------------------------------

namespace {

// (N, C, S) view of a tensor of rank >= 2: S = the product of the axes after the class axis.
struct ClassAxis {
  int64_t n, c, s;
};
ClassAxis class_axis(const char* op, const Shape& shape) {
  SEGLOSS_CHECK(shape.rank() >= 2, op, "the input ", shape,
                " has no class axis (rank 2 or more expected: (N, C, ...))");
  return {shape[0], shape[1], shape.numel_from(2)};
}

// body(n, s) for every pixel (image n, spatial s), in parallel chunks of pixels.
template <class Body>
void for_each_pixel(const ClassAxis& a, Body&& body) {
  detail::for_each_chunk(detail::ChunkGrid(a.n, a.s, 4096), [&](const detail::Chunk& ch) {
    const int64_t n = ch.plane;
    for (int64_t s = ch.begin - n * a.s; s < ch.end - n * a.s; ++s) body(n, s);
  });
}

// softmax or log_softmax on the device: one thread per pixel, the CPU's formulas.
template <class T>
Var<T> softmax_cuda(const char* op, const Var<T>& a, const ClassAxis& ax, bool log) {
  Tensor<T> out = Tensor<T>::empty(a.shape(), Device::cuda);
  detail::tape_softmax(log, a.value().data(), out.data(), ax.n, ax.c, ax.s);
  return a.tape().record(op, out, {a}, [a, out, ax, log](Tape<T>& tape, const Tensor<T>& g) {
    T* gx = tape.grad_buffer(a).data();
    detail::tape_softmax_grad(log, out.data(), g.data(), gx, ax.n, ax.c, ax.s);
  });
}

}  // namespace

// y_c = exp(x_c - m) / sum_k exp(x_k - m), m = max_k x_k.
// Backward: dL/dx_c = y_c (g_c - sum_k y_k g_k).
template <class T>
Var<T> softmax(const Var<T>& a) {
  const char* op = "ad::softmax";
  tape_of(op, a);
  const ClassAxis ax = class_axis(op, a.shape());
  if (on_cuda(a)) return softmax_cuda(op, a, ax, false);
  Tensor<T> out = Tensor<T>::empty(a.shape());
  const T* x = a.value().data();
  T* y = out.data();
  for_each_pixel(ax, [&](int64_t n, int64_t s) {
    const int64_t base = n * ax.c * ax.s + s;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t c = 0; c < ax.c; ++c) m = std::max(m, x[base + c * ax.s]);
    double total = 0.0;
    for (int64_t c = 0; c < ax.c; ++c) {
      const T e = std::exp(x[base + c * ax.s] - m);
      y[base + c * ax.s] = e;
      total += e;
    }
    const double inv = 1.0 / total;
    for (int64_t c = 0; c < ax.c; ++c)
      y[base + c * ax.s] = static_cast<T>(y[base + c * ax.s] * inv);
  });
  return a.tape().record(op, out, {a}, [a, out, ax](Tape<T>& tape, const Tensor<T>& g) {
    const T *y = out.data(), *gd = g.data();
    T* gx = tape.grad_buffer(a).data();
    for_each_pixel(ax, [&](int64_t n, int64_t s) {
      const int64_t base = n * ax.c * ax.s + s;
      double dot = 0.0;
      for (int64_t c = 0; c < ax.c; ++c)
        dot += static_cast<double>(y[base + c * ax.s]) * gd[base + c * ax.s];
      for (int64_t c = 0; c < ax.c; ++c) {
        const int64_t i = base + c * ax.s;
        gx[i] += static_cast<T>(y[i] * (gd[i] - dot));
      }
    });
  });
}

// y_c = (x_c - m) - log sum_k exp(x_k - m).
// Backward: dL/dx_c = g_c - p_c sum_k g_k, p_c = exp(y_c).
template <class T>
Var<T> log_softmax(const Var<T>& a) {
  const char* op = "ad::log_softmax";
  tape_of(op, a);
  const ClassAxis ax = class_axis(op, a.shape());
  if (on_cuda(a)) return softmax_cuda(op, a, ax, true);
  Tensor<T> out = Tensor<T>::empty(a.shape());
  const T* x = a.value().data();
  T* y = out.data();
  for_each_pixel(ax, [&](int64_t n, int64_t s) {
    const int64_t base = n * ax.c * ax.s + s;
    T m = -std::numeric_limits<T>::infinity();
    for (int64_t c = 0; c < ax.c; ++c) m = std::max(m, x[base + c * ax.s]);
    double total = 0.0;
    for (int64_t c = 0; c < ax.c; ++c)
      total += std::exp(static_cast<double>(x[base + c * ax.s] - m));
    const double lse = std::log(total);
    for (int64_t c = 0; c < ax.c; ++c) {
      const int64_t i = base + c * ax.s;
      y[i] = static_cast<T>(static_cast<double>(x[i] - m) - lse);
    }
  });
  return a.tape().record(op, out, {a}, [a, out, ax](Tape<T>& tape, const Tensor<T>& g) {
    const T *y = out.data(), *gd = g.data();
    T* gx = tape.grad_buffer(a).data();
    for_each_pixel(ax, [&](int64_t n, int64_t s) {
      const int64_t base = n * ax.c * ax.s + s;
      double total = 0.0;
      for (int64_t c = 0; c < ax.c; ++c) total += gd[base + c * ax.s];
      for (int64_t c = 0; c < ax.c; ++c) {
        const int64_t i = base + c * ax.s;
        gx[i] += static_cast<T>(gd[i] - std::exp(static_cast<double>(y[i])) * total);
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Sums and means
// ---------------------------------------------------------------------------------------------

namespace {

enum class Keep { none, image, klass, image_class };

// The input seen as (outer, middle, inner) blocks: a sum keeping axis 0 sums planes of
// numel / N elements; keeping axis 1 sums, for each class, N planes of S elements.
template <class T>
Var<T> reduce_cuda(const char* op, const Var<T>& a, Keep keep, bool take_mean);

template <class T>
Var<T> reduce(const char* op, const Var<T>& a, Keep keep, bool take_mean) {
  tape_of(op, a);
  const Shape& in = a.shape();
  const bool needs_class = keep == Keep::klass || keep == Keep::image_class;
  SEGLOSS_CHECK(in.rank() >= (needs_class           ? 2
                              : keep == Keep::image ? 1
                                                    : 0),
                op, "the input ", in, " has no ",
                needs_class ? "class axis (rank 2 or more expected)"
                            : "image axis (rank 1 or more expected)");
  if (on_cuda(a)) return reduce_cuda(op, a, keep, take_mean);
  const int64_t total = in.numel();
  // Planes of contiguous elements, each summed in chunk order (core/parallel.hpp).
  int64_t planes = 1;
  Shape out_shape;
  if (keep == Keep::image) {
    planes = in[0];
    out_shape = Shape{in[0]};
  } else if (keep == Keep::image_class) {
    planes = in[0] * in[1];
    out_shape = Shape{in[0], in[1]};
  } else if (keep == Keep::klass) {
    planes = in[0] * in[1];
    out_shape = Shape{in[1]};
  }
  const int64_t plane_size = planes > 0 ? total / planes : 0;
  std::vector<double> sums(static_cast<size_t>(planes), 0.0);
  const T* x = a.value().data();
  if (total > 0)
    detail::reduce_planes_n(
        detail::ChunkGrid(planes, plane_size), 1,
        [&](const detail::Chunk& ch, double* acc) {
          double s = 0.0;
          for (int64_t i = ch.begin; i < ch.end; ++i) s += x[i];
          acc[0] += s;
        },
        sums.data());
  // Per class: add the N planes of each class, in image order.
  const int64_t outputs = out_shape.numel();
  std::vector<double> result(static_cast<size_t>(outputs), 0.0);
  for (int64_t p = 0; p < planes; ++p)
    result[static_cast<size_t>(keep == Keep::klass ? p % in[1] : p)] += sums[p];
  const int64_t count = outputs > 0 ? total / outputs : 0;  // elements per output
  const double scale = take_mean ? 1.0 / static_cast<double>(count) : 1.0;
  Tensor<T> out = Tensor<T>::empty(out_shape);
  for (int64_t j = 0; j < outputs; ++j)
    out[j] = static_cast<T>(result[static_cast<size_t>(j)] * scale);
  // Backward: every element of the input receives its output's gradient (times 1/count).
  const int64_t channels = needs_class ? in[1] : 1;
  return a.tape().record(
      op, out, {a}, [a, keep, plane_size, channels, scale](Tape<T>& tape, const Tensor<T>& g) {
        T* gx = tape.grad_buffer(a).data();
        const T* gd = g.data();
        parallel_for(a.value().numel(), [&](int64_t i) {
          const int64_t p = i / plane_size;
          const int64_t j = keep == Keep::none ? 0 : keep == Keep::klass ? p % channels : p;
          gx[i] += static_cast<T>(gd[j] * scale);
        });
      });
}

// The same on the device: one block per output sums its elements in double in a fixed order
// (backends/cuda/tape.cu); backward broadcasts the gradient (times 1/count).
template <class T>
Var<T> reduce_cuda(const char* op, const Var<T>& a, Keep keep, bool take_mean) {
  const Shape& in = a.shape();
  detail::TapeLayout l;  // the output's stride on each input axis (0: summed)
  l.rank = in.rank();
  for (int d = 0; d < in.rank(); ++d) l.extent[d] = in[d];
  Shape out_shape;
  if (keep == Keep::image) {
    out_shape = Shape{in[0]};
    l.stride[0][0] = 1;
  } else if (keep == Keep::klass) {
    out_shape = Shape{in[1]};
    l.stride[0][1] = 1;
  } else if (keep == Keep::image_class) {
    out_shape = Shape{in[0], in[1]};
    l.stride[0][0] = in[1];
    l.stride[0][1] = 1;
  }
  const int64_t outputs = out_shape.numel(), total = in.numel();
  const int64_t count = outputs > 0 ? total / outputs : 0;  // elements per output
  const double scale = take_mean ? 1.0 / static_cast<double>(count) : 1.0;
  Tensor<T> out = Tensor<T>::empty(out_shape, Device::cuda);
  detail::tape_reduce(a.value().data(), out.data(), l, outputs, scale);
  return a.tape().record(op, out, {a}, [a, l, scale](Tape<T>& tape, const Tensor<T>& g) {
    T* gx = tape.grad_buffer(a).data();
    detail::tape_broadcast_grad(g.data(), gx, l, a.value().numel(), scale);
  });
}

}  // namespace

template <class T>
Var<T> sum(const Var<T>& a) {
  return reduce("ad::sum", a, Keep::none, false);
}
template <class T>
Var<T> mean(const Var<T>& a) {
  return reduce("ad::mean", a, Keep::none, true);
}
template <class T>
Var<T> sum_per_image(const Var<T>& a) {
  return reduce("ad::sum_per_image", a, Keep::image, false);
}
template <class T>
Var<T> mean_per_image(const Var<T>& a) {
  return reduce("ad::mean_per_image", a, Keep::image, true);
}
template <class T>
Var<T> sum_per_class(const Var<T>& a) {
  return reduce("ad::sum_per_class", a, Keep::klass, false);
}
template <class T>
Var<T> mean_per_class(const Var<T>& a) {
  return reduce("ad::mean_per_class", a, Keep::klass, true);
}
template <class T>
Var<T> sum_per_image_class(const Var<T>& a) {
  return reduce("ad::sum_per_image_class", a, Keep::image_class, false);
}
template <class T>
Var<T> mean_per_image_class(const Var<T>& a) {
  return reduce("ad::mean_per_image_class", a, Keep::image_class, true);
}

// out[n, 0, s] = sum_c x[n, c, s]; backward: every class of a pixel gets the pixel's gradient.
template <class T>
Var<T> class_sum(const Var<T>& a) {
  const char* op = "ad::class_sum";
  tape_of(op, a);
  const ClassAxis ax = class_axis(op, a.shape());
  Shape out_shape = a.shape();
  out_shape.set(1, 1);
  if (on_cuda(a)) {  // one thread per pixel, in class order; backward broadcasts over classes
    Tensor<T> out = Tensor<T>::empty(out_shape, Device::cuda);
    detail::tape_class_sum(a.value().data(), out.data(), ax.n, ax.c, ax.s);
    detail::TapeLayout l;
    l.rank = a.shape().rank();
    for (int d = 0; d < l.rank; ++d) l.extent[d] = a.shape()[d];
    row_major(l, 0, out_shape);
    l.stride[0][1] = 0;
    return a.tape().record(op, out, {a}, [a, l](Tape<T>& tape, const Tensor<T>& g) {
      T* gx = tape.grad_buffer(a).data();
      detail::tape_broadcast_grad(g.data(), gx, l, a.value().numel(), 1.0);
    });
  }
  Tensor<T> out = Tensor<T>::empty(out_shape);
  const T* x = a.value().data();
  T* y = out.data();
  for_each_pixel(ax, [&](int64_t n, int64_t s) {
    double total = 0.0;
    for (int64_t c = 0; c < ax.c; ++c) total += x[(n * ax.c + c) * ax.s + s];
    y[n * ax.s + s] = static_cast<T>(total);
  });
  return a.tape().record(op, out, {a}, [a, ax](Tape<T>& tape, const Tensor<T>& g) {
    T* gx = tape.grad_buffer(a).data();
    const T* gd = g.data();
    for_each_pixel(ax, [&](int64_t n, int64_t s) {
      for (int64_t c = 0; c < ax.c; ++c) gx[(n * ax.c + c) * ax.s + s] += gd[n * ax.s + s];
    });
  });
}

template <class T>
Var<T> reshape(const Var<T>& a, const Shape& shape) {
  const char* op = "ad::reshape";
  tape_of(op, a);
  SEGLOSS_CHECK(shape.numel() == a.shape().numel(), op, "cannot reshape ", a.shape(), " to ", shape,
                ": the element counts differ");
  if (on_cuda(a)) {  // a copy on the stream (times 1, exact), the gradient added back
    Tensor<T> out = Tensor<T>::empty(shape, Device::cuda);
    detail::tape_scale_add(out.data(), a.value().data(), 1.0, out.numel(), true);
    return a.tape().record(op, out, {a}, [a](Tape<T>& tape, const Tensor<T>& g) {
      detail::tape_scale_add(tape.grad_buffer(a).data(), g.data(), 1.0, g.numel(), false);
    });
  }
  Tensor<T> out = Tensor<T>::empty(shape);
  std::copy(a.value().begin(), a.value().end(), out.begin());
  return a.tape().record(op, out, {a}, [a](Tape<T>& tape, const Tensor<T>& g) {
    T* gx = tape.grad_buffer(a).data();
    const T* gd = g.data();
    parallel_for(g.numel(), [&](int64_t i) { gx[i] += gd[i]; });
  });
}

// ---------------------------------------------------------------------------------------------
// Masks and labels
// ---------------------------------------------------------------------------------------------

template <class T>
Var<T> where(const Tensor<T>& mask, const Var<T>& a, const Var<T>& b) {
  const char* op = "ad::where";
  tape_of(op, a);
  a.tape().check_var(op, b);
  SEGLOSS_CHECK(a.shape() == b.shape(), op, "a ", a.shape(), " and b ", b.shape(),
                " must have one shape");
  SEGLOSS_CHECK(mask.defined(), op, "mask is undefined");
  SEGLOSS_CHECK(broadcasts(mask.shape(), a.shape()), op, "mask ", mask.shape(),
                " does not broadcast to ", a.shape());
  if (on_cuda(a) || on_cuda(b)) {  // host operands (and the mask) are copied to the device
    const Tensor<T> av = on_device(a.value()), bv = on_device(b.value()), mv = on_device(mask);
    const Shape shape = a.shape();
    const detail::TapeLayout l = tape_layout(layout(mask.shape(), shape), layout(shape, shape));
    Tensor<T> out = Tensor<T>::empty(shape, Device::cuda);
    detail::tape_where(mv.data(), av.data(), bv.data(), out.data(), l, shape.numel());
    return a.tape().record(op, out, {a, b}, [a, b, mv, l](Tape<T>& tape, const Tensor<T>& g) {
      for (int k = 0; k < 2; ++k) {
        const Var<T>& v = k == 0 ? a : b;
        if (!v.requires_grad()) continue;
        add_device_grad(tape, v, [&](T* gv) {
          detail::tape_where_grad(mv.data(), g.data(), gv, k == 0, l, g.numel());
        });
      }
    });
  }
  detail::check_same_device(op, "mask", mask, Device::cpu, "the values");
  const Shape shape = a.shape();
  const Layout lm = layout(mask.shape(), shape), la = layout(shape, shape);
  Tensor<T> out = Tensor<T>::empty(shape);
  const T *m = mask.data(), *x = a.value().data(), *y = b.value().data();
  T* o = out.data();
  for_each_pair(la, lm, shape.numel(),
                [&](int64_t i, int64_t, int64_t im) { o[i] = m[im] != T(0) ? x[i] : y[i]; });
  return a.tape().record(op, out, {a, b}, [a, b, mask, la, lm](Tape<T>& tape, const Tensor<T>& g) {
    const T *m = mask.data(), *gd = g.data();
    for (int k = 0; k < 2; ++k) {
      const Var<T>& v = k == 0 ? a : b;
      if (!v.requires_grad()) continue;
      T* gv = tape.grad_buffer(v).data();
      const bool taken = k == 0;
      for_each_pair(la, lm, g.numel(), [&](int64_t i, int64_t, int64_t im) {
        if ((m[im] != T(0)) == taken) gv[i] += gd[i];
      });
    }
  });
}

namespace {

template <class L>
void check_labels(const char* op, const Tensor<L>& labels) {
  SEGLOSS_CHECK(labels.defined(), op, "labels is undefined");
  SEGLOSS_CHECK(labels.rank() >= 1 && labels.rank() <= 4, op, "labels ", labels.shape(),
                " has rank ", labels.rank(), "; expected (N, spatial...)");
}

// The label map's shape with a class axis of extent c inserted at axis 1.
Shape with_class_axis(const Shape& labels, int64_t c) {
  Shape s;
  s.push_back(labels[0]);
  s.push_back(c);
  for (int d = 1; d < labels.rank(); ++d) s.push_back(labels[d]);
  return s;
}

}  // namespace

template <class T, class L>
Var<T> one_hot(Tape<T>& tape, const Tensor<L>& labels, int64_t classes, int64_t ignore_index) {
  const char* op = "ad::one_hot";
  check_labels(op, labels);
  SEGLOSS_CHECK(classes >= 1, op, "classes is ", classes, "; it must be >= 1");
  int64_t cells = 1;  // the label map's nonzero extents (as Shape counts them)
  for (int d = 0; d < labels.rank(); ++d) cells *= std::max<int64_t>(labels.shape()[d], 1);
  SEGLOSS_CHECK(classes <= std::numeric_limits<int64_t>::max() / cells, op, "classes is ", classes,
                "; a one-hot tensor of labels ", labels.shape(), " with as many classes has more ",
                "than 2^63 - 1 elements");
  const int64_t n = labels.shape()[0], s = labels.numel() / std::max<int64_t>(n, 1);
  if (labels.device() == Device::cuda) {  // built on the device; the bad-label check waits once
    Tensor<T> out = Tensor<T>::empty(with_class_axis(labels.shape(), classes), Device::cuda);
    int64_t value = 0;
    const int64_t bad =
        detail::tape_one_hot(labels.data(), out.data(), n, classes, s, ignore_index, &value);
    SEGLOSS_CHECK(bad < 0, op, "label ", value, " at ", labels.shape().position(bad),
                  " is outside [0, ", classes, ") and is not ignore_index ", ignore_index);
    return tape.constant(out);
  }
  Tensor<T> out = Tensor<T>::zeros(with_class_axis(labels.shape(), classes));
  for (int64_t i = 0; i < labels.numel(); ++i) {
    const int64_t y = static_cast<int64_t>(labels[i]);
    if (y == ignore_index) continue;
    SEGLOSS_CHECK(y >= 0 && y < classes, op, "label ", y, " at ", labels.shape().position(i),
                  " is outside [0, ", classes, ") and is not ignore_index ", ignore_index);
    out[((i / s) * classes + y) * s + i % s] = T(1);
  }
  return tape.constant(out);
}

template <class T, class L>
Var<T> valid_mask(Tape<T>& tape, const Tensor<L>& labels, int64_t ignore_index) {
  check_labels("ad::valid_mask", labels);
  if (labels.device() == Device::cuda) {
    Tensor<T> out = Tensor<T>::empty(with_class_axis(labels.shape(), 1), Device::cuda);
    detail::tape_valid_mask(labels.data(), out.data(), labels.numel(), ignore_index);
    return tape.constant(out);
  }
  Tensor<T> out = Tensor<T>::empty(with_class_axis(labels.shape(), 1));
  for (int64_t i = 0; i < labels.numel(); ++i)
    out[i] = static_cast<int64_t>(labels[i]) == ignore_index ? T(0) : T(1);
  return tape.constant(out);
}

// ---------------------------------------------------------------------------------------------
// Groups: sort, running sums, gather
// ---------------------------------------------------------------------------------------------

namespace {

// Checks that offsets partition the n elements of a Var into consecutive groups.
void check_offsets(const char* op, const std::vector<int64_t>& offsets, int64_t n) {
  SEGLOSS_CHECK(!offsets.empty() && offsets.front() == 0 && offsets.back() == n, op,
                "offsets must start at 0 and end at the element count ", n, " (got ",
                offsets.size(), " offsets, first ", offsets.empty() ? -1 : offsets.front(),
                ", last ", offsets.empty() ? -1 : offsets.back(), ")");
  for (size_t j = 1; j < offsets.size(); ++j)
    SEGLOSS_CHECK(offsets[j] >= offsets[j - 1], op, "offsets[", j, "] = ", offsets[j],
                  " is smaller than offsets[", j - 1, "] = ", offsets[j - 1]);
}

// body(j) for every group j, in parallel (each group on one thread).
template <class Body>
void for_each_group(const std::vector<int64_t>& offsets, Body&& body) {
  const int64_t groups = static_cast<int64_t>(offsets.size()) - 1;
#if defined(_OPENMP)
#pragma omp parallel for schedule(dynamic, 1) if (groups > 1 && offsets.back() > 4096)
#endif
  for (int64_t j = 0; j < groups; ++j) body(j, offsets[j], offsets[j + 1]);
}

// The descending order of sort_desc: a NaN first, then larger values; a strict weak order, so
// std::stable_sort keeps equal values (and NaNs) in index order.
template <class T>
bool sorts_before(T a, T b) {
  if (std::isnan(a)) return !std::isnan(b);
  if (std::isnan(b)) return false;
  return a > b;
}

// ---- CUDA: the group primitives (backends/cuda/tape_ops.hpp) ----

// cumsum, adjacent_diff, segment_sum of a CUDA value: the forward and the backward are one
// kernel each; the host offsets travel with the closure and are copied to the device per call.
template <class T>
Var<T> group_cuda(const char* op, detail::TapeGroup code, const Var<T>& a,
                  const std::vector<int64_t>& offsets) {
  const Shape shape = code == detail::TapeGroup::segment_sum
                          ? Shape{static_cast<int64_t>(offsets.size()) - 1}
                          : a.shape();
  Tensor<T> out = Tensor<T>::empty(shape, Device::cuda);
  detail::tape_group_op(code, a.value().data(), out.data(), offsets, false);
  return a.tape().record(op, out, {a}, [a, offsets, code](Tape<T>& tape, const Tensor<T>& g) {
    add_device_grad(tape, a, [&](T* gv) {
      detail::tape_group_op(code, on_device(g).data(), gv, offsets, true);
    });
  });
}

// gather of a CUDA value. The index is checked on the host with the CPU's message: a device
// index (sort_desc's permutation) is copied back for it (the call waits). The backward's
// scatter order (the positions of each input element, in increasing order) is built on the host
// from that copy by a counting sort.
template <class T>
Var<T> gather_cuda(const char* op, const Var<T>& a, const Tensor<int64_t>& index) {
  const bool on_device_index = index.device() == Device::cuda;
  const Tensor<int64_t> host = on_device_index ? index.to(Device::cpu) : index;
  const int64_t n = a.value().numel();
  const int64_t* ix = host.data();
  for (int64_t i = 0; i < host.numel(); ++i)
    SEGLOSS_CHECK(ix[i] >= 0 && ix[i] < n, op, "index ", ix[i], " at ", host.shape().position(i),
                  " is outside [0, ", n, ") of the input ", a.shape());
  Tensor<T> out = Tensor<T>::empty(index.shape(), Device::cuda);
  detail::tape_gather(a.value().data(), on_device_index ? index.data() : host.data(),
                      on_device_index, out.data(), index.numel());
  return a.tape().record(op, out, {a}, [a, host](Tape<T>& tape, const Tensor<T>& g) {
    const int64_t m = a.value().numel(), count = host.numel();
    const int64_t* ix = host.data();
    std::vector<int64_t> start(static_cast<size_t>(m) + 1, 0), order(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) ++start[static_cast<size_t>(ix[i]) + 1];
    for (int64_t k = 0; k < m; ++k) start[k + 1] += start[k];
    std::vector<int64_t> next(start.begin(), start.end() - 1);
    for (int64_t i = 0; i < count; ++i) order[static_cast<size_t>(next[ix[i]]++)] = i;
    add_device_grad(
        tape, a, [&](T* gv) { detail::tape_gather_grad(on_device(g).data(), gv, start, order); });
  });
}

}  // namespace

template <class T>
Sorted<T> sort_desc(const Var<T>& a, const std::vector<int64_t>& offsets) {
  const char* op = "ad::sort_desc";
  tape_of(op, a);
  const int64_t n = a.value().numel();
  check_offsets(op, offsets, n);
  if (on_cuda(a)) {
    Sorted<T> r;
    r.perm = Tensor<int64_t>::empty(a.shape(), Device::cuda);
    Tensor<T> out = Tensor<T>::empty(a.shape(), Device::cuda);
    detail::tape_sort_desc(a.value().data(), out.data(), r.perm.data(), offsets);
    const Tensor<int64_t> perm = r.perm;
    r.values = a.tape().record(op, out, {a}, [a, perm](Tape<T>& tape, const Tensor<T>& g) {
      add_device_grad(tape, a, [&](T* gv) {
        detail::tape_permute_grad(perm.data(), on_device(g).data(), gv, g.numel());
      });
    });
    return r;
  }
  const T* x = a.value().data();
  Tensor<int64_t> perm = Tensor<int64_t>::empty(a.shape());
  Tensor<T> out = Tensor<T>::empty(a.shape());
  int64_t* pm = perm.data();
  T* y = out.data();
  for_each_group(offsets, [&](int64_t, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) pm[i] = i;
    std::stable_sort(pm + b, pm + e,
                     [x](int64_t i, int64_t k) { return sorts_before(x[i], x[k]); });
    for (int64_t i = b; i < e; ++i) y[i] = x[pm[i]];
  });
  Sorted<T> r;
  r.perm = perm;
  r.values = a.tape().record(op, out, {a}, [a, perm](Tape<T>& tape, const Tensor<T>& g) {
    T* gx = tape.grad_buffer(a).data();
    const T* gd = g.data();
    const int64_t* pm = perm.data();
    parallel_for(g.numel(), [&](int64_t k) { gx[pm[k]] += gd[k]; });  // a permutation: no races
  });
  return r;
}

template <class T>
Var<T> cumsum(const Var<T>& a, const std::vector<int64_t>& offsets) {
  const char* op = "ad::cumsum";
  tape_of(op, a);
  check_offsets(op, offsets, a.value().numel());
  if (on_cuda(a)) return group_cuda(op, detail::TapeGroup::cumsum, a, offsets);
  const T* x = a.value().data();
  Tensor<T> out = Tensor<T>::empty(a.shape());
  T* y = out.data();
  for_each_group(offsets, [&](int64_t, int64_t b, int64_t e) {
    double s = 0.0;
    for (int64_t i = b; i < e; ++i) y[i] = static_cast<T>(s += x[i]);
  });
  return a.tape().record(op, out, {a}, [a, offsets](Tape<T>& tape, const Tensor<T>& g) {
    T* gx = tape.grad_buffer(a).data();
    const T* gd = g.data();
    for_each_group(offsets, [&](int64_t, int64_t b, int64_t e) {
      double s = 0.0;
      for (int64_t i = e - 1; i >= b; --i) gx[i] += static_cast<T>(s += gd[i]);
    });
  });
}

template <class T>
Var<T> adjacent_diff(const Var<T>& a, const std::vector<int64_t>& offsets) {
  const char* op = "ad::adjacent_diff";
  tape_of(op, a);
  check_offsets(op, offsets, a.value().numel());
  if (on_cuda(a)) return group_cuda(op, detail::TapeGroup::adjacent_diff, a, offsets);
  const T* x = a.value().data();
  Tensor<T> out = Tensor<T>::empty(a.shape());
  T* y = out.data();
  for_each_group(offsets, [&](int64_t, int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = i == b ? x[i] : x[i] - x[i - 1];
  });
  return a.tape().record(op, out, {a}, [a, offsets](Tape<T>& tape, const Tensor<T>& g) {
    T* gx = tape.grad_buffer(a).data();
    const T* gd = g.data();
    for_each_group(offsets, [&](int64_t, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) gx[i] += i + 1 < e ? gd[i] - gd[i + 1] : gd[i];
    });
  });
}

template <class T>
Var<T> segment_sum(const Var<T>& a, const std::vector<int64_t>& offsets) {
  const char* op = "ad::segment_sum";
  tape_of(op, a);
  check_offsets(op, offsets, a.value().numel());
  if (on_cuda(a)) return group_cuda(op, detail::TapeGroup::segment_sum, a, offsets);
  const T* x = a.value().data();
  const int64_t groups = static_cast<int64_t>(offsets.size()) - 1;
  Tensor<T> out = Tensor<T>::empty(Shape{groups});
  T* y = out.data();
  for_each_group(offsets, [&](int64_t j, int64_t b, int64_t e) {
    double s = 0.0;
    for (int64_t i = b; i < e; ++i) s += x[i];
    y[j] = static_cast<T>(s);
  });
  return a.tape().record(op, out, {a}, [a, offsets](Tape<T>& tape, const Tensor<T>& g) {
    T* gx = tape.grad_buffer(a).data();
    const T* gd = g.data();
    for_each_group(offsets, [&](int64_t j, int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) gx[i] += gd[j];
    });
  });
}

template <class T>
Var<T> gather(const Var<T>& a, const Tensor<int64_t>& index) {
  const char* op = "ad::gather";
  tape_of(op, a);
  SEGLOSS_CHECK(index.defined(), op, "index is undefined");
  if (on_cuda(a)) return gather_cuda(op, a, index);
  detail::check_same_device(op, "index", index, Device::cpu, "the values");
  const int64_t n = a.value().numel();
  const int64_t* ix = index.data();
  for (int64_t i = 0; i < index.numel(); ++i)
    SEGLOSS_CHECK(ix[i] >= 0 && ix[i] < n, op, "index ", ix[i], " at ", index.shape().position(i),
                  " is outside [0, ", n, ") of the input ", a.shape());
  const T* x = a.value().data();
  Tensor<T> out = Tensor<T>::empty(index.shape());
  T* y = out.data();
  parallel_for(index.numel(), [&](int64_t i) { y[i] = x[ix[i]]; });
  return a.tape().record(op, out, {a}, [a, index](Tape<T>& tape, const Tensor<T>& g) {
    // Indices may repeat: one pass on one thread, summed in double in index order.
    std::vector<double> acc(static_cast<size_t>(a.value().numel()), 0.0);
    const int64_t* ix = index.data();
    const T* gd = g.data();
    for (int64_t i = 0; i < index.numel(); ++i) acc[static_cast<size_t>(ix[i])] += gd[i];
    T* gx = tape.grad_buffer(a).data();
    parallel_for(a.value().numel(), [&](int64_t i) { gx[i] += static_cast<T>(acc[i]); });
  });
}

// relu'(x) = [x > 0], and 1 for a NaN (which passes through).
template <class T>
Var<T> relu(const Var<T>& a) {
  return unary(
      "ad::relu", a, [](T x) { return std::isnan(x) || x > T(0) ? x : T(0); },
      [](T x, T) { return std::isnan(x) || x > T(0) ? T(1) : T(0); }, detail::TapeUnary::relu);
}

// ---------------------------------------------------------------------------------------------
// Fused losses
// ---------------------------------------------------------------------------------------------

// dL/d(input) = g * grad, with g the incoming gradient of the scalar value.
template <class T>
Var<T> fused_node(const char* op, const Var<T>& input, double value, Tensor<T> grad) {
  tape_of(op, input);
  SEGLOSS_CHECK(grad.defined() && grad.shape() == input.shape(), op, "the fused gradient ",
                grad.shape(), " does not match the input ", input.shape());
  SEGLOSS_CHECK(grad.device() == input.value().device(), op, "the fused gradient is on ",
                device_name(grad.device()), " and the input on ",
                device_name(input.value().device()));
  return input.tape().record(op, Tensor<T>::full(Shape{}, static_cast<T>(value)), {input},
                             [input, grad](Tape<T>& tape, const Tensor<T>& g) {
                               tape.accumulate(input, grad, static_cast<double>(g[0]), true);
                             });
}

// ---------------------------------------------------------------------------------------------
// Instantiations
// ---------------------------------------------------------------------------------------------

#define SEGLOSS_INSTANTIATE_LABEL(T, L)                                  \
  template Var<T> one_hot(Tape<T>&, const Tensor<L>&, int64_t, int64_t); \
  template Var<T> valid_mask(Tape<T>&, const Tensor<L>&, int64_t);
#define SEGLOSS_INSTANTIATE(T)                                               \
  template class Var<T>;                                                     \
  template class Tape<T>;                                                    \
  template Var<T> add(const Var<T>&, const Var<T>&);                         \
  template Var<T> sub(const Var<T>&, const Var<T>&);                         \
  template Var<T> mul(const Var<T>&, const Var<T>&);                         \
  template Var<T> div(const Var<T>&, const Var<T>&);                         \
  template Var<T> add(const Var<T>&, double);                                \
  template Var<T> mul(const Var<T>&, double);                                \
  template Var<T> rsub(double, const Var<T>&);                               \
  template Var<T> rdiv(double, const Var<T>&);                               \
  template Var<T> neg(const Var<T>&);                                        \
  template Var<T> exp(const Var<T>&);                                        \
  template Var<T> log(const Var<T>&);                                        \
  template Var<T> log1p(const Var<T>&);                                      \
  template Var<T> sigmoid(const Var<T>&);                                    \
  template Var<T> log_sigmoid(const Var<T>&);                                \
  template Var<T> softplus(const Var<T>&);                                   \
  template Var<T> clamp(const Var<T>&, double, double);                      \
  template Var<T> pow(const Var<T>&, double);                                \
  template Var<T> softmax(const Var<T>&);                                    \
  template Var<T> log_softmax(const Var<T>&);                                \
  template Var<T> sum(const Var<T>&);                                        \
  template Var<T> mean(const Var<T>&);                                       \
  template Var<T> sum_per_image(const Var<T>&);                              \
  template Var<T> mean_per_image(const Var<T>&);                             \
  template Var<T> sum_per_class(const Var<T>&);                              \
  template Var<T> mean_per_class(const Var<T>&);                             \
  template Var<T> sum_per_image_class(const Var<T>&);                        \
  template Var<T> mean_per_image_class(const Var<T>&);                       \
  template Var<T> class_sum(const Var<T>&);                                  \
  template Var<T> reshape(const Var<T>&, const Shape&);                      \
  template Var<T> where(const Tensor<T>&, const Var<T>&, const Var<T>&);     \
  template Var<T> fused_node(const char*, const Var<T>&, double, Tensor<T>); \
  template Sorted<T> sort_desc(const Var<T>&, const std::vector<int64_t>&);  \
  template Var<T> cumsum(const Var<T>&, const std::vector<int64_t>&);        \
  template Var<T> adjacent_diff(const Var<T>&, const std::vector<int64_t>&); \
  template Var<T> segment_sum(const Var<T>&, const std::vector<int64_t>&);   \
  template Var<T> gather(const Var<T>&, const Tensor<int64_t>&);             \
  template Var<T> relu(const Var<T>&);                                       \
  SEGLOSS_INSTANTIATE_LABEL(T, int32_t)                                      \
  SEGLOSS_INSTANTIATE_LABEL(T, int64_t)
SEGLOSS_INSTANTIATE(float)
SEGLOSS_INSTANTIATE(double)
#undef SEGLOSS_INSTANTIATE
#undef SEGLOSS_INSTANTIATE_LABEL

}  // namespace segloss::ad

// The network of train_shapes: a small fully-convolutional encoder-decoder written with Eigen,
// forward and backward by hand, and Adam. This is the "custom C++ learning code" a segloss user
// writes; segloss supplies the loss, its gradient and the metrics.
//
// One image's activation is a column-major Eigen matrix of shape (H * W, C): column c is the
// plane of channel c, so a batch of such matrices laid end to end is the (N, C, H, W) layout
// the losses take.
//
// Conv (k x k, k = 3 or 1, stride s, dilation d, zero padding p = d (k / 2)): im2col, one GEMM.
//   cols[o, (ci k + ky) k + kx] = in[(oy s - p + ky d) * W + (ox s - p + kx d), ci] (0 outside)
//   out = cols * Wt + 1 b^T                     Wt: (Cin k^2, Cout), b: (Cout)
//   dWt = cols^T dout,  db = column sums of dout,  dcols = dout Wt^T, and col2im adds dcols back
//   into din at the positions im2col read them from.
// ReLU: out = max(in, 0), din = dout [out > 0]. Upsample x2 (nearest): out[y, x] = in[y/2, x/2],
// din[y, x] = the sum of dout over its 2x2 block. Concat: columns side by side; its backward
// splits them.
//
// Net: 64x64 input (any size divisible by 4)
//   a1 = relu(conv 1->16)                    full resolution
//   a2 = relu(conv 16->16, stride 2)         1/2
//   a3 = relu(conv 16->32, stride 2)         1/4
//   a4 = relu(conv 32->32, dilation 2)       1/4
//   a5 = relu(conv 32->32, dilation 4)       1/4   receptive field 57 pixels so far
//   a6 = relu(conv [up(a5), a2] 48->16)      1/2
//   z  = conv 1x1 [up(a6), a1] 32->4         full resolution: the logits, receptive field 61
#pragma once

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace train_shapes {

template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;  // column-major
template <class T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;

// A k x k convolution (k = 1 or 3) with zero padding d (k / 2): "same" size at stride 1, half
// the size at stride 2 for even sizes.
template <class T>
struct Conv {
  int cin = 0, cout = 0, stride = 1, dilation = 1, k = 3;
  Mat<T> w;  // (cin * k * k, cout)
  Vec<T> b;  // (cout)

  Conv() = default;
  Conv(int cin_, int cout_, int stride_, int dilation_, int k_ = 3)
      : cin(cin_), cout(cout_), stride(stride_), dilation(dilation_), k(k_) {
    w = Mat<T>::Zero(cin * k * k, cout);
    b = Vec<T>::Zero(cout);
  }
  int pad() const { return dilation * (k / 2); }
  // (n + 2 pad - d (k - 1) - 1) / s + 1, and 2 pad = d (k - 1).
  int64_t out_size(int64_t n) const { return (n - 1) / stride + 1; }

  // The output columns ox whose input column ix = ox s - p + kx d lies in [0, wd): [lo, hi).
  void valid_range(int kx, int64_t wd, int64_t wo, int64_t& lo, int64_t& hi) const {
    const int64_t off = kx * dilation - pad();  // ix = ox s + off
    lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
    hi = wd - off <= 0 ? 0 : std::min<int64_t>(wo, (wd - off + stride - 1) / stride);
    lo = std::min(lo, wo);  // a tap that misses the image on every output column
    hi = std::max(lo, hi);
  }
  // The rows are read in runs: the bounds are checked once per (row, kx), not per pixel.
  void im2col(const Mat<T>& in, int64_t h, int64_t wd, Mat<T>& cols) const {
    const int64_t ho = out_size(h), wo = out_size(wd);
    cols.resize(ho * wo, cin * k * k);
    for (int ci = 0; ci < cin; ++ci)
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx) {
          T* col = cols.col((ci * k + ky) * k + kx).data();
          const T* plane = in.col(ci).data();
          int64_t lo, hi;
          valid_range(kx, wd, wo, lo, hi);
          const int64_t off = kx * dilation - pad();
          for (int64_t oy = 0; oy < ho; ++oy) {
            const int64_t iy = oy * stride - pad() + ky * dilation;
            T* o = col + oy * wo;
            if (iy < 0 || iy >= h) {
              std::fill(o, o + wo, T(0));
              continue;
            }
            const T* row = plane + iy * wd;  // row[ox s + off] for ox in [lo, hi)
            std::fill(o, o + lo, T(0));
            if (stride == 1)
              std::copy(row + lo + off, row + hi + off, o + lo);
            else
              for (int64_t ox = lo; ox < hi; ++ox) o[ox] = row[ox * stride + off];
            std::fill(o + hi, o + wo, T(0));
          }
        }
  }
  void col2im(const Mat<T>& dcols, int64_t h, int64_t wd, Mat<T>& din) const {
    const int64_t ho = out_size(h), wo = out_size(wd);
    din.setZero(h * wd, cin);
    for (int ci = 0; ci < cin; ++ci)
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx) {
          const T* col = dcols.col((ci * k + ky) * k + kx).data();
          T* plane = din.col(ci).data();
          int64_t lo, hi;
          valid_range(kx, wd, wo, lo, hi);
          const int64_t off = kx * dilation - pad();
          for (int64_t oy = 0; oy < ho; ++oy) {
            const int64_t iy = oy * stride - pad() + ky * dilation;
            if (iy < 0 || iy >= h) continue;
            T* row = plane + iy * wd;
            const T* c = col + oy * wo;
            if (stride == 1)
              for (int64_t ox = lo; ox < hi; ++ox) row[ox + off] += c[ox];
            else
              for (int64_t ox = lo; ox < hi; ++ox) row[ox * stride + off] += c[ox];
          }
        }
  }
  // out = conv(in); cols is kept for the backward.
  void forward(const Mat<T>& in, int64_t h, int64_t wd, Mat<T>& cols, Mat<T>& out) const {
    im2col(in, h, wd, cols);
    out.noalias() = cols * w;
    out.rowwise() += b.transpose();
  }
  // Adds the parameter gradients into gw, gb; writes din (skipped when din is null).
  void backward(const Mat<T>& cols, const Mat<T>& dout, int64_t h, int64_t wd,
                Eigen::Ref<Mat<T>> gw, Eigen::Ref<Vec<T>> gb, Mat<T>* din, Mat<T>& dcols) const {
    gw.noalias() += cols.transpose() * dout;
    gb += dout.colwise().sum().transpose();
    if (din == nullptr) return;
    dcols.noalias() = dout * w.transpose();
    col2im(dcols, h, wd, *din);
  }
};

template <class T>
void relu_inplace(Mat<T>& a) {
  a = a.cwiseMax(T(0));
}
// dout <- dout [out > 0]
template <class T>
void relu_backward(const Mat<T>& out, Mat<T>& dout) {
  dout.array() *= (out.array() > T(0)).template cast<T>();
}
template <class T>
void upsample2(const Mat<T>& in, int64_t h, int64_t wd, Mat<T>& out) {
  out.resize(4 * h * wd, in.cols());
  for (int64_t c = 0; c < in.cols(); ++c)
    for (int64_t y = 0; y < 2 * h; ++y)
      for (int64_t x = 0; x < 2 * wd; ++x) out(y * 2 * wd + x, c) = in((y / 2) * wd + x / 2, c);
}
// din = the 2x2 block sums of dout; (h, wd) is the small size.
template <class T>
void upsample2_backward(const Eigen::Ref<const Mat<T>>& dout, int64_t h, int64_t wd, Mat<T>& din) {
  din.setZero(h * wd, dout.cols());
  for (int64_t c = 0; c < dout.cols(); ++c)
    for (int64_t y = 0; y < 2 * h; ++y)
      for (int64_t x = 0; x < 2 * wd; ++x) din((y / 2) * wd + x / 2, c) += dout(y * 2 * wd + x, c);
}

// What the backward of one image needs from its forward, and the scratch matrices of both
// (kept from image to image, so that the steady state allocates nothing).
template <class T>
struct Cache {
  Mat<T> x, cols[7], a1, a2, a3, a4, a5, m6, a6, m7, z;
  Mat<T> up, dcols, d7, d6, d6a, d5, d4, d3, d0, tmp, da1, da2;  // scratch
};

template <class T>
struct Net {
  static constexpr int kClasses = 4;
  Conv<T> c[7] = {{1, 16, 1, 1},  {16, 16, 2, 1}, {16, 32, 2, 1},         {32, 32, 1, 2},
                  {32, 32, 1, 4}, {48, 16, 1, 1}, {32, kClasses, 1, 1, 1}};

  // He-normal weights from `seed`, zero biases.
  void init(uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (auto& l : c) {
      const double sd = std::sqrt(2.0 / double(l.w.rows()));  // fan-in cin k^2
      for (int64_t i = 0; i < l.w.size(); ++i) {
        // Box-Muller on our own uniforms: the same numbers with any standard library.
        const double u1 = ((rng() >> 11) + 0.5) * 0x1p-53, u2 = (rng() >> 11) * 0x1p-53;
        l.w.data()[i] = T(sd * std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2));
      }
      l.b.setZero();
    }
  }
  int64_t num_params() const {
    int64_t n = 0;
    for (const auto& l : c) n += l.w.size() + l.b.size();
    return n;
  }
  // Parameters flattened in layer order (w then b), and back: for Adam and for gradcheck.
  void get(T* p) const {
    for (const auto& l : c) {
      p = std::copy(l.w.data(), l.w.data() + l.w.size(), p);
      p = std::copy(l.b.data(), l.b.data() + l.b.size(), p);
    }
  }
  void set(const T* p) {
    for (auto& l : c) {
      std::copy(p, p + l.w.size(), l.w.data()), p += l.w.size();
      std::copy(p, p + l.b.size(), l.b.data()), p += l.b.size();
    }
  }

  // One image x (h * w values): the logits z, (h * w, kClasses), in cache.z.
  void forward(const T* x, int64_t h, int64_t w, Cache<T>& k) const {
    const int64_t h2 = h / 2, w2 = w / 2, h4 = h / 4, w4 = w / 4;
    k.x = Eigen::Map<const Mat<T>>(x, h * w, 1);
    c[0].forward(k.x, h, w, k.cols[0], k.a1), relu_inplace(k.a1);
    c[1].forward(k.a1, h, w, k.cols[1], k.a2), relu_inplace(k.a2);
    c[2].forward(k.a2, h2, w2, k.cols[2], k.a3), relu_inplace(k.a3);
    c[3].forward(k.a3, h4, w4, k.cols[3], k.a4), relu_inplace(k.a4);
    c[4].forward(k.a4, h4, w4, k.cols[4], k.a5), relu_inplace(k.a5);
    upsample2(k.a5, h4, w4, k.up);
    k.m6.resize(h2 * w2, 48);
    k.m6 << k.up, k.a2;
    c[5].forward(k.m6, h2, w2, k.cols[5], k.a6), relu_inplace(k.a6);
    upsample2(k.a6, h2, w2, k.up);
    k.m7.resize(h * w, 32);
    k.m7 << k.up, k.a1;
    c[6].forward(k.m7, h, w, k.cols[6], k.z);
  }

  // dz = dL/dz of one image; adds dL/dparams into g (a flat vector in get()'s order). When dx
  // is not null it receives dL/dx (h * w values): for the gradient check.
  void backward(Cache<T>& k, const Mat<T>& dz, int64_t h, int64_t w, T* g, T* dx = nullptr) const {
    const int64_t h2 = h / 2, w2 = w / 2, h4 = h / 4, w4 = w / 4;
    // Views of each layer's slice of g.
    std::vector<Eigen::Map<Mat<T>>> gw;
    std::vector<Eigen::Map<Vec<T>>> gb;
    for (const auto& l : c) {
      gw.emplace_back(g, l.w.rows(), l.w.cols()), g += l.w.size();
      gb.emplace_back(g, l.b.size()), g += l.b.size();
    }
    Mat<T>&dcols = k.dcols, &d7 = k.d7, &d6 = k.d6, &d6a = k.d6a, &d5 = k.d5, &d4 = k.d4,
    &d3 = k.d3, &d0 = k.d0, &tmp = k.tmp, &da1 = k.da1, &da2 = k.da2;
    backward_layer(6, k.cols[6], dz, h, w, gw, gb, &d7, dcols);  // d7: dL/dm7
    da1 = d7.rightCols(16);
    upsample2_backward<T>(d7.leftCols(16), h2, w2, d6);  // dL/da6
    relu_backward(k.a6, d6);
    backward_layer(5, k.cols[5], d6, h2, w2, gw, gb, &d6a, dcols);  // dL/dm6
    da2 = d6a.rightCols(16);
    upsample2_backward<T>(d6a.leftCols(32), h4, w4, d5);  // dL/da5
    relu_backward(k.a5, d5);
    backward_layer(4, k.cols[4], d5, h4, w4, gw, gb, &d4, dcols);
    relu_backward(k.a4, d4);
    backward_layer(3, k.cols[3], d4, h4, w4, gw, gb, &d3, dcols);
    relu_backward(k.a3, d3);
    backward_layer(2, k.cols[2], d3, h2, w2, gw, gb, &tmp, dcols);
    da2 += tmp;
    relu_backward(k.a2, da2);
    backward_layer(1, k.cols[1], da2, h, w, gw, gb, &tmp, dcols);
    da1 += tmp;
    relu_backward(k.a1, da1);
    backward_layer(0, k.cols[0], da1, h, w, gw, gb, dx ? &d0 : nullptr, dcols);
    if (dx) std::copy(d0.data(), d0.data() + h * w, dx);
  }

 private:
  void backward_layer(int i, const Mat<T>& cols, const Mat<T>& dout, int64_t h, int64_t w,
                      std::vector<Eigen::Map<Mat<T>>>& gw, std::vector<Eigen::Map<Vec<T>>>& gb,
                      Mat<T>* din, Mat<T>& dcols) const {
    c[i].backward(cols, dout, h, w, gw[i], gb[i], din, dcols);
  }
};

// Adam (Kingma and Ba, 2015) with bias correction, on a flat parameter vector.
struct Adam {
  double lr = 3e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  std::vector<double> m, v;
  int64_t t = 0;
  void step(std::vector<float>& p, const std::vector<double>& g) {
    if (m.empty()) m.assign(p.size(), 0.0), v.assign(p.size(), 0.0);
    ++t;
    const double c1 = 1 - std::pow(beta1, double(t)), c2 = 1 - std::pow(beta2, double(t));
    for (size_t i = 0; i < p.size(); ++i) {
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      p[i] -= float(lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps));
    }
  }
};

}  // namespace train_shapes

// The synthetic data of train_shapes: grayscale images of overlapping ellipses (class 1),
// rectangles (class 2) and triangles (class 3) over a textured, noisy background (class 0).
//
// Each image: a background level in [0.15, 0.45] plus three random plane waves (amplitude up to
// 0.07 each); then 2 to 4 shapes, each of a random class, size (radius 6 to 15 pixels at 64x64,
// scaled with the image), rotation and intensity (uniform in [0.55, 0.95], so intensity says
// nothing about the class, redrawn up to 8 times until it is 0.15 away from the earlier shapes');
// a later shape covers an earlier one, in the image and in the labels.
// Then Gaussian noise (sigma 0.05) over everything, clamped to [0, 1]. The class is the form
// only: telling a rectangle's inside from an ellipse's needs the corners, so the network needs
// context (a receptive field about the size of a shape).
//
// Every random number comes from our own generator (splitmix64) and our own uniform and normal
// transforms: a seed gives the same images with any compiler and standard library.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace train_shapes {

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * 0x1p-53; }  // [0, 1)
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  int below(int n) { return int(uniform() * n); }
  double normal() {
    const double u1 = uniform() + 0x1p-54, u2 = uniform();
    return std::sqrt(-2 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

struct Dataset {
  int64_t n = 0, size = 0;
  std::vector<float> images;    // (n, 1, size, size), values in [0, 1]
  std::vector<int64_t> labels;  // (n, size, size), 0..3
  std::vector<float> inputs;    // the network's input: 3 (image - 0.5), about zero-centred
};

inline const char* const kClassNames[4] = {"background", "ellipse", "rectangle", "triangle"};

// n images of size x size from `seed`.
inline Dataset make_shapes(int64_t n, int64_t size, uint64_t seed) {
  Dataset d;
  d.n = n, d.size = size;
  d.images.resize(n * size * size), d.labels.resize(n * size * size);
  const double pi = 3.141592653589793, scale = size / 64.0;
  // Each image from its own stream: the same images at any thread count.
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t i = 0; i < n; ++i) {
    Rng rng(seed * 1000003ull + uint64_t(i));  // each image on its own: any subset is the same
    float* img = &d.images[i * size * size];
    int64_t* lab = &d.labels[i * size * size];
    const double level = rng.uniform(0.15, 0.45);
    double wave[3][4];  // amplitude, fx, fy, phase
    for (auto& v : wave) {
      const double f = rng.uniform(0.05, 0.5), a = rng.uniform(0, 2 * pi);
      v[0] = rng.uniform(0.02, 0.07), v[1] = f * std::cos(a), v[2] = f * std::sin(a);
      v[3] = rng.uniform(0, 2 * pi);
    }
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x) {
        double v = level;
        for (const auto& w : wave) v += w[0] * std::sin(w[1] * x / scale + w[2] * y / scale + w[3]);
        img[y * size + x] = float(v);
        lab[y * size + x] = 0;
      }
    const int shapes = 2 + rng.below(3);
    std::vector<float> painted;
    for (int s = 0; s < shapes; ++s) {
      const int cls = 1 + rng.below(3);
      const double cx = rng.uniform(4, 60) * scale, cy = rng.uniform(4, 60) * scale;
      const double r = rng.uniform(6, 15) * scale, rot = rng.uniform(0, pi);
      // A shape differs from the background and from every shape it covers by at least 0.15 in
      // intensity (a few draws; the last one stands), so that an occluding edge is visible.
      double value = 0;
      for (int attempt = 0; attempt < 8; ++attempt) {
        value = rng.uniform(0.55, 0.95);
        bool clear = true;
        for (float v : painted) clear = clear && std::abs(v - value) >= 0.15;
        if (clear) break;
      }
      painted.push_back(float(value));
      const double ca = std::cos(rot), sa = std::sin(rot);
      // Ellipse semi-axes, rectangle half-sides (one side at least 0.6 of the other), or the
      // triangle's corners at jittered angles.
      const double a = r * rng.uniform(0.6, 1.0), b = r * rng.uniform(0.6, 1.0);
      double tx[3], ty[3];
      for (int k = 0; k < 3; ++k) {
        const double ang = rot + 2 * pi * k / 3 + rng.uniform(-0.3, 0.3);
        const double rr = r * rng.uniform(0.9, 1.2);
        tx[k] = cx + rr * std::cos(ang), ty[k] = cy + rr * std::sin(ang);
      }
      for (int64_t y = 0; y < size; ++y)
        for (int64_t x = 0; x < size; ++x) {
          const double px = x + 0.5 - cx, py = y + 0.5 - cy;
          const double u = ca * px + sa * py, v = -sa * px + ca * py;  // shape frame
          bool inside = false;
          if (cls == 1) {
            inside = (u * u) / (a * a) + (v * v) / (b * b) <= 1;
          } else if (cls == 2) {
            inside = std::abs(u) <= a && std::abs(v) <= 0.8 * b;
          } else {
            const double qx = x + 0.5, qy = y + 0.5;
            double sgn[3];
            for (int k = 0; k < 3; ++k) {
              const int j = (k + 1) % 3;
              sgn[k] = (tx[j] - tx[k]) * (qy - ty[k]) - (ty[j] - ty[k]) * (qx - tx[k]);
            }
            inside = (sgn[0] >= 0 && sgn[1] >= 0 && sgn[2] >= 0) ||
                     (sgn[0] <= 0 && sgn[1] <= 0 && sgn[2] <= 0);
          }
          if (inside) img[y * size + x] = float(value), lab[y * size + x] = cls;
        }
    }
    for (int64_t p = 0; p < size * size; ++p)
      img[p] = float(std::clamp(img[p] + 0.05 * rng.normal(), 0.0, 1.0));
  }
  d.inputs.resize(d.images.size());
  for (size_t p = 0; p < d.images.size(); ++p) d.inputs[p] = 3 * (d.images[p] - 0.5f);
  return d;
}

}  // namespace train_shapes

// The files train_shapes writes: PNG images with no library (zlib "stored" blocks: no
// compression, which is valid deflate) and an SVG training curve.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace train_shapes {

inline uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0) {
  static uint32_t table[256];
  static const bool filled = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)filled;
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

// An 8-bit RGB image (rgb: height rows of width * 3 bytes) as a PNG file (RFC 2083, RFC 1950/1951).
inline bool write_png(const std::string& path, int width, int height,
                      const std::vector<uint8_t>& rgb) {
  std::vector<uint8_t> raw;  // each row: filter byte 0 (none), then the pixels
  for (int y = 0; y < height; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), rgb.begin() + size_t(y) * width * 3,
               rgb.begin() + size_t(y + 1) * width * 3);
  }
  std::vector<uint8_t> z = {0x78, 0x01};  // zlib header: deflate, 32 KiB window, no dictionary
  for (size_t pos = 0; pos == 0 || pos < raw.size();) {
    const size_t len = std::min<size_t>(65535, raw.size() - pos);
    const bool last = pos + len == raw.size();
    z.push_back(last ? 1 : 0);  // BFINAL, BTYPE = 00 (stored)
    z.push_back(uint8_t(len)), z.push_back(uint8_t(len >> 8));
    z.push_back(uint8_t(~len)), z.push_back(uint8_t(~len >> 8));
    z.insert(z.end(), raw.begin() + pos, raw.begin() + pos + len);
    pos += len;
  }
  uint32_t a = 1, b = 0;  // Adler-32 of the uncompressed data
  for (uint8_t c : raw) a = (a + c) % 65521, b = (b + a) % 65521;
  for (int s = 24; s >= 0; s -= 8) z.push_back(uint8_t(((b << 16) | a) >> s));

  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  const auto chunk = [&](const char* type, const std::vector<uint8_t>& data) {
    const uint32_t n = uint32_t(data.size());
    for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(n >> s));
    const size_t start = out.size();
    out.insert(out.end(), type, type + 4);
    out.insert(out.end(), data.begin(), data.end());
    const uint32_t crc = crc32(&out[start], out.size() - start);
    for (int s = 24; s >= 0; s -= 8) out.push_back(uint8_t(crc >> s));
  };
  std::vector<uint8_t> ihdr;
  for (uint32_t v : {uint32_t(width), uint32_t(height)})
    for (int s = 24; s >= 0; s -= 8) ihdr.push_back(uint8_t(v >> s));
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8 bits, RGB, deflate, filter 0, no interlace
  chunk("IHDR", ihdr);
  chunk("IDAT", z);
  chunk("IEND", {});
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return false;
  const bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
  return std::fclose(f) == 0 && ok;
}

// Training loss (left axis, 0 to its maximum) and validation mIoU (right axis, 0 to 1) per
// epoch, as polylines.
inline bool write_curve_svg(const std::string& path, const std::vector<double>& loss,
                            const std::vector<double>& miou) {
  const double w = 640, h = 360, l = 60, r = 60, t = 30, b = 40;
  const double lmax = std::max(1e-12, *std::max_element(loss.begin(), loss.end()));
  const size_t n = std::max(loss.size(), miou.size());
  // Epoch e (mIoU has the untrained net at e = 0, the loss starts at e = 1) to x.
  const auto px = [&](double e) { return l + (w - l - r) * e / std::max<double>(1, n - 1); };
  const auto py = [&](double v) { return t + (h - t - b) * (1 - v); };
  FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return false;
  std::fprintf(f,
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
               "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" "
               "stroke=\"#888\"/>\n",
               w, h, l, t, w - l - r, h - t - b);
  for (int k = 0; k <= 4; ++k) {
    const double v = k / 4.0;
    std::fprintf(f,
                 "<line x1=\"%g\" x2=\"%g\" y1=\"%g\" y2=\"%g\" stroke=\"#eee\"/>\n"
                 "<text x=\"%g\" y=\"%g\" text-anchor=\"end\" fill=\"#c0392b\">%.3g</text>\n"
                 "<text x=\"%g\" y=\"%g\" fill=\"#2471a3\">%.2f</text>\n",
                 l, w - r, py(v), py(v), l - 4, py(v) + 4, v * lmax, w - r + 4, py(v) + 4, v);
  }
  const auto line = [&](const std::vector<double>& v, size_t first, double s, const char* c) {
    std::fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", c);
    for (size_t i = 0; i < v.size(); ++i)
      std::fprintf(f, "%.1f,%.1f ", px(first + i), py(v[i] / s));
    std::fprintf(f, "\"/>\n");
  };
  line(loss, n - loss.size(), lmax, "#c0392b");
  line(miou, n - miou.size(), 1.0, "#2471a3");
  std::fprintf(
      f,
      "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">epoch (0 = before training)</text>\n"
      "<text x=\"%g\" y=\"18\" fill=\"#c0392b\">training loss</text>\n"
      "<text x=\"%g\" y=\"18\" text-anchor=\"end\" fill=\"#2471a3\">validation mIoU</text>\n"
      "</svg>\n",
      (l + w - r) / 2, h - 10, l, w - r);
  return std::fclose(f) == 0;
}

}  // namespace train_shapes

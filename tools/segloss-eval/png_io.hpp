// @brief Label maps in PNG files, read and written with libpng: the pixel values are the labels.
//
// Reading (read_label_png) accepts the PNGs that hold one label per pixel:
//   grayscale, bit depth 1, 2, 4, 8 or 16: the gray value is the label (0 .. 2^depth - 1; no
//     scaling of the low depths to 8 bits);
//   palette (indexed), bit depth 1, 2, 4 or 8: the palette index is the label (the palette is
//     not expanded to colours: a VOC-style colour-coded mask reads as its class indices).
// No colour transform is applied (gamma, sRGB and tRNS chunks are ignored). A file is decoded a
// row at a time (interlaced files whole, at their stored size), after a check that the image
// data (IDAT) can hold the pixels the header claims, so memory follows the data actually there.
// RGB, RGBA and gray+alpha files are refused: a label map with colour channels has no single label
// per pixel.
//
// Writing (write_label_png) is for tests and synthetic data: one label per pixel stored as
// grayscale or palette indices at a given bit depth, or, to exercise the refusal above, as RGB
// (v, v, v) or gray+alpha (v, 255).
//
// Errors: PngError, whose message names the file and what was wrong (cannot be opened, not a
// PNG, truncated or corrupt data as libpng reports it, an unsupported colour type, a label that
// does not fit the bit depth when writing).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace segloss::tools {

class PngError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LabelImage {
  int64_t height = 0;
  int64_t width = 0;
  std::vector<int32_t> labels;  // row-major, height * width
  int bit_depth = 0;            // as stored in the file
  bool palette = false;         // palette indices (else grayscale)
};

LabelImage read_label_png(const std::string& path);

enum class PngColor { gray, palette, rgb, gray_alpha };

// Writes labels (row-major, height * width) as `color` at `bit_depth` (gray: 1, 2, 4, 8, 16;
// palette: 1, 2, 4, 8; rgb and gray_alpha: 8), Adam7-interlaced when asked. A palette file gets
// 2^depth entries.
void write_label_png(const std::string& path, const std::vector<int32_t>& labels, int64_t height,
                     int64_t width, PngColor color = PngColor::gray, int bit_depth = 8,
                     bool interlaced = false);

}  // namespace segloss::tools

// libpng reading and writing of label maps (contract in png_io.hpp).
//
// libpng reports an error through a callback that must not return: it longjmps back to the
// setjmp of the function that called into libpng. Those functions (read_header, start_rows,
// read_row, read_rows, read_end, write_all) hold no C++ object with a destructor, so the jump skips
// no cleanup; the message is kept in Io and turned into a PngError by the caller, whose Io
// destructor frees libpng's structs and closes the file.
#include "png_io.hpp"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace segloss::tools {
namespace {

struct Io {
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::FILE* file = nullptr;
  bool writing = false;
  char message[256] = {0};
  char warning[256] = {0};  // libpng's last warning: the cause behind "Invalid IHDR data"

  ~Io() {
    if (png && writing) png_destroy_write_struct(&png, info ? &info : nullptr);
    if (png && !writing) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    if (file) std::fclose(file);
  }
};

void on_error(png_structp png, png_const_charp msg) {
  Io* io = static_cast<Io*>(png_get_error_ptr(png));
  std::snprintf(io->message, sizeof io->message, "%s", msg);
  png_longjmp(png, 1);
}

// Warnings (an incorrect sRGB profile, a text chunk too long) do not affect the labels, but
// libpng gives the cause of an invalid header ("Image width is zero in IHDR") as a warning
// before its error "Invalid IHDR data": the last one is kept for the error message.
void on_warning(png_structp png, png_const_charp msg) {
  Io* io = static_cast<Io*>(png_get_error_ptr(png));
  std::snprintf(io->warning, sizeof io->warning, "%s", msg);
}

// "bad PNG data: <libpng's error> (libpng warned: <its last warning>)".
std::string bad_data(const Io& io) {
  std::string m = std::string("bad PNG data: ") + io.message;
  if (io.warning[0] != 0) m += std::string(" (libpng warned: ") + io.warning + ")";
  return m;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw PngError(path + ": " + what);
}

const char* color_name(int color) {
  switch (color) {
    case PNG_COLOR_TYPE_GRAY:
      return "grayscale";
    case PNG_COLOR_TYPE_PALETTE:
      return "palette";
    case PNG_COLOR_TYPE_RGB:
      return "RGB";
    case PNG_COLOR_TYPE_RGB_ALPHA:
      return "RGBA";
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      return "gray+alpha";
    default:
      return "unknown";
  }
}

// The bytes of the IDAT chunks (the image data) that the file holds, read from the chunk
// headers after the signature; the file position is restored. A chunk whose claimed length
// runs past the end of the file counts only the bytes there and ends the walk (a seek past the
// end succeeds, so a 41-byte file claiming 2^31 - 1 bytes of IDAT counted them all).
uint64_t idat_bytes(std::FILE* file) {
  const long start = std::ftell(file);
  if (start < 0 || std::fseek(file, 0, SEEK_END) != 0) return 0;
  const long end = std::ftell(file);
  std::fseek(file, start, SEEK_SET);
  uint64_t total = 0;
  unsigned char head[8];
  while (std::fread(head, 1, 8, file) == 8) {
    const uint32_t length = (uint32_t{head[0]} << 24) | (uint32_t{head[1]} << 16) |
                            (uint32_t{head[2]} << 8) | uint32_t{head[3]};
    const long at = std::ftell(file);
    const uint64_t left = at >= 0 && end > at ? static_cast<uint64_t>(end - at) : 0;
    if (std::memcmp(head + 4, "IDAT", 4) == 0) total += std::min<uint64_t>(length, left);
    if (std::memcmp(head + 4, "IEND", 4) == 0 || uint64_t{length} + 4 > left) break;
    if (std::fseek(file, static_cast<long>(length) + 4, SEEK_CUR) != 0) break;  // data and CRC
  }
  std::fseek(file, start, SEEK_SET);
  return total;
}

struct Header {
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color = 0, interlace = 0;
};

// The header (libpng allocates nothing for the image yet). Returns false on a libpng error.
bool read_header(Io* io, Header* h) {
  if (setjmp(png_jmpbuf(io->png))) return false;
  png_init_io(io->png, io->file);
  png_set_sig_bytes(io->png, 8);
  png_read_info(io->png, io->info);
  png_get_IHDR(io->png, io->info, &h->width, &h->height, &h->bit_depth, &h->color, &h->interlace,
               nullptr, nullptr);
  return true;
}

// Once the header passed the checks: the one transform, interlaced passes combined, and the
// row size (libpng allocates its row buffers here). Rows stay as stored (samples below 8 bits
// packed, 16-bit big-endian) and are unpacked by unpack_row, so the buffers hold no more bytes
// than the image data decodes to. Returns false on a libpng error.
bool start_rows(Io* io, png_size_t* rowbytes) {
  if (setjmp(png_jmpbuf(io->png))) return false;
  png_set_interlace_handling(io->png);
  png_read_update_info(io->png, io->info);
  *rowbytes = png_get_rowbytes(io->png, io->info);
  return true;
}

bool read_row(Io* io, png_bytep row) {
  if (setjmp(png_jmpbuf(io->png))) return false;
  png_read_row(io->png, row, nullptr);
  return true;
}

bool read_rows(Io* io, png_bytepp rows) {
  if (setjmp(png_jmpbuf(io->png))) return false;
  png_read_image(io->png, rows);
  return true;
}

bool read_end(Io* io) {
  if (setjmp(png_jmpbuf(io->png))) return false;
  png_read_end(io->png, nullptr);
  return true;
}

// Appends a stored row's `width` samples of `depth` bits (1, 2, 4: packed from the high bits of
// each byte; 16: big-endian) to `labels`.
void unpack_row(const unsigned char* row, int64_t width, int depth, std::vector<int32_t>& labels) {
  const size_t at = labels.size();
  labels.resize(at + static_cast<size_t>(width));
  int32_t* out = labels.data() + at;
  if (depth == 16) {
    for (int64_t x = 0; x < width; ++x) out[x] = (int32_t{row[2 * x]} << 8) | row[2 * x + 1];
  } else if (depth == 8) {
    for (int64_t x = 0; x < width; ++x) out[x] = row[x];
  } else {
    const int per_byte = 8 / depth, mask = (1 << depth) - 1;
    for (int64_t x = 0; x < width; ++x) {
      const int shift = 8 - depth * (1 + static_cast<int>(x % per_byte));
      out[x] = (row[x / per_byte] >> shift) & mask;
    }
  }
}

bool write_all(Io* io, png_uint_32 width, png_uint_32 height, int depth, int color,
               png_const_colorp palette, int palette_size, png_bytepp rows, bool interlaced) {
  if (setjmp(png_jmpbuf(io->png))) return false;
  png_init_io(io->png, io->file);
  png_set_IHDR(io->png, io->info, width, height, depth, color,
               interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_PLTE(io->png, io->info, palette, palette_size);
  png_write_info(io->png, io->info);
  if (depth < 8) png_set_packing(io->png);
  if (interlaced) png_set_interlace_handling(io->png);
  png_write_image(io->png, rows);
  png_write_end(io->png, nullptr);
  return true;
}

}  // namespace

LabelImage read_label_png(const std::string& path) {
  // A FIFO or device named *.png would block or never end: only a regular file is read (a link
  // to one is followed; a broken link fails to open below).
  std::error_code type_error;
  const auto type = std::filesystem::status(path, type_error).type();
  if (!type_error && type != std::filesystem::file_type::regular)
    fail(path, "is not a regular file");
  Io io;
  io.file = std::fopen(path.c_str(), "rb");
  if (!io.file) fail(path, std::string("cannot be opened: ") + std::strerror(errno));
  unsigned char sig[8];
  if (std::fread(sig, 1, 8, io.file) != 8 || png_sig_cmp(sig, 0, 8) != 0)
    fail(path, "is not a PNG file (no PNG signature)");
  const uint64_t data_bytes = idat_bytes(io.file);
  io.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &io, on_error, on_warning);
  if (io.png) io.info = png_create_info_struct(io.png);
  if (!io.png || !io.info) fail(path, "libpng could not allocate its reader");
  // PNG's own limit (2^31 - 1 a side), not libpng's default of 1000000: the size check below
  // is what keeps a large claim from being allocated.
  png_set_user_limits(io.png, 0x7fffffff, 0x7fffffff);

  Header h;
  if (!read_header(&io, &h)) fail(path, bad_data(io));
  if (h.color != PNG_COLOR_TYPE_GRAY && h.color != PNG_COLOR_TYPE_PALETTE)
    fail(path, std::string("is ") + color_name(h.color) + " (" + std::to_string(h.bit_depth) +
                   "-bit); a label map is grayscale (8 or 16-bit) or palette indices");

  const int64_t height = h.height, width = h.width;
  // The header is a claim: before allocating for it, the pixels must fit in what the image data
  // could hold. That data (the IDAT chunks) is deflated rows of ceil(width depth / 8) bytes plus
  // a filter byte, and deflate expands at most 1032:1, so 8 bytes of IDAT cannot hold
  // 100000x100000 pixels (which would otherwise allocate and touch 10 GB before libpng found
  // the data short). Bytes outside IDAT (padding, other chunks) hold no pixels.
  const double packed_row = std::ceil(static_cast<double>(width) * h.bit_depth / 8.0) + 1.0;
  const double least_raw = static_cast<double>(height) * packed_row;
  if (least_raw > 1032.0 * static_cast<double>(data_bytes) + 65536.0)
    fail(path, "header claims " + std::to_string(width) + "x" + std::to_string(height) +
                   " pixels, more than its " + std::to_string(data_bytes) +
                   " bytes of image data (IDAT) can hold (deflate expands at most 1032:1)");
  png_size_t rowbytes = 0;
  if (!start_rows(&io, &rowbytes)) fail(path, bad_data(io));
  const size_t stored_row = (static_cast<size_t>(width) * h.bit_depth + 7) / 8;
  if (rowbytes != stored_row)
    fail(path, "unexpected row size " + std::to_string(rowbytes) + " bytes for width " +
                   std::to_string(width) + " at " + std::to_string(h.bit_depth) + " bits");

  LabelImage img;
  img.height = height;
  img.width = width;
  img.bit_depth = h.bit_depth;
  img.palette = h.color == PNG_COLOR_TYPE_PALETTE;
  // Not more than 2^24 labels ahead of the decoded rows: the memory follows the data read.
  img.labels.reserve(static_cast<size_t>(std::min<int64_t>(height * width, int64_t{1} << 24)));
  if (h.interlace == PNG_INTERLACE_NONE) {  // one row at a time
    std::vector<unsigned char> row(rowbytes);
    for (int64_t y = 0; y < height; ++y) {
      if (!read_row(&io, row.data())) fail(path, bad_data(io));
      unpack_row(row.data(), width, h.bit_depth, img.labels);
    }
  } else {  // the passes fill the whole image: its stored bytes, bounded by the check above
    std::vector<unsigned char> data(static_cast<size_t>(height) * rowbytes);
    std::vector<png_bytep> rows(static_cast<size_t>(height));
    for (int64_t y = 0; y < height; ++y) rows[y] = data.data() + y * rowbytes;
    if (!read_rows(&io, rows.data())) fail(path, bad_data(io));
    for (int64_t y = 0; y < height; ++y) unpack_row(rows[y], width, h.bit_depth, img.labels);
  }
  if (!read_end(&io)) fail(path, bad_data(io));
  return img;
}

void write_label_png(const std::string& path, const std::vector<int32_t>& labels, int64_t height,
                     int64_t width, PngColor color, int bit_depth, bool interlaced) {
  if (height < 1 || width < 1 || height > 0x7fffffff || width > 0x7fffffff)
    fail(path, "cannot write a " + std::to_string(height) + "x" + std::to_string(width) + " PNG");
  if (static_cast<int64_t>(labels.size()) != height * width)
    fail(path, "labels has " + std::to_string(labels.size()) + " values for " +
                   std::to_string(height) + "x" + std::to_string(width));
  const bool depth_ok = color == PngColor::gray
                            ? (bit_depth == 1 || bit_depth == 2 || bit_depth == 4 ||
                               bit_depth == 8 || bit_depth == 16)
                        : color == PngColor::palette
                            ? (bit_depth == 1 || bit_depth == 2 || bit_depth == 4 || bit_depth == 8)
                            : bit_depth == 8;
  if (!depth_ok) fail(path, "bit depth " + std::to_string(bit_depth) + " is not valid here");
  const int64_t max_label = (int64_t{1} << bit_depth) - 1;
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] > max_label)
      fail(path, "label " + std::to_string(labels[i]) + " does not fit " +
                     std::to_string(bit_depth) + " bits");

  const int channels = color == PngColor::rgb ? 3 : color == PngColor::gray_alpha ? 2 : 1;
  const int bytes = bit_depth == 16 ? 2 : 1;  // samples below 8 bits are packed by libpng
  const size_t rowbytes = static_cast<size_t>(width) * channels * bytes;
  std::vector<unsigned char> data(rowbytes * static_cast<size_t>(height));
  for (size_t i = 0; i < labels.size(); ++i) {
    unsigned char* px = data.data() + i * channels * bytes;
    const auto v = static_cast<uint32_t>(labels[i]);
    if (bytes == 2) {  // PNG stores 16-bit samples big-endian
      px[0] = static_cast<unsigned char>(v >> 8);
      px[1] = static_cast<unsigned char>(v & 0xff);
    } else if (color == PngColor::gray_alpha) {
      px[0] = static_cast<unsigned char>(v);
      px[1] = 255;
    } else {
      for (int c = 0; c < channels; ++c) px[c] = static_cast<unsigned char>(v);
    }
  }
  std::vector<png_bytep> rows(static_cast<size_t>(height));
  for (int64_t y = 0; y < height; ++y) rows[y] = data.data() + y * rowbytes;

  // A palette of 2^depth distinct colours, index 0 black.
  std::vector<png_color> palette;
  if (color == PngColor::palette)
    for (int64_t i = 0; i <= max_label; ++i)
      palette.push_back({static_cast<png_byte>(i * 37 % 256), static_cast<png_byte>(i * 91 % 256),
                         static_cast<png_byte>(i * 151 % 256)});

  Io io;
  io.writing = true;
  io.file = std::fopen(path.c_str(), "wb");
  if (!io.file) fail(path, std::string("cannot be created: ") + std::strerror(errno));
  io.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &io, on_error, on_warning);
  if (io.png) io.info = png_create_info_struct(io.png);
  if (!io.png || !io.info) fail(path, "libpng could not allocate its writer");
  png_set_user_limits(io.png, 0x7fffffff, 0x7fffffff);  // as the reader: PNG's own limit
  const int png_color = color == PngColor::gray      ? PNG_COLOR_TYPE_GRAY
                        : color == PngColor::palette ? PNG_COLOR_TYPE_PALETTE
                        : color == PngColor::rgb     ? PNG_COLOR_TYPE_RGB
                                                     : PNG_COLOR_TYPE_GRAY_ALPHA;
  if (!write_all(&io, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), bit_depth,
                 png_color, palette.data(), static_cast<int>(palette.size()), rows.data(),
                 interlaced))
    fail(path, std::string("libpng failed to write: ") + io.message);
  if (std::fflush(io.file) != 0) fail(path, std::string("write failed: ") + std::strerror(errno));
}

}  // namespace segloss::tools

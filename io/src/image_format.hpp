// Structural checks of an image file before stb_image decodes it. Debian's stb_image (2.27)
// trusts fields it should not: a JPEG Huffman table with more than 256 codes overruns its
// value array, a scan that uses a Huffman table the file never defines reads out of bounds,
// and a PNG chunk may claim gigabytes the file does not have, which stb allocates before it
// reads. Files like these are refused here, by name, as are the formats hired does not accept:
// those transformers (Pillow) cannot open or opens differently (PSD, Radiance HDR, Softimage
// PIC), PNM (stb_image overruns its buffer on 16-bit files and leaves the pixels of a truncated
// one uninitialised), TGA (no signature), and anything without the signature of PNG, JPEG, GIF
// or BMP.
#pragma once

#include "hired/geometry.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace hired::io::detail {

enum class ImageFormat { png, jpeg, gif, bmp };

struct ImageFile {
  ImageFormat format;
  /// The size the header declares (PNG IHDR, JPEG SOF, GIF logical screen, BMP info header),
  /// when the file holds that header; any size, zero and huge ones included.
  std::optional<Size2> declared;
};

/// The format of `bytes` by its signature and the size its header declares, once its
/// structure passed the checks above; hired::Error naming `label` otherwise.
ImageFile check_image_file(std::span<const std::uint8_t> bytes, std::string_view label);

}  // namespace hired::io::detail

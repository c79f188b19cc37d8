#include "image_format.hpp"

#include "hired/error.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>
#include <string>

namespace hired::io::detail {

namespace {

using Bytes = std::span<const std::uint8_t>;
using namespace std::string_view_literals;

bool starts_with(Bytes bytes, std::string_view signature) {
  if (bytes.size() < signature.size()) return false;
  for (std::size_t i = 0; i < signature.size(); ++i)
    if (bytes[i] != static_cast<std::uint8_t>(signature[i])) return false;
  return true;
}

std::uint32_t big_endian(Bytes bytes, std::size_t at, std::size_t width) {
  std::uint32_t value = 0;
  for (std::size_t i = 0; i < width; ++i) value = value << 8 | bytes[at + i];
  return value;
}

std::uint32_t little_endian(Bytes bytes, std::size_t at, std::size_t width) {
  std::uint32_t value = 0;
  for (std::size_t i = width; i-- > 0;) value = value << 8 | bytes[at + i];
  return value;
}

// --- PNG: every chunk that starts in the file ends in it ---------------------------------

// The size in the IHDR chunk, which must come first.
std::optional<Size2> png_size(Bytes bytes) {
  if (bytes.size() < 24 || !starts_with(bytes.subspan(12), "IHDR")) return std::nullopt;
  return Size2{big_endian(bytes, 20, 4), big_endian(bytes, 16, 4)};
}

void check_png(Bytes bytes, std::string_view label) {
  constexpr std::size_t kSignature = 8, kFraming = 12;  // length, type, CRC
  for (std::size_t at = kSignature; bytes.size() - at >= 8;) {
    const std::uint32_t length = big_endian(bytes, at, 4);
    std::string type(4, '?');
    for (std::size_t i = 0; i < 4; ++i) {
      const std::uint8_t c = bytes[at + 4 + i];
      if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) type[i] = static_cast<char>(c);
    }
    if (type == "IEND") return;
    const std::size_t left = bytes.size() - at;
    check(length <= 0x7fffffffu && left >= kFraming && length <= left - kFraming,
          "{}: PNG chunk '{}' at byte {} claims {} bytes, past the end of the {}-byte file",
          label, type, at, length, bytes.size());
    at += kFraming + length;
  }
}

// --- JPEG: Huffman tables that fit their arrays, and scans that use defined ones ----------

struct JpegTables {
  std::array<std::array<bool, 4>, 2> defined{};  // [class: 0 DC, 1 AC][id]
  bool progressive = false;
  std::optional<Size2> size;  // from the first frame header
};

// One DHT segment: tables of (class << 4 | id), 16 code counts and the values.
void check_dht(Bytes segment, JpegTables& tables, std::string_view label) {
  for (std::size_t at = 0; at < segment.size();) {
    const unsigned table_class = segment[at] >> 4, id = segment[at] & 15;
    if (table_class > 1 || id > 3) return;  // stb_image refuses these itself
    check(segment.size() - at >= 17, "{}: JPEG Huffman table {} {} is cut short", label,
          table_class == 0 ? "DC" : "AC", id);
    std::size_t codes = 0;
    for (std::size_t i = 1; i <= 16; ++i) codes += segment[at + i];
    check(codes <= 256, "{}: JPEG Huffman table {} {} has {} codes (at most 256)", label,
          table_class == 0 ? "DC" : "AC", id, codes);
    check(segment.size() - at - 17 >= codes,
          "{}: JPEG Huffman table {} {} has {} codes, more than its segment holds", label,
          table_class == 0 ? "DC" : "AC", id, codes);
    tables.defined[table_class][id] = true;
    at += 17 + codes;
  }
}

// One SOS segment: the Huffman tables each component of the scan decodes with. A baseline
// scan reads both; a progressive one the DC table in a first DC scan, the AC table in an AC
// scan, and none in a DC refinement.
void check_sos(Bytes segment, const JpegTables& tables, std::string_view label) {
  if (segment.empty()) return;
  const std::size_t components = segment[0];
  if (segment.size() < 1 + 2 * components + 3) return;  // stb_image refuses a short SOS itself
  const unsigned spectral_start = segment[1 + 2 * components];
  const unsigned approximation_high = segment[3 + 2 * components] >> 4;
  const bool uses_dc = !tables.progressive || (spectral_start == 0 && approximation_high == 0);
  const bool uses_ac = !tables.progressive || spectral_start > 0;
  for (std::size_t i = 0; i < components; ++i) {
    const unsigned dc = segment[2 + 2 * i] >> 4, ac = segment[2 + 2 * i] & 15;
    if (dc > 3 || ac > 3) return;  // stb_image refuses these itself
    check(!uses_dc || tables.defined[0][dc],
          "{}: a JPEG scan uses Huffman table DC {}, which the file does not define before it",
          label, dc);
    check(!uses_ac || tables.defined[1][ac],
          "{}: a JPEG scan uses Huffman table AC {}, which the file does not define before it",
          label, ac);
  }
}

// Walks the marker segments, entropy-coded data included (where a marker is 0xFF followed by
// anything but 0x00, a restart marker or another 0xFF), as stb_image finds them.
std::optional<Size2> check_jpeg(Bytes bytes, std::string_view label) {
  JpegTables tables;
  for (std::size_t at = 2; at + 1 < bytes.size();) {
    if (bytes[at] != 0xff) {
      ++at;
      continue;
    }
    const std::uint8_t marker = bytes[at + 1];
    if (marker == 0xff) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0x00 || marker == 0x01 || marker == 0xd8 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2;  // stuffed zero, TEM, SOI or a restart marker: no length
      continue;
    }
    if (marker == 0xd9 || bytes.size() - at < 4) break;  // end of image
    const std::size_t length = big_endian(bytes, at + 2, 2);
    if (length < 2) break;  // stb_image refuses this itself
    const Bytes segment = bytes.subspan(at + 4, std::min(length - 2, bytes.size() - at - 4));
    if (marker == 0xc0 || marker == 0xc1 || marker == 0xc2) {
      tables.progressive = marker == 0xc2;
      if (!tables.size && segment.size() >= 5)  // precision, height, width
        tables.size = Size2{big_endian(segment, 1, 2), big_endian(segment, 3, 2)};
    }
    if (marker == 0xc4) check_dht(segment, tables, label);
    if (marker == 0xda) check_sos(segment, tables, label);
    at += 2 + length;
  }
  return tables.size;
}

// The logical screen, which is the size stb_image decodes a GIF to.
std::optional<Size2> gif_size(Bytes bytes) {
  if (bytes.size() < 10) return std::nullopt;
  return Size2{little_endian(bytes, 8, 2), little_endian(bytes, 6, 2)};
}

// BITMAPCOREHEADER (12 bytes: 16-bit sides) or a later info header (signed 32-bit sides; a
// negative height is a top-down bitmap).
std::optional<Size2> bmp_size(Bytes bytes) {
  if (bytes.size() < 26) return std::nullopt;
  if (little_endian(bytes, 14, 4) == 12)
    return Size2{little_endian(bytes, 20, 2), little_endian(bytes, 18, 2)};
  const auto width = static_cast<std::int32_t>(little_endian(bytes, 18, 4));
  const auto height = static_cast<std::int32_t>(little_endian(bytes, 22, 4));
  return Size2{std::abs(std::int64_t{height}), std::int64_t{width}};
}

// Formats stb_image would decode (or try to) that hired refuses, by signature.
struct Refused {
  std::string_view signature, name;
};
constexpr Refused kRefused[] = {
    {"8BPS"sv, "a Photoshop (PSD) file"},     {"#?RADIANCE"sv, "a Radiance HDR file"},
    {"#?RGBE"sv, "a Radiance HDR file"},      {"\x53\x80\xf6\x34"sv, "a Softimage PIC file"},
    {"II*\0"sv, "a TIFF file"},               {"MM\0*"sv, "a TIFF file"},
    {"P5"sv, "a PNM file"},                   {"P6"sv, "a PNM file"},
};

}  // namespace

ImageFile check_image_file(Bytes bytes, std::string_view label) {
  if (starts_with(bytes, "\x89PNG\r\n\x1a\n")) {
    check_png(bytes, label);
    return {ImageFormat::png, png_size(bytes)};
  }
  if (starts_with(bytes, "\xff\xd8")) return {ImageFormat::jpeg, check_jpeg(bytes, label)};
  if (starts_with(bytes, "GIF87a") || starts_with(bytes, "GIF89a"))
    return {ImageFormat::gif, gif_size(bytes)};
  if (starts_with(bytes, "BM")) return {ImageFormat::bmp, bmp_size(bytes)};
  constexpr std::string_view accepted = "PNG, JPEG, GIF or BMP";
  for (const Refused& refused : kRefused)
    check(!starts_with(bytes, refused.signature), "{}: {}; hired decodes {} files", label,
          refused.name, accepted);
  if (bytes.size() >= 12 && starts_with(bytes, "RIFF") &&
      starts_with(bytes.subspan(8), "WEBP"))
    fail("{}: a WebP file; hired decodes {} files", label, accepted);
  fail("{}: not a decodable image: not a {} file", label, accepted);
}

}  // namespace hired::io::detail

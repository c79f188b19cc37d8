// Image files from outside: the formats decode_image accepts, the structures that would mislead
// stb_image (refused before it sees them), and the pixel limit that bounds decoding's memory.
// The fuzz target fuzz/image.cpp found the stb_image faults these cases stand for; its
// reproducers are in fuzz/corpus/image.
#include "hired/io/image.hpp"
#include "support/expect_error.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Bytes = std::vector<std::uint8_t>;
using hired::io::RgbImage;
using hired_test::expect_error;

const std::filesystem::path kImages = std::filesystem::path(HIRED_FIXTURES_DIR) / "llava" / "images";

Bytes read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Bytes bytes_of(std::string_view text) { return {text.begin(), text.end()}; }

void append(Bytes& out, std::initializer_list<int> values) {
  for (const int v : values) out.push_back(static_cast<std::uint8_t>(v));
}

void append_be32(Bytes& out, std::uint32_t v) { append(out, {int(v >> 24), int(v >> 16 & 255), int(v >> 8 & 255), int(v & 255)}); }

// A PNG of signature, IHDR (8-bit RGB, width x height) and IEND, no pixel data. stb_image does
// not check CRCs; they are left zero.
Bytes png_header(std::uint32_t width, std::uint32_t height) {
  Bytes png = bytes_of("\x89PNG\r\n\x1a\n");
  append_be32(png, 13);
  append(png, {'I', 'H', 'D', 'R'});
  append_be32(png, width);
  append_be32(png, height);
  append(png, {8, 2, 0, 0, 0});
  append_be32(png, 0);
  append_be32(png, 0);
  append(png, {'I', 'E', 'N', 'D'});
  append_be32(png, 0);
  return png;
}

RgbImage decode(const Bytes& bytes, std::int64_t max_pixels = hired::io::kMaxImagePixels) {
  return hired::io::decode_image(bytes, "x", max_pixels);
}

// --- the pixel limit -------------------------------------------------------------------------

TEST(ImagePixelLimit, A60000By60000HeaderIsRefusedBeforeDecoding) {
  // 3.6e9 pixels would take 25 GB to decode; the header alone decides, so the refusal names
  // the limit (stb_image, had it run, would have failed on the missing pixel data instead).
  expect_error([] { decode(png_header(60000, 60000)); },
               {"image 'x'", "60000 x 60000", "3600000000 pixels", "limit of 178956970",
                "decompression bomb"});
}

TEST(ImagePixelLimit, PillowsLimitIsTheDefault) {
  // Pillow refuses more than 2 * 89478485 pixels; 13377^2 is below, 13378^2 above.
  EXPECT_EQ(hired::io::kMaxImagePixels, 178956970);
  expect_error([] { decode(png_header(13378, 13378)); }, {"178970884 pixels", "limit"});
  // Within the limit the decoder runs, and fails on the missing data.
  expect_error([] { decode(png_header(13377, 13377)); }, {"image 'x'", "cannot decode"});
}

TEST(ImagePixelLimit, ACallerCanLowerIt) {
  const Bytes png = read_bytes(kImages / "wide_150x380.png");  // 57000 pixels
  EXPECT_EQ(decode(png, 57000).pixels.size(), 57000u * 3u);
  expect_error([&] { decode(png, 56999); }, {"150 x 380", "57000 pixels", "limit of 56999"});
  expect_error([&] { decode(png, 0); }, {"decode_image", "max_pixels 0"});
  expect_error([&] { decode(png, hired::io::kMaxImagePixels + 1); }, {"decode_image", "max_pixels"});
}

TEST(ImagePixelLimit, ZeroSizedImagesAreRefused) {
  expect_error([] { decode(png_header(0, 5)); }, {"image 'x'", "5 x 0 is not a positive size"});
  expect_error([] { decode(png_header(5, 0)); }, {"image 'x'", "0 x 5 is not a positive size"});
  // A BMP's height may be negative (top-down rows); its width may not.
  Bytes bmp = bytes_of("BM");
  bmp.resize(54, 0);
  bmp[14] = 40;                                       // BITMAPINFOHEADER
  bmp[18] = 0xfe, bmp[19] = bmp[20] = bmp[21] = 0xff;  // width -2
  bmp[22] = 2;                                        // height 2
  expect_error([&] { decode(bmp); }, {"image 'x'", "2 x -2 is not a positive size"});
}

// --- formats ---------------------------------------------------------------------------------

TEST(ImageFormats, OthersAreRefusedByName) {
  using namespace std::string_view_literals;
  const std::pair<std::string_view, std::string_view> refused[] = {
      {"8BPS\x00\x01"sv, "Photoshop (PSD)"},      {"#?RADIANCE\n"sv, "Radiance HDR"},
      {"#?RGBE\n"sv, "Radiance HDR"},             {"\x53\x80\xf6\x34PICT"sv, "Softimage PIC"},
      {"II*\x00\x08\x00"sv, "TIFF"},              {"MM\x00*\x00\x08"sv, "TIFF"},
      {"P6\n2 2\n255\n"sv, "PNM"},                {"P5\n2 2\n65535\n"sv, "PNM"},
      {"RIFF\x10\x00\x00\x00WEBPVP8 "sv, "WebP"},
  };
  for (const auto& [signature, name] : refused) {
    Bytes bytes(signature.begin(), signature.end());
    bytes.resize(64, 0);
    expect_error([&] { decode(bytes); }, {"image 'x'", std::string(name), "PNG, JPEG, GIF or BMP"});
  }
  // TGA has no signature: a 2x1 uncompressed RGBA TGA is just not one of the four.
  Bytes tga = {0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 32, 0x28, 0, 0, 255, 128, 255, 0, 0, 0};
  expect_error([&] { decode(tga); }, {"image 'x'", "not a decodable image", "PNG, JPEG, GIF or BMP"});
}

// --- PNG -------------------------------------------------------------------------------------

TEST(ImagePng, AChunkLongerThanTheFileIsRefused) {
  // stb_image would allocate the IDAT chunk's claimed size (doubled up to it) before reading.
  Bytes png = read_bytes(kImages / "wide_150x380.png");
  const auto idat = std::search(png.begin(), png.end(), std::begin("IDAT"), std::end("IDAT") - 1);
  ASSERT_NE(idat, png.end());
  const auto at = static_cast<std::size_t>(idat - png.begin()) - 4;
  for (const std::uint32_t length : {0x7ffffff0u, 0xfffffff0u, std::uint32_t(png.size())}) {
    Bytes bad = png;
    for (std::size_t i = 0; i < 4; ++i) bad[at + i] = static_cast<std::uint8_t>(length >> (24 - 8 * i));
    expect_error([&] { decode(bad); },
                 {"image 'x'", "PNG chunk 'IDAT' at byte " + std::to_string(at),
                  "claims " + std::to_string(length) + " bytes", "past the end"});
  }
}

// --- JPEG ------------------------------------------------------------------------------------

// Hand-made 8x8 grey baseline JPEG: quantisation table 0 all ones, one component using Huffman
// tables DC 0 and AC 0, each defined with a single 1-bit code for symbol 0, and one block coded
// "DC difference 0, end of block" (bits 00, padded with ones). `tables` are the DHT segments.
Bytes grey_jpeg(const std::vector<Bytes>& tables) {
  Bytes jpeg = {0xff, 0xd8, 0xff, 0xdb, 0x00, 0x43, 0x00};
  jpeg.insert(jpeg.end(), 64, 1);
  append(jpeg, {0xff, 0xc0, 0x00, 0x0b, 8, 0, 8, 0, 8, 1, 1, 0x11, 0});
  for (const Bytes& table : tables) jpeg.insert(jpeg.end(), table.begin(), table.end());
  append(jpeg, {0xff, 0xda, 0x00, 0x08, 1, 1, 0x00, 0, 63, 0});  // scan: component 1, DC 0 / AC 0
  append(jpeg, {0x3f, 0xff, 0xd9});
  return jpeg;
}

// A DHT segment holding one table (class 0 DC, 1 AC) with the given code counts per length.
Bytes dht(int table_class, std::vector<int> counts) {
  counts.resize(16, 0);
  int codes = 0;
  for (const int c : counts) codes += c;
  Bytes segment = {0xff, 0xc4};
  append(segment, {(19 + codes) >> 8, (19 + codes) & 255, table_class << 4});
  for (const int c : counts) segment.push_back(static_cast<std::uint8_t>(c));
  segment.insert(segment.end(), static_cast<std::size_t>(codes), 0);
  return segment;
}

TEST(ImageJpeg, TheHandMadeJpegDecodes) {
  // DC 0 dequantised is 0: the inverse DCT gives the level shift, 128, everywhere.
  const RgbImage image = decode(grey_jpeg({dht(0, {1}), dht(1, {1})}));
  EXPECT_EQ(image.height, 8);
  EXPECT_EQ(image.width, 8);
  EXPECT_EQ(image.pixels, Bytes(8 * 8 * 3, 128));
}

TEST(ImageJpeg, AHuffmanTableWithMoreThan256CodesIsRefused) {
  // stb_image would write the 257th value past its 256-entry array.
  expect_error([] { decode(grey_jpeg({dht(0, {255, 2}), dht(1, {1})})); },
               {"image 'x'", "JPEG Huffman table DC 0 has 257 codes (at most 256)"});
  // Counts that promise more values than the segment holds.
  Bytes cut = dht(1, {4});  // its length field says 23 bytes; 21, and two values dropped
  cut[3] = 21;
  cut.erase(cut.end() - 2, cut.end());
  expect_error([&] { decode(grey_jpeg({dht(0, {1}), cut})); },
               {"JPEG Huffman table AC 0 has 4 codes, more than its segment holds"});
}

TEST(ImageJpeg, AScanUsingAnUndefinedHuffmanTableIsRefused) {
  // stb_image would decode with an all-zero table and index out of its arrays.
  expect_error([] { decode(grey_jpeg({dht(0, {1})})); },
               {"image 'x'", "uses Huffman table AC 0, which the file does not define"});
  expect_error([] { decode(grey_jpeg({dht(1, {1})})); },
               {"image 'x'", "uses Huffman table DC 0"});
  // Defined after the scan is too late.
  Bytes late = grey_jpeg({dht(0, {1})});
  const Bytes ac = dht(1, {1});
  late.insert(late.end() - 2, ac.begin(), ac.end());
  expect_error([&] { decode(late); }, {"uses Huffman table AC 0"});
}

}  // namespace

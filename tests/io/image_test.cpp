// LLaVA-Next preprocessing against transformers' LlavaNextImageProcessor (fixtures in
// tests/fixtures/llava, made by generate_llava_fixtures.py) and against Pillow on hand cases.
#include "hired/io/llava_config.hpp"
#include "hired/io/image.hpp"
#include "hired/io/safetensors.hpp"
#include "support/scratch_dir.hpp"
#include "support/expect_error.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using hired::Size2;
using hired::io::AnyresTiles;
using hired::io::RgbImage;
using hired_test::expect_error;

const fs::path kLlava = fs::path(HIRED_FIXTURES_DIR) / "llava";

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

using hired_test::ScratchDir;

RgbImage constant_image(std::int64_t h, std::int64_t w, std::uint8_t value) {
  return {h, w, std::vector<std::uint8_t>(static_cast<std::size_t>(h * w * 3), value)};
}

// --- parity with transformers --------------------------------------------------------------

struct Parity {
  std::int64_t bytes = 0;
  std::int64_t exact = 0;
  int max_diff = 0;
};

// Every image of a checkpoint's samples, in order, against `pixel_values_u8`.
Parity check_checkpoint(const std::string& name) {
  const fs::path dir = kLlava / name;
  const auto config = hired::io::LlavaNextConfig::load(dir / "config.json");
  const auto expected = hired::io::SafeTensors::load((dir / "expected.safetensors").string());
  std::ifstream in(dir / "inputs.json");
  const auto inputs = nlohmann::json::parse(in);

  const auto sizes = expected.at("image_sizes").to_int64();
  const auto parts = expected.at("num_partitions").to_int64();
  const auto& u8 = expected.at("pixel_values_u8");
  const std::int64_t s = config.vision.image_size;
  EXPECT_EQ(u8.shape(), (std::vector<std::int64_t>{u8.shape()[0], 3, s, s}));
  const auto* want = reinterpret_cast<const std::uint8_t*>(u8.bytes().data());

  Parity parity;
  std::size_t image = 0;
  std::int64_t offset = 0;
  for (const auto& sample : inputs.at("samples")) {
    for (const auto& file : sample.at("images")) {
      SCOPED_TRACE(name + " " + file.get<std::string>());
      const RgbImage img = hired::io::load_image(kLlava / "images" / file.get<std::string>());
      const AnyresTiles tiles = hired::io::anyres_tiles(img, config.image_grid_pinpoints, s);
      EXPECT_EQ(tiles.image_size, (Size2{sizes[2 * image], sizes[2 * image + 1]}));
      EXPECT_EQ(tiles.partitions, parts[image]);
      EXPECT_EQ(tiles.tiles.size(), static_cast<std::size_t>(parts[image] * 3 * s * s));
      for (std::size_t i = 0; i < tiles.tiles.size(); ++i) {
        const int d = std::abs(int(tiles.tiles[i]) - int(want[offset + static_cast<std::int64_t>(i)]));
        parity.max_diff = std::max(parity.max_diff, d);
        parity.exact += d == 0;
      }
      parity.bytes += static_cast<std::int64_t>(tiles.tiles.size());
      offset += parts[image] * 3 * s * s;
      ++image;
    }
  }
  EXPECT_EQ(image, sizes.size() / 2) << "every image of image_sizes is in inputs.json";
  EXPECT_EQ(offset, u8.numel());
  return parity;
}

// PIL's bicubic is integer arithmetic after the weights, so the aim is byte equality.
TEST(PreprocessParity, TilesEqualTheImageProcessorsUint8Tiles) {
  for (const char* name : {"vicuna_tiny", "mistral_tiny"}) {
    const Parity p = check_checkpoint(name);
    std::cout << "[ parity   ] " << name << ": " << p.exact << " of " << p.bytes
              << " tile bytes exact (" << 100.0 * double(p.exact) / double(p.bytes)
              << "%), max abs diff " << p.max_diff << "\n";
    EXPECT_EQ(p.max_diff, 0) << name;
    EXPECT_EQ(p.exact, p.bytes) << name;
  }
}

// The batch helper: the vicuna images in sample order give the fixture's sizes, partition
// counts and the normalised uint8 tiles.
TEST(PreprocessParity, BatchOfFilesGivesPixelValuesAndSizes) {
  const fs::path dir = kLlava / "vicuna_tiny";
  const auto config = hired::io::LlavaNextConfig::load(dir / "config.json");
  const auto expected = hired::io::SafeTensors::load((dir / "expected.safetensors").string());
  const std::vector<fs::path> files{kLlava / "images" / "wide_150x380.png",
                                    kLlava / "images" / "tall_500x240.png"};
  const auto batch = hired::io::preprocess_images(files, config.image_grid_pinpoints);
  EXPECT_EQ(batch.partitions, expected.at("num_partitions").to_int64());
  const auto sizes = expected.at("image_sizes").to_int64();
  ASSERT_EQ(batch.image_sizes.size(), 2u);
  EXPECT_EQ(batch.image_sizes[1], (Size2{sizes[2], sizes[3]}));
  const auto& u8 = expected.at("pixel_values_u8");
  std::vector<float> want(static_cast<std::size_t>(u8.numel()));
  hired::io::normalize_clip(
      {reinterpret_cast<const std::uint8_t*>(u8.bytes().data()), want.size()}, want, 336 * 336);
  EXPECT_EQ(batch.pixel_values, want);
  expect_error<hired::IoError>([&] {
    const std::vector<fs::path> bad{files[0], kLlava / "images" / "nope.png"};
    hired::io::preprocess_images(bad, config.image_grid_pinpoints);
  }, {"nope.png", "no such file"});
}

// 48 small random images through transformers' bicubic resize (Pillow 13): up, down, both pass
// orders, 1-pixel sides, strong reductions.
TEST(PreprocessParity, ResizeEqualsTransformersResizeByteForByte) {
  const auto ref = hired::io::SafeTensors::load((kLlava / "resize_reference.safetensors").string());
  const auto in_sizes = ref.at("input_sizes").to_int64();
  const auto out_sizes = ref.at("output_sizes").to_int64();
  const auto* inputs = reinterpret_cast<const std::uint8_t*>(ref.at("inputs").bytes().data());
  const auto* outputs = reinterpret_cast<const std::uint8_t*>(ref.at("outputs").bytes().data());
  ASSERT_EQ(in_sizes.size(), 96u);
  std::size_t in_at = 0, out_at = 0;
  for (std::size_t i = 0; i < in_sizes.size() / 2; ++i) {
    RgbImage img{in_sizes[2 * i], in_sizes[2 * i + 1], {}};
    const Size2 size{out_sizes[2 * i], out_sizes[2 * i + 1]};
    const auto n_in = static_cast<std::size_t>(img.height * img.width * 3);
    const auto n_out = static_cast<std::size_t>(size.height * size.width * 3);
    img.pixels.assign(inputs + in_at, inputs + in_at + n_in);
    const RgbImage out = hired::io::resize_bicubic(img, size);
    EXPECT_EQ(out.pixels, std::vector<std::uint8_t>(outputs + out_at, outputs + out_at + n_out))
        << "case " << i << ": (" << img.height << ", " << img.width << ") -> (" << size.height
        << ", " << size.width << ")";
    in_at += n_in;
    out_at += n_out;
  }
  EXPECT_EQ(static_cast<std::int64_t>(in_at), ref.at("inputs").numel());
  EXPECT_EQ(static_cast<std::int64_t>(out_at), ref.at("outputs").numel());
}

// LLaVA-1.5's CLIPImageProcessor on 40 small random or gradient images: the shortest edge
// resized (bicubic), then the centred crop, zero-padded where the crop is the larger.
TEST(PreprocessParity, ClipCenterCropEqualsTransformersByteForByte) {
  const auto ref = hired::io::SafeTensors::load((kLlava / "clip_reference.safetensors").string());
  const auto in_sizes = ref.at("input_sizes").to_int64();
  const auto params = ref.at("shortest_edge_crop").to_int64();
  const auto* inputs = reinterpret_cast<const std::uint8_t*>(ref.at("inputs").bytes().data());
  const auto* outputs = reinterpret_cast<const std::uint8_t*>(ref.at("outputs").bytes().data());
  ASSERT_EQ(in_sizes.size(), 80u);
  std::size_t in_at = 0, out_at = 0, padded = 0;
  for (std::size_t i = 0; i < in_sizes.size() / 2; ++i) {
    RgbImage img{in_sizes[2 * i], in_sizes[2 * i + 1], {}};
    const std::int64_t edge = params[2 * i], crop = params[2 * i + 1];
    const auto n_in = static_cast<std::size_t>(img.height * img.width * 3);
    const auto n_out = static_cast<std::size_t>(3 * crop * crop);
    img.pixels.assign(inputs + in_at, inputs + in_at + n_in);
    const AnyresTiles t = hired::io::clip_center_crop(img, edge, crop);
    EXPECT_EQ(t.partitions, 1);
    EXPECT_EQ(t.grid.tiles(), 0);
    EXPECT_EQ(t.image_size, img.size());
    EXPECT_EQ(t.tiles, std::vector<std::uint8_t>(outputs + out_at, outputs + out_at + n_out))
        << "case " << i << ": (" << img.height << ", " << img.width << "), shortest edge " << edge
        << ", crop " << crop;
    padded += crop > edge;
    in_at += n_in;
    out_at += n_out;
  }
  EXPECT_GT(padded, 5u);  // the padding branch of center_crop is exercised
  EXPECT_EQ(static_cast<std::int64_t>(out_at), ref.at("outputs").numel());
}

TEST(ClipCenterCrop, RejectsBadSizes) {
  const RgbImage img = constant_image(4, 6, 9);
  expect_error([&] { hired::io::clip_center_crop(img, 0, 4); }, {"clip_center_crop", "shortest_edge 0"});
  expect_error([&] { hired::io::clip_center_crop(img, 4, -1); }, {"clip_center_crop", "crop -1"});
  expect_error([&] { hired::io::clip_center_crop(RgbImage{}, 4, 4); }, {"clip_center_crop: image"});
  // 1 x 2^24 resized to a shortest edge of 2 would be 2 x 2^25: refused before allocating.
  RgbImage thin{1, std::int64_t{1} << 24, {}};
  thin.pixels.resize(static_cast<std::size_t>(3) << 24);
  expect_error([&] { hired::io::clip_center_crop(thin, 2, 2); }, {"clip_center_crop", "long edge"});
}

TEST(ClipCenterCrop, ShortestEdgeThenCentreWindow) {
  // 2 x 4 of columns 10, 20, 30, 40: shortest edge 2 keeps it; a 2 x 2 crop takes columns 1-2.
  RgbImage img{2, 4, {}};
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 4; ++x) img.pixels.insert(img.pixels.end(), 3, static_cast<std::uint8_t>(10 * (x + 1)));
  const AnyresTiles t = hired::io::clip_center_crop(img, 2, 2);
  EXPECT_EQ(std::vector<std::uint8_t>(t.tiles.begin(), t.tiles.begin() + 4), (std::vector<std::uint8_t>{20, 30, 20, 30}));
  // A 3 x 3 crop is taller than the image: transformers pads it to 3 rows with the image
  // ceil((3 - 2) / 2) = 1 row down, then crops columns (4 - 3) / 2 = 0 .. 2.
  const AnyresTiles tall = hired::io::clip_center_crop(img, 2, 3);
  EXPECT_EQ(std::vector<std::uint8_t>(tall.tiles.begin(), tall.tiles.begin() + 9),
            (std::vector<std::uint8_t>{0, 0, 0, 10, 20, 30, 10, 20, 30}));
}

// --- resampling against Pillow (values from PIL 13 Image.resize(..., BICUBIC)) --------------

const RgbImage kRow{1, 6, {0, 10, 250, 255, 20, 240, 30, 200, 5, 90, 90, 90, 250, 0, 128, 7, 77, 177}};

TEST(ResizeBicubic, DownsamplingWidensTheKernelLikePillow) {
  const RgbImage out = hired::io::resize_bicubic(kRow, {1, 4});
  EXPECT_EQ(out.pixels, (std::vector<std::uint8_t>{98, 6, 255, 111, 139, 85, 141, 70, 87, 99, 45, 163}));
}

TEST(ResizeBicubic, UpsamplingOvershootsAndClampsLikePillow) {
  const RgbImage out = hired::io::resize_bicubic(kRow, {1, 9});
  EXPECT_EQ(out.pixels, (std::vector<std::uint8_t>{0,   9,   251, 133, 4,  255, 242, 44,  210,
                                                   57,  185, 28,  36,  162, 30, 116, 72,  99,
                                                   245, 5,   122, 131, 35, 156, 0,   82,  180}));
}

TEST(ResizeBicubic, VerticalPassMatchesTheHorizontalOne) {
  const RgbImage column{6, 1, kRow.pixels};
  const RgbImage out = hired::io::resize_bicubic(column, {4, 1});
  EXPECT_EQ(out.height, 4);
  EXPECT_EQ(out.width, 1);
  EXPECT_EQ(out.pixels, (std::vector<std::uint8_t>{98, 6, 255, 111, 139, 85, 141, 70, 87, 99, 45, 163}));
}

TEST(ResizeBicubic, BothPassesRoundInBetweenLikePillow) {
  RgbImage img{2, 3, {}};
  for (int i = 0; i < 18; ++i) img.pixels.push_back(static_cast<std::uint8_t>(i * 14));
  const RgbImage out = hired::io::resize_bicubic(img, {5, 4});
  EXPECT_EQ(out.pixels,
            (std::vector<std::uint8_t>{
                0,   0,   14,  11,  25,  39,  49,  63,  77,  74,  88,  102, 8,   20,  34,
                31,  45,  59,  69,  83,  97,  94,  108, 122, 62,  75,  89,  86,  100, 114,
                124, 138, 152, 149, 163, 177, 116, 130, 144, 141, 155, 169, 179, 193, 207,
                204, 218, 232, 136, 150, 164, 161, 175, 189, 199, 213, 227, 224, 238, 252}));
}

// Pillow 13's pass order: vertical first when the height shrinks by more than twice as many
// pixels as the width (here 6 -> 2 rows, 3 -> 4 columns); values from PIL 13 (the horizontal
// pass first gives other values).
TEST(ResizeBicubic, ShrinkingMostlyInHeightRunsTheVerticalPassFirst) {
  RgbImage img{6, 3, {}};
  for (int i = 0; i < 54; ++i) img.pixels.push_back(static_cast<std::uint8_t>((i * 37) % 256));
  const RgbImage out = hired::io::resize_bicubic(img, {2, 4});
  EXPECT_EQ(out.pixels, (std::vector<std::uint8_t>{93, 99, 140, 98, 134, 110, 115, 132, 95, 132, 94, 105,
                                                   135, 101, 138, 146, 106, 148, 128, 123, 133, 92, 140, 103}));
}

TEST(ResizeBicubic, SameSizeIsACopyAndConstantsStayConstant) {
  EXPECT_EQ(hired::io::resize_bicubic(kRow, {1, 6}).pixels, kRow.pixels);
  for (Size2 size : {Size2{336, 336}, Size2{7, 3}, Size2{1, 1}, Size2{600, 40}}) {
    const RgbImage out = hired::io::resize_bicubic(constant_image(37, 53, 201), size);
    EXPECT_EQ(out.pixels, constant_image(size.height, size.width, 201).pixels);
  }
}

// --- anyres geometry on hand cases -----------------------------------------------------------

// A white 100x300 image with v1.6 pinpoints: every pinpoint keeps all 30000 pixels, so the least
// waste wins: 336x672 (1x2). Resize to 225x672 (ceil(100 * 2.24) = 225: 2.24 is a hair above in
// binary), centred: 55 black rows above, 56 below.
TEST(AnyresTiles, PadsCentredWithBlackAndCutsTilesRowMajor) {
  const auto tiles = hired::io::anyres_tiles(constant_image(100, 300, 255),
                                                hired::llava_v16_grid_pinpoints, 336);
  EXPECT_EQ(tiles.best_resolution, (Size2{336, 672}));
  EXPECT_EQ(tiles.grid, (hired::GridShape{1, 2}));
  EXPECT_EQ(tiles.partitions, 3);
  EXPECT_EQ(tiles.image_size, (Size2{100, 300}));
  const std::int64_t plane = 336 * 336;
  for (std::int64_t p = 0; p < 3; ++p)
    for (std::int64_t c = 0; c < 3; ++c)
      for (std::int64_t y = 0; y < 336; ++y)
        for (std::int64_t x = 0; x < 336; x += 67) {
          const bool inside = p == 0 || (y >= 55 && y < 55 + 225);
          ASSERT_EQ(tiles.tiles[static_cast<std::size_t>((p * 3 + c) * plane + y * 336 + x)],
                    inside ? 255 : 0)
              << "partition " << p << " channel " << c << " row " << y << " col " << x;
        }
}

TEST(AnyresTiles, TileOrderIsRasterOverTheGrid) {
  // 672x672 with one colour per quadrant: 2x2 grid, no resize, no padding.
  RgbImage img = constant_image(672, 672, 0);
  for (std::int64_t y = 0; y < 672; ++y)
    for (std::int64_t x = 0; x < 672; ++x)
      img.pixels[static_cast<std::size_t>((y * 672 + x) * 3)] =
          static_cast<std::uint8_t>(10 + (y / 336) * 2 + x / 336);
  const auto tiles = hired::io::anyres_tiles(img, hired::llava_v16_grid_pinpoints, 336);
  ASSERT_EQ(tiles.partitions, 5);
  const std::int64_t tile = 3 * 336 * 336;
  for (std::int64_t t = 0; t < 4; ++t) {
    EXPECT_EQ(tiles.tiles[static_cast<std::size_t>((1 + t) * tile)], 10 + t) << "tile " << t;
    EXPECT_EQ(tiles.tiles[static_cast<std::size_t>((1 + t) * tile + 336 * 336 - 1)], 10 + t);
    EXPECT_EQ(tiles.tiles[static_cast<std::size_t>((1 + t) * tile + 336 * 336)], 0) << "green";
  }
}

TEST(AnyresTiles, OnePixelImage) {
  const auto tiles = hired::io::anyres_tiles(constant_image(1, 1, 77),
                                                hired::llava_v16_grid_pinpoints, 336);
  // (1, 1) keeps one pixel everywhere; least waste: 336x672. Resized to 336x336 at the left? No:
  // scale_h = 336 < scale_w = 672, so the width follows: 336x336, centred: 168 columns each side.
  EXPECT_EQ(tiles.best_resolution, (Size2{336, 672}));
  const auto place = hired::anyres_placement({1, 1}, tiles.best_resolution);
  EXPECT_EQ(place.resized, (Size2{336, 336}));
  EXPECT_EQ(place.pad_left, 168);
  const std::int64_t tile = 3 * 336 * 336;
  EXPECT_EQ(tiles.tiles[0], 77);
  EXPECT_EQ(tiles.tiles[static_cast<std::size_t>(tile + 167)], 0);
  EXPECT_EQ(tiles.tiles[static_cast<std::size_t>(tile + 168)], 77);
  EXPECT_EQ(tiles.tiles[static_cast<std::size_t>(2 * tile + 167)], 77);
  EXPECT_EQ(tiles.tiles[static_cast<std::size_t>(2 * tile + 168)], 0);
}

// --- normalisation ---------------------------------------------------------------------------

// float32 values numpy computes for transformers' rescale + normalize (channel R, G, B).
TEST(NormalizeClip, EqualsTransformersFloat32Arithmetic) {
  const std::int64_t plane = 4;
  std::vector<std::uint8_t> px(3 * plane, 0);
  for (std::int64_t c = 0; c < 3; ++c) {
    px[static_cast<std::size_t>(c * plane + 1)] = 1;
    px[static_cast<std::size_t>(c * plane + 2)] = 128;
    px[static_cast<std::size_t>(c * plane + 3)] = 255;
  }
  std::vector<float> out(px.size());
  hired::io::normalize_clip(px, out, plane);
  const float want[3][4] = {
      {-0x1.cad1b8p+0f, -0x1.c714fep+0f, 0x1.38ac4p-4f, 0x1.ee2a82p+0f},
      {-0x1.c0897p+0f, -0x1.bcb1e2p+0f, 0x1.59e6d6p-3f, 0x1.0995cap+1f},
      {-0x1.7aefbp+0f, -0x1.774bc2p+0f, 0x1.5c1b88p-2f, 0x1.12acc0p+1f}};
  for (std::size_t c = 0; c < 3; ++c)
    for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(out[c * 4 + i], want[c][i]) << c << " " << i;
}

TEST(NormalizeClip, WholeTilesShapeIsChecked) {
  std::vector<std::uint8_t> px(10);
  std::vector<float> out(10);
  expect_error([&] { hired::io::normalize_clip(px, out, 4); }, {"normalize_clip", "10 bytes"});
  std::vector<float> short_out(3);
  expect_error([&] { hired::io::normalize_clip(px, short_out, 4); }, {"normalize_clip", "out"});
  AnyresTiles t;
  t.tile_px = 2;
  t.tiles.assign(12, 255);
  const auto v = hired::io::normalize_clip(t);
  ASSERT_EQ(v.size(), 12u);
  EXPECT_EQ(v[0], 0x1.ee2a82p+0f);
  EXPECT_EQ(v[11], 0x1.12acc0p+1f);
}

// --- image files -----------------------------------------------------------------------------

TEST(LoadImage, DecodesThePngAsRgb8) {
  const RgbImage img = hired::io::load_image(kLlava / "images" / "wide_150x380.png");
  EXPECT_EQ(img.height, 150);
  EXPECT_EQ(img.width, 380);
  EXPECT_EQ(img.pixels.size(), 150u * 380u * 3u);
}

TEST(LoadImage, TransparencyIsCompositedOntoWhite) {
  // A 2x1 RGBA PNG written by PIL: (255, 0, 0, 128) and (0, 0, 255, 0).
  const std::vector<std::uint8_t> png = {
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
      0x52, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0xf4,
      0x22, 0x7f, 0x8a, 0x00, 0x00, 0x00, 0x11, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8,
      0xcf, 0xc0, 0xd0, 0xc0, 0xc0, 0xf0, 0x9f, 0x01, 0x00, 0x0c, 0x7f, 0x02, 0x7f, 0x88, 0xba,
      0x31, 0x9c, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
  const RgbImage img = hired::io::decode_image(png, "two.png");
  ASSERT_EQ(img.width, 2);
  ASSERT_EQ(img.height, 1);
  // round((255 * 128 + 255 * 127) / 255) = 255, round(255 * 127 / 255) = 127
  EXPECT_EQ(img.pixels, (std::vector<std::uint8_t>{255, 127, 127, 255, 255, 255}));
}

// A 4x2 16-bit grey PNG written by PIL: [[0, 1, 200, 255], [256, 300, 40000, 65535]].
// transformers' convert_to_rgb (Pillow, mode I;16 -> RGB) saturates at 255.
TEST(LoadImage, SixteenBitGreySaturatesLikePillow) {
  const std::vector<std::uint8_t> png = {
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
      0x44, 0x52, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x02, 0x10, 0x00, 0x00, 0x00,
      0x00, 0x0a, 0x53, 0xfe, 0xfc, 0x00, 0x00, 0x00, 0x1a, 0x49, 0x44, 0x41, 0x54, 0x78,
      0xda, 0x63, 0x60, 0x60, 0x60, 0x60, 0x64, 0x38, 0xc1, 0xf0, 0x9f, 0x81, 0x91, 0x81,
      0x51, 0x67, 0x8e, 0xc3, 0xff, 0xff, 0x00, 0x1a, 0x8d, 0x04, 0xd1, 0x91, 0x07, 0xf2,
      0x48, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
  const RgbImage img = hired::io::decode_image(png, "grey16.png");
  ASSERT_EQ(img.size(), (Size2{2, 4}));
  std::vector<std::uint8_t> want;
  for (int v : {0, 1, 200, 255, 255, 255, 255, 255}) want.insert(want.end(), 3, static_cast<std::uint8_t>(v));
  EXPECT_EQ(img.pixels, want);
}

TEST(LoadImage, BadFilesNameThePath) {
  ScratchDir scratch("preprocess_test");
  const fs::path missing = scratch.path() / "missing.png";
  expect_error<hired::IoError>([&] { hired::io::load_image(missing); }, {missing.string(), "no such file"});

  expect_error<hired::IoError>([&] { hired::io::load_image(scratch.path()); },
               {scratch.path().string(), "directory"});

  const fs::path empty = scratch.path() / "empty.png";
  write_bytes(empty, {});
  expect_error([&] { hired::io::load_image(empty); }, {empty.string(), "empty"});

  const fs::path garbage = scratch.path() / "garbage.png";
  write_bytes(garbage, std::vector<std::uint8_t>(4096, 0x5a));
  expect_error([&] { hired::io::load_image(garbage); }, {garbage.string(), "not a decodable image"});

  const fs::path truncated = scratch.path() / "truncated.png";
  auto png = read_bytes(kLlava / "images" / "wide_150x380.png");
  png.resize(png.size() / 2);
  write_bytes(truncated, png);
  expect_error([&] { hired::io::load_image(truncated); }, {truncated.string()});

  const fs::path header_only = scratch.path() / "header_only.png";
  png.resize(40);  // signature + IHDR, no image data
  write_bytes(header_only, png);
  expect_error([&] { hired::io::load_image(header_only); }, {header_only.string()});

  // A PNG whose IHDR says width 0.
  const fs::path zero = scratch.path() / "zero_width.png";
  auto zero_png = read_bytes(kLlava / "images" / "wide_150x380.png");
  for (int i = 16; i < 20; ++i) zero_png[static_cast<std::size_t>(i)] = 0;  // IHDR width
  write_bytes(zero, zero_png);
  expect_error([&] { hired::io::load_image(zero); }, {zero.string()});
}

TEST(AnyresTiles, InconsistentImagesAreRejected) {
  RgbImage bad = constant_image(4, 4, 0);
  bad.pixels.pop_back();
  expect_error([&] { hired::io::anyres_tiles(bad, hired::llava_v16_grid_pinpoints); },
               {"anyres_tiles: image", "47 pixel bytes"});
  expect_error([&] { hired::io::anyres_tiles(RgbImage{}, hired::llava_v16_grid_pinpoints); },
               {"anyres_tiles: image", "(0, 0)"});
  expect_error(
      [&] { hired::io::anyres_tiles(constant_image(4, 4, 0), hired::llava_v16_grid_pinpoints, 0); },
      {"tile_px"});
  const std::vector<Size2> odd{{300, 300}};
  expect_error([&] { hired::io::anyres_tiles(constant_image(4, 4, 0), odd, 336); },
               {"grid_pinpoints", "336"});
  expect_error([&] { hired::io::resize_bicubic(constant_image(4, 4, 0), {0, 3}); },
               {"resize_bicubic", "(0, 3)"});
}

}  // namespace

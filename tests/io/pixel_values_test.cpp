// --pixel-values files (read_pixel_values): what a valid file gives, one test per rejection.
#include "hired/io/pixel_values.hpp"
#include "support/expect_error.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <vector>

namespace {

using namespace hired::io;  // the reader under test and its tensor types
using hired::Size2;
using hired_test::expect_error;

// 14-pixel tiles and LLaVA-v1.6's pinpoints divided by 24: a 30x30 image tiles 2x2 (5
// partitions), a 10x30 one 1x3 (4 partitions).
constexpr std::int64_t kTile = 14;
constexpr std::array<Size2, 5> kPinpoints{{{14, 28}, {28, 14}, {28, 28}, {42, 14}, {14, 42}}};
constexpr std::int64_t kPlane = 3 * kTile * kTile;

std::vector<float> ramp(std::int64_t partitions) {
  std::vector<float> v(static_cast<std::size_t>(partitions * kPlane));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 97) / 50.0f - 1.0f;
  return v;
}

SafeTensors file_of(std::vector<TensorData> tensors) {
  return SafeTensors::from_bytes(hired::io::serialize_safetensors(tensors), "pv.safetensors");
}

TensorData pixels(std::int64_t partitions, const std::vector<float>& values) {
  return hired::io::make_tensor_data("pixel_values", Dtype::F32, {partitions, 3, kTile, kTile}, values);
}

TensorData sizes(std::vector<std::int64_t> hw) {
  const auto rows = static_cast<std::int64_t>(hw.size() / 2);
  return hired::io::make_tensor_data("image_sizes", Dtype::I64, {rows, 2}, hw);
}

hired::io::PixelBatch read(const SafeTensors& file) {
  return hired::io::read_pixel_values(file, kPinpoints, kTile);
}

TEST(PixelValues, AValidFileGivesValuesSizesAndPartitions) {
  const std::vector<float> values = ramp(9);
  const auto batch = read(file_of({pixels(9, values), sizes({30, 30, 10, 30})}));
  EXPECT_EQ(batch.tile_px, kTile);
  EXPECT_EQ(batch.pixel_values, values);
  EXPECT_EQ(batch.image_sizes, (std::vector<Size2>{{30, 30}, {10, 30}}));
  EXPECT_EQ(batch.partitions, (std::vector<std::int64_t>{5, 4}));
}

TEST(PixelValues, HalfPrecisionValuesAndNarrowSizesRead) {
  std::vector<std::uint16_t> half(static_cast<std::size_t>(5 * kPlane), 0x3c00);  // 1.0
  const auto batch = read(file_of(
      {hired::io::make_tensor_data("pixel_values", Dtype::F16, {5, 3, kTile, kTile}, half),
       hired::io::make_tensor_data("image_sizes", Dtype::I32, {1, 2}, std::vector<std::int32_t>{30, 30})}));
  EXPECT_EQ(batch.pixel_values, std::vector<float>(static_cast<std::size_t>(5 * kPlane), 1.0f));
  EXPECT_EQ(batch.partitions, (std::vector<std::int64_t>{5}));
}

TEST(PixelValues, WithoutPinpointsEveryImageIsOnePartition) {
  // LLaVA-1.5: one centre crop per image, whatever its size.
  const auto batch = hired::io::read_pixel_values(
      file_of({pixels(2, ramp(2)), sizes({30, 30, 10, 300})}), {}, kTile);
  EXPECT_EQ(batch.partitions, (std::vector<std::int64_t>{1, 1}));
  EXPECT_EQ(batch.image_sizes, (std::vector<Size2>{{30, 30}, {10, 300}}));
  expect_error([] { hired::io::read_pixel_values(file_of({pixels(2, ramp(2)), sizes({30, 30})}), {}, kTile); },
               {"pixel_values has 2 partitions, but the image sizes tile into 1"});
  expect_error([] { hired::io::read_pixel_values(file_of({pixels(1, ramp(1)), sizes({0, 30})}), {}, kTile); },
               {"image_sizes row 0", "(0, 30) must be positive"});
}

TEST(PixelValues, EveryRejectionNamesTheFileAndTheTensor) {
  expect_error([] { read(file_of({sizes({30, 30})})); }, {"pv.safetensors", "no tensor 'pixel_values'"});
  expect_error([] { read(file_of({pixels(5, ramp(5))})); }, {"pv.safetensors", "no tensor 'image_sizes'"});
  expect_error(
      [] {
        read(file_of({hired::io::make_tensor_data("pixel_values", Dtype::F32, {5, 3, 28, 7}, ramp(5)),
                      sizes({30, 30})}));
      },
      {"pv.safetensors", "pixel_values has shape [5, 3, 28, 7]", "[sum P, 3, 14, 14]"});
  expect_error(
      [] {
        read(file_of({pixels(5, ramp(5)),
                      hired::io::make_tensor_data("image_sizes", Dtype::I64, {2}, std::vector<std::int64_t>{30, 30})}));
      },
      {"pv.safetensors", "image_sizes has shape [2]", "[B, 2]"});
  expect_error([] { read(file_of({pixels(5, ramp(5)), sizes({})})); },
               {"image_sizes has shape [0, 2]", "B > 0"});
  expect_error(
      [] {
        read(file_of({hired::io::make_tensor_data("pixel_values", Dtype::I32, {5, 3, kTile, kTile},
                                                  std::vector<std::int32_t>(5 * kPlane)),
                      sizes({30, 30})}));
      },
      {"pv.safetensors", "'pixel_values'", "unsupported dtype I32"});
  expect_error(
      [] {
        read(file_of({pixels(5, ramp(5)),
                      hired::io::make_tensor_data("image_sizes", Dtype::F32, {1, 2}, std::vector<float>{30, 30})}));
      },
      {"'image_sizes'", "unsupported dtype F32"});
}

TEST(PixelValues, SizesMustBePositiveAndAtMost2To24) {
  expect_error([] { read(file_of({pixels(5, ramp(5)), sizes({0, 30})})); },
               {"pv.safetensors", "image_sizes row 0", "(0, 30) must be positive"});
  expect_error([] { read(file_of({pixels(10, ramp(10)), sizes({30, 30, 30, -1})})); },
               {"image_sizes row 1", "(30, -1)"});
  expect_error([] { read(file_of({pixels(5, ramp(5)), sizes({30, std::int64_t{1} << 40})})); },
               {"image_sizes row 0", "larger than 16777216"});
}

TEST(PixelValues, PartitionsMustMatchTheRows) {
  // 30x30 tiles into 5 partitions, not 4 or 6.
  expect_error([] { read(file_of({pixels(4, ramp(4)), sizes({30, 30})})); },
               {"pv.safetensors", "pixel_values has 4 partitions, but the image sizes tile into 5"});
  expect_error([] { read(file_of({pixels(6, ramp(6)), sizes({30, 30})})); },
               {"6 partitions", "tile into 5"});
}

TEST(PixelValues, NonFiniteValuesAreRefused) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
    std::vector<float> values = ramp(5);
    values[777] = bad;
    expect_error([&] { read(file_of({pixels(5, values), sizes({30, 30})})); },
                 {"pv.safetensors", "pixel_values", "flat index 777 is not finite"});
  }
}

}  // namespace

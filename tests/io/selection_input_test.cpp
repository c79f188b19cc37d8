// hired_select's input (read_selection_input): what a valid file gives, and the cases the fuzz
// target fuzz/selection_input.cpp found, whose arithmetic overflowed before the fix. The tool's
// other rejections are tested end to end in cli_test.cpp.
#include "hired/io/selection_input.hpp"
#include "support/expect_error.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace {

using hired::Mode;
using hired::io::Dtype;
using hired::io::SafeTensors;
using hired::io::TensorData;
using hired_test::expect_error;

TensorData ints(const char* name, std::vector<std::int64_t> shape, std::vector<std::int64_t> values) {
  return hired::io::make_tensor_data(name, Dtype::I64, std::move(shape), values);
}

// Attention of `rows` partitions, one head, N = 4 tokens (+ CLS): row p is [1, p, p, p, p + 1].
std::vector<TensorData> attention(std::int64_t rows, std::int64_t keys = 5) {
  std::vector<float> v;
  for (std::int64_t p = 0; p < rows; ++p) {
    v.push_back(1.0f);
    for (std::int64_t k = 1; k < keys; ++k) v.push_back(static_cast<float>(p + (k == keys - 1)));
  }
  return {hired::io::make_tensor_data("init_cls_attn", Dtype::F32, {rows, 1, keys}, v),
          hired::io::make_tensor_data("final_cls_attn", Dtype::F32, {rows, 1, keys}, v)};
}

SafeTensors file_of(std::vector<TensorData> tensors) {
  return SafeTensors::from_bytes(hired::io::serialize_safetensors(tensors), "in.safetensors");
}

TEST(SelectionInput, AValidFileGivesScoresLayoutsAndTheVisionGrid) {
  auto tensors = attention(5);
  tensors.push_back(ints("num_partitions", {1}, {5}));
  tensors.push_back(ints("image_sizes", {1, 2}, {600, 600}));
  tensors.push_back(ints("grid_pinpoints", {1, 2}, {672, 672}));
  const auto in = hired::io::read_selection_input(file_of(tensors), Mode::exact, 336);
  EXPECT_EQ(in.vision.side, 2);
  EXPECT_EQ(in.vision.tile_px, 336);
  ASSERT_EQ(in.images.size(), 1u);
  EXPECT_EQ(in.images[0].partitions, 5);
  EXPECT_EQ(in.images[0].grid, (hired::GridShape{2, 2}));
  EXPECT_EQ(in.images[0].image_size, (hired::Size2{600, 600}));
  // Scores drop the CLS key: partition 3 is [3, 3, 3, 4].
  ASSERT_EQ(in.init_scores.size(), 20u);
  EXPECT_EQ(std::vector<float>(in.init_scores.begin() + 12, in.init_scores.begin() + 16),
            (std::vector<float>{3, 3, 3, 4}));
  EXPECT_EQ(in.final_scores, in.init_scores);
}

TEST(SelectionInput, ExactModeNeedsImageSizesReferenceModeGridShapes) {
  auto tensors = attention(3);
  tensors.push_back(ints("num_partitions", {1}, {3}));
  tensors.push_back(ints("grid_shapes", {1, 2}, {1, 2}));
  expect_error([&] { hired::io::read_selection_input(file_of(tensors), Mode::exact, 336); },
               {"image_sizes", "exact mode needs them"});
  EXPECT_EQ(hired::io::read_selection_input(file_of(tensors), Mode::reference, 336).images[0].grid,
            (hired::GridShape{1, 2}));
}

TEST(SelectionInput, AGridWhoseTileCountOverflowsIsRefused) {
  // 2^62 x 2^62 tiles: the product is far beyond int64, the partition count 3.
  auto tensors = attention(3);
  tensors.push_back(ints("num_partitions", {1}, {3}));
  tensors.push_back(ints("grid_shapes", {1, 2}, {std::int64_t{1} << 62, std::int64_t{1} << 62}));
  expect_error([&] { hired::io::read_selection_input(file_of(tensors), Mode::reference, 336); },
               {"num_partitions[0]: 3 partitions", "4611686018427387904x4611686018427387904 tile grid"});
}

TEST(SelectionInput, PartitionsThatAddUpBeyondInt64AreRefused) {
  // Each image is self-consistent (2^31 x 2^31 tiles + 1), the batch's sum is not an int64.
  const std::int64_t side = std::int64_t{1} << 31, partitions = side * side + 1;
  auto tensors = attention(3);
  tensors.push_back(ints("num_partitions", {2}, {partitions, partitions}));
  tensors.push_back(ints("grid_shapes", {2, 2}, {side, side, side, side}));
  expect_error([&] { hired::io::read_selection_input(file_of(tensors), Mode::reference, 336); },
               {"num_partitions", "add up beyond int64"});
}

TEST(SelectionInput, ATokenGridBeyondInt32IndicesIsRefused) {
  // No heads: the tensor is empty whatever its N, and N + 1 = 2^62 keys names no real grid.
  auto tensors = std::vector<TensorData>{
      hired::io::make_tensor_data("init_cls_attn", Dtype::F32, {1, 0, std::int64_t{1} << 62}, std::vector<float>{}),
      hired::io::make_tensor_data("final_cls_attn", Dtype::F32, {1, 0, std::int64_t{1} << 62}, std::vector<float>{}),
      ints("num_partitions", {1}, {1})};
  expect_error([&] { hired::io::read_selection_input(file_of(tensors), Mode::exact, 336); },
               {"init_cls_attn", "N = 4611686018427387903 patch tokens", "more than 46340^2"});
}

}  // namespace

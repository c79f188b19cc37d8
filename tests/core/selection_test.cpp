// select_tokens + pack_plan (docs/DESIGN.md, sections 4 and 5), the batch description (layout.hpp), the vision
// grid, CLS-attention scores (scores.hpp) and the configuration's validation. Every rejection
// is checked to be a hired::Error whose message names the offending argument.
#include "hired/config.hpp"
#include "hired/layout.hpp"
#include "hired/scores.hpp"
#include "hired/selection.hpp"

#include "support/expect_error.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

using hired_test::expect_error;

using hired::GridShape;
using hired::ImageLayout;
using hired::NewlinePolicy;
using hired::Size2;
using hired::VisionGrid;
using Rows = std::vector<std::int64_t>;
constexpr std::int64_t NL = hired::PackPlan::newline;

ImageLayout layout_of(Size2 image) {
  const GridShape grid = hired::anyres_grid_shape(image, hired::llava_v16_grid_pinpoints, 336);
  return {grid.tiles() + 1, grid, image};
}

hired::DropConfig config_of(hired::Mode mode, hired::Budget budget, double alpha) {
  hired::DropConfig c;
  c.mode = mode;
  c.budget = budget;
  c.alpha = alpha;
  return c;
}

std::vector<std::int32_t> as_vector(std::span<const std::int32_t> s) { return {s.begin(), s.end()}; }

// ---------------------------------------------------------------------------------------------
// Stock packing: rate 1.0 + every_row is LLaVA-Next's pack_image_features
// ---------------------------------------------------------------------------------------------

/// Stock order written the way transformers builds it: the tile features [gh*gw, 24, 24] are
/// viewed as (gh, gw, 24, 24), permuted to (gh, 24, gw, 24) and flattened to a (gh*24) x (gw*24)
/// grid; `unpad_image` keeps rows [row_begin, row_end) and columns [col_begin, col_end) (given
/// by hand below); a newline follows every kept row. The full image's 576 tokens come first.
Rows stock_order(std::int64_t first_partition, GridShape grid, std::int64_t row_begin,
                 std::int64_t row_end, std::int64_t col_begin, std::int64_t col_end) {
  constexpr std::int64_t side = 24, n = 576;
  Rows rows;
  for (std::int64_t j = 0; j < n; ++j) rows.push_back(first_partition * n + j);
  if (grid.tiles() == 0) {
    rows.push_back(NL);
    return rows;
  }
  for (std::int64_t ti = 0; ti < grid.rows; ++ti) {
    for (std::int64_t r = 0; r < side; ++r) {
      const std::int64_t y = ti * side + r;
      if (y < row_begin || y >= row_end) continue;
      for (std::int64_t tj = 0; tj < grid.cols; ++tj) {
        for (std::int64_t c = 0; c < side; ++c) {
          const std::int64_t x = tj * side + c;
          if (x < col_begin || x >= col_end) continue;
          const std::int64_t partition = first_partition + 1 + ti * grid.cols + tj;
          rows.push_back(partition * n + r * side + c);
        }
      }
      rows.push_back(NL);
    }
  }
  return rows;
}

hired::PackPlan plan_at_rate_one(const std::vector<ImageLayout>& images, NewlinePolicy policy,
                                 hired::Mode mode = hired::Mode::exact) {
  const std::int64_t partitions = hired::total_partitions(images);
  std::vector<float> init(static_cast<std::size_t>(partitions * 576)), fin(init.size());
  for (std::size_t i = 0; i < init.size(); ++i) {
    init[i] = static_cast<float>((i * 7919) % 13);
    fin[i] = static_cast<float>((i * 104729) % 5);
  }
  const hired::Selection sel = hired::select_tokens(
      init, fin, images, VisionGrid{}, config_of(mode, hired::Budget::rate(1.0), 0.5));
  return hired::pack_plan(sel, policy);
}

TEST(PackPlan, RateOneEveryRowIsStockPackingOnAOneByTwoGrid) {
  // 336x672 -> best resolution 336x672, a 1x2 grid; aspect 2 = 48/24: no padding.
  const hired::PackPlan plan = plan_at_rate_one({layout_of({336, 672})}, NewlinePolicy::every_row);
  EXPECT_EQ(plan.rows, stock_order(0, {1, 2}, 0, 24, 0, 48));
  EXPECT_EQ(plan.rows.size(), 576u + 24u * 49u);
  EXPECT_EQ(plan.offsets, (Rows{0, 576 + 24 * 49}));
}

TEST(PackPlan, RateOneEveryRowIsStockPackingWithPadding) {
  // 300x672 -> 1x2 grid. unpad on 24x48: 672/300 = 2.24 > 2, scale 48/672,
  // new_rows = int(round(300 * 48/672, 7)) = int(21.4285714) = 21, pad = (24 - 21) // 2 = 1
  // -> rows [1, 23): 22 rows of 48 tokens + newline.
  EXPECT_EQ(plan_at_rate_one({layout_of({300, 672})}, NewlinePolicy::every_row).rows,
            stock_order(0, {1, 2}, 1, 23, 0, 48));
  // 600x400 -> 2x2 grid. unpad on 48x48: 400/600 < 1, scale 48/600, new_cols = 32,
  // pad = 8 -> columns [8, 40).
  EXPECT_EQ(plan_at_rate_one({layout_of({600, 400})}, NewlinePolicy::every_row).rows,
            stock_order(0, {2, 2}, 0, 48, 8, 40));
}

TEST(PackPlan, ReferenceModeAtRateOneIsStockPackingToo) {
  // The published pipeline selects nothing at rate 1.0: every token is kept (the padding
  // tokens too, which unpad then removes), so the packing is stock LLaVA-Next's.
  EXPECT_EQ(plan_at_rate_one({layout_of({600, 400})}, NewlinePolicy::every_row, hired::Mode::reference).rows,
            stock_order(0, {2, 2}, 0, 48, 8, 40));
  EXPECT_EQ(plan_at_rate_one({layout_of({336, 672})}, NewlinePolicy::every_row, hired::Mode::reference).rows,
            stock_order(0, {1, 2}, 0, 24, 0, 48));
}

TEST(PackPlan, RateOneSinglePartitionIsTokensThenOneNewline) {
  const hired::PackPlan plan = plan_at_rate_one({ImageLayout{1, {}, std::nullopt}}, NewlinePolicy::every_row);
  Rows expected(576);
  std::iota(expected.begin(), expected.end(), 0);
  expected.push_back(NL);
  EXPECT_EQ(plan.rows, expected);
}

TEST(PackPlan, RateOneBatchConcatenatesImagesWithOffsets) {
  // Image 0: 600x600 (P = 5, partitions 0..4), image 1: P = 1 (partition 5),
  // image 2: 300x672 (P = 3, partitions 6..8).
  const std::vector<ImageLayout> images{layout_of({600, 600}), ImageLayout{1, {}, std::nullopt},
                                        layout_of({300, 672})};
  const hired::PackPlan plan = plan_at_rate_one(images, NewlinePolicy::every_row);
  Rows expected = stock_order(0, {2, 2}, 0, 48, 0, 48);
  const Rows one = stock_order(5, {}, 0, 0, 0, 0);
  const Rows two = stock_order(6, {1, 2}, 1, 23, 0, 48);
  const auto size0 = static_cast<std::int64_t>(expected.size());
  expected.insert(expected.end(), one.begin(), one.end());
  const auto size1 = static_cast<std::int64_t>(expected.size());
  expected.insert(expected.end(), two.begin(), two.end());
  EXPECT_EQ(plan.rows, expected);
  EXPECT_EQ(plan.offsets, (Rows{0, size0, size1, static_cast<std::int64_t>(expected.size())}));
  EXPECT_EQ(size0, 2880 + 48);  // 600x600: 5 x 576 tokens + 48 newlines
}

TEST(PackPlan, RateOneWithoutNewlinesIsStockMinusNewlines) {
  Rows expected = stock_order(0, {2, 2}, 0, 48, 8, 40);
  std::erase(expected, NL);
  EXPECT_EQ(plan_at_rate_one({layout_of({600, 400})}, NewlinePolicy::none).rows, expected);
}

// ---------------------------------------------------------------------------------------------
// Newline policies, by hand on a 2x2-token vision grid
// ---------------------------------------------------------------------------------------------

// VisionGrid{336, 2}: N = 4 tokens per partition, token j = (j / 2, j % 2).
// Image 336x672 -> 1x2 grid, no padding: the tile grid is 2 rows x 4 columns of tokens.
// Feature rows: full image 0..3, tile 0 (partition 1) 4..7, tile 1 (partition 2) 8..11.
const VisionGrid tiny{336, 2};
const std::vector<float> tiny_full_final{0.1f, 0.5f, 0.7f, 0.3f};
const std::vector<float> tiny_tile0_final{0.9f, 0.8f, 0.1f, 0.2f};
const std::vector<float> tiny_tile1_final{0.6f, 0.7f, 0.3f, 0.3f};

hired::Selection tiny_selection(hired::Budget budget, double alpha) {
  const std::vector<float> init(12, 1.0f);
  std::vector<float> fin = tiny_full_final;
  fin.insert(fin.end(), tiny_tile0_final.begin(), tiny_tile0_final.end());
  fin.insert(fin.end(), tiny_tile1_final.begin(), tiny_tile1_final.end());
  return hired::select_tokens(init, fin, {layout_of({336, 672})}, tiny,
                              config_of(hired::Mode::exact, budget, alpha));
}

TEST(PackPlan, NewlinePoliciesOnARowWithoutKeptTokens) {
  // T = 4, alpha = 0: B0 = 0, S = 4, K = 4 (all marked). Full-image token column c covers
  // canvas x in [336 c, 336 c + 336): column 0 -> tile 0, column 1 -> tile 1 -> equal weights
  // -> 2 tokens per tile. Tile 0 keeps {0, 1} (0.9, 0.8), tile 1 keeps {0, 1} (0.6, 0.7):
  // all on grid row 0, raster order across tiles: 4, 5, 8, 9. Grid row 1 keeps nothing.
  const hired::Selection sel = tiny_selection(hired::Budget::tokens(4), 0.0);
  EXPECT_EQ(as_vector(sel.kept_in(1)), (std::vector<std::int32_t>{0, 1}));
  EXPECT_EQ(as_vector(sel.kept_in(2)), (std::vector<std::int32_t>{0, 1}));
  EXPECT_EQ(hired::pack_plan(sel, NewlinePolicy::none).rows, (Rows{4, 5, 8, 9}));
  EXPECT_EQ(hired::pack_plan(sel, NewlinePolicy::every_row).rows, (Rows{4, 5, 8, 9, NL, NL}));
  EXPECT_EQ(hired::pack_plan(sel, NewlinePolicy::kept_rows).rows, (Rows{4, 5, 8, 9, NL}));
}

TEST(PackPlan, NewlinePoliciesWithTheFullImageAndBothRows) {
  // T = 5, alpha = 0.2: B0 = floor(1.0) = 1, S = 4, K = floor(4 * 0.8) = 3. Uniform s_init:
  // marks {0, 1, 2} -> weights tile 0 : tile 1 = 2 : 1 -> quotas 2.67, 1.33 -> floors 2, 1,
  // the last seat to remainder 0.67 (tile 0) -> (3, 1).
  // Full image keeps {2} (0.7); tile 0 keeps {0, 1, 3} (0.9, 0.8, 0.2); tile 1 keeps {1} (0.7).
  // Grid row 0: tile 0 tokens 0, 1 -> rows 4, 5; tile 1 token 1 -> row 9.
  // Grid row 1: tile 0 token 3 -> row 7.
  const hired::Selection sel = tiny_selection(hired::Budget::tokens(5), 0.2);
  EXPECT_EQ((std::vector<std::int64_t>{sel.budget(0), sel.budget(1), sel.budget(2)}), (Rows{1, 3, 1}));
  EXPECT_EQ(hired::pack_plan(sel, NewlinePolicy::none).rows, (Rows{2, 4, 5, 9, 7}));
  EXPECT_EQ(hired::pack_plan(sel, NewlinePolicy::every_row).rows, (Rows{2, 4, 5, 9, NL, 7, NL}));
  EXPECT_EQ(hired::pack_plan(sel, NewlinePolicy::kept_rows).rows, (Rows{2, 4, 5, 9, NL, 7, NL}));
}

TEST(PackPlan, SinglePartitionNewlinePolicies) {
  // P = 1: the kept tokens, then one newline (every_row), none (none), one iff any kept (kept_rows).
  const std::vector<float> init(4, 1.0f), fin{0.4f, 0.1f, 0.9f, 0.2f};
  const auto select = [&](std::int64_t tokens) {
    return hired::select_tokens(init, fin, {ImageLayout{1, {}, std::nullopt}}, tiny,
                                config_of(hired::Mode::exact, hired::Budget::tokens(tokens), 0.5));
  };
  const hired::Selection two = select(2);  // {0, 2}: 0.4 and 0.9
  EXPECT_EQ(hired::pack_plan(two, NewlinePolicy::none).rows, (Rows{0, 2}));
  EXPECT_EQ(hired::pack_plan(two, NewlinePolicy::every_row).rows, (Rows{0, 2, NL}));
  EXPECT_EQ(hired::pack_plan(two, NewlinePolicy::kept_rows).rows, (Rows{0, 2, NL}));
  const hired::Selection none = select(0);
  EXPECT_EQ(hired::pack_plan(none, NewlinePolicy::none).rows, (Rows{}));
  EXPECT_EQ(hired::pack_plan(none, NewlinePolicy::every_row).rows, (Rows{NL}));
  EXPECT_EQ(hired::pack_plan(none, NewlinePolicy::kept_rows).rows, (Rows{}));
}

// ---------------------------------------------------------------------------------------------
// Padding: reference mode keeps tokens there and loses them at packing; exact mode never picks them
// ---------------------------------------------------------------------------------------------

// VisionGrid{336, 4}: N = 16, token j = (j / 4, j % 4). Image 150x672 -> 1x2 grid (336x672).
// unpad on the 4x8 token grid: 672/150 = 4.48 > 2, scale 8/672, new_rows = int(1.7857) = 1,
// pad = (4 - 1) // 2 = 1 -> rows [1, 3): tiles keep token rows 1 and 2 (8 of 16 tokens).
// Feature rows: full image 0..15, tile 0 16..31, tile 1 32..47.
const VisionGrid small{336, 4};

hired::Selection padded_selection(hired::Mode mode) {
  std::vector<float> init(48, 1.0f), fin(48, 1.0f);
  // Tile 0 final scores by token row: row 0 = 9, row 1 = 5, row 2 = 1, row 3 = 8.
  const float by_row[4] = {9.0f, 5.0f, 1.0f, 8.0f};
  for (std::int64_t j = 0; j < 16; ++j) fin[16 + j] = by_row[j / 4];
  return hired::select_tokens(init, fin, {layout_of({150, 672})}, small,
                              config_of(mode, hired::Budget::rate(0.5), 0.5));
}

TEST(PackPlan, ReferenceModeDropsKeptTokensInPaddingWhenPacking) {
  ASSERT_EQ(hired::tile_token_box({150, 672}, {1, 2}, small), (hired::TokenBox{1, 3, 0, 8}));
  // Reference: T = trunc(48 * 0.5) = 24, B0 = 12, S = min(12, 32) = 12, K = trunc(16 * 0.5) = 8.
  // Uniform s_init marks flat 0..7 = band 0 of 2 -> c = (8, 0) -> b = (12, 0).
  // Full image keeps flat 0..11 (ties -> lower index). Tile 0 keeps its top 12 over all 16
  // tokens: rows 0 (9), 3 (8), 1 (5) -> {0..7, 12..15}, 8 of which are padding.
  const hired::Selection sel = padded_selection(hired::Mode::reference);
  EXPECT_EQ(sel.requested[0], 24);
  EXPECT_EQ((Rows{sel.budget(0), sel.budget(1), sel.budget(2)}), (Rows{12, 12, 0}));
  EXPECT_EQ(as_vector(sel.kept_in(1)), (std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15}));
  EXPECT_EQ(sel.kept_in_image(0), 24);
  // Packing keeps only grid row 1 of tile 0 (tokens 4..7 -> rows 20..23): 16 rows, not 24.
  Rows expected(12);
  std::iota(expected.begin(), expected.end(), 0);
  for (std::int64_t r : {20, 21, 22, 23}) expected.push_back(r);
  EXPECT_EQ(hired::pack_plan(sel, NewlinePolicy::none).rows, expected);
  expected.push_back(NL);
  EXPECT_EQ(hired::pack_plan(sel, NewlinePolicy::kept_rows).rows, expected);
  expected.push_back(NL);  // grid row 2 keeps nothing but still gets its newline
  EXPECT_EQ(hired::pack_plan(sel, NewlinePolicy::every_row).rows, expected);
}

TEST(PackPlan, ExactModeSpendsTheBudgetOnEligibleTokensOnly) {
  // Exact: T = floor(48 * 0.5) = 24, B0 = 12, S = 12, K = 8 (flat 0..7 = full-image rows 0, 1,
  // all 4 columns; columns 0, 1 map to tile 0 and 2, 3 to tile 1) -> equal weights, capacities
  // 8 each -> (6, 6). Tile 0 among rows 1, 2: row 1 (5) then the lowest two of row 2 (1):
  // {4, 5, 6, 7, 8, 9}. Tile 1 (uniform): {4..9}.
  const hired::Selection sel = padded_selection(hired::Mode::exact);
  EXPECT_EQ((Rows{sel.budget(0), sel.budget(1), sel.budget(2)}), (Rows{12, 6, 6}));
  EXPECT_EQ(as_vector(sel.kept_in(1)), (std::vector<std::int32_t>{4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(as_vector(sel.kept_in(2)), (std::vector<std::int32_t>{4, 5, 6, 7, 8, 9}));
  // Grid row 1: tile 0 tokens 4..7 (rows 20..23), tile 1 tokens 4..7 (rows 36..39);
  // grid row 2: tile 0 tokens 8, 9 (rows 24, 25), tile 1 tokens 8, 9 (rows 40, 41). All 24 packed.
  Rows expected(12);
  std::iota(expected.begin(), expected.end(), 0);
  for (std::int64_t r : Rows{20, 21, 22, 23, 36, 37, 38, 39, NL, 24, 25, 40, 41, NL}) expected.push_back(r);
  EXPECT_EQ(hired::pack_plan(sel, NewlinePolicy::every_row).rows, expected);
}

TEST(PackPlan, TiledImageWithoutImageSizeCannotBePacked) {
  // Reference mode needs no image size to select; packing needs it to unpad.
  const std::vector<float> scores(5 * 576, 1.0f);
  const hired::Selection sel =
      hired::select_tokens(scores, scores, {ImageLayout{5, {2, 2}, std::nullopt}}, VisionGrid{},
                           config_of(hired::Mode::reference, hired::Budget::rate(0.2), 0.5));
  expect_error([&] { hired::pack_plan(sel, NewlinePolicy::every_row); }, "image_sizes");
}

// ---------------------------------------------------------------------------------------------
// select_tokens: the CSR layout and its rejections
// ---------------------------------------------------------------------------------------------

TEST(SelectTokens, BatchIsLaidOutAsCsr) {
  // Image 0: P = 1, T = 2 of 4; image 1: 336x672 (P = 3), T = 5, alpha 0.2 (as above).
  const std::vector<ImageLayout> images{ImageLayout{1, {}, std::nullopt}, layout_of({336, 672})};
  std::vector<float> init(16, 1.0f);
  std::vector<float> fin{0.4f, 0.1f, 0.9f, 0.2f};
  for (const auto* part : {&tiny_full_final, &tiny_tile0_final, &tiny_tile1_final})
    fin.insert(fin.end(), part->begin(), part->end());
  const hired::Selection sel = hired::select_tokens(
      init, fin, images, tiny, config_of(hired::Mode::exact, hired::Budget::tokens(2), 0.5));
  EXPECT_EQ(sel.partition_offsets, (Rows{0, 1, 4}));
  EXPECT_EQ(sel.requested, (Rows{2, 2}));
  // Image 0 keeps {0, 2}. Image 1: T = 2, B0 = 1, S = 1, K = 2: marks {0, 1} (the top row),
  // one column each -> weights 1 : 1 -> the seat to tile 0 (lower index). Full keeps {2},
  // tile 0 keeps {0}.
  EXPECT_EQ(sel.kept_offsets, (Rows{0, 2, 3, 4, 4}));
  EXPECT_EQ(sel.kept, (std::vector<std::int32_t>{0, 2, 2, 0}));
  EXPECT_EQ(sel.kept_in_image(0), 2);
  EXPECT_EQ(sel.kept_in_image(1), 2);
  EXPECT_EQ(sel.mode, hired::Mode::exact);
  EXPECT_EQ(sel.images.size(), 2u);
  const hired::PackPlan plan = hired::pack_plan(sel, NewlinePolicy::every_row);
  // Image 0: rows 0, 2, newline. Image 1 (partitions 1..3 -> rows 4..15): full token 2 -> 6;
  // tile 0 token 0 -> row (2 * 4) + 0 = 8 on grid row 0; newline; grid row 1 empty; newline.
  EXPECT_EQ(plan.rows, (Rows{0, 2, NL, 6, 8, NL, NL}));
  EXPECT_EQ(plan.offsets, (Rows{0, 3, 7}));
}

TEST(SelectTokens, RejectsBadInputs) {
  const std::vector<ImageLayout> one{layout_of({600, 600})};
  const std::vector<float> good(5 * 576, 1.0f);
  const hired::DropConfig config;
  expect_error([&] { hired::select_tokens(good, good, {}, VisionGrid{}, config); }, "images");
  const std::vector<float> short_scores(5 * 576 - 1, 1.0f);
  expect_error([&] { hired::select_tokens(short_scores, good, one, VisionGrid{}, config); }, "init scores");
  expect_error([&] { hired::select_tokens(good, short_scores, one, VisionGrid{}, config); }, "final scores");
  std::vector<float> nan = good;
  nan[2 * 576 + 7] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { hired::select_tokens(good, nan, one, VisionGrid{}, config); }, "final scores");
  expect_error([&] { hired::select_tokens(good, nan, one, VisionGrid{}, config); }, "partition 2, token 7");
  std::vector<float> negative = good;
  negative[3] = -0.5f;
  expect_error([&] { hired::select_tokens(negative, good, one, VisionGrid{}, config); }, "init scores");
  // Exact mode needs image sizes for tiled images.
  expect_error([&] { hired::select_tokens(good, good, {ImageLayout{5, {2, 2}, std::nullopt}}, VisionGrid{}, config); },
               "image_sizes");
  // The configuration is validated.
  hired::DropConfig bad = config;
  bad.alpha = 2.0;
  expect_error([&] { hired::select_tokens(good, good, one, VisionGrid{}, bad); }, "alpha");
  bad = config_of(hired::Mode::reference, hired::Budget::tokens(10), 0.5);
  expect_error([&] { hired::select_tokens(good, good, one, VisionGrid{}, bad); }, "budget_tokens");
  // A grid whose indices would not fit int32, or with no tokens.
  expect_error([&] { hired::select_tokens(good, good, one, VisionGrid{336, 46341}, config); },
               {"vision: side 46341 must be in [1, 46340]"});
  expect_error([&] { hired::select_tokens(good, good, one, VisionGrid{336, 0}, config); }, "vision: side 0");
  // P * N beyond int64 is compared by division: no overflow, a mismatch.
  const std::int64_t side = std::int64_t{1} << 31;
  expect_error([&] {
    hired::select_tokens(good, good, {ImageLayout{side * side + 1, {side, side}, std::nullopt}},
                         VisionGrid{336, 24}, config_of(hired::Mode::reference, hired::Budget::rate(0.5), 0.5));
  }, {"init scores", "expected sum P * N = 4611686018427387905 * 576"});
}

// ---------------------------------------------------------------------------------------------
// describe_images
// ---------------------------------------------------------------------------------------------

struct Batch {
  std::vector<std::int64_t> partitions, grids, sizes;
  std::vector<Size2> pinpoints;
  std::int64_t tile_px = 336;
  hired::BatchDescription view() const {
    hired::BatchDescription d;
    d.num_partitions = partitions;
    d.grid_shapes = grids;
    d.image_sizes = sizes;
    d.grid_pinpoints = pinpoints;
    d.tile_px = tile_px;
    return d;
  }
};

const std::vector<Size2> v16(hired::llava_v16_grid_pinpoints.begin(), hired::llava_v16_grid_pinpoints.end());

TEST(DescribeImages, DerivesGridsFromImageSizesAndPinpoints) {
  // 600x600 -> 672x672 -> 2x2 (P = 5). 336x700 -> 336x1008 -> 1x3 (P = 4).
  // 100x100: every pinpoint holds all 10000 pixels; the least waste is 336x672 (first of the
  // two 2-tile pinpoints) -> 1x2 (P = 3). A P = 1 image keeps no grid.
  const Batch b{{5, 4, 3, 1}, {}, {600, 600, 336, 700, 100, 100, 50, 80}, v16};
  const std::vector<ImageLayout> images = hired::describe_images(b.view());
  ASSERT_EQ(images.size(), 4u);
  EXPECT_EQ(images[0].grid, (GridShape{2, 2}));
  EXPECT_EQ(images[1].grid, (GridShape{1, 3}));
  EXPECT_EQ(images[2].grid, (GridShape{1, 2}));
  EXPECT_EQ(images[3].grid, (GridShape{0, 0}));
  EXPECT_EQ(images[1].partitions, 4);
  EXPECT_EQ(images[1].image_size, (Size2{336, 700}));
  EXPECT_EQ(images[3].image_size, (Size2{50, 80}));
  EXPECT_EQ(hired::total_partitions(images), 13);
}

TEST(DescribeImages, TakesGridShapesAsGiven) {
  const Batch b{{5, 4, 1}, {2, 2, 3, 1, 0, 0}, {}, {}};
  const std::vector<ImageLayout> images = hired::describe_images(b.view());
  EXPECT_EQ(images[0].grid, (GridShape{2, 2}));
  EXPECT_EQ(images[1].grid, (GridShape{3, 1}));
  EXPECT_EQ(images[2].grid, (GridShape{0, 0}));
  EXPECT_FALSE(images[0].image_size.has_value());
  // Grid shapes that agree with the sizes under the pinpoints are accepted.
  const Batch agree{{5}, {2, 2}, {600, 600}, v16};
  EXPECT_EQ(hired::describe_images(agree.view())[0].grid, (GridShape{2, 2}));
}

TEST(DescribeImages, SinglePartitionImagesNeedNothingElse) {
  const Batch b{{1, 1}, {}, {}, {}};
  const std::vector<ImageLayout> images = hired::describe_images(b.view());
  EXPECT_EQ(images[0].grid.tiles(), 0);
  EXPECT_FALSE(images[1].image_size.has_value());
}

TEST(DescribeImages, RejectsInconsistentBatches) {
  expect_error([] { hired::describe_images(Batch{{}, {}, {}, {}}.view()); }, "num_partitions");
  expect_error([] { hired::describe_images(Batch{{5, 5}, {2, 2, 2}, {}, {}}.view()); }, "grid_shapes");
  expect_error([] { hired::describe_images(Batch{{5}, {}, {600, 600, 1}, v16}.view()); }, "image_sizes");
  // Tiles, but neither grid shapes nor image sizes.
  expect_error([] { hired::describe_images(Batch{{1, 5}, {}, {}, v16}.view()); }, "grid_shapes");
  // P < 1.
  expect_error([] { hired::describe_images(Batch{{0}, {0, 0}, {}, {}}.view()); }, "num_partitions[0]");
  expect_error([] { hired::describe_images(Batch{{1, -3}, {0, 0, 1, 1}, {}, {}}.view()); }, "num_partitions[1]");
  // Grid / partition mismatch, from grid shapes and from sizes + pinpoints.
  expect_error([] { hired::describe_images(Batch{{5, 4}, {2, 2, 2, 2}, {}, {}}.view()); }, "num_partitions[1]");
  expect_error([] { hired::describe_images(Batch{{4}, {}, {600, 600}, v16}.view()); }, "num_partitions[0]");
  // Grid shapes with the right tile count that disagree with image sizes under the pinpoints:
  // 600x600 tiles as 2x2, not 4x1.
  expect_error([] { hired::describe_images(Batch{{5}, {4, 1}, {600, 600}, v16}.view()); }, "grid_shapes[0]");
  // Image sizes without pinpoints and without grid shapes.
  expect_error([] { hired::describe_images(Batch{{5}, {}, {600, 600}, {}}.view()); }, "grid_pinpoints");
  // Negative grid, non-positive size, a pinpoint that is not a multiple of the tile.
  expect_error([] { hired::describe_images(Batch{{1}, {-1, 0}, {}, {}}.view()); }, "grid_shapes[0]");
  expect_error([] { hired::describe_images(Batch{{1}, {}, {0, 600}, {}}.view()); }, "image_sizes");
  expect_error([] { hired::describe_images(Batch{{3}, {}, {300, 600}, {{300, 600}}}.view()); }, "grid_pinpoints");
  // An image larger than 2^24 pixels a side, and a tile of 0 pixels.
  expect_error([] { hired::describe_images(Batch{{5}, {}, {600, std::int64_t{1} << 25}, v16}.view()); },
               "image_sizes");
  expect_error([] { hired::describe_images(Batch{{5}, {}, {600, 600}, v16, 0}.view()); }, "tile_px");
}

TEST(DescribeImages, GridsAndSumsBeyondInt64AreRejectedNotOverflowed) {
  // rows * cols of 2^32 x 2^32 (and of 2^62 x 4) is not an int64: compared by division.
  const std::int64_t big = std::int64_t{1} << 32;
  expect_error([&] { hired::describe_images(Batch{{5}, {big, big}, {}, {}}.view()); },
               {"num_partitions[0]: 5 partitions", "4294967296x4294967296 tile grid"});
  expect_error([] { hired::describe_images(Batch{{5}, {std::int64_t{1} << 62, 4}, {}, {}}.view()); },
               "num_partitions[0]");
  // 2^31 x 2^31 tiles is an int64 (2^62 + 1 partitions); the sum of two such images is not.
  const std::int64_t side = std::int64_t{1} << 31, p = side * side + 1;
  const std::vector<ImageLayout> one = hired::describe_images(Batch{{p}, {side, side}, {}, {}}.view());
  EXPECT_EQ(hired::total_partitions(one), p);
  const std::vector<ImageLayout> two =
      hired::describe_images(Batch{{p, p}, {side, side, side, side}, {}, {}}.view());
  expect_error([&] { hired::total_partitions(two); }, {"num_partitions", "add up beyond int64"});
}

// ---------------------------------------------------------------------------------------------
// vision_grid_for
// ---------------------------------------------------------------------------------------------

TEST(VisionGridFor, SquareTokenCountsOnly) {
  const VisionGrid clip = hired::vision_grid_for(576, 336);
  EXPECT_EQ(clip.side, 24);
  EXPECT_EQ(clip.tile_px, 336);
  EXPECT_EQ(clip.tokens(), 576);
  EXPECT_EQ(hired::vision_grid_for(1, 14).side, 1);
  EXPECT_EQ(hired::vision_grid_for(729, 384).side, 27);  // SigLIP-style 27x27
  expect_error([] { hired::vision_grid_for(575, 336); }, "attention");
  expect_error([] { hired::vision_grid_for(577, 336); }, "attention");
  expect_error([] { hired::vision_grid_for(0, 336); }, "attention");
  expect_error([] { hired::vision_grid_for(-4, 336); }, "attention");
  expect_error([] { hired::vision_grid_for(576, 0); }, "tile_px");
}

TEST(VisionGridFor, KeptIndicesStayInt32) {
  // 46340^2 < 2^31 <= 46341^2: a larger grid's indices would not fit Selection::kept.
  EXPECT_EQ(hired::vision_grid_for(46340 * 46340, 336).side, 46340);
  expect_error([] { hired::vision_grid_for(std::int64_t{46341} * 46341, 336); },
               {"attention", "N = 2147488281 patch tokens", "more than 46340^2"});
  // Near int64's end a square root would round up and side * side overflow.
  expect_error([] { hired::vision_grid_for(std::numeric_limits<std::int64_t>::max(), 336); },
               "more than 46340^2");
}

// ---------------------------------------------------------------------------------------------
// sum_heads
// ---------------------------------------------------------------------------------------------

TEST(SumHeads, SumsPatchKeysOverHeadsSkippingTheClsKey) {
  // [rows = 2, heads = 2, keys = 3]: N = 2 patch keys; key 0 (CLS -> CLS) is not a token.
  const std::vector<float> a{
      0.50f, 0.25f, 0.25f,   // row 0, head 0
      0.75f, 0.125f, 0.125f,  // row 0, head 1
      0.00f, 1.00f, 0.00f,   // row 1, head 0
      0.50f, 0.00f, 0.50f};  // row 1, head 1
  const std::vector<float> s = hired::sum_heads(a.data(), 2, 2, 3, "attn");
  EXPECT_EQ(s, (std::vector<float>{0.375f, 0.375f, 1.0f, 0.5f}));
}

TEST(SumHeads, AddsHeadsInAscendingOrder) {
  // Heads (1, 2^-24, 2^-24) for one token: ascending ((0 + 1) + 2^-24) + 2^-24 rounds to 1
  // twice (ties to even); descending order would give 1 + 2^-23 = 1.00000012.
  const float ulp_half = std::ldexp(1.0f, -24);
  const std::vector<float> a{0.0f, 1.0f, 0.0f, ulp_half, 0.0f, ulp_half};  // [1, 3, 2]
  const std::vector<float> s = hired::sum_heads(a.data(), 1, 3, 2, "attn");
  EXPECT_EQ(s, (std::vector<float>{1.0f}));
  volatile float x = ulp_half;
  EXPECT_NE(s[0], (x + x) + 1.0f);  // the order matters for these values
}

TEST(SumHeads, RejectsNonFiniteOrNegativeAttentionWithItsPosition) {
  std::vector<float> a(2 * 2 * 3, 0.1f);
  a[(1 * 2 + 0) * 3 + 2] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { hired::sum_heads(a.data(), 2, 2, 3, "final_cls_attn"); }, "final_cls_attn");
  expect_error([&] { hired::sum_heads(a.data(), 2, 2, 3, "final_cls_attn"); }, "[1, 0, 2]");
  a[(1 * 2 + 0) * 3 + 2] = std::numeric_limits<float>::infinity();
  expect_error([&] { hired::sum_heads(a.data(), 2, 2, 3, "init_cls_attn"); }, "[1, 0, 2]");
  a[(1 * 2 + 0) * 3 + 2] = 0.1f;
  a[(0 * 2 + 1) * 3 + 1] = -0.01f;
  expect_error([&] { hired::sum_heads(a.data(), 2, 2, 3, "init_cls_attn"); }, "[0, 1, 1]");
}

TEST(SumHeads, RejectsEmptyShapes) {
  const std::vector<float> a(8, 0.1f);
  expect_error([&] { hired::sum_heads(a.data(), 0, 2, 3, "attn"); }, "attn");
  expect_error([&] { hired::sum_heads(a.data(), 1, 0, 3, "attn"); }, "attn");
  expect_error([&] { hired::sum_heads(a.data(), 1, 2, 1, "attn"); }, "attn");  // CLS key only
}

// ---------------------------------------------------------------------------------------------
// Budget and DropConfig
// ---------------------------------------------------------------------------------------------

TEST(Budget, RateIsInTheHalfOpenUnitInterval) {
  EXPECT_TRUE(hired::Budget::rate(1.0).is_rate());
  EXPECT_EQ(hired::Budget::rate(0.2).rate_value(), 0.2);
  EXPECT_EQ(hired::Budget::rate(std::numeric_limits<double>::denorm_min()).rate_value(),
            std::numeric_limits<double>::denorm_min());
  expect_error([] { hired::Budget::rate(0.0); }, "budget_rate");
  expect_error([] { hired::Budget::rate(-0.1); }, "budget_rate");
  expect_error([] { hired::Budget::rate(1.0000001); }, "budget_rate");
  expect_error([] { hired::Budget::rate(std::nan("")); }, "budget_rate");
  expect_error([] { hired::Budget::rate(std::numeric_limits<double>::infinity()); }, "budget_rate");
}

TEST(Budget, TokensAreNonNegative) {
  EXPECT_FALSE(hired::Budget::tokens(0).is_rate());
  EXPECT_EQ(hired::Budget::tokens(0).tokens_value(), 0);
  EXPECT_EQ(hired::Budget::tokens(100000).tokens_value(), 100000);
  expect_error([] { hired::Budget::tokens(-1); }, "budget_tokens");
}

TEST(DropConfig, ValidatesAlphaAndTheModeBudgetPair) {
  hired::DropConfig c;
  EXPECT_EQ(c.mode, hired::Mode::exact);  // exact is the default
  EXPECT_EQ(c.alpha, 0.5);
  EXPECT_EQ(c.newline, NewlinePolicy::every_row);
  EXPECT_NO_THROW(c.validate());
  for (double alpha : {0.0, 1.0}) {
    c.alpha = alpha;
    EXPECT_NO_THROW(c.validate());
  }
  for (double alpha : {-0.1, 1.1, std::nan(""), std::numeric_limits<double>::infinity()}) {
    c.alpha = alpha;
    expect_error([&] { c.validate(); }, "alpha");
  }
  c = config_of(hired::Mode::reference, hired::Budget::tokens(576), 0.5);
  expect_error([&] { c.validate(); }, "budget_tokens");
  c = config_of(hired::Mode::exact, hired::Budget::tokens(576), 0.5);
  EXPECT_NO_THROW(c.validate());
}

TEST(DropConfig, ParsesModesAndPolicies) {
  EXPECT_EQ(hired::parse_mode("exact"), hired::Mode::exact);
  EXPECT_EQ(hired::parse_mode("reference"), hired::Mode::reference);
  EXPECT_EQ(hired::parse_newline_policy("none"), NewlinePolicy::none);
  EXPECT_EQ(hired::parse_newline_policy("every_row"), NewlinePolicy::every_row);
  EXPECT_EQ(hired::parse_newline_policy("kept_rows"), NewlinePolicy::kept_rows);
  for (auto m : {hired::Mode::exact, hired::Mode::reference}) EXPECT_EQ(hired::parse_mode(hired::to_string(m)), m);
  for (auto p : {NewlinePolicy::none, NewlinePolicy::every_row, NewlinePolicy::kept_rows})
    EXPECT_EQ(hired::parse_newline_policy(hired::to_string(p)), p);
  expect_error([] { hired::parse_mode("Exact"); }, "mode");
  expect_error([] { hired::parse_newline_policy("rows"); }, "newline");
}

// Hand-built layouts reach select_tokens without describe_images: they are checked there too.
TEST(SelectTokens, RejectsInconsistentHandBuiltLayouts) {
  const std::vector<float> two(2 * 576, 1.0f), five(5 * 576, 1.0f), one(576, 1.0f);
  hired::DropConfig exact, reference;
  reference.mode = hired::Mode::reference;
  expect_error([&] { hired::select_tokens(two, two, {ImageLayout{2, {2, 2}, Size2{600, 600}}}, VisionGrid{}, exact); },
               "num_partitions[0]");
  expect_error([&] { hired::select_tokens(five, five, {ImageLayout{5, {}, std::nullopt}}, VisionGrid{}, reference); },
               "num_partitions[0]");
  expect_error([&] { hired::select_tokens(one, one, {ImageLayout{0, {}, std::nullopt}}, VisionGrid{}, exact); },
               "num_partitions[0]");
  expect_error([&] { hired::select_tokens(one, one, {ImageLayout{1, {0, 5}, std::nullopt}}, VisionGrid{}, exact); },
               "grid_shapes[0]");
  expect_error([&] { hired::select_tokens(two, two, {ImageLayout{2, {-1, -1}, Size2{600, 600}}}, VisionGrid{}, exact); },
               "grid_shapes[0]");
}

TEST(DescribeImages, NamesNonPositivePartitionCountsFirst) {
  for (const std::int64_t p : {0, -3}) {
    const Batch b{{p}, {}, {}, {}};
    expect_error([&] { hired::describe_images(b.view()); }, "num_partitions[0]");
  }
  const Batch single_with_grid{{1}, {0, 5}, {}, {}};
  expect_error([&] { hired::describe_images(single_with_grid.view()); }, "grid_shapes[0]");
}

}  // namespace

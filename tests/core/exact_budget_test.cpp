// Exact mode (docs/DESIGN.md, section 4): the budget is met exactly (kept = min(T, eligible)), padding-aware,
// spatially mapped tile weights, largest-remainder apportionment under capacities with the
// surplus water-filled, deterministic ties. Hand-worked cases first, then properties over
// random images, budgets, alphas and tied scores.
#include "hired/apportion.hpp"
#include "hired/budget.hpp"
#include "hired/layout.hpp"
#include "hired/selection.hpp"

#include "support/expect_error.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace {

using hired::GridShape;
using hired::ImageLayout;
using hired::Size2;
using hired::VisionGrid;
using V = std::vector<std::int64_t>;

constexpr std::int64_t N = 576;

/// apportion_capped with vectors; returns {out..., leftover}.
struct Apportioned {
  V seats;
  std::int64_t leftover;
};
Apportioned apportion(const V& weight, const V& capacity, std::int64_t seats) {
  V out(weight.size(), -99);
  const std::int64_t left = hired::apportion_capped(weight.data(), capacity.data(),
                                                    static_cast<std::int64_t>(weight.size()),
                                                    seats, out.data());
  return {out, left};
}

ImageLayout layout_of(Size2 image) {
  const GridShape grid = hired::anyres_grid_shape(image, hired::llava_v16_grid_pinpoints, 336);
  return {grid.tiles() + 1, grid, image};
}

/// s_init with score 1 where `on(r, c)` holds on the 24x24 full-image grid, else 0.
template <typename F>
std::vector<float> marks_where(F on) {
  std::vector<float> s(N, 0.0f);
  for (std::int64_t r = 0; r < 24; ++r)
    for (std::int64_t c = 0; c < 24; ++c)
      if (on(r, c)) s[r * 24 + c] = 1.0f;
  return s;
}

// ---------------------------------------------------------------------------------------------
// apportion_capped, by hand
// ---------------------------------------------------------------------------------------------

TEST(Apportion, LargestRemainderGetsTheSeatLeftByTheFloors) {
  // weights (5, 3, 2), 7 seats: quotas 3.5, 2.1, 1.4 -> floors 3, 2, 1 (6), one seat left;
  // remainders 0.5, 0.1, 0.4 -> holder 0.
  const Apportioned a = apportion({5, 3, 2}, {100, 100, 100}, 7);
  EXPECT_EQ(a.seats, (V{4, 2, 1}));
  EXPECT_EQ(a.leftover, 0);
  // 8 seats: quotas 4.0, 2.4, 1.6 -> floors 4, 2, 1 (7); remainders 0, 0.4, 0.6 -> holder 2.
  EXPECT_EQ(apportion({5, 3, 2}, {100, 100, 100}, 8).seats, (V{4, 2, 2}));
}

TEST(Apportion, EqualRemaindersGoToTheLowerIndex) {
  // weights (1, 1, 1), 2 seats: quotas 2/3 each, floors 0, all remainders equal -> 0 and 1.
  EXPECT_EQ(apportion({1, 1, 1}, {10, 10, 10}, 2).seats, (V{1, 1, 0}));
  // (1, 1, 1, 1), 3 seats -> the first three.
  EXPECT_EQ(apportion({1, 1, 1, 1}, {10, 10, 10, 10}, 3).seats, (V{1, 1, 1, 0}));
  // (2, 1, 1), 2 seats: quotas 1, 0.5, 0.5 -> floors 1, 0, 0; the tie 0.5 = 0.5 -> holder 1.
  EXPECT_EQ(apportion({2, 1, 1}, {10, 10, 10}, 2).seats, (V{1, 1, 0}));
  // (1, 2, 2), 1 seat: quotas 0.2, 0.4, 0.4 -> the tie between 1 and 2 goes to 1.
  EXPECT_EQ(apportion({1, 2, 2}, {10, 10, 10}, 1).seats, (V{0, 1, 0}));
}

TEST(Apportion, CappedHolderIsFilledAndItsSurplusReapportioned) {
  // weights (6, 3, 1), caps (2, 10, 10), 10 seats: quota 6 >= cap 2 -> holder 0 gets 2;
  // the other 8 go 3 : 1 -> 6, 2.
  EXPECT_EQ(apportion({6, 3, 1}, {2, 10, 10}, 10).seats, (V{2, 6, 2}));
}

TEST(Apportion, WaterFillingCascadesOverRounds) {
  // weights (8, 4, 4), caps (1, 4, 100), 12 seats.
  //   round 1: W = 16, quotas 6, 3, 3 -> holder 0 capped at 1 (holder 1: 3 < 4 stays).
  //   round 2: 11 seats, W = 8, quotas 5.5, 5.5 -> holder 1 now capped at 4.
  //   round 3: 7 seats to holder 2.
  EXPECT_EQ(apportion({8, 4, 4}, {1, 4, 100}, 12).seats, (V{1, 4, 7}));
  // A quota exactly at its capacity: (1, 1), caps (3, 10), 6 seats -> quota 3 = cap 3 -> (3, 3).
  EXPECT_EQ(apportion({1, 1}, {3, 10}, 6).seats, (V{3, 3}));
}

TEST(Apportion, SurplusGoesToZeroWeightHoldersByCapacity) {
  // weights (1, 0, 0), caps (2, 10, 30), 6 seats: holder 0 capped at 2; the 4 left meet only
  // zero weights -> by capacity 10 : 30 -> quotas 1, 3.
  EXPECT_EQ(apportion({1, 0, 0}, {2, 10, 30}, 6).seats, (V{2, 1, 3}));
}

TEST(Apportion, AllZeroWeightsFollowCapacity) {
  // caps (1, 2, 3), 4 seats: quotas 4/6, 8/6, 12/6 = 0.67, 1.33, 2 -> floors 0, 1, 2 (3);
  // remainders 4/6, 2/6, 0 -> holder 0.
  EXPECT_EQ(apportion({0, 0, 0}, {1, 2, 3}, 4).seats, (V{1, 1, 2}));
}

TEST(Apportion, SeatsBeyondEveryCapacityAreReturned) {
  const Apportioned a = apportion({1, 1}, {3, 2}, 9);
  EXPECT_EQ(a.seats, (V{3, 2}));
  EXPECT_EQ(a.leftover, 4);
  // Exactly the capacity: everybody full, nothing left.
  EXPECT_EQ(apportion({5, 1}, {3, 2}, 5).leftover, 0);
  EXPECT_EQ(apportion({5, 1}, {3, 2}, 5).seats, (V{3, 2}));
}

TEST(Apportion, ZeroCapacityHoldsNothingWhateverItsWeight) {
  EXPECT_EQ(apportion({5, 5}, {0, 10}, 4).seats, (V{0, 4}));
  const Apportioned none = apportion({5, 5}, {0, 0}, 4);
  EXPECT_EQ(none.seats, (V{0, 0}));
  EXPECT_EQ(none.leftover, 4);
}

TEST(Apportion, NoSeatsOrNoHolders) {
  EXPECT_EQ(apportion({3, 1}, {5, 5}, 0).seats, (V{0, 0}));
  EXPECT_EQ(apportion({}, {}, 7).leftover, 7);
}

// ---------------------------------------------------------------------------------------------
// exact_formula
// ---------------------------------------------------------------------------------------------

TEST(ExactFormula, TotalIsTheRateProductOnPaper) {
  EXPECT_EQ(hired::exact_formula::total(5, N, 0.2), 576);
  // 2880 * 0.35 = 1007.9999999999999 and 2880 * 0.7 = 2015.9999999999998 in double; on paper
  // they are 1008 and 2016.
  EXPECT_EQ(hired::exact_formula::total(5, N, 0.35), 1008);
  EXPECT_EQ(hired::exact_formula::total(5, N, 0.7), 2016);
  EXPECT_EQ(hired::exact_formula::total(5, N, 1.0), 2880);
  EXPECT_EQ(hired::exact_formula::total(1, N, 0.5), 288);
  // 2880 * 0.2001 = 576.288 -> 576 (floor, not round).
  EXPECT_EQ(hired::exact_formula::total(5, N, 0.2001), 576);
}

TEST(ExactFormula, SplitFloorsTheFullImageShare) {
  // T = 576, alpha = 0.5: B0 = 288, S = 288, K = 288.
  hired::BudgetSplit s = hired::exact_formula::split(576, N, 0.5);
  EXPECT_EQ((V{s.total, s.full_image, s.tiles, s.marks}), (V{576, 288, 288, 288}));
  // T = 577: B0 = floor(288.5) = 288, S = 289.
  s = hired::exact_formula::split(577, N, 0.5);
  EXPECT_EQ((V{s.full_image, s.tiles}), (V{288, 289}));
  // T = 2880: B0 = min(1440, 576) = 576, S = 2304 (no cap here; capacities cap the tiles).
  s = hired::exact_formula::split(2880, N, 0.5);
  EXPECT_EQ((V{s.full_image, s.tiles}), (V{576, 2304}));
  // alpha = 0: everything to the tiles, every token marked.
  s = hired::exact_formula::split(1000, N, 0.0);
  EXPECT_EQ((V{s.full_image, s.tiles, s.marks}), (V{0, 1000, 576}));
  // alpha = 1: the full image first (up to N), no marks.
  s = hired::exact_formula::split(1000, N, 1.0);
  EXPECT_EQ((V{s.full_image, s.tiles, s.marks}), (V{576, 424, 0}));
  // alpha = 0.75: K = 576 * 0.25 = 144.
  EXPECT_EQ(hired::exact_formula::split(100, N, 0.75).marks, 144);
}

// ---------------------------------------------------------------------------------------------
// Capacities and content weights
// ---------------------------------------------------------------------------------------------

TEST(TileCapacities, UnpaddedImageHasFullTiles) {
  EXPECT_EQ(hired::tile_capacities(layout_of({600, 600}), VisionGrid{}), (V{576, 576, 576, 576}));
}

TEST(TileCapacities, PaddedImageCountsOnlyTheUnpadBox) {
  // 600x400 (h x w) -> 2x2 grid on the 48x48 token grid. unpad: the image is taller than the
  // grid (400/600 < 1): scale = 48/600 = 0.08, new_cols = 400 * 0.08 = 32, pad = (48-32)/2 = 8
  // -> columns [8, 40). Every tile keeps 24 rows x 16 columns = 384.
  const ImageLayout tall = layout_of({600, 400});
  ASSERT_EQ(tall.grid, (GridShape{2, 2}));
  EXPECT_EQ(hired::tile_token_box({600, 400}, tall.grid, VisionGrid{}), (hired::TokenBox{0, 48, 8, 40}));
  EXPECT_EQ(hired::tile_capacities(tall, VisionGrid{}), (V{384, 384, 384, 384}));
  // 336x700 -> best resolution 336x1008, a 1x3 grid (24x72 tokens). 700/336 < 3:
  // new_cols = 700 * 24/336 = 50, pad = (72-50)/2 = 11 -> columns [11, 61).
  // Tile 0: [0,24) n [11,61) = 13 cols; tile 1: 24; tile 2: [48,72) n [11,61) = 13.
  const ImageLayout wide = layout_of({336, 700});
  ASSERT_EQ(wide.grid, (GridShape{1, 3}));
  EXPECT_EQ(hired::tile_capacities(wide, VisionGrid{}), (V{13 * 24, 24 * 24, 13 * 24}));
  // P = 1: no tiles, no capacities, no image size needed.
  EXPECT_TRUE(hired::tile_capacities(ImageLayout{1, {}, std::nullopt}, VisionGrid{}).empty());
}

TEST(TileCapacities, NeedTheImageSize) {
  try {
    hired::tile_capacities(ImageLayout{5, {2, 2}, std::nullopt}, VisionGrid{});
    ADD_FAILURE() << "no error";
  } catch (const hired::Error& e) {
    EXPECT_NE(std::string(e.what()).find("image_sizes"), std::string::npos) << e.what();
  }
}

TEST(TileContentWeights, TokensAlignedWithTileEdgesWeighOneTile) {
  // 600x600 on a 672x672 canvas, no padding: full-image token (r, c) is the 28x28 px square
  // at (28 r, 28 c); in units of 1/24 px its area is 672 * 672. Tile edges at 336 px = 12 tokens.
  const ImageLayout img = layout_of({600, 600});
  const std::int64_t area = 672 * 672;
  EXPECT_EQ(hired::tile_content_weights(std::vector<std::int32_t>{0}, img, VisionGrid{}),
            (V{area, 0, 0, 0}));
  EXPECT_EQ(hired::tile_content_weights(std::vector<std::int32_t>{11, 12, 12 * 24, 575}, img, VisionGrid{}),
            (V{area, area, area, area}));
}

TEST(TileContentWeights, TokenStraddlingATileEdgeIsSplitByArea) {
  // 600x400 on 672x672: resized to 672 x 449 (ceil(400 * 1.12) = ceil(448.00000000000006)),
  // pad_left = (672 - 449) / 2 = 111. In 1/24 px units: token column c spans
  // x = [24*111 + 449 c, ... + 449); row r spans y = [672 r, 672 r + 672). Tile edge x = 336*24 = 8064.
  //   c = 12: [2664 + 5388, +449) = [8052, 8501): 12 units in tile 0, 437 in tile 1.
  //   row 0: y = [0, 672), tile row 0.
  const ImageLayout img = layout_of({600, 400});
  EXPECT_EQ(hired::tile_content_weights(std::vector<std::int32_t>{12}, img, VisionGrid{}),
            (V{672 * 12, 672 * 437, 0, 0}));
  // c = 11: [7603, 8052): all in tile 0.
  EXPECT_EQ(hired::tile_content_weights(std::vector<std::int32_t>{11}, img, VisionGrid{}),
            (V{672 * 449, 0, 0, 0}));
}

// ---------------------------------------------------------------------------------------------
// allocate_exact, by hand
// ---------------------------------------------------------------------------------------------

TEST(ExactBudget, PaperCaseMeetsTheBudget) {
  // 600x600, T = 576, alpha = 0.5: B0 = 288, S = 288, K = 288. Marks: the top-left quadrant
  // (144), 100 of the top-right quadrant, 44 of the bottom-left -> weights 144 : 100 : 44 : 0
  // (aligned tokens, equal areas) -> tiles 144, 100, 44, 0.
  const auto init = marks_where([](std::int64_t r, std::int64_t c) {
    if (r < 12 && c < 12) return true;
    if (r < 12) return r * 12 + (c - 12) < 100;
    if (c < 12) return (r - 12) * 12 + c < 44;
    return false;
  });
  hired::ImageBudget b = hired::allocate_exact(init, layout_of({600, 600}), VisionGrid{}, 576, 0.5);
  EXPECT_EQ(b.partitions, (V{288, 144, 100, 44, 0}));
  EXPECT_EQ(b.requested, 576);
  EXPECT_EQ(b.kept(), 576);
  // T = 577: B0 = 288, S = 289; quotas 144.5, 100.35, 44.15 -> floors 288, the last seat to the
  // largest remainder (0.5, tile 0).
  b = hired::allocate_exact(init, layout_of({600, 600}), VisionGrid{}, 577, 0.5);
  EXPECT_EQ(b.partitions, (V{288, 145, 100, 44, 0}));
  EXPECT_EQ(b.kept(), 577);
}

TEST(ExactBudget, CappedTileSpillsToTheOthersThenToTheFullImage) {
  // 336x700: 1x3 grid, capacities (312, 576, 312), eligible 576 + 1200 = 1776.
  // Canvas 336x1008, resized 336x700, pad_left 154. Marks: left half of the full image
  // (columns 0..11, K = 288). In 1/24 px units column c spans [3696 + 700 c, +700), tile edge at
  // 8064: columns 0..5 lie in tile 0, column 6 = [7896, 8596) splits 168 | 532, columns 7..11
  // lie in tile 1. Per row: tile 0 weighs 6*700 + 168 = 4368, tile 1 532 + 5*700 = 4032, tile 2 0.
  const ImageLayout img = layout_of({336, 700});
  const auto init = marks_where([](std::int64_t, std::int64_t c) { return c < 12; });
  std::vector<std::int32_t> marked;
  for (std::int32_t j = 0; j < N; ++j)
    if (init[j] > 0) marked.push_back(j);
  EXPECT_EQ(hired::tile_content_weights(marked, img, VisionGrid{}),
            (V{24 * 336 * 4368, 24 * 336 * 4032, 0}));

  // T = 1200, alpha = 0.5: B0 = min(600, 576) = 576, S = 624. Quotas 624 * 0.52 = 324.48 >= 312
  // -> tile 0 = 312; 312 left, all to tile 1 (tile 2 weighs 0).
  EXPECT_EQ(hired::allocate_exact(init, img, VisionGrid{}, 1200, 0.5).partitions, (V{576, 312, 312, 0}));
  // T = 1500: S = 924. Tile 0 capped at 312; 612 left -> tile 1 quota 612 >= 576 -> 576;
  // the last 36 meet only tile 2 (weight 0): by capacity -> 36.
  EXPECT_EQ(hired::allocate_exact(init, img, VisionGrid{}, 1500, 0.5).partitions, (V{576, 312, 576, 36}));
  // alpha = 0.25, T = 1700: B0 = 425, S = 1275 > 1200 -> tiles full, 75 left -> the full image
  // takes min(75, 576 - 425) = 75 -> 500. Kept 1700 = T.
  hired::ImageBudget b = hired::allocate_exact(init, img, VisionGrid{}, 1700, 0.25);
  EXPECT_EQ(b.partitions, (V{500, 312, 576, 312}));
  EXPECT_EQ(b.kept(), 1700);
  // T = 1800 > eligible 1776: everything eligible, no more.
  b = hired::allocate_exact(init, img, VisionGrid{}, 1800, 0.5);
  EXPECT_EQ(b.partitions, (V{576, 312, 576, 312}));
  EXPECT_EQ(b.kept(), 1776);
  EXPECT_EQ(b.requested, 1800);
}

TEST(ExactBudget, AlphaZeroGivesEverythingToTheTiles) {
  // 600x600, T = 576, alpha = 0: B0 = 0, S = 576, K = 576 (every token marked) -> equal areas
  // -> 144 per tile.
  const hired::ImageBudget b =
      hired::allocate_exact(std::vector<float>(N, 1.0f), layout_of({600, 600}), VisionGrid{}, 576, 0.0);
  EXPECT_EQ(b.partitions, (V{0, 144, 144, 144, 144}));
}

TEST(ExactBudget, AlphaOneFillsTheFullImageThenTilesByCapacity) {
  // T = 576: B0 = 576, S = 0.
  EXPECT_EQ(hired::allocate_exact(std::vector<float>(N, 1.0f), layout_of({600, 600}), VisionGrid{}, 576, 1.0)
                .partitions,
            (V{576, 0, 0, 0, 0}));
  // 336x700, T = 1000: B0 = 576, S = 424, K = 0 -> no weights -> by capacity (312, 576, 312):
  // quotas 110.24, 203.52, 110.24 -> floors 110, 203, 110 (423); the seat to 0.52 (tile 1).
  const hired::ImageBudget b =
      hired::allocate_exact(std::vector<float>(N, 1.0f), layout_of({336, 700}), VisionGrid{}, 1000, 1.0);
  EXPECT_EQ(b.partitions, (V{576, 110, 204, 110}));
  EXPECT_EQ(b.kept(), 1000);
}

TEST(ExactBudget, SinglePartitionKeepsTheWholeBudget) {
  // P = 1 (LLaVA-1.5): T = 288, alpha = 0.5 -> B0 = 144, S = 144, no tiles -> all back to the
  // full image: 288 (reference mode keeps 144 here).
  const ImageLayout single{1, {}, std::nullopt};
  EXPECT_EQ(hired::allocate_exact(std::vector<float>(N, 1.0f), single, VisionGrid{}, 288, 0.5).partitions,
            (V{288}));
  EXPECT_EQ(hired::allocate_exact(std::vector<float>(N, 1.0f), single, VisionGrid{}, 1000, 0.5).partitions,
            (V{576}));
  EXPECT_EQ(hired::allocate_exact(std::vector<float>(N, 1.0f), single, VisionGrid{}, 5, 0.0).partitions,
            (V{5}));
}

TEST(ExactBudget, ZeroBudgetKeepsNothing) {
  for (double alpha : {0.0, 0.5, 1.0}) {
    const hired::ImageBudget b =
        hired::allocate_exact(std::vector<float>(N, 1.0f), layout_of({600, 400}), VisionGrid{}, 0, alpha);
    EXPECT_EQ(b.partitions, (V{0, 0, 0, 0, 0})) << alpha;
    EXPECT_EQ(b.requested, 0);
  }
}

TEST(ExactBudget, RejectsNegativeBudgetAndBadScores) {
  hired_test::expect_error([] { hired::allocate_exact(std::vector<float>(N, 1.0f), layout_of({600, 600}), VisionGrid{}, -1, 0.5); },
               "budget_tokens");
  hired_test::expect_error([] { hired::allocate_exact(std::vector<float>(N + 1, 1.0f), layout_of({600, 600}), VisionGrid{}, 1, 0.5); },
               "init scores");
  std::vector<float> inf(N, 1.0f);
  inf[5] = std::numeric_limits<float>::infinity();
  hired_test::expect_error([&] { hired::allocate_exact(inf, layout_of({600, 600}), VisionGrid{}, 1, 0.5); }, "token 5");
}

/// Eligible tokens of tile t computed from the unpad box alone.
std::vector<std::int32_t> eligible_by_box(const hired::TokenBox& box, GridShape grid, std::int64_t t,
                                          std::int64_t side) {
  std::vector<std::int32_t> out;
  const std::int64_t r0 = (t / grid.cols) * side, c0 = (t % grid.cols) * side;
  for (std::int64_t r = 0; r < side; ++r)
    for (std::int64_t c = 0; c < side; ++c)
      if (box.contains(r0 + r, c0 + c)) out.push_back(static_cast<std::int32_t>(r * side + c));
  return out;
}

TEST(ExactBudget, RateOneIsTheIdentity) {
  // Every eligible token, no more: the full image's N, each tile's unpadded tokens.
  for (const Size2 size : {Size2{600, 600}, Size2{600, 400}, Size2{336, 700}, Size2{150, 672},
                           Size2{1000, 300}, Size2{17, 2999}}) {
    SCOPED_TRACE(::testing::Message() << size.height << "x" << size.width);
    const ImageLayout img = layout_of(size);
    std::mt19937_64 rng(7);
    std::vector<float> init(static_cast<std::size_t>(img.partitions * N)), fin(init.size());
    for (float& x : init) x = static_cast<float>(rng() % 4);
    for (float& x : fin) x = static_cast<float>(rng() % 4);
    for (double alpha : {0.0, 0.5, 1.0}) {
      hired::DropConfig config;
      config.budget = hired::Budget::rate(1.0);
      config.alpha = alpha;
      const hired::Selection sel = hired::select_tokens(init, fin, {img}, VisionGrid{}, config);
      std::vector<std::int32_t> all(N);
      std::iota(all.begin(), all.end(), 0);
      const auto kept0 = sel.kept_in(0);
      EXPECT_EQ(std::vector<std::int32_t>(kept0.begin(), kept0.end()), all);
      const hired::TokenBox box = hired::tile_token_box(size, img.grid, VisionGrid{});
      for (std::int64_t t = 0; t < img.grid.tiles(); ++t) {
        const auto kept = sel.kept_in(1 + t);
        EXPECT_EQ(std::vector<std::int32_t>(kept.begin(), kept.end()), eligible_by_box(box, img.grid, t, 24))
            << "tile " << t;
      }
      EXPECT_EQ(sel.kept_in_image(0), N + box.rows() * box.cols());
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Properties over random cases
// ---------------------------------------------------------------------------------------------

__extension__ typedef __int128 wide;  // exact cross products, whatever the weights

/// An independent capped Hamilton apportionment: sorts instead of ranking in place, and uses
/// 128-bit cross products.
V apportion_oracle(const V& weight, const V& capacity, std::int64_t seats) {
  const std::size_t n = weight.size();
  V out(n, 0);
  std::vector<std::size_t> active;
  for (std::size_t i = 0; i < n; ++i)
    if (capacity[i] > 0) active.push_back(i);
  while (!active.empty()) {
    std::int64_t cap_sum = 0, w_sum = 0;
    for (std::size_t i : active) cap_sum += capacity[i], w_sum += weight[i];
    if (seats >= cap_sum) {
      for (std::size_t i : active) out[i] = capacity[i];
      return out;
    }
    const auto basis = [&](std::size_t i) { return w_sum > 0 ? weight[i] : capacity[i]; };
    const wide d = w_sum > 0 ? w_sum : cap_sum;
    std::vector<std::size_t> rest;
    for (std::size_t i : active) {
      if (static_cast<wide>(seats) * basis(i) >= static_cast<wide>(capacity[i]) * d) {
        out[i] = capacity[i];
      } else {
        rest.push_back(i);
      }
    }
    if (rest.size() < active.size()) {
      for (std::size_t i : active)
        if (std::find(rest.begin(), rest.end(), i) == rest.end()) seats -= capacity[i];
      active = rest;
      continue;
    }
    std::int64_t given = 0;
    for (std::size_t i : active) {
      out[i] = static_cast<std::int64_t>(static_cast<wide>(seats) * basis(i) / d);
      given += out[i];
    }
    std::vector<std::size_t> order = active;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const wide ra = static_cast<wide>(seats) * basis(a) % d;
      const wide rb = static_cast<wide>(seats) * basis(b) % d;
      return ra != rb ? ra > rb : a < b;
    });
    for (std::int64_t k = 0; k < seats - given; ++k) ++out[order[static_cast<std::size_t>(k)]];
    return out;
  }
  return out;
}

TEST(ApportionProperty, MatchesTheOracleAndItsContract) {
  std::mt19937_64 rng(20250811);
  for (int trial = 0; trial < 20000; ++trial) {
    const auto n = static_cast<std::size_t>(rng() % 10);
    V weight(n), capacity(n);
    const std::uint64_t wmax = std::vector<std::uint64_t>{1, 2, 4, 100, 1000000}[rng() % 5];
    for (std::size_t i = 0; i < n; ++i) {
      weight[i] = rng() % 4 == 0 ? 0 : static_cast<std::int64_t>(rng() % (wmax + 1));
      capacity[i] = rng() % 6 == 0 ? 0 : static_cast<std::int64_t>(rng() % 600);
    }
    const std::int64_t cap_sum = std::accumulate(capacity.begin(), capacity.end(), std::int64_t{0});
    const auto seats = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(cap_sum + 50));
    SCOPED_TRACE(::testing::Message() << "trial " << trial << " seats " << seats);
    const Apportioned a = apportion(weight, capacity, seats);
    const std::int64_t placed = std::accumulate(a.seats.begin(), a.seats.end(), std::int64_t{0});
    ASSERT_EQ(placed, std::min(seats, cap_sum));
    ASSERT_EQ(a.leftover, seats - placed);
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_GE(a.seats[i], 0);
      ASSERT_LE(a.seats[i], capacity[i]);
    }
    ASSERT_EQ(a.seats, apportion_oracle(weight, capacity, seats));
  }
}

/// Larger than v1.6: every grid up to 3x3, plus 1x4 and 4x1.
std::vector<Size2> larger_pinpoints() {
  std::vector<Size2> p;
  for (std::int64_t i = 1; i <= 3; ++i)
    for (std::int64_t j = 1; j <= 3; ++j) p.push_back({336 * i, 336 * j});
  p.push_back({336, 1344});
  p.push_back({1344, 336});
  return p;
}

struct Case {
  std::vector<ImageLayout> images;
  VisionGrid vision;
  hired::DropConfig config;
  std::vector<float> init, fin;
};

Case random_case(std::mt19937_64& rng) {
  static const std::vector<Size2> v16(hired::llava_v16_grid_pinpoints.begin(),
                                      hired::llava_v16_grid_pinpoints.end());
  static const std::vector<Size2> larger = larger_pinpoints();
  Case c;
  // CLIP's 24x24 and smaller grids, which make padding edges and tiny capacities common
  // (and keep the run short).
  const std::int64_t sides[] = {24, 24, 1, 2, 3, 4, 5, 7, 12};
  c.vision = VisionGrid{336, sides[rng() % 9]};
  const std::int64_t n = c.vision.tokens();
  const auto& pins = rng() % 2 ? v16 : larger;
  const std::int64_t batch = 1 + static_cast<std::int64_t>(rng() % 3);
  std::vector<std::int64_t> partitions, sizes;
  for (std::int64_t b = 0; b < batch; ++b) {
    const Size2 size{1 + static_cast<std::int64_t>(rng() % 3000), 1 + static_cast<std::int64_t>(rng() % 3000)};
    sizes.push_back(size.height);
    sizes.push_back(size.width);
    partitions.push_back(rng() % 8 == 0 ? 1 : hired::anyres_grid_shape(size, pins, 336).tiles() + 1);
  }
  hired::BatchDescription d;
  d.num_partitions = partitions;
  d.image_sizes = sizes;
  d.grid_pinpoints = pins;
  c.images = hired::describe_images(d);

  const std::int64_t total_p = hired::total_partitions(c.images);
  const std::int64_t levels = std::vector<std::int64_t>{1, 2, 3, 5, 1 << 20}[rng() % 5];
  c.init.resize(static_cast<std::size_t>(total_p * n));
  c.fin.resize(c.init.size());
  for (float& x : c.init) x = static_cast<float>(rng() % levels) / static_cast<float>(levels);
  for (float& x : c.fin) x = static_cast<float>(rng() % levels) / static_cast<float>(levels);

  switch (rng() % 4) {
    case 0: c.config.alpha = 0.0; break;
    case 1: c.config.alpha = 1.0; break;
    default: c.config.alpha = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  }
  const std::int64_t max_p = std::max_element(c.images.begin(), c.images.end(), [](auto& a, auto& b) {
                               return a.partitions < b.partitions;
                             })->partitions;
  switch (rng() % 4) {
    case 0: c.config.budget = hired::Budget::rate(1.0); break;
    case 1:
      c.config.budget = hired::Budget::rate(1.0 - std::uniform_real_distribution<double>(0.0, 1.0)(rng));
      break;
    default:
      c.config.budget =
          hired::Budget::tokens(static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(max_p * n + 101)));
  }
  return c;
}

/// The first b eligible tokens by (score desc, index asc), returned ascending.
std::vector<std::int32_t> brute_top(const float* scores, std::vector<std::int32_t> eligible, std::int64_t b) {
  if (b <= 0) return {};
  if (b >= static_cast<std::int64_t>(eligible.size())) return eligible;  // every one of them
  std::sort(eligible.begin(), eligible.end(), [&](std::int32_t x, std::int32_t y) {
    return scores[x] > scores[y] || (scores[x] == scores[y] && x < y);
  });
  eligible.resize(static_cast<std::size_t>(std::min<std::int64_t>(b, static_cast<std::int64_t>(eligible.size()))));
  std::sort(eligible.begin(), eligible.end());
  return eligible;
}

TEST(ExactBudgetProperty, RandomBatchesMeetTheContract) {
  std::mt19937_64 rng(0x41524946);
  constexpr int cases = 10000;
  std::int64_t images_seen = 0, padded_seen = 0, capped_seen = 0;
  for (int trial = 0; trial < cases; ++trial) {
    const Case c = random_case(rng);
    const std::int64_t n = c.vision.tokens(), side = c.vision.side;
    SCOPED_TRACE(::testing::Message() << "trial " << trial << " side " << side << " alpha " << c.config.alpha);
    const hired::Selection sel = hired::select_tokens(c.init, c.fin, c.images, c.vision, c.config);
    ASSERT_EQ(sel.images.size(), c.images.size());
    ASSERT_EQ(sel.partition_offsets.size(), c.images.size() + 1);
    ASSERT_EQ(sel.kept_offsets.back(), static_cast<std::int64_t>(sel.kept.size()));

    for (std::size_t b = 0; b < c.images.size(); ++b) {
      const ImageLayout& img = c.images[b];
      const std::int64_t first = sel.partition_offsets[b];
      ASSERT_EQ(sel.partition_offsets[b + 1] - first, img.partitions);
      ++images_seen;

      // Eligible tokens from the unpad box alone.
      std::vector<std::vector<std::int32_t>> eligible(static_cast<std::size_t>(img.partitions));
      eligible[0].resize(static_cast<std::size_t>(n));
      std::iota(eligible[0].begin(), eligible[0].end(), 0);
      std::int64_t eligible_total = n;
      if (img.partitions > 1) {
        const hired::TokenBox box = hired::tile_token_box(*img.image_size, img.grid, c.vision);
        const V caps = hired::tile_capacities(img, c.vision);
        for (std::int64_t t = 0; t < img.grid.tiles(); ++t) {
          eligible[1 + t] = eligible_by_box(box, img.grid, t, side);
          ASSERT_EQ(caps[t], static_cast<std::int64_t>(eligible[1 + t].size()));
        }
        eligible_total += box.rows() * box.cols();
        if (box.rows() * box.cols() < img.grid.tiles() * n) ++padded_seen;
      }

      const std::int64_t requested =
          c.config.budget.is_rate() ? hired::exact_formula::total(img.partitions, n, c.config.budget.rate_value())
                                    : c.config.budget.tokens_value();
      ASSERT_EQ(sel.requested[b], requested);
      ASSERT_EQ(sel.kept_in_image(static_cast<std::int64_t>(b)), std::min(requested, eligible_total));
      if (c.config.budget.is_rate() && c.config.budget.rate_value() == 1.0) {
        ASSERT_EQ(sel.kept_in_image(static_cast<std::int64_t>(b)), eligible_total);
      }

      // allocate_exact agrees with the selection's budgets, and the tiles' share is the oracle's
      // apportionment of S under the capacities.
      const std::span<const float> init_full(c.init.data() + first * n, static_cast<std::size_t>(n));
      const hired::ImageBudget budget = hired::allocate_exact(init_full, img, c.vision, requested, c.config.alpha);
      const hired::BudgetSplit split = hired::exact_formula::split(requested, n, c.config.alpha);
      ASSERT_LE(split.full_image, n);
      ASSERT_GE(split.tiles, 0);
      if (img.partitions > 1) {
        const V caps = hired::tile_capacities(img, c.vision);
        const std::vector<std::int32_t> marked = hired::top_k_ascending(init_full.data(), n, split.marks);
        ASSERT_EQ(static_cast<std::int64_t>(marked.size()), std::min(split.marks, n));
        const V weight = hired::tile_content_weights(marked, img, c.vision);
        // Area is conserved: every marked token's region lies in the canvas, on the tiles.
        const hired::Placement at = hired::anyres_placement(
            *img.image_size, {img.grid.rows * c.vision.tile_px, img.grid.cols * c.vision.tile_px});
        ASSERT_EQ(std::accumulate(weight.begin(), weight.end(), std::int64_t{0}),
                  static_cast<std::int64_t>(marked.size()) * at.resized.height * at.resized.width);
        const V expected = apportion_oracle(weight, caps, split.tiles);
        ASSERT_EQ(V(budget.partitions.begin() + 1, budget.partitions.end()), expected);
        const std::int64_t cap_sum = std::accumulate(caps.begin(), caps.end(), std::int64_t{0});
        if (split.tiles > 0 && split.tiles < cap_sum &&
            std::any_of(expected.begin(), expected.end(), [&, i = std::size_t{0}](std::int64_t e) mutable {
              return caps[i] > 0 && e == caps[i++];
            }))
          ++capped_seen;
      }

      for (std::int64_t i = 0; i < img.partitions; ++i) {
        const std::int64_t p = first + i;
        ASSERT_EQ(sel.budget(p), budget.partitions[static_cast<std::size_t>(i)]) << "partition " << i;
        ASSERT_LE(sel.budget(p), static_cast<std::int64_t>(eligible[i].size())) << "partition " << i;
        const auto kept = sel.kept_in(p);
        const std::vector<std::int32_t> got(kept.begin(), kept.end());
        for (std::size_t k = 1; k < got.size(); ++k) ASSERT_LT(got[k - 1], got[k]) << "partition " << i;
        ASSERT_EQ(got, brute_top(c.fin.data() + p * n, eligible[i], sel.budget(p))) << "partition " << i;
      }
    }

    if (trial % 10 == 0) {  // the same input gives the same output
      const hired::Selection again = hired::select_tokens(c.init, c.fin, c.images, c.vision, c.config);
      ASSERT_EQ(again.kept, sel.kept);
      ASSERT_EQ(again.kept_offsets, sel.kept_offsets);
      ASSERT_EQ(again.requested, sel.requested);
    }
  }
  // The generator really covers what the properties are about.
  EXPECT_GT(images_seen, cases);
  EXPECT_GT(padded_seen, cases / 4);
  EXPECT_GT(capped_seen, 100);
}

// A token budget far beyond P * N keeps every eligible token, without overflowing.
TEST(ExactBudget, HugeTokenBudgetKeepsEverythingEligible) {
  const std::vector<float> scores(N, 1.0f);
  for (const double alpha : {0.0, 0.5, 1.0}) {
    const auto single = hired::allocate_exact(scores, ImageLayout{1, {}, std::nullopt}, VisionGrid{},
                                              std::numeric_limits<std::int64_t>::max(), alpha);
    EXPECT_EQ(single.requested, std::numeric_limits<std::int64_t>::max());
    EXPECT_EQ(single.partitions, (std::vector<std::int64_t>{N}));
    const auto tiled = hired::allocate_exact(scores, layout_of({600, 400}), VisionGrid{},
                                             std::numeric_limits<std::int64_t>::max(), alpha);
    EXPECT_EQ(tiled.partitions, (std::vector<std::int64_t>{N, 384, 384, 384, 384}));
  }
}

}  // namespace

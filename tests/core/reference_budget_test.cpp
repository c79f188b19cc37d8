// Reference mode (docs/DESIGN.md, section 3): the published implementation's budgets, bit for bit.
// Every case is worked by hand; the arithmetic is in the comment above its assertions.
//
// Notation: P partitions, N = 576 tokens each (24 x 24), r the rate, alpha the full-image share.
//   T  = trunc(double(P*N) * r)          B0 = min(trunc(T*alpha), N)
//   S  = min(T - B0, (P-1)*N)            K  = trunc(N*(1-alpha))
//   c_i = marks (top-K of s_init[0]) in flat row-major band i of the 24x24 full-image grid
//   b_i = min(trunc(float32(float32(c_i) / float32(K)) * float32(S)), N)
#include "hired/budget.hpp"
#include "hired/selection.hpp"

#include "support/expect_error.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace {

using hired_test::expect_error;

using hired::GridShape;
using hired::ImageLayout;
using hired::Size2;

constexpr std::int64_t N = 576;
constexpr std::int64_t side = 24;

ImageLayout image_600x600() { return {5, GridShape{2, 2}, Size2{600, 600}}; }

/// s_init of the full image with score 1 on the first counts[i] tokens of flat band i
/// (band = N / bands consecutive flat indices) and 0 elsewhere. With sum(counts) == K the
/// top-K marks are exactly the ones.
std::vector<float> marks_in_bands(const std::vector<std::int64_t>& counts) {
  std::vector<float> s(N, 0.0f);
  const std::int64_t band = N / static_cast<std::int64_t>(counts.size());
  for (std::size_t i = 0; i < counts.size(); ++i)
    for (std::int64_t j = 0; j < counts[i]; ++j) s[i * band + j] = 1.0f;
  return s;
}

/// s_init with score 1 on every token (r, c) of the 24x24 grid for which `on` holds.
std::vector<float> marks_where(const std::function<bool(std::int64_t, std::int64_t)>& on) {
  std::vector<float> s(N, 0.0f);
  for (std::int64_t r = 0; r < side; ++r)
    for (std::int64_t c = 0; c < side; ++c)
      if (on(r, c)) s[r * side + c] = 1.0f;
  return s;
}

std::vector<std::int64_t> budgets(const hired::ImageBudget& b) { return b.partitions; }
using V = std::vector<std::int64_t>;

TEST(ReferenceBudget, PaperCase600x600SplitsTheBudget) {
  // 600x600 -> 2x2 tiles, P = 5.  T = trunc(5*576 * 0.2) = trunc(576.0) = 576
  // B0 = min(trunc(576*0.5), 576) = 288;  S = min(576 - 288, 4*576) = 288
  // K  = trunc(576 * (1 - 0.5)) = 288
  const hired::BudgetSplit s = hired::reference_formula::split(5, N, 0.2, 0.5);
  EXPECT_EQ(s.total, 576);
  EXPECT_EQ(s.full_image, 288);
  EXPECT_EQ(s.tiles, 288);
  EXPECT_EQ(s.marks, 288);
}

TEST(ReferenceBudget, PaperCaseBandCountsGiveTileBudgets) {
  // Marks per band (2x2 grid: 4 bands of 144 flat tokens = 6 rows each): 144, 72, 48, 24 (sum 288)
  //   b_0 = trunc(f32(144/288) * 288) = trunc(0.5 * 288)        = 144
  //   b_1 = trunc(f32( 72/288) * 288) = trunc(0.25 * 288)       = 72
  //   b_2 = trunc(f32( 48/288) * 288) = trunc(0.16666667 * 288) = trunc(48.0000014 -> f32 48) = 48
  //   b_3 = trunc(f32( 24/288) * 288) = trunc(0.083333336 * 288)= 24
  // Full image B0 = 288; kept 288 + 288 = 576 = T.
  const hired::ImageBudget b =
      hired::allocate_reference(marks_in_bands({144, 72, 48, 24}), image_600x600(), N, 0.2, 0.5);
  EXPECT_EQ(b.requested, 576);
  EXPECT_EQ(budgets(b), (V{288, 144, 72, 48, 24}));
  EXPECT_EQ(b.kept(), 576);

  EXPECT_EQ(hired::reference_formula::tile_budget(144, 288, 288, N), 144);
  EXPECT_EQ(hired::reference_formula::tile_budget(72, 288, 288, N), 72);
  EXPECT_EQ(hired::reference_formula::tile_budget(48, 288, 288, N), 48);
  EXPECT_EQ(hired::reference_formula::tile_budget(24, 288, 288, N), 24);
  EXPECT_EQ(hired::reference_formula::tile_budget(0, 288, 288, N), 0);
}

TEST(ReferenceBudget, TotalTruncatesTheDoubleProductLikePythonInt) {
  // 2880 * 0.35 is 1007.9999999999999 in double: the published int() gives T = 1007.
  // Exact mode's floor(x + 1e-9) gives the 1008 that holds on paper.
  EXPECT_EQ(hired::reference_formula::split(5, N, 0.35, 0.5).total, 1007);
  EXPECT_EQ(hired::exact_formula::total(5, N, 0.35), 1008);
  // T = 1007: B0 = trunc(503.5) = 503, S = 1007 - 503 = 504.
  const hired::BudgetSplit s = hired::reference_formula::split(5, N, 0.35, 0.5);
  EXPECT_EQ(s.full_image, 503);
  EXPECT_EQ(s.tiles, 504);
}

TEST(ReferenceBudget, BandsAreFlatRowsNotTheTilesSpatialRegions) {
  // The quirk: band i of a 2x2 grid is flat tokens [144 i, 144 (i+1)), i.e. rows 6i..6i+5 of
  // the 24x24 full-image grid, not tile i's quadrant.
  //
  // (a) Marks on the top 6 rows and the bottom 6 rows (144 + 144 = K = 288).
  //     Reference: bands 0 and 3 hold all marks -> c = (144, 0, 0, 144)
  //       b = (trunc(0.5*288), 0, 0, trunc(0.5*288)) = (144, 0, 0, 144)
  //     Spatially the top rows cover tiles 0 AND 1 (left and right halves), the bottom rows
  //     tiles 2 AND 3: exact mode (600x600, no padding, each full-image token is a 28x28 px
  //     square of the 672x672 canvas, tile edges at 12 tokens) weighs every tile 72 tokens'
  //     area -> (72, 72, 72, 72).
  {
    const auto init = marks_where([](std::int64_t r, std::int64_t) { return r < 6 || r >= 18; });
    EXPECT_EQ(budgets(hired::allocate_reference(init, image_600x600(), N, 0.2, 0.5)),
              (V{288, 144, 0, 0, 144}));
    EXPECT_EQ(budgets(hired::allocate_exact(init, image_600x600(), hired::VisionGrid{}, 576, 0.5)),
              (V{288, 72, 72, 72, 72}));
  }
  // (b) Marks on the left half, columns 0..11 of every row (24 * 12 = 288 = K).
  //     Reference: every band (6 rows) holds 6 * 12 = 72 marks -> b_i = trunc(0.25*288) = 72.
  //     Spatially the left half is tiles 0 and 2 only: exact gives (144, 0, 144, 0).
  {
    const auto init = marks_where([](std::int64_t, std::int64_t c) { return c < 12; });
    EXPECT_EQ(budgets(hired::allocate_reference(init, image_600x600(), N, 0.2, 0.5)),
              (V{288, 72, 72, 72, 72}));
    EXPECT_EQ(budgets(hired::allocate_exact(init, image_600x600(), hired::VisionGrid{}, 576, 0.5)),
              (V{288, 144, 0, 144, 0}));
  }
  // (c) Marks on the top 12 rows: bands 0 and 1 -> tiles 0 and 1 each get 144. Here flat bands
  //     and space happen to agree (rows 0..11 are the top half = tiles 0 and 1).
  {
    const auto init = marks_where([](std::int64_t r, std::int64_t) { return r < 12; });
    EXPECT_EQ(budgets(hired::allocate_reference(init, image_600x600(), N, 0.2, 0.5)),
              (V{288, 144, 144, 0, 0}));
    EXPECT_EQ(budgets(hired::allocate_exact(init, image_600x600(), hired::VisionGrid{}, 576, 0.5)),
              (V{288, 144, 144, 0, 0}));
  }
}

TEST(ReferenceBudget, TileArithmeticIsFloat32NotFloat64) {
  // Found by an offline search over c in [0, 144], S = T - trunc(T/2) for T in [1, 2880]:
  // r = 0.25 -> T = 720, B0 = 360, S = 360, K = 288. Marks per band c = (100, 92, 96, 0).
  //   c = 100: f32(100)/f32(288) = 0.347222208977 (below 100/288 = 0.34722222...),
  //            * 360 = 124.9999952 -> f32 124.99999237 -> b = 124.
  //            In double: 100.0/288.0*360.0 = 125.0 exactly -> 125.
  //   c =  92: f32 ratio 0.319444447756 * 360 = 115.0000012 -> f32 115.0 -> b = 115.
  //            In double: 92.0/288.0*360.0 = 114.99999999999999 -> 114.
  //   c =  96: f32 ratio 0.333333343267 * 360 = 120.0000036 -> f32 120.0 -> b = 120 (both agree).
  // Sum 124 + 115 + 120 = 359 < S = 360: one token is lost, see LostRemainder.
  EXPECT_EQ(hired::reference_formula::tile_budget(100, 288, 360, N), 124);
  EXPECT_EQ(hired::reference_formula::tile_budget(92, 288, 360, N), 115);
  EXPECT_EQ(hired::reference_formula::tile_budget(96, 288, 360, N), 120);
  // The same arithmetic in float64 lands on the other side in both directions:
  volatile double c100 = 100.0, c92 = 92.0, k = 288.0, s = 360.0;
  EXPECT_EQ(static_cast<std::int64_t>(c100 / k * s), 125);
  EXPECT_EQ(static_cast<std::int64_t>(c92 / k * s), 114);

  const hired::ImageBudget b =
      hired::allocate_reference(marks_in_bands({100, 92, 96, 0}), image_600x600(), N, 0.25, 0.5);
  EXPECT_EQ(b.requested, 720);
  EXPECT_EQ(budgets(b), (V{360, 124, 115, 120, 0}));
}

TEST(ReferenceBudget, TileBudgetIsClampedAtN) {
  // r = 0.8 -> T = trunc(2304.0) = 2304; B0 = min(trunc(1152), 576) = 576;
  // S = min(2304 - 576, 2304) = 1728; K = 288. Marks c = (144, 96, 48, 0):
  //   b_0 = trunc(0.5 * 1728) = 864 -> min(864, 576) = 576   (clamped)
  //   b_1 = trunc(f32(1/3) * 1728) = trunc(576.0000172 -> f32 576.0) = 576
  //   b_2 = trunc(f32(1/6) * 1728) = 288
  // Kept 576 + 576 + 576 + 288 = 2016 < T = 2304: the clamp loses 288 tokens.
  const hired::ImageBudget b =
      hired::allocate_reference(marks_in_bands({144, 96, 48, 0}), image_600x600(), N, 0.8, 0.5);
  EXPECT_EQ(b.requested, 2304);
  EXPECT_EQ(budgets(b), (V{576, 576, 576, 288, 0}));
  EXPECT_EQ(b.kept(), 2016);
  EXPECT_EQ(hired::reference_formula::tile_budget(144, 288, 1728, N), 576);
  EXPECT_EQ(hired::reference_formula::tile_budget(144, 288, 1728, 10000), 864);  // unclamped
}

TEST(ReferenceBudget, RemainderOfTheTilesShareIsLost) {
  // r = 580/2880 -> T = 580 (2880 * r is 580.0 in double); B0 = trunc(290.0) = 290; S = 290.
  // Marks c = (96, 96, 96, 0): b_i = trunc(f32(1/3) * 290) = trunc(96.6666718) = 96.
  // Tiles get 3 * 96 = 288 < S = 290: two tokens are never given out. Kept 578 < T.
  const double r = 580.0 / 2880.0;
  const hired::ImageBudget b =
      hired::allocate_reference(marks_in_bands({96, 96, 96, 0}), image_600x600(), N, r, 0.5);
  EXPECT_EQ(b.requested, 580);
  EXPECT_EQ(budgets(b), (V{290, 96, 96, 96, 0}));
  EXPECT_EQ(b.kept(), 578);
  EXPECT_LT(b.kept(), b.requested);
}

TEST(ReferenceBudget, SinglePartitionKeepsOnlyTheFullImageShare) {
  // P = 1 (LLaVA-1.5): T = trunc(576 * 0.5) = 288, B0 = min(trunc(144.0), 576) = 144,
  // S = min(288 - 144, 0 * 576) = 0: the tiles' share has nowhere to go and is not re-routed.
  const hired::BudgetSplit s = hired::reference_formula::split(1, N, 0.5, 0.5);
  EXPECT_EQ(s.total, 288);
  EXPECT_EQ(s.full_image, 144);
  EXPECT_EQ(s.tiles, 0);
  const ImageLayout single{1, GridShape{}, std::nullopt};
  const hired::ImageBudget b = hired::allocate_reference(std::vector<float>(N, 1.0f), single, N, 0.5, 0.5);
  EXPECT_EQ(budgets(b), (V{144}));
  EXPECT_EQ(b.requested, 288);
}

TEST(ReferenceBudget, RateOneKeepsEverythingAsThePublishedPipelineDoes) {
  // The published pipeline runs its selection only when the rate is below 1.0. Its formula
  // would give, at r = 1 on uniform attention: T = 2880, B0 = min(1440, 576) = 576,
  // S = min(2304, 2304) = 2304, K = 288; top-K breaks ties by lower index, so the marks are
  // flat tokens 0..287 = bands 0 and 1: c = (144, 144, 0, 0), b_0 = b_1 = 576, b_2 = b_3 = 0,
  // 1728 of 2880 kept. It never computes that: at 1.0 every partition keeps its N tokens.
  const hired::BudgetSplit s = hired::reference_formula::split(5, N, 1.0, 0.5);
  EXPECT_EQ(s.total, 2880);
  EXPECT_EQ(s.tiles, 2304);
  const std::vector<float> uniform(N, 0.25f);
  const hired::ImageBudget b = hired::allocate_reference(uniform, image_600x600(), N, 1.0, 0.5);
  EXPECT_EQ(b.requested, 2880);
  EXPECT_EQ(budgets(b), (V{576, 576, 576, 576, 576}));
  EXPECT_EQ(b.kept(), 2880);

  // Through select_tokens: every token of every partition, in order.
  hired::DropConfig config;
  config.mode = hired::Mode::reference;
  config.budget = hired::Budget::rate(1.0);
  const std::vector<float> scores(5 * N, 0.25f);
  const hired::Selection sel =
      hired::select_tokens(scores, scores, {image_600x600()}, hired::VisionGrid{}, config);
  EXPECT_EQ(sel.kept_in_image(0), 5 * N);
  for (std::int64_t p = 0; p < 5; ++p) EXPECT_EQ(sel.budget(p), N);
  EXPECT_EQ(sel.kept.size(), std::size_t{5 * N});
  for (std::size_t i = 0; i < sel.kept.size(); ++i) EXPECT_EQ(sel.kept[i], static_cast<std::int32_t>(i % N));
}

TEST(ReferenceBudget, RateOneNeedsNoMarksAndNoEqualBands) {
  // At 1.0 the band split never runs, so alpha = 1 (K = 0) and a grid whose bands are uneven
  // (the errors of the formula below 1.0) keep everything as well.
  EXPECT_EQ(budgets(hired::allocate_reference(std::vector<float>(N, 1.0f), image_600x600(), N, 1.0, 1.0)),
            (V{576, 576, 576, 576, 576}));
  const ImageLayout five{6, GridShape{1, 5}, std::nullopt};  // 576 is not a multiple of 5
  EXPECT_EQ(budgets(hired::allocate_reference(std::vector<float>(N, 1.0f), five, N, 1.0, 0.5)),
            (V{576, 576, 576, 576, 576, 576}));
  const ImageLayout single{1, GridShape{}, std::nullopt};
  EXPECT_EQ(budgets(hired::allocate_reference(std::vector<float>(N, 1.0f), single, N, 1.0, 0.5)), (V{576}));
}

TEST(ReferenceBudget, NoMarksWithTilesToFillIsAnError) {
  // alpha = 1: K = trunc(576 * 0) = 0. With r = 0.5: T = 1440, B0 = min(1440, 576) = 576,
  // S = 864 > 0 -> the published code would divide 0 marks by 0: rejected, naming alpha.
  expect_error([] { hired::allocate_reference(std::vector<float>(N, 1.0f), image_600x600(), N, 0.5, 1.0); },
               "alpha");
  // alpha = 0.999: K = trunc(576 * 0.001) = trunc(0.576) = 0, B0 = min(1438, 576) = 576, S = 864.
  EXPECT_EQ(hired::reference_formula::split(5, N, 0.5, 0.999).marks, 0);
  expect_error([] { hired::allocate_reference(std::vector<float>(N, 1.0f), image_600x600(), N, 0.5, 0.999); },
               "alpha");
  // alpha = 1 but S = 0 (r = 0.2: T = 576 = B0): nothing to divide, no error.
  EXPECT_EQ(budgets(hired::allocate_reference(std::vector<float>(N, 1.0f), image_600x600(), N, 0.2, 1.0)),
            (V{576, 0, 0, 0, 0}));
}

TEST(ReferenceBudget, TokensThatDoNotSplitIntoEqualBandsAreAnError) {
  // A 1x5 grid: 576 % 5 = 1, no equal bands. (P = 6, r = 0.2: T = 691, B0 = 345, S = 346 > 0.)
  const ImageLayout five{6, GridShape{1, 5}, Size2{336, 1680}};
  expect_error([&] { hired::allocate_reference(std::vector<float>(N, 1.0f), five, N, 0.2, 0.5); },
               "bands");
  // With S = 0 no band is ever formed: r = 1e-4 -> T = trunc(0.3456) = 0.
  EXPECT_EQ(budgets(hired::allocate_reference(std::vector<float>(N, 1.0f), five, N, 1e-4, 0.5)),
            (V{0, 0, 0, 0, 0, 0}));
  // A 3x3 grid divides: bands of 64 flat tokens. P = 10, r = 0.1 -> T = trunc(576.0) = 576,
  // B0 = 288, S = 288, K = 288; uniform s_init marks flat 0..287 = bands 0..3 (64 each) and
  // 32 of band 4: b = trunc(f32(64/288) * 288) = 64 (x4), trunc(f32(32/288) * 288) = 32.
  const ImageLayout nine{10, GridShape{3, 3}, Size2{1008, 1008}};
  EXPECT_EQ(budgets(hired::allocate_reference(std::vector<float>(N, 1.0f), nine, N, 0.1, 0.5)),
            (V{288, 64, 64, 64, 64, 32, 0, 0, 0, 0}));
}

TEST(ReferenceBudget, RejectsBadInitScores) {
  expect_error([] { hired::allocate_reference(std::vector<float>(N - 1, 1.0f), image_600x600(), N, 0.2, 0.5); },
               "init scores");
  std::vector<float> nan(N, 1.0f);
  nan[17] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { hired::allocate_reference(nan, image_600x600(), N, 0.2, 0.5); }, "token 17");
  std::vector<float> negative(N, 1.0f);
  negative[3] = -1.0f;
  expect_error([&] { hired::allocate_reference(negative, image_600x600(), N, 0.2, 0.5); }, "token 3");
}

TEST(ReferenceBudget, MarksAreTheTopKWithLowerIndexWinningTies) {
  // K = 288 marks; the scores have only two levels on purpose: 200 tokens at 2.0 (flat
  // 376..575), everything else 1.0. The top 288 are those 200 plus the 88 lowest-indexed
  // 1.0 tokens (flat 0..87). Bands of 144: flat 376..431 are band 2 (56), 432..575 band 3 (144).
  //   c = (88, 0, 56, 144)
  //   b_0 = trunc(f32(88/288) * 288): f32 ratio 0.305555552 * 288 = 87.9999990 -> f32 88.0 -> 88
  //   b_2 = trunc(f32(56/288) * 288): f32 ratio 0.194444448 * 288 = 56.0000010 -> f32 56.0 -> 56
  //   b_3 = trunc(0.5 * 288) = 144
  // Were ties broken toward higher indices, the 88 would come from band 2 (flat 288..375).
  std::vector<float> init(N, 1.0f);
  for (std::int64_t j = 376; j < 576; ++j) init[j] = 2.0f;
  const hired::ImageBudget b = hired::allocate_reference(init, image_600x600(), N, 0.2, 0.5);
  EXPECT_EQ(budgets(b), (V{288, 88, 0, 56, 144}));
}

}  // namespace

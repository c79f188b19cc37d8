// exact_image_count: an image's kept tokens and packed rows from its size alone, which a
// serving engine needs before any score exists. Hand-worked cases, then the property that
// matters: on random images, budgets and scores, select_tokens + pack_plan produce exactly the
// counted tokens and rows.
#include "hired/selection.hpp"
#include "hired/token_count.hpp"

#include "support/expect_error.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace {

using hired::DropConfig;
using hired::ImageLayout;
using hired::NewlinePolicy;
using hired::Size2;
using hired_test::expect_error;

const hired::VisionGrid kClip{336, 24};  // 576 tokens per partition

ImageLayout layout_of(Size2 image) {
  const hired::GridShape grid = hired::anyres_grid_shape(image, hired::llava_v16_grid_pinpoints, 336);
  return {grid.tiles() + 1, grid, image};
}

DropConfig config(double rate, NewlinePolicy newline = NewlinePolicy::every_row) {
  DropConfig c;
  c.budget = hired::Budget::rate(rate);
  c.newline = newline;
  return c;
}

TEST(ExactImageCount, SixHundredSquareIsStockAtRateOne) {
  // 2 x 2 tiles, nothing padded: 5 * 576 tokens, a newline after each of the 48 grid rows.
  const auto count = hired::exact_image_count(layout_of({600, 600}), kClip, config(1.0));
  EXPECT_EQ(count.requested, 2880);
  EXPECT_EQ(count.eligible, 2880);
  EXPECT_EQ(count.kept, 2880);
  EXPECT_EQ(count.rows, 2928);
}

TEST(ExactImageCount, TwentyPercentKeepsItsBudgetAndEveryNewline) {
  const auto every_row = hired::exact_image_count(layout_of({600, 600}), kClip, config(0.2));
  EXPECT_EQ(every_row.kept, 576);
  EXPECT_EQ(every_row.rows, 576 + 48);
  const auto none =
      hired::exact_image_count(layout_of({600, 600}), kClip, config(0.2, NewlinePolicy::none));
  EXPECT_EQ(none.rows, 576);
}

TEST(ExactImageCount, PaddingIsNotEligible) {
  // 150 x 380 (h, w) picks (336, 672): one row of two tiles, a 24 x 48 token grid. Unpad keeps
  // int(round(150 * 48 / 380, 7)) = 18 rows (pad (24 - 18) / 2 = 3 above and below).
  const ImageLayout wide = layout_of({150, 380});
  ASSERT_EQ(wide.grid, (hired::GridShape{1, 2}));
  const auto count = hired::exact_image_count(wide, kClip, config(1.0));
  EXPECT_EQ(count.requested, 3 * 576);
  EXPECT_EQ(count.eligible, 576 + 18 * 48);
  EXPECT_EQ(count.kept, count.eligible);   // T = 1728 > eligible: everything eligible is kept
  EXPECT_EQ(count.rows, count.kept + 18);  // one newline per unpadded row
}

TEST(ExactImageCount, OnePartitionGetsOneNewline) {
  const ImageLayout single{1, {}, std::nullopt};  // LLaVA-1.5: no tiles, size not needed
  EXPECT_EQ(hired::exact_image_count(single, kClip, config(1.0)).rows, 577);
  EXPECT_EQ(hired::exact_image_count(single, kClip, config(0.5, NewlinePolicy::none)).rows, 288);
}

TEST(ExactImageCount, TokenBudgetsAreCappedByWhatIsEligible) {
  DropConfig c;
  c.budget = hired::Budget::tokens(100000);
  EXPECT_EQ(hired::exact_image_count(layout_of({600, 600}), kClip, c).kept, 2880);
  c.budget = hired::Budget::tokens(0);
  EXPECT_EQ(hired::exact_image_count(layout_of({600, 600}), kClip, c).rows, 48);
}

TEST(ExactImageCount, DataDependentCountsAreRefusedByName) {
  DropConfig reference = config(0.2);
  reference.mode = hired::Mode::reference;
  expect_error([&] { (void)hired::exact_image_count(layout_of({600, 600}), kClip, reference); },
               {"mode", "reference"});
  expect_error([&] {
    (void)hired::exact_image_count(layout_of({600, 600}), kClip, config(0.2, NewlinePolicy::kept_rows));
  }, {"newline", "kept_rows"});
  const ImageLayout unsized{5, {2, 2}, std::nullopt};
  expect_error([&] { (void)hired::exact_image_count(unsized, kClip, config(0.2)); }, "image_sizes");
  DropConfig bad = config(0.2);
  bad.alpha = 2.0;
  expect_error([&] { (void)hired::exact_image_count(layout_of({600, 600}), kClip, bad); }, "alpha");
}

TEST(ExactImageCount, EqualsWhatTheSelectionPacksOnRandomImages) {
  std::mt19937 rng(20261201);
  std::uniform_int_distribution<std::int64_t> side(1, 2000);
  std::uniform_real_distribution<float> score(0.0f, 1.0f);
  const double rates[] = {0.05, 0.1, 0.2, 0.4, 0.77, 1.0};
  for (int trial = 0; trial < 300; ++trial) {
    const ImageLayout image = layout_of({side(rng), side(rng)});
    DropConfig c = config(rates[trial % 6], trial % 2 ? NewlinePolicy::none : NewlinePolicy::every_row);
    c.alpha = (trial % 5) / 4.0;
    if (trial % 7 == 0) c.budget = hired::Budget::tokens(trial * 11);
    const std::size_t n = static_cast<std::size_t>(image.partitions * kClip.tokens());
    std::vector<float> init(n), final(n);
    for (std::size_t i = 0; i < n; ++i) init[i] = score(rng), final[i] = score(rng);
    const hired::Selection s = hired::select_tokens(init, final, {image}, kClip, c);
    const hired::PackPlan plan = hired::pack_plan(s, c.newline);
    const auto count = hired::exact_image_count(image, kClip, c);
    ASSERT_EQ(s.kept_in_image(0), count.kept) << "trial " << trial;
    ASSERT_EQ(static_cast<std::int64_t>(plan.rows.size()), count.rows) << "trial " << trial;
    ASSERT_EQ(s.requested[0], count.requested) << "trial " << trial;
  }
}

}  // namespace

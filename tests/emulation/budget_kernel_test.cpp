// BlockBudget (hired/kernels/budget.cuh), run over a batch of images by budget_kernel
// (standalone_kernels.cuh) on the host emulator and compared with the core,
// hired::allocate_exact / hired::allocate_reference (hired/budget.hpp), budget for budget:
// random image sizes tiled by LLaVA-v1.6's pinpoints and by a larger set (up to 6 x 6 tiles),
// P = 1, token grids from 2 x 2 to 24 x 24, heavily tied scores, budgets 0 .. beyond P * N,
// alpha 0 and 1, several images per launch with gaps between them, both schedules, strict
// mode. Images the core rejects must be flagged by the kernel (and by budget_image_status).
//
// Cost: the emulator hands the baton over once per thread at every barrier or warp collective
// (~5-10 us each), so the kernel runs with 32- and 64-thread blocks here.
#include "hired/emulator/cuda.hpp"  // first: the CUDA dialect on the host
#include "standalone_kernels.cuh"
#include "hired/kernels/plan.hpp"  // make_budget_image: the dispatcher's host side
#include "hired/budget.hpp"
#include "hired/geometry.hpp"
#include "hired/layout.hpp"

#include "support/emulation_schedule.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace hired::kernels {
namespace {

using namespace standalone;
using emu::Options;

const auto mode_for = hired_test::alternating_schedule;

constexpr std::int32_t kUnwritten = 0x5a5a5a5a;

// What the random cases covered, so that they cannot pass vacuously.
struct Coverage {
  int computed = 0;      // images the kernel computed and the core accepted
  int tiles_shared = 0;  // ... of which the tiles shared S > 0 (marks, bands or weights used)
  int flagged = 0;       // images both rejected
};
Coverage coverage;

std::vector<Size2> large_pinpoints() {
  std::vector<Size2> out;
  for (std::int64_t i = 1; i <= 6; ++i)
    for (std::int64_t j = 1; j <= 6; ++j) out.push_back({336 * i, 336 * j});
  return out;
}

// Scores with many ties: a few levels, all equal, or spread with repeats.
void fill_scores(std::mt19937& rng, float* row, std::int64_t n) {
  const int kind = std::uniform_int_distribution<int>(0, 4)(rng);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  if (kind == 0) {
    std::fill(row, row + n, 0.25f);
  } else if (kind == 1) {
    const int levels = std::uniform_int_distribution<int>(2, 4)(rng);
    for (std::int64_t j = 0; j < n; ++j)
      row[j] = 0.125f * static_cast<float>(std::uniform_int_distribution<int>(0, levels - 1)(rng));
  } else if (kind == 2) {
    for (std::int64_t j = 0; j < n; ++j) row[j] = uniform(rng) < 0.5f ? 0.0f : uniform(rng);
  } else if (kind == 3) {
    for (std::int64_t j = 0; j < n; ++j) row[j] = j % 7 == 0 ? -0.0f : uniform(rng);
  } else {
    for (std::int64_t j = 0; j < n; ++j) row[j] = uniform(rng);
  }
}

struct ImageCase {
  ImageLayout layout;
  std::int64_t total = 0;  // exact mode
};

struct BatchCase {
  BudgetMode mode = BudgetMode::exact;
  VisionGrid vision;
  double rate = 0.2, alpha = 0.5;
  std::vector<ImageCase> images;
};

// Runs budget_kernel on a batch (images separated by random gaps of unused rows) and compares
// every image with the core; rejected images must be flagged with -1 budgets.
template <int Threads, int MaxTiles = kBudgetMaxTiles>
void check_batch(std::mt19937& rng, const BatchCase& c, const Options& options,
                 const std::string& label) {
  const std::int64_t tokens = c.vision.tokens();
  const std::int64_t stride = tokens + std::uniform_int_distribution<std::int64_t>(0, 3)(rng);
  std::vector<BudgetImage> images;
  std::int64_t rows = std::uniform_int_distribution<std::int64_t>(0, 2)(rng);
  for (const ImageCase& image : c.images) {
    images.push_back(make_budget_image(image.layout, c.vision, rows, image.total));
    rows += image.layout.partitions + std::uniform_int_distribution<std::int64_t>(0, 2)(rng);
  }
  // Only the full-image rows are meaningful; the kernel must read nothing else.
  std::vector<float> scores(static_cast<std::size_t>(rows * stride),
                            std::numeric_limits<float>::quiet_NaN());
  for (const BudgetImage& image : images) fill_scores(rng, scores.data() + image.offset * stride, tokens);
  std::vector<std::int32_t> budgets(static_cast<std::size_t>(rows), kUnwritten);
  unsigned invalid = 0;
  const BudgetParams params{.init_scores = scores.data(),
                            .score_stride = stride,
                            .images = images.data(),
                            .image_count = static_cast<std::int32_t>(images.size()),
                            .rule = {.tokens = static_cast<std::int32_t>(tokens),
                                     .side = static_cast<std::int32_t>(c.vision.side),
                                     .tile_px = static_cast<std::int32_t>(c.vision.tile_px),
                                     .mode = c.mode,
                                     .rate = c.rate,
                                     .alpha = c.alpha},
                            .budgets = budgets.data(),
                            .status = &invalid};
  ASSERT_TRUE(budget_supports<kSelectMaxTokens>(params)) << label;
  emu::launch_with(options, budget_kernel<Threads, kSelectMaxTokens, MaxTiles>,
                   budget_grid(params), dim3(Threads), params);

  unsigned expected_invalid = 0;
  std::vector<bool> owned(budgets.size(), false);
  for (std::size_t b = 0; b < images.size(); ++b) {
    const ImageCase& image = c.images[b];
    const BudgetImage& device = images[b];
    const std::string where = label + " image " + std::to_string(b) + " P " +
                              std::to_string(image.layout.partitions) + " N " +
                              std::to_string(tokens) + " T " + std::to_string(image.total);
    const std::span<const float> full(scores.data() + device.offset * stride,
                                      static_cast<std::size_t>(tokens));
    std::optional<ImageBudget> want;
    try {
      want = c.mode == BudgetMode::exact
                 ? allocate_exact(full, image.layout, c.vision, image.total, c.alpha)
                 : allocate_reference(full, image.layout, tokens, c.rate, c.alpha);
    } catch (const Error&) {
    }
    const unsigned status = budget_image_status<kSelectMaxTokens, MaxTiles>(params.rule, device);
    const auto begin = budgets.begin() + device.offset;
    const std::vector<std::int32_t> got(begin, begin + device.partitions);
    for (std::int64_t i = 0; i < device.partitions; ++i) owned[device.offset + i] = true;
    if (status != 0) {
      expected_invalid |= status;
      ++coverage.flagged;
      ASSERT_EQ(got, std::vector<std::int32_t>(got.size(), -1)) << where;
      continue;
    }
    ASSERT_TRUE(want.has_value()) << where << ": the core rejects an image the kernel computes";
    const std::vector<std::int32_t> expected(want->partitions.begin(), want->partitions.end());
    ASSERT_EQ(got, expected) << where << " alpha " << c.alpha << " rate " << c.rate;
    ++coverage.computed;
    if (std::any_of(expected.begin() + 1, expected.end(), [](std::int32_t v) { return v > 0; }))
      ++coverage.tiles_shared;
  }
  EXPECT_EQ(invalid, expected_invalid) << label;
  for (std::size_t i = 0; i < budgets.size(); ++i)
    if (!owned[i]) {
      ASSERT_EQ(budgets[i], kUnwritten) << label << " gap row " << i;
    }
}

// A random image: P = 1 (with or without a size) or a size tiled by the pinpoints.
ImageLayout random_layout(std::mt19937& rng, std::span<const Size2> pinpoints,
                          const VisionGrid& vision) {
  ImageLayout layout;
  const int shape = std::uniform_int_distribution<int>(0, 9)(rng);
  std::uniform_int_distribution<std::int64_t> side(1, 2400);
  Size2 size{side(rng), side(rng)};
  if (shape == 1) size.height = std::uniform_int_distribution<std::int64_t>(1, 40)(rng);  // thin
  if (shape == 2) size.width = std::uniform_int_distribution<std::int64_t>(1, 40)(rng);
  if (shape == 3) size.width = size.height;  // square
  if (shape == 0) {
    if (std::uniform_int_distribution<int>(0, 1)(rng) == 0) layout.image_size = size;
    return layout;  // P = 1
  }
  layout.image_size = size;
  layout.grid = anyres_grid_shape(size, pinpoints, vision.tile_px);
  layout.partitions = layout.grid.tiles() + 1;
  return layout;
}

std::int64_t random_total(std::mt19937& rng, std::int64_t partitions, std::int64_t tokens) {
  const std::int64_t all = partitions * tokens;
  switch (std::uniform_int_distribution<int>(0, 5)(rng)) {
    case 0: return 0;
    case 1: return all;
    case 2: return all + std::uniform_int_distribution<std::int64_t>(1, 1000)(rng);
    case 3: {
      const double rate = std::uniform_int_distribution<int>(1, 20)(rng) / 20.0;
      return exact_formula::total(partitions, tokens, rate);
    }
    default: return std::uniform_int_distribution<std::int64_t>(0, all)(rng);
  }
}

double random_alpha(std::mt19937& rng) {
  switch (std::uniform_int_distribution<int>(0, 5)(rng)) {
    case 0: return 0.0;
    case 1: return 1.0;
    case 2: return 0.5;
    case 3: return std::uniform_int_distribution<int>(0, 10)(rng) / 10.0;
    default: return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  }
}

double random_rate(std::mt19937& rng) {
  switch (std::uniform_int_distribution<int>(0, 4)(rng)) {
    case 0: return 1.0;
    case 1: return 0.2;
    case 2: return std::uniform_int_distribution<int>(1, 20)(rng) / 20.0;
    case 3: return std::uniform_real_distribution<double>(1e-4, 0.05)(rng);
    default: return std::uniform_real_distribution<double>(1e-3, 1.0)(rng);
  }
}

VisionGrid random_vision(std::mt19937& rng, BudgetMode mode) {
  // Mostly small token grids (the emulator's cost grows with N), sometimes LLaVA's 24 x 24.
  // Reference mode needs N to split into P - 1 equal bands: mostly N with many divisors.
  constexpr std::int64_t exact_sides[] = {2, 3, 4, 5, 6, 6, 8, 12, 12, 24};
  constexpr std::int64_t reference_sides[] = {2, 4, 5, 6, 6, 12, 12, 12, 24, 24};
  const int pick = std::uniform_int_distribution<int>(0, 9)(rng);
  return {336, mode == BudgetMode::exact ? exact_sides[pick] : reference_sides[pick]};
}

// `images` random images in batches of 1..6 per launch.
template <int Threads>
void random_batches(unsigned seed, BudgetMode mode, int images) {
  std::mt19937 rng(seed);
  const std::vector<Size2> large = large_pinpoints();
  coverage = {};
  int done = 0;
  for (int launch = 0; done < images; ++launch) {
    BatchCase c;
    c.mode = mode;
    c.vision = random_vision(rng, mode);
    c.rate = random_rate(rng);
    c.alpha = random_alpha(rng);
    // alpha = 1 gives K = 0, which reference mode rejects whenever the tiles get a share.
    if (mode == BudgetMode::reference && c.alpha == 1.0 && launch % 4 != 0) c.alpha = 0.75;
    const bool big = std::uniform_int_distribution<int>(0, 2)(rng) == 0;
    const std::span<const Size2> pinpoints =
        big ? std::span<const Size2>(large) : std::span<const Size2>(llava_v16_grid_pinpoints);
    const int count = std::uniform_int_distribution<int>(1, 6)(rng);
    for (int i = 0; i < count; ++i) {
      ImageCase image;
      image.layout = random_layout(rng, pinpoints, c.vision);
      image.total = random_total(rng, image.layout.partitions, c.vision.tokens());
      c.images.push_back(image);
    }
    done += count;
    check_batch<Threads>(rng, c, mode_for(launch), "launch " + std::to_string(launch));
    if (testing::Test::HasFatalFailure()) return;
  }
  std::printf("  %d images: %d computed (%d with tile budgets), %d rejected\n", done,
              coverage.computed, coverage.tiles_shared, coverage.flagged);
  EXPECT_GE(coverage.computed, mode == BudgetMode::exact ? done : done * 2 / 3);
  EXPECT_GE(coverage.tiles_shared, done * 2 / 5);
  EXPECT_GE(coverage.flagged, mode == BudgetMode::exact ? 0 : done / 50);
}

TEST(BudgetKernel, ExactMatchesCore32Threads) { random_batches<32>(41, BudgetMode::exact, 700); }
TEST(BudgetKernel, ExactMatchesCore64Threads) { random_batches<64>(42, BudgetMode::exact, 400); }
TEST(BudgetKernel, ReferenceMatchesCore32Threads) {
  random_batches<32>(43, BudgetMode::reference, 900);
}
TEST(BudgetKernel, ReferenceMatchesCore64Threads) {
  random_batches<64>(44, BudgetMode::reference, 600);
}

// LLaVA-Next's N = 576: a heterogeneous batch in one launch per mode — P = 1, 3, 4, 5 (v1.6
// pinpoints) and up to 37 (6 x 6 tiles), budgets 0 .. beyond P * N.
TEST(BudgetKernel, HeterogeneousLlavaBatch) {
  std::mt19937 rng(45);
  const std::vector<Size2> large = large_pinpoints();
  const VisionGrid vision{336, 24};
  const std::vector<Size2> sizes{{480, 640}, {1000, 300}, {300, 1000}, {700, 700},
                                 {2000, 2000}, {2016, 1300}, {100, 2000}, {1, 1}};
  for (int round = 0; round < 4; ++round) {
    BatchCase c;
    c.mode = round % 2 == 0 ? BudgetMode::exact : BudgetMode::reference;
    c.vision = vision;
    c.rate = round < 2 ? 0.2 : 0.5;
    c.alpha = round < 2 ? 0.5 : 0.3;
    c.images.push_back({ImageLayout{}, 100});  // P = 1, no size
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const std::span<const Size2> pinpoints =
          i % 2 == 0 ? std::span<const Size2>(llava_v16_grid_pinpoints)
                     : std::span<const Size2>(large);
      ImageLayout layout;
      layout.image_size = sizes[i];
      layout.grid = anyres_grid_shape(sizes[i], pinpoints, vision.tile_px);
      layout.partitions = layout.grid.tiles() + 1;
      c.images.push_back({layout, random_total(rng, layout.partitions, 576)});
    }
    check_batch<64>(rng, c, mode_for(round), "round " + std::to_string(round));
    if (HasFatalFailure()) return;
  }
}

// More tiles than the instantiation holds: that image is flagged and gets -1 budgets, its
// neighbours are still computed.
TEST(BudgetKernel, TooManyTilesIsFlagged) {
  std::mt19937 rng(46);
  BatchCase c;
  c.vision = {336, 4};
  ImageLayout small{.partitions = 3, .grid = {1, 2}, .image_size = Size2{300, 600}};
  ImageLayout large{.partitions = 7, .grid = {2, 3}, .image_size = Size2{600, 900}};
  c.images = {{small, 20}, {large, 50}, {small, 7}};
  for (int i = 0; i < 2; ++i) {
    c.mode = i == 0 ? BudgetMode::exact : BudgetMode::reference;
    check_batch<32, 4>(rng, c, mode_for(i), "mode " + std::to_string(i));
  }
  const BudgetRule rule{.tokens = 16, .side = 4, .tile_px = 336};
  const BudgetImage too_large = make_budget_image(large, c.vision, 0, 5);
  EXPECT_EQ((budget_image_status<kSelectMaxTokens, 4>(rule, too_large)), status::too_many_tiles);
}

// Reference mode's division-by-zero cases are rejected, as the core rejects them.
TEST(BudgetKernel, ReferenceErrorCasesAreFlagged) {
  BudgetRule rule{.tokens = 36, .side = 6, .tile_px = 336, .mode = BudgetMode::reference,
                  .rate = 0.5, .alpha = 1.0};
  const ImageLayout three{.partitions = 3, .grid = {1, 2}, .image_size = Size2{300, 600}};
  const ImageLayout five{.partitions = 6, .grid = {1, 5}, .image_size = Size2{100, 600}};
  // alpha = 1: K = 0 while S = T - N > 0.
  EXPECT_EQ(budget_image_status(rule, make_budget_image(three, {336, 6}, 0, 0)),
            status::no_marks);
  rule.alpha = 0.5;
  EXPECT_EQ(budget_image_status(rule, make_budget_image(three, {336, 6}, 0, 0)), 0u);
  EXPECT_EQ(budget_image_status(rule, make_budget_image(five, {336, 6}, 0, 0)),
            status::uneven_bands);
  rule.rate = 0.0;
  EXPECT_EQ(budget_image_status(rule, make_budget_image(three, {336, 6}, 0, 0)),
            status::bad_params);
  // ... and end to end, next to a good image.
  std::mt19937 rng(47);
  BatchCase c;
  c.mode = BudgetMode::reference;
  c.vision = {336, 6};
  c.rate = 0.5;
  c.alpha = 0.5;
  c.images = {{three, 0}, {five, 0}, {ImageLayout{}, 0}};
  check_batch<32>(rng, c, mode_for(0), "uneven");
  c.alpha = 1.0;
  check_batch<32>(rng, c, mode_for(1), "no marks");
}

}  // namespace
}  // namespace hired::kernels

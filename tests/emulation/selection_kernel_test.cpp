// The fused selection — select_kernel + pack_kernel, the whole batch in two launches — run by
// the host emulator against the CPU path (select_tokens + pack_plan + a host gather), output
// for output: budgets, kept indices, CSR offsets, source rows, lengths and the packed feature
// words, with guard words after every buffer.
//
// Random batches cover both inputs (attention rows; CLS queries and keys, scored in the kernel
// by qk_scores' arithmetic and compared bit for bit), both modes, the three newline policies,
// heavy score ties, budgets of 0 tokens up to beyond P * N, P = 1 (with and without an image
// size), odd N, heterogeneous batches (different P and image sizes in one launch),
// f32/f16/bf16 inputs, strided q/k, 2- and 4-byte feature words, padded feature rows, several
// column chunks, both schedules and strict mode, and capacities squeezed one below the need
// (status set, nothing written past the end).
//
// Cost: ~5-10 us per thread hand-over in the emulator, two top-k per partition: 32- and
// 64-thread blocks, small token grids, mostly one to three partitions per image.
#include "fused_harness.hpp"

#include "hired/emulator/cuda.hpp"  // first: the CUDA dialect on the host
#include "hired/kernels/plan.hpp"
#include "support/emulation_schedule.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace hired::kernels {
namespace {

using hired_test::FusedCase;
using hired_test::FusedOutcome;
using hired_test::Squeeze;

const auto mode_for = hired_test::alternating_schedule;

struct Coverage {
  int cases = 0, rejected = 0, kept_nothing = 0, unpadded = 0, newlines = 0, multi_image = 0;
  int single_partition = 0, squeezed = 0;
  int by_policy[3] = {};
};

// Small grids (the emulator's cost grows with the partitions): mostly 1 x 2 / 2 x 1 tiles,
// sometimes LLaVA-v1.6's pinpoints (up to 2 x 2) or 1 x 3 / 3 x 1, rarely 3 x 3.
std::vector<Size2> pinpoints_for(std::mt19937& rng) {
  switch (std::uniform_int_distribution<int>(0, 9)(rng)) {
    case 0: return {{336, 1008}, {1008, 336}, {336, 672}};
    case 1: return {{1008, 1008}, {672, 1008}};
    case 2: case 3:
      return {hired::llava_v16_grid_pinpoints.begin(), hired::llava_v16_grid_pinpoints.end()};
    default: return {{336, 672}, {672, 336}};
  }
}

ImageLayout random_image(std::mt19937& rng, const VisionGrid& vision,
                         std::span<const Size2> pinpoints) {
  ImageLayout image;
  std::uniform_int_distribution<std::int64_t> side(1, 2000);
  Size2 size{side(rng), side(rng)};
  const int shape = std::uniform_int_distribution<int>(0, 9)(rng);
  if (shape == 1) size.height = std::uniform_int_distribution<std::int64_t>(1, 60)(rng);  // thin
  if (shape == 2) size.width = std::uniform_int_distribution<std::int64_t>(1, 60)(rng);
  if (std::uniform_int_distribution<int>(0, 19)(rng) < 7) {  // about a third: P = 1
    if (shape != 0) image.image_size = size;  // with or without a size
    return image;
  }
  image.image_size = size;
  image.grid = anyres_grid_shape(size, pinpoints, vision.tile_px);
  image.partitions = image.grid.tiles() + 1;
  return image;
}

DropConfig random_config(std::mt19937& rng, Mode mode, int index) {
  DropConfig config;
  config.mode = mode;
  const int budget = std::uniform_int_distribution<int>(0, 9)(rng);
  if (mode == Mode::exact && budget == 0) config.budget = Budget::tokens(0);
  else if (mode == Mode::exact && budget == 1)
    config.budget = Budget::tokens(std::uniform_int_distribution<std::int64_t>(0, 400)(rng));
  else if (budget == 2) config.budget = Budget::rate(1.0);
  else if (budget == 3) config.budget = Budget::rate(0.2);
  else config.budget = Budget::rate(std::uniform_real_distribution<double>(0.01, 1.0)(rng));
  // A tenth of the cases by index (the stream stays the same): a rate so small that T = 0 and
  // nothing is kept, which reference mode reaches no other way (its rate 1.0 keeps everything).
  if (index % 10 == 7) config.budget = Budget::rate(1e-4);
  const int alpha = std::uniform_int_distribution<int>(0, 5)(rng);
  config.alpha = alpha == 0 ? 0.0 : alpha == 1 && mode == Mode::exact ? 1.0
               : alpha == 2 ? 0.5 : std::uniform_real_distribution<double>(0.05, 0.95)(rng);
  config.newline = static_cast<NewlinePolicy>(index % 3);  // by index: every policy covered
  return config;
}

FusedCase random_case(std::mt19937& rng, Mode mode, int index, hired_test::Input input) {
  FusedCase c;
  c.input = input;
  c.config = random_config(rng, mode, index);
  // Exact: any square grid, odd N included. Reference splits N into P - 1 equal bands, so
  // mostly N with many divisors (an uneven split is a rejection both sides must agree on).
  constexpr std::array<std::int64_t, 8> exact_sides{1, 2, 3, 4, 5, 6, 7, 9};
  constexpr std::array<std::int64_t, 8> reference_sides{2, 4, 6, 6, 12, 4, 6, 3};
  const int pick = std::uniform_int_distribution<int>(0, 7)(rng);
  c.vision = {336, mode == Mode::exact ? exact_sides[pick] : reference_sides[pick]};
  const std::vector<Size2> pinpoints = pinpoints_for(rng);
  const int images = index % 5 == 4 ? 2 + (index % 3 == 0) : 1;  // a fifth are multi-image
  for (int i = 0; i < images; ++i) c.images.push_back(random_image(rng, c.vision, pinpoints));
  c.attention = static_cast<Element>(index % 3);
  c.heads = std::uniform_int_distribution<int>(1, 3)(rng);
  // Not from rng (the attention cases keep their stream); 4 and 8 take 16-byte key loads.
  constexpr std::array<int, 5> head_dims{1, 2, 3, 4, 8};
  c.head_dim = head_dims[static_cast<std::size_t>(index % 5)];
  c.q_padding = index % 5 == 2 ? 3 : 0;
  c.k_padding = index % 3 == 1 ? 2 : 0;
  c.feature_bytes = index % 2 == 0 ? 4 : 2;
  c.dim = std::uniform_int_distribution<int>(1, 12)(rng);
  c.row_padding = index % 4 == 1 ? 3 : 0;
  c.chunk = std::uniform_int_distribution<int>(0, 2)(rng) == 0
                ? std::uniform_int_distribution<int>(1, c.dim)(rng)
                : c.dim;
  const int squeeze = std::uniform_int_distribution<int>(0, 19)(rng);
  c.squeeze = squeeze == 0 ? Squeeze::kept : squeeze == 1 ? Squeeze::rows
            : squeeze == 2 ? Squeeze::workspace : Squeeze::none;
  return c;
}

void count(Coverage& coverage, const FusedCase& c, const FusedOutcome& outcome) {
  ++coverage.cases;
  if (outcome.rejected) {
    ++coverage.rejected;
    return;
  }
  coverage.kept_nothing += outcome.kept == 0;
  coverage.unpadded += outcome.outside_box > 0;
  coverage.newlines += outcome.newlines > 0;
  coverage.multi_image += c.images.size() > 1;
  coverage.single_partition +=
      std::any_of(c.images.begin(), c.images.end(), [](const ImageLayout& i) { return i.partitions == 1; });
  coverage.squeezed += c.squeeze != Squeeze::none;
  ++coverage.by_policy[static_cast<int>(c.config.newline)];
}

template <int Threads>
void random_cases(unsigned seed, Mode mode, int cases,
                  hired_test::Input input = hired_test::Input::attention) {
  std::mt19937 rng(seed);
  Coverage coverage;
  for (int i = 0; i < cases; ++i) {
    const FusedCase c = random_case(rng, mode, i, input);
    const FusedOutcome outcome = hired_test::run_fused<Threads>(rng, c, mode_for(i));
    ASSERT_EQ(outcome.error, "") << "case " << i << " (" << c.images.size() << " images, N "
                                 << c.vision.tokens() << ", newline "
                                 << to_string(c.config.newline) << ", alpha " << c.config.alpha
                                 << ")";
    count(coverage, c, outcome);
  }
  std::printf("  %d cases: %d rejected by both, %d keep nothing, %d drop kept tokens at unpad, "
              "%d with newlines, %d multi-image, %d with P = 1, %d squeezed; policies %d/%d/%d\n",
              coverage.cases, coverage.rejected, coverage.kept_nothing, coverage.unpadded,
              coverage.newlines, coverage.multi_image, coverage.single_partition,
              coverage.squeezed, coverage.by_policy[0], coverage.by_policy[1],
              coverage.by_policy[2]);
  const int computed = coverage.cases - coverage.rejected;
  EXPECT_GE(computed, cases * 3 / 4);
  EXPECT_GE(coverage.kept_nothing, 1);
  EXPECT_GE(coverage.multi_image, cases / 8);
  EXPECT_GE(coverage.single_partition, cases / 8);
  EXPECT_GE(coverage.squeezed, cases / 30);
  for (const int n : coverage.by_policy) EXPECT_GE(n, computed / 5);
  if (mode == Mode::reference) {
    EXPECT_GE(coverage.unpadded, cases / 20);
  }
}

// 1,000 random batches in all.
TEST(FusedSelection, ExactMatchesCpu32Threads) { random_cases<32>(51, Mode::exact, 460); }
TEST(FusedSelection, ExactMatchesCpu64Threads) { random_cases<64>(52, Mode::exact, 40); }
TEST(FusedSelection, ReferenceMatchesCpu32Threads) { random_cases<32>(53, Mode::reference, 460); }
TEST(FusedSelection, ReferenceMatchesCpu64Threads) { random_cases<64>(54, Mode::reference, 40); }

// And 1,000 with CLS queries and keys: the scores too must equal the CPU path's bit for bit.
using hired_test::Input;
TEST(FusedSelectionQk, ExactMatchesCpu32Threads) {
  random_cases<32>(61, Mode::exact, 460, Input::query_keys);
}
TEST(FusedSelectionQk, ExactMatchesCpu64Threads) {
  random_cases<64>(62, Mode::exact, 40, Input::query_keys);
}
TEST(FusedSelectionQk, ReferenceMatchesCpu32Threads) {
  random_cases<32>(63, Mode::reference, 460, Input::query_keys);
}
TEST(FusedSelectionQk, ReferenceMatchesCpu64Threads) {
  random_cases<64>(65, Mode::reference, 40, Input::query_keys);
}

// LLaVA-Next's N = 576: one heterogeneous batch per mode and policy — P = 1, 3, 4, 5 and
// sizes that leave padding rows or columns.
TEST(FusedSelection, LlavaSizedHeterogeneousBatch) {
  std::mt19937 rng(55);
  const std::vector<Size2> sizes{{480, 640}, {1000, 300}, {700, 700}, {336, 1000}};
  for (int round = 0; round < 8; ++round) {
    FusedCase c;
    c.input = round >= 6 ? Input::query_keys : Input::attention;
    c.head_dim = 8;
    c.config.mode = round % 2 == 0 ? Mode::exact : Mode::reference;
    c.config.budget = Budget::rate(round < 2 ? 0.2 : 0.5);
    c.config.newline = static_cast<NewlinePolicy>(round / 2 % 3);
    c.vision = {336, 24};
    c.images.push_back(ImageLayout{});
    for (const Size2& size : sizes) {
      ImageLayout image;
      image.image_size = size;
      image.grid = anyres_grid_shape(size, hired::llava_v16_grid_pinpoints, 336);
      image.partitions = image.grid.tiles() + 1;
      c.images.push_back(image);
    }
    c.attention = static_cast<Element>(round % 3);
    c.heads = 3;
    c.dim = 5;
    c.chunk = 2;
    c.feature_bytes = round % 2 == 0 ? 2 : 4;
    const FusedOutcome outcome = hired_test::run_fused<32>(rng, c, mode_for(round));
    ASSERT_EQ(outcome.error, "") << "round " << round;
    ASSERT_FALSE(outcome.rejected);
  }
}

// Rate 1.0 with every_row is stock LLaVA-Next packing: every box token, every row newline.
/// One 500x900 image (1 + 2x3 partitions, a padded grid) of 6x6 tokens at rate 1.0.
FusedCase rate_one_case(hired::Mode mode) {
  FusedCase c;
  c.config.mode = mode;
  c.config.budget = Budget::rate(1.0);
  c.vision = {336, 6};
  ImageLayout image;
  image.image_size = Size2{500, 900};
  image.grid = anyres_grid_shape(*image.image_size, hired::llava_v16_grid_pinpoints, 336);
  image.partitions = image.grid.tiles() + 1;
  c.images = {image};
  return c;
}

TEST(FusedSelection, RateOneIsStockPacking) {
  std::mt19937 rng(56);
  const FusedCase c = rate_one_case(hired::Mode::exact);
  const FusedOutcome outcome = hired_test::run_fused<32>(rng, c, {emu::Schedule::forward, true});
  ASSERT_EQ(outcome.error, "");
  const ImageLayout& image = c.images.front();
  const TokenBox box = tile_token_box(*image.image_size, image.grid, c.vision);
  EXPECT_EQ(outcome.rows, 36 + box.rows() * box.cols() + box.rows());
}

// Reference mode at rate 1.0 selects nothing away, as the published pipeline: every token of
// every partition is kept (those in padding too), and alpha = 1 is no error there.
TEST(FusedSelection, ReferenceRateOneKeepsEverything) {
  std::mt19937 rng(57);
  FusedCase c = rate_one_case(hired::Mode::reference);
  c.config.alpha = 1.0;
  const FusedOutcome outcome = hired_test::run_fused<32>(rng, c, {emu::Schedule::forward, true});
  ASSERT_EQ(outcome.error, "");
  EXPECT_FALSE(outcome.rejected);
  EXPECT_EQ(outcome.kept, c.images.front().partitions * 36);
}

// The host plan: sizes from geometry where they are known, and the core's errors.
TEST(SelectionPlan, SizesAndErrors) {
  const VisionGrid vision{336, 24};
  ImageLayout image;
  image.image_size = Size2{600, 600};
  image.grid = {2, 2};
  image.partitions = 5;
  DropConfig config;
  SelectionPlan plan = plan_selection(std::vector{image, ImageLayout{}}, vision, config,
                                      NewlinePolicy::every_row, true);
  EXPECT_EQ(plan.partitions, 6);
  EXPECT_EQ(plan.requested, (std::vector<std::int64_t>{576, 115}));
  EXPECT_EQ(plan.kept, (std::vector<std::int64_t>{576, 115}));
  EXPECT_EQ(plan.rows, (std::vector<std::int64_t>{576 + 48, 116}));
  EXPECT_EQ(plan.workspace_bytes, selection_workspace_bytes(6, 576));
  const SelectionPlan kept_rows =
      plan_selection(std::vector{image}, vision, config, NewlinePolicy::kept_rows, true);
  EXPECT_TRUE(kept_rows.kept_known());
  EXPECT_FALSE(kept_rows.rows_known());  // which rows keep a token depends on the scores
  config.mode = Mode::reference;
  const SelectionPlan reference =
      plan_selection(std::vector{image}, vision, config, NewlinePolicy::none, true);
  EXPECT_FALSE(reference.kept_known());
  EXPECT_FALSE(reference.rows_known());
  EXPECT_EQ(reference.max_kept, 5 * 576);
  EXPECT_EQ(reference.max_rows, 5 * 576);

  ImageLayout unsized = image;
  unsized.image_size.reset();
  EXPECT_THROW(plan_selection(std::vector{unsized}, vision, config, NewlinePolicy::none, true),
               Error);  // packing needs the size to unpad
  EXPECT_NO_THROW(plan_selection(std::vector{unsized}, vision, config, NewlinePolicy::none, false));
  config.mode = Mode::exact;
  EXPECT_THROW(plan_selection(std::vector{unsized}, vision, config, NewlinePolicy::none, false),
               Error);  // exact mode needs it for the padding
  EXPECT_THROW(plan_selection(std::vector{image}, VisionGrid{336, 33}, config,
                              NewlinePolicy::none, true),
               Error);  // N = 1089 > 1024
  EXPECT_THROW(selection_workspace_bytes(0, 576), Error);
  EXPECT_THROW(selection_workspace_bytes(1, 575), Error);
}

// One 300 x 600 image (1 x 2 tiles, P = 3) of 3 x 3 tokens, exact mode at 20%: select_kernel
// on `input`, then pack_kernel's status and kept total (-9 when it wrote none).
struct SmallBatch {
  SelectionPlan plan = plan_selection(std::vector{image()}, VisionGrid{336, 3}, DropConfig{},
                                      NewlinePolicy::every_row, true);

  static ImageLayout image() {
    ImageLayout image;
    image.image_size = Size2{300, 600};
    image.grid = {1, 2};
    image.partitions = 3;
    return image;
  }

  template <class Input>
  std::pair<unsigned, std::int64_t> run(const Input& input) const {
    std::vector<std::uint64_t> workspace(static_cast<std::size_t>(plan.workspace_bytes / 8));
    const SelectParams<Input> select = select_params(plan, input, plan.images.data(),
                                                     workspace.data(), plan.workspace_bytes);
    unsigned status = 0xdeadbeefu;
    std::int64_t totals[2] = {-9, -9};
    PackParams pack = pack_params(plan, plan.images.data(), workspace.data(),
                                  plan.workspace_bytes, NewlinePolicy::every_row);
    pack.totals = totals;
    pack.status = &status;
    emu::launch(select_kernel<Input, 32>, select_grid(select), dim3(32), select);
    emu::launch(pack_kernel<std::uint32_t, 32>, pack_grid(pack), dim3(32), pack);
    return {status, totals[0]};
  }
};

// Invalid attention anywhere the CPU path validates (here a tile's init row, which only
// sum_heads reads) flags the batch; nothing else is written.
TEST(FusedSelection, FlagsInvalidAttention) {
  const int heads = 2, keys = 10;
  std::vector<float> init(3 * heads * keys, 0.25f), final_attention(init.size(), 0.5f);
  init[2 * heads * keys + keys + 4] = std::numeric_limits<float>::quiet_NaN();
  const auto [status, kept] = SmallBatch{}.run(AttentionInput<Element::f32>{
      .init = init.data(), .final = final_attention.data(), .row_stride = heads * keys,
      .head_stride = keys, .heads = heads});
  EXPECT_EQ(status, status::invalid_input);
  EXPECT_EQ(kept, -9);
}

// A non-finite logit in a row the CPU path reads (the full image's init row, any final row)
// flags the batch; one in a tile's init row, which nobody reads, does not.
TEST(FusedSelectionQk, FlagsNonFiniteLogitsOfRowsItReads) {
  const int heads = 2, head_dim = 2, keys = 10, width = heads * head_dim;
  const float inf = std::numeric_limits<float>::infinity();
  for (const auto& [layer, row, expect] :
       {std::tuple{0, 0, status::invalid_input}, std::tuple{0, 2, 0u},
        std::tuple{1, 1, status::invalid_input}, std::tuple{-1, 0, 0u}}) {
    std::vector<float> q(3 * width, 0.5f), k(3 * keys * width, 0.25f);
    std::vector<float> q_final = q, k_final = k;
    if (layer >= 0) (layer == 0 ? k : k_final)[(row * keys + 4) * width + 1] = inf;
    const auto rows = [&](const std::vector<float>& qs, const std::vector<float>& ks) {
      return QueryKeyRows<Element::f32>{.q = qs.data(), .q_row_stride = width, .k = ks.data(),
                                        .k_row_stride = keys * width, .k_token_stride = width};
    };
    const auto [status, kept] = SmallBatch{}.run(QueryKeyInput<Element::f32>{
        .init = rows(q, k), .final = rows(q_final, k_final), .heads = heads,
        .head_dim = head_dim, .scale = qk_scale(head_dim)});
    EXPECT_EQ(status, expect) << "layer " << layer << ", row " << row;
    EXPECT_EQ(kept, expect == 0u ? 5 : -9);  // 20% of 3 x 9 tokens
  }
}

// A head_dim beyond the instantiation's limit, or a null key, is refused by the launcher's
// check and, inside the kernel, flagged as unsupported (nothing kept).
TEST(FusedSelectionQk, UnsupportedInputIsFlagged) {
  const VisionGrid vision{336, 2};
  const SelectionPlan plan = plan_selection(std::vector{ImageLayout{}}, vision, DropConfig{},
                                            NewlinePolicy::none, true);
  std::vector<float> q(kSelectMaxHeadDim + 1, 0.5f), k(5 * q.size(), 0.25f);
  const QueryKeyRows<Element::f32> rows{.q = q.data(), .q_row_stride = 0, .k = k.data(),
                                        .k_row_stride = 0,
                                        .k_token_stride = static_cast<std::int64_t>(q.size())};
  QueryKeyInput<Element::f32> input{.init = rows, .final = rows, .heads = 1,
                                    .head_dim = kSelectMaxHeadDim + 1, .scale = 0.5f};
  EXPECT_FALSE(input_supported(input));
  input.head_dim = kSelectMaxHeadDim;
  EXPECT_TRUE(input_supported(input));
  input.final.k = nullptr;
  EXPECT_FALSE(input_supported(input));
  input.final.k = k.data();
  input.scale = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(input_supported(input));
  input.scale = 0.5f;
  input.head_dim = kSelectMaxHeadDim + 1;
  std::vector<std::uint64_t> workspace(static_cast<std::size_t>(plan.workspace_bytes / 8));
  const SelectParams<QueryKeyInput<Element::f32>> select = select_params(
      plan, input, plan.images.data(), workspace.data(), plan.workspace_bytes);
  unsigned status = 0;
  PackParams pack = pack_params(plan, plan.images.data(), workspace.data(), plan.workspace_bytes,
                                NewlinePolicy::every_row);
  pack.status = &status;
  emu::launch(select_kernel<QueryKeyInput<Element::f32>, 32>, select_grid(select), dim3(32),
              select);
  emu::launch(pack_kernel<std::uint32_t, 32>, pack_grid(pack), dim3(32), pack);
  EXPECT_EQ(status, status::unsupported);
}

}  // namespace
}  // namespace hired::kernels

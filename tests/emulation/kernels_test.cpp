// The scoring and top-k building blocks (hired/kernels/cls_scores.cuh, block_topk.cuh), each
// run over a batch of rows by its standalone kernel (standalone_kernels.cuh) on the host
// emulator and compared with the CPU path: hired::sum_heads and hired::qk_scores bit for bit,
// hired::top_k_ascending index for index, on seeded random cases (ties, k = 0, k = N, k above
// the eligible count, odd N, P = 1, empty boxes, heterogeneous rows, both schedules, strict
// mode).
//
// Cost: the emulator hands the baton over once per thread at every barrier or warp collective
// (~5-10 us each), so the kernels are instantiated with 32- and 64-thread blocks here (the
// production size, 256, is only a template argument) and most cases are small (N <= 100).
#include "hired/emulator/cuda.hpp"  // first: the CUDA dialect on the host
#include "standalone_kernels.cuh"
#include "hired/half.hpp"
#include "hired/qk_scores.hpp"
#include "hired/scores.hpp"
#include "hired/topk.hpp"

#include "support/emulation_schedule.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace hired::kernels {
namespace {

using namespace standalone;
using emu::Options;
using emu::Schedule;

const auto mode_for = hired_test::alternating_schedule;

template <Element E>
storage_t<E> encode(float v) {
  if constexpr (E == Element::f32) return v;
  else if constexpr (E == Element::f16) return float_to_half(v);
  else return float_to_bf16(v);
}

std::uint32_t bits_of(float v) {
  std::uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

// ------------------------------------ CLS scores --------------------------------------------

// A non-negative attention value: mostly ordinary, some zeros (both signs), some tiny
// (subnormal in float or in fp16) so that flush-to-zero would show.
float attention_value(std::mt19937& rng) {
  const int kind = std::uniform_int_distribution<int>(0, 19)(rng);
  const float u = std::uniform_real_distribution<float>(0.0f, 1.0f)(rng);
  if (kind == 0) return 0.0f;
  if (kind == 1) return -0.0f;
  if (kind == 2) return std::ldexp(u, -std::uniform_int_distribution<int>(14, 140)(rng));
  if (kind == 3) return std::ldexp(u, std::uniform_int_distribution<int>(1, 12)(rng));
  return u;
}

template <Element E, int Threads>
void run_attention_case(std::mt19937& rng, int case_index, std::int32_t tokens) {
  const std::int32_t rows = std::uniform_int_distribution<std::int32_t>(1, 4)(rng);
  const std::int32_t heads = std::uniform_int_distribution<std::int32_t>(1, 6)(rng);
  const std::int64_t keys = tokens + 1;
  // Every other case is strided: padding between heads, rows and score rows, filled with NaN
  // so that a read of it would raise the invalid flag.
  const bool padded = case_index % 2 == 1;
  const std::int64_t head_stride = keys + (padded ? 3 : 0);
  const std::int64_t row_stride = heads * head_stride + (padded ? 5 : 0);
  const std::int64_t score_stride = tokens + (padded ? 2 : 0);

  std::vector<storage_t<E>> input(static_cast<std::size_t>(rows * row_stride),
                                  encode<E>(std::numeric_limits<float>::quiet_NaN()));
  std::vector<float> dense(static_cast<std::size_t>(rows * heads * keys));  // what sum_heads gets
  for (std::int32_t p = 0; p < rows; ++p)
    for (std::int32_t h = 0; h < heads; ++h)
      for (std::int64_t t = 0; t < keys; ++t) {
        const storage_t<E> v = encode<E>(attention_value(rng));
        input[p * row_stride + h * head_stride + t] = v;
        dense[(p * heads + h) * keys + t] = to_float<E>(v);
      }
  const std::vector<float> expected = sum_heads(dense.data(), rows, heads, keys, "attention");

  constexpr float kUntouched = -123.0f;
  std::vector<float> scores(static_cast<std::size_t>(rows * score_stride), kUntouched);
  unsigned invalid = 0;
  const ClsScoresParams<E> params{.attention = input.data(),
                                  .row_stride = row_stride,
                                  .head_stride = head_stride,
                                  .scores = scores.data(),
                                  .score_stride = score_stride,
                                  .rows = rows,
                                  .heads = heads,
                                  .tokens = tokens,
                                  .status = &invalid};
  emu::launch_with(mode_for(case_index), cls_scores_kernel<E, Threads>, rows_grid(params),
                   dim3(Threads), params);
  ASSERT_EQ(invalid, 0u) << "case " << case_index;
  for (std::int32_t p = 0; p < rows; ++p)
    for (std::int64_t j = 0; j < score_stride; ++j) {
      const float got = scores[p * score_stride + j];
      if (j >= tokens) {
        ASSERT_EQ(bits_of(got), bits_of(kUntouched)) << "padding written, case " << case_index;
        continue;
      }
      ASSERT_EQ(bits_of(got), bits_of(expected[p * tokens + j]))
          << "case " << case_index << " (rows " << rows << ", heads " << heads << ", N "
          << tokens << ") at [" << p << ", " << j << "]: " << got << " vs "
          << expected[p * tokens + j];
    }
}

std::int32_t random_tokens(std::mt19937& rng, int case_index) {
  if (case_index % 50 == 0) return 576;  // LLaVA-Next's 24 x 24
  static constexpr std::int32_t kFixed[] = {1, 4, 25, 49, 100};
  if (case_index % 3 == 0) return kFixed[case_index / 3 % 5];
  return std::uniform_int_distribution<std::int32_t>(1, 100)(rng);
}

template <Element E>
void attention_cases(unsigned seed) {
  std::mt19937 rng(seed);
  for (int c = 0; c < 1000; ++c) {
    const std::int32_t tokens = random_tokens(rng, c);
    if (c % 4 == 3) run_attention_case<E, 64>(rng, c, tokens);
    else run_attention_case<E, 32>(rng, c, tokens);
    if (testing::Test::HasFatalFailure()) return;
  }
}

TEST(ClsScoresKernel, Float32MatchesSumHeadsBitForBit) { attention_cases<Element::f32>(11); }
TEST(ClsScoresKernel, Float16MatchesSumHeadsOverWidenedValues) {
  attention_cases<Element::f16>(12);
}
TEST(ClsScoresKernel, BFloat16MatchesSumHeadsOverWidenedValues) {
  attention_cases<Element::bf16>(13);
}

TEST(ClsScoresKernel, FlagsWhatSumHeadsRejects) {
  constexpr std::int32_t rows = 2, heads = 3, tokens = 9, keys = tokens + 1;
  const float bad_values[] = {std::numeric_limits<float>::quiet_NaN(),
                              std::numeric_limits<float>::infinity(), -1e-30f};
  for (const float bad : bad_values)
    for (const int at : {0, 1, rows * heads * keys - 1}) {  // CLS key, patch key, last value
      std::vector<float> a(rows * heads * keys, 0.25f);
      a[at] = bad;
      std::vector<float> scores(rows * tokens);
      unsigned invalid = 0;
      const auto params =
          ClsScoresParams<Element::f32>::contiguous(a.data(), scores.data(), rows, heads, tokens,
                                                    &invalid);
      emu::launch(cls_scores_kernel<Element::f32, 32>, rows_grid(params), dim3(32), params);
      EXPECT_EQ(invalid, status::invalid_input) << bad << " at " << at;
      EXPECT_THROW(sum_heads(a.data(), rows, heads, keys, "attention"), Error);
    }
}

// -- from q and k --

// Random q/k rows, compared bit for bit with hired::qk_scores: logit spreads from tiny to far
// beyond exp's range (terms that flush to 0), tied keys, 16-bit inputs, and strided views (q
// rows and key rows with padding channels between them).
template <Element E, int Threads>
void run_qk_case(std::mt19937& rng, int case_index, std::int32_t tokens, int& vector_cases) {
  const std::int32_t rows = std::uniform_int_distribution<std::int32_t>(1, 2)(rng);
  const std::int32_t heads = std::uniform_int_distribution<std::int32_t>(1, 3)(rng);
  static constexpr std::int32_t kDims[] = {1, 3, 8, 16, 64};
  const std::int32_t d = kDims[std::uniform_int_distribution<int>(0, 4)(rng)];
  const std::int32_t keys = tokens + 1;
  const std::int64_t width = std::int64_t{heads} * d;
  const std::int64_t q_stride = width + (case_index % 3 == 1 ? 5 : 0);
  const std::int64_t k_stride = width + (case_index % 4 == 2 ? 3 : 0);
  const float widest = case_index % 5 == 0 ? 8.0f : 1.5f;  // 8: terms below e^-87 flush
  const float sigma = std::uniform_real_distribution<float>(0.05f, widest)(rng);
  std::normal_distribution<float> normal(0.0f, sigma);
  const bool tied = case_index % 7 == 3;  // every key equal to key 0 or key 1
  std::vector<storage_t<E>> q(static_cast<std::size_t>(rows * q_stride), encode<E>(7.0f));
  std::vector<storage_t<E>> k(static_cast<std::size_t>(rows * keys * k_stride), encode<E>(7.0f));
  for (std::int32_t p = 0; p < rows; ++p) {
    for (std::int64_t c = 0; c < width; ++c) q[p * q_stride + c] = encode<E>(normal(rng));
    for (std::int32_t t = 0; t < keys; ++t)
      for (std::int64_t c = 0; c < width; ++c)
        k[(p * keys + t) * k_stride + c] = tied && t > 1 ? k[(p * keys + t % 2) * k_stride + c]
                                                         : encode<E>(normal(rng));
  }
  std::vector<float> qf(q.size()), kf(k.size());
  for (std::size_t i = 0; i < q.size(); ++i) qf[i] = to_float<E>(q[i]);
  for (std::size_t i = 0; i < k.size(); ++i) kf[i] = to_float<E>(k[i]);
  const QueryKeyView view{.q = qf.data(), .q_row_stride = q_stride, .k = kf.data(),
                          .k_row_stride = keys * k_stride, .k_token_stride = k_stride,
                          .rows = rows, .heads = heads, .head_dim = d, .tokens = tokens,
                          .scale = qk_scale(d)};
  std::vector<float> expected;
  try {
    expected = qk_scores(view, "q/k");
  } catch (const Error&) {
    return;  // an overflowing logit: FlagsNonFiniteLogits covers it
  }

  // Whether the kernel reads each key's head slice 16 bytes at a time (BlockQkScores).
  constexpr std::int64_t per_vector = 16 / sizeof(storage_t<E>);
  vector_cases += d % per_vector == 0 && k_stride % per_vector == 0 &&
                  reinterpret_cast<std::uintptr_t>(k.data()) % 16 == 0;

  std::vector<float> scores(static_cast<std::size_t>(rows * tokens), -1.0f);
  unsigned invalid = 0;
  const ClsScoresQkParams<E> params{
      .layer = {.q = q.data(), .q_row_stride = q_stride, .k = k.data(),
                .k_row_stride = keys * k_stride, .k_token_stride = k_stride},
      .scores = scores.data(), .score_stride = tokens, .rows = rows, .heads = heads,
      .head_dim = d, .tokens = tokens, .scale = view.scale, .status = &invalid};
  emu::launch_with(mode_for(case_index), cls_scores_qk_kernel<E, Threads, 576, 64>,
                   rows_grid(params), dim3(Threads), params);
  ASSERT_EQ(invalid, 0u);
  for (std::size_t i = 0; i < scores.size(); ++i)
    ASSERT_EQ(hired::detail::float_bits(scores[i]), hired::detail::float_bits(expected[i]))
        << "case " << case_index << " [" << i / tokens << ", " << i % tokens << "]: kernel "
        << scores[i] << ", host " << expected[i] << " (N " << tokens << ", heads " << heads
        << ", d " << d << ", sigma " << sigma << ")";
}

template <Element E>
void qk_cases(unsigned seed, int cases) {
  std::mt19937 rng(seed);
  int vector_cases = 0;
  for (int c = 0; c < cases; ++c) {
    const std::int32_t tokens = c % 100 == 0 ? 576 : random_tokens(rng, c + 1);
    if (c % 4 == 3) run_qk_case<E, 64>(rng, c, tokens, vector_cases);
    else run_qk_case<E, 32>(rng, c, tokens, vector_cases);
    if (testing::Test::HasFatalFailure()) return;
  }
  // Both ways of reading the keys are covered.
  EXPECT_GE(vector_cases, cases / 4);
  EXPECT_GE(cases - vector_cases, cases / 4);
}

TEST(ClsScoresQkKernel, Float32EqualsTheHostBitForBit) { qk_cases<Element::f32>(21, 600); }
TEST(ClsScoresQkKernel, Float16EqualsTheHostBitForBit) { qk_cases<Element::f16>(22, 200); }
TEST(ClsScoresQkKernel, BFloat16EqualsTheHostBitForBit) { qk_cases<Element::bf16>(23, 200); }

TEST(ClsScoresQkKernel, FlagsNonFiniteLogits) {
  constexpr std::int32_t tokens = 4, heads = 2, d = 8, keys = tokens + 1;
  std::vector<float> q(keys * heads * d, 0.5f), k(q.size(), 0.25f), scores(tokens);
  unsigned invalid = 0;
  const auto params = ClsScoresQkParams<Element::f32>::contiguous(q.data(), k.data(),
                                                                  scores.data(), 1, heads, d,
                                                                  tokens, &invalid);
  emu::launch(cls_scores_qk_kernel<Element::f32, 32, 64, 64>, rows_grid(params), dim3(32),
              params);
  EXPECT_EQ(invalid, 0u);
  for (float s : scores) EXPECT_FLOAT_EQ(s, 2.0f / keys);  // uniform over N + 1 keys, 2 heads
  k[3 * heads * d + d + 5] = std::numeric_limits<float>::infinity();
  emu::launch(cls_scores_qk_kernel<Element::f32, 32, 64, 64>, rows_grid(params), dim3(32),
              params);
  EXPECT_EQ(invalid, status::invalid_input);
}

TEST(ClsScoresQkKernel, RejectsShapesBeyondItsLimits) {
  constexpr std::int32_t tokens = 4, heads = 1, d = 8;
  std::vector<float> q((tokens + 1) * d, 0.5f), k(q.size(), 0.25f), scores(tokens);
  const auto params = ClsScoresQkParams<Element::f32>::contiguous(q.data(), k.data(),
                                                                  scores.data(), 1, heads, d,
                                                                  tokens);
  EXPECT_TRUE((cls_scores_qk_supports<64, 8>(params)));
  EXPECT_FALSE((cls_scores_qk_supports<64, 4>(params)));
  EXPECT_FALSE((cls_scores_qk_supports<3, 8>(params)));
  EXPECT_THROW(emu::launch(cls_scores_qk_kernel<Element::f32, 32, 64, 4>, rows_grid(params),
                           dim3(32), params),
               emu::KernelError);
  EXPECT_THROW(emu::launch(cls_scores_qk_kernel<Element::f32, 32, 64, 8>, rows_grid(params),
                           dim3(64), params),
               emu::KernelError);  // block wider than BlockThreads
}

// ------------------------------------- top-k -------------------------------------------------

TEST(OrderKey, PreservesFloatOrderAndEqualsZeros) {
  const float ascending[] = {-std::numeric_limits<float>::infinity(), -3e38f, -1.5f, -1e-40f,
                             0.0f, 1e-45f, 1e-40f, 1.17549435e-38f, 0.5f, 1.0f, 3e38f,
                             std::numeric_limits<float>::infinity()};
  for (std::size_t i = 1; i < std::size(ascending); ++i)
    EXPECT_LT(order_key(ascending[i - 1]), order_key(ascending[i])) << ascending[i];
  EXPECT_EQ(order_key(-0.0f), order_key(0.0f));
}

struct TopKCase {
  std::int32_t rows = 0, tokens = 0, side = 0;  // side 0: all eligible
  std::vector<float> scores;
  std::vector<std::int32_t> k;
  std::vector<EligibleBox> boxes;
};

std::vector<std::int32_t> candidates(const TopKCase& c, std::int32_t p) {
  std::vector<std::int32_t> out;
  const Eligibility e = c.side == 0 ? Eligibility{} : Eligibility{c.side, c.boxes[p]};
  for (std::int32_t j = 0; j < c.tokens; ++j)
    if (e.admits(j)) out.push_back(j);
  return out;
}

// Scores of one row: continuous, or quantised to 1-3 levels (heavy ties), sometimes with
// signed zeros or negative values.
void fill_scores(std::mt19937& rng, float* out, std::int32_t n) {
  const int kind = std::uniform_int_distribution<int>(0, 5)(rng);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const int levels = std::uniform_int_distribution<int>(1, 3)(rng);
  float level_value[3];
  for (float& v : level_value) v = u(rng);
  for (std::int32_t j = 0; j < n; ++j) {
    switch (kind) {
      case 0: case 1: out[j] = u(rng); break;
      case 2: case 3:
        out[j] = level_value[std::uniform_int_distribution<int>(0, levels - 1)(rng)];
        break;
      case 4: out[j] = std::uniform_int_distribution<int>(0, 1)(rng) ? 0.0f : -0.0f; break;
      default: out[j] = u(rng) - 0.5f; break;
    }
  }
}

std::int32_t random_k(std::mt19937& rng, std::int32_t n, std::int32_t eligible) {
  switch (std::uniform_int_distribution<int>(0, 7)(rng)) {
    case 0: return 0;
    case 1: return n;
    case 2: return eligible + std::uniform_int_distribution<std::int32_t>(1, 5)(rng);
    case 3: return eligible;
    case 4: return std::max(eligible - 1, 0);
    case 5: return -3;
    default: return std::uniform_int_distribution<std::int32_t>(0, n)(rng);
  }
}

EligibleBox random_box(std::mt19937& rng, std::int32_t side) {
  std::uniform_int_distribution<std::int32_t> edge(0, side);
  switch (std::uniform_int_distribution<int>(0, 5)(rng)) {
    case 0: return {0, side, 0, side};  // everything
    case 1: {                           // empty: begin >= end in one direction
      const std::int32_t a = edge(rng);
      return {a, a - std::uniform_int_distribution<std::int32_t>(0, 1)(rng), 0, side};
    }
    default: {
      std::int32_t r0 = edge(rng), r1 = edge(rng), c0 = edge(rng), c1 = edge(rng);
      if (r0 > r1) std::swap(r0, r1);
      if (c0 > c1) std::swap(c0, c1);
      return {r0, r1, c0, c1};
    }
  }
}

TopKCase random_topk_case(std::mt19937& rng, std::int32_t tokens, std::int32_t side) {
  TopKCase c;
  c.rows = std::uniform_int_distribution<std::int32_t>(1, 4)(rng);
  c.tokens = tokens;
  c.side = side;
  c.scores.resize(static_cast<std::size_t>(c.rows * tokens));
  for (std::int32_t p = 0; p < c.rows; ++p) {
    fill_scores(rng, c.scores.data() + p * tokens, tokens);
    if (side > 0) c.boxes.push_back(random_box(rng, side));
    c.k.push_back(random_k(rng, tokens, static_cast<std::int32_t>(candidates(c, p).size())));
  }
  return c;
}

constexpr std::int32_t kUnwritten = -7;

// Runs topk_kernel and compares every row with hired::top_k_ascending; also checks that
// nothing past count[p] was written.
template <int Threads>
void check_topk(const TopKCase& c, const Options& options, const std::string& label) {
  std::vector<std::int32_t> kept(static_cast<std::size_t>(c.rows * c.tokens), kUnwritten);
  std::vector<std::int32_t> count(static_cast<std::size_t>(c.rows), kUnwritten);
  const TopKParams params{.scores = c.scores.data(),
                          .score_stride = c.tokens,
                          .rows = c.rows,
                          .tokens = c.tokens,
                          .k = c.k.data(),
                          .boxes = c.side == 0 ? nullptr : c.boxes.data(),
                          .side = c.side,
                          .kept = kept.data(),
                          .count = count.data()};
  ASSERT_TRUE(topk_supports(params)) << label;
  emu::launch_with(options, topk_kernel<Threads>, rows_grid(params), dim3(Threads), params);
  for (std::int32_t p = 0; p < c.rows; ++p) {
    const std::vector<std::int32_t> want =
        top_k_ascending(c.scores.data() + p * c.tokens, candidates(c, p), c.k[p]);
    const std::vector<std::int32_t> got(kept.begin() + p * c.tokens,
                                        kept.begin() + p * c.tokens + std::max(count[p], 0));
    ASSERT_EQ(count[p], static_cast<std::int32_t>(want.size()))
        << label << " row " << p << " k " << c.k[p];
    ASSERT_EQ(got, want) << label << " row " << p << " k " << c.k[p];
    for (std::int32_t j = count[p]; j < c.tokens; ++j)
      ASSERT_EQ(kept[p * c.tokens + j], kUnwritten) << label << " row " << p << " slot " << j;
  }
}

template <int Threads>
void topk_random_cases(unsigned seed, int cases, bool boxes) {
  std::mt19937 rng(seed);
  for (int i = 0; i < cases; ++i) {
    std::int32_t tokens = 0, side = 0;
    if (boxes) {
      side = std::uniform_int_distribution<std::int32_t>(1, 10)(rng);  // N = 1, 4, ..., 100
      tokens = side * side;
    } else {
      tokens = std::uniform_int_distribution<std::int32_t>(1, 100)(rng);
    }
    const TopKCase c = random_topk_case(rng, tokens, boxes ? side : 0);
    check_topk<Threads>(c, mode_for(i), "case " + std::to_string(i));
    if (testing::Test::HasFatalFailure()) return;
  }
}

TEST(TopKKernel, AllEligibleMatchesCpu32Threads) { topk_random_cases<32>(31, 300, false); }
TEST(TopKKernel, AllEligibleMatchesCpu64Threads) { topk_random_cases<64>(32, 200, false); }
TEST(TopKKernel, BoxesMatchCpu32Threads) { topk_random_cases<32>(33, 300, true); }
TEST(TopKKernel, BoxesMatchCpu64Threads) { topk_random_cases<64>(34, 200, true); }

// LLaVA-Next's N = 576 (24 x 24), a batch of P = 1..4 rows per launch.
TEST(TopKKernel, LlavaSizedRowsMatchCpu) {
  std::mt19937 rng(35);
  for (int i = 0; i < 200; ++i) {
    const TopKCase c = random_topk_case(rng, 576, i % 2 == 0 ? 24 : 0);
    if (i % 3 == 0) check_topk<32>(c, mode_for(i), "case " + std::to_string(i));
    else check_topk<64>(c, mode_for(i), "case " + std::to_string(i));
    if (HasFatalFailure()) return;
  }
}

// One image of 5 partitions and one of 1 in one launch: the full image all eligible, tiles
// with their unpadded boxes and different budgets, including an empty tile and an all-tied row.
TEST(TopKKernel, HeterogeneousBatch) {
  std::mt19937 rng(36);
  TopKCase c;
  c.rows = 6;
  c.tokens = 576;
  c.side = 24;
  c.scores.resize(6 * 576);
  for (std::int32_t p = 0; p < 6; ++p) fill_scores(rng, c.scores.data() + p * 576, 576);
  std::fill(c.scores.begin() + 3 * 576, c.scores.begin() + 4 * 576, 0.125f);
  c.boxes = {{0, 24, 0, 24}, {3, 24, 0, 24}, {3, 24, 0, 24}, {0, 21, 0, 24},
             {0, 21, 0, 24}, {0, 0, 0, 24}};
  c.k = {288, 100, 0, 576, 377, 5};
  check_topk<64>(c, {Schedule::forward, true}, "forward");
  check_topk<64>(c, {Schedule::reverse, true}, "reverse");
}

TEST(TopKKernel, SingleTokenAndSingleRow) {
  TopKCase c{
      .rows = 1, .tokens = 1, .side = 1, .scores = {0.5f}, .k = {1}, .boxes = {{0, 1, 0, 1}}};
  check_topk<32>(c, {Schedule::forward, true}, "kept");
  c.boxes = {{0, 1, 1, 1}};
  check_topk<32>(c, {Schedule::reverse, true}, "empty box");
  c.side = 0;
  c.k = {7};
  check_topk<32>(c, {Schedule::reverse, true}, "k above n");
}

// BlockTopK as a building block: scores staged in shared memory, two selections on one
// TempStorage back to back (no barrier in between, as its contract allows).
template <int Threads>
HIRED_KERNEL void two_selections(const float* scores, int n, int k1, int k2, std::int32_t* out1,
                                 std::int32_t* out2, int* counts) {
  using TopK = BlockTopK<Threads, 128>;
  __shared__ typename TopK::TempStorage storage;
  __shared__ float staged[128];
  for (int j = static_cast<int>(threadIdx.x); j < n; j += Threads) staged[j] = scores[j];
  __syncthreads();
  const int c1 = TopK(storage).select(staged, n, k1, Eligibility{}, out1);
  const int c2 = TopK(storage).select(staged, n, k2, Eligibility{}, out2);
  if (threadIdx.x == 0) {
    counts[0] = c1;
    counts[1] = c2;
  }
}

TEST(BlockTopK, BackToBackSelectionsFromSharedMemory) {
  std::mt19937 rng(37);
  for (int i = 0; i < 100; ++i) {
    const int n = std::uniform_int_distribution<int>(1, 128)(rng);
    std::vector<float> scores(static_cast<std::size_t>(n));
    fill_scores(rng, scores.data(), n);
    const int k1 = random_k(rng, n, n), k2 = random_k(rng, n, n);
    std::vector<std::int32_t> out1(static_cast<std::size_t>(n)), out2(out1.size());
    int counts[2] = {-1, -1};
    emu::launch_with(mode_for(i), two_selections<32>, dim3(1), dim3(32), scores.data(), n, k1,
                     k2, out1.data(), out2.data(), counts);
    const auto want1 = top_k_ascending(scores.data(), n, k1);
    const auto want2 = top_k_ascending(scores.data(), n, k2);
    ASSERT_EQ(counts[0], static_cast<int>(want1.size())) << i;
    ASSERT_EQ(counts[1], static_cast<int>(want2.size())) << i;
    out1.resize(want1.size());
    out2.resize(want2.size());
    ASSERT_EQ(out1, want1) << i;
    ASSERT_EQ(out2, want2) << i;
  }
}

TEST(TopKKernel, RejectsTooManyTokens) {
  TopKParams params{.rows = 1, .tokens = 129};
  EXPECT_FALSE(topk_supports<128>(params));
  EXPECT_TRUE(topk_supports(params));
  params.boxes = reinterpret_cast<const EligibleBox*>(&params);  // any non-null pointer
  params.side = 11;
  EXPECT_FALSE(topk_supports(params));  // 11 * 11 != 129
  std::vector<float> scores(129, 1.0f);
  std::int32_t k = 3, count = 0;
  std::vector<std::int32_t> kept(129);
  params = {.scores = scores.data(), .score_stride = 129, .rows = 1, .tokens = 129, .k = &k,
            .kept = kept.data(), .count = &count};
  EXPECT_THROW(emu::launch(topk_kernel<32, 128>, rows_grid(params), dim3(32), params),
               emu::KernelError);
}

}  // namespace
}  // namespace hired::kernels

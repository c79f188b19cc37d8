// The emulation tests are not vacuous: kernels built from a mutant of a kernel header (one
// deliberate bug: a missing barrier, an off-by-one) must give results that differ from the CPU
// path (a wrong list or count, or the emulator reporting the broken synchronisation), while the
// same harnesses on the real headers agree with it. The mutants (tests/emulation/mutants.cmake)
// are made at configure time from the real header text; this file is compiled once per mutant
// into its own program, with HIRED_MUTANT_<name> defined and the mutated header ahead of the
// real ones on the include path, and once with the real headers (HIRED_MUTANT undefined):
// - skip_decision_barrier, compaction_off_by_one (block_topk.cuh): BlockTopK, run alone by
//   topk_kernel, disagrees with hired::top_k_ascending;
// - pack_compaction_off_by_one, pack_gather_off_by_one (selection.cuh): pack_kernel's CSR
//   compaction and feature gather make the fused harness disagree with the CPU path;
// - qk_dot_off_by_one, qk_skip_exponentials_barrier (cls_scores.cuh): BlockQkScores's dot
//   product skips the last channel, or warp 0 sums the exponentials before the other warps
//   wrote them; the fused harness on q/k input disagrees with the CPU path and the scores
//   (cls_scores_qk_kernel) differ from hired::qk_scores'.
#include "fused_harness.hpp"
#include "hired/emulator/cuda.hpp"  // first: the CUDA dialect on the host
#include "hired/qk_scores.hpp"
#include "hired/topk.hpp"
#include "standalone_kernels.cuh"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace hired::kernels {
namespace {

using namespace standalone;
using emu::Options;
using emu::Schedule;
using hired_test::Input;

constexpr std::int32_t kUnwritten = -7;

// One row, every token eligible. True when the emulated kernel agrees with
// hired::top_k_ascending (list and count); an emulator error (deadlock, mismatched warp
// collective) counts as disagreement.
template <int Threads>
bool agrees_with_cpu(const std::vector<float>& scores, std::int32_t k, Schedule schedule) {
  const auto n = static_cast<std::int32_t>(scores.size());
  std::vector<std::int32_t> kept(scores.size(), kUnwritten);
  std::int32_t count = kUnwritten;
  const TopKParams params{.scores = scores.data(), .score_stride = n, .rows = 1, .tokens = n,
                          .k = &k, .kept = kept.data(), .count = &count};
  try {
    emu::launch_with(Options{schedule, false}, topk_kernel<Threads>, rows_grid(params),
                     dim3(Threads), params);
  } catch (const emu::KernelError&) {
    return false;
  }
  const std::vector<std::int32_t> want = top_k_ascending(scores.data(), n, k);
  if (count != static_cast<std::int32_t>(want.size())) return false;
  kept.resize(want.size());
  return kept == want;
}

std::vector<float> random_scores(std::mt19937& rng, std::int32_t n) {
  std::vector<float> out(static_cast<std::size_t>(n));
  const bool tied = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& v : out) v = tied ? 0.25f * std::uniform_int_distribution<int>(0, 2)(rng) : u(rng);
  return out;
}

// Disagreements among `cases` seeded random rows (64 threads, both schedules).
[[maybe_unused]] int disagreements(unsigned seed, int cases) {
  std::mt19937 rng(seed);
  int wrong = 0;
  for (int i = 0; i < cases; ++i) {
    const std::int32_t n = std::uniform_int_distribution<std::int32_t>(2, 200)(rng);
    const std::vector<float> scores = random_scores(rng, n);
    const std::int32_t k = std::uniform_int_distribution<std::int32_t>(1, n)(rng);
    wrong += !agrees_with_cpu<64>(scores, k, i % 2 == 0 ? Schedule::forward : Schedule::reverse);
  }
  return wrong;
}

// The rows of the two single-case tests below. 32 threads own one token each (N = 32). The
// thread that owns digit 0xC1 (8.0f's top key byte; bins are dealt 8 per thread in descending
// digit order) is thread 7, so without the barrier that publishes a radix decision, under
// Schedule::reverse threads 31..8 read the decision before thread 7 writes it: they see the
// one the previous launch left (digit 0xC0 of 2.0f, from `previous`). Thread 20 then counts
// its 8.0f as above the class instead of in it, and thread 0, which read the right decision,
// adds the class's one token again: count 2 where the CPU keeps 1.
struct DecisionRows {
  std::vector<float> previous = std::vector<float>(32, 1.0f), current = previous;
  DecisionRows() {
    previous[0] = 2.0f;
    current[20] = 8.0f;
  }
};

// k = N keeps every token; 2 tokens per thread (32 threads, N = 64): a compaction loop that
// stops one item early never writes each thread's second one.
[[maybe_unused]] std::vector<float> compaction_row() {
  std::mt19937 rng(43);
  return random_scores(rng, 64);
}

// Disagreements with the CPU path among `cases` batches that keep tokens: one image of 600 x
// 600 pixels (2 x 2 tiles + the full image) with a 4 x 4 token grid (8 x 8 for q/k) and a
// P = 1 image, both modes, every newline policy.
template <int Threads = 32>
int fused_disagreements(unsigned seed, int cases, Input input = Input::attention,
                        bool forward_only = false) {
  std::mt19937 rng(seed);
  int wrong = 0;
  for (int i = 0; i < cases; ++i) {
    hired_test::FusedCase c;
    c.input = input;
    c.qk_ties = false;  // a wrong exponential must not hide behind an equal stale one
    c.heads = 3;
    c.head_dim = 4;
    c.config.mode = i % 2 == 0 ? Mode::exact : Mode::reference;
    c.config.budget = Budget::rate(std::uniform_real_distribution<double>(0.2, 1.0)(rng));
    c.config.newline = static_cast<NewlinePolicy>(i % 3);
    c.vision = {336, input == Input::attention ? 4 : 8};  // q/k: N + 1 > 32 keys
    ImageLayout tiled;
    tiled.image_size = Size2{600, 600};
    tiled.grid = {2, 2};
    tiled.partitions = 5;
    c.images = {tiled, ImageLayout{}};
    c.attention = static_cast<Element>(i % 3);
    c.dim = 3;
    c.chunk = 3;
    const hired_test::FusedOutcome outcome = hired_test::run_fused<Threads>(
        rng, c, Options{i % 2 == 0 || forward_only ? Schedule::forward : Schedule::reverse, true});
    if (outcome.rejected || outcome.kept == 0) ADD_FAILURE() << "case " << i << " keeps nothing";
    wrong += !outcome.error.empty();
  }
  return wrong;
}

// The q/k scorer on its own (cls_scores_qk_kernel, 64 threads, 49 keys): cases whose scores
// differ from hired::qk_scores' in at least one bit.
[[maybe_unused]] int qk_score_disagreements(unsigned seed, int cases) {
  constexpr std::int32_t tokens = 48, heads = 2, d = 4, keys = tokens + 1;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  int wrong = 0;
  for (int i = 0; i < cases; ++i) {
    std::vector<float> q(keys * heads * d), k(q.size()), scores(tokens, -1.0f);
    for (float& v : q) v = normal(rng);
    for (float& v : k) v = normal(rng);
    const auto params =
        ClsScoresQkParams<Element::f32>::contiguous(q.data(), k.data(), scores.data(), 1, heads,
                                                    d, tokens);
    const QueryKeyView view{.q = q.data(), .q_row_stride = keys * heads * d, .k = k.data(),
                            .k_row_stride = keys * heads * d, .k_token_stride = heads * d,
                            .rows = 1, .heads = heads, .head_dim = d, .tokens = tokens,
                            .scale = params.scale};
    emu::launch_with(Options{Schedule::forward, true},
                     cls_scores_qk_kernel<Element::f32, 64, 64, 8>, rows_grid(params), dim3(64),
                     params);
    wrong += scores != qk_scores(view, "q/k");
  }
  return wrong;
}

#if !defined(HIRED_MUTANT)  // ---------------- the real headers: the harnesses agree ----------

TEST(BrokenTopK, WithoutMutantsTheHarnessAgrees) {
  EXPECT_EQ(disagreements(41, 100), 0);
  const DecisionRows rows;
  EXPECT_TRUE(agrees_with_cpu<32>(rows.previous, 1, Schedule::reverse));
  EXPECT_TRUE(agrees_with_cpu<32>(rows.current, 1, Schedule::reverse));
  EXPECT_TRUE(agrees_with_cpu<32>(compaction_row(), 64, Schedule::forward));
}

TEST(BrokenFusedSelection, WithoutMutantsTheHarnessAgrees) {
  EXPECT_EQ(fused_disagreements(45, 12), 0);
}

// The q/k input: 64-thread blocks, so that warp 0's sum reads exponentials warp 1 owns.
TEST(BrokenFusedSelectionQk, WithoutMutantsTheHarnessAgrees) {
  EXPECT_EQ(fused_disagreements<64>(48, 12, Input::query_keys), 0);
}

TEST(BrokenQkScores, WithoutMutantsTheScoresAgree) { EXPECT_EQ(qk_score_disagreements(51, 20), 0); }

#elif defined(HIRED_MUTANT_skip_decision_barrier)  // ---------------- block_topk.cuh -------------

// `previous` leaves its decision (thread 7 still publishes it, only late), then `current`
// reads it; see DecisionRows.
TEST(BrokenTopK, MissingBarrierGivesAWrongSelection) {
  const DecisionRows rows;
  agrees_with_cpu<32>(rows.previous, 1, Schedule::reverse);
  EXPECT_FALSE(agrees_with_cpu<32>(rows.current, 1, Schedule::reverse));
}

TEST(BrokenTopK, MissingBarrierBreaksMostRandomCases) {
  const int wrong = disagreements(42, 100);
  RecordProperty("disagreements_of_100", wrong);
  EXPECT_GE(wrong, 50);
}

#elif defined(HIRED_MUTANT_compaction_off_by_one)

// Half the output slots stay unwritten; see compaction_row.
TEST(BrokenTopK, CompactionOffByOneLosesTokens) {
  EXPECT_FALSE(agrees_with_cpu<32>(compaction_row(), 64, Schedule::forward));
}

TEST(BrokenTopK, CompactionOffByOneBreaksMostRandomCases) {
  const int wrong = disagreements(44, 100);
  RecordProperty("disagreements_of_100", wrong);
  EXPECT_GE(wrong, 50);
}

#elif defined(HIRED_MUTANT_pack_compaction_off_by_one)  // ---------------- selection.cuh --------

TEST(BrokenFusedSelection, CompactionOffByOneBreaksEveryCase) {
  EXPECT_EQ(fused_disagreements(46, 12), 12);
}

#elif defined(HIRED_MUTANT_pack_gather_off_by_one)

TEST(BrokenFusedSelection, GatherOffByOneBreaksEveryCase) {
  EXPECT_EQ(fused_disagreements(47, 12), 12);
}

#elif defined(HIRED_MUTANT_qk_dot_off_by_one)  // ---------------- cls_scores.cuh -----------------

TEST(BrokenFusedSelectionQk, DotOffByOneBreaksMostCases) {
  const int wrong = fused_disagreements<64>(49, 12, Input::query_keys);
  RecordProperty("disagreements_of_12", wrong);
  EXPECT_GE(wrong, 8);
}

TEST(BrokenQkScores, DotOffByOneChangesEveryCase) { EXPECT_EQ(qk_score_disagreements(53, 20), 20); }

#elif defined(HIRED_MUTANT_qk_skip_exponentials_barrier)

// Warp 0 then reads warp 1's exponentials before they are written: under the forward schedule
// (under the reverse one warp 1 runs first and writes them in time).
TEST(BrokenFusedSelectionQk, MissingBarrierBreaksMostCases) {
  const int wrong = fused_disagreements<64>(50, 12, Input::query_keys, /*forward_only=*/true);
  RecordProperty("disagreements_of_12", wrong);
  EXPECT_GE(wrong, 6);  // budgets near 100% keep every token whatever the scores
}

TEST(BrokenQkScores, MissingBarrierChangesEveryCase) {
  EXPECT_EQ(qk_score_disagreements(52, 20), 20);
}

#else
#error "broken_kernels_test.cpp: HIRED_MUTANT names a mutant this file has no tests for"
#endif

}  // namespace
}  // namespace hired::kernels

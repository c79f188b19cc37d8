// The emulation tests are not vacuous: topk_kernel built with block_topk.cuh's
// test-only fault hooks (a missing barrier, an off-by-one in the ordered compaction) must give
// results that differ from the CPU path (a wrong list or count, or the emulator reporting the
// broken synchronisation), while the same harness with the faults off agrees with it. The
// same for the fused selection (selection.cuh): an off-by-one in pack_kernel's CSR compaction
// or in its feature gather, and in its q/k input (BlockQkScores, cls_scores.cuh) a dot product
// that skips the last channel or a missing barrier before warp 0 sums the exponentials, must
// make the fused harness disagree with the CPU path, and the q/k scores themselves differ from
// hired::qk_scores'.
//
// Must be its own executable: HIRED_TEST_FAULTS changes the definition of the BlockTopK
// templates, which must not meet the real ones (kernels_test.cpp) in one link.
#define HIRED_TEST_FAULTS
namespace hired_test_faults {
inline bool skip_decision_barrier = false;  // drop the barrier that publishes a radix decision
inline bool compaction_off_by_one = false;  // each thread's compaction loop stops one item early
inline bool pack_compaction_off_by_one = false;  // pack_kernel copies count - 1 kept indices
inline bool pack_gather_off_by_one = false;      // ... and one feature word less per block
inline bool qk_dot_off_by_one = false;             // q . k without the last channel
inline bool qk_skip_exponentials_barrier = false;  // warp 0 sums before the others wrote
}  // namespace hired_test_faults

#include "fused_harness.hpp"
#include "hired/emulator/cuda.hpp"  // first: the CUDA dialect on the host
#include "hired/kernels/block_topk.cuh"
#include "hired/kernels/cls_scores.cuh"
#include "hired/qk_scores.hpp"
#include "hired/topk.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace hired::kernels {
namespace {

using emu::Options;
using emu::Schedule;

constexpr std::int32_t kUnwritten = -7;

struct Fault {
  explicit Fault(bool& flag) : flag_(flag) { flag_ = true; }
  ~Fault() { flag_ = false; }
  Fault(const Fault&) = delete;
  Fault& operator=(const Fault&) = delete;

 private:
  bool& flag_;
};

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
    emu::launch_with(Options{schedule, false}, topk_kernel<Threads>, topk_grid(params),
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
int disagreements(unsigned seed, int cases) {
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

TEST(BrokenTopK, WithoutFaultsTheHarnessAgrees) { EXPECT_EQ(disagreements(41, 100), 0); }

// 32 threads own one token each (N = 32). The thread that owns digit 0xC1 (8.0f's top key
// byte; bins are dealt 8 per thread in descending digit order) is thread 7, so under
// Schedule::reverse threads 31..8 read the decision before thread 7 writes it: they see the
// one the previous launch left (digit 0xC0 of 2.0f). Thread 20 then counts its 8.0f as above
// the class instead of in it, and thread 0, which read the right decision, adds the class's
// one token again: count 2 where the CPU keeps 1.
TEST(BrokenTopK, MissingBarrierGivesAWrongSelection) {
  std::vector<float> previous(32, 1.0f), current(32, 1.0f);
  previous[0] = 2.0f;
  current[20] = 8.0f;
  ASSERT_TRUE(agrees_with_cpu<32>(previous, 1, Schedule::reverse));  // leaves its decision
  const Fault fault(hired_test_faults::skip_decision_barrier);
  EXPECT_FALSE(agrees_with_cpu<32>(current, 1, Schedule::reverse));
}

TEST(BrokenTopK, MissingBarrierBreaksMostRandomCases) {
  const Fault fault(hired_test_faults::skip_decision_barrier);
  const int wrong = disagreements(42, 100);
  RecordProperty("disagreements_of_100", wrong);
  EXPECT_GE(wrong, 50);
}

// k = N keeps every token; 2 tokens per thread, and the faulty loop never writes each
// thread's second one, so half the output slots stay unwritten.
TEST(BrokenTopK, CompactionOffByOneLosesTokens) {
  std::mt19937 rng(43);
  const std::vector<float> scores = random_scores(rng, 64);
  ASSERT_TRUE(agrees_with_cpu<32>(scores, 64, Schedule::forward));
  const Fault fault(hired_test_faults::compaction_off_by_one);
  EXPECT_FALSE(agrees_with_cpu<32>(scores, 64, Schedule::forward));
}

TEST(BrokenTopK, CompactionOffByOneBreaksMostRandomCases) {
  const Fault fault(hired_test_faults::compaction_off_by_one);
  const int wrong = disagreements(44, 100);
  RecordProperty("disagreements_of_100", wrong);
  EXPECT_GE(wrong, 50);
}

// ----------------------------- the fused selection ------------------------------------------

// Disagreements with the CPU path among `cases` batches that keep tokens: one image of 600 x
// 600 pixels (2 x 2 tiles + the full image) with a 4 x 4 token grid (8 x 8 for q/k) and a
// P = 1 image, both modes, every newline policy.
template <int Threads = 32>
int fused_disagreements(unsigned seed, int cases,
                        hired_test::Input input = hired_test::Input::attention,
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
    c.vision = {336, input == hired_test::Input::attention ? 4 : 8};  // q/k: N + 1 > 32 keys
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

TEST(BrokenFusedSelection, WithoutFaultsTheHarnessAgrees) { EXPECT_EQ(fused_disagreements(45, 12), 0); }

TEST(BrokenFusedSelection, CompactionOffByOneBreaksEveryCase) {
  const Fault fault(hired_test_faults::pack_compaction_off_by_one);
  EXPECT_EQ(fused_disagreements(46, 12), 12);
}

TEST(BrokenFusedSelection, GatherOffByOneBreaksEveryCase) {
  const Fault fault(hired_test_faults::pack_gather_off_by_one);
  EXPECT_EQ(fused_disagreements(47, 12), 12);
}

// The q/k input: 64-thread blocks, so that warp 0's sum reads exponentials warp 1 owns.
using hired_test::Input;
TEST(BrokenFusedSelectionQk, WithoutFaultsTheHarnessAgrees) {
  EXPECT_EQ(fused_disagreements<64>(48, 12, Input::query_keys), 0);
}

TEST(BrokenFusedSelectionQk, DotOffByOneBreaksMostCases) {
  const Fault fault(hired_test_faults::qk_dot_off_by_one);
  const int wrong = fused_disagreements<64>(49, 12, Input::query_keys);
  RecordProperty("disagreements_of_12", wrong);
  EXPECT_GE(wrong, 8);
}

// Warp 0 then reads warp 1's exponentials before they are written: under the forward schedule
// (under the reverse one warp 1 runs first and writes them in time).
TEST(BrokenFusedSelectionQk, MissingBarrierBreaksMostCases) {
  const Fault fault(hired_test_faults::qk_skip_exponentials_barrier);
  const int wrong = fused_disagreements<64>(50, 12, Input::query_keys, /*forward_only=*/true);
  RecordProperty("disagreements_of_12", wrong);
  EXPECT_GE(wrong, 6);  // budgets near 100% keep every token whatever the scores
}

// The q/k scorer on its own (cls_scores_qk_kernel, 64 threads, 49 keys): cases whose scores
// differ from hired::qk_scores' in at least one bit.
int qk_score_disagreements(unsigned seed, int cases) {
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
                     cls_scores_qk_kernel<Element::f32, 64, 64, 8>, cls_scores_grid(params),
                     dim3(64), params);
    wrong += scores != qk_scores(view, "q/k");
  }
  return wrong;
}

TEST(BrokenQkScores, WithoutFaultsTheScoresAgree) { EXPECT_EQ(qk_score_disagreements(51, 20), 0); }

TEST(BrokenQkScores, MissingBarrierChangesEveryCase) {
  const Fault fault(hired_test_faults::qk_skip_exponentials_barrier);
  EXPECT_EQ(qk_score_disagreements(52, 20), 20);
}

TEST(BrokenQkScores, DotOffByOneChangesEveryCase) {
  const Fault fault(hired_test_faults::qk_dot_off_by_one);
  EXPECT_EQ(qk_score_disagreements(53, 20), 20);
}

}  // namespace
}  // namespace hired::kernels

// hired/qk_scores.hpp: the one arithmetic every backend uses for CLS scores from q and k.
// Hand-worked values, the accuracy of exp_nonpositive and of the whole softmax against float64,
// the rows a caller may pick, the attention rows (qk_attention) that add up to the same scores
// however the heads are split, and every rejection.
#include "hired/qk_scores.hpp"
#include "hired/scores.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace hired {
namespace {

using qk_math::exp_nonpositive;

// Distance in units in the last place between two positive normal floats.
std::int64_t ulps(float a, float b) {
  return std::abs(static_cast<std::int64_t>(detail::float_bits(a)) -
                  static_cast<std::int64_t>(detail::float_bits(b)));
}

TEST(ExpNonPositive, EdgesAreDefined) {
  EXPECT_EQ(exp_nonpositive(0.0f), 1.0f);
  EXPECT_EQ(exp_nonpositive(-0.0f), 1.0f);
  EXPECT_EQ(exp_nonpositive(2.5f), 1.0f);  // treated as 0: callers pass l - max <= 0
  EXPECT_EQ(exp_nonpositive(-87.5f), 0.0f);
  EXPECT_EQ(exp_nonpositive(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_TRUE(std::isnan(exp_nonpositive(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_GT(exp_nonpositive(-87.0f), 0.0f);
  EXPECT_GE(exp_nonpositive(-87.0f), std::numeric_limits<float>::min());  // normal, not flushed
}

// Every 64th float in [-87, 0] (about 17 million values in all would take too long under the
// sanitizers; this is 260 thousand, spread over the whole range).
TEST(ExpNonPositive, WithinTwoUlpOfExp) {
  std::int64_t worst = 0;
  float worst_at = 0.0f;
  const std::uint32_t last = detail::float_bits(87.0f);
  for (std::uint32_t bits = 0; bits <= last; bits += 64) {
    const float x = -detail::bits_float(bits);
    const float want = static_cast<float>(std::exp(static_cast<double>(x)));
    const std::int64_t error = ulps(exp_nonpositive(x), want);
    if (error > worst) worst = error, worst_at = x;
  }
  RecordProperty("worst_ulps", static_cast<int>(worst));
  EXPECT_LE(worst, 2) << "at x = " << worst_at;
}

QueryKeyView view_of(const std::vector<float>& q, const std::vector<float>& k, std::int64_t rows,
                     std::int64_t heads, std::int64_t head_dim, std::int64_t tokens,
                     float scale) {
  const std::int64_t width = heads * head_dim;
  return {.q = q.data(), .q_row_stride = width, .k = k.data(),
          .k_row_stride = (tokens + 1) * width, .k_token_stride = width, .rows = rows,
          .heads = heads, .head_dim = head_dim, .tokens = tokens, .scale = scale};
}

// A zero query attends uniformly: each of N + 1 = 4 keys gets exactly 1/4 per head.
TEST(QkScores, ZeroQueryIsUniform) {
  const std::vector<float> q(2 * 3, 0.0f), k(4 * 2 * 3, 0.7f);
  const std::vector<float> s = qk_scores(view_of(q, k, 1, 2, 3, 3, qk_scale(3)), "q/k");
  EXPECT_EQ(s, (std::vector<float>{0.5f, 0.5f, 0.5f}));
}

// One key far above the others takes everything: the others' terms flush to exactly 0.
TEST(QkScores, DominantKeyTakesAll) {
  const std::vector<float> q{1.0f};
  const std::vector<float> k{-50.0f, -100.0f, -50.0f, -100.0f, 50.0f};  // the rest: e^-100, e^-150
  const std::vector<float> s = qk_scores(view_of(q, k, 1, 1, 1, 4, 1.0f), "q/k");
  EXPECT_EQ(s, (std::vector<float>{0.0f, 0.0f, 0.0f, 1.0f}));
  // Two keys at the maximum share it exactly; the CLS key's share is not a score.
  const std::vector<float> k2{50.0f, -100.0f, 50.0f, 50.0f, -100.0f};
  const std::vector<float> s2 = qk_scores(view_of(q, k2, 1, 1, 1, 4, 1.0f), "q/k");
  const float third = 1.0f / 3.0f;
  EXPECT_EQ(s2, (std::vector<float>{0.0f, third, third, 0.0f}));
}

TEST(QkScores, ScaleIsOneOverSqrtOfHeadDim) {
  EXPECT_EQ(qk_scale(64), 0.125f);
  EXPECT_EQ(qk_scale(1), 1.0f);
  EXPECT_EQ(qk_scale(3), 1.0f / std::sqrt(3.0f));
  EXPECT_THROW(qk_scale(0), Error);
}

// Against softmax in float64 on random rows: the relative error of each score is within
// 2u (4 (d + 2) L + N + H + 9), u = 2^-24, L = scale * max_t sum_c |q_c k_tc| (which bounds the
// logits and their rounding error), while every logit is within [-40, 40].
TEST(QkScores, CloseToFloat64Softmax) {
  std::mt19937 rng(7);
  double worst_fraction = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const std::int64_t heads = std::uniform_int_distribution<std::int64_t>(1, 4)(rng);
    const std::int64_t d = std::uniform_int_distribution<std::int64_t>(1, 64)(rng);
    const std::int64_t tokens = std::uniform_int_distribution<std::int64_t>(1, 120)(rng);
    const std::int64_t keys = tokens + 1, width = heads * d;
    const float sigma = std::uniform_real_distribution<float>(0.05f, 1.0f)(rng) *
                        std::sqrt(std::sqrt(static_cast<float>(d)));
    std::normal_distribution<float> normal(0.0f, sigma);
    std::vector<float> q(static_cast<std::size_t>(width));
    std::vector<float> k(static_cast<std::size_t>(keys * width));
    for (float& v : q) v = normal(rng);
    for (float& v : k) v = normal(rng);
    const float scale = qk_scale(d);
    const std::vector<float> got = qk_scores(view_of(q, k, 1, heads, d, tokens, scale), "q/k");

    std::vector<double> want(static_cast<std::size_t>(tokens), 0.0);
    double bound = 0;
    for (std::int64_t h = 0; h < heads; ++h) {
      std::vector<double> logit(static_cast<std::size_t>(keys));
      for (std::int64_t t = 0; t < keys; ++t) {
        double dot = 0, magnitude = 0;
        for (std::int64_t c = 0; c < d; ++c) {
          const double product = double{q[h * d + c]} * k[t * width + h * d + c];
          dot += product;
          magnitude += std::abs(product);
        }
        logit[t] = dot * scale;
        bound = std::max(bound, magnitude * scale);
      }
      ASSERT_LE(*std::max_element(logit.begin(), logit.end()) -
                    *std::min_element(logit.begin(), logit.end()),
                80.0);
      const double max = *std::max_element(logit.begin(), logit.end());
      double z = 0;
      for (double& l : logit) z += (l = std::exp(l - max));
      for (std::int64_t j = 0; j < tokens; ++j) want[j] += logit[j + 1] / z;
    }
    const double u = 1.0 / 16777216.0;
    const double allowed = 2 * u * (4.0 * (d + 2) * bound + tokens + heads + 9);
    for (std::int64_t j = 0; j < tokens; ++j) {
      const double relative = std::abs(got[j] - want[j]) / want[j];
      worst_fraction = std::max(worst_fraction, relative / allowed);
      ASSERT_LE(relative, allowed) << "trial " << trial << ", token " << j;
    }
  }
  RecordProperty("worst_fraction_of_bound", testing::PrintToString(worst_fraction));
}

// Listed rows come back in the order asked; padded strides read only the channels in view.
TEST(QkScores, PicksRowsAndHonoursStrides) {
  std::mt19937 rng(8);
  std::normal_distribution<float> normal;
  const std::int64_t rows = 3, heads = 2, d = 3, tokens = 5, keys = tokens + 1, width = heads * d;
  const std::int64_t q_stride = width + 2, k_stride = width + 1;
  std::vector<float> q(static_cast<std::size_t>(rows * q_stride)),
      k(static_cast<std::size_t>(rows * keys * k_stride));
  for (float& v : q) v = normal(rng);
  for (float& v : k) v = normal(rng);
  const QueryKeyView padded{.q = q.data(), .q_row_stride = q_stride, .k = k.data(),
                            .k_row_stride = keys * k_stride, .k_token_stride = k_stride,
                            .rows = rows, .heads = heads, .head_dim = d, .tokens = tokens,
                            .scale = qk_scale(d)};
  // The same values packed densely.
  std::vector<float> dense_q, dense_k;
  for (std::int64_t p = 0; p < rows; ++p) {
    dense_q.insert(dense_q.end(), q.begin() + p * q_stride, q.begin() + p * q_stride + width);
    for (std::int64_t t = 0; t < keys; ++t) {
      const auto from = k.begin() + (p * keys + t) * k_stride;
      dense_k.insert(dense_k.end(), from, from + width);
    }
  }
  const std::vector<float> all = qk_scores(view_of(dense_q, dense_k, rows, heads, d, tokens,
                                                   qk_scale(d)), "q/k");
  EXPECT_EQ(qk_scores(padded, "q/k"), all);
  const std::vector<std::int64_t> picked{2, 0};
  const std::vector<float> some = qk_scores(padded, "q/k", picked);
  ASSERT_EQ(some.size(), 2u * tokens);
  EXPECT_TRUE(std::equal(some.begin(), some.begin() + tokens, all.begin() + 2 * tokens));
  EXPECT_TRUE(std::equal(some.begin() + tokens, some.end(), all.begin()));
}

// A thread-pool runner sees the rows in chunks, in any order: the scores and the error are
// the in-order ones.
struct ChunksBackwards {
  template <class Body>
  void operator()(std::int64_t count, Body&& body) const {
    for (std::int64_t end = count; end > 0; end -= 2) body(std::max<std::int64_t>(end - 2, 0), end);
  }
};

TEST(QkScores, AnyRowRunnerGivesTheSameScoresAndError) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal;
  std::vector<float> q(5 * 6), k(5 * 10 * 6);
  for (float& v : q) v = normal(rng);
  for (float& v : k) v = normal(rng);
  const QueryKeyView v = view_of(q, k, 5, 2, 3, 9, qk_scale(3));
  EXPECT_EQ(qk_scores(v, "q/k", {}, ChunksBackwards{}), qk_scores(v, "q/k"));
  k[(1 * 10 + 2) * 6] = std::numeric_limits<float>::infinity();  // rows 1 and 3 fail:
  k[(3 * 10 + 4) * 6] = std::numeric_limits<float>::infinity();  // row 1 is reported
  try {
    qk_scores(v, "q/k", {}, ChunksBackwards{});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 1, head 0, key 2"), std::string::npos) << e.what();
  }
}

// Init scores as select_tokens takes them: the full-image rows (0, 3, 4 for P = 3, 1, 2)
// scored, the tiles' rows 0 and never read (NaN there is fine).
TEST(QkScores, InitScoresScoreOnlyFullImageRows) {
  const std::vector<ImageLayout> images{{3, {1, 2}, std::nullopt}, {}, {2, {1, 1}, std::nullopt}};
  EXPECT_EQ(full_image_rows(images), (std::vector<std::int64_t>{0, 3, 4}));
  std::mt19937 rng(10);
  std::normal_distribution<float> normal;
  std::vector<float> q(6 * 4), k(6 * 5 * 4);
  for (float& v : q) v = normal(rng);
  for (float& v : k) v = normal(rng);
  for (const std::int64_t tile : {1, 2, 5}) q[tile * 4] = std::numeric_limits<float>::quiet_NaN();
  const QueryKeyView v = view_of(q, k, 6, 2, 2, 4, qk_scale(2));
  const std::vector<float> init = qk_init_scores(v, images, "init");
  const std::vector<float> full = qk_scores(v, "init", std::vector<std::int64_t>{0, 3, 4});
  ASSERT_EQ(init.size(), 6u * 4);
  for (std::int64_t row = 0, i = 0; row < 6; ++row) {
    const bool scored = row == 0 || row == 3 || row == 4;
    for (std::int64_t j = 0; j < 4; ++j)
      EXPECT_EQ(init[row * 4 + j], scored ? full[i * 4 + j] : 0.0f) << row << ", " << j;
    i += scored;
  }
  const std::vector<ImageLayout> fewer{{3, {1, 2}, std::nullopt}};
  EXPECT_THROW(qk_init_scores(v, fewer, "init"), Error);  // 3 partitions, 6 rows
}

std::string error_of(const QueryKeyView& v, std::vector<std::int64_t> rows = {}) {
  try {
    qk_scores(v, "init q/k", rows);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(QkScores, RejectsBadInputNamingIt) {
  std::vector<float> q(4, 0.5f), k(5 * 4, 0.25f);  // 1 row, 2 heads of 2 channels, 5 keys
  QueryKeyView v = view_of(q, k, 1, 2, 2, 4, qk_scale(2));
  EXPECT_EQ(error_of(v), "");

  k[(3 * 4) + 2] = std::numeric_limits<float>::quiet_NaN();  // key 3, channel 2: head 1
  EXPECT_EQ(error_of(v),
            "init q/k: the logit of row 0, head 1, key 3 is not finite (NaN or Inf in q or k, "
            "or q . k overflows)");
  k[(3 * 4) + 2] = 0.25f;
  q[0] = 3e38f;
  k[0] = 3e38f;  // overflows
  EXPECT_NE(error_of(v).find("row 0, head 0, key 0 is not finite"), std::string::npos);
  q[0] = 0.5f;
  k[0] = 0.25f;

  EXPECT_EQ(error_of(v, {1}), "init q/k: row 1 outside [0, 1)");
  QueryKeyView bad = v;
  bad.scale = 0.0f;
  EXPECT_EQ(error_of(bad), "init q/k: scale 0 must be finite and positive");
  bad = v;
  bad.k = nullptr;
  EXPECT_EQ(error_of(bad), "init q/k: null q or k");
  bad = v;
  bad.heads = 0;
  EXPECT_EQ(error_of(bad), "init q/k: rows 1, heads 0, head_dim 2 and N 4 must be positive");
}

// A zero query attends uniformly: every key of every head gets exactly 1/4, CLS included.
TEST(QkAttention, ZeroQueryIsUniform) {
  const std::vector<float> q(2 * 3, 0.0f), k(4 * 2 * 3, 0.7f);
  EXPECT_EQ(qk_attention(view_of(q, k, 1, 2, 3, 3, qk_scale(3)), "q/k"),
            std::vector<float>(2 * 4, 0.25f));
}

// The heads of a view, [first, first + count): what one rank of a tensor-parallel host holds.
QueryKeyView heads_of(QueryKeyView v, std::int64_t first, std::int64_t count) {
  v.q += first * v.head_dim;
  v.k += first * v.head_dim;
  v.heads = count;
  return v;
}

// The rows summed over heads by sum_heads are qk_scores bit for bit; and the heads split in
// any way, each part's rows gathered in head order, give the same rows: every parallel degree
// keeps the same tokens.
TEST(QkAttention, RowsAddUpToTheScoresHoweverTheHeadsAreSplit) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 50; ++trial) {
    const std::int64_t rows = std::uniform_int_distribution<std::int64_t>(1, 4)(rng);
    const std::int64_t heads = std::uniform_int_distribution<std::int64_t>(1, 8)(rng);
    const std::int64_t d = std::uniform_int_distribution<std::int64_t>(1, 24)(rng);
    const std::int64_t tokens = std::uniform_int_distribution<std::int64_t>(1, 90)(rng);
    const std::int64_t keys = tokens + 1, width = heads * d;
    std::normal_distribution<float> normal(0.0f, 1.5f);
    std::vector<float> q(static_cast<std::size_t>(rows * width)),
        k(static_cast<std::size_t>(rows * keys * width));
    for (float& x : q) x = normal(rng);
    for (float& x : k) x = normal(rng);
    // q as a strided view: row p's CLS query is row p's key 0 (as in a fused qkv chunk).
    const QueryKeyView v{.q = k.data(), .q_row_stride = keys * width, .k = k.data(),
                         .k_row_stride = keys * width, .k_token_stride = width, .rows = rows,
                         .heads = heads, .head_dim = d, .tokens = tokens, .scale = qk_scale(d)};
    const std::vector<float> attention = qk_attention(v, "q/k");
    ASSERT_EQ(attention.size(), static_cast<std::size_t>(rows * heads * keys));
    EXPECT_EQ(sum_heads(attention.data(), rows, heads, keys, "rows"), qk_scores(v, "q/k"))
        << "trial " << trial;

    const std::int64_t split = std::uniform_int_distribution<std::int64_t>(0, heads)(rng);
    std::vector<float> gathered;
    const std::vector<float> low = split > 0 ? qk_attention(heads_of(v, 0, split), "q/k")
                                             : std::vector<float>();
    const std::vector<float> high = split < heads
                                        ? qk_attention(heads_of(v, split, heads - split), "q/k")
                                        : std::vector<float>();
    for (std::int64_t p = 0; p < rows; ++p) {
      gathered.insert(gathered.end(), low.begin() + p * split * keys,
                      low.begin() + (p + 1) * split * keys);
      gathered.insert(gathered.end(), high.begin() + p * (heads - split) * keys,
                      high.begin() + (p + 1) * (heads - split) * keys);
    }
    EXPECT_EQ(gathered, attention) << "trial " << trial << ", heads split at " << split;
  }
}

TEST(QkAttention, RejectsWhatQkScoresRejects) {
  std::vector<float> q(4, 0.5f), k(5 * 4, 0.25f);  // 1 row, 2 heads of 2 channels, 5 keys
  const QueryKeyView v = view_of(q, k, 1, 2, 2, 4, qk_scale(2));
  k[(3 * 4) + 2] = std::numeric_limits<float>::infinity();  // key 3, channel 2: head 1
  try {
    qk_attention(v, "final q/k");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "final q/k: the logit of row 0, head 1, key 3 is not finite (NaN or Inf in q "
                 "or k, or q . k overflows)");
  }
  QueryKeyView bad = v;
  bad.rows = 0;
  EXPECT_THROW(qk_attention(bad, "q/k"), Error);
}

}  // namespace
}  // namespace hired

// The fused selection (select_kernel + pack_kernel, hired/kernels/selection.cuh) run by the
// host emulator on one batch and compared with the CPU path: sum_heads (attention rows) or
// qk_scores (CLS queries and keys) + select_tokens (budgets, kept indices, requested) and
// pack_plan + a plain host gather (source rows, lengths, packed feature words). Shared by
// selection_kernel_test.cpp and broken_kernels_test.cpp.
//
// Every output buffer is followed by guard words that must survive the launch; a case can
// squeeze one capacity (kept, rows or workspace) one below what it needs, and then the status
// bit must be set and the squeezed output (or, for the workspace, every output) untouched.
#pragma once

#include "hired/emulator/cuda.hpp"  // first: the CUDA dialect on the host
#include "hired/half.hpp"
#include "hired/kernels/plan.hpp"
#include "hired/kernels/selection.cuh"
#include "hired/qk_scores.hpp"
#include "hired/scores.hpp"
#include "hired/selection.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace hired_test {

using hired::kernels::Element;

enum class Squeeze { none, kept, rows, workspace };

/// What select_kernel scores: attention rows, or CLS queries and keys.
enum class Input { attention, query_keys };

struct FusedCase {
  hired::DropConfig config;  // mode, budget, alpha; config.newline is the packing policy
  hired::VisionGrid vision;
  std::vector<hired::ImageLayout> images;
  Input input = Input::attention;
  Element attention = Element::f32;  // the element type of either input
  int heads = 2;
  int head_dim = 3;   // query_keys only
  int q_padding = 0;  // query_keys: extra channels between rows of q, between keys of k
  int k_padding = 0;
  bool qk_ties = true;  // query_keys: mostly tied keys; false: every value drawn at random
  int feature_bytes = 4;  // 2: f16/bf16 words, 4: f32 words
  int dim = 8, chunk = 8;
  int row_padding = 0;  // feature rows are dim + row_padding words apart
  Squeeze squeeze = Squeeze::none;
};

/// What a run covered (for coverage counters) and the first disagreement, if any.
struct FusedOutcome {
  bool rejected = false;  // the core rejected the batch, and so did plan_selection
  std::int64_t kept = 0, rows = 0, newlines = 0, outside_box = 0;
  std::string error;      // empty: everything agreed
};

namespace detail {

template <Element E>
hired::kernels::storage_t<E> encode(float v) {
  if constexpr (E == Element::f32) return v;
  else if constexpr (E == Element::f16) return hired::float_to_half(v);
  else return hired::float_to_bf16(v);
}

// Attention values with many exact ties between tokens: a few levels, sometimes all equal.
template <Element E>
std::vector<hired::kernels::storage_t<E>> random_attention(std::mt19937& rng, std::int64_t rows,
                                                           std::int64_t heads,
                                                           std::int64_t keys) {
  std::vector<hired::kernels::storage_t<E>> out(static_cast<std::size_t>(rows * heads * keys));
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (std::int64_t p = 0; p < rows; ++p) {
    const int kind = std::uniform_int_distribution<int>(0, 3)(rng);
    const int levels = std::uniform_int_distribution<int>(1, 4)(rng);
    for (std::int64_t i = p * heads * keys; i < (p + 1) * heads * keys; ++i) {
      float v = u(rng);
      if (kind == 0) v = 0.25f;
      else if (kind == 1) v = 0.125f * static_cast<float>(std::uniform_int_distribution<int>(0, levels)(rng));
      else if (kind == 2 && u(rng) < 0.3f) v = 0.0f;
      out[static_cast<std::size_t>(i)] = encode<E>(v);
    }
  }
  return out;
}

// Queries and keys with many exact ties: multiples of 1/4 (exact in f16 and bf16, exact dot
// products), keys repeating a few rows, sometimes every key the same.
template <Element E>
std::vector<hired::kernels::storage_t<E>> random_query_keys(std::mt19937& rng, std::int64_t rows,
                                                            std::int64_t keys,
                                                            std::int64_t width,
                                                            std::int64_t stride, bool ties) {
  std::vector<hired::kernels::storage_t<E>> out(static_cast<std::size_t>(rows * keys * stride),
                                                encode<E>(-1.5f));  // padding: never read
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (std::int64_t p = 0; p < rows; ++p) {
    const int kind = ties ? std::uniform_int_distribution<int>(0, 3)(rng) : 3;
    const std::int64_t distinct = std::uniform_int_distribution<std::int64_t>(1, 4)(rng);
    for (std::int64_t t = 0; t < keys; ++t) {
      const std::int64_t source = kind == 0 ? 0 : kind == 1 ? t % distinct : t;
      for (std::int64_t c = 0; c < width; ++c) {
        const auto at = [&](std::int64_t key) {
          return static_cast<std::size_t>((p * keys + key) * stride + c);
        };
        std::uniform_int_distribution<int> quarters(-6, 6);
        const float drawn = kind == 3 ? normal(rng) : 0.25f * static_cast<float>(quarters(rng));
        out[at(t)] = encode<E>(source != t ? hired::kernels::to_float<E>(out[at(source)]) : drawn);
      }
    }
  }
  return out;
}

constexpr std::int64_t kGuards = 4;
constexpr std::int64_t kGuard64 = 0x6a6a6a6a6a6a6a6aLL;

template <class T>
std::vector<T> guarded(std::int64_t size, T fill) {
  return std::vector<T>(static_cast<std::size_t>(std::max<std::int64_t>(size, 0) + kGuards), fill);
}

template <class T>
bool all_equal(const std::vector<T>& v, T value, std::size_t from = 0) {
  return std::all_of(v.begin() + static_cast<std::ptrdiff_t>(std::min(from, v.size())), v.end(),
                     [&](const T& x) { return x == value; });
}

template <class T>
std::string mismatch(const char* what, const std::vector<T>& got, const std::vector<T>& want,
                     std::size_t count) {
  for (std::size_t i = 0; i < count; ++i)
    if (got[i] != want[i]) {
      std::ostringstream out;
      out << what << "[" << i << "]: kernel " << +got[i] << ", CPU " << +want[i];
      return out.str();
    }
  return {};
}

template <Element E, class Word, int Threads>
FusedOutcome run(std::mt19937& rng, const FusedCase& c, const hired::emu::Options& options) {
  using namespace hired;
  using namespace hired::kernels;
  FusedOutcome outcome;
  const std::int64_t tokens = c.vision.tokens(), keys = tokens + 1;
  const std::int64_t rows = total_partitions(c.images);
  // The inputs, and the CPU path's scores of them.
  using Storage = storage_t<E>;
  std::vector<Storage> init, final_attention;  // attention rows, or q/k [rows, keys, stride]
  std::vector<float> init_scores, final_scores;
  const std::int64_t width = std::int64_t{c.heads} * c.head_dim;
  const std::int64_t qk_stride = width + c.q_padding, k_stride = width + c.k_padding;
  std::vector<Storage> q_init, q_final;
  if (c.input == Input::attention) {
    init = random_attention<E>(rng, rows, c.heads, keys);
    final_attention = random_attention<E>(rng, rows, c.heads, keys);
    std::vector<float> widened(init.size()), widened_final(init.size());
    for (std::size_t i = 0; i < init.size(); ++i) {
      widened[i] = to_float<E>(init[i]);
      widened_final[i] = to_float<E>(final_attention[i]);
    }
    init_scores = sum_heads(widened.data(), rows, c.heads, keys, "init");
    final_scores = sum_heads(widened_final.data(), rows, c.heads, keys, "final");
  } else {
    // q: one CLS row per partition, qk_stride apart; k: [rows, keys, k_stride].
    q_init = random_query_keys<E>(rng, rows, 1, width, qk_stride, c.qk_ties);
    q_final = random_query_keys<E>(rng, rows, 1, width, qk_stride, c.qk_ties);
    init = random_query_keys<E>(rng, rows, keys, width, k_stride, c.qk_ties);
    final_attention = random_query_keys<E>(rng, rows, keys, width, k_stride, c.qk_ties);
    // Only full-image rows of the init layer may be read: poison the others.
    const std::vector<std::int64_t> full_rows = full_image_rows(c.images);
    const Storage nan = encode<E>(std::numeric_limits<float>::quiet_NaN());
    for (std::int64_t p = 0; p < rows; ++p)
      if (std::find(full_rows.begin(), full_rows.end(), p) == full_rows.end()) {
        std::fill_n(q_init.begin() + p * qk_stride, width, nan);
        std::fill_n(init.begin() + p * keys * k_stride, keys * k_stride, nan);
      }
    const auto widen = [](const std::vector<Storage>& v) {
      std::vector<float> out(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) out[i] = to_float<E>(v[i]);
      return out;
    };
    const std::vector<float> qi = widen(q_init), ki = widen(init), qf = widen(q_final),
                             kf = widen(final_attention);
    const auto view = [&](const std::vector<float>& q, const std::vector<float>& k) {
      return QueryKeyView{.q = q.data(), .q_row_stride = qk_stride, .k = k.data(),
                          .k_row_stride = keys * k_stride, .k_token_stride = k_stride,
                          .rows = rows, .heads = c.heads, .head_dim = c.head_dim,
                          .tokens = tokens, .scale = qk_scale(c.head_dim)};
    };
    init_scores = qk_init_scores(view(qi, ki), c.images, "init");
    final_scores = qk_scores(view(qf, kf), "final");
  }

  std::optional<Selection> selection;
  std::optional<PackPlan> pack;
  try {
    selection = select_tokens(init_scores, final_scores, c.images, c.vision, c.config);
    pack = pack_plan(*selection, c.config.newline);
  } catch (const Error&) {
  }
  std::optional<SelectionPlan> plan;
  try {
    plan = plan_selection(c.images, c.vision, c.config, c.config.newline, true);
  } catch (const Error& e) {
    if (pack) outcome.error = std::string("plan_selection rejects what the core accepts: ") + e.what();
    outcome.rejected = true;
    return outcome;
  }
  if (!pack) {
    outcome.error = "plan_selection accepts what the core rejects";
    return outcome;
  }

  const std::int64_t kept_total = static_cast<std::int64_t>(selection->kept.size());
  const std::int64_t rows_total = static_cast<std::int64_t>(pack->rows.size());
  outcome.kept = kept_total;
  outcome.rows = rows_total;
  outcome.newlines = std::count(pack->rows.begin(), pack->rows.end(), PackPlan::newline);
  outcome.outside_box = kept_total - (rows_total - outcome.newlines);
  if (plan->requested != selection->requested) return outcome.error = "requested", outcome;
  for (std::size_t b = 0; b < c.images.size(); ++b) {
    if (plan->kept_known() &&
        plan->kept[b] != selection->kept_in_image(static_cast<std::int64_t>(b)))
      return outcome.error = "predicted kept of image " + std::to_string(b), outcome;
    if (plan->rows_known() && plan->rows[b] != pack->offsets[b + 1] - pack->offsets[b])
      return outcome.error = "predicted rows of image " + std::to_string(b), outcome;
  }
  if (c.config.mode == hired::Mode::exact &&
      (!plan->kept_known() || plan->rows_known() == (c.config.newline == NewlinePolicy::kept_rows)))
    return outcome.error = "sizes should follow from geometry", outcome;
  if (kept_total > plan->max_kept || rows_total > plan->max_rows)
    return outcome.error = "upper bounds", outcome;

  // Features: random words; the host gather.
  std::uniform_int_distribution<std::uint32_t> bits;
  const std::int64_t dim = c.dim, stride = c.dim + c.row_padding;  // padding words: never read
  std::vector<Word> features(static_cast<std::size_t>(rows * tokens * stride)), newline(dim);
  for (Word& w : features) w = static_cast<Word>(bits(rng));
  for (Word& w : newline) w = static_cast<Word>(bits(rng));
  std::vector<Word> expected_packed(static_cast<std::size_t>(rows_total * dim));
  for (std::int64_t r = 0; r < rows_total; ++r) {
    const std::int64_t source = pack->rows[r];
    for (std::int64_t d = 0; d < dim; ++d)
      expected_packed[r * dim + d] = source >= 0 ? features[source * stride + d] : newline[d];
  }

  // The kernels, capacities exact unless squeezed (an empty output cannot be).
  Squeeze squeeze = c.squeeze;
  if ((squeeze == Squeeze::kept && kept_total == 0) || (squeeze == Squeeze::rows && rows_total == 0))
    squeeze = Squeeze::none;
  const std::int64_t kept_capacity = kept_total - (squeeze == Squeeze::kept ? 1 : 0);
  const std::int64_t rows_capacity = rows_total - (squeeze == Squeeze::rows ? 1 : 0);
  const std::int64_t workspace_bytes =
      plan->workspace_bytes - (squeeze == Squeeze::workspace ? 16 : 0);
  constexpr std::uint64_t kWorkspaceGuard = 0x5b5b5b5b5b5b5b5bull;
  std::vector<std::uint64_t> workspace(static_cast<std::size_t>(workspace_bytes / 8 + kGuards),
                                       kWorkspaceGuard);
  auto budgets = guarded<std::int64_t>(rows, kGuard64), kept = guarded<std::int64_t>(kept_capacity, kGuard64);
  auto kept_offsets = guarded<std::int64_t>(rows + 1, kGuard64);
  auto partition_offsets = guarded<std::int64_t>(static_cast<std::int64_t>(c.images.size()) + 1, kGuard64);
  auto source_rows = guarded<std::int64_t>(rows_capacity, kGuard64);
  auto lengths = guarded<std::int64_t>(static_cast<std::int64_t>(c.images.size()), kGuard64);
  const Word word_guard = static_cast<Word>(0x7c7c7c7cu);
  auto packed = guarded<Word>(rows_capacity * dim, word_guard);
  auto totals = guarded<std::int64_t>(2, kGuard64);
  unsigned status = 0xdeadbeefu;

  const auto attention_select = select_params(
      *plan,
      AttentionInput<E>{.init = init.data(), .final = final_attention.data(),
                        .row_stride = c.heads * keys, .head_stride = keys, .heads = c.heads},
      plan->images.data(), workspace.data(), workspace_bytes);
  const auto qk_select = select_params(
      *plan,
      QueryKeyInput<E>{
          .init = {.q = q_init.data(), .q_row_stride = qk_stride, .k = init.data(),
                   .k_row_stride = keys * k_stride, .k_token_stride = k_stride},
          .final = {.q = q_final.data(), .q_row_stride = qk_stride, .k = final_attention.data(),
                    .k_row_stride = keys * k_stride, .k_token_stride = k_stride},
          .heads = c.heads, .head_dim = c.head_dim, .scale = qk_scale(c.head_dim)},
      plan->images.data(), workspace.data(), workspace_bytes);
  PackParams packing =
      pack_params(*plan, plan->images.data(), workspace.data(), workspace_bytes, c.config.newline);
  packing.chunk = c.chunk;
  packing.csr = {.budgets = budgets.data(),
                 .kept = kept.data(),
                 .kept_capacity = kept_capacity,
                 .kept_offsets = kept_offsets.data(),
                 .partition_offsets = partition_offsets.data()};
  packing.rows = {.features = features.data(),
                  .row_stride = stride,
                  .element_bytes = static_cast<std::int32_t>(sizeof(Word)),
                  .image_newline = newline.data(),
                  .dim = c.dim,
                  .packed = packed.data(),
                  .source_rows = source_rows.data(),
                  .rows_capacity = rows_capacity,
                  .lengths = lengths.data()};
  packing.totals = totals.data();
  packing.status = &status;
  try {
    if (c.input == Input::attention)
      hired::emu::launch_with(options, select_kernel<AttentionInput<E>, Threads>,
                              select_grid(attention_select), dim3(Threads), attention_select);
    else
      hired::emu::launch_with(options, select_kernel<QueryKeyInput<E>, Threads>,
                              select_grid(qk_select), dim3(Threads), qk_select);
    hired::emu::launch_with(options, pack_kernel<Word, Threads>, pack_grid(packing), dim3(Threads),
                            packing);
  } catch (const hired::emu::KernelError& e) {
    return outcome.error = std::string("emulator: ") + e.what(), outcome;
  }

  // Guards first: nothing may be written past any buffer.
  const auto guards_ok = [](const auto& v, auto guard) {
    return std::all_of(v.end() - kGuards, v.end(), [&](auto x) { return x == guard; });
  };
  if (!all_equal(workspace, kWorkspaceGuard, static_cast<std::size_t>(workspace_bytes / 8)))
    return outcome.error = "workspace written past its size", outcome;
  if (!guards_ok(budgets, kGuard64) || !guards_ok(kept, kGuard64) ||
      !guards_ok(kept_offsets, kGuard64) || !guards_ok(partition_offsets, kGuard64) ||
      !guards_ok(source_rows, kGuard64) || !guards_ok(lengths, kGuard64) ||
      !guards_ok(packed, word_guard) || !guards_ok(totals, kGuard64))
    return outcome.error = "an output written past its capacity", outcome;

  if (squeeze == Squeeze::workspace) {
    if (status != status::workspace_too_small)
      return outcome.error = "status " + std::to_string(status) + " for a small workspace", outcome;
    if (!all_equal(workspace, kWorkspaceGuard) || !all_equal(budgets, kGuard64) ||
        !all_equal(kept, kGuard64) || !all_equal(source_rows, kGuard64) ||
        !all_equal(packed, word_guard) || !all_equal(totals, kGuard64))
      return outcome.error = "written with a small workspace", outcome;
    return outcome;
  }
  const unsigned want_status = squeeze == Squeeze::kept   ? status::kept_capacity
                               : squeeze == Squeeze::rows ? status::rows_capacity
                                                            : 0u;
  if (status != want_status)
    return outcome.error = "status " + std::to_string(status) + ", expected " +
                           std::to_string(want_status), outcome;
  if (totals[0] != kept_total || totals[1] != rows_total)
    return outcome.error = "totals " + std::to_string(totals[0]) + ", " +
                           std::to_string(totals[1]), outcome;

  // CSR.
  std::vector<std::int64_t> want_budgets(static_cast<std::size_t>(rows));
  for (std::int64_t p = 0; p < rows; ++p) want_budgets[p] = selection->budget(p);
  const std::vector<std::int64_t> want_kept(selection->kept.begin(), selection->kept.end());
  std::string error = mismatch("budgets", budgets, want_budgets, want_budgets.size());
  if (error.empty())
    error = mismatch("kept_offsets", kept_offsets, selection->kept_offsets, kept_offsets.size() - kGuards);
  if (error.empty())
    error = mismatch("partition_offsets", partition_offsets, selection->partition_offsets,
                     partition_offsets.size() - kGuards);
  if (error.empty() && squeeze == Squeeze::kept && !all_equal(kept, kGuard64))
    error = "kept written beyond a small capacity";
  if (error.empty() && squeeze != Squeeze::kept)
    error = mismatch("kept", kept, want_kept, want_kept.size());
  if (!error.empty()) return outcome.error = error, outcome;

  // Packing.
  std::vector<std::int64_t> want_lengths;
  for (std::size_t b = 0; b + 1 < pack->offsets.size(); ++b)
    want_lengths.push_back(pack->offsets[b + 1] - pack->offsets[b]);
  if (squeeze == Squeeze::rows) {
    if (!all_equal(source_rows, kGuard64) || !all_equal(packed, word_guard))
      return outcome.error = "packed beyond a small capacity", outcome;
    return outcome;
  }
  error = mismatch("lengths", lengths, want_lengths, want_lengths.size());
  if (error.empty()) error = mismatch("source_rows", source_rows, pack->rows, pack->rows.size());
  if (error.empty()) error = mismatch("packed", packed, expected_packed, expected_packed.size());
  outcome.error = error;
  return outcome;
}

}  // namespace detail

/// Runs case `c` with `Threads`-wide blocks under `options`; see the file comment.
template <int Threads>
FusedOutcome run_fused(std::mt19937& rng, const FusedCase& c, const hired::emu::Options& options) {
  using detail::run;
  const bool wide = c.feature_bytes == 4;
  switch (c.attention) {
    case Element::f32:
      return wide ? run<Element::f32, std::uint32_t, Threads>(rng, c, options)
                  : run<Element::f32, std::uint16_t, Threads>(rng, c, options);
    case Element::f16:
      return wide ? run<Element::f16, std::uint32_t, Threads>(rng, c, options)
                  : run<Element::f16, std::uint16_t, Threads>(rng, c, options);
    case Element::bf16: break;
  }
  return wide ? run<Element::bf16, std::uint32_t, Threads>(rng, c, options)
              : run<Element::bf16, std::uint16_t, Threads>(rng, c, options);
}

}  // namespace hired_test

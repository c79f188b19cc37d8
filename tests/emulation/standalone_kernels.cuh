// Kernels the product does not launch, kept as test building blocks: each runs one block
// primitive of hired/kernels (block_head_sums, BlockQkScores, BlockTopK, BlockBudget) over a
// batch, one block per row or image, so that the emulation tests can compare a primitive on
// its own with the CPU path. tests/emulation/emulation_kernels.cu compiles them with nvcc at
// kThreads, so they are proven to build for the GPU too.
//
// Status: the optional `status` word of each params struct is ORed with the status bits of
// hired/kernels/params.hpp (the caller zeroes it): invalid_input for inputs out of contract
// (the scores are then written but meaningless), unsupported (and nothing written) for shapes
// beyond a kernel's template limits or a block that is not BlockThreads wide, and a budget
// bit per image budget_kernel rejects.
#pragma once

#include "hired/kernels/block_topk.cuh"
#include "hired/kernels/budget.cuh"
#include "hired/kernels/cls_scores.cuh"
#include "hired/kernels/device.hpp"
#include "hired/kernels/params.hpp"
#include "hired/qk_math.hpp"

#include <cstdint>

namespace hired::kernels::standalone {

/// Block size of the nvcc instantiations (the product's, kSelectThreads).
inline constexpr int kThreads = 256;

// ------------------------------------ CLS scores --------------------------------------------

/// Parameters of cls_scores_kernel. Element (p, h, t) of the attention rows is at
/// attention[p * row_stride + h * head_stride + t] (t = 0..tokens, 0 is the CLS key), score
/// (p, j) at scores[p * score_stride + j].
template <Element E>
struct ClsScoresParams {
  const storage_t<E>* attention = nullptr;
  std::int64_t row_stride = 0;
  std::int64_t head_stride = 0;
  float* scores = nullptr;
  std::int64_t score_stride = 0;
  std::int32_t rows = 0;
  std::int32_t heads = 0;
  std::int32_t tokens = 0;     // N; each head row has N + 1 keys
  unsigned* status = nullptr;  // optional, see the file comment

  /// Contiguous [rows, heads, N + 1] attention and [rows, N] scores.
  static ClsScoresParams contiguous(const storage_t<E>* attention, float* scores,
                                    std::int32_t rows, std::int32_t heads, std::int32_t tokens,
                                    unsigned* status = nullptr) {
    const std::int64_t keys = std::int64_t{tokens} + 1;
    return {.attention = attention, .row_stride = heads * keys, .head_stride = keys,
            .scores = scores, .score_stride = tokens, .rows = rows, .heads = heads,
            .tokens = tokens, .status = status};
  }
};

/// Parameters of cls_scores_qk_kernel: row p's CLS query and keys as a QueryKeyRows (channel
/// c = h * head_dim + i), score (p, j) at scores[p * score_stride + j]. The arithmetic is
/// hired/qk_scores.hpp's, so the scores equal hired::qk_scores' bit for bit when `scale` is
/// hired::qk_scale(head_dim).
template <Element E>
struct ClsScoresQkParams {
  QueryKeyRows<E> layer;
  float* scores = nullptr;
  std::int64_t score_stride = 0;
  std::int32_t rows = 0;
  std::int32_t heads = 0;
  std::int32_t head_dim = 0;
  std::int32_t tokens = 0;     // N; N + 1 keys
  float scale = 0.0f;          // logit scale; hired::qk_scale(head_dim) for standard attention
  unsigned* status = nullptr;  // optional, see the file comment

  /// Contiguous q, k [rows, N + 1, heads * head_dim], [rows, N] scores, scale qk_scale(d).
  static ClsScoresQkParams contiguous(const storage_t<E>* q, const storage_t<E>* k,
                                      float* scores, std::int32_t rows, std::int32_t heads,
                                      std::int32_t head_dim, std::int32_t tokens,
                                      unsigned* status = nullptr) {
    const std::int64_t width = std::int64_t{heads} * head_dim;
    const std::int64_t row = (std::int64_t{tokens} + 1) * width;
    return {.layer = {.q = q, .q_row_stride = row, .k = k, .k_row_stride = row,
                      .k_token_stride = width},
            .scores = scores, .score_stride = tokens, .rows = rows, .heads = heads,
            .head_dim = head_dim, .tokens = tokens, .scale = qk_math::scale(head_dim),
            .status = status};
  }
};

/// Whether cls_scores_qk_kernel<E, Threads, MaxTokens, MaxHeadDim> accepts these shapes (the
/// kernel asserts it too).
template <int MaxTokens = kSelectMaxTokens, int MaxHeadDim = kSelectMaxHeadDim, Element E>
inline bool cls_scores_qk_supports(const ClsScoresQkParams<E>& p) {
  return p.rows > 0 && p.heads > 0 && p.tokens > 0 && p.tokens <= MaxTokens &&
         p.head_dim > 0 && p.head_dim <= MaxHeadDim;
}

/// One block per row.
template <class Params>
inline dim3 rows_grid(const Params& params) {
  return dim3(static_cast<unsigned>(params.rows));
}

/// block_head_sums over a batch of attention rows.
template <Element E, int BlockThreads>
HIRED_KERNEL void __launch_bounds__(BlockThreads) cls_scores_kernel(const ClsScoresParams<E> p) {
  static_assert(BlockThreads >= 32 && BlockThreads <= 1024);
  const std::int64_t row = blockIdx.x;
  const bool valid = block_head_sums<E, BlockThreads>(p.attention + row * p.row_stride,
                                                      p.head_stride, p.heads, p.tokens,
                                                      p.scores + row * p.score_stride);
  if (!valid && p.status != nullptr) atomicOr(p.status, status::invalid_input);
}

/// BlockQkScores over a batch of rows. Requires cls_scores_qk_supports<MaxTokens,
/// MaxHeadDim>(p) and blockDim.x == BlockThreads.
template <Element E, int BlockThreads, int MaxTokens = kSelectMaxTokens,
          int MaxHeadDim = kSelectMaxHeadDim>
HIRED_KERNEL void __launch_bounds__(BlockThreads, 1)  // one block per row: few blocks
    cls_scores_qk_kernel(const ClsScoresQkParams<E> p) {
  using Scores = BlockQkScores<BlockThreads, MaxTokens, MaxHeadDim>;
  __shared__ typename Scores::TempStorage storage;
  if (!(p.tokens > 0 && p.tokens <= MaxTokens && p.heads > 0 && p.head_dim > 0 &&
        p.head_dim <= MaxHeadDim && blockDim.x == BlockThreads)) {
    // With device asserts compiled out: fail visibly, write nothing.
    HIRED_KERNEL_ASSERT(!"cls_scores_qk_kernel: unsupported shape or block size");
    if (p.status != nullptr && threadIdx.x == 0) atomicOr(p.status, status::unsupported);
    return;
  }
  const std::int64_t row = blockIdx.x;
  const QueryKeyRows<E>& layer = p.layer;
  const bool finite = Scores(storage).template scores<E>(
      layer.q + row * layer.q_row_stride, layer.k + row * layer.k_row_stride,
      layer.k_token_stride, p.heads, p.head_dim, p.tokens, p.scale,
      p.scores + row * p.score_stride);
  if (!finite && p.status != nullptr) atomicOr(p.status, status::invalid_input);
}

// --------------------------------------- top-k ----------------------------------------------

/// Parameters of topk_kernel: row p keeps its k[p] best tokens among those boxes[p] admits.
struct TopKParams {
  const float* scores = nullptr;  // row p: scores[p * score_stride + j], j < tokens
  std::int64_t score_stride = 0;
  std::int32_t rows = 0;
  std::int32_t tokens = 0;              // n, <= the kernel's MaxTokens
  const std::int32_t* k = nullptr;      // [rows]; negative means 0, above eligible means all
  const EligibleBox* boxes = nullptr;   // [rows], or nullptr: every token eligible
  std::int32_t side = 0;                // grid side when boxes is set: tokens == side * side
  std::int32_t* kept = nullptr;         // [rows, tokens]: row p's kept indices, ascending,
                                        // at kept[p * tokens + 0 .. count[p]); rest untouched
  std::int32_t* count = nullptr;        // [rows]; -1 for an unsupported n or block size
};

/// Whether topk_kernel<Threads, MaxTokens> accepts these shapes.
template <int MaxTokens = kSelectMaxTokens>
inline bool topk_supports(const TopKParams& p) {
  return p.rows > 0 && p.tokens > 0 && p.tokens <= MaxTokens &&
         (p.boxes == nullptr || (p.side > 0 && p.side * p.side == p.tokens));
}

/// BlockTopK over a batch of rows, one block each; see TopKParams. Requires
/// topk_supports<MaxTokens>(p) and blockDim.x == BlockThreads.
template <int BlockThreads, int MaxTokens = kSelectMaxTokens>
HIRED_KERNEL void __launch_bounds__(BlockThreads) topk_kernel(const TopKParams p) {
  using TopK = BlockTopK<BlockThreads, MaxTokens>;
  __shared__ typename TopK::TempStorage storage;
  const std::int64_t row = blockIdx.x;
  if (p.tokens < 0 || p.tokens > MaxTokens || blockDim.x != BlockThreads) {
    // With device asserts compiled out: fail visibly, write no indices.
    HIRED_KERNEL_ASSERT(!"topk_kernel: unsupported n or block size");
    if (threadIdx.x == 0) p.count[row] = -1;
    return;
  }
  const Eligibility eligible =
      p.boxes == nullptr ? Eligibility{} : Eligibility{p.side, p.boxes[row]};
  const int count = TopK(storage).select(p.scores + row * p.score_stride, p.tokens, p.k[row],
                                         eligible, p.kept + row * p.tokens);
  if (threadIdx.x == 0) p.count[row] = count;
}

// -------------------------------------- budgets ---------------------------------------------

/// Parameters of budget_kernel: the budgets of every image of a batch under one rule.
struct BudgetParams {
  const float* init_scores = nullptr;  // full image of image b: init_scores + offset * stride
  std::int64_t score_stride = 0;       // >= rule.tokens
  const BudgetImage* images = nullptr; // [image_count]
  std::int32_t image_count = 0;
  BudgetRule rule;
  std::int32_t* budgets = nullptr;  // [sum P]; image b writes [offset, offset + P)
  unsigned* status = nullptr;       // optional: |= the budget bit of each rejected image
};

/// Launch-wide checks: whether budget_kernel<.., MaxTokens, ..> accepts `p`.
template <int MaxTokens = kSelectMaxTokens>
inline bool budget_supports(const BudgetParams& p) {
  return p.score_stride >= p.rule.tokens && budget_rule_supported<MaxTokens>(p.rule);
}

/// One block per image.
inline dim3 budget_grid(const BudgetParams& params) {
  return dim3(static_cast<unsigned>(params.image_count));
}

/// BlockBudget over a batch of images, one block each. Requires blockDim.x == BlockThreads;
/// images budget_image_status rejects (or every image, when the block size or the stride is
/// wrong) get -1 budgets and their status bit.
template <int BlockThreads, int MaxTokens = kSelectMaxTokens, int MaxTiles = kBudgetMaxTiles>
HIRED_KERNEL void __launch_bounds__(BlockThreads) budget_kernel(const BudgetParams p) {
  using Budget = BlockBudget<BlockThreads, MaxTokens, MaxTiles>;
  __shared__ typename Budget::TempStorage storage;

  const int tid = static_cast<int>(threadIdx.x);
  const BudgetImage image = p.images[blockIdx.x];
  std::int32_t* const budgets = p.budgets + image.offset;
  const unsigned why = blockDim.x != BlockThreads ? status::unsupported
                       : p.score_stride < p.rule.tokens
                           ? status::bad_params
                           : budget_image_status<MaxTokens, MaxTiles>(p.rule, image);
  if (why != 0) {  // block-uniform
    if (image.partitions >= 1 && image.offset >= 0)
      for (std::int64_t i = tid; i < image.partitions; i += blockDim.x) budgets[i] = -1;
    if (tid == 0 && p.status != nullptr) atomicOr(p.status, why);
    return;
  }
  Budget budget(storage);
  budget.compute(p.rule, image, p.init_scores + image.offset * p.score_stride);
  for (std::int64_t i = tid; i < image.partitions; i += BlockThreads)
    budgets[i] = budget.budgets()[i];
}

}  // namespace hired::kernels::standalone

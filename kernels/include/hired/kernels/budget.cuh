// Per-image token budgets on the device (DESIGN §2a reference, §2b exact): one block per
// image computes exactly what hired::allocate_reference / hired::allocate_exact compute on
// the host (include/hired/budget.hpp), partition budget for partition budget, with no
// allocation and no host synchronisation.
//
// Inputs are prepared on the host from the batch layout (which the host knows without a
// sync): one BudgetImage per image, see below. Per image the block
// 1. recomputes the split T -> (B0, S, K) with the core's formulas (hired/budget_formula.hpp,
//    shared with the host),
// 2. marks the K best full-image init scores with BlockTopK (higher score first, the lower
//    index on ties — hired::top_k_ascending's rule),
// 3. reference: counts marks per flat row-major band of N / (P - 1) tokens (shared atomics)
//    and applies reference_formula::tile_budget per tile;
//    exact: accumulates every marked token's integer overlap area with each tile (canvas
//    coordinates scaled by `side`, as hired::tile_content_weights does) into shared 64-bit
//    counters (atomicAdd on unsigned long long, sm_60+), then one thread runs
//    hired::apportion_capped with the unpad capacities and gives the leftover back to the
//    full image (up to N),
// 4. writes budgets[offset + 0 .. offset + P): the full image, then the tiles in raster order.
//
// Unsupported or invalid images (more than MaxTiles tiles, an inconsistent grid, reference
// mode's division-by-zero cases K == 0 with S > 0 and N not split into equal bands, ...) are
// not computed: the block writes -1 to every budget of the image (when P >= 1) and ORs
// 1 << BudgetStatus into *invalid (when given). budget_image_status() is the same check as a
// host function: a dispatcher runs it on its host copy of the images before the launch and
// raises the core's error instead (so the flag only fires on a dispatcher bug).
#pragma once

#include "hired/apportion.hpp"
#include "hired/budget_formula.hpp"
#include "hired/host_device.hpp"
#include "hired/kernels/block_topk.cuh"
#include "hired/kernels/device.hpp"
#include "hired/kernels/params.hpp"

#include <cmath>
#include <cstdint>

namespace hired::kernels {

/// One block per image.
inline dim3 budget_grid(const BudgetParams& params) {
  return dim3(static_cast<unsigned>(params.image_count));
}

/// The budgets of every image of a batch; see the file comment and BudgetParams. Requires
/// blockDim.x == BlockThreads; images outside the supported range are flagged, not computed.
template <int BlockThreads, int MaxTokens = kTopKMaxTokens, int MaxTiles = kBudgetMaxTiles>
HIRED_KERNEL void __launch_bounds__(BlockThreads) budget_kernel(const BudgetParams p) {
  static_assert(MaxTiles > 0, "at least one tile");
  using TopK = BlockTopK<BlockThreads, MaxTokens>;
  using formula::min64;
  __shared__ typename TopK::TempStorage topk_storage;
  __shared__ std::int32_t marked[MaxTokens];
  __shared__ unsigned long long accumulated[MaxTiles];  // band counts / content weights
  __shared__ std::int64_t weight[MaxTiles], capacity[MaxTiles], share[MaxTiles];

  const int tid = static_cast<int>(threadIdx.x);
  const BudgetImage image = p.images[blockIdx.x];
  std::int32_t* const budgets = p.budgets + image.offset;
  const BudgetStatus status = budget_image_status<MaxTokens, MaxTiles>(p, image);
  if (status != BudgetStatus::ok || blockDim.x != BlockThreads) {  // block-uniform
    if (image.partitions >= 1 && image.offset >= 0)
      for (std::int64_t i = tid; i < image.partitions; i += blockDim.x) budgets[i] = -1;
    if (tid == 0 && p.invalid != nullptr)
      atomicOr(p.invalid, 1u << static_cast<int>(status == BudgetStatus::ok
                                                     ? BudgetStatus::bad_params
                                                     : status));
    return;
  }

  const std::int64_t tokens = p.tokens, partitions = image.partitions;
  const std::int64_t tiles = partitions - 1;
  const bool exact = p.mode == BudgetMode::exact;
  const BudgetSplit s =
      exact ? exact_formula::split(min64(image.total, partitions * tokens), tokens,
                                          p.alpha)
            : reference_formula::split(partitions, tokens, p.rate, p.alpha);

  // With S <= 0 every tile gets 0 (exact: apportion_capped of 0 seats) and the full image B0.
  const bool marking = tiles > 0 && s.tiles > 0;
  for (int i = tid; i < MaxTiles; i += BlockThreads) accumulated[i] = 0;
  __syncthreads();  // zeros before the atomics (select may return without a barrier)
  int count = 0;
  if (marking) {
    const float* scores = p.init_scores + image.offset * p.score_stride;
    count = TopK(topk_storage).select(scores, p.tokens, static_cast<int>(s.marks),
                                      Eligibility{}, marked);
  }
  __syncthreads();  // marked[] complete

  if (marking && !exact) {
    const int band = static_cast<int>(tokens / tiles);
    for (int i = tid; i < count; i += BlockThreads)
      atomicAdd(&accumulated[marked[i] / band], 1ull);  // flat row-major bands
  } else if (marking) {
    const std::int64_t n = p.side, tile = std::int64_t{p.tile_px} * p.side;
    const std::int64_t rows = image.grid_rows, cols = image.grid_cols;
    for (int i = tid; i < count; i += BlockThreads) {
      const std::int64_t r = marked[i] / n, c = marked[i] % n;
      const std::int64_t y0 = n * image.pad_top + r * image.resized_height;
      const std::int64_t y1 = y0 + image.resized_height;
      const std::int64_t x0 = n * image.pad_left + c * image.resized_width;
      const std::int64_t x1 = x0 + image.resized_width;
      // Only the tiles the token's region touches (every other overlap is 0).
      const std::int64_t ti_end = min64((y1 - 1) / tile + 1, rows);
      const std::int64_t tj_end = min64((x1 - 1) / tile + 1, cols);
      for (std::int64_t ti = y0 / tile; ti < ti_end; ++ti) {
        const std::int64_t height = formula::overlap(y0, y1, ti * tile, (ti + 1) * tile);
        for (std::int64_t tj = x0 / tile; tj < tj_end; ++tj) {
          const std::int64_t width = formula::overlap(x0, x1, tj * tile, (tj + 1) * tile);
          if (height * width != 0)
            atomicAdd(&accumulated[ti * cols + tj],
                      static_cast<unsigned long long>(height * width));
        }
      }
    }
  }
  __syncthreads();  // accumulated[] complete

  if (tid != 0) return;
  if (!exact) {
    budgets[0] = static_cast<std::int32_t>(s.full_image);
    for (std::int64_t i = 0; i < tiles; ++i)
      budgets[1 + i] = marking ? static_cast<std::int32_t>(reference_formula::tile_budget(
                                     static_cast<std::int64_t>(accumulated[i]), s.marks,
                                     s.tiles, tokens))
                               : 0;
    return;
  }
  std::int64_t leftover = s.tiles;
  if (tiles > 0) {
    const EligibleBox& b = image.box;
    const std::int64_t n = p.side;
    for (std::int64_t i = 0; i < tiles; ++i) {
      const std::int64_t ti = i / image.grid_cols, tj = i % image.grid_cols;
      capacity[i] = formula::overlap(b.row_begin, b.row_end, ti * n, (ti + 1) * n) *
                    formula::overlap(b.col_begin, b.col_end, tj * n, (tj + 1) * n);
      weight[i] = marking ? static_cast<std::int64_t>(accumulated[i]) : 0;
    }
    leftover = apportion_capped(weight, capacity, tiles, s.tiles, share);
    for (std::int64_t i = 0; i < tiles; ++i) budgets[1 + i] = static_cast<std::int32_t>(share[i]);
  }
  // What the tiles cannot hold goes back to the full image, up to its N tokens.
  budgets[0] = static_cast<std::int32_t>(s.full_image + min64(leftover, tokens - s.full_image));
}

}  // namespace hired::kernels

// Per-image token budgets on the device (docs/DESIGN.md, sections 3 (reference mode) and 4
// (exact mode)): BlockBudget, a block-level building block (CUB style) of select_kernel
// (selection.cuh), computes exactly what hired::allocate_reference / hired::allocate_exact
// compute on the host (include/hired/budget.hpp), partition budget for partition budget, with
// no allocation and no host synchronisation.
//
// Its input is one BudgetImage, prepared on the host from the batch layout (which the host
// knows without a sync), the batch's BudgetRule and the image's full-image init scores. The
// block
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
// 4. leaves the P budgets in shared memory: the full image, then the tiles in raster order.
//
// Images it cannot compute (more than MaxTiles tiles, an inconsistent grid, reference mode's
// division-by-zero cases K == 0 with S > 0 and N not split into equal bands, ...) are out of
// its contract: budget_image_status() (params.hpp) says which, and why, as a status bit. A
// caller runs it first: select_kernel flags such an image's partitions, a host dispatcher
// raises the core's error before launching (so the flag only fires on a dispatcher bug).
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

/// The budgets of one image, computed by a whole block (see the file comment); select_kernel
/// runs it once per partition. Contract of compute(rule, image, init_full):
/// - called by all BlockThreads threads (blockDim.x == BlockThreads) with block-uniform
///   arguments, for an image with budget_image_status<MaxTokens, MaxTiles>(rule, image) == 0;
/// - `init_full` is the image's N full-image init scores (global or shared memory; only read
///   when the tiles share a budget);
/// - on return (after a barrier) every thread sees budgets()[0 .. P): the full image, then the
///   tiles in raster order. The storage may be reused after a further barrier.
template <int BlockThreads, int MaxTokens = kSelectMaxTokens, int MaxTiles = kBudgetMaxTiles>
class BlockBudget {
 public:
  static_assert(MaxTiles > 0, "at least one tile");
  using TopK = BlockTopK<BlockThreads, MaxTokens>;

  struct TempStorage {
    typename TopK::TempStorage topk;
    std::int32_t marked[MaxTokens];
    unsigned long long accumulated[MaxTiles];  // band counts / content weights
    std::int64_t weight[MaxTiles], capacity[MaxTiles], share[MaxTiles];
    std::int32_t budgets[MaxTiles + 1];
  };

  HIRED_DEVICE explicit BlockBudget(TempStorage& storage) : s_(storage) {}

  HIRED_DEVICE void compute(const BudgetRule& rule, const BudgetImage& image,
                            const float* init_full) {
    using formula::min64;
    const int tid = static_cast<int>(threadIdx.x);
    const std::int64_t tokens = rule.tokens, partitions = image.partitions;
    const std::int64_t tiles = partitions - 1;
    const bool exact = rule.mode == BudgetMode::exact;
    if (!exact && reference_formula::keeps_everything(rule.rate)) {  // uniform across the block
      for (std::int64_t p = tid; p < partitions; p += BlockThreads)
        s_.budgets[p] = static_cast<std::int32_t>(tokens);
      __syncthreads();  // budgets[] visible to every thread
      return;
    }
    const BudgetSplit s =
        exact ? exact_formula::split(min64(image.total, partitions * tokens), tokens, rule.alpha)
              : reference_formula::split(partitions, tokens, rule.rate, rule.alpha);

    // With S <= 0 every tile gets 0 (exact: apportion_capped of 0 seats) and the full image B0.
    const bool marking = tiles > 0 && s.tiles > 0;
    for (int i = tid; i < MaxTiles; i += BlockThreads) s_.accumulated[i] = 0;
    __syncthreads();  // zeros before the atomics (select may return without a barrier)
    int count = 0;
    if (marking)
      count = TopK(s_.topk).select(init_full, rule.tokens, static_cast<int>(s.marks),
                                   Eligibility{}, s_.marked);
    __syncthreads();  // marked[] complete

    if (marking && !exact) {
      const int band = static_cast<int>(tokens / tiles);
      for (int i = tid; i < count; i += BlockThreads)
        atomicAdd(&s_.accumulated[s_.marked[i] / band], 1ull);  // flat row-major bands
    } else if (marking) {
      const std::int64_t n = rule.side, tile = std::int64_t{rule.tile_px} * rule.side;
      const std::int64_t rows = image.grid_rows, cols = image.grid_cols;
      for (int i = tid; i < count; i += BlockThreads) {
        const std::int64_t r = s_.marked[i] / n, c = s_.marked[i] % n;
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
              atomicAdd(&s_.accumulated[ti * cols + tj],
                        static_cast<unsigned long long>(height * width));
          }
        }
      }
    }
    __syncthreads();  // accumulated[] complete

    if (tid == 0) finish(rule, image, s, marking);
    __syncthreads();  // budgets[] visible to every thread
  }

  HIRED_DEVICE const std::int32_t* budgets() const { return s_.budgets; }

 private:
  // One thread: the apportionment (exact) or the float32 band ratios (reference).
  HIRED_DEVICE void finish(const BudgetRule& rule, const BudgetImage& image, const BudgetSplit& s,
                           bool marking) {
    using formula::min64;
    const std::int64_t tokens = rule.tokens, tiles = std::int64_t{image.partitions} - 1;
    std::int32_t* const budgets = s_.budgets;
    if (rule.mode != BudgetMode::exact) {
      budgets[0] = static_cast<std::int32_t>(s.full_image);
      for (std::int64_t i = 0; i < tiles; ++i)
        budgets[1 + i] = marking ? static_cast<std::int32_t>(reference_formula::tile_budget(
                                       static_cast<std::int64_t>(s_.accumulated[i]), s.marks,
                                       s.tiles, tokens))
                                 : 0;
      return;
    }
    std::int64_t leftover = s.tiles;
    if (tiles > 0) {
      const EligibleBox& b = image.box;
      const std::int64_t n = rule.side;
      for (std::int64_t i = 0; i < tiles; ++i) {
        const std::int64_t ti = i / image.grid_cols, tj = i % image.grid_cols;
        s_.capacity[i] = formula::overlap(b.row_begin, b.row_end, ti * n, (ti + 1) * n) *
                         formula::overlap(b.col_begin, b.col_end, tj * n, (tj + 1) * n);
        s_.weight[i] = marking ? static_cast<std::int64_t>(s_.accumulated[i]) : 0;
      }
      leftover = apportion_capped(s_.weight, s_.capacity, tiles, s.tiles, s_.share);
      for (std::int64_t i = 0; i < tiles; ++i)
        budgets[1 + i] = static_cast<std::int32_t>(s_.share[i]);
    }
    // What the tiles cannot hold goes back to the full image, up to its N tokens.
    budgets[0] =
        static_cast<std::int32_t>(s.full_image + min64(leftover, tokens - s.full_image));
  }

  TempStorage& s_;
};

}  // namespace hired::kernels

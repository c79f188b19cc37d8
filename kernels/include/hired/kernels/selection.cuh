// The whole selection of a batch in two launches (docs/DESIGN.md, section 5), no allocation,
// no host synchronisation, capturable in a CUDA graph. It computes exactly what the CPU path
// computes: hired::sum_heads or hired::qk_scores + hired::select_tokens (budgets, kept
// indices) and hired::pack_plan + a gather (packed features in LLaVA-Next order).
//
// Launch 1, select_kernel (SelectParams): one block per partition, grid sum P. Block p
// 1. scores its image's full-image row of layer l_init and recomputes the image's budgets
//    with BlockBudget (budget.cuh) — every partition of an image repeats this, which is cheap
//    and keeps the launch free of inter-block traffic,
// 2. scores its own row of layer l_final and keeps its budget's best tokens with BlockTopK
//    (exact mode: only tokens inside the unpad box, as select_tokens does),
// 3. writes to the workspace (SelectionWorkspace): its status, kept count, kept indices at
//    kept + p * N, and what packing needs from it: the kept tokens inside the unpad box, per
//    token row (row_counts) and as a row mask.
// The scores come from attention rows (AttentionInput: heads summed as sum_heads does; every
// value of row p of both layers is validated, NaN, Inf or a negative value sets
// status::invalid_input) or from the CLS queries and keys (QueryKeyInput: BlockQkScores, the
// arithmetic of hired/qk_scores.hpp; a non-finite logit sets status::invalid_input).
// Launch 2, pack_kernel (PackParams): grid (sum P, feature chunks). Every block derives its
// offsets from the O(sum P) workspace metadata (a block-wide pass over all partitions: kept
// counts before it, packed rows before its image and before its tile row), so no block waits
// for another. Then it writes its part of the CSR outputs and of the packing: the kept
// tokens' rows in LLaVA-Next order (full image; tiles as one (rows*N) x (cols*N) raster with
// the unpad box's rows and columns only; image_newline rows by policy; P == 1 as pack_plan),
// source_rows and a copy of the feature rows (raw 2- or 4-byte words, so f32/f16/bf16 need no
// conversion). Column chunk blockIdx.y of every row is copied by block (p, y).
//
// Status: select_kernel writes one status word per partition; pack_kernel ORs them with its
// own checks (layout, capacities, missing image_newline) and block (0, 0) stores the result
// in *status (the status bits of params.hpp). A too-small workspace or output is reported
// there and nothing is written out of bounds. The host launchers (launch.hpp) check what they
// can first.
#pragma once

#include "hired/kernels/block_topk.cuh"
#include "hired/kernels/budget.cuh"
#include "hired/kernels/cls_scores.cuh"
#include "hired/kernels/device.hpp"
#include "hired/kernels/params.hpp"

#include <cstdint>
#include <type_traits>

namespace hired::kernels {

namespace detail {

/// The workspace's arrays; Writable for select_kernel, read-only for pack_kernel.
template <bool Writable>
struct WorkspaceView {
  template <class T>
  using ptr = std::conditional_t<Writable, T*, const T*>;
  using byte_ptr = ptr<unsigned char>;

  ptr<unsigned> status;
  ptr<std::int32_t> count, in_box;
  ptr<unsigned> row_mask;
  ptr<std::int32_t> row_counts, kept;

  HIRED_DEVICE WorkspaceView(std::conditional_t<Writable, void*, const void*> base,
                             const SelectionWorkspace& w) {
    const auto bytes = static_cast<byte_ptr>(base);
    status = reinterpret_cast<ptr<unsigned>>(bytes + w.status);
    count = reinterpret_cast<ptr<std::int32_t>>(bytes + w.count);
    in_box = reinterpret_cast<ptr<std::int32_t>>(bytes + w.in_box);
    row_mask = reinterpret_cast<ptr<unsigned>>(bytes + w.row_mask);
    row_counts = reinterpret_cast<ptr<std::int32_t>>(bytes + w.row_counts);
    kept = reinterpret_cast<ptr<std::int32_t>>(bytes + w.kept);
  }
};

/// The image holding partition p: the last one whose offset is <= p (offsets ascend in a
/// valid layout; in any layout the result is a valid index).
HIRED_DEVICE int image_of(const BudgetImage* images, int count, std::int64_t p) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (images[mid].offset <= p) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

HIRED_DEVICE std::int32_t clamp_side(std::int32_t v, std::int32_t side) {
  return v < 0 ? 0 : v > side ? side : v;
}

/// The part of the unpad box (tile-grid coordinates) inside tile (ti, tj), in the tile's own
/// token coordinates; empty when the box misses the tile.
HIRED_DEVICE EligibleBox tile_box(const EligibleBox& box, std::int32_t ti, std::int32_t tj,
                                  std::int32_t side) {
  return {clamp_side(box.row_begin - ti * side, side), clamp_side(box.row_end - ti * side, side),
          clamp_side(box.col_begin - tj * side, side), clamp_side(box.col_end - tj * side, side)};
}

/// Whether pack_plan puts an image_newline after the full image of a P == 1 image.
HIRED_DEVICE bool single_partition_newline(PackNewline policy, std::int32_t kept) {
  return policy == PackNewline::every_row || (policy == PackNewline::kept_rows && kept > 0);
}

}  // namespace detail

/// One block per partition.
template <class Input>
inline dim3 select_grid(const SelectParams<Input>& params) {
  return dim3(static_cast<unsigned>(params.partitions));
}

/// One block per (partition, column chunk of the feature rows).
inline dim3 pack_grid(const PackParams& params) {
  const PackRows& rows = params.rows;
  const bool copies = rows.features != nullptr && rows.dim > 0 && params.chunk > 0;
  return dim3(static_cast<unsigned>(params.partitions),
              copies ? static_cast<unsigned>((rows.dim + params.chunk - 1) / params.chunk) : 1u);
}

namespace detail {

/// Block-uniform: marks partition p of select_kernel's workspace with status `why` and keeps
/// nothing of it.
template <int BlockThreads>
HIRED_DEVICE void flag_partition(const WorkspaceView<true>& ws, std::int64_t p, std::int32_t side,
                                 unsigned why) {
  for (std::int32_t r = static_cast<std::int32_t>(threadIdx.x); r < side; r += BlockThreads)
    ws.row_counts[p * side + r] = 0;
  if (threadIdx.x == 0) {
    ws.status[p] = why;
    ws.count[p] = ws.in_box[p] = 0;
    ws.row_mask[p] = 0;
  }
}

/// How select_kernel's block scores a row, per input kind. init() scores the image's full-image
/// row of l_init (`own` is the block's partition, validated too where the CPU path validates
/// it), final() the block's row of l_final; both write out[0, N) from the owner threads and
/// return false in a thread that saw an invalid value. supported() is the block-uniform check
/// of what the template limits allow.
template <class Input, int BlockThreads, int MaxTokens>
struct SelectScores;

template <Element E, int BlockThreads, int MaxTokens>
struct SelectScores<AttentionInput<E>, BlockThreads, MaxTokens> {
  struct TempStorage {};
  TempStorage& storage;

  HIRED_DEVICE static bool supported(const AttentionInput<E>& in) { return input_supported(in); }

  HIRED_DEVICE static bool row(const storage_t<E>* attention, std::int64_t head_stride, int heads,
                               int tokens, float* out) {
    return block_head_sums<E, BlockThreads>(attention, head_stride, heads, tokens, out);
  }

  HIRED_DEVICE bool init(const AttentionInput<E>& in, std::int64_t full, std::int64_t own,
                         int tokens, float* out) {
    bool valid = row(in.init + full * in.row_stride, in.head_stride, in.heads, tokens, out);
    // The CPU path validates every init row, though only the full image's is used.
    if (own != full)
      valid = row(in.init + own * in.row_stride, in.head_stride, in.heads, tokens, nullptr) &&
              valid;
    return valid;
  }

  HIRED_DEVICE bool final(const AttentionInput<E>& in, std::int64_t own, int tokens, float* out) {
    return row(in.final + own * in.row_stride, in.head_stride, in.heads, tokens, out);
  }
};

template <Element E, int BlockThreads, int MaxTokens>
struct SelectScores<QueryKeyInput<E>, BlockThreads, MaxTokens> {
  using Scores = BlockQkScores<BlockThreads, MaxTokens, kSelectMaxHeadDim>;
  using TempStorage = typename Scores::TempStorage;
  TempStorage& storage;

  HIRED_DEVICE static bool supported(const QueryKeyInput<E>& in) { return input_supported(in); }

  HIRED_DEVICE bool row(const QueryKeyInput<E>& in, const QueryKeyRows<E>& layer,
                        std::int64_t r, int tokens, float* out) {
    return Scores(storage).template scores<E>(layer.q + r * layer.q_row_stride,
                                              layer.k + r * layer.k_row_stride,
                                              layer.k_token_stride, in.heads, in.head_dim,
                                              tokens, in.scale, out);
  }

  // Only the full image's init row: the budgets need no other.
  HIRED_DEVICE bool init(const QueryKeyInput<E>& in, std::int64_t full, std::int64_t,
                         int tokens, float* out) {
    return row(in, in.init, full, tokens, out);
  }

  HIRED_DEVICE bool final(const QueryKeyInput<E>& in, std::int64_t own, int tokens, float* out) {
    return row(in, in.final, own, tokens, out);
  }
};

}  // namespace detail

/// Launch 1; see the file comment. Requires blockDim.x == BlockThreads (else the partition is
/// flagged unsupported). Writes nothing when the launch-wide checks fail (pack_kernel reports
/// them). __launch_bounds__(BlockThreads, 1): the grid is sum P blocks, fewer than the SMs of
/// a GPU, so one resident block per SM suffices and the kernel may use every register one
/// block can have; the q/k variant needs more than 128 per thread to run without spills on
/// sm_61.
template <class Input, int BlockThreads, int MaxTokens = kSelectMaxTokens,
          int MaxTiles = kBudgetMaxTiles>
HIRED_KERNEL void __launch_bounds__(BlockThreads, 1) select_kernel(const SelectParams<Input> p) {
  using Budget = BlockBudget<BlockThreads, MaxTokens, MaxTiles>;
  using TopK = BlockTopK<BlockThreads, MaxTokens>;
  using Scores = detail::SelectScores<Input, BlockThreads, MaxTokens>;
  __shared__ typename Budget::TempStorage budget_storage;
  __shared__ typename Scores::TempStorage score_storage;
  __shared__ float scores[MaxTokens];
  __shared__ std::int32_t row_counts[32];

  const BudgetRule& rule = p.rule;
  const int tid = static_cast<int>(threadIdx.x);
  const std::int64_t partition = blockIdx.x;
  const std::int32_t tokens = rule.tokens, side = rule.side;
  if (!selection_supports<MaxTokens>(p.partitions, p.image_count, tokens, side) ||
      p.workspace == nullptr || partition >= p.partitions)
    return;
  const SelectionWorkspace layout = SelectionWorkspace::layout(p.partitions, tokens, side);
  if (p.workspace_bytes < layout.bytes) return;
  const detail::WorkspaceView<true> ws(p.workspace, layout);

  const BudgetImage image = p.images[detail::image_of(p.images, p.image_count, partition)];
  const std::int64_t index = partition - image.offset;  // within the image
  unsigned status = 0;
  if (blockDim.x != BlockThreads || image.offset < 0 || index < 0 || index >= image.partitions ||
      image.offset + image.partitions > p.partitions || !Scores::supported(p.input))
    status = status::unsupported;
  else
    status = budget_image_status<MaxTokens, MaxTiles>(rule, image);
  if (status != 0) return detail::flag_partition<BlockThreads>(ws, partition, side, status);

  // 1. The image's budgets from its full-image init scores.
  Scores score{score_storage};
  for (std::int32_t r = tid; r < 32; r += BlockThreads) row_counts[r] = 0;
  bool valid = score.init(p.input, image.offset, partition, tokens, scores);
  __syncthreads();  // scores[] complete
  Budget budget(budget_storage);
  budget.compute(rule, image, scores);  // ends with a barrier: scores[] may be overwritten
  const std::int32_t k = budget.budgets()[index];

  // 2. This partition's final scores and its kept tokens.
  valid = score.final(p.input, partition, tokens, scores) && valid;
  if (__syncthreads_or(!valid))  // also the barrier after which scores[] is complete
    return detail::flag_partition<BlockThreads>(ws, partition, side,
                                                status::invalid_input);
  const std::int32_t cols = image.grid_cols;
  const std::int32_t ti = index > 0 ? static_cast<std::int32_t>((index - 1) / cols) : 0;
  const std::int32_t tj = index > 0 ? static_cast<std::int32_t>((index - 1) % cols) : 0;
  const EligibleBox local = detail::tile_box(image.box, ti, tj, side);
  const Eligibility eligible = rule.mode == BudgetMode::exact && index > 0
                                   ? Eligibility{side, local}
                                   : Eligibility{};
  std::int32_t* const kept = ws.kept + partition * tokens;
  const int count = TopK(budget_storage.topk).select(scores, tokens, k, eligible, kept);
  __syncthreads();  // kept[] (global) visible to the block

  // 3. Packing metadata: the kept tokens the unpad box keeps, per token row (tiles only).
  if (index > 0)
    for (int i = tid; i < count; i += BlockThreads) {
      const std::int32_t r = kept[i] / side, c = kept[i] % side;
      if (r >= local.row_begin && r < local.row_end && c >= local.col_begin && c < local.col_end)
        atomicAdd(&row_counts[r], 1);
    }
  __syncthreads();
  for (std::int32_t r = tid; r < side; r += BlockThreads)
    ws.row_counts[partition * side + r] = row_counts[r];
  if (tid == 0) {
    std::int32_t inside = 0;
    unsigned mask = 0;
    for (std::int32_t r = 0; r < side; ++r) {
      inside += row_counts[r];
      mask |= row_counts[r] > 0 ? 1u << r : 0u;
    }
    ws.status[partition] = 0;
    ws.count[partition] = count;
    ws.in_box[partition] = index == 0 ? count : inside;  // the full image is packed whole
    ws.row_mask[partition] = mask;
  }
}

namespace detail {

/// Packed rows attributed to partition q (of image `image`, index qi within it): its kept
/// tokens inside the unpad box, plus the newline rows it ends — P == 1: after the full image;
/// tiles: the last tile of each tile row ends that row's token rows.
struct RowShare {
  std::int64_t tokens = 0, newlines = 0;
};

HIRED_DEVICE RowShare row_share(const WorkspaceView<false>& ws, const BudgetImage& image,
                                std::int64_t q, PackNewline policy, std::int32_t side) {
  // Within the image (a validated layout): 32-bit, so no 64-bit division subroutine below.
  const auto qi = static_cast<std::int32_t>(q - image.offset);
  RowShare out;
  out.tokens = ws.in_box[q];
  if (image.partitions == 1) {
    out.newlines = single_partition_newline(policy, ws.count[q]) ? 1 : 0;
    return out;
  }
  const std::int32_t cols = image.grid_cols;
  if (qi == 0 || (qi - 1) % cols != cols - 1 || policy == PackNewline::none) return out;
  const std::int32_t ti = (qi - 1) / cols;
  if (policy == PackNewline::every_row) {
    out.newlines = formula::overlap(image.box.row_begin, image.box.row_end,
                                    std::int64_t{ti} * side, std::int64_t{ti + 1} * side);
  } else {
    unsigned rows = 0;
    for (std::int32_t tj = 0; tj < cols; ++tj)
      rows |= ws.row_mask[image.offset + 1 + ti * cols + tj];
    out.newlines = __popc(rows);
  }
  return out;
}

}  // namespace detail

/// Launch 2; see the file comment and PackParams. Word is the feature element's storage
/// (std::uint16_t for f16/bf16, std::uint32_t for f32); requires blockDim.x == BlockThreads.
template <class Word, int BlockThreads, int MaxTokens = kSelectMaxTokens>
HIRED_KERNEL void __launch_bounds__(BlockThreads) pack_kernel(const PackParams p) {
  static_assert(sizeof(Word) == 2 || sizeof(Word) == 4, "raw 16- or 32-bit feature words");
  constexpr int kMaxItems = MaxTokens + 32;  // a tile's tokens and up to 32 row newlines
  enum Sum { kept_before, kept_total, rows_before_image, rows_total, rows_above, rows_image,
             newlines_total, sum_count };
  __shared__ unsigned long long sums[sum_count];
  __shared__ unsigned status_bits;
  __shared__ std::int64_t row_start[32];
  __shared__ std::int32_t row_tokens[32], row_before[32], row_item[32];
  __shared__ bool row_newline[32];
  __shared__ std::int64_t item_pos[kMaxItems];
  __shared__ std::int64_t item_source[kMaxItems];
  __shared__ std::int32_t item_count;

  const int tid = static_cast<int>(threadIdx.x);
  const bool reporter = blockIdx.x == 0 && blockIdx.y == 0 && tid == 0;
  const std::int64_t partition = blockIdx.x;
  const std::int32_t tokens = p.tokens, side = p.side;
  const PackCsr& csr = p.csr;
  const PackRows& out = p.rows;
  const bool writes_csr = csr.budgets != nullptr;
  const bool packing = out.lengths != nullptr;
  const bool copying = out.features != nullptr;

  // Launch-wide checks: every block gets the same answer.
  unsigned status = 0;
  const SelectionWorkspace layout = SelectionWorkspace::layout(p.partitions, tokens, side);
  if (!selection_supports<MaxTokens>(p.partitions, p.image_count, tokens, side) ||
      blockDim.x != BlockThreads || p.images == nullptr ||
      (writes_csr && ((csr.kept == nullptr && csr.kept_capacity > 0) ||
                      csr.kept_offsets == nullptr || csr.partition_offsets == nullptr)) ||
      (packing && out.source_rows == nullptr && out.rows_capacity > 0) ||
      (copying && (!packing || (out.packed == nullptr && out.rows_capacity > 0) ||
                   out.dim <= 0 || p.chunk <= 0 || out.row_stride < out.dim ||
                   out.element_bytes != static_cast<std::int32_t>(sizeof(Word)))))
    status = status::unsupported;
  else if (p.workspace == nullptr || p.workspace_bytes < layout.bytes)
    status = status::workspace_too_small;
  if (status != 0) {
    if (reporter && p.status != nullptr) *p.status = status;
    return;
  }
  const detail::WorkspaceView<false> ws(p.workspace, layout);

  // The partition layout: contiguous images of P >= 1 covering [0, partitions).
  bool bad_layout = false;
  for (std::int32_t b = tid; b < p.image_count; b += BlockThreads) {
    const BudgetImage& image = p.images[b];
    const std::int64_t expected =
        b == 0 ? 0 : p.images[b - 1].offset + p.images[b - 1].partitions;
    bad_layout |= image.partitions < 1 || image.offset != expected ||
                  (b == p.image_count - 1 && image.offset + image.partitions != p.partitions) ||
                  (image.partitions > 1 && image.grid_cols < 1);
  }
  if (tid < sum_count) sums[tid] = 0;
  if (tid == 0) status_bits = 0;
  if (__syncthreads_or(bad_layout)) {
    if (reporter && p.status != nullptr) *p.status = status::unsupported;
    return;
  }

  const int b = detail::image_of(p.images, p.image_count, partition);
  const BudgetImage image = p.images[b];
  // Partition indices within an image fit 32 bits (the layout is validated above), which
  // keeps 64-bit division subroutines (and their register spills) out of the kernel.
  const auto index = static_cast<std::int32_t>(partition - image.offset);
  const std::int32_t cols = image.grid_cols;
  const std::int32_t ti = index > 0 ? (index - 1) / cols : 0;
  const std::int32_t tj = index > 0 ? (index - 1) % cols : 0;

  // One pass over all partitions: this block's offsets, the totals and the status.
  {
    std::int64_t local[sum_count] = {};
    unsigned flags = 0;
    for (std::int64_t q = tid; q < p.partitions; q += BlockThreads) {
      const BudgetImage& owner = p.images[detail::image_of(p.images, p.image_count, q)];
      flags |= ws.status[q];
      const std::int32_t count = ws.count[q];
      const detail::RowShare share = detail::row_share(ws, owner, q, p.newline, side);
      const std::int64_t rows = share.tokens + share.newlines;
      local[kept_total] += count;
      if (q < partition) local[kept_before] += count;
      local[rows_total] += rows;
      local[newlines_total] += share.newlines;
      if (q < image.offset) local[rows_before_image] += rows;
      if (owner.offset == image.offset) {
        local[rows_image] += rows;
        const auto qi = static_cast<std::int32_t>(q - image.offset);
        if (index > 0 && qi > 0 && (qi - 1) / cols < ti) local[rows_above] += rows;
      }
    }
    HIRED_UNROLL  // constant indices keep local[] in registers
    for (int s = 0; s < sum_count; ++s)
      if (local[s] != 0) atomicAdd(&sums[s], static_cast<unsigned long long>(local[s]));
    if (flags != 0) atomicOr(&status_bits, flags);
  }
  __syncthreads();
  status = status_bits;
  const auto total = [&](Sum s) { return static_cast<std::int64_t>(sums[s]); };
  if (writes_csr && total(kept_total) > csr.kept_capacity) status |= status::kept_capacity;
  if (packing && total(rows_total) > out.rows_capacity) status |= status::rows_capacity;
  if (copying && total(newlines_total) > 0 && out.image_newline == nullptr)
    status |= status::missing_newline;
  if (reporter) {
    if (p.status != nullptr) *p.status = status;
    if (p.totals != nullptr && (status & status::fatal) == 0) {
      p.totals[0] = total(kept_total);
      p.totals[1] = total(rows_total);
    }
  }
  if ((status & status::fatal) != 0) return;

  const std::int32_t count = ws.count[partition];
  const std::int32_t* const kept = ws.kept + partition * tokens;

  // CSR: sized by sum P and B except `kept`, which needs the capacity.
  if (writes_csr && blockIdx.y == 0) {
    const std::int64_t before = total(kept_before);
    if (tid == 0) {
      csr.budgets[partition] = count;
      csr.kept_offsets[partition] = before;
      if (index == 0) csr.partition_offsets[b] = image.offset;
      if (partition == p.partitions - 1) {
        csr.kept_offsets[p.partitions] = total(kept_total);
        csr.partition_offsets[p.image_count] = p.partitions;
      }
    }
    if ((status & status::kept_capacity) == 0)
      for (std::int32_t i = tid; i < count; i += BlockThreads) csr.kept[before + i] = kept[i];
  }
  if (!packing || (status & status::rows_capacity) != 0) return;

  // Packing: this partition's items (packed position, source row or -1) in shared memory.
  const std::int64_t image_start = total(rows_before_image);
  const std::int64_t tokens64 = tokens;
  if (index == 0) {
    if (blockIdx.y == 0 && tid == 0) out.lengths[b] = total(rows_image);
    for (std::int32_t i = tid; i < count; i += BlockThreads) {
      item_pos[i] = image_start + i;
      item_source[i] = partition * tokens64 + kept[i];
    }
    if (tid == 0) {
      item_count = count;
      if (image.partitions == 1 && detail::single_partition_newline(p.newline, count)) {
        item_pos[count] = image_start + count;
        item_source[count] = -1;
        item_count = count + 1;
      }
    }
  } else {
    // Token row r of this tile is row R = ti * N + r of the tile grid. Its packed rows start
    // after the full image, the tile rows above, the rows above it in this tile row (tokens
    // of every tile + newline) and the tiles to its left.
    const EligibleBox local = detail::tile_box(image.box, static_cast<std::int32_t>(ti),
                                               static_cast<std::int32_t>(tj), side);
    const std::int64_t first_tile = image.offset + 1 + ti * cols;
    for (std::int32_t r = tid; r < side; r += BlockThreads) {
      std::int32_t row = 0, left = 0;
      for (std::int64_t t = 0; t < cols; ++t) {
        const std::int32_t c = ws.row_counts[(first_tile + t) * side + r];
        row += c;
        if (t < tj) left += c;
      }
      const std::int64_t global = ti * side + r;
      row_tokens[r] = row;
      row_before[r] = left;
      row_newline[r] = p.newline == PackNewline::every_row
                           ? global >= image.box.row_begin && global < image.box.row_end
                           : p.newline == PackNewline::kept_rows && row > 0;
    }
    __syncthreads();
    if (tid == 0) {
      std::int64_t at = image_start + ws.count[image.offset] + total(rows_above);
      std::int32_t items = 0;
      for (std::int32_t r = 0; r < side; ++r) {
        row_start[r] = at + row_before[r];
        row_item[r] = items;
        items += ws.row_counts[partition * side + r];
        at += row_tokens[r] + (row_newline[r] ? 1 : 0);
      }
      // The last tile of a tile row ends each token row with its newline.
      if (tj == cols - 1)
        for (std::int32_t r = 0; r < side; ++r)
          if (row_newline[r]) {
            item_pos[items] = row_start[r] + ws.row_counts[partition * side + r];
            item_source[items] = -1;
            ++items;
          }
      item_count = items;
    }
    __syncthreads();
    for (std::int32_t i = tid; i < count; i += BlockThreads) {
      const std::int32_t j = kept[i], r = j / side, c = j % side;
      if (r < local.row_begin || r >= local.row_end || c < local.col_begin || c >= local.col_end)
        continue;  // removed by unpad (reference mode keeps such tokens)
      // Kept indices ascend, so this row's tokens inside the box are contiguous in kept[]:
      // the rank in the row is the distance to the first of them.
      const std::int32_t key = r * side + local.col_begin;
      std::int32_t lo = 0, hi = i;
      while (lo < hi) {
        const std::int32_t mid = (lo + hi) / 2;
        if (kept[mid] < key) lo = mid + 1;
        else hi = mid;
      }
      const std::int32_t rank = i - lo;
      item_pos[row_item[r] + rank] = row_start[r] + rank;
      item_source[row_item[r] + rank] = partition * tokens64 + j;
    }
  }
  __syncthreads();
  const std::int32_t items = item_count;

  if (blockIdx.y == 0)
    for (std::int32_t i = tid; i < items; i += BlockThreads)
      if (item_pos[i] >= 0 && item_pos[i] < out.rows_capacity)  // unless the workspace lies
        out.source_rows[item_pos[i]] = item_source[i];
  if (!copying) return;
  const std::int64_t begin = std::int64_t{blockIdx.y} * p.chunk;
  const std::int64_t end = begin + p.chunk < out.dim ? begin + p.chunk : out.dim;
  if (end <= begin) return;
  const Word* const features = static_cast<const Word*>(out.features);
  const Word* const newline = static_cast<const Word*>(out.image_newline);
  Word* const packed = static_cast<Word*>(out.packed);
  const std::int64_t dim = out.dim;
  // Item by item, the block's threads over the columns: coalesced, and no 64-bit division.
  for (std::int32_t i = 0; i < items; ++i) {
    const std::int64_t source = item_source[i], row = item_pos[i];
    if (row < 0 || row >= out.rows_capacity) continue;
    const Word* const from = source >= 0 ? features + source * out.row_stride : newline;
    for (std::int64_t column = begin + tid; column < end; column += BlockThreads)
      packed[row * dim + column] = from[column];
  }
}

}  // namespace hired::kernels

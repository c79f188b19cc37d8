// Parameters of hired's kernels: plain structs of pointers, sizes and strides, and the host
// checks a dispatcher runs before a launch. No CUDA and no kernel code here, so host code
// (the LibTorch adapter) can fill them without a CUDA compiler.
#pragma once

#include "hired/budget_formula.hpp"
#include "hired/half.hpp"
#include "hired/host_device.hpp"
#include "hired/qk_math.hpp"

#include <cmath>
#include <cstdint>

namespace hired::kernels {

/// Element type of the kernels' 16/32-bit float inputs.
enum class Element { f32, f16, bf16 };

template <Element E>
struct ElementStorage {
  using type = std::uint16_t;  // raw fp16 / bf16 bits
};
template <>
struct ElementStorage<Element::f32> {
  using type = float;
};
template <Element E>
using storage_t = typename ElementStorage<E>::type;

/// An input element widened to float (exact for every element type).
template <Element E>
HIRED_HOST_DEVICE inline float to_float(storage_t<E> value) {
  if constexpr (E == Element::f32) return value;
  else if constexpr (E == Element::f16) return half_to_float(value);
  else return bf16_to_float(value);
}

/// The one status vocabulary of hired's kernels: a word of these bits, 0 when everything was
/// computed and written. select_kernel writes one word per partition, pack_kernel ORs them
/// with its own checks into *PackParams::status; budget_image_status returns one of the budget
/// bits (bad_params to uneven_bands), which budget_kernel ORs into *BudgetParams::status;
/// cls_scores_kernel and cls_scores_qk_kernel OR invalid_input and unsupported into theirs.
namespace status {
inline constexpr unsigned invalid_input = 1u << 0;  // NaN, Inf or negative attention, or a
                                                    // non-finite q/k logit
inline constexpr unsigned bad_params = 1u << 1;      // launch-wide budget values: tokens, side,
                                                     // tile_px, mode, rate, alpha, stride
inline constexpr unsigned bad_layout = 1u << 2;      // P < 1, or a grid without P - 1 tiles
inline constexpr unsigned too_many_tiles = 1u << 3;  // P - 1 > MaxTiles
inline constexpr unsigned bad_geometry = 1u << 4;    // exact mode: box or placement outside
                                                     // the canvas, T < 0
inline constexpr unsigned no_marks = 1u << 5;  // reference mode: S > 0 but K == 0 (the
                                               // published code divides by 0)
inline constexpr unsigned uneven_bands = 1u << 6;  // reference mode: S > 0, N % (P - 1) != 0
inline constexpr unsigned workspace_too_small = 1u << 8;  // nothing was computed
inline constexpr unsigned kept_capacity = 1u << 9;        // K > kept_capacity: CSR not written
inline constexpr unsigned rows_capacity = 1u << 10;       // rows > rows_capacity: no packing
inline constexpr unsigned unsupported = 1u << 11;  // block size, N, side, partition layout or
                                                   // input beyond the kernel's limits
inline constexpr unsigned missing_newline = 1u << 12;  // newline rows but no image_newline
/// The bits that mean "no output was written": all but the two capacity bits, which leave the
/// other outputs intact.
inline constexpr unsigned fatal = ~(kept_capacity | rows_capacity);
}  // namespace status

/// Production block size of both kernels.
inline constexpr int kClsScoresThreads = 256;
/// Largest N (patch tokens per partition) and head_dim cls_scores_qk_kernel is instantiated
/// for by default; LLaVA-Next's CLIP ViT-L/14-336 has N = 576, head_dim = 64.
inline constexpr int kClsScoresQkMaxTokens = 1024;
inline constexpr int kClsScoresQkMaxHeadDim = 256;

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
  unsigned* status = nullptr;  // optional, see cls_scores.cuh

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

/// Parameters of cls_scores_qk_kernel. Channel c = h * head_dim + i of row p's CLS query is
/// q[p * q_row_stride + c] (token 0 of q; no other token is read), of its key t
/// k[p * k_row_stride + t * k_token_stride + c]; score (p, j) is scores[p * score_stride + j].
/// The arithmetic is hired/qk_scores.hpp's, so the scores equal hired::qk_scores' bit for bit
/// when `scale` is hired::qk_scale(head_dim).
template <Element E>
struct ClsScoresQkParams {
  const storage_t<E>* q = nullptr;
  std::int64_t q_row_stride = 0;
  const storage_t<E>* k = nullptr;
  std::int64_t k_row_stride = 0;
  std::int64_t k_token_stride = 0;
  float* scores = nullptr;
  std::int64_t score_stride = 0;
  std::int32_t rows = 0;
  std::int32_t heads = 0;
  std::int32_t head_dim = 0;
  std::int32_t tokens = 0;  // N; N + 1 keys
  float scale = 0.0f;       // logit scale; hired::qk_scale(head_dim) for standard attention
  unsigned* status = nullptr;  // optional, see cls_scores.cuh

  /// Contiguous q, k [rows, N + 1, heads * head_dim], [rows, N] scores, scale qk_scale(d).
  static ClsScoresQkParams contiguous(const storage_t<E>* q, const storage_t<E>* k,
                                      float* scores, std::int32_t rows, std::int32_t heads,
                                      std::int32_t head_dim, std::int32_t tokens,
                                      unsigned* status = nullptr) {
    const std::int64_t width = std::int64_t{heads} * head_dim;
    const std::int64_t row = (std::int64_t{tokens} + 1) * width;
    return {.q = q, .q_row_stride = row, .k = k, .k_row_stride = row, .k_token_stride = width,
            .scores = scores, .score_stride = tokens, .rows = rows, .heads = heads,
            .head_dim = head_dim, .tokens = tokens,
            .scale = qk_math::scale(head_dim), .status = status};
  }
};

/// Whether cls_scores_qk_kernel<E, Threads, MaxTokens, MaxHeadDim> accepts these shapes (the
/// kernel asserts it too; a host dispatcher checks first).
template <int MaxTokens = kClsScoresQkMaxTokens, int MaxHeadDim = kClsScoresQkMaxHeadDim,
          Element E>
inline bool cls_scores_qk_supports(const ClsScoresQkParams<E>& p) {
  return p.rows > 0 && p.heads > 0 && p.tokens > 0 && p.tokens <= MaxTokens &&
         p.head_dim > 0 && p.head_dim <= MaxHeadDim;
}

/// Largest n BlockTopK and topk_kernel are instantiated for by default.
inline constexpr int kTopKMaxTokens = 1024;
/// Production block size of topk_kernel.
inline constexpr int kTopKThreads = 256;

/// The half-open rectangle [row_begin, row_end) x [col_begin, col_end) of a side x side token
/// grid; token j sits at row j / side, column j % side. Empty when either range is.
struct EligibleBox {
  std::int32_t row_begin = 0, row_end = 0, col_begin = 0, col_end = 0;
};

/// Which tokens of a partition may be kept: all of them (side == 0), or those in `box` of the
/// side x side grid (then n must equal side * side).
struct Eligibility {
  std::int32_t side = 0;
  EligibleBox box;

  HIRED_HOST_DEVICE bool admits(std::int32_t token) const {
    if (side == 0) return true;
    const std::int32_t r = token / side, c = token % side;
    return r >= box.row_begin && r < box.row_end && c >= box.col_begin && c < box.col_end;
  }
};

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

/// Whether topk_kernel<Threads, MaxTokens> accepts these shapes (a host dispatcher checks).
template <int MaxTokens = kTopKMaxTokens>
inline bool topk_supports(const TopKParams& p) {
  return p.rows > 0 && p.tokens > 0 && p.tokens <= MaxTokens &&
         (p.boxes == nullptr || (p.side > 0 && p.side * p.side == p.tokens));
}

/// exact: hired::allocate_exact; reference: hired::allocate_reference (docs/DESIGN.md, 4 and 3).
enum class BudgetMode : std::int32_t { exact = 0, reference = 1 };

/// Production block size of budget_kernel and the largest tile count per image it is
/// instantiated for (LLaVA-Next has at most 4 tiles; anyres_max_9-style pinpoints 36).
inline constexpr int kBudgetThreads = 256;
inline constexpr int kBudgetMaxTiles = 64;

/// One image of a budget launch, filled on the host from its ImageLayout.
struct BudgetImage {
  /// Row of the image's full-image partition in the [sum P, N] init-score matrix, and the
  /// index of its first budget in `budgets`.
  std::int64_t offset = 0;
  std::int32_t partitions = 1;              // P
  std::int32_t grid_rows = 0, grid_cols = 0;  // 0 x 0 when P == 1
  /// Exact mode: the requested budget T (a token count, or exact_formula::total(P, N, rate));
  /// may exceed P * N. Unused in reference mode (T comes from BudgetParams::rate).
  std::int64_t total = 0;
  /// Exact mode with tiles only: what `unpad_image` keeps of the (grid_rows * side) x
  /// (grid_cols * side) tile token grid (hired::tile_token_box), which gives the tiles'
  /// capacities, and preprocessing's placement of the image in the grid_rows * tile_px x
  /// grid_cols * tile_px canvas (hired::anyres_placement), which maps full-image tokens onto
  /// tiles.
  EligibleBox box;
  std::int32_t resized_height = 0, resized_width = 0;
  std::int32_t pad_top = 0, pad_left = 0;
};

/// Parameters of budget_kernel.
struct BudgetParams {
  const float* init_scores = nullptr;  // full image of image b: init_scores + offset * stride
  std::int64_t score_stride = 0;       // >= tokens
  const BudgetImage* images = nullptr; // [image_count], device memory
  std::int32_t image_count = 0;
  std::int32_t tokens = 0;  // N, <= the kernel's MaxTokens
  std::int32_t side = 0;    // exact mode: side * side == tokens
  std::int32_t tile_px = 0; // exact mode: the vision tower's tile size in pixels
  BudgetMode mode = BudgetMode::exact;
  double rate = 0.0;   // reference mode: in (0, 1]
  double alpha = 0.5;  // in [0, 1]
  std::int32_t* budgets = nullptr;  // [sum P]; image b writes [offset, offset + P)
  unsigned* status = nullptr;       // optional: |= the budget bit of each rejected image
};

/// Launch-wide checks (host): whether budget_kernel<.., MaxTokens, ..> accepts `p`.
template <int MaxTokens = kTopKMaxTokens>
HIRED_HOST_DEVICE_INLINE bool budget_supports(const BudgetParams& p) {
  const bool alpha_ok = p.alpha >= 0.0 && p.alpha <= 1.0;  // false for NaN
  const bool mode_ok =
      p.mode == BudgetMode::exact
          ? p.side > 0 && std::int64_t{p.side} * p.side == p.tokens && p.tile_px > 0
          : p.mode == BudgetMode::reference && p.rate > 0.0 && p.rate <= 1.0;
  return p.tokens > 0 && p.tokens <= MaxTokens && p.score_stride >= p.tokens && alpha_ok &&
         mode_ok;
}

/// Whether budget_kernel<.., MaxTokens, MaxTiles> computes `image` (0) or rejects it, and
/// why: one of the status bits bad_params to uneven_bands. The kernel runs this per image; a
/// host dispatcher runs it on its host copy of the images first and reports the core's error
/// instead.
template <int MaxTokens = kTopKMaxTokens, int MaxTiles = kBudgetMaxTiles>
HIRED_HOST_DEVICE_INLINE unsigned budget_image_status(const BudgetParams& p,
                                                      const BudgetImage& image) {
  if (!budget_supports<MaxTokens>(p)) return status::bad_params;
  const std::int64_t partitions = image.partitions, rows = image.grid_rows, cols = image.grid_cols;
  if (partitions < 1 || rows < 0 || cols < 0 || image.offset < 0 ||
      (partitions == 1 && (rows != 0 || cols != 0)) || rows * cols != partitions - 1)
    return status::bad_layout;
  const std::int64_t tiles = partitions - 1, tokens = p.tokens;
  if (tiles > MaxTiles) return status::too_many_tiles;
  if (p.mode == BudgetMode::reference) {
    const BudgetSplit s = reference_formula::split(partitions, tokens, p.rate, p.alpha);
    if (s.tiles > 0 && tokens % tiles != 0) return status::uneven_bands;
    if (s.tiles > 0 && s.marks <= 0) return status::no_marks;
    return 0;
  }
  if (image.total < 0) return status::bad_geometry;
  if (tiles == 0) return 0;
  const EligibleBox& b = image.box;
  const std::int64_t side = p.side, px = p.tile_px;
  const bool box_ok = 0 <= b.row_begin && b.row_begin <= b.row_end && b.row_end <= rows * side &&
                      0 <= b.col_begin && b.col_begin <= b.col_end && b.col_end <= cols * side;
  const bool placed = image.resized_height > 0 && image.resized_width > 0 &&
                      image.pad_top >= 0 && image.pad_left >= 0 &&
                      std::int64_t{image.pad_top} + image.resized_height <= rows * px &&
                      std::int64_t{image.pad_left} + image.resized_width <= cols * px;
  return box_ok && placed ? 0 : status::bad_geometry;
}

// ---- The fused selection: select_kernel + pack_kernel (hired/kernels/selection.cuh) ----

/// Production block size of select_kernel and pack_kernel, and their limits: N <= MaxTokens
/// (so a partition's token grid has at most 32 rows: one bit each in a 32-bit row mask) and at
/// most kBudgetMaxTiles tiles per image.
inline constexpr int kSelectThreads = 256;
inline constexpr int kPackThreads = 256;
inline constexpr int kSelectMaxTokens = 1024;

/// Where image_newline rows go (hired::NewlinePolicy, same order).
enum class PackNewline : std::int32_t { none = 0, every_row = 1, kept_rows = 2 };

/// The workspace select_kernel writes and pack_kernel reads: per partition p a status word,
/// the kept count, the kept tokens inside the unpad box, a mask of the token rows holding such
/// tokens, the count of such tokens per token row (`side` of them), and the kept indices at
/// kept + p * N. Offsets in bytes, each array 16-byte aligned.
struct SelectionWorkspace {
  std::int64_t status = 0, count = 0, in_box = 0, row_mask = 0, row_counts = 0, kept = 0;
  std::int64_t bytes = 0;

  HIRED_HOST_DEVICE static SelectionWorkspace layout(std::int64_t partitions, std::int64_t tokens,
                                                     std::int64_t side) {
    const auto align = [](std::int64_t v) { return (v + 15) / 16 * 16; };
    SelectionWorkspace w;
    w.status = 0;
    w.count = align(w.status + 4 * partitions);
    w.in_box = align(w.count + 4 * partitions);
    w.row_mask = align(w.in_box + 4 * partitions);
    w.row_counts = align(w.row_mask + 4 * partitions);
    w.kept = align(w.row_counts + 4 * partitions * side);
    w.bytes = align(w.kept + 4 * partitions * tokens);
    return w;
  }
};

/// Where select_kernel reads the scores from, option 1: attention rows. Element (p, h, t) of
/// either layer is at init/final[p * row_stride + h * head_stride + t], t = 0..N (0: the CLS
/// key). Every row of both layers is read and validated (as sum_heads does on the host).
template <Element E>
struct AttentionInput {
  const storage_t<E>* init = nullptr;
  const storage_t<E>* final = nullptr;
  std::int64_t row_stride = 0;
  std::int64_t head_stride = 0;
  std::int32_t heads = 0;
};

/// One layer's CLS queries and keys on the device, strided as QueryKeyView: channel c of row
/// p's CLS query at q[p * q_row_stride + c], of its key t at
/// k[p * k_row_stride + t * k_token_stride + c].
template <Element E>
struct QueryKeyRows {
  const storage_t<E>* q = nullptr;
  std::int64_t q_row_stride = 0;
  const storage_t<E>* k = nullptr;
  std::int64_t k_row_stride = 0;
  std::int64_t k_token_stride = 0;
};

/// Option 2: the CLS queries and keys of both layers, scored in the kernel by
/// hired/qk_scores.hpp's arithmetic (equal to hired::qk_scores bit for bit). Only each image's
/// full-image row of `init` is read (the budgets need no other), every row of `final`.
template <Element E>
struct QueryKeyInput {
  QueryKeyRows<E> init, final;
  std::int32_t heads = 0;
  std::int32_t head_dim = 0;  // <= kSelectMaxHeadDim
  float scale = 0.0f;         // hired::qk_scale(head_dim)
};

/// Largest head_dim select_kernel's q/k input is instantiated for (CLIP ViT-L/14: 64).
inline constexpr int kSelectMaxHeadDim = 256;

/// Host-side checks of an input (a launcher runs them; the kernel flags what it cannot do).
template <Element E>
HIRED_HOST_DEVICE_INLINE bool input_supported(const AttentionInput<E>& in) {
  return in.init != nullptr && in.final != nullptr && in.heads > 0;
}
template <Element E, int MaxHeadDim = kSelectMaxHeadDim>
HIRED_HOST_DEVICE_INLINE bool input_supported(const QueryKeyInput<E>& in) {
  return in.init.q != nullptr && in.init.k != nullptr && in.final.q != nullptr &&
         in.final.k != nullptr && in.heads > 0 && in.head_dim > 0 && in.head_dim <= MaxHeadDim &&
         in.scale > 0.0f && in.scale <= 3.40282347e38f;
}

/// Parameters of select_kernel (launch 1): one block per partition, grid sum P. `Input` is
/// AttentionInput<E> or QueryKeyInput<E>. `budget` describes the batch as for budget_kernel
/// (images contiguous: image b's offset is the sum of the P before it, the last ends at
/// `partitions`); its init_scores, score_stride, budgets and status are not used.
template <class Input>
struct SelectParams {
  Input input;
  std::int32_t partitions = 0;  // sum P
  BudgetParams budget;
  void* workspace = nullptr;
  std::int64_t workspace_bytes = 0;
};

/// Parameters of pack_kernel (launch 2): grid (sum P, feature chunks). Reads the workspace
/// select_kernel wrote for the same batch. Two optional groups of outputs:
/// - CSR (budgets set: then all four, `kept` may be null when kept_capacity is 0): budgets
///   [sum P] (= kept counts, as Selection::budget), kept [kept_capacity], kept_offsets
///   [sum P + 1], partition_offsets [B + 1];
/// - packing (lengths set: then source_rows too unless rows_capacity is 0; packed too when
///   features is given): the kept features [sum P, N, dim] (rows of `feature_row_stride`
///   elements, raw bits of 2 or 4 bytes) and image_newline [dim] into packed
///   [rows_capacity, dim] in LLaVA-Next order, source_rows [rows_capacity] (partition * N +
///   token, -1 for newline), lengths [B].
/// Block (0, 0) writes *status and, unless the status is fatal, totals[0] = K and totals[1] =
/// packed rows (when totals is given) — also when a capacity is too small, so a caller can
/// size its outputs from them. A capacity that is too small leaves that output (kept, or
/// source_rows + packed + lengths) unwritten; on a fatal status nothing but *status is.
struct PackParams {
  const BudgetImage* images = nullptr;  // the same device array select_kernel read
  std::int32_t image_count = 0;
  std::int32_t partitions = 0;
  std::int32_t tokens = 0;
  std::int32_t side = 0;
  PackNewline newline = PackNewline::every_row;
  const void* workspace = nullptr;
  std::int64_t workspace_bytes = 0;

  std::int64_t* budgets = nullptr;
  std::int64_t* kept = nullptr;
  std::int64_t kept_capacity = 0;
  std::int64_t* kept_offsets = nullptr;
  std::int64_t* partition_offsets = nullptr;

  const void* features = nullptr;
  std::int64_t feature_row_stride = 0;  // elements between token rows, >= dim
  const void* image_newline = nullptr;
  std::int32_t dim = 0;
  std::int32_t chunk = 0;               // elements of a row each block copies (gridDim.y)
  void* packed = nullptr;               // row r at packed + r * dim elements
  std::int64_t* source_rows = nullptr;
  std::int64_t rows_capacity = 0;
  std::int64_t* lengths = nullptr;

  std::int64_t* totals = nullptr;  // optional [2]
  unsigned* status = nullptr;      // required: written (not ORed) by block (0, 0)
};

/// Launch-wide checks shared by the host launchers and both kernels: sizes within the
/// template limits and a workspace of the right size. Per-image problems (and the partition
/// layout, which lives in device memory) are the kernels' to flag.
template <int MaxTokens = kSelectMaxTokens>
HIRED_HOST_DEVICE_INLINE bool selection_supports(std::int32_t partitions, std::int32_t image_count,
                                                 std::int32_t tokens, std::int32_t side) {
  return partitions > 0 && image_count > 0 && image_count <= partitions && tokens > 0 &&
         tokens <= MaxTokens && side > 0 && side <= 32 && side * side == tokens;
}

}  // namespace hired::kernels

// Parameters of hired's two kernels (select_kernel, pack_kernel: hired/kernels/selection.cuh)
// and of the block-level building blocks they are made of: plain structs of pointers, sizes
// and strides, the one status vocabulary, and the checks a dispatcher runs before a launch. No
// CUDA and no kernel code here, so host code (the LibTorch adapter) can fill them without a
// CUDA compiler; hired/kernels/plan.hpp builds them from the core's view of a batch.
#pragma once

#include "hired/budget_formula.hpp"
#include "hired/half.hpp"
#include "hired/host_device.hpp"

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

/// Production block size of select_kernel and pack_kernel, and their limits: N <= MaxTokens
/// patch tokens per partition (so a partition's token grid has at most 32 rows: one bit each
/// in a 32-bit row mask), at most kBudgetMaxTiles tiles per image, head_dim <= MaxHeadDim for
/// q/k input (CLIP ViT-L/14-336: N = 576, head_dim = 64; LLaVA-Next has at most 4 tiles,
/// anyres_max_9-style pinpoints 36). The block primitives take the same limits by default.
inline constexpr int kSelectThreads = 256;
inline constexpr int kPackThreads = 256;
inline constexpr int kSelectMaxTokens = 1024;
inline constexpr int kSelectMaxHeadDim = 256;
inline constexpr int kBudgetMaxTiles = 64;
/// Feature columns of a packed row that one pack_kernel block copies (gridDim.y is
/// ceil(dim / chunk)): D = 1024 gives 4 blocks per partition.
inline constexpr int kPackColumnChunk = 256;

/// The one status vocabulary of hired's kernels: a word of these bits, 0 when everything was
/// computed and written. select_kernel writes one word per partition, pack_kernel ORs them
/// with its own checks into *PackParams::status; budget_image_status returns one of the budget
/// bits (bad_params to uneven_bands), which select_kernel stores for the image's partitions.
namespace status {
inline constexpr unsigned invalid_input = 1u << 0;  // NaN, Inf or negative attention, or a
                                                    // non-finite q/k logit
inline constexpr unsigned bad_params = 1u << 1;      // launch-wide budget values: tokens, side,
                                                     // tile_px, mode, rate, alpha
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

/// exact: hired::allocate_exact; reference: hired::allocate_reference (docs/DESIGN.md,
/// sections 4 and 3).
enum class BudgetMode : std::int32_t { exact = 0, reference = 1 };

/// One image of a batch, filled on the host from its ImageLayout (make_budget_image).
struct BudgetImage {
  /// Row of the image's full-image partition in the [sum P, N] score rows, and the index of
  /// its first budget.
  std::int64_t offset = 0;
  std::int32_t partitions = 1;              // P
  std::int32_t grid_rows = 0, grid_cols = 0;  // 0 x 0 when P == 1
  /// Exact mode: the requested budget T (a token count, or exact_formula::total(P, N, rate));
  /// may exceed P * N. Unused in reference mode (T comes from BudgetRule::rate).
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

/// How the budgets of a batch's images are computed: the launch-wide values BlockBudget and
/// budget_image_status need besides the image.
struct BudgetRule {
  std::int32_t tokens = 0;  // N, <= MaxTokens
  std::int32_t side = 0;    // exact mode: side * side == tokens
  std::int32_t tile_px = 0; // exact mode: the vision tower's tile size in pixels
  BudgetMode mode = BudgetMode::exact;
  double rate = 0.0;   // reference mode: in (0, 1]
  double alpha = 0.5;  // in [0, 1]
};

/// Launch-wide checks of a budget rule (host and device).
template <int MaxTokens = kSelectMaxTokens>
HIRED_HOST_DEVICE_INLINE bool budget_rule_supported(const BudgetRule& rule) {
  const bool alpha_ok = rule.alpha >= 0.0 && rule.alpha <= 1.0;  // false for NaN
  const bool mode_ok =
      rule.mode == BudgetMode::exact
          ? rule.side > 0 && std::int64_t{rule.side} * rule.side == rule.tokens &&
                rule.tile_px > 0
          : rule.mode == BudgetMode::reference && rule.rate > 0.0 && rule.rate <= 1.0;
  return rule.tokens > 0 && rule.tokens <= MaxTokens && alpha_ok && mode_ok;
}

/// Whether BlockBudget<.., MaxTokens, MaxTiles> computes `image` under `rule` (0) or rejects
/// it, and why: one of the status bits bad_params .. uneven_bands. select_kernel runs this
/// per image; a host dispatcher runs it on its host copy of the images first and reports the
/// core's error instead.
template <int MaxTokens = kSelectMaxTokens, int MaxTiles = kBudgetMaxTiles>
HIRED_HOST_DEVICE_INLINE unsigned budget_image_status(const BudgetRule& rule,
                                                      const BudgetImage& image) {
  if (!budget_rule_supported<MaxTokens>(rule)) return status::bad_params;
  const std::int64_t partitions = image.partitions, rows = image.grid_rows, cols = image.grid_cols;
  if (partitions < 1 || rows < 0 || cols < 0 || image.offset < 0 ||
      (partitions == 1 && (rows != 0 || cols != 0)) || rows * cols != partitions - 1)
    return status::bad_layout;
  const std::int64_t tiles = partitions - 1, tokens = rule.tokens;
  if (tiles > MaxTiles) return status::too_many_tiles;
  if (rule.mode == BudgetMode::reference) {
    if (reference_formula::keeps_everything(rule.rate)) return 0;
    const BudgetSplit s = reference_formula::split(partitions, tokens, rule.rate, rule.alpha);
    if (s.tiles > 0 && tokens % tiles != 0) return status::uneven_bands;
    if (s.tiles > 0 && s.marks <= 0) return status::no_marks;
    return 0;
  }
  if (image.total < 0) return status::bad_geometry;
  if (tiles == 0) return 0;
  const EligibleBox& b = image.box;
  const std::int64_t side = rule.side, px = rule.tile_px;
  const bool box_ok = 0 <= b.row_begin && b.row_begin <= b.row_end && b.row_end <= rows * side &&
                      0 <= b.col_begin && b.col_begin <= b.col_end && b.col_end <= cols * side;
  const bool placed = image.resized_height > 0 && image.resized_width > 0 &&
                      image.pad_top >= 0 && image.pad_left >= 0 &&
                      std::int64_t{image.pad_top} + image.resized_height <= rows * px &&
                      std::int64_t{image.pad_left} + image.resized_width <= cols * px;
  return box_ok && placed ? 0 : status::bad_geometry;
}

// ---- select_kernel's inputs ----

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

/// Host-side checks of an input (launch_select runs them; the kernel flags what it cannot do).
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

/// The inputs select_kernel is instantiated for (in hired_kernels: every Element of both).
template <class Input>
inline constexpr bool is_select_input = false;
template <Element E>
inline constexpr bool is_select_input<AttentionInput<E>> = true;
template <Element E>
inline constexpr bool is_select_input<QueryKeyInput<E>> = true;
template <class Input>
concept SelectInput = is_select_input<Input>;

// ---- The two launches ----

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

/// Parameters of select_kernel (launch 1): one block per partition, grid sum P. Built by
/// select_params (plan.hpp). The images are contiguous: image b's offset is the sum of the P
/// before it, the last ends at `partitions`.
template <class Input>
struct SelectParams {
  Input input;
  const BudgetImage* images = nullptr;  // [image_count], device memory
  std::int32_t image_count = 0;
  std::int32_t partitions = 0;  // sum P
  BudgetRule rule;              // N, the grid and the budget split of every image
  void* workspace = nullptr;
  std::int64_t workspace_bytes = 0;
};

/// pack_kernel's CSR outputs, all four or none (budgets null): budgets [sum P] (= kept
/// counts, as Selection::budget), kept [kept_capacity] (may be null when kept_capacity is 0),
/// kept_offsets [sum P + 1], partition_offsets [B + 1].
struct PackCsr {
  std::int64_t* budgets = nullptr;
  std::int64_t* kept = nullptr;
  std::int64_t kept_capacity = 0;
  std::int64_t* kept_offsets = nullptr;
  std::int64_t* partition_offsets = nullptr;
};

/// pack_kernel's packing (none when lengths is null): source_rows [rows_capacity] (partition *
/// N + token, -1 for a newline; may be null when rows_capacity is 0) and lengths [B], and
/// with `features` the packed rows: the kept features [sum P, N, dim] (token rows
/// `row_stride` elements apart) and image_newline [dim] into packed [rows_capacity, dim] in
/// LLaVA-Next order, copied as raw words of `element_bytes` (2 for f16/bf16, 4 for f32).
struct PackRows {
  const void* features = nullptr;
  std::int64_t row_stride = 0;  // elements between token rows, >= dim
  std::int32_t element_bytes = 0;
  const void* image_newline = nullptr;
  std::int32_t dim = 0;
  void* packed = nullptr;  // row r at packed + r * dim elements
  std::int64_t* source_rows = nullptr;
  std::int64_t rows_capacity = 0;
  std::int64_t* lengths = nullptr;
};

/// Parameters of pack_kernel (launch 2): grid (sum P, ceil(dim / chunk)). Built by
/// pack_params (plan.hpp), which leaves the outputs to the caller. Reads the workspace
/// select_kernel wrote for the same batch and writes the output groups that are set. Block
/// (0, 0) writes *status and, unless the status is fatal, totals[0] = K and totals[1] = packed
/// rows (when totals is given) — also when a capacity is too small, so a caller can size its
/// outputs from them. A capacity that is too small leaves that output (kept, or source_rows +
/// packed + lengths) unwritten; on a fatal status nothing but *status is.
struct PackParams {
  const BudgetImage* images = nullptr;  // the same device array select_kernel read
  std::int32_t image_count = 0;
  std::int32_t partitions = 0;
  std::int32_t tokens = 0;
  std::int32_t side = 0;
  PackNewline newline = PackNewline::every_row;
  const void* workspace = nullptr;
  std::int64_t workspace_bytes = 0;
  std::int32_t chunk = kPackColumnChunk;  // feature columns per block

  PackCsr csr = {};    // none by default
  PackRows rows = {};  // none by default
  std::int64_t* totals = nullptr;  // optional [2]
  unsigned* status = nullptr;      // required: written (not ORed) by block (0, 0)
};

/// Launch-wide checks shared by the host launchers and both kernels: sizes within the
/// template limits. Per-image problems (and the partition layout, which lives in device
/// memory) are the kernels' to flag.
template <int MaxTokens = kSelectMaxTokens>
HIRED_HOST_DEVICE_INLINE bool selection_supports(std::int32_t partitions, std::int32_t image_count,
                                                 std::int32_t tokens, std::int32_t side) {
  return partitions > 0 && image_count > 0 && image_count <= partitions && tokens > 0 &&
         tokens <= MaxTokens && side > 0 && side <= 32 && side * side == tokens;
}

}  // namespace hired::kernels

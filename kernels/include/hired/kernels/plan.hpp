// Host side of the fused selection (selection.cuh): from the core's view of a batch (image
// layouts, vision grid, DropConfig) to the kernels' per-image parameters, the workspace size
// and — where geometry alone decides them — the output sizes (plan_selection), and from such
// a plan to the parameters of the two launches (select_params, pack_params). Plain C++ (no
// CUDA): a dispatcher fills device buffers from it. Every check raises hired::Error naming
// the argument, with the core's own message where the core would reject the input too.
#pragma once

#include "hired/budget.hpp"
#include "hired/config.hpp"
#include "hired/error.hpp"
#include "hired/geometry.hpp"
#include "hired/kernels/params.hpp"
#include "hired/layout.hpp"
#include "hired/selection.hpp"
#include "hired/token_count.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace hired::kernels {

/// A BudgetImage from the core's layout: the image's first partition row, P, the grid, the
/// requested T (exact mode) and, for tiles of an image of known size, the unpad box and the
/// placement of the image in the padded canvas.
inline BudgetImage make_budget_image(const ImageLayout& image, const VisionGrid& vision,
                                     std::int64_t offset, std::int64_t total) {
  BudgetImage out;
  out.offset = offset;
  out.partitions = static_cast<std::int32_t>(image.partitions);
  out.grid_rows = static_cast<std::int32_t>(image.grid.rows);
  out.grid_cols = static_cast<std::int32_t>(image.grid.cols);
  out.total = total;
  if (image.grid.tiles() > 0 && image.image_size) {
    const TokenBox box = tile_token_box(*image.image_size, image.grid, vision);
    out.box = {static_cast<std::int32_t>(box.row_begin), static_cast<std::int32_t>(box.row_end),
               static_cast<std::int32_t>(box.col_begin), static_cast<std::int32_t>(box.col_end)};
    const Placement at = anyres_placement(
        *image.image_size, {image.grid.rows * vision.tile_px, image.grid.cols * vision.tile_px});
    out.resized_height = static_cast<std::int32_t>(at.resized.height);
    out.resized_width = static_cast<std::int32_t>(at.resized.width);
    out.pad_top = static_cast<std::int32_t>(at.pad_top);
    out.pad_left = static_cast<std::int32_t>(at.pad_left);
  }
  return out;
}

inline PackNewline pack_newline(NewlinePolicy policy) {
  switch (policy) {
    case NewlinePolicy::none: return PackNewline::none;
    case NewlinePolicy::kept_rows: return PackNewline::kept_rows;
    case NewlinePolicy::every_row: break;
  }
  return PackNewline::every_row;
}

/// Bytes of the workspace select_kernel / pack_kernel need for sum P partitions of N tokens.
inline std::int64_t selection_workspace_bytes(std::int64_t partitions, std::int64_t tokens) {
  check(partitions > 0, "partitions: {} must be positive", partitions);
  const VisionGrid vision = vision_grid_for(tokens, 1);
  return SelectionWorkspace::layout(partitions, tokens, vision.side).bytes;
}

/// Everything the host knows about a fused selection before launching it.
struct SelectionPlan {
  std::vector<BudgetImage> images;        // copy to the device: select_params / pack_params
  BudgetRule rule;                        // N, the grid and the budget split
  std::int32_t partitions = 0;            // sum P: select_kernel's grid
  std::int64_t workspace_bytes = 0;
  std::vector<std::int64_t> requested;    // [B]: T of each image, as Selection::requested
  /// What geometry alone decides, per image: in exact mode the kept tokens (min(T, eligible));
  /// with newline policy none or every_row too, the packed rows. Empty when data-dependent.
  std::vector<std::int64_t> kept, rows;
  /// Upper bounds: every token kept, every box row with a newline.
  std::int64_t max_kept = 0, max_rows = 0;

  bool kept_known() const { return !kept.empty(); }
  bool rows_known() const { return !rows.empty(); }
};

/// Validates a batch for the fused kernels (the core's checks and messages, plus the
/// kernels' limits) and prepares its parameters. `packing`: whether the caller will pack,
/// which needs image sizes for images with tiles (to unpad).
template <int MaxTokens = kSelectMaxTokens, int MaxTiles = kBudgetMaxTiles>
SelectionPlan plan_selection(std::span<const ImageLayout> images, const VisionGrid& vision,
                             const DropConfig& config, NewlinePolicy newline, bool packing) {
  config.validate();
  check(!images.empty(), "images: empty batch");
  const std::int64_t tokens = vision.tokens();
  check(vision.side > 0 && vision.tile_px > 0, "vision: side {} and tile_px {} must be positive",
        vision.side, vision.tile_px);
  check(tokens <= MaxTokens && vision.side <= 32,
        "attention: N = {} patch tokens per partition; the CUDA kernels support at most {}",
        tokens, MaxTokens);
  SelectionPlan plan;
  const bool exact = config.mode == Mode::exact;
  std::int64_t offset = 0;
  for (std::size_t b = 0; b < images.size(); ++b) {
    const ImageLayout& image = images[b];
    check_layout(image, static_cast<std::int64_t>(b));
    check(image.grid.tiles() <= MaxTiles,
          "num_partitions[{}]: {} tiles; the CUDA kernels support at most {} per image", b,
          image.grid.tiles(), MaxTiles);
    check(!packing || image.partitions == 1 || image.image_size.has_value(),
          "image_sizes: needed to unpad the tile grid of image {} when packing", b);
    const std::int64_t total = requested_budget(image, tokens, config);
    plan.images.push_back(make_budget_image(image, vision, offset, total));
    plan.requested.push_back(total);
    offset += image.partitions;
    check(offset <= INT32_MAX, "num_partitions: {} partitions in all is too many", offset);
  }
  plan.partitions = static_cast<std::int32_t>(offset);
  plan.rule = {.tokens = static_cast<std::int32_t>(tokens),
               .side = static_cast<std::int32_t>(vision.side),
               .tile_px = static_cast<std::int32_t>(vision.tile_px),
               .mode = exact ? BudgetMode::exact : BudgetMode::reference,
               .rate = config.budget.is_rate() ? config.budget.rate_value() : 0.0,
               .alpha = config.alpha};
  plan.workspace_bytes = SelectionWorkspace::layout(plan.partitions, tokens, vision.side).bytes;

  // An image the kernels would flag: let the core say why, with its own message (those
  // checks depend on geometry only, so any valid scores give the same error).
  const std::vector<float> zeros(static_cast<std::size_t>(tokens), 0.0f);
  for (std::size_t b = 0; b < images.size(); ++b) {
    if (budget_image_status<MaxTokens, MaxTiles>(plan.rule, plan.images[b]) == 0) continue;
    if (exact) allocate_exact(zeros, images[b], vision, plan.requested[b], config.alpha);
    else allocate_reference(zeros, images[b], tokens, config.budget.rate_value(), config.alpha);
    fail("images[{}]: the CUDA kernels cannot compute this image's budget", b);
  }

  for (std::size_t b = 0; b < images.size(); ++b) {
    const ImageLayout& image = images[b];
    const EligibleBox& box = plan.images[b].box;
    const std::int64_t box_rows =
        image.partitions == 1 ? 1 : formula::max64(box.row_end - box.row_begin, 0);
    const std::int64_t box_area =
        image.partitions == 1 ? 0 : box_rows * formula::max64(box.col_end - box.col_begin, 0);
    plan.max_kept += image.partitions * tokens;
    plan.max_rows += tokens + box_area + (newline == NewlinePolicy::none ? 0 : box_rows);
    if (!exact) continue;
    DropConfig counted = config;  // kept does not depend on the policy; kept_rows' rows do on the scores
    counted.newline = newline == NewlinePolicy::kept_rows ? NewlinePolicy::none : newline;
    const ImageCount count = exact_image_count(image, vision, counted);
    plan.kept.push_back(count.kept);
    if (newline != NewlinePolicy::kept_rows) plan.rows.push_back(count.rows);
  }
  return plan;
}

/// Launch 1's parameters for `plan`'s batch, scoring `input`: `images` is the device copy of
/// plan.images, `workspace` device memory of `workspace_bytes` (plan.workspace_bytes).
template <SelectInput Input>
SelectParams<Input> select_params(const SelectionPlan& plan, const Input& input,
                                  const BudgetImage* images, void* workspace,
                                  std::int64_t workspace_bytes) {
  return {.input = input,
          .images = images,
          .image_count = static_cast<std::int32_t>(plan.images.size()),
          .partitions = plan.partitions,
          .rule = plan.rule,
          .workspace = workspace,
          .workspace_bytes = workspace_bytes};
}

/// Launch 2's parameters for the same batch and workspace, packing by `newline`, with no
/// outputs yet: the caller sets csr and/or rows (and totals, status) before launch_pack.
/// The column chunk is kPackColumnChunk.
inline PackParams pack_params(const SelectionPlan& plan, const BudgetImage* images,
                              const void* workspace, std::int64_t workspace_bytes,
                              NewlinePolicy newline) {
  return {.images = images,
          .image_count = static_cast<std::int32_t>(plan.images.size()),
          .partitions = plan.partitions,
          .tokens = plan.rule.tokens,
          .side = plan.rule.side,
          .newline = pack_newline(newline),
          .workspace = workspace,
          .workspace_bytes = workspace_bytes};
}

}  // namespace hired::kernels

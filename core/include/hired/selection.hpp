// Selection of a whole batch: per-partition budgets and kept token indices in a CSR layout,
// and the packing plan that lays the kept tokens out in LLaVA-Next's order.
#pragma once

#include "hired/budget.hpp"
#include "hired/config.hpp"
#include "hired/error.hpp"
#include "hired/geometry.hpp"
#include "hired/layout.hpp"
#include "hired/token_count.hpp"
#include "hired/topk.hpp"

#include <cmath>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace hired {

/// The largest side of a partition's token grid: N = side^2 patch indices fit in int32, the
/// type of Selection::kept.
inline constexpr std::int64_t kMaxVisionSide = 46340;

/// Kept tokens of a batch. Partition p of image b is row partition_offsets[b] + i; its kept
/// patch indices (0..N-1, ascending) are kept[kept_offsets[p] .. kept_offsets[p + 1]).
struct Selection {
  Mode mode = Mode::exact;
  VisionGrid vision;
  std::vector<ImageLayout> images;
  std::vector<std::int64_t> partition_offsets;  // [B + 1]
  std::vector<std::int64_t> requested;          // [B]: the budget T asked for each image
  std::vector<std::int64_t> kept_offsets;       // [sum P + 1]
  std::vector<std::int32_t> kept;               // [K]

  std::int64_t budget(std::int64_t partition) const {
    return kept_offsets[partition + 1] - kept_offsets[partition];
  }
  std::span<const std::int32_t> kept_in(std::int64_t partition) const {
    return {kept.data() + kept_offsets[partition], static_cast<std::size_t>(budget(partition))};
  }
  std::int64_t kept_in_image(std::int64_t image) const {
    return kept_offsets[partition_offsets[image + 1]] - kept_offsets[partition_offsets[image]];
  }
};

/// Tile tokens that survive `unpad_image`, in index order (what exact mode may keep).
inline std::vector<std::int32_t> eligible_tokens(const ImageLayout& image, std::int64_t tile,
                                                 const VisionGrid& vision) {
  check(image.image_size.has_value(), "image_sizes: needed to find the padding of the tiles");
  const TokenBox box = tile_token_box(*image.image_size, image.grid, vision);
  const std::int64_t row0 = (tile / image.grid.cols) * vision.side;
  const std::int64_t col0 = (tile % image.grid.cols) * vision.side;
  std::vector<std::int32_t> out;
  for (std::int64_t r = 0; r < vision.side; ++r)
    for (std::int64_t c = 0; c < vision.side; ++c)
      if (box.contains(row0 + r, col0 + c))
        out.push_back(static_cast<std::int32_t>(r * vision.side + c));
  return out;
}

/// Selects the kept tokens of every image. `init_scores` and `final_scores` are [sum P, N]
/// (see sum_heads), N = vision.tokens().
inline Selection select_tokens(std::span<const float> init_scores,
                               std::span<const float> final_scores,
                               std::vector<ImageLayout> images, const VisionGrid& vision,
                               const DropConfig& config) {
  config.validate();
  check(!images.empty(), "images: empty batch");
  check(vision.side > 0 && vision.side <= kMaxVisionSide && vision.tile_px > 0,
        "vision: side {} must be in [1, {}] and tile_px {} positive", vision.side,
        kMaxVisionSide, vision.tile_px);
  const std::int64_t tokens = vision.tokens();
  for (std::size_t b = 0; b < images.size(); ++b)
    check_layout(images[b], static_cast<std::int64_t>(b));
  const std::int64_t partitions = total_partitions(images);
  for (const auto& [scores, what] : {std::pair{init_scores, "init scores"},
                                     std::pair{final_scores, "final scores"}}) {
    // Divided rather than multiplied: P comes from the caller and P * N may overflow.
    check(scores.size() % static_cast<std::size_t>(tokens) == 0 &&
              static_cast<std::int64_t>(scores.size()) / tokens == partitions,
          "{}: {} values, expected sum P * N = {} * {}", what, scores.size(), partitions, tokens);
    for (std::size_t i = 0; i < scores.size(); ++i)
      check(std::isfinite(scores[i]) && scores[i] >= 0.0f,
            "{}: value {} at partition {}, token {}; must be finite and non-negative", what,
            scores[i], i / tokens, i % tokens);
  }

  Selection out;
  out.mode = config.mode;
  out.vision = vision;
  out.partition_offsets.push_back(0);
  out.kept_offsets.push_back(0);
  for (const ImageLayout& image : images) {
    const std::int64_t first = out.partition_offsets.back();
    const std::span<const float> init_full = init_scores.subspan(first * tokens, tokens);
    const ImageBudget budget =
        config.mode == Mode::reference
            ? allocate_reference(init_full, image, tokens, config.budget.rate_value(), config.alpha)
            : allocate_exact(init_full, image, vision, requested_budget(image, tokens, config),
                             config.alpha);
    out.requested.push_back(budget.requested);
    for (std::int64_t i = 0; i < image.partitions; ++i) {
      const float* scores = final_scores.data() + (first + i) * tokens;
      const std::vector<std::int32_t> kept =
          (i == 0 || config.mode == Mode::reference)
              ? top_k_ascending(scores, tokens, budget.partitions[i])
              : top_k_ascending(scores, eligible_tokens(image, i - 1, vision),
                                budget.partitions[i]);
      out.kept.insert(out.kept.end(), kept.begin(), kept.end());
      out.kept_offsets.push_back(static_cast<std::int64_t>(out.kept.size()));
    }
    out.partition_offsets.push_back(first + image.partitions);
  }
  out.images = std::move(images);
  return out;
}

/// A selection given as its CSR arrays (as TokenSelection's tensors hold it, e.g. after a trip
/// through Python): kept_offsets [sum P + 1] from 0, non-decreasing, and kept [K] with each
/// partition's indices in [0, N) ascending, and in exact mode no tile token that unpad removes
/// (exact mode never keeps one). Everything is validated, so nothing that uses the result reads
/// out of bounds; `requested` is the kept count of each image.
inline Selection selection_from_csr(std::vector<ImageLayout> images, const VisionGrid& vision,
                                    std::span<const std::int64_t> kept_offsets,
                                    std::span<const std::int64_t> kept, Mode mode = Mode::exact) {
  check(!images.empty(), "images: empty batch");
  for (std::size_t b = 0; b < images.size(); ++b) check_layout(images[b], static_cast<std::int64_t>(b));
  Selection out;
  out.mode = mode;
  out.vision = vision;
  out.partition_offsets = partition_offsets(images);
  const std::int64_t partitions = out.partition_offsets.back(), tokens = vision.tokens();
  check(static_cast<std::int64_t>(kept_offsets.size()) == partitions + 1,
        "kept_offsets: {} values, but num_partitions sums to {} partitions (expected {})",
        kept_offsets.size(), partitions, partitions + 1);
  check(kept_offsets[0] == 0, "kept_offsets: starts at {}, not 0", kept_offsets[0]);
  check(kept_offsets[partitions] == static_cast<std::int64_t>(kept.size()),
        "kept_offsets: ends at {}, but kept holds {} indices", kept_offsets[partitions], kept.size());
  for (std::int64_t p = 0; p < partitions; ++p) {
    const std::int64_t begin = kept_offsets[p], end = kept_offsets[p + 1];
    check(begin <= end && end - begin <= tokens,
          "kept_offsets: partition {} spans [{}, {}); must be non-decreasing and at most N = {}",
          p, begin, end, tokens);
    for (std::int64_t i = begin; i < end; ++i)
      check(kept[i] >= 0 && kept[i] < tokens && (i == begin || kept[i] > kept[i - 1]),
            "kept: index {} of partition {} is {}; must be in [0, {}) and ascending", i - begin,
            p, kept[i], tokens);
  }
  if (mode == Mode::exact)
    for (std::size_t b = 0; b < images.size(); ++b) {
      const ImageLayout& image = images[b];
      if (image.partitions == 1) continue;
      check(image.image_size.has_value(),
            "image_sizes: needed to unpad the tile grid of image {} in exact mode", b);
      const TokenBox box = tile_token_box(*image.image_size, image.grid, vision);
      for (std::int64_t t = 0; t < image.grid.tiles(); ++t) {
        const std::int64_t p = out.partition_offsets[b] + 1 + t;
        const std::int64_t row0 = (t / image.grid.cols) * vision.side;
        const std::int64_t col0 = (t % image.grid.cols) * vision.side;
        for (std::int64_t i = kept_offsets[p]; i < kept_offsets[p + 1]; ++i)
          check(box.contains(row0 + kept[i] / vision.side, col0 + kept[i] % vision.side),
                "kept: token {} of partition {} lies in the padding that unpad removes, which "
                "exact mode never keeps (a reference-mode selection?)", kept[i], p);
      }
    }
  out.kept_offsets.assign(kept_offsets.begin(), kept_offsets.end());
  out.kept.assign(kept.begin(), kept.end());
  for (std::size_t b = 0; b < images.size(); ++b)
    out.requested.push_back(kept_offsets[out.partition_offsets[b + 1]] -
                            kept_offsets[out.partition_offsets[b]]);
  out.images = std::move(images);
  return out;
}

/// Every token of every partition kept: stock LLaVA-Next's input to packing (unpad removes the
/// padding there), and what an overlay shows with HiRED off.
inline Selection keep_everything(std::vector<ImageLayout> images, const VisionGrid& vision) {
  Selection all;
  all.vision = vision;
  all.partition_offsets = partition_offsets(images);
  const std::int64_t tokens = vision.tokens(), partitions = all.partition_offsets.back();
  for (const ImageLayout& image : images) all.requested.push_back(image.partitions * tokens);
  for (std::int64_t p = 0; p <= partitions; ++p) all.kept_offsets.push_back(p * tokens);
  for (std::int64_t p = 0; p < partitions; ++p)
    for (std::int64_t j = 0; j < tokens; ++j) all.kept.push_back(static_cast<std::int32_t>(j));
  all.images = std::move(images);
  return all;
}

/// Packed output rows: for each row the source row of the [sum P * N, D] features
/// (partition * N + token), or -1 for an `image_newline` row.
struct PackPlan {
  std::vector<std::int64_t> rows;
  std::vector<std::int64_t> offsets;  // [B + 1]: rows of image b are [offsets[b], offsets[b+1])
  static constexpr std::int64_t newline = -1;

  /// [B]: the rows of each image, newline rows included.
  std::vector<std::int64_t> lengths() const {
    std::vector<std::int64_t> out;
    for (std::size_t b = 0; b + 1 < offsets.size(); ++b) out.push_back(offsets[b + 1] - offsets[b]);
    return out;
  }
};

/// LLaVA-Next's packing order applied to the kept tokens: the full image's kept tokens, then
/// the tile grid as one (rows*side) x (cols*side) raster with the padding removed, with
/// newline rows placed by `policy`. With every token kept and every_row, this is stock
/// `pack_image_features` (P == 1: the tokens, then one newline).
inline PackPlan pack_plan(const Selection& selection, NewlinePolicy policy) {
  const std::int64_t side = selection.vision.side, tokens = selection.vision.tokens();
  PackPlan plan;
  plan.offsets.push_back(0);
  std::vector<char> is_kept;
  for (std::size_t b = 0; b < selection.images.size(); ++b) {
    const ImageLayout& image = selection.images[b];
    const std::int64_t first = selection.partition_offsets[b];
    for (const std::int32_t j : selection.kept_in(first)) plan.rows.push_back(first * tokens + j);
    if (image.partitions == 1) {
      if (policy == NewlinePolicy::every_row ||
          (policy == NewlinePolicy::kept_rows && selection.budget(first) > 0))
        plan.rows.push_back(PackPlan::newline);
    } else {
      check(image.image_size.has_value(),
            "image_sizes: needed to unpad the tile grid of image {} when packing", b);
      is_kept.assign(static_cast<std::size_t>(image.grid.tiles() * tokens), 0);
      for (std::int64_t t = 0; t < image.grid.tiles(); ++t)
        for (const std::int32_t j : selection.kept_in(first + 1 + t)) is_kept[t * tokens + j] = 1;
      const TokenBox box = tile_token_box(*image.image_size, image.grid, selection.vision);
      for (std::int64_t r = box.row_begin; r < box.row_end; ++r) {
        bool any = false;
        for (std::int64_t c = box.col_begin; c < box.col_end; ++c) {
          const std::int64_t tile = (r / side) * image.grid.cols + c / side;
          const std::int64_t j = (r % side) * side + c % side;
          if (!is_kept[tile * tokens + j]) continue;
          plan.rows.push_back((first + 1 + tile) * tokens + j);
          any = true;
        }
        if (policy == NewlinePolicy::every_row || (policy == NewlinePolicy::kept_rows && any))
          plan.rows.push_back(PackPlan::newline);
      }
    }
    plan.offsets.push_back(static_cast<std::int64_t>(plan.rows.size()));
  }
  return plan;
}

/// The vision grid of N tokens per partition: N must be a perfect square of a side up to
/// kMaxVisionSide. `what` names the argument N came from.
inline VisionGrid vision_grid_for(std::int64_t tokens, std::int64_t tile_px,
                                  std::string_view what = "attention") {
  check(tokens > 0, "{}: N = {} patch tokens; need at least one", what, tokens);
  check(tokens <= kMaxVisionSide * kMaxVisionSide,
        "{}: N = {} patch tokens is more than {}^2 (kept indices are int32)", what, tokens,
        kMaxVisionSide);
  auto side = static_cast<std::int64_t>(std::llround(std::sqrt(static_cast<double>(tokens))));
  check(side * side == tokens, "{}: N = {} patch tokens is not a perfect square", what, tokens);
  check(tile_px > 0, "tile_px: {} must be positive", tile_px);
  return {tile_px, side};
}

}  // namespace hired

// Budget allocation for one image: how many tokens each partition keeps (docs/DESIGN.md, sections 3 and 4).
#pragma once

#include "hired/apportion.hpp"
#include "hired/budget_formula.hpp"
#include "hired/config.hpp"
#include "hired/error.hpp"
#include "hired/geometry.hpp"
#include "hired/host_device.hpp"
#include "hired/layout.hpp"
#include "hired/topk.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

namespace hired {

/// Budgets of one image: what was asked (T) and what each partition keeps.
struct ImageBudget {
  std::int64_t requested = 0;
  std::vector<std::int64_t> partitions;
  std::int64_t kept() const {
    return std::accumulate(partitions.begin(), partitions.end(), std::int64_t{0});
  }
};

/// Tokens of each tile that survive `unpad_image` (all N when there is no padding); exact mode
/// never gives budget to the others.
inline std::vector<std::int64_t> tile_capacities(const ImageLayout& image,
                                                 const VisionGrid& vision) {
  std::vector<std::int64_t> capacity(static_cast<std::size_t>(image.grid.tiles()));
  if (capacity.empty()) return capacity;
  check(image.image_size.has_value(), "image_sizes: needed to find the padding of the tiles");
  const TokenBox box = tile_token_box(*image.image_size, image.grid, vision);
  for (std::int64_t ti = 0; ti < image.grid.rows; ++ti)
    for (std::int64_t tj = 0; tj < image.grid.cols; ++tj)
      capacity[ti * image.grid.cols + tj] =
          formula::overlap(box.row_begin, box.row_end, ti * vision.side, (ti + 1) * vision.side) *
          formula::overlap(box.col_begin, box.col_end, tj * vision.side, (tj + 1) * vision.side);
  return capacity;
}

/// Visual-content weight of each tile: for every marked full-image token, the area of its
/// image region that lands on the tile, through preprocessing's resize + centred pad.
/// Exact integers: canvas coordinates are scaled by `side` so token edges fall on integers.
inline std::vector<std::int64_t> tile_content_weights(std::span<const std::int32_t> marked,
                                                      const ImageLayout& image,
                                                      const VisionGrid& vision) {
  std::vector<std::int64_t> weight(static_cast<std::size_t>(image.grid.tiles()), 0);
  if (weight.empty()) return weight;
  check(image.image_size.has_value(), "image_sizes: needed to map the full image onto the tiles");
  const Size2 canvas{image.grid.rows * vision.tile_px, image.grid.cols * vision.tile_px};
  const Placement at = anyres_placement(*image.image_size, canvas);
  const std::int64_t n = vision.side, tile = vision.tile_px * vision.side;
  for (const std::int32_t token : marked) {
    const std::int64_t r = token / n, c = token % n;
    const std::int64_t y0 = n * at.pad_top + r * at.resized.height;
    const std::int64_t y1 = y0 + at.resized.height;
    const std::int64_t x0 = n * at.pad_left + c * at.resized.width;
    const std::int64_t x1 = x0 + at.resized.width;
    for (std::int64_t ti = 0; ti < image.grid.rows; ++ti) {
      const std::int64_t rows = formula::overlap(y0, y1, ti * tile, (ti + 1) * tile);
      if (rows == 0) continue;
      for (std::int64_t tj = 0; tj < image.grid.cols; ++tj)
        weight[ti * image.grid.cols + tj] += rows * formula::overlap(x0, x1, tj * tile, (tj + 1) * tile);
    }
  }
  return weight;
}

namespace detail {

inline void check_scores(std::span<const float> scores, std::int64_t tokens, const char* what) {
  check(static_cast<std::int64_t>(scores.size()) == tokens, "{}: {} scores, expected N = {}", what,
        scores.size(), tokens);
  for (std::size_t j = 0; j < scores.size(); ++j)
    check(std::isfinite(scores[j]) && scores[j] >= 0.0f,
          "{}: score of token {} is {}; attention must be finite and non-negative", what, j,
          scores[j]);
}

}  // namespace detail

/// Reference mode (docs/DESIGN.md, section 3): the published implementation's budgets, bit for bit.
/// `init_full` is s_init of the full image (partition 0), N scores.
inline ImageBudget allocate_reference(std::span<const float> init_full, const ImageLayout& image,
                                      std::int64_t tokens, double rate, double alpha) {
  detail::check_scores(init_full, tokens, "init scores (full image)");
  check_layout(image, 0);
  check(std::isfinite(rate) && rate > 0.0 && rate <= 1.0, "budget_rate: {} is outside (0, 1]", rate);
  check(std::isfinite(alpha) && alpha >= 0.0 && alpha <= 1.0, "alpha: {} is outside [0, 1]", alpha);
  if (reference_formula::keeps_everything(rate))
    return {image.partitions * tokens,
            std::vector<std::int64_t>(static_cast<std::size_t>(image.partitions), tokens)};
  const BudgetSplit s = reference_formula::split(image.partitions, tokens, rate, alpha);
  ImageBudget out{s.total, std::vector<std::int64_t>(static_cast<std::size_t>(image.partitions), 0)};
  out.partitions[0] = s.full_image;
  if (s.tiles <= 0) return out;

  const std::int64_t tiles = image.grid.tiles();
  check(tokens % tiles == 0,
        "grid_shapes: a {}x{} grid does not split N = {} tokens into {} equal bands, as "
        "reference mode needs", image.grid.rows, image.grid.cols, tokens, tiles);
  check(s.marks > 0,
        "alpha: {} marks no full-image token (K = 0), so the published code divides by zero; "
        "use exact mode", alpha);
  const std::int64_t band = tokens / tiles;
  std::vector<std::int64_t> marks_in_band(static_cast<std::size_t>(tiles), 0);
  for (const std::int32_t j : top_k_ascending(init_full.data(), tokens, s.marks))
    ++marks_in_band[j / band];  // flat row-major bands, the published code's quirk
  for (std::int64_t i = 0; i < tiles; ++i)
    out.partitions[1 + i] =
        reference_formula::tile_budget(marks_in_band[i], s.marks, s.tiles, tokens);
  return out;
}

/// Exact mode (docs/DESIGN.md, section 4): kept total = min(T, eligible tokens), padding-aware, spatially
/// mapped tile scores, largest-remainder apportionment with water-filling.
inline ImageBudget allocate_exact(std::span<const float> init_full, const ImageLayout& image,
                                  const VisionGrid& vision, std::int64_t total, double alpha) {
  const std::int64_t tokens = vision.tokens();
  detail::check_scores(init_full, tokens, "init scores (full image)");
  check_layout(image, 0);
  check(total >= 0, "budget_tokens: {} is negative", total);
  check(std::isfinite(alpha) && alpha >= 0.0 && alpha <= 1.0, "alpha: {} is outside [0, 1]", alpha);
  // Beyond P * N every token is kept anyway; clamping keeps the arithmetic in range.
  const BudgetSplit s =
      exact_formula::split(std::min(total, image.partitions * tokens), tokens, alpha);
  ImageBudget out{total, std::vector<std::int64_t>(static_cast<std::size_t>(image.partitions), 0)};

  std::int64_t leftover = s.tiles;
  if (image.grid.tiles() > 0) {
    const std::vector<std::int64_t> capacity = tile_capacities(image, vision);
    const std::vector<std::int32_t> marked = top_k_ascending(init_full.data(), tokens, s.marks);
    const std::vector<std::int64_t> weight = tile_content_weights(marked, image, vision);
    leftover = apportion_capped(weight.data(), capacity.data(), image.grid.tiles(), s.tiles,
                                out.partitions.data() + 1);
  }
  // What the tiles cannot hold goes back to the full image, up to its N tokens.
  out.partitions[0] = s.full_image + std::min(leftover, tokens - s.full_image);
  return out;
}

}  // namespace hired

// anyres geometry of LLaVA-Next, matching Hugging Face transformers' integer formulas:
// best-resolution choice, tile grid, the resize + centred pad of preprocessing, and the
// rows/columns of the tile token grid that `unpad_image` keeps.
#pragma once

#include "hired/error.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <span>
#include <vector>

namespace hired {

/// (height, width): the order Hugging Face uses for `image_sizes` and `image_grid_pinpoints`.
struct Size2 {
  std::int64_t height = 0;
  std::int64_t width = 0;
  friend bool operator==(const Size2&, const Size2&) = default;
};

/// Tiles of an anyres image, rows x cols, raster order.
struct GridShape {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  constexpr std::int64_t tiles() const { return rows * cols; }
  friend bool operator==(const GridShape&, const GridShape&) = default;
};

/// The vision tower's tiling: square tiles of `tile_px` pixels, `side` x `side` patch tokens each.
struct VisionGrid {
  std::int64_t tile_px = 336;
  std::int64_t side = 24;
  constexpr std::int64_t tokens() const { return side * side; }  // N
};

/// LLaVA-v1.6's `image_grid_pinpoints`.
inline constexpr std::array<Size2, 5> llava_v16_grid_pinpoints{
    {{336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}}};

/// Half-open rectangle of the (rows x cols) tile token grid.
struct TokenBox {
  std::int64_t row_begin = 0, row_end = 0, col_begin = 0, col_end = 0;
  constexpr std::int64_t rows() const { return row_end - row_begin; }
  constexpr std::int64_t cols() const { return col_end - col_begin; }
  constexpr bool contains(std::int64_t r, std::int64_t c) const {
    return r >= row_begin && r < row_end && c >= col_begin && c < col_end;
  }
  friend bool operator==(const TokenBox&, const TokenBox&) = default;
};

/// Where preprocessing puts the image inside the padded canvas (best resolution).
struct Placement {
  Size2 canvas;   // best resolution
  Size2 resized;  // aspect-preserving resize of the image
  std::int64_t pad_top = 0;
  std::int64_t pad_left = 0;
};

namespace detail {

inline void check_size(Size2 s, const char* what) {
  check(s.height > 0 && s.width > 0, "{}: ({}, {}) must be positive (height, width)", what,
        s.height, s.width);
  // Products below stay exact in double and int64.
  constexpr std::int64_t limit = std::int64_t{1} << 24;
  check(s.height <= limit && s.width <= limit, "{}: ({}, {}) is larger than {} pixels a side",
        what, s.height, s.width, limit);
}

/// Python's int(round(x, 7)) for x >= 0. glibc's printf rounds the exact binary value
/// half-to-even, as CPython's correctly rounded round() does; the integer part is int().
inline std::int64_t int_of_round7(double x) {
  char text[64];
  std::snprintf(text, sizeof text, "%.7f", x);
  return std::strtoll(text, nullptr, 10);
}

}  // namespace detail

/// transformers' `select_best_resolution`: the pinpoint with the largest effective resolution,
/// then the least waste; the first wins ties. An image so elongated that every pinpoint
/// shrinks one side to zero pixels has effective resolution 0 everywhere: the least waste wins.
inline Size2 select_best_resolution(Size2 image, std::span<const Size2> pinpoints) {
  detail::check_size(image, "image_size");
  check(!pinpoints.empty(), "grid_pinpoints: empty");
  const Size2* best = nullptr;
  std::int64_t max_effective = 0;
  std::int64_t min_wasted = std::numeric_limits<std::int64_t>::max();
  for (const Size2& p : pinpoints) {
    detail::check_size(p, "grid_pinpoints");
    const double scale = std::min(double(p.width) / double(image.width),
                                  double(p.height) / double(image.height));
    const auto w = static_cast<std::int64_t>(double(image.width) * scale);
    const auto h = static_cast<std::int64_t>(double(image.height) * scale);
    const std::int64_t effective = std::min(w * h, image.width * image.height);
    const std::int64_t wasted = p.width * p.height - effective;
    if (effective > max_effective || (effective == max_effective && wasted < min_wasted)) {
      max_effective = effective;
      min_wasted = wasted;
      best = &p;
    }
  }
  return *best;  // set by the first pinpoint: its waste is below min_wasted's start
}

/// transformers' `get_anyres_image_grid_shape`: tiles of the best resolution.
inline GridShape anyres_grid_shape(Size2 image, std::span<const Size2> pinpoints,
                                   std::int64_t tile_px) {
  check(tile_px > 0, "tile_px: {} must be positive", tile_px);
  const Size2 best = select_best_resolution(image, pinpoints);
  check(best.height % tile_px == 0 && best.width % tile_px == 0,
        "grid_pinpoints: ({}, {}) is not a multiple of the {}-pixel tile", best.height,
        best.width, tile_px);
  return {best.height / tile_px, best.width / tile_px};
}

/// The image processor's resize-for-patching and centred pad-for-patching.
inline Placement anyres_placement(Size2 image, Size2 canvas) {
  detail::check_size(image, "image_size");
  detail::check_size(canvas, "best_resolution");
  const double scale_w = double(canvas.width) / double(image.width);
  const double scale_h = double(canvas.height) / double(image.height);
  Size2 resized = canvas;
  if (scale_w < scale_h) {
    resized.height = std::min(static_cast<std::int64_t>(std::ceil(double(image.height) * scale_w)),
                              canvas.height);
  } else {
    resized.width = std::min(static_cast<std::int64_t>(std::ceil(double(image.width) * scale_h)),
                             canvas.width);
  }
  return {canvas, resized, (canvas.height - resized.height) / 2,
          (canvas.width - resized.width) / 2};
}

/// transformers' `unpad_image` on a (grid_rows x grid_cols) token grid: the box it keeps.
inline TokenBox unpad_box(Size2 image, std::int64_t grid_rows, std::int64_t grid_cols) {
  detail::check_size(image, "image_size");
  check(grid_rows > 0 && grid_cols > 0, "unpad: token grid {}x{} must be non-empty", grid_rows,
        grid_cols);
  TokenBox box{0, grid_rows, 0, grid_cols};
  const double image_aspect = double(image.width) / double(image.height);
  const double grid_aspect = double(grid_cols) / double(grid_rows);
  if (image_aspect > grid_aspect) {
    const double scale = double(grid_cols) / double(image.width);
    const std::int64_t new_rows = detail::int_of_round7(double(image.height) * scale);
    const std::int64_t pad = (grid_rows - new_rows) / 2;  // >= 0 here: the image is wider
    box.row_begin = pad;
    box.row_end = grid_rows - pad;
  } else {
    const double scale = double(grid_rows) / double(image.height);
    const std::int64_t new_cols = detail::int_of_round7(double(image.width) * scale);
    const std::int64_t pad = (grid_cols - new_cols) / 2;
    box.col_begin = pad;
    box.col_end = grid_cols - pad;
  }
  return box;
}

/// Token box of an anyres image's tile grid after unpad (all of it when there is no padding).
inline TokenBox tile_token_box(Size2 image, GridShape grid, const VisionGrid& vision) {
  return unpad_box(image, grid.rows * vision.side, grid.cols * vision.side);
}

}  // namespace hired

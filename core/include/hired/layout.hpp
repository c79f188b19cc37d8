// How each image of a batch is partitioned, from what a caller has: partition counts plus
// grid shapes, or image sizes plus grid pinpoints (from which the grid follows).
#pragma once

#include "hired/error.hpp"
#include "hired/geometry.hpp"

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <vector>

namespace hired {

/// One image: P partitions (the full image, then grid.tiles() tiles in raster order).
struct ImageLayout {
  std::int64_t partitions = 1;
  GridShape grid{};                 // 0x0 when P == 1
  std::optional<Size2> image_size;  // original (height, width), when known
};

/// Checks that an image layout is self-consistent: P >= 1 partitions, a grid with P - 1 tiles
/// (0x0 when P == 1), and a positive image size when one is given. `index` names the image.
inline void check_layout(const ImageLayout& image, std::int64_t index) {
  check(image.partitions >= 1, "num_partitions[{}]: {} must be at least 1", index,
        image.partitions);
  check(image.grid.rows >= 0 && image.grid.cols >= 0, "grid_shapes[{}]: ({}, {}) is negative",
        index, image.grid.rows, image.grid.cols);
  check(image.partitions > 1 || (image.grid.rows == 0 && image.grid.cols == 0),
        "grid_shapes[{}]: ({}, {}) must be (0, 0) for an image with one partition", index,
        image.grid.rows, image.grid.cols);
  // rows * cols == P - 1, compared without forming a product beyond int64.
  const std::int64_t tiles = image.partitions - 1, rows = image.grid.rows, cols = image.grid.cols;
  check(rows == 0 || cols == 0 ? tiles == 0 : cols <= tiles / rows && rows * cols == tiles,
        "num_partitions[{}]: {} partitions, but a {}x{} tile grid gives 1 + {} * {}", index,
        image.partitions, rows, cols, rows, cols);
  if (image.image_size) detail::check_size(*image.image_size, "image_sizes");
}

/// What a caller knows about a batch. Spans of int64 in row-major order:
/// num_partitions [B], grid_shapes [B, 2] (rows, cols), image_sizes [B, 2] (height, width).
struct BatchDescription {
  std::span<const std::int64_t> num_partitions;
  std::span<const std::int64_t> grid_shapes;  // empty when unknown
  std::span<const std::int64_t> image_sizes;  // empty when unknown
  std::span<const Size2> grid_pinpoints;      // needed with image_sizes when grid_shapes is empty
  std::int64_t tile_px = 336;
};

/// Validates a batch description and resolves every image's layout.
inline std::vector<ImageLayout> describe_images(const BatchDescription& d) {
  const auto batch = static_cast<std::int64_t>(d.num_partitions.size());
  check(batch > 0, "num_partitions: empty batch");
  check(d.grid_shapes.empty() || static_cast<std::int64_t>(d.grid_shapes.size()) == 2 * batch,
        "grid_shapes: {} values for {} images; expected shape [{}, 2]", d.grid_shapes.size(),
        batch, batch);
  check(d.image_sizes.empty() || static_cast<std::int64_t>(d.image_sizes.size()) == 2 * batch,
        "image_sizes: {} values for {} images; expected shape [{}, 2]", d.image_sizes.size(),
        batch, batch);
  for (std::int64_t b = 0; b < batch; ++b)
    check(d.num_partitions[b] >= 1, "num_partitions[{}]: {} must be at least 1", b,
          d.num_partitions[b]);
  check(!d.image_sizes.empty() || !d.grid_shapes.empty() ||
            std::all_of(d.num_partitions.begin(), d.num_partitions.end(),
                        [](std::int64_t p) { return p == 1; }),
        "grid_shapes: needed (or image_sizes with grid_pinpoints) for images with tiles");

  std::vector<ImageLayout> out(static_cast<std::size_t>(batch));
  for (std::int64_t b = 0; b < batch; ++b) {
    ImageLayout& image = out[b];
    image.partitions = d.num_partitions[b];
    if (!d.image_sizes.empty()) {
      image.image_size = Size2{d.image_sizes[2 * b], d.image_sizes[2 * b + 1]};
      detail::check_size(*image.image_size, "image_sizes");
    }
    if (!d.grid_shapes.empty()) {
      image.grid = {d.grid_shapes[2 * b], d.grid_shapes[2 * b + 1]};
    } else if (image.partitions > 1) {
      check(!d.grid_pinpoints.empty(), "grid_pinpoints: needed to derive the grid from image_sizes");
      image.grid = anyres_grid_shape(*image.image_size, d.grid_pinpoints, d.tile_px);
    }
    check_layout(image, b);
    if (!d.grid_shapes.empty() && !d.image_sizes.empty() && image.partitions > 1 &&
        !d.grid_pinpoints.empty()) {
      const GridShape derived = anyres_grid_shape(*image.image_size, d.grid_pinpoints, d.tile_px);
      check(derived == image.grid,
            "grid_shapes[{}]: ({}, {}) disagrees with image_sizes[{}] = ({}, {}), which the "
            "grid pinpoints tile as ({}, {})",
            b, image.grid.rows, image.grid.cols, b, image.image_size->height,
            image.image_size->width, derived.rows, derived.cols);
    }
  }
  return out;
}

/// Where each image's partitions start in a batch's [sum P, ...] tensors, and where the last
/// ends: [0, P_0, P_0 + P_1, ..., sum P] (B + 1 values). Image b's full-image partition is
/// row offsets[b].
inline std::vector<std::int64_t> partition_offsets(std::span<const ImageLayout> images) {
  std::vector<std::int64_t> offsets{0};
  for (const ImageLayout& image : images) {
    check(image.partitions >= 0 &&
              image.partitions < std::numeric_limits<std::int64_t>::max() - offsets.back(),
          "num_partitions: the batch's partitions add up beyond int64");
    offsets.push_back(offsets.back() + image.partitions);
  }
  return offsets;
}

/// Total partitions of a batch (the number of rows of its attention tensors).
inline std::int64_t total_partitions(std::span<const ImageLayout> images) {
  return partition_offsets(images).back();
}

/// The row of each image's full-image partition: partition_offsets without the last.
inline std::vector<std::int64_t> full_image_rows(std::span<const ImageLayout> images) {
  std::vector<std::int64_t> rows = partition_offsets(images);
  rows.pop_back();
  return rows;
}

}  // namespace hired

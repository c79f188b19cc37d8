// LLaVA-Next packing of a kept-token selection, restated with plain LibTorch ops the way the
// published implementation works: boolean masks per partition, the tile features laid out as
// one grid, unpadded, then masked row by row. Tests compare hired's packing with it.
#pragma once

#include "hired/config.hpp"
#include "hired/geometry.hpp"
#include "hired/selection.hpp"

#include <ATen/ATen.h>

#include <vector>

namespace hired_test {

/// `projected` [sum P, N, Dt]: every token already through the projector.
inline at::Tensor masked_packing(const at::Tensor& projected, const hired::Selection& selection,
                                 const at::Tensor& newline, hired::NewlinePolicy policy) {
  const std::int64_t side = selection.vision.side, tokens = selection.vision.tokens();
  const std::int64_t dim = projected.size(2);
  std::vector<at::Tensor> parts;
  for (std::size_t b = 0; b < selection.images.size(); ++b) {
    const hired::ImageLayout& image = selection.images[b];
    const std::int64_t first = selection.partition_offsets[b];
    std::vector<at::Tensor> masks;
    for (std::int64_t p = first; p < first + image.partitions; ++p) {
      at::Tensor mask = at::zeros({tokens}, at::kBool);
      for (const std::int32_t j : selection.kept_in(p)) mask[j] = true;
      masks.push_back(mask);
    }
    parts.push_back(projected[first].index({masks[0]}));
    const bool any_base = masks[0].any().item<bool>();
    if (image.partitions == 1) {
      if (policy == hired::NewlinePolicy::every_row ||
          (policy == hired::NewlinePolicy::kept_rows && any_base))
        parts.push_back(newline.unsqueeze(0));
      continue;
    }
    const std::int64_t gh = image.grid.rows, gw = image.grid.cols;
    // [gh, gw, side, side, D] -> [gh*side, gw*side, D], as pack_image_features lays tiles out.
    const at::Tensor grid = projected.slice(0, first + 1, first + image.partitions)
                                .reshape({gh, gw, side, side, dim})
                                .permute({0, 2, 1, 3, 4})
                                .reshape({gh * side, gw * side, dim});
    const at::Tensor grid_mask = at::stack(std::vector<at::Tensor>(masks.begin() + 1, masks.end()))
                                     .reshape({gh, gw, side, side})
                                     .permute({0, 2, 1, 3})
                                     .reshape({gh * side, gw * side});
    const hired::TokenBox box = hired::tile_token_box(*image.image_size, image.grid, selection.vision);
    for (std::int64_t r = box.row_begin; r < box.row_end; ++r) {
      const at::Tensor row_mask = grid_mask[r].slice(0, box.col_begin, box.col_end);
      parts.push_back(grid[r].slice(0, box.col_begin, box.col_end).index({row_mask}));
      if (policy == hired::NewlinePolicy::every_row ||
          (policy == hired::NewlinePolicy::kept_rows && row_mask.any().item<bool>()))
        parts.push_back(newline.unsqueeze(0));
    }
  }
  return at::cat(parts);
}

}  // namespace hired_test

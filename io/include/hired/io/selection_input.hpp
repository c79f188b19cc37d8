// hired_select's input file: the CLS-attention rows of the two layers HiRED reads and the
// layout of the batch's images, from a safetensors file, validated and ready for
// hired::select_tokens.
//
//   init_cls_attn, final_cls_attn  [sum P, H, N + 1]  F32/F16/BF16/F64
//   num_partitions                 [B]                integers
//   grid_shapes                    [B, 2]             (rows, cols), optional
//   image_sizes                    [B, 2]             (height, width), optional
//   grid_pinpoints                 [G, 2]             (height, width), with image_sizes
#pragma once

#include "hired/config.hpp"
#include "hired/geometry.hpp"
#include "hired/io/safetensors.hpp"
#include "hired/layout.hpp"

#include <cstdint>
#include <vector>

namespace hired::io {

struct SelectionInput {
  std::vector<float> init_scores;   // [sum P, N]: init_cls_attn summed over heads
  std::vector<float> final_scores;  // [sum P, N]: final_cls_attn summed over heads
  std::vector<ImageLayout> images;
  VisionGrid vision;
};

/// Reads and validates `file` for a selection in `mode` with tiles of `tile_px` pixels: exact
/// mode needs image_sizes for images with tiles (their padding and spatial mapping), reference
/// mode runs on grid_shapes alone. hired::Error naming the tensor for anything missing, of the
/// wrong dtype or shape, inconsistent (rows that do not add up to the partitions, a grid that
/// disagrees with the image size), or attention that is negative or not finite.
SelectionInput read_selection_input(const SafeTensors& file, Mode mode, std::int64_t tile_px);

}  // namespace hired::io

// Preprocessed images from a file (hired_generate's --pixel-values): `pixel_values`
// [sum P, 3, S, S] and `image_sizes` [I, 2] (height, width) as an image processor gives them to
// the model, saved as safetensors. Validated against the model's tiling before anything runs.
#pragma once

#include "hired/geometry.hpp"
#include "hired/io/image.hpp"
#include "hired/io/safetensors.hpp"

#include <cstdint>
#include <span>

namespace hired::io {

/// The images of `file` for a model with tiles of `tile_px` pixels and these grid pinpoints
/// (LLaVA-Next), or none (LLaVA-1.5: one partition per image): pixel values as float (from
/// F32, F16, BF16 or F64), each image's size and its partition count (1 + the tiles its size
/// gets under the pinpoints). hired::Error naming the file and the tensor for a
/// missing tensor, a wrong dtype or shape, a size that is not positive (or beyond 2^24 a side),
/// partitions that do not add up to pixel_values' rows, or a value that is not finite.
PixelBatch read_pixel_values(const SafeTensors& file, std::span<const Size2> pinpoints,
                             std::int64_t tile_px);

}  // namespace hired::io

#include "hired/io/pixel_values.hpp"

#include "hired/error.hpp"

#include <cmath>
#include <numeric>

namespace hired::io {

PixelBatch read_pixel_values(const SafeTensors& file, std::span<const Size2> pinpoints,
                             std::int64_t tile_px) {
  check(tile_px > 0, "tile_px: {} must be positive", tile_px);
  const std::string& source = file.source();
  const TensorView& pixels = file.at("pixel_values");
  const std::vector<std::int64_t>& shape = pixels.shape();
  check(shape.size() == 4 && shape[1] == 3 && shape[2] == tile_px && shape[3] == tile_px,
        "{}: pixel_values has shape {}; it must be [sum P, 3, {}, {}]", source, shape_text(shape),
        tile_px, tile_px);
  const TensorView& sizes = file.at("image_sizes");
  check(sizes.shape().size() == 2 && sizes.shape()[1] == 2 && sizes.shape()[0] > 0,
        "{}: image_sizes has shape {}; it must be [B, 2] (height, width) with B > 0", source,
        shape_text(sizes.shape()));

  PixelBatch batch;
  batch.tile_px = tile_px;
  const std::vector<std::int64_t> hw = sizes.to_int64();
  for (std::size_t i = 0; i < hw.size(); i += 2) {
    const Size2 size{hw[i], hw[i + 1]};
    try {
      hired::detail::check_size(size, "image_size");
      batch.partitions.push_back(
          pinpoints.empty() ? 1 : 1 + anyres_grid_shape(size, pinpoints, tile_px).tiles());
    } catch (const Error& e) {
      fail("{}: image_sizes row {}: {}", source, i / 2, e.what());
    }
    batch.image_sizes.push_back(size);
  }
  const std::int64_t partitions =
      std::accumulate(batch.partitions.begin(), batch.partitions.end(), std::int64_t{0});
  check(shape[0] == partitions,
        "{}: pixel_values has {} partitions, but the image sizes tile into {}", source, shape[0],
        partitions);

  batch.pixel_values = pixels.to_float();
  for (std::size_t i = 0; i < batch.pixel_values.size(); ++i)
    check(std::isfinite(batch.pixel_values[i]),
          "{}: pixel_values: value {} at flat index {} is not finite", source,
          batch.pixel_values[i], i);
  return batch;
}

}  // namespace hired::io

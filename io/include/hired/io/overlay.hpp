// What HiRED kept, as a picture: one image's partitions side by side, the full image first,
// then its tiles as the anyres grid lays them out, kept patches at full brightness and dropped
// ones at a quarter, each partition labelled with its budget ("288 / 576") in a strip above it.
//
//   const AnyresTiles tiles = anyres_tiles(load_image(path), pinpoints);
//   write_png("kept.png", draw_selection(tiles, selection, /*image=*/0));
#pragma once

#include "hired/io/image.hpp"
#include "hired/selection.hpp"

#include <cstdint>
#include <span>
#include <vector>

namespace hired::io {

/// Top-left corner of each partition's pixels in draw_selection's picture (0: the full image).
struct Placement2 {
  std::int64_t x = 0, y = 0;
};
std::vector<Placement2> overlay_placements(const AnyresTiles& tiles);

/// The overlay of image `image` of `selection`, drawn from that image's uint8 partitions (see
/// anyres_tiles). hired::Error when the tiles do not belong to the selection's image (another
/// partition count or grid, or a tile size the token grid does not divide).
RgbImage draw_selection(const AnyresTiles& tiles, const Selection& selection, std::int64_t image);

/// Every image of `selection`, each drawn by draw_selection from its own partitions
/// (`tiles[b]` for image b), one below the other. hired::Error when the counts differ.
RgbImage draw_selections(std::span<const AnyresTiles> tiles, const Selection& selection);

}  // namespace hired::io

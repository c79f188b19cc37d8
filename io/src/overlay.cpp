#include "hired/io/overlay.hpp"

#include "hired/error.hpp"
#include "hired/io/canvas.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace hired::io {
namespace {

constexpr std::int64_t kLabel = 20;  // the strip above each partition holding its budget
constexpr std::int64_t kGap = 8;     // between partitions, and around the picture

std::int64_t grid_x(const AnyresTiles& tiles) { return kGap + tiles.tile_px + 3 * kGap; }

}  // namespace

std::vector<Placement2> overlay_placements(const AnyresTiles& tiles) {
  std::vector<Placement2> out{{kGap, kGap + kLabel}};
  for (std::int64_t t = 0; t < tiles.grid.tiles(); ++t) {
    const std::int64_t ti = t / tiles.grid.cols, tj = t % tiles.grid.cols;
    out.push_back({grid_x(tiles) + tj * (tiles.tile_px + kGap),
                   kGap + kLabel + ti * (tiles.tile_px + kGap + kLabel)});
  }
  return out;
}

RgbImage draw_selection(const AnyresTiles& tiles, const Selection& selection, std::int64_t image) {
  check(image >= 0 && image < static_cast<std::int64_t>(selection.images.size()),
        "image: {} is not one of the selection's {} images", image, selection.images.size());
  const ImageLayout& layout = selection.images[static_cast<std::size_t>(image)];
  check(layout.partitions == tiles.partitions && layout.grid == tiles.grid,
        "tiles: {} partitions in a {}x{} grid, but the selection's image {} has {} in {}x{}",
        tiles.partitions, tiles.grid.rows, tiles.grid.cols, image, layout.partitions,
        layout.grid.rows, layout.grid.cols);
  const std::int64_t side = selection.vision.side, px = tiles.tile_px;
  check(side > 0 && px % side == 0, "tiles: {} px tiles are not a whole number of the {}x{} "
        "token grid's patches", px, side, side);
  check(tiles.tiles.size() == static_cast<std::size_t>(tiles.partitions * 3 * px * px),
        "tiles: {} bytes for {} partitions of 3 x {} x {}", tiles.tiles.size(), tiles.partitions,
        px, px);
  const std::int64_t patch = px / side, plane = px * px;
  const std::vector<Placement2> at = overlay_placements(tiles);
  const std::int64_t rows = std::max<std::int64_t>(tiles.grid.rows, 1);
  Canvas canvas(grid_x(tiles) + std::max<std::int64_t>(tiles.grid.cols, 0) * (px + kGap),
                kGap + rows * (px + kGap + kLabel));
  for (std::int64_t p = 0; p < tiles.partitions; ++p) {
    const std::int64_t row = selection.partition_offsets[static_cast<std::size_t>(image)] + p;
    std::vector<char> kept(static_cast<std::size_t>(side * side), 0);
    for (const std::int32_t j : selection.kept_in(row)) kept[static_cast<std::size_t>(j)] = 1;
    RgbImage drawn;
    drawn.height = drawn.width = px;
    drawn.pixels.resize(static_cast<std::size_t>(plane * 3));
    const std::uint8_t* chw = tiles.tiles.data() + p * 3 * plane;
    for (std::int64_t y = 0; y < px; ++y)
      for (std::int64_t x = 0; x < px; ++x) {
        const bool bright = kept[static_cast<std::size_t>((y / patch) * side + x / patch)] != 0;
        for (std::int64_t c = 0; c < 3; ++c) {
          const std::uint8_t v = chw[c * plane + y * px + x];
          drawn.pixels[static_cast<std::size_t>((y * px + x) * 3 + c)] =
              bright ? v : static_cast<std::uint8_t>(v / 4);
        }
      }
    canvas.paste(drawn, at[p].x, at[p].y);
    canvas.text(at[p].x, at[p].y - kLabel + 3,
                fmt::format("{} / {}", selection.budget(row), side * side));
  }
  return canvas.image();
}

RgbImage draw_selections(std::span<const AnyresTiles> tiles, const Selection& selection) {
  check(tiles.size() == selection.images.size(),
        "tiles: {} images' partitions for a selection of {} images", tiles.size(),
        selection.images.size());
  std::vector<RgbImage> pictures;
  std::int64_t width = 0, height = 0;
  for (std::size_t b = 0; b < tiles.size(); ++b) {
    pictures.push_back(draw_selection(tiles[b], selection, static_cast<std::int64_t>(b)));
    width = std::max(width, pictures.back().width);
    height += pictures.back().height;
  }
  Canvas canvas(width, height);
  std::int64_t y = 0;
  for (const RgbImage& picture : pictures) {
    canvas.paste(picture, 0, y);
    y += picture.height;
  }
  return canvas.image();
}

}  // namespace hired::io

// draw_selection: one image's partitions side by side, kept patches as they are, dropped ones
// at a quarter of their brightness, checked pixel by pixel against the tiles and the selection.
#include "hired/io/canvas.hpp"
#include "hired/io/image.hpp"
#include "hired/io/overlay.hpp"
#include "hired/selection.hpp"

#include "support/expect_error.hpp"
#include "support/scratch_dir.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

namespace {

using hired::io::AnyresTiles;
using hired_test::expect_error;

const std::vector<hired::Size2> kPinpoints(hired::llava_v16_grid_pinpoints.begin(),
                                           hired::llava_v16_grid_pinpoints.end());
const hired::VisionGrid kClip{336, 24};

/// A synthetic image's anyres tiles: random pixels, so every patch is told apart.
AnyresTiles random_tiles(hired::Size2 size, unsigned seed) {
  hired::io::RgbImage image;
  image.height = size.height;
  image.width = size.width;
  std::mt19937 rng(seed);
  for (std::int64_t i = 0; i < size.height * size.width * 3; ++i)
    image.pixels.push_back(static_cast<std::uint8_t>(rng()));
  return hired::io::anyres_tiles(image, kPinpoints);
}

hired::Selection random_selection(const AnyresTiles& tiles, double rate, unsigned seed) {
  hired::ImageLayout layout{tiles.partitions, tiles.grid, tiles.image_size};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> score(0, 1);
  std::vector<float> init(static_cast<std::size_t>(tiles.partitions * 576)), final(init.size());
  for (std::size_t i = 0; i < init.size(); ++i) init[i] = score(rng), final[i] = score(rng);
  hired::DropConfig config;
  config.budget = hired::Budget::rate(rate);
  return hired::select_tokens(init, final, {layout}, kClip, config);
}

/// Every pixel of every partition: the tile's value where the selection keeps its patch, a
/// quarter of it where it drops it.
void expect_drawn(const hired::io::RgbImage& picture, const AnyresTiles& tiles,
                  const hired::Selection& selection) {
  const auto at = hired::io::overlay_placements(tiles);
  ASSERT_EQ(static_cast<std::int64_t>(at.size()), tiles.partitions);
  const std::int64_t px = tiles.tile_px, plane = px * px;
  for (std::int64_t p = 0; p < tiles.partitions; ++p) {
    std::vector<char> kept(576, 0);
    for (const std::int32_t j : selection.kept_in(p)) kept[j] = 1;
    std::int64_t bright = 0, dim = 0;
    for (std::int64_t y = 0; y < px; ++y)
      for (std::int64_t x = 0; x < px; ++x) {
        const bool keep = kept[(y / 14) * 24 + x / 14] != 0;
        (keep ? bright : dim) += 1;
        for (std::int64_t c = 0; c < 3; ++c) {
          const std::uint8_t tile = tiles.tiles[p * 3 * plane + c * plane + y * px + x];
          const std::uint8_t drawn =
              picture.pixels[((at[p].y + y) * picture.width + at[p].x + x) * 3 + c];
          ASSERT_EQ(drawn, keep ? tile : tile / 4) << "partition " << p << " pixel " << x << "," << y;
        }
      }
    EXPECT_EQ(bright, selection.budget(p) * 14 * 14);
    EXPECT_EQ(dim, (576 - selection.budget(p)) * 14 * 14);
  }
}

TEST(Overlay, KeptPatchesAreBrightAndDroppedOnesDimmed) {
  const AnyresTiles tiles = random_tiles({600, 600}, 1);  // 2 x 2 tiles
  const hired::Selection selection = random_selection(tiles, 0.2, 2);
  const hired::io::RgbImage picture = hired::io::draw_selection(tiles, selection, 0);
  // The full image, then a 2 x 2 grid of tiles, each under a label strip.
  EXPECT_EQ(picture.width, 8 + 336 + 24 + 2 * (336 + 8));
  EXPECT_EQ(picture.height, 8 + 2 * (336 + 8 + 20));
  expect_drawn(picture, tiles, selection);
}

TEST(Overlay, GridsOfEveryShapeAndHiredOffDrawEveryPatch) {
  for (const hired::Size2 size : {hired::Size2{150, 380}, hired::Size2{500, 240}, hired::Size2{200, 1000}}) {
    const AnyresTiles tiles = random_tiles(size, 3);
    expect_drawn(hired::io::draw_selection(tiles, random_selection(tiles, 0.1, 4), 0), tiles,
                 random_selection(tiles, 0.1, 4));
    const hired::Selection all = hired::keep_everything(
        {hired::ImageLayout{tiles.partitions, tiles.grid, tiles.image_size}}, kClip);
    expect_drawn(hired::io::draw_selection(tiles, all, 0), tiles, all);
  }
}

TEST(Overlay, WritesAPng) {
  const AnyresTiles tiles = random_tiles({300, 260}, 5);
  const hired_test::ScratchDir dir("overlay");
  const auto path = dir.path() / "kept.png";
  hired::io::write_png(path, hired::io::draw_selection(tiles, random_selection(tiles, 0.2, 6), 0));
  const hired::io::RgbImage back = hired::io::load_image(path);
  EXPECT_EQ(back.width, hired::io::draw_selection(tiles, random_selection(tiles, 0.2, 6), 0).width);
  expect_error<hired::IoError>([&] {
    hired::io::write_png(dir.path() / "no" / "such" / "dir.png", back);
  }, "cannot write");
}

TEST(Overlay, ABatchIsDrawnImageByImageOneBelowTheOther) {
  const AnyresTiles wide = random_tiles({150, 380}, 10), square = random_tiles({600, 600}, 11);
  const hired::ImageLayout layouts[] = {{wide.partitions, wide.grid, wide.image_size},
                                        {square.partitions, square.grid, square.image_size}};
  std::mt19937 rng(12);
  std::uniform_real_distribution<float> score(0, 1);
  std::vector<float> init(static_cast<std::size_t>((wide.partitions + square.partitions) * 576));
  std::vector<float> final(init.size());
  for (std::size_t i = 0; i < init.size(); ++i) init[i] = score(rng), final[i] = score(rng);
  hired::DropConfig config;
  config.budget = hired::Budget::rate(0.3);
  const hired::Selection selection =
      hired::select_tokens(init, final, {layouts[0], layouts[1]}, kClip, config);
  const std::vector<AnyresTiles> both{wide, square};
  const hired::io::RgbImage picture = hired::io::draw_selections(both, selection);
  const hired::io::RgbImage first = hired::io::draw_selection(wide, selection, 0);
  const hired::io::RgbImage second = hired::io::draw_selection(square, selection, 1);
  ASSERT_EQ(picture.height, first.height + second.height);
  ASSERT_EQ(picture.width, std::max(first.width, second.width));
  for (std::int64_t y = 0; y < picture.height; ++y) {
    const bool top = y < first.height;
    const hired::io::RgbImage& part = top ? first : second;
    const std::int64_t py = top ? y : y - first.height;
    for (std::int64_t x = 0; x < part.width; ++x)
      for (std::int64_t c = 0; c < 3; ++c)
        ASSERT_EQ(picture.pixels[(y * picture.width + x) * 3 + c], part.pixels[(py * part.width + x) * 3 + c])
            << "pixel " << x << "," << y;
  }
  expect_error([&] { (void)hired::io::draw_selections(std::span(both).first(1), selection); },
               {"tiles", "1 images", "2 images"});
}

TEST(Overlay, TilesOfAnotherImageAreRefused) {
  const AnyresTiles wide = random_tiles({150, 380}, 7), square = random_tiles({600, 600}, 8);
  const hired::Selection selection = random_selection(square, 0.2, 9);
  expect_error([&] { (void)hired::io::draw_selection(wide, selection, 0); }, {"tiles", "partitions"});
  expect_error([&] { (void)hired::io::draw_selection(square, selection, 1); }, {"image", "1"});
}

}  // namespace

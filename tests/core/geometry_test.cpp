// anyres geometry against fixtures written by Hugging Face transformers' own functions
// (tests/fixtures/generate_hf_fixtures.py), plus the hand-checkable cases of docs/DESIGN.md, section 1.
#include "hired/geometry.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <vector>

namespace {

using hired::Size2;

nlohmann::json load_cases() {
  std::ifstream in(HIRED_FIXTURES_DIR "/anyres_geometry.json");
  EXPECT_TRUE(in.good()) << "missing fixture anyres_geometry.json";
  return nlohmann::json::parse(in);
}

std::vector<Size2> pinpoints_of(const nlohmann::json& c) {
  std::vector<Size2> out;
  for (const auto& p : c["grid_pinpoints"]) out.push_back({p[0], p[1]});
  return out;
}

TEST(Geometry, PaperImage600x600IsTwoByTwoWithoutPadding) {
  const Size2 best = hired::select_best_resolution({600, 600}, hired::llava_v16_grid_pinpoints);
  EXPECT_EQ(best, (Size2{672, 672}));
  const hired::GridShape grid = hired::anyres_grid_shape({600, 600}, hired::llava_v16_grid_pinpoints, 336);
  EXPECT_EQ(grid, (hired::GridShape{2, 2}));
  EXPECT_EQ(hired::unpad_box({600, 600}, 48, 48), (hired::TokenBox{0, 48, 0, 48}));
}

TEST(Geometry, MatchesTransformersOnEveryFixtureCase) {
  const nlohmann::json cases = load_cases();
  ASSERT_GT(cases.size(), 500u);
  for (const auto& c : cases) {
    const Size2 image{c["image_size"][0], c["image_size"][1]};
    const std::vector<Size2> pins = pinpoints_of(c);
    const std::int64_t tile = c["tile_px"];
    SCOPED_TRACE(c.dump());
    const Size2 best = hired::select_best_resolution(image, pins);
    EXPECT_EQ(best, (Size2{c["best_resolution"][0], c["best_resolution"][1]}));
    const hired::GridShape grid = hired::anyres_grid_shape(image, pins, tile);
    EXPECT_EQ(grid, (hired::GridShape{c["grid_shape"][0], c["grid_shape"][1]}));
    EXPECT_EQ(grid.tiles() + 1, c["num_patches"].get<std::int64_t>());

    const hired::Placement at = hired::anyres_placement(image, best);
    EXPECT_EQ(at.resized, (Size2{c["resized"][0], c["resized"][1]}));
    EXPECT_EQ(at.pad_top, c["pad_top_left"][0].get<std::int64_t>());
    EXPECT_EQ(at.pad_left, c["pad_top_left"][1].get<std::int64_t>());

    const hired::TokenBox box = hired::tile_token_box(image, grid, hired::VisionGrid{tile, 24});
    EXPECT_EQ(box.row_begin, c["unpad"]["rows"][0].get<std::int64_t>());
    EXPECT_EQ(box.row_end, c["unpad"]["rows"][1].get<std::int64_t>());
    EXPECT_EQ(box.col_begin, c["unpad"]["cols"][0].get<std::int64_t>());
    EXPECT_EQ(box.col_end, c["unpad"]["cols"][1].get<std::int64_t>());
  }
}

TEST(Geometry, Round7DecidesTheUnpaddedRowCount) {
  // int(round(x, 7)) differs from int(x) when x is within 5e-8 below an integer.
  EXPECT_EQ(hired::detail::int_of_round7(23.99999996), 24);
  EXPECT_EQ(hired::detail::int_of_round7(23.9999999), 23);
  EXPECT_EQ(hired::detail::int_of_round7(0.00390625), 0);  // exact tie, half-to-even
  EXPECT_EQ(hired::detail::int_of_round7(7.0), 7);
}

TEST(Geometry, RejectsWhatTransformersCannotTile) {
  EXPECT_THROW(hired::select_best_resolution({0, 10}, hired::llava_v16_grid_pinpoints), hired::Error);
  EXPECT_THROW(hired::select_best_resolution({10, 10}, {}), hired::Error);
  const std::vector<Size2> odd{{300, 600}};
  EXPECT_THROW(hired::anyres_grid_shape({300, 600}, odd, 336), hired::Error);
  EXPECT_THROW(hired::unpad_box({10, 10}, 0, 24), hired::Error);
}

}  // namespace

// hired_select end to end: the bundled sample, its JSON contract, and one test per rejection
// (exit status 2, exactly one line on stderr naming the tensor or flag).
#include "hired/half.hpp"
#include "hired/io/image.hpp"
#include "hired/io/overlay.hpp"
#include "hired/io/safetensors.hpp"
#include "support/run_process.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace fs = std::filesystem;
using hired::io::Dtype;
using hired::io::TensorData;

const std::string sample = HIRED_FIXTURES_DIR "/../../examples/data/sample_600x600.safetensors";
const std::string sample_png = HIRED_FIXTURES_DIR "/../../examples/data/sample_600x600.png";
const std::string small_png = HIRED_FIXTURES_DIR "/llava/images/small_300x260.png";

using hired_test::expect_rejected;
using Result = hired_test::ProcessResult;

fs::path scratch(const std::string& name) { return hired_test::scratch("cli_test", name); }

Result run(const std::string& args) { return hired_test::run_process(HIRED_SELECT_EXE, args, "cli_test"); }

/// A valid input: B images described by partitions, image sizes and v1.6 pinpoints, with
/// random softmax-like attention of `heads` heads over `keys` keys.
struct Input {
  std::vector<std::int64_t> partitions{5};
  std::vector<std::int64_t> sizes{600, 600};
  std::vector<std::int64_t> grids{2, 2};
  std::int64_t heads = 2, keys = 577;
  std::vector<float> init, final_;

  Input() { fill(); }
  std::int64_t rows() const {
    std::int64_t r = 0;
    for (auto p : partitions) r += p;
    return r;
  }
  void fill() {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    init.resize(rows() * heads * keys);
    final_.resize(init.size());
    for (auto& x : init) x = u(rng) / float(keys);
    for (auto& x : final_) x = u(rng) / float(keys);
  }
  std::vector<TensorData> tensors(bool with_sizes = true, bool with_grids = false) const {
    const auto b = static_cast<std::int64_t>(partitions.size());
    std::vector<TensorData> t{
        hired::io::make_tensor_data("init_cls_attn", Dtype::F32, {rows(), heads, keys}, init),
        hired::io::make_tensor_data("final_cls_attn", Dtype::F32, {rows(), heads, keys}, final_),
        hired::io::make_tensor_data("num_partitions", Dtype::I64, {b}, partitions),
        hired::io::make_tensor_data("grid_pinpoints", Dtype::I64, {5, 2},
                                std::vector<std::int64_t>{336, 672, 672, 336, 672, 672, 1008, 336, 336, 1008})};
    if (with_sizes) t.push_back(hired::io::make_tensor_data("image_sizes", Dtype::I64, {b, 2}, sizes));
    if (with_grids) t.push_back(hired::io::make_tensor_data("grid_shapes", Dtype::I64, {b, 2}, grids));
    return t;
  }
};

std::string write(const std::vector<TensorData>& tensors, const std::string& name = "input.safetensors") {
  const fs::path p = scratch(name);
  hired::io::write_safetensors(p.string(), tensors);
  return "'" + p.string() + "'";
}

std::string write_bytes(const std::vector<std::uint8_t>& bytes, const std::string& name) {
  const fs::path p = scratch(name);
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                           static_cast<std::streamsize>(bytes.size()));
  return "'" + p.string() + "'";
}

void expect_valid_selection(const nlohmann::json& image, std::int64_t tokens) {
  std::int64_t total = 0;
  for (const auto& part : image["partitions"]) {
    const auto kept = part["kept"].get<std::vector<std::int64_t>>();
    EXPECT_EQ(part["budget"].get<std::int64_t>(), static_cast<std::int64_t>(kept.size()));
    for (std::size_t i = 0; i < kept.size(); ++i) {
      EXPECT_GE(kept[i], 0);
      EXPECT_LT(kept[i], tokens);
      if (i > 0) {
        EXPECT_LT(kept[i - 1], kept[i]);
      }
    }
    total += static_cast<std::int64_t>(kept.size());
  }
  EXPECT_EQ(image["kept_total"].get<std::int64_t>(), total);
}

TEST(Cli, BundledSampleKeeps576Of2880InExactMode) {
  const Result r = run("'" + sample + "' --budget-rate 0.2");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["mode"], "exact");
  ASSERT_EQ(j["images"].size(), 1u);
  EXPECT_EQ(j["images"][0]["budget_total"], 576);
  EXPECT_EQ(j["images"][0]["kept_total"], 576);
  ASSERT_EQ(j["images"][0]["partitions"].size(), 5u);
  EXPECT_EQ(j["images"][0]["partitions"][0]["budget"], 288);  // alpha 0.5 of 576
  expect_valid_selection(j["images"][0], 576);
}

TEST(Cli, ReferenceModeAndAbsoluteBudgets) {
  Result r = run("'" + sample + "' --mode reference --budget-rate 0.2");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["mode"], "reference");
  EXPECT_EQ(j["images"][0]["partitions"][0]["budget"], 288);
  EXPECT_LE(j["images"][0]["kept_total"].get<int>(), 576);  // the published remainder is lost
  expect_valid_selection(j["images"][0], 576);

  r = run("'" + sample + "' --budget-tokens 100 --alpha 0.25");
  ASSERT_EQ(r.status, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["images"][0]["kept_total"], 100);
  EXPECT_EQ(j["images"][0]["partitions"][0]["budget"], 25);
}

TEST(Cli, BatchOfHeterogeneousImagesAndHalfPrecision) {
  Input in;
  in.partitions = {5, 3, 1};
  in.sizes = {600, 600, 250, 600, 336, 336};
  in.fill();
  auto tensors = in.tensors();
  std::vector<std::uint16_t> half(in.init.size());
  for (std::size_t i = 0; i < half.size(); ++i) half[i] = hired::float_to_half(in.init[i]);
  tensors[0] = hired::io::make_tensor_data("init_cls_attn", Dtype::F16, {in.rows(), in.heads, in.keys}, half);
  const Result r = run(write(tensors) + " --budget-rate 1");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["images"].size(), 3u);
  EXPECT_EQ(j["images"][0]["kept_total"], 2880);
  EXPECT_EQ(j["images"][1]["kept_total"], 576 + 2 * 480);  // 250x600: 20 of 24 rows per tile survive unpad
  EXPECT_EQ(j["images"][2]["kept_total"], 576);
}

TEST(Cli, ExplainPrintsAMapAndHelpPrintsUsage) {
  Result r = run("'" + sample + "' --explain");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("kept 576 of 2880"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find('#'), std::string::npos);
  r = run("--help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("usage: hired_select"), std::string::npos);
}

// --overlay: the PNG holds the full image and the 2x2 tiles under their label strips; every
// kept patch is drawn as the tile is, every dropped one at a quarter of its brightness.
TEST(Cli, OverlayDrawsWhatTheSelectionKept) {
  const std::string png = scratch("overlay.png").string();
  const Result r = run("'" + sample + "' --overlay '" + png + "' --image '" + sample_png + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  const hired::io::RgbImage picture = hired::io::load_image(png);
  EXPECT_EQ(picture.width, 8 + 336 + 24 + 2 * (336 + 8));
  EXPECT_EQ(picture.height, 8 + 2 * (336 + 8 + 20));
  const hired::io::AnyresTiles tiles = hired::io::anyres_tiles(
      hired::io::load_image(sample_png), std::vector<hired::Size2>{{672, 672}});
  const auto at = hired::io::overlay_placements(tiles);
  for (std::int64_t p = 0; p < 5; ++p) {
    std::vector<char> kept(576, 0);
    for (const auto& k : j["images"][0]["partitions"][p]["kept"]) kept[k.get<std::size_t>()] = 1;
    for (std::int64_t token = 0; token < 576; ++token) {
      const std::int64_t y = (token / 24) * 14 + 7, x = (token % 24) * 14 + 7;  // a patch's centre
      for (std::int64_t c = 0; c < 3; ++c) {
        const std::uint8_t tile = tiles.tiles[(p * 3 + c) * 336 * 336 + y * 336 + x];
        const std::uint8_t drawn = picture.pixels[((at[p].y + y) * picture.width + at[p].x + x) * 3 + c];
        ASSERT_EQ(drawn, kept[token] ? tile : tile / 4) << "partition " << p << " token " << token;
      }
    }
  }
}

TEST(Cli, RejectsBadFlags) {
  const std::string s = "'" + sample + "'";
  // flags after the input -> the argument the message must name
  const std::pair<std::string, std::string> cases[] = {
      {" --budget-rate 0", "budget_rate"},       {" --budget-rate 1.5", "budget_rate"},
      {" --budget-rate abc", "--budget-rate"},   {" --budget-rate", "--budget-rate"},
      {" --budget-tokens -3", "budget_tokens"},  {" --budget-rate 0.2 --budget-tokens 9", "--budget-tokens"},
      {" --alpha 1.5", "alpha"},                 {" --alpha nan", "alpha"},
      {" --mode fastest", "mode"},               {" --mode reference --budget-tokens 9", "budget_tokens"},
      {" --tile-size 0", "--tile-size"},         {" --frobnicate", "--frobnicate"},
      {" " + s, "INPUT"},                     {" --overlay x.png", "--overlay"},
      {" --image '" + sample_png + "'", "--overlay"},
      {" --overlay " + scratch("o.png").string() + " --image /nonexistent.png", "/nonexistent.png"},
      {" --overlay " + scratch("o.png").string() + " --image '" + sample_png + "' --image '" +
           sample_png + "'", "--image"},
      {" --overlay " + scratch("o.png").string() + " --image '" + small_png + "'", "300x260"}};
  for (const auto& [flags, culprit] : cases) expect_rejected(run(s + flags), culprit);
  expect_rejected(run(""), "INPUT");
}

TEST(Cli, RejectsCorruptFiles) {
  expect_rejected(run("/nonexistent/x.safetensors"), "/nonexistent/x.safetensors");
  const std::vector<std::uint8_t> good = hired::io::serialize_safetensors(Input().tensors());
  expect_rejected(run(write_bytes({good.begin(), good.begin() + 5}, "short.safetensors")), "short.safetensors");
  expect_rejected(run(write_bytes({good.begin(), good.end() - 100}, "truncated.safetensors")), "truncated.safetensors");
  std::vector<std::uint8_t> huge_header = good;
  huge_header[0] = 0xff, huge_header[1] = 0xff, huge_header[2] = 0x0f;
  expect_rejected(run(write_bytes(huge_header, "header.safetensors")), "header");
  std::string text(good.begin(), good.end());
  std::string bad_dtype = text;
  bad_dtype.replace(bad_dtype.find("\"F32\""), 5, "\"F9\" ");
  expect_rejected(run(write_bytes({bad_dtype.begin(), bad_dtype.end()}, "dtype.safetensors")), "F9");
  std::string bad_json = text;
  bad_json[9] = '[';
  expect_rejected(run(write_bytes({bad_json.begin(), bad_json.end()}, "json.safetensors")), "json.safetensors");
}

TEST(Cli, RejectsBadTensors) {
  Input in;
  auto without = [&](const std::string& name) {
    auto t = in.tensors();
    std::erase_if(t, [&](const TensorData& d) { return d.name == name; });
    return t;
  };
  expect_rejected(run(write(without("init_cls_attn"))), "init_cls_attn");
  expect_rejected(run(write(without("num_partitions"))), "num_partitions");
  expect_rejected(run(write(without("image_sizes"))), "image_sizes");  // exact mode needs them
  // Reference mode runs on grid shapes alone.
  auto grids_only = in.tensors(/*with_sizes=*/false, /*with_grids=*/true);
  EXPECT_EQ(run(write(grids_only) + " --mode reference").status, 0);

  auto replace = [&](std::vector<TensorData> t, TensorData d) {
    for (auto& x : t)
      if (x.name == d.name) x = std::move(d);
    return t;
  };
  const std::int64_t rows = in.rows();
  expect_rejected(run(write(replace(in.tensors(), hired::io::make_tensor_data(
      "init_cls_attn", Dtype::I32, {rows, in.heads, in.keys}, std::vector<std::int32_t>(in.init.size(), 0))))),
      "init_cls_attn");
  expect_rejected(run(write(replace(in.tensors(), hired::io::make_tensor_data(
      "init_cls_attn", Dtype::F32, {rows, in.heads * in.keys}, in.init)))), "init_cls_attn");
  expect_rejected(run(write(replace(in.tensors(), hired::io::make_tensor_data(
      "final_cls_attn", Dtype::F32, {rows, in.keys, in.heads}, in.final_)))), "final_cls_attn");
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), -0.25f}) {
    std::vector<float> v = in.init;
    v[1234] = bad;
    expect_rejected(run(write(replace(in.tensors(), hired::io::make_tensor_data(
        "init_cls_attn", Dtype::F32, {rows, in.heads, in.keys}, v)))), "init_cls_attn");
  }
  expect_rejected(run(write(replace(in.tensors(), hired::io::make_tensor_data(
      "num_partitions", Dtype::I64, {1}, std::vector<std::int64_t>{4})))), "num_partitions");
  expect_rejected(run(write(replace(in.tensors(), hired::io::make_tensor_data(
      "num_partitions", Dtype::I64, {0}, std::vector<std::int64_t>{})))), "num_partitions");
  expect_rejected(run(write(replace(in.tensors(), hired::io::make_tensor_data(
      "num_partitions", Dtype::F32, {1}, std::vector<float>{5})))), "num_partitions");
  expect_rejected(run(write(replace(in.tensors(), hired::io::make_tensor_data(
      "image_sizes", Dtype::I64, {1, 3}, std::vector<std::int64_t>{600, 600, 3})))), "image_sizes");
  expect_rejected(run(write(replace(in.tensors(), hired::io::make_tensor_data(
      "image_sizes", Dtype::I64, {1, 2}, std::vector<std::int64_t>{0, 600})))), "image_sizes");

  Input wrong_grid;  // grid rows * cols must be P - 1
  wrong_grid.grids = {1, 2};
  expect_rejected(run(write(wrong_grid.tensors(false, true)) + " --mode reference"), "num_partitions");

  Input rows_mismatch;  // 4 rows of attention for 5 partitions
  rows_mismatch.partitions = {4};
  rows_mismatch.fill();
  auto t = rows_mismatch.tensors();
  t[2] = hired::io::make_tensor_data("num_partitions", Dtype::I64, {1}, std::vector<std::int64_t>{5});
  expect_rejected(run(write(t)), "init_cls_attn");

  Input not_square;  // N = 575 patch tokens
  not_square.keys = 576;
  not_square.fill();
  expect_rejected(run(write(not_square.tensors())), "perfect square");

  Input bands;  // N = 25 does not split into the 4 bands of a 2x2 grid in reference mode
  bands.keys = 26;
  bands.fill();
  expect_rejected(run(write(bands.tensors(false, true)) + " --mode reference"), "bands");
}

}  // namespace

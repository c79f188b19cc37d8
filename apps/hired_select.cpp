// hired_select: runs HiRED's selection on CLS-attention rows stored in a safetensors file and
// prints the per-partition budgets and kept token indices as one JSON document.
// Torch-free: it links hired::io (the input file) and hired::core (the selection).
#include "cli_args.hpp"
#include "hired/error.hpp"
#include "hired/io/canvas.hpp"
#include "hired/io/image.hpp"
#include "hired/io/overlay.hpp"
#include "hired/io/safetensors.hpp"
#include "hired/io/selection_input.hpp"
#include "hired/selection.hpp"

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::string_view usage =
    "usage: hired_select INPUT.safetensors [--mode exact|reference]\n"
    "                    [--budget-rate R | --budget-tokens T] [--alpha A] [--tile-size PX]\n"
    "                    [--explain] [--overlay FILE.png --image PATH [--image PATH ...]]\n"
    "\n"
    "INPUT holds init_cls_attn and final_cls_attn ([sum P, H, N + 1], F32/F16/BF16),\n"
    "num_partitions ([B], I64) and either grid_shapes ([B, 2] rows, cols) or image_sizes\n"
    "([B, 2] height, width) with grid_pinpoints ([G, 2] height, width). Exact mode (default)\n"
    "needs image_sizes; reference mode needs only grid_shapes. Defaults: exact, rate 0.2,\n"
    "alpha 0.5, tile 336. Prints {\"mode\", \"images\": [{\"budget_total\", \"partitions\":\n"
    "[{\"budget\", \"kept\"}]}]} on stdout; on bad input exits 2 with one line on stderr.\n"
    "--explain prints a readable summary and a map of the kept tokens instead of JSON.\n"
    "--overlay draws what was kept on the images (one --image per image of INPUT, the files\n"
    "the attention came from): each image's partitions side by side, dropped patches dimmed.\n";

struct Options {
  std::string input;
  hired::DropConfig config;
  std::int64_t tile_px = 336;
  bool explain = false;
  std::optional<std::filesystem::path> overlay;
  std::vector<std::filesystem::path> images;  // for the overlay
};

Options parse(int argc, char** argv) {
  Options o;
  hired::cli::DropFlags drop(/*newline_flag=*/false);
  hired::cli::for_each_argument(argc, argv, [&](std::string_view arg, auto value) {
    if (drop.consume(arg, value)) {
      return;
    } else if (arg == "--tile-size") {
      o.tile_px = hired::cli::parse_int(arg, value());
      hired::check(o.tile_px > 0, "--tile-size: {} must be positive", o.tile_px);
    } else if (arg == "--explain") {
      o.explain = true;
    } else if (arg == "--overlay") {
      o.overlay = std::filesystem::path(value());
    } else if (arg == "--image") {
      o.images.emplace_back(value());
    } else if (arg.starts_with("--")) {
      hired::fail("{}: unknown flag", arg);
    } else {
      hired::check(o.input.empty(), "{}: only one INPUT file is accepted", arg);
      o.input = arg;
    }
  });
  hired::check(!o.input.empty(), "INPUT: missing safetensors file");
  hired::check(o.overlay.has_value() == !o.images.empty(), "--overlay, --image: give both or neither");
  o.config = drop.config();
  return o;
}

hired::Selection run(const Options& o) {
  hired::io::SelectionInput in = hired::io::read_selection_input(
      hired::io::SafeTensors::load(o.input), o.config.mode, o.tile_px);
  return hired::select_tokens(in.init_scores, in.final_scores, std::move(in.images), in.vision,
                              o.config);
}

nlohmann::json to_json(const hired::Selection& s) {
  nlohmann::json images = nlohmann::json::array();
  for (std::size_t b = 0; b < s.images.size(); ++b) {
    nlohmann::json parts = nlohmann::json::array();
    for (std::int64_t p = s.partition_offsets[b]; p < s.partition_offsets[b + 1]; ++p) {
      const auto kept = s.kept_in(p);
      parts.push_back({{"budget", s.budget(p)},
                       {"kept", std::vector<std::int32_t>(kept.begin(), kept.end())}});
    }
    images.push_back({{"budget_total", s.requested[b]},
                      {"kept_total", s.kept_in_image(static_cast<std::int64_t>(b))},
                      {"partitions", std::move(parts)}});
  }
  return {{"mode", hired::to_string(s.mode)}, {"images", std::move(images)}};
}

/// A readable account: budgets per partition and a side-by-side map of every partition's
/// side x side tokens ('#' kept, '.' dropped, ' ' padding that unpad removes).
std::string explain(const hired::Selection& s) {
  std::string out;
  const std::int64_t side = s.vision.side, tokens = s.vision.tokens();
  for (std::size_t b = 0; b < s.images.size(); ++b) {
    const hired::ImageLayout& image = s.images[b];
    const std::int64_t first = s.partition_offsets[b];
    out += fmt::format("image {}: {} partitions (full image + {}x{} tiles){}, {} mode\n", b,
                       image.partitions, image.grid.rows, image.grid.cols,
                       image.image_size ? fmt::format(", {}x{} px", image.image_size->height,
                                                      image.image_size->width)
                                        : "",
                       hired::to_string(s.mode));
    out += fmt::format("  budget asked T = {}, kept {} of {} tokens\n", s.requested[b],
                       s.kept_in_image(static_cast<std::int64_t>(b)), image.partitions * tokens);
    std::vector<std::string> maps(static_cast<std::size_t>(image.partitions),
                                  std::string(static_cast<std::size_t>(tokens), '.'));
    std::optional<hired::TokenBox> box;
    if (image.partitions > 1 && image.image_size)
      box = hired::tile_token_box(*image.image_size, image.grid, s.vision);
    for (std::int64_t i = 0; i < image.partitions; ++i) {
      out += fmt::format("  {:<10} keeps {:>4}\n", i == 0 ? "full image" : fmt::format("tile {}", i),
                         s.budget(first + i));
      for (const std::int32_t j : s.kept_in(first + i)) maps[i][j] = '#';
      if (i == 0 || !box) continue;
      const std::int64_t row0 = ((i - 1) / image.grid.cols) * side, col0 = ((i - 1) % image.grid.cols) * side;
      for (std::int64_t j = 0; j < tokens; ++j)
        if (!box->contains(row0 + j / side, col0 + j % side)) maps[i][j] = maps[i][j] == '#' ? '!' : ' ';
    }
    for (std::int64_t r = 0; r < side; ++r) {
      out += " ";
      for (const std::string& m : maps) {
        out += ' ';
        out.append(m, static_cast<std::size_t>(r * side), static_cast<std::size_t>(side));
      }
      out += "\n";
    }
    if (box) out += "  ('#' kept, '.' dropped, ' ' padding, '!' kept padding that unpad will drop)\n";
  }
  return out;
}

/// --overlay: each image's partitions as preprocessing cuts them, with the selection drawn on
/// them. The tiles are cut at the resolution the layout's grid implies (rows x cols tiles).
void write_overlay(const Options& o, const hired::Selection& s) {
  hired::check(o.images.size() == s.images.size(), "--image: {} given for the {} images of {}",
               o.images.size(), s.images.size(), o.input);
  std::vector<hired::io::AnyresTiles> tiles;
  for (std::size_t b = 0; b < s.images.size(); ++b) {
    const hired::ImageLayout& layout = s.images[b];
    hired::check(layout.partitions > 1,
                 "--overlay: image {} has a single partition, which hired_select cannot redraw "
                 "(LLaVA-1.5 crops its centre, LLaVA-Next squashes the image); use hired_generate "
                 "--overlay", b);
    const hired::io::RgbImage image = hired::io::load_image(o.images[b]);
    if (layout.image_size)
      hired::check(*layout.image_size == image.size(), "--image: {} is {}x{} px, but image {} of {} "
                   "is {}x{}", o.images[b].string(), image.height, image.width, b, o.input,
                   layout.image_size->height, layout.image_size->width);
    const hired::Size2 resolution{layout.grid.rows * o.tile_px, layout.grid.cols * o.tile_px};
    tiles.push_back(hired::io::anyres_tiles(image, std::span(&resolution, 1), o.tile_px));
  }
  hired::io::write_png(*o.overlay, hired::io::draw_selections(tiles, s));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    std::fputs(usage.data(), stdout);
    return 0;
  }
  return hired::cli::guarded_main("hired_select", [&] {
    const Options options = parse(argc, argv);
    const hired::Selection selection = run(options);
    if (options.overlay) write_overlay(options, selection);  // first: bad input prints nothing
    std::cout << (options.explain ? explain(selection) : to_json(selection).dump() + "\n");
    return 0;
  });
}

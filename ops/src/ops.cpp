// torch.ops.hired: hired's selection as PyTorch custom operators, for Python (the `hired`
// package), TorchScript and torch.compile. Each op converts its arguments to the adapter's
// (hired/torch/token_dropper.hpp) and calls it; the logic lives below. Layouts and the drop
// configuration travel as plain ints, floats and strings, so shapes can be traced from them:
// the package registers fake implementations that size outputs with selection_counts.
// hired::Error (a bad argument) surfaces in Python as ValueError with hired's message.
#include "hired/error.hpp"
#include "hired/io/overlay.hpp"
#include "hired/token_count.hpp"
#include "hired/torch/token_dropper.hpp"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

namespace hired::ops {
namespace {

using Ints = c10::IntArrayRef;
using OptionalInts = c10::OptionalIntArrayRef;
using SelectionTensors = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using PackedTensors = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

// The ops' argument groups, each as schema text and as the C++ parameters (and arguments) of
// the implementations, side by side so that they stay in step. Layouts are flat int lists
// ((height, width) pairs); the drop configuration is keyword-only, with hired::DropConfig's
// defaults.
#define HIRED_LAYOUT "int[] num_partitions, int[]? image_sizes=None, int[]? grid_shapes=None"
#define HIRED_LAYOUT_PARAMS Ints num_partitions, OptionalInts image_sizes, OptionalInts grid_shapes
#define HIRED_LAYOUT_ARGS num_partitions, image_sizes, grid_shapes
#define HIRED_CONFIG                                                                        \
  "str mode=\"exact\", float? budget_rate=0.2, int? budget_tokens=None, float alpha=0.5, " \
  "str newline=\"every_row\""
#define HIRED_CONFIG_PARAMS                                                              \
  c10::string_view mode, std::optional<double> budget_rate,                              \
      std::optional<std::int64_t> budget_tokens, double alpha, c10::string_view newline
#define HIRED_CONFIG_ARGS mode, budget_rate, budget_tokens, alpha, newline
#define HIRED_GRID "int[]? grid_pinpoints=None, int tile_px=336"
#define HIRED_GRID_PARAMS OptionalInts grid_pinpoints, std::int64_t tile_px
#define HIRED_GRID_ARGS grid_pinpoints, tile_px
#define HIRED_SELECTION \
  "(Tensor budgets, Tensor kept, Tensor kept_offsets, Tensor partition_offsets, Tensor requested)"
#define HIRED_PACKED "(Tensor features, Tensor lengths, Tensor source_rows)"

/// Runs an op body; a bad argument becomes c10::ValueError (Python's ValueError).
template <class Body>
auto translated(Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Error& e) {
    throw c10::ValueError({__func__, __FILE__, static_cast<std::uint32_t>(__LINE__)}, e.what());
  }
}

DropConfig drop_config(HIRED_CONFIG_PARAMS) {
  DropConfig config;
  config.mode = parse_mode(std::string_view(mode.data(), mode.size()));
  check(budget_rate.has_value() != budget_tokens.has_value(),
        "budget_rate, budget_tokens: give exactly one (got {} and {})",
        budget_rate ? std::to_string(*budget_rate) : "None",
        budget_tokens ? std::to_string(*budget_tokens) : "None");
  config.budget = budget_rate ? Budget::rate(*budget_rate) : Budget::tokens(*budget_tokens);
  config.alpha = alpha;
  config.newline = parse_newline_policy(std::string_view(newline.data(), newline.size()));
  config.validate();
  return config;
}

/// (height, width) pairs from a flat list [h0, w0, h1, w1, ...].
std::vector<Size2> pairs(Ints flat, const char* name) {
  check(flat.size() % 2 == 0, "{}: {} values; expected (height, width) pairs", name, flat.size());
  std::vector<Size2> out;
  for (std::size_t i = 0; i < flat.size(); i += 2) out.push_back({flat[i], flat[i + 1]});
  return out;
}

/// The batch layout from the ops' int lists. grid_pinpoints None means LLaVA-v1.6's; an empty
/// list means none (LLaVA-1.5: one partition per image).
ImageBatch image_batch(HIRED_LAYOUT_PARAMS, HIRED_GRID_PARAMS) {
  const auto rows = [](Ints flat, const char* name) {
    check(flat.size() % 2 == 0, "{}: {} values; expected a flat [B * 2] list", name, flat.size());
    return at::tensor(flat, at::kLong).reshape({-1, 2});
  };
  ImageBatch batch;
  batch.num_partitions = at::tensor(num_partitions, at::kLong);
  if (image_sizes) batch.image_sizes = rows(*image_sizes, "image_sizes");
  if (grid_shapes) batch.grid_shapes = rows(*grid_shapes, "grid_shapes");
  if (grid_pinpoints) batch.grid_pinpoints = pairs(*grid_pinpoints, "grid_pinpoints");
  batch.tile_px = tile_px;
  return batch;
}

/// The same layout as the core's ImageLayouts, without tensors: selection_counts also runs
/// while tensors are fake (torch.compile's tracing), where no tensor may be made.
std::vector<ImageLayout> layouts_of(HIRED_LAYOUT_PARAMS, HIRED_GRID_PARAMS) {
  const ImageBatch defaults;
  const std::vector<Size2> pinpoints =
      grid_pinpoints ? pairs(*grid_pinpoints, "grid_pinpoints") : defaults.grid_pinpoints;
  const auto span = [](OptionalInts v) {
    return v ? std::span<const std::int64_t>(v->data(), v->size()) : std::span<const std::int64_t>();
  };
  return describe_images({{num_partitions.data(), num_partitions.size()}, span(grid_shapes),
                          span(image_sizes), pinpoints, tile_px});
}

SelectionTensors tensors_of(const TokenSelection& s) {
  s.check();  // CUDA: raise what the kernels flagged (one synchronisation) rather than lose it
  return {s.budgets, s.kept, s.kept_offsets, s.partition_offsets, s.requested};
}

PackedTensors tensors_of(const PackedFeatures& p) {
  p.check();
  return {p.features, p.lengths, p.source_rows};
}

SelectionTensors select(const at::Tensor& init_attn, const at::Tensor& final_attn,
                        HIRED_LAYOUT_PARAMS, HIRED_CONFIG_PARAMS, HIRED_GRID_PARAMS) {
  return translated([&] {
    const TokenDropper dropper(drop_config(HIRED_CONFIG_ARGS));
    return tensors_of(
        dropper.select(init_attn, final_attn, image_batch(HIRED_LAYOUT_ARGS, HIRED_GRID_ARGS)));
  });
}

SelectionTensors select_qk(const at::Tensor& init_q, const at::Tensor& init_k,
                           const at::Tensor& final_q, const at::Tensor& final_k,
                           std::int64_t heads, HIRED_LAYOUT_PARAMS, HIRED_CONFIG_PARAMS,
                           HIRED_GRID_PARAMS) {
  return translated([&] {
    const TokenDropper dropper(drop_config(HIRED_CONFIG_ARGS));
    return tensors_of(dropper.select(QueryKeys{init_q, init_k, heads},
                                     QueryKeys{final_q, final_k, heads},
                                     image_batch(HIRED_LAYOUT_ARGS, HIRED_GRID_ARGS)));
  });
}

/// A dropper that only packs: the newline policy is all it reads.
TokenDropper packer(c10::string_view newline) {
  DropConfig config;
  config.newline = parse_newline_policy(std::string_view(newline.data(), newline.size()));
  return TokenDropper(config);
}

Mode mode_of(c10::string_view mode) { return parse_mode(std::string_view(mode.data(), mode.size())); }

PackedTensors gather(const at::Tensor& features, const at::Tensor& kept,
                     const at::Tensor& kept_offsets, HIRED_LAYOUT_PARAMS,
                     const std::optional<at::Tensor>& image_newline, c10::string_view mode,
                     c10::string_view newline, HIRED_GRID_PARAMS) {
  return translated([&] {
    check(features.defined() && features.dim() == 3, "features: shape {} must be [sum P, N, D]",
          features.defined() ? shape_text(features.sizes()) : "undefined");
    const TokenSelection selection = selection_from_csr(
        kept, kept_offsets,
        image_batch(HIRED_LAYOUT_ARGS, HIRED_GRID_ARGS), features.size(1), mode_of(mode),
        "features");
    return tensors_of(packer(newline).gather(selection, features, image_newline));
  });
}

PackedTensors pack_rows(const at::Tensor& rows, const at::Tensor& kept,
                        const at::Tensor& kept_offsets, HIRED_LAYOUT_PARAMS,
                        const std::optional<at::Tensor>& image_newline, c10::string_view mode,
                        c10::string_view newline, HIRED_GRID_PARAMS, std::int64_t tokens) {
  return translated([&] {
    const TokenSelection selection = selection_from_csr(
        kept, kept_offsets,
        image_batch(HIRED_LAYOUT_ARGS, HIRED_GRID_ARGS), tokens, mode_of(mode));
    return tensors_of(packer(newline).pack_rows(selection, rows, image_newline));
  });
}

/// The overlay hired_select --overlay and hired_generate --overlay write (hired/io/overlay.hpp),
/// drawn from the batch's partitions `tiles` (uint8 [sum P, 3, tile_px, tile_px], the image
/// processor's patches before rescale and normalisation): uint8 [height, width, 3].
at::Tensor draw_selection(const at::Tensor& tiles, const at::Tensor& kept,
                          const at::Tensor& kept_offsets, HIRED_LAYOUT_PARAMS,
                          c10::string_view mode, HIRED_GRID_PARAMS, std::int64_t tokens) {
  return translated([&] {
    check(tiles.defined() && tiles.dim() == 4 && tiles.size(1) == 3 && tiles.size(2) == tile_px &&
              tiles.size(3) == tile_px,
          "tiles: shape {} must be [sum P, 3, {}, {}]",
          tiles.defined() ? shape_text(tiles.sizes()) : "undefined", tile_px, tile_px);
    check(tiles.scalar_type() == at::kByte && tiles.device().is_cpu(),
          "tiles: {} on {} must be uint8 on the CPU (pixels before rescale and normalisation)",
          c10::toString(tiles.scalar_type()), tiles.device().str());
    const TokenSelection selection =
        selection_from_csr(kept, kept_offsets, image_batch(HIRED_LAYOUT_ARGS, HIRED_GRID_ARGS),
                           tokens, mode_of(mode));
    const Selection& s = selection.host.get();
    check(tiles.size(0) == s.partition_offsets.back(),
          "tiles: {} partitions for a layout of {}", tiles.size(0), s.partition_offsets.back());
    const at::Tensor bytes = tiles.contiguous();
    const std::int64_t partition_bytes = 3 * tile_px * tile_px;
    std::vector<io::AnyresTiles> images;
    for (std::size_t b = 0; b < s.images.size(); ++b) {
      const ImageLayout& layout = s.images[b];
      io::AnyresTiles& image = images.emplace_back();
      image.image_size = layout.image_size.value_or(Size2{});
      image.grid = layout.grid;
      image.best_resolution = {layout.grid.rows * tile_px, layout.grid.cols * tile_px};
      image.tile_px = tile_px;
      image.partitions = layout.partitions;
      const std::uint8_t* first = bytes.data_ptr<std::uint8_t>() + s.partition_offsets[b] * partition_bytes;
      image.tiles.assign(first, first + layout.partitions * partition_bytes);
    }
    const io::RgbImage picture = io::draw_selections(images, s);
    at::Tensor out = at::empty({picture.height, picture.width, 3}, at::kByte);
    std::copy(picture.pixels.begin(), picture.pixels.end(), out.data_ptr<std::uint8_t>());
    return out;
  });
}

at::Tensor cls_attention(const at::Tensor& q, const at::Tensor& k, std::int64_t heads) {
  return translated([&] { return hired::cls_attention(q, k, heads); });
}

at::Tensor qk_attention(const at::Tensor& q, const at::Tensor& k, std::int64_t heads) {
  return translated([&] { return hired::qk_attention(q, k, heads); });
}

/// [kept tokens, packed rows, newline rows] of a batch from its layout alone, -1 where they
/// depend on the scores (reference mode; kept_rows for the rows): the fake implementations'
/// output sizes.
std::vector<std::int64_t> selection_counts(HIRED_LAYOUT_PARAMS, HIRED_CONFIG_PARAMS,
                                           HIRED_GRID_PARAMS, std::int64_t tokens) {
  return translated([&] {
    DropConfig config = drop_config(HIRED_CONFIG_ARGS);
    const std::vector<ImageLayout> layouts = layouts_of(HIRED_LAYOUT_ARGS, HIRED_GRID_ARGS);
    const VisionGrid vision = vision_grid_for(tokens, tile_px);
    if (config.mode != Mode::exact) return std::vector<std::int64_t>{-1, -1, -1};
    const bool rows_known = config.newline != NewlinePolicy::kept_rows;
    if (!rows_known) config.newline = NewlinePolicy::none;  // the kept count does not depend on it
    std::int64_t kept = 0, rows = 0;
    for (const ImageLayout& image : layouts) {
      const ImageCount count = exact_image_count(image, vision, config);
      kept += count.kept;
      rows += count.rows;
    }
    if (!rows_known) return std::vector<std::int64_t>{kept, -1, -1};
    return std::vector<std::int64_t>{kept, rows, rows - kept};
  });
}

void check_config(HIRED_CONFIG_PARAMS) {
  translated([&] { (void)drop_config(HIRED_CONFIG_ARGS); });
}

std::int64_t num_image_tokens(std::int64_t height, std::int64_t width, HIRED_CONFIG_PARAMS,
                              OptionalInts grid_pinpoints, std::int64_t patch_px,
                              std::int64_t tile_px) {
  return translated([&] {
    const DropConfig config = drop_config(HIRED_CONFIG_ARGS);
    check(patch_px > 0 && tile_px > 0 && tile_px % patch_px == 0,
          "patch_px: {} must be a positive divisor of tile_px {}", patch_px, tile_px);
    const std::int64_t side = tile_px / patch_px;
    const std::vector<Size2> pinpoints =
        grid_pinpoints ? pairs(*grid_pinpoints, "grid_pinpoints")
                       : std::vector<Size2>(llava_v16_grid_pinpoints.begin(),
                                            llava_v16_grid_pinpoints.end());
    ImageLayout image;
    image.image_size = Size2{height, width};
    detail::check_size(*image.image_size, "image_size");
    if (!pinpoints.empty()) image.grid = anyres_grid_shape(*image.image_size, pinpoints, tile_px);
    image.partitions = 1 + image.grid.tiles();
    return exact_image_count(image, VisionGrid{tile_px, side}, config).rows;
  });
}

}  // namespace

TORCH_LIBRARY(hired, m) {
  m.def("select(Tensor init_attn, Tensor final_attn, " HIRED_LAYOUT ", *, " HIRED_CONFIG
        ", " HIRED_GRID ") -> " HIRED_SELECTION);
  m.def("select_qk(Tensor init_q, Tensor init_k, Tensor final_q, Tensor final_k, int heads, " HIRED_LAYOUT
        ", *, " HIRED_CONFIG ", " HIRED_GRID ") -> " HIRED_SELECTION);
  m.def("gather(Tensor features, Tensor kept, Tensor kept_offsets, " HIRED_LAYOUT
        ", Tensor? image_newline=None, *, str mode=\"exact\", str newline=\"every_row\", "
        HIRED_GRID ") -> " HIRED_PACKED);
  m.def("pack_rows(Tensor rows, Tensor kept, Tensor kept_offsets, " HIRED_LAYOUT
        ", Tensor? image_newline=None, *, str mode=\"exact\", str newline=\"every_row\", "
        HIRED_GRID ", int tokens=576) -> " HIRED_PACKED);
  m.def("draw_selection(Tensor tiles, Tensor kept, Tensor kept_offsets, " HIRED_LAYOUT
        ", *, str mode=\"exact\", " HIRED_GRID ", int tokens=576) -> Tensor");
  m.def("cls_attention(Tensor q, Tensor k, int heads) -> Tensor");
  m.def("qk_attention(Tensor q, Tensor k, int heads) -> Tensor");
  m.def("selection_counts(" HIRED_LAYOUT ", *, " HIRED_CONFIG ", " HIRED_GRID
        ", int tokens=576) -> int[]");
  m.def("check_config(*, " HIRED_CONFIG ") -> ()");
  m.def("num_image_tokens(int height, int width, *, " HIRED_CONFIG
        ", int[]? grid_pinpoints=None, int patch_px=14, int tile_px=336) -> int");
  // Ops without tensor arguments run on any backend.
  m.impl("check_config", &check_config);
  m.impl("selection_counts", &selection_counts);
  m.impl("num_image_tokens", &num_image_tokens);
}

// CPU and CUDA tensors both go to the adapter, which picks the path by device.
namespace {
void register_tensor_ops(torch::Library& m) {
  m.impl("select", &select);
  m.impl("select_qk", &select_qk);
  m.impl("gather", &gather);
  m.impl("pack_rows", &pack_rows);
  m.impl("cls_attention", &cls_attention);
  m.impl("qk_attention", &qk_attention);
}
}  // namespace

TORCH_LIBRARY_IMPL(hired, CPU, m) {
  register_tensor_ops(m);
  m.impl("draw_selection", &draw_selection);  // pictures are drawn on the host
}
TORCH_LIBRARY_IMPL(hired, CUDA, m) { register_tensor_ops(m); }

}  // namespace hired::ops

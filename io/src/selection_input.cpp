#include "hired/io/selection_input.hpp"

#include "hired/error.hpp"
#include "hired/scores.hpp"
#include "hired/selection.hpp"

#include <algorithm>

namespace hired::io {

namespace {

// An optional [*, 2] tensor as flat int64 pairs (empty when the file does not have it).
std::vector<std::int64_t> pairs(const SafeTensors& file, const char* name) {
  if (!file.contains(name)) return {};
  const TensorView& t = file.at(name);
  check(t.shape().size() == 2 && t.shape()[1] == 2, "{}: shape {} must be [*, 2]", name,
        shape_text(t.shape()));
  return t.to_int64();
}

}  // namespace

SelectionInput read_selection_input(const SafeTensors& file, Mode mode, std::int64_t tile_px) {
  const TensorView& init = file.at("init_cls_attn");
  const TensorView& final_ = file.at("final_cls_attn");
  check(init.shape().size() == 3, "init_cls_attn: rank {} must be 3 ([sum P, H, N + 1])",
        init.shape().size());
  check(final_.shape() == init.shape(), "final_cls_attn: shape {} differs from init_cls_attn's {}",
        shape_text(final_.shape()), shape_text(init.shape()));

  const TensorView& np = file.at("num_partitions");
  check(np.shape().size() == 1, "num_partitions: rank {} must be 1 ([B])", np.shape().size());
  const std::vector<std::int64_t> partitions = np.to_int64();
  const std::vector<std::int64_t> grids = pairs(file, "grid_shapes");
  const std::vector<std::int64_t> sizes = pairs(file, "image_sizes");
  std::vector<Size2> pinpoints;
  const std::vector<std::int64_t> flat = pairs(file, "grid_pinpoints");
  for (std::size_t i = 0; i + 1 < flat.size(); i += 2) pinpoints.push_back({flat[i], flat[i + 1]});
  check(mode == Mode::reference || !sizes.empty() ||
            std::all_of(partitions.begin(), partitions.end(),
                        [](std::int64_t p) { return p == 1; }),
        "image_sizes: exact mode needs them (padding, spatial mapping); "
        "reference mode runs on grid_shapes alone");

  SelectionInput in;
  in.images = describe_images({partitions, grids, sizes, pinpoints, tile_px});
  const std::int64_t rows = total_partitions(in.images);
  const std::vector<std::int64_t>& shape = init.shape();
  check(shape[0] == rows, "init_cls_attn: {} rows, but num_partitions sums to {}", shape[0], rows);
  in.vision = vision_grid_for(shape[2] - 1, tile_px, "init_cls_attn");
  in.init_scores = sum_heads(init.to_float().data(), shape[0], shape[1], shape[2], "init_cls_attn");
  in.final_scores =
      sum_heads(final_.to_float().data(), shape[0], shape[1], shape[2], "final_cls_attn");
  return in;
}

}  // namespace hired::io

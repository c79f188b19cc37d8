// The LLaVA-Next splice (hired/torch/llava_next.hpp): HiRED's selection, then the projector on the
// kept tokens only, then the image rows in LLaVA-Next's packing order.
#include "hired/torch/llava_next.hpp"

#include "hired/error.hpp"
#include "hired/selection.hpp"
#include "tensor_args.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>
#include <string_view>

namespace hired {
namespace {

using detail::dtype_of;
using detail::shape_of;

void check_features(const at::Tensor& features, std::int64_t partitions) {
  check(features.defined(), "features: undefined tensor");
  check(features.dim() == 3, "features: shape {}; expected [sum P, N, Dv]", shape_of(features));
  check(at::isFloatingType(features.scalar_type()), "features: dtype {} must be floating point",
        dtype_of(features));
  check(features.size(0) == partitions,
        "features: {} partitions, but num_partitions sums to {}", features.size(0), partitions);
  check(features.size(2) > 0, "features: width 0");
}

void check_newline(const at::Tensor& image_newline, const at::Tensor& features) {
  check(image_newline.defined(), "image_newline: undefined tensor");
  check(image_newline.dim() == 1 && image_newline.size(0) > 0,
        "image_newline: shape {}; expected [Dt]", shape_of(image_newline));
  check(at::isFloatingType(image_newline.scalar_type()),
        "image_newline: dtype {} must be floating point", dtype_of(image_newline));
  check(image_newline.device() == features.device(),
        "image_newline: on {}, but features are on {}", image_newline.device().str(),
        features.device().str());
}

at::Tensor project_rows(ProjectorRef project, const at::Tensor& rows,
                        const at::Tensor& image_newline) {
  at::Tensor out = project(rows);
  check(out.dim() == 2 && out.size(0) == rows.size(0) && out.size(1) == image_newline.size(0),
        "projector: returned shape {} for {} rows; expected [{}, {}] (Dt from image_newline)",
        shape_of(out), rows.size(0), rows.size(0), image_newline.size(0));
  return out;
}

/// The image rows of `plan`: its i-th token row is `projected[source[i]]`, and its newline rows
/// are `image_newline`.
LlavaNextImageRows assemble(const PackPlan& plan, const at::Tensor& projected,
                            const std::vector<std::int64_t>& source,
                            const at::Tensor& image_newline) {
  const at::Device device = projected.device();
  const auto long_tensor = [&](const std::vector<std::int64_t>& v) {
    return detail::long_tensor(v, device);
  };
  std::vector<std::int64_t> token_at, newline_at;
  for (std::size_t i = 0; i < plan.rows.size(); ++i)
    (plan.rows[i] == PackPlan::newline ? newline_at : token_at).push_back(static_cast<std::int64_t>(i));

  const std::int64_t rows = static_cast<std::int64_t>(plan.rows.size()), width = projected.size(1);
  at::Tensor out = at::empty({rows, width}, projected.options());
  if (!token_at.empty())
    out.index_copy_(0, long_tensor(token_at), projected.index_select(0, long_tensor(source)));
  if (!newline_at.empty())
    out.index_copy_(0, long_tensor(newline_at),
                    image_newline.to(projected.scalar_type())
                        .unsqueeze(0)
                        .expand({static_cast<std::int64_t>(newline_at.size()), width}));

  LlavaNextImageRows result;
  for (std::size_t b = 0; b + 1 < plan.offsets.size(); ++b) {
    result.visual_tokens.push_back(static_cast<std::int64_t>(
        std::count_if(plan.rows.begin() + plan.offsets[b], plan.rows.begin() + plan.offsets[b + 1],
                      [](std::int64_t r) { return r != PackPlan::newline; })));
  }
  result.features = out;
  result.lengths = long_tensor(plan.lengths());
  return result;
}

/// The splice after the selection: gather the kept rows, project them, lay out the image rows.
LlavaNextImageRows project_kept(const TokenDropper& dropper, TokenSelection selection,
                                const at::Tensor& features, ProjectorRef project,
                                const at::Tensor& image_newline) {
  const Selection& host = selection.host;
  const std::int64_t tokens = host.vision.tokens();
  check_features(features, host.partition_offsets.back());
  check(features.size(1) == tokens, "features: {} tokens per partition, but the attention has {}",
        features.size(1), tokens);
  check_newline(image_newline, features);

  const PackPlan plan = pack_plan(host, dropper.config().newline);
  std::vector<std::int64_t> kept_rows;  // flat [sum P * N] rows of the kept tokens, packed order
  for (const std::int64_t r : plan.rows)
    if (r != PackPlan::newline) kept_rows.push_back(r);
  const at::Tensor kept = features.reshape({-1, features.size(2)})
                              .index_select(0, detail::long_tensor(kept_rows, features.device()));
  std::vector<std::int64_t> source(kept_rows.size());
  std::iota(source.begin(), source.end(), std::int64_t{0});
  LlavaNextImageRows result =
      assemble(plan, project_rows(project, kept, image_newline), source, image_newline);
  result.selection = std::move(selection);
  return result;
}

}  // namespace

LlavaNextImageRows hired_llava_next(const TokenDropper& dropper, const at::Tensor& features,
                                    const at::Tensor& init_cls_attn,
                                    const at::Tensor& final_cls_attn, const ImageBatch& images,
                                    ProjectorRef project, const at::Tensor& image_newline) {
  return project_kept(dropper, dropper.select(init_cls_attn, final_cls_attn, images), features,
                      project, image_newline);
}

LlavaNextImageRows hired_llava_next(const TokenDropper& dropper, const at::Tensor& features,
                                    const QueryKeys& init, const QueryKeys& final,
                                    const ImageBatch& images, ProjectorRef project,
                                    const at::Tensor& image_newline) {
  return project_kept(dropper, dropper.select(init, final, images), features, project,
                      image_newline);
}

LlavaNextImageRows stock_llava_next(const at::Tensor& features, const ImageBatch& images,
                                    ProjectorRef project, const at::Tensor& image_newline) {
  Selection all;  // every token of every partition kept; unpad happens in pack_plan
  all.images = image_layouts(images);
  check_features(features, total_partitions(all.images));
  check_newline(image_newline, features);
  all.vision = vision_grid_for(features.size(1), images.tile_px);
  const std::int64_t tokens = all.vision.tokens();
  all.partition_offsets = partition_offsets(all.images);
  for (const ImageLayout& image : all.images) all.requested.push_back(image.partitions * tokens);
  for (std::int64_t p = 0; p <= all.partition_offsets.back(); ++p) all.kept_offsets.push_back(p * tokens);
  for (std::int64_t p = 0; p < all.partition_offsets.back(); ++p)
    for (std::int32_t j = 0; j < tokens; ++j) all.kept.push_back(j);

  const PackPlan plan = pack_plan(all, NewlinePolicy::every_row);
  std::vector<std::int64_t> source;  // token rows index the projected [sum P * N] rows directly
  for (const std::int64_t r : plan.rows)
    if (r != PackPlan::newline) source.push_back(r);
  const at::Tensor projected =
      project_rows(project, features.reshape({-1, features.size(2)}), image_newline);
  return assemble(plan, projected, source, image_newline);
}

}  // namespace hired

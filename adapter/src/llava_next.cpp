// The LLaVA-Next splice (hired/torch/llava_next.hpp): HiRED's selection, then the projector on the
// kept tokens only, then the image rows in LLaVA-Next's packing order.
#include "hired/torch/llava_next.hpp"

#include "hired/error.hpp"
#include "hired/selection.hpp"
#include "dispatch.hpp"
#include "host_path.hpp"
#include "tensor_args.hpp"

#include <ATen/ATen.h>


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

/// The splice's result from packed rows: per image, the rows that are tokens (not newlines).
LlavaNextImageRows image_rows(const PackedFeatures& packed) {
  LlavaNextImageRows out;
  out.features = packed.features;
  out.lengths = packed.lengths;
  const at::Tensor lengths = packed.lengths.cpu();
  const at::Tensor tokens = (packed.source_rows >= 0).cpu();
  std::int64_t first = 0;
  for (std::int64_t b = 0; b < lengths.size(0); ++b) {
    const std::int64_t rows = lengths[b].item<std::int64_t>();
    out.visual_tokens.push_back(tokens.narrow(0, first, rows).sum().item<std::int64_t>());
    first += rows;
  }
  return out;
}

/// The splice after the selection: gather the kept rows, project them, lay out the image rows.
LlavaNextImageRows project_kept(const TokenDropper& dropper, TokenSelection selection,
                                const at::Tensor& features, ProjectorRef project,
                                const at::Tensor& image_newline) {
  const Selection& host = selection.host;
  check_features(features, host.partition_offsets.back());
  check(features.size(1) == host.vision.tokens(),
        "features: {} tokens per partition, but the attention has {}", features.size(1),
        host.vision.tokens());
  check_newline(image_newline, features);
  const PackedFeatures kept =
      detail::gather_features(selection, features, std::nullopt, NewlinePolicy::none);
  const at::Tensor projected = project_rows(project, kept.features, image_newline);
  LlavaNextImageRows result = image_rows(dropper.pack_rows(selection, projected, image_newline));
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
  std::vector<ImageLayout> layouts = image_layouts(images);
  check_features(features, total_partitions(layouts));
  check_newline(image_newline, features);
  Selection all = keep_everything(std::move(layouts), vision_grid_for(features.size(1), images.tile_px));
  const std::int64_t tokens = all.vision.tokens();

  // transformers' order: project every token, then unpad and pack.
  const at::Tensor projected =
      project_rows(project, features.reshape({-1, features.size(2)}), image_newline);
  return image_rows(detail::gather_features(
      detail::selection_tensors(std::move(all), features.device()),
      projected.view({features.size(0), tokens, projected.size(1)}), image_newline,
      NewlinePolicy::every_row));
}

}  // namespace hired

// hired::TokenDropper: validates the tensors, then hands them to the CPU path (host_path.cpp,
// through the torch-free core) or, for CUDA tensors in a build with hired's kernels, to the
// CUDA path (cuda_select.cpp, cuda_gather.cpp). Without the kernels, CUDA inputs are selected
// on the host and the results go back to the input's device.
#include "hired/torch/token_dropper.hpp"

#include "dispatch.hpp"
#include "hired/error.hpp"
#include "host_path.hpp"
#include "tensor_args.hpp"

#if HIRED_CUDA_DISPATCH
#include "cuda_path.hpp"
#include "plan_cache.hpp"
#endif

#include <ATen/ATen.h>

namespace hired {

using detail::shape_of;

std::vector<ImageLayout> image_layouts(const ImageBatch& images) {
  check(images.num_partitions.defined(), "num_partitions: undefined tensor");
  check(images.num_partitions.dim() == 1, "num_partitions: shape {} must be [B]",
        shape_of(images.num_partitions));
  const std::int64_t batch = images.num_partitions.size(0);
  const std::vector<std::int64_t> partitions =
      detail::host_ints(images.num_partitions, batch, 0, "num_partitions");
  std::vector<std::int64_t> grids, sizes;
  if (images.grid_shapes) grids = detail::host_ints(*images.grid_shapes, batch, 2, "grid_shapes");
  if (images.image_sizes) sizes = detail::host_ints(*images.image_sizes, batch, 2, "image_sizes");
  return describe_images({partitions, grids, sizes, images.grid_pinpoints, images.tile_px});
}

TokenDropper::TokenDropper(DropConfig config) : config_(config) {
  config_.validate();
#if HIRED_CUDA_DISPATCH
  cache_ = std::make_shared<detail::PlanCache>();
#endif
}

TokenSelection TokenDropper::select(const at::Tensor& init_cls_attn,
                                    const at::Tensor& final_cls_attn,
                                    const ImageBatch& images) const {
  detail::check_attention(init_cls_attn, "init_cls_attn");
  detail::check_attention(final_cls_attn, "final_cls_attn");
  check(init_cls_attn.sizes() == final_cls_attn.sizes(),
        "final_cls_attn: shape {} differs from init_cls_attn's {}", shape_of(final_cls_attn),
        shape_of(init_cls_attn));
  check(init_cls_attn.device() == final_cls_attn.device(),
        "final_cls_attn: on {}, but init_cls_attn is on {}", final_cls_attn.device().str(),
        init_cls_attn.device().str());
  std::vector<ImageLayout> layouts = image_layouts(images);
  const std::int64_t rows = total_partitions(layouts);
  check(init_cls_attn.size(0) == rows,
        "init_cls_attn: {} rows, but num_partitions sums to {} partitions",
        init_cls_attn.size(0), rows);
  const VisionGrid vision = vision_grid_for(init_cls_attn.size(2) - 1, images.tile_px);
#if HIRED_CUDA_DISPATCH
  if (init_cls_attn.is_cuda())
    return detail::select_cuda(init_cls_attn, final_cls_attn, std::move(layouts), vision,
                               config_, *cache_);
#endif
  Selection host = select_tokens(detail::host_head_sums(init_cls_attn, "init_cls_attn"),
                                 detail::host_head_sums(final_cls_attn, "final_cls_attn"),
                                 std::move(layouts), vision, config_);
  return detail::selection_tensors(std::move(host), init_cls_attn.device());
}

TokenSelection TokenDropper::select(const QueryKeys& init, const QueryKeys& final,
                                    const ImageBatch& images) const {
  detail::check_query_keys(init, "init");
  detail::check_query_keys(final, "final");
  check(final.q.sizes() == init.q.sizes(), "final.q: shape {} differs from init.q's {}",
        shape_of(final.q), shape_of(init.q));
  check(final.heads == init.heads, "final.heads: {} differs from init.heads {}", final.heads,
        init.heads);
  check(final.q.device() == init.q.device(), "final: on {}, but init is on {}",
        final.q.device().str(), init.q.device().str());
  std::vector<ImageLayout> layouts = image_layouts(images);
  const std::int64_t rows = total_partitions(layouts);
  check(init.q.size(0) == rows, "init.q: {} rows, but num_partitions sums to {} partitions",
        init.q.size(0), rows);
  const VisionGrid vision = vision_grid_for(init.q.size(1) - 1, images.tile_px);
#if HIRED_CUDA_DISPATCH
  if (init.q.is_cuda())
    return detail::select_cuda(init, final, std::move(layouts), vision, config_, *cache_);
#endif
  detail::HostScores scores = detail::host_qk_scores(init, final, layouts);
  Selection host = select_tokens(scores.init, scores.final, std::move(layouts), vision, config_);
  return detail::selection_tensors(std::move(host), init.q.device());
}

PackedFeatures detail::gather_features(const TokenSelection& selection, const at::Tensor& features,
                                       const std::optional<at::Tensor>& image_newline,
                                       NewlinePolicy policy) {
#if HIRED_CUDA_DISPATCH
  if (selection.device && gathers_on_device(*selection.device, features))
    return gather_cuda(*selection.device, features, image_newline, policy);
#endif
  // CPU features, other dtypes or D = 0 of a CUDA selection: the host plan (synchronises).
  return gather_on_host(selection.host, features, image_newline, policy);
}

PackedFeatures TokenDropper::gather(const TokenSelection& selection, const at::Tensor& features,
                                    const std::optional<at::Tensor>& image_newline) const {
  return detail::gather_features(selection, features, image_newline, config_.newline);
}

PackedFeatures TokenDropper::pack_rows(const TokenSelection& selection, const at::Tensor& rows,
                                       const std::optional<at::Tensor>& image_newline) const {
  return detail::pack_rows_on_host(selection.host, rows, image_newline, config_.newline);
}

TokenSelection selection_from_csr(const at::Tensor& kept, const at::Tensor& kept_offsets,
                                  const ImageBatch& images, std::int64_t tokens, Mode mode,
                                  std::string_view tokens_from) {
  std::vector<ImageLayout> layouts = image_layouts(images);
  const std::int64_t partitions = total_partitions(layouts);
  check(kept.defined() && kept.dim() == 1, "kept: shape {} must be [K]",
        kept.defined() ? shape_of(kept) : "undefined");
  const std::vector<std::int64_t> offsets =
      detail::host_ints(kept_offsets, partitions + 1, 0, "kept_offsets");
  const std::vector<std::int64_t> indices = detail::host_ints(kept, kept.size(0), 0, "kept");
  Selection host = selection_from_csr(
      std::move(layouts), vision_grid_for(tokens, images.tile_px, tokens_from), offsets, indices,
      mode);
  return detail::selection_tensors(std::move(host), kept.device());
}

void TokenSelection::check() const {
  if (device) (void)host.get();  // raises the kernels' error, if any
}

void PackedFeatures::check() const {
#if HIRED_CUDA_DISPATCH
  if (status.defined()) detail::raise_pack_status(static_cast<unsigned>(status.item<std::int32_t>()));
#endif
}

}  // namespace hired

// The CUDA path's gather: pack_kernel's feature part on the current stream, into LLaVA-Next's
// packing order with the newline policy's rows.
#include "cuda_check.hpp"
#include "cuda_path.hpp"
#include "device_selection.hpp"
#include "tensor_args.hpp"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

namespace hired::detail {

bool gathers_on_device(const DeviceSelection& d, const at::Tensor& features) {
  check_features(features, d.plan.partitions, d.vision.tokens());
  return features.is_cuda() && kernel_dtype(features.scalar_type()) && features.size(2) > 0;
}

PackedFeatures gather_cuda(const DeviceSelection& d, const at::Tensor& features,
                           const std::optional<at::Tensor>& image_newline, NewlinePolicy policy) {
  const K::SelectionPlan& plan = d.plan;
  const at::Device device = features.device();
  check(device == d.workspace.device(), "features: on {}, but the selection is on {}",
        device.str(), d.workspace.device().str());
  for (std::size_t b = 0; b < d.layouts.size(); ++b)
    check(d.layouts[b].partitions == 1 || d.layouts[b].image_size.has_value(),
          "image_sizes: needed to unpad the tile grid of image {} when packing", b);
  const c10::cuda::CUDAGuard guard(device);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(device.index()).stream();

  const at::Tensor source = features.contiguous();
  const std::int64_t dim = source.size(2);
  // Newline rows: known from geometry when the rows are; otherwise the kernel flags a missing
  // image_newline and the synchronising path below raises the CPU path's error.
  const bool needs_newline = plan.rows_known() ? sum(plan.rows) > sum(plan.kept)
                                               : policy != NewlinePolicy::none;
  at::Tensor newline;
  if (image_newline.has_value() && image_newline->defined() && policy != NewlinePolicy::none) {
    check_newline(image_newline, source);
    newline = image_newline->to(source.scalar_type()).contiguous();
  } else {
    check(!needs_newline || !plan.rows_known(),
          "image_newline: required by the newline policy '{}'", to_string(policy));
  }

  const std::int64_t capacity = plan.rows_known() ? sum(plan.rows) : plan.max_rows;
  const at::TensorOptions longs = at::TensorOptions().dtype(at::kLong).device(device);
  PackedFeatures out;
  out.features = at::empty({capacity, dim}, source.options());
  out.source_rows = at::empty({capacity}, longs);
  out.lengths = at::empty({static_cast<std::int64_t>(d.layouts.size())}, longs);
  out.status = at::empty({1}, at::TensorOptions().dtype(at::kInt).device(device));
  const at::Tensor totals = at::empty({2}, longs);
  K::PackParams pack = pack_params(d, policy);
  pack.rows = {.features = source.const_data_ptr(),
               .row_stride = dim,
               .element_bytes = static_cast<std::int32_t>(source.element_size()),
               .image_newline = newline.defined() ? newline.const_data_ptr() : nullptr,
               .dim = static_cast<std::int32_t>(dim),
               .packed = out.features.data_ptr(),
               .source_rows = out.source_rows.data_ptr<std::int64_t>(),
               .rows_capacity = capacity,
               .lengths = out.lengths.data_ptr<std::int64_t>()};
  pack.totals = totals.data_ptr<std::int64_t>();
  pack.status = status_word(out.status);
  check_cuda(K::launch_pack(pack, stream), "pack_kernel");
  if (!plan.rows_known()) {  // the one synchronisation: the row count depends on the scores
    const at::Tensor host_totals = totals.cpu();
    raise_status(out.status.item<std::int32_t>(), d, policy);
    const std::int64_t rows = host_totals[1].item<std::int64_t>();
    out.features = out.features.narrow(0, 0, rows);
    out.source_rows = out.source_rows.narrow(0, 0, rows);
  }
  return out;
}

void raise_pack_status(unsigned status) {
  check((status & K::status::invalid_input) == 0,
        "init_cls_attn / final_cls_attn: NaN, Inf or negative attention values; "
        "selection.check() names the first");
  check((status & K::status::missing_newline) == 0,
        "image_newline: required by the newline policy");
  check<InternalError>(status == 0, "gather: the CUDA kernels reported status {:#x}", status);
}

}  // namespace hired::detail

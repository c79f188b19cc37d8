// The CUDA path's selection: select_kernel and pack_kernel's CSR part on the current stream,
// two launches for a whole batch (hired/kernels/selection.cuh), from attention rows or q/k.
#include "cuda_check.hpp"
#include "cuda_path.hpp"
#include "device_selection.hpp"
#include "hired/qk_scores.hpp"
#include "host_path.hpp"
#include "host_selection.hpp"
#include "plan_cache.hpp"
#include "tensor_args.hpp"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <functional>

namespace hired::detail {
namespace {

/// select_kernel on `input` (AttentionInput or QueryKeyInput) for the batch of `d`.
template <K::SelectInput Input>
cudaError_t launch_select_on(const Input& input, const DeviceSelection& d, cudaStream_t stream) {
  return K::launch_select(K::select_params(d.plan, input, device_images(d),
                                           d.workspace.data_ptr(), d.workspace.numel()),
                          stream);
}

template <K::Element E>
const K::storage_t<E>* data_as(const at::Tensor& t) {
  return static_cast<const K::storage_t<E>*>(t.const_data_ptr());
}

/// Attention rows [sum P, H, N + 1], contiguous, of element type E.
template <K::Element E>
cudaError_t launch_attention(const DeviceSelection& d, cudaStream_t stream) {
  const at::Tensor& init = d.inputs[0];
  return launch_select_on(K::AttentionInput<E>{.init = data_as<E>(init),
                                               .final = data_as<E>(d.inputs[1]),
                                               .row_stride = init.size(1) * init.size(2),
                                               .head_stride = init.size(2),
                                               .heads = static_cast<std::int32_t>(init.size(1))},
                          d, stream);
}

/// q, k of both layers (inputs 0..3: init q, init k, final q, final k), unit channel stride.
template <K::Element E>
cudaError_t launch_query_keys(const DeviceSelection& d, std::int64_t heads, cudaStream_t stream) {
  const auto rows = [](const at::Tensor& q, const at::Tensor& k) {
    return K::QueryKeyRows<E>{.q = data_as<E>(q), .q_row_stride = q.stride(0), .k = data_as<E>(k),
                              .k_row_stride = k.stride(0), .k_token_stride = k.stride(1)};
  };
  const std::int64_t head_dim = d.inputs[1].size(2) / heads;
  return launch_select_on(K::QueryKeyInput<E>{.init = rows(d.inputs[0], d.inputs[1]),
                                              .final = rows(d.inputs[2], d.inputs[3]),
                                              .heads = static_cast<std::int32_t>(heads),
                                              .head_dim = static_cast<std::int32_t>(head_dim),
                                              .scale = qk_scale(head_dim)},
                          d, stream);
}

/// The one element type the kernels read both layers in: the inputs' own when they share an
/// f32/f16/bf16 type; otherwise (f64, or mixed types) float32, as the CPU path widens them.
at::ScalarType kernel_type(const std::vector<at::Tensor>& inputs) {
  const at::ScalarType type = inputs.front().scalar_type();
  for (const at::Tensor& t : inputs)
    if (t.scalar_type() != type) return at::kFloat;
  return kernel_dtype(type) ? type : at::kFloat;
}

/// Calls launch.template operator()<E>() for the kernels' element type of `type`.
template <class Launch>
cudaError_t dispatch_element(at::ScalarType type, Launch&& launch) {
  if (type == at::kHalf) return launch.template operator()<K::Element::f16>();
  if (type == at::kBFloat16) return launch.template operator()<K::Element::bf16>();
  return launch.template operator()<K::Element::f32>();
}

/// What select_kernel reads and how: its tensors (converted already), the launch, and the
/// CPU path's check that names an invalid value.
struct KernelInput {
  std::vector<at::Tensor> tensors;
  std::function<cudaError_t(const DeviceSelection&, cudaStream_t)> launch;
  std::function<void()> explain_invalid;
};

TokenSelection select_on_device(KernelInput input, std::vector<ImageLayout> layouts,
                                const VisionGrid& vision, const DropConfig& config,
                                PlanCache& cache) {
  const at::Device device = input.tensors.front().device();
  const c10::cuda::CUDAGuard guard(device);
  const c10::cuda::CUDAStream current = at::cuda::getCurrentCUDAStream(device.index());
  const cudaStream_t stream = current.stream();
  auto d = std::make_shared<DeviceSelection>();
  d->plan = K::plan_selection(layouts, vision, config, config.newline, /*packing=*/false);
  d->mode = config.mode;
  d->vision = vision;
  d->layouts = std::move(layouts);
  const K::SelectionPlan& plan = d->plan;
  d->inputs = std::move(input.tensors);
  d->explain_invalid = std::move(input.explain_invalid);
  const PlanCache::Buffers buffers = cache.get(plan, current);
  d->images = buffers.images;
  d->workspace = at::empty({plan.workspace_bytes}, at::TensorOptions().dtype(at::kByte).device(device));
  d->status = at::empty({1}, at::TensorOptions().dtype(at::kInt).device(device));
  check_cuda(input.launch(*d, stream), "select_kernel");

  // K follows from geometry in exact mode; reference mode allocates every token and narrows.
  const at::TensorOptions longs = at::TensorOptions().dtype(at::kLong).device(device);
  const std::int64_t capacity = plan.kept_known() ? sum(plan.kept) : plan.max_kept;
  TokenSelection out;
  out.budgets = at::empty({plan.partitions}, longs);
  out.kept = at::empty({capacity}, longs);
  out.kept_offsets = at::empty({plan.partitions + 1}, longs);
  out.partition_offsets = at::empty({static_cast<std::int64_t>(d->layouts.size()) + 1}, longs);
  const at::Tensor totals = at::empty({2}, longs);
  K::PackParams pack = pack_params(*d, config.newline);
  pack.csr = {.budgets = out.budgets.data_ptr<std::int64_t>(),
              .kept = out.kept.data_ptr<std::int64_t>(),
              .kept_capacity = capacity,
              .kept_offsets = out.kept_offsets.data_ptr<std::int64_t>(),
              .partition_offsets = out.partition_offsets.data_ptr<std::int64_t>()};
  pack.totals = totals.data_ptr<std::int64_t>();
  pack.status = status_word(d->status);
  check_cuda(K::launch_pack(pack, stream), "pack_kernel (CSR)");
  out.requested = buffers.requested.clone();  // the cached copy stays the cache's
  if (!plan.kept_known()) {  // the one synchronisation of reference mode
    const at::Tensor host_totals = totals.cpu();
    raise_status(d->status.item<std::int32_t>(), *d, config.newline);
    out.kept = out.kept.narrow(0, 0, host_totals[0].item<std::int64_t>());
  }

  out.host = lazy_host_selection([d, kept = out.kept, kept_offsets = out.kept_offsets, config] {
    raise_status(d->status.item<std::int32_t>(), *d, config.newline);
    Selection s;
    s.mode = d->mode;
    s.vision = d->vision;
    s.images = d->layouts;
    s.requested = d->plan.requested;
    s.partition_offsets = partition_offsets(s.images);
    const at::Tensor offsets = kept_offsets.cpu();
    s.kept_offsets.assign(offsets.data_ptr<std::int64_t>(),
                          offsets.data_ptr<std::int64_t>() + offsets.numel());
    const at::Tensor indices = kept.to(at::kCPU, at::kInt).contiguous();
    s.kept.assign(indices.data_ptr<std::int32_t>(), indices.data_ptr<std::int32_t>() + indices.numel());
    return s;
  });
  out.device = std::move(d);
  return out;
}

}  // namespace

TokenSelection select_cuda(const at::Tensor& init_cls_attn, const at::Tensor& final_cls_attn,
                           std::vector<ImageLayout> layouts, const VisionGrid& vision,
                           const DropConfig& config, PlanCache& cache) {
  const at::ScalarType type = kernel_type({init_cls_attn, final_cls_attn});
  const at::Tensor init = init_cls_attn.to(type).contiguous();
  const at::Tensor final = final_cls_attn.to(type).contiguous();
  KernelInput input{.tensors = {init, final},
                    .launch = [type](const DeviceSelection& d, cudaStream_t stream) {
                      return dispatch_element(type, [&]<K::Element E>() {
                        return launch_attention<E>(d, stream);
                      });
                    },
                    .explain_invalid = [init, final] {
                      host_head_sums(init, "init_cls_attn");
                      host_head_sums(final, "final_cls_attn");
                    }};
  return select_on_device(std::move(input), std::move(layouts), vision, config, cache);
}

TokenSelection select_cuda(const QueryKeys& init, const QueryKeys& final,
                           std::vector<ImageLayout> layouts, const VisionGrid& vision,
                           const DropConfig& config, PlanCache& cache) {
  const std::int64_t head_dim = init.q.size(2) / init.heads;
  check(head_dim <= K::kSelectMaxHeadDim,
        "init.q: head dim {} (width {} / {} heads); the CUDA kernels support at most {}",
        head_dim, init.q.size(2), init.heads, K::kSelectMaxHeadDim);
  const at::ScalarType type = kernel_type({init.q, init.k, final.q, final.k});
  const auto as_read = [type](const at::Tensor& t) { return channels_contiguous(t.to(type)); };
  const std::vector<at::Tensor> read{as_read(init.q), as_read(init.k), as_read(final.q),
                                     as_read(final.k)};
  const std::int64_t heads = init.heads;
  KernelInput input{.tensors = read,
                    .launch = [type, heads](const DeviceSelection& d, cudaStream_t stream) {
                      return dispatch_element(type, [&]<K::Element E>() {
                        return launch_query_keys<E>(d, heads, stream);
                      });
                    },
                    .explain_invalid = [read, heads, layouts] {
                      host_qk_scores({read[0], read[1], heads}, {read[2], read[3], heads},
                                     layouts);
                    }};
  return select_on_device(std::move(input), std::move(layouts), vision, config, cache);
}

}  // namespace hired::detail

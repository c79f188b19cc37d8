#include "cuda_path.hpp"

#include "cuda_check.hpp"
#include "hired/kernels/launch.hpp"
#include "hired/kernels/plan.hpp"
#include "hired/qk_scores.hpp"
#include "host_path.hpp"
#include "host_selection.hpp"
#include "plan_cache.hpp"
#include "tensor_args.hpp"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <functional>
#include <numeric>

namespace hired {
namespace detail {

/// What a CUDA selection keeps alive for gather(), check() and the host copy.
struct DeviceSelection {
  kernels::SelectionPlan plan;
  Mode mode = Mode::exact;
  VisionGrid vision;
  std::vector<ImageLayout> layouts;
  std::vector<at::Tensor> inputs;         // as select_kernel reads them
  std::function<void()> explain_invalid;  // raises the CPU path's error for invalid inputs
  at::Tensor images;                      // the BudgetImages on the device (PlanCache's)
  at::Tensor workspace;                   // select_kernel's output, pack_kernel's input
  at::Tensor status;                      // int32 [1], written by select()'s pack_kernel launch
};

namespace {

namespace K = kernels;

bool kernel_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

std::int64_t sum(const std::vector<std::int64_t>& v) {
  return std::accumulate(v.begin(), v.end(), std::int64_t{0});
}

/// Raises the error behind a kernel status word (0: nothing). Invalid attention gets the CPU
/// path's message (the host check is re-run on the error path only).
void raise_status(int word, const DeviceSelection& d, NewlinePolicy policy) {
  const auto status = static_cast<unsigned>(word);
  if (status == 0) return;
  if ((status & K::status::invalid_input) != 0) d.explain_invalid();
  check((status & K::status::missing_newline) == 0,
        "image_newline: required by the newline policy '{}'", to_string(policy));
  fail<InternalError>("CUDA selection: the kernels reported status {:#x}, which the host checks "
                      "should have prevented", status);
}

const K::BudgetImage* device_images(const DeviceSelection& d) {
  return static_cast<const K::BudgetImage*>(d.images.const_data_ptr());
}

/// select_kernel on `input` (AttentionInput or QueryKeyInput) for the batch of `d`.
template <K::SelectInput Input>
cudaError_t launch_select_on(const Input& input, const DeviceSelection& d, cudaStream_t stream) {
  return K::launch_select(K::select_params(d.plan, input, device_images(d),
                                           d.workspace.data_ptr(), d.workspace.numel()),
                          stream);
}

/// pack_kernel's parameters for the batch of `d`, without outputs.
K::PackParams pack_params(const DeviceSelection& d, NewlinePolicy policy) {
  return K::pack_params(d.plan, device_images(d), d.workspace.const_data_ptr(),
                        d.workspace.numel(), policy);
}

/// A device word as pack_kernel's status pointer.
unsigned* status_word(const at::Tensor& status) {
  return reinterpret_cast<unsigned*>(status.data_ptr<std::int32_t>());
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

}  // namespace detail
}  // namespace hired

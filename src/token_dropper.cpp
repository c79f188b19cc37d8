// The LibTorch adapter. The only translation unit of the library that includes torch.
// CPU inputs are selected on the host through the torch-free core. CUDA inputs go to hired's
// kernels (hired/kernels/selection.cuh: two launches on the current stream) when the library
// is built with CUDA against a CUDA LibTorch (HIRED_CUDA_DISPATCH); otherwise they are copied
// to the host for the core, and the results go back to the input's device.
#include "hired/token_dropper.hpp"

#include "hired/error.hpp"
#include "hired/qk_scores.hpp"
#include "hired/scores.hpp"
#include "tensor_text.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#if HIRED_CUDA_DISPATCH
#include "hired/kernels/launch.hpp"
#include "hired/kernels/plan.hpp"

#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>

#include <cstring>
#include <map>
#include <mutex>
#include <numeric>
#include <string>
#endif

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace hired {
namespace {

using detail::dtype_of;
using detail::shape_of;

bool is_float(const at::Tensor& t) { return at::isFloatingType(t.scalar_type()); }

void check_attention(const at::Tensor& t, const char* name) {
  check(t.defined(), "{}: undefined tensor", name);
  check(t.dim() == 3, "{}: shape {} must be [sum P, H, N + 1]", name, shape_of(t));
  check(is_float(t), "{}: dtype {} must be floating point", name,
        dtype_of(t));
  check(t.numel() > 0, "{}: shape {} is empty", name, shape_of(t));
}

/// An integer tensor of a given shape, as host int64 values.
std::vector<std::int64_t> host_ints(const at::Tensor& t, std::int64_t rows, std::int64_t cols,
                                    const char* name) {
  check(t.defined(), "{}: undefined tensor", name);
  check(at::isIntegralType(t.scalar_type(), /*includeBool=*/false), "{}: dtype {} must be an integer type",
        name, dtype_of(t));
  const bool shape_ok = cols == 0 ? (t.dim() == 1 && t.size(0) == rows)
                                  : (t.dim() == 2 && t.size(0) == rows && t.size(1) == cols);
  check(shape_ok, "{}: shape {} must be [{}{}]", name, shape_of(t), rows,
        cols == 0 ? std::string() : ", " + std::to_string(cols));
  const at::Tensor h = t.to(at::kCPU, at::kLong).contiguous();
  return {h.data_ptr<std::int64_t>(), h.data_ptr<std::int64_t>() + h.numel()};
}

std::vector<float> head_sums(const at::Tensor& attention, const char* name) {
  const at::Tensor f = attention.to(at::kCPU, at::kFloat).contiguous();
  return sum_heads(f.data_ptr<float>(), f.size(0), f.size(1), f.size(2), name);
}

at::Tensor to_tensor(const std::vector<std::int64_t>& v, const at::Device& device) {
  return at::tensor(at::ArrayRef<std::int64_t>(v), at::kLong).to(device);
}

void check_query_keys(const QueryKeys& in, const char* name) {
  check(in.q.defined() && in.k.defined(), "{}: undefined q or k tensor", name);
  check(in.q.dim() == 3, "{}.q: shape {} must be [sum P, N + 1, H * d]", name, shape_of(in.q));
  check(in.k.sizes() == in.q.sizes(), "{}.k: shape {} differs from q's {}", name,
        shape_of(in.k), shape_of(in.q));
  check(is_float(in.q) && is_float(in.k), "{}: dtypes {} and {} must be floating point", name,
        dtype_of(in.q), dtype_of(in.k));
  check(in.k.device() == in.q.device(), "{}.k: on {}, but q is on {}", name,
        in.k.device().str(), in.q.device().str());
  check(in.q.numel() > 0, "{}.q: shape {} is empty", name, shape_of(in.q));
  check(in.q.size(1) >= 2, "{}.q: {} tokens; need the CLS token and at least one patch", name,
        in.q.size(1));
  check(in.heads > 0 && in.q.size(2) % in.heads == 0, "{}.heads: {} does not divide the width {}",
        name, in.heads, in.q.size(2));
}

/// A view with unit channel stride (the kernels' and qk_scores' layout): as it is, or a copy.
at::Tensor channels_contiguous(const at::Tensor& t) {
  return t.stride(2) == 1 ? t : t.contiguous();
}

/// One layer's q, k as host floats, and hired::qk_scores' view of them.
struct HostQueryKeys {
  at::Tensor q, k;
  QueryKeyView view;

  explicit HostQueryKeys(const QueryKeys& in)
      : q(channels_contiguous(in.q.to(at::kCPU, at::kFloat))),
        k(channels_contiguous(in.k.to(at::kCPU, at::kFloat))) {
    view = {.q = q.const_data_ptr<float>(), .q_row_stride = q.stride(0),
            .k = k.const_data_ptr<float>(), .k_row_stride = k.stride(0),
            .k_token_stride = k.stride(1), .rows = k.size(0), .heads = in.heads,
            .head_dim = k.size(2) / in.heads, .tokens = k.size(1) - 1,
            .scale = qk_scale(k.size(2) / in.heads)};
  }
};

/// Rows of qk_scores spread over ATen's intra-op threads.
struct AtenParallelRows {
  template <class Body>
  void operator()(std::int64_t count, Body&& body) const {
    at::parallel_for(0, count, 1, body);
  }
};

/// The CPU path's scores from q/k, [sum P, N] each: init on full-image rows only (the rest
/// 0, never read by the budgets), final on every row.
std::pair<std::vector<float>, std::vector<float>> host_qk_scores(
    const QueryKeys& init, const QueryKeys& final, const std::vector<ImageLayout>& layouts) {
  const HostQueryKeys host_init(init), host_final(final);
  return {qk_init_scores(host_init.view, layouts, "init q/k", AtenParallelRows{}),
          qk_scores(host_final.view, "final q/k", {}, AtenParallelRows{})};
}

/// A host selection as TokenSelection tensors on `device`.
TokenSelection from_host(Selection host, const at::Device& device) {
  const std::int64_t rows = host.partition_offsets.back();
  std::vector<std::int64_t> budgets(static_cast<std::size_t>(rows));
  for (std::int64_t p = 0; p < rows; ++p) budgets[p] = host.budget(p);
  TokenSelection out;
  out.budgets = to_tensor(budgets, device);
  out.kept = at::tensor(at::ArrayRef<std::int32_t>(host.kept), at::kInt).to(device, at::kLong);
  out.kept_offsets = to_tensor(host.kept_offsets, device);
  out.partition_offsets = to_tensor(host.partition_offsets, device);
  out.requested = to_tensor(host.requested, device);
  out.host = std::move(host);
  return out;
}

}  // namespace

#if HIRED_CUDA_DISPATCH
namespace detail {

/// What a CUDA selection keeps alive for gather(), check() and the host copy.
struct DeviceSelection {
  kernels::SelectionPlan plan;
  Mode mode = Mode::exact;
  VisionGrid vision;
  std::vector<ImageLayout> layouts;
  std::vector<at::Tensor> inputs;      // as select_kernel reads them
  std::function<void()> explain_invalid;  // raises the CPU path's error for invalid inputs
  at::Tensor images;                 // the BudgetImages on the device (PlanCache's)
  at::Tensor workspace;              // select_kernel's output, pack_kernel's input
  at::Tensor status;                 // int32 [1], written by select()'s pack_kernel launch
};

/// Device copies of the BudgetImages and requested budgets of the layouts seen so far, keyed
/// by their values and the device. Bounded: cleared when it grows past kLimit layouts.
struct PlanCache {
  struct Entry {
    at::Tensor images, requested;           // on the device
    at::Tensor staging, staging_requested;  // their pinned sources, alive while copies run
    at::cuda::CUDAEvent uploaded;           // recorded on `stream` after the copies
    c10::cuda::CUDAStream stream = c10::cuda::getDefaultCUDAStream();
  };
  static constexpr std::size_t kLimit = 256;
  std::mutex mutex;
  std::map<std::string, Entry> entries;
};

}  // namespace detail

namespace {

namespace K = kernels;

/// The cache key of a plan on a device: every field that reaches the device (not the raw
/// struct bytes, whose padding is indeterminate).
std::string plan_key(const K::SelectionPlan& plan, const at::Device& device) {
  std::string key;
  const auto add = [&key](std::int64_t v) {
    key.append(reinterpret_cast<const char*>(&v), sizeof v);
  };
  add(device.index());
  for (const K::BudgetImage& i : plan.images)
    for (const std::int64_t v :
         {i.offset, std::int64_t{i.partitions}, std::int64_t{i.grid_rows},
          std::int64_t{i.grid_cols}, i.total, std::int64_t{i.box.row_begin},
          std::int64_t{i.box.row_end}, std::int64_t{i.box.col_begin}, std::int64_t{i.box.col_end},
          std::int64_t{i.resized_height}, std::int64_t{i.resized_width}, std::int64_t{i.pad_top},
          std::int64_t{i.pad_left}})
      add(v);
  for (const std::int64_t v : plan.requested) add(v);
  return key;
}

bool kernel_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

void check_launch(cudaError_t error, const char* what) {
  check(error == cudaSuccess, "CUDA: {} failed: {}", what, cudaGetErrorString(error));
}

/// Host bytes to the device on the current stream without a synchronisation: through a
/// pinned buffer (kept by the caller), never from pageable memory.
at::Tensor upload(const void* data, std::int64_t bytes, const at::Device& device,
                  at::Tensor& staging) {
  staging = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  if (bytes > 0) std::memcpy(staging.data_ptr(), data, static_cast<std::size_t>(bytes));
  return staging.to(at::TensorOptions().device(device), /*non_blocking=*/true);
}

std::int64_t sum(const std::vector<std::int64_t>& v) {
  return std::accumulate(v.begin(), v.end(), std::int64_t{0});
}

/// Raises the error behind a kernel status word (0: nothing). Invalid attention gets the CPU
/// path's message (the host check is re-run on the error path only).
void raise_status(int word, const detail::DeviceSelection& d, NewlinePolicy policy) {
  const auto status = static_cast<unsigned>(word);
  if (status == 0) return;
  if ((status & K::selection_status::invalid_attention) != 0) d.explain_invalid();
  check((status & K::selection_status::missing_newline) == 0,
        "image_newline: required by the newline policy '{}'", to_string(policy));
  fail("CUDA selection: the kernels reported status {:#x}, which the host checks should have "
       "prevented", status);
}

/// select_kernel on `input` (AttentionInput or QueryKeyInput) for the batch of `d`.
template <class Input>
cudaError_t launch_select_on(const Input& input, const detail::DeviceSelection& d,
                             cudaStream_t stream) {
  K::SelectParams<Input> p{.input = input,
                           .partitions = d.plan.partitions,
                           .budget = d.plan.budget,
                           .workspace = d.workspace.data_ptr(),
                           .workspace_bytes = d.workspace.numel()};
  p.budget.images = static_cast<const K::BudgetImage*>(d.images.const_data_ptr());
  return K::launch_select(p, stream);
}

template <K::Element E>
const K::storage_t<E>* data_as(const at::Tensor& t) {
  return static_cast<const K::storage_t<E>*>(t.const_data_ptr());
}

/// Attention rows [sum P, H, N + 1], contiguous, of element type E.
template <K::Element E>
cudaError_t launch_attention(const detail::DeviceSelection& d, cudaStream_t stream) {
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
cudaError_t launch_query_keys(const detail::DeviceSelection& d, std::int64_t heads,
                              cudaStream_t stream) {
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

K::PackParams pack_params(const detail::DeviceSelection& d, NewlinePolicy policy) {
  return {.images = static_cast<const K::BudgetImage*>(d.images.const_data_ptr()),
          .image_count = static_cast<std::int32_t>(d.layouts.size()),
          .partitions = d.plan.partitions,
          .tokens = static_cast<std::int32_t>(d.vision.tokens()),
          .side = static_cast<std::int32_t>(d.vision.side),
          .newline = K::pack_newline(policy),
          .workspace = d.workspace.const_data_ptr(),
          .workspace_bytes = d.workspace.numel()};
}

/// What select_kernel reads and how: its tensors (converted already), the launch, and the
/// CPU path's check that names an invalid value.
struct SelectInput {
  std::vector<at::Tensor> tensors;
  std::function<cudaError_t(const detail::DeviceSelection&, cudaStream_t)> launch;
  std::function<void()> explain_invalid;
};

TokenSelection select_cuda(SelectInput input, std::vector<ImageLayout> layouts,
                           const VisionGrid& vision, const DropConfig& config,
                           detail::PlanCache& cache) {
  const at::Device device = input.tensors.front().device();
  const c10::cuda::CUDAGuard guard(device);
  const c10::cuda::CUDAStream current = at::cuda::getCurrentCUDAStream(device.index());
  const cudaStream_t stream = current.stream();
  auto d = std::make_shared<detail::DeviceSelection>();
  d->plan = K::plan_selection(layouts, vision, config, config.newline, /*packing=*/false);
  d->mode = config.mode;
  d->vision = vision;
  d->layouts = std::move(layouts);
  const K::SelectionPlan& plan = d->plan;

  d->inputs = std::move(input.tensors);
  d->explain_invalid = std::move(input.explain_invalid);
  at::Tensor requested;
  {
    const std::lock_guard lock(cache.mutex);
    auto [entry, fresh] = cache.entries.try_emplace(plan_key(plan, device));
    if (fresh) {
      if (cache.entries.size() > detail::PlanCache::kLimit) {
        detail::PlanCache::Entry keep = std::move(entry->second);
        const std::string key = entry->first;
        cache.entries.clear();
        entry = cache.entries.emplace(key, std::move(keep)).first;
      }
      detail::PlanCache::Entry& e = entry->second;
      e.images = upload(plan.images.data(),
                        static_cast<std::int64_t>(plan.images.size() * sizeof(K::BudgetImage)),
                        device, e.staging);
      e.requested = upload(plan.requested.data(),
                           static_cast<std::int64_t>(plan.requested.size() * sizeof(std::int64_t)),
                           device, e.staging_requested)
                        .view(at::kLong);
      e.stream = current;
      e.uploaded.record(current);
    }
    // Another stream waits for the upload (not while capturing: a captured stream may not
    // wait on an outside event; the warm-up before a capture uploads on the same stream).
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    check_launch(cudaStreamIsCapturing(stream, &capturing), "cudaStreamIsCapturing");
    if (entry->second.stream != current && capturing == cudaStreamCaptureStatusNone)
      entry->second.uploaded.block(current);
    d->images = entry->second.images;
    requested = entry->second.requested;
  }
  // Used on this stream: the allocator must not hand the memory out before these kernels are
  // done with it, should the cache drop the entry meanwhile.
  c10::cuda::CUDACachingAllocator::recordStream(d->images.storage().data_ptr(), current);
  c10::cuda::CUDACachingAllocator::recordStream(requested.storage().data_ptr(), current);
  d->workspace = at::empty({plan.workspace_bytes}, at::TensorOptions().dtype(at::kByte).device(device));
  d->status = at::empty({1}, at::TensorOptions().dtype(at::kInt).device(device));
  check_launch(input.launch(*d, stream), "select_kernel");

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
  pack.budgets = out.budgets.data_ptr<std::int64_t>();
  pack.kept = out.kept.data_ptr<std::int64_t>();
  pack.kept_capacity = capacity;
  pack.kept_offsets = out.kept_offsets.data_ptr<std::int64_t>();
  pack.partition_offsets = out.partition_offsets.data_ptr<std::int64_t>();
  pack.totals = totals.data_ptr<std::int64_t>();
  pack.status = reinterpret_cast<unsigned*>(d->status.data_ptr<std::int32_t>());
  check_launch(K::launch_pack(pack, 4, stream), "pack_kernel (CSR)");
  out.requested = requested.clone();  // the cached copy stays the cache's
  if (!plan.kept_known()) {  // the one synchronisation of reference mode
    const at::Tensor host_totals = totals.cpu();
    raise_status(d->status.item<std::int32_t>(), *d, config.newline);
    out.kept = out.kept.narrow(0, 0, host_totals[0].item<std::int64_t>());
  }

  out.host = HostSelection([d, kept = out.kept, kept_offsets = out.kept_offsets, config] {
    raise_status(d->status.item<std::int32_t>(), *d, config.newline);
    Selection s;
    s.mode = d->mode;
    s.vision = d->vision;
    s.images = d->layouts;
    s.requested = d->plan.requested;
    s.partition_offsets.push_back(0);
    for (const ImageLayout& image : s.images)
      s.partition_offsets.push_back(s.partition_offsets.back() + image.partitions);
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

PackedFeatures gather_cuda(const detail::DeviceSelection& d, const at::Tensor& features,
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
    check(image_newline->dim() == 1 && image_newline->size(0) == dim,
          "image_newline: shape {} must be [D = {}]", detail::shape_of(*image_newline), dim);
    check(image_newline->device() == device, "image_newline: on {}, but features are on {}",
          image_newline->device().str(), device.str());
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
  pack.features = source.const_data_ptr();
  pack.feature_row_stride = dim;
  pack.image_newline = newline.defined() ? newline.const_data_ptr() : nullptr;
  pack.dim = static_cast<std::int32_t>(dim);
  pack.chunk = 256;  // columns per block: D = 1024 gives 4 blocks per partition
  pack.packed = out.features.data_ptr();
  pack.source_rows = out.source_rows.data_ptr<std::int64_t>();
  pack.rows_capacity = capacity;
  pack.lengths = out.lengths.data_ptr<std::int64_t>();
  pack.totals = totals.data_ptr<std::int64_t>();
  pack.status = reinterpret_cast<unsigned*>(out.status.data_ptr<std::int32_t>());
  check_launch(K::launch_pack(pack, static_cast<int>(source.element_size()), stream),
               "pack_kernel");
  if (!plan.rows_known()) {  // the one synchronisation: the row count depends on the scores
    const at::Tensor host_totals = totals.cpu();
    raise_status(out.status.item<std::int32_t>(), d, policy);
    const std::int64_t rows = host_totals[1].item<std::int64_t>();
    out.features = out.features.narrow(0, 0, rows);
    out.source_rows = out.source_rows.narrow(0, 0, rows);
  }
  return out;
}

}  // namespace
#endif  // HIRED_CUDA_DISPATCH

HostSelection::HostSelection(Selection ready) : state_(std::make_shared<State>()) {
  state_->value = std::move(ready);
}

HostSelection::HostSelection(std::function<Selection()> fill) : state_(std::make_shared<State>()) {
  state_->fill = std::move(fill);
}

const Selection& HostSelection::get() const {
  const std::lock_guard lock(state_->mutex);
  if (!state_->value) {
    check(static_cast<bool>(state_->fill), "selection: empty; call select() first");
    state_->value = state_->fill();  // may throw (the kernels' error); then retried next time
    state_->fill = nullptr;
  }
  return *state_->value;
}

bool HostSelection::ready() const {
  const std::lock_guard lock(state_->mutex);
  return state_->value.has_value();
}

void TokenSelection::check() const {
  if (device) (void)host.get();  // raises the kernels' error, if any
}

void PackedFeatures::check() const {
#if HIRED_CUDA_DISPATCH
  if (!status.defined()) return;
  const auto word = static_cast<unsigned>(status.item<std::int32_t>());
  hired::check((word & kernels::selection_status::invalid_attention) == 0,
               "init_cls_attn / final_cls_attn: NaN, Inf or negative attention values; "
               "selection.check() names the first");
  hired::check((word & kernels::selection_status::missing_newline) == 0,
               "image_newline: required by the newline policy");
  hired::check(word == 0, "gather: the CUDA kernels reported status {:#x}", word);
#endif
}

std::vector<ImageLayout> image_layouts(const ImageBatch& images) {
  check(images.num_partitions.defined(), "num_partitions: undefined tensor");
  check(images.num_partitions.dim() == 1, "num_partitions: shape {} must be [B]",
        shape_of(images.num_partitions));
  const std::int64_t batch = images.num_partitions.size(0);
  const std::vector<std::int64_t> partitions =
      host_ints(images.num_partitions, batch, 0, "num_partitions");
  std::vector<std::int64_t> grids, sizes;
  if (images.grid_shapes) grids = host_ints(*images.grid_shapes, batch, 2, "grid_shapes");
  if (images.image_sizes) sizes = host_ints(*images.image_sizes, batch, 2, "image_sizes");
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
  check_attention(init_cls_attn, "init_cls_attn");
  check_attention(final_cls_attn, "final_cls_attn");
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
  if (init_cls_attn.is_cuda()) {
    const at::ScalarType type = kernel_type({init_cls_attn, final_cls_attn});
    const at::Tensor init = init_cls_attn.to(type).contiguous();
    const at::Tensor final = final_cls_attn.to(type).contiguous();
    SelectInput input{.tensors = {init, final},
                      .launch = [type](const detail::DeviceSelection& d, cudaStream_t stream) {
                        return dispatch_element(type, [&]<K::Element E>() {
                          return launch_attention<E>(d, stream);
                        });
                      },
                      .explain_invalid = [init, final] {
                        head_sums(init, "init_cls_attn");
                        head_sums(final, "final_cls_attn");
                      }};
    return select_cuda(std::move(input), std::move(layouts), vision, config_, *cache_);
  }
#endif

  Selection host = select_tokens(head_sums(init_cls_attn, "init_cls_attn"),
                                 head_sums(final_cls_attn, "final_cls_attn"), std::move(layouts),
                                 vision, config_);
  return from_host(std::move(host), init_cls_attn.device());
}

TokenSelection TokenDropper::select(const QueryKeys& init, const QueryKeys& final,
                                    const ImageBatch& images) const {
  check_query_keys(init, "init");
  check_query_keys(final, "final");
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
  if (init.q.is_cuda()) {
    const std::int64_t head_dim = init.q.size(2) / init.heads;
    check(head_dim <= K::kSelectMaxHeadDim,
          "init.q: head dim {} (width {} / {} heads); the CUDA kernels support at most {}",
          head_dim, init.q.size(2), init.heads, K::kSelectMaxHeadDim);
    const at::ScalarType type = kernel_type({init.q, init.k, final.q, final.k});
    const auto as_read = [type](const at::Tensor& t) { return channels_contiguous(t.to(type)); };
    const std::vector<at::Tensor> read{as_read(init.q), as_read(init.k), as_read(final.q),
                                       as_read(final.k)};
    const std::int64_t heads = init.heads;
    SelectInput input{.tensors = read,
                      .launch = [type, heads](const detail::DeviceSelection& d,
                                              cudaStream_t stream) {
                        return dispatch_element(type, [&]<K::Element E>() {
                          return launch_query_keys<E>(d, heads, stream);
                        });
                      },
                      .explain_invalid = [read, heads, layouts] {
                        host_qk_scores({read[0], read[1], heads}, {read[2], read[3], heads},
                                       layouts);
                      }};
    return select_cuda(std::move(input), std::move(layouts), vision, config_, *cache_);
  }
#endif

  auto [init_scores, final_scores] = host_qk_scores(init, final, layouts);
  Selection host = select_tokens(init_scores, final_scores, std::move(layouts), vision, config_);
  return from_host(std::move(host), init.q.device());
}

PackedFeatures TokenDropper::gather(const TokenSelection& selection, const at::Tensor& features,
                                    const std::optional<at::Tensor>& image_newline) const {
#if HIRED_CUDA_DISPATCH
  if (selection.device && features.defined() && features.is_cuda()) {
    const detail::DeviceSelection& d = *selection.device;
    const std::int64_t rows = d.plan.partitions, tokens = d.vision.tokens();
    check(features.dim() == 3 && features.size(0) == rows && features.size(1) == tokens,
          "features: shape {} must be [sum P = {}, N = {}, D]", shape_of(features), rows, tokens);
    check(is_float(features), "features: dtype {} must be floating point", dtype_of(features));
    if (kernel_dtype(features.scalar_type()) && features.size(2) > 0)
      return gather_cuda(d, features, image_newline, config_.newline);
  }  // other dtypes, D = 0 or CPU features: the host plan below (synchronises)
#endif
  const Selection& host = selection.host;
  check(!host.images.empty(), "selection: empty; call select() first");
  const std::int64_t rows = host.partition_offsets.back(), tokens = host.vision.tokens();
  check(features.defined(), "features: undefined tensor");
  check(features.dim() == 3 && features.size(0) == rows && features.size(1) == tokens,
        "features: shape {} must be [sum P = {}, N = {}, D]", shape_of(features), rows, tokens);
  check(is_float(features), "features: dtype {} must be floating point",
        dtype_of(features));

  const PackPlan plan = pack_plan(host, config_.newline);
  const bool needs_newline =
      std::find(plan.rows.begin(), plan.rows.end(), PackPlan::newline) != plan.rows.end();
  if (needs_newline) {
    check(image_newline.has_value() && image_newline->defined(),
          "image_newline: required by the newline policy '{}'", to_string(config_.newline));
    check(image_newline->dim() == 1 && image_newline->size(0) == features.size(2),
          "image_newline: shape {} must be [D = {}]", shape_of(*image_newline), features.size(2));
    check(image_newline->device() == features.device(), "image_newline: on {}, but features are on {}",
          image_newline->device().str(), features.device().str());
  }

  const at::Device device = features.device();
  const at::Tensor source = to_tensor(plan.rows, device);
  const at::Tensor flat = features.reshape({rows * tokens, features.size(2)});
  at::Tensor packed = flat.index_select(0, source.clamp_min(0));
  if (needs_newline) {
    const at::Tensor where = (source == PackPlan::newline).nonzero().squeeze(1);
    packed.index_copy_(0, where, image_newline->to(features.scalar_type())
                                     .unsqueeze(0).expand({where.size(0), features.size(2)}));
  }
  std::vector<std::int64_t> lengths(plan.offsets.size() - 1);
  for (std::size_t b = 0; b < lengths.size(); ++b) lengths[b] = plan.offsets[b + 1] - plan.offsets[b];
  return {packed, to_tensor(lengths, device), source, {}};
}

at::Tensor cls_attention(const at::Tensor& q, const at::Tensor& k, std::int64_t heads) {
  check(q.defined() && k.defined(), "q, k: undefined tensor");
  check(q.dim() == 3, "q: shape {} must be [sum P, N + 1, H * d]", shape_of(q));
  check(k.sizes() == q.sizes(), "k: shape {} differs from q's {}", shape_of(k), shape_of(q));
  check(is_float(q) && is_float(k), "q, k: dtypes {} and {} must be floating point",
        dtype_of(q),
        dtype_of(k));
  check(q.device() == k.device(), "k: on {}, but q is on {}", k.device().str(), q.device().str());
  check(heads > 0 && q.size(2) % heads == 0, "heads: {} does not divide the width {}", heads,
        q.size(2));
  const std::int64_t partitions = q.size(0), keys = q.size(1), dim = q.size(2) / heads;
  check(keys >= 2, "q: {} tokens; need the CLS token and at least one patch", keys);
  // One query row per head, as one GEMM over k as it is: k [P, N+1, H*d] times a block-diagonal
  // [P, H*d, H] holding q_CLS of head h in rows h*d..h*d+d-1 of column h. A batched
  // [1, d] x [d, N+1] matmul per (partition, head) copies k per head and ran ~10x slower on CPU;
  // an elementwise product materialises a k-sized temporary.
  const at::Tensor q_cls = q.select(1, 0).to(at::kFloat).reshape({partitions, heads, dim});
  at::Tensor block_diagonal = at::zeros({partitions, heads, dim, heads}, q_cls.options());
  block_diagonal.diagonal(0, 1, 3).copy_(q_cls.transpose(1, 2));  // [P, d, H] view
  const at::Tensor logits =
      at::bmm(k.to(at::kFloat).contiguous(), block_diagonal.view({partitions, heads * dim, heads}))
          .transpose(1, 2) /
      std::sqrt(static_cast<double>(dim));
  return at::softmax(logits, -1);
}

}  // namespace hired

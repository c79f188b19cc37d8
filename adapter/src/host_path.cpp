#include "host_path.hpp"

#include "hired/qk_scores.hpp"
#include "hired/scores.hpp"
#include "tensor_args.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>

namespace hired::detail {
namespace {

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

}  // namespace

std::vector<float> host_head_sums(const at::Tensor& attention, const char* name) {
  const at::Tensor f = attention.to(at::kCPU, at::kFloat).contiguous();
  return sum_heads(f.data_ptr<float>(), f.size(0), f.size(1), f.size(2), name);
}

HostScores host_qk_scores(const QueryKeys& init, const QueryKeys& final,
                          const std::vector<ImageLayout>& layouts) {
  const HostQueryKeys host_init(init), host_final(final);
  return {qk_init_scores(host_init.view, layouts, "init q/k", AtenParallelRows{}),
          qk_scores(host_final.view, "final q/k", {}, AtenParallelRows{})};
}

TokenSelection selection_tensors(Selection host, const at::Device& device) {
  const std::int64_t rows = host.partition_offsets.back();
  std::vector<std::int64_t> budgets(static_cast<std::size_t>(rows));
  for (std::int64_t p = 0; p < rows; ++p) budgets[p] = host.budget(p);
  TokenSelection out;
  out.budgets = long_tensor(budgets, device);
  out.kept = at::tensor(at::ArrayRef<std::int32_t>(host.kept), at::kInt).to(device, at::kLong);
  out.kept_offsets = long_tensor(host.kept_offsets, device);
  out.partition_offsets = long_tensor(host.partition_offsets, device);
  out.requested = long_tensor(host.requested, device);
  out.host = std::move(host);
  return out;
}

PackedFeatures gather_on_host(const Selection& selection, const at::Tensor& features,
                              const std::optional<at::Tensor>& image_newline,
                              NewlinePolicy policy) {
  check(!selection.images.empty(), "selection: empty; call select() first");
  const std::int64_t rows = selection.partition_offsets.back();
  check_features(features, rows, selection.vision.tokens());

  const PackPlan plan = pack_plan(selection, policy);
  const bool needs_newline =
      std::find(plan.rows.begin(), plan.rows.end(), PackPlan::newline) != plan.rows.end();
  if (needs_newline) {
    check(image_newline.has_value() && image_newline->defined(),
          "image_newline: required by the newline policy '{}'", to_string(policy));
    check_newline(image_newline, features);
  }
  const at::Device device = features.device();
  const at::Tensor source = long_tensor(plan.rows, device);
  const at::Tensor flat = features.reshape({-1, features.size(2)});
  at::Tensor packed = flat.index_select(0, source.clamp_min(0));
  if (needs_newline) {
    const at::Tensor where = (source == PackPlan::newline).nonzero().squeeze(1);
    packed.index_copy_(0, where, image_newline->to(features.scalar_type())
                                     .unsqueeze(0).expand({where.size(0), features.size(2)}));
  }
  return {packed, long_tensor(plan.lengths(), device), source, {}};
}

}  // namespace hired::detail

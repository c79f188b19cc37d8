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

at::Tensor host_qk_attention(const QueryKeys& qk) {
  const HostQueryKeys host(qk);
  std::vector<float> rows = qk_attention(host.view, "q/k", AtenParallelRows{});
  return at::tensor(at::ArrayRef<float>(rows), at::kFloat)
      .reshape({host.view.rows, host.view.heads, host.view.tokens + 1});
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

namespace {

/// The rows of `plan`: row r is table[index[r]] for a token row, image_newline for a newline row
/// (index -1). `table` is [M, D] on the output's device.
PackedFeatures lay_out(const PackPlan& plan, const std::vector<std::int64_t>& index,
                       const at::Tensor& table, const std::optional<at::Tensor>& image_newline,
                       NewlinePolicy policy) {
  const bool needs_newline =
      std::find(plan.rows.begin(), plan.rows.end(), PackPlan::newline) != plan.rows.end();
  if (needs_newline) {
    check(image_newline.has_value() && image_newline->defined(),
          "image_newline: required by the newline policy '{}'", to_string(policy));
    check_newline(image_newline, table);
  }
  const at::Device device = table.device();
  const at::Tensor where = long_tensor(index, device);
  at::Tensor packed = table.index_select(0, where.clamp_min(0));
  if (needs_newline) {
    const at::Tensor rows = (where == PackPlan::newline).nonzero().squeeze(1);
    packed.index_copy_(0, rows, image_newline->to(table.scalar_type())
                                    .unsqueeze(0).expand({rows.size(0), table.size(1)}));
  }
  return {packed, long_tensor(plan.lengths(), device), long_tensor(plan.rows, device), {}};
}

}  // namespace

PackedFeatures gather_on_host(const Selection& selection, const at::Tensor& features,
                              const std::optional<at::Tensor>& image_newline,
                              NewlinePolicy policy) {
  check(!selection.images.empty(), "selection: empty; call select() first");
  check_features(features, selection.partition_offsets.back(), selection.vision.tokens());
  const PackPlan plan = pack_plan(selection, policy);
  return lay_out(plan, plan.rows, features.reshape({-1, features.size(2)}), image_newline, policy);
}

PackedFeatures pack_rows_on_host(const Selection& selection, const at::Tensor& rows,
                                 const std::optional<at::Tensor>& image_newline,
                                 NewlinePolicy policy) {
  check(!selection.images.empty(), "selection: empty; call select() first");
  const PackPlan plan = pack_plan(selection, policy);
  std::vector<std::int64_t> ordinal(plan.rows.size());  // token rows count up, newlines -1
  std::int64_t next = 0;
  for (std::size_t r = 0; r < plan.rows.size(); ++r)
    ordinal[r] = plan.rows[r] == PackPlan::newline ? PackPlan::newline : next++;
  check(rows.defined() && rows.dim() == 2 && rows.size(0) == next && is_float(rows),
        "rows: shape {} dtype {} must be floating [K = {}, D]: the kept tokens that survive "
        "unpad, in packing order", rows.defined() ? shape_of(rows) : "undefined",
        rows.defined() ? dtype_of(rows) : "-", next);
  return lay_out(plan, ordinal, rows, image_newline, policy);
}

}  // namespace hired::detail

// The LibTorch adapter. The only translation unit of the library that includes torch.
// Selection runs on the host through the torch-free core; CUDA inputs are copied to the
// host for it until the CUDA kernels land, and results go back to the input's device.
#include "hired/token_dropper.hpp"

#include "hired/error.hpp"
#include "hired/scores.hpp"
#include "tensor_text.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <string_view>

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

}  // namespace

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

TokenDropper::TokenDropper(DropConfig config) : config_(config) { config_.validate(); }

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

  Selection host = select_tokens(head_sums(init_cls_attn, "init_cls_attn"),
                                 head_sums(final_cls_attn, "final_cls_attn"), std::move(layouts),
                                 vision, config_);

  std::vector<std::int64_t> budgets(static_cast<std::size_t>(rows));
  for (std::int64_t p = 0; p < rows; ++p) budgets[p] = host.budget(p);
  const at::Device device = init_cls_attn.device();
  TokenSelection out;
  out.budgets = to_tensor(budgets, device);
  out.kept = at::tensor(at::ArrayRef<std::int32_t>(host.kept), at::kInt).to(device, at::kLong);
  out.kept_offsets = to_tensor(host.kept_offsets, device);
  out.partition_offsets = to_tensor(host.partition_offsets, device);
  out.requested = to_tensor(host.requested, device);
  out.host = std::move(host);
  return out;
}

PackedFeatures TokenDropper::gather(const TokenSelection& selection, const at::Tensor& features,
                                    const std::optional<at::Tensor>& image_newline) const {
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
  return {packed, to_tensor(lengths, device), source};
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

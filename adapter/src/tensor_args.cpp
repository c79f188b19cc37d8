#include "tensor_args.hpp"

#include <ATen/ATen.h>

namespace hired::detail {

std::string_view dtype_of(const at::Tensor& t) { return c10::toString(t.scalar_type()); }

bool is_float(const at::Tensor& t) { return at::isFloatingType(t.scalar_type()); }

void check_attention(const at::Tensor& t, const char* name) {
  check(t.defined(), "{}: undefined tensor", name);
  check(t.dim() == 3, "{}: shape {} must be [sum P, H, N + 1]", name, shape_of(t));
  check(is_float(t), "{}: dtype {} must be floating point", name, dtype_of(t));
  check(t.numel() > 0, "{}: shape {} is empty", name, shape_of(t));
}

void check_query_keys(const QueryKeys& in, std::string_view name) {
  const std::string p = name.empty() ? std::string() : std::string(name) + ".";
  check(in.q.defined() && in.k.defined(), "{}q, {}k: undefined tensor", p, p);
  check(in.q.dim() == 3, "{}q: shape {} must be [sum P, N + 1, H * d]", p, shape_of(in.q));
  check(in.k.sizes() == in.q.sizes(), "{}k: shape {} differs from q's {}", p, shape_of(in.k),
        shape_of(in.q));
  check(is_float(in.q) && is_float(in.k), "{}q, {}k: dtypes {} and {} must be floating point", p,
        p, dtype_of(in.q), dtype_of(in.k));
  check(in.k.device() == in.q.device(), "{}k: on {}, but q is on {}", p, in.k.device().str(),
        in.q.device().str());
  check(in.q.numel() > 0, "{}q: shape {} is empty", p, shape_of(in.q));
  check(in.q.size(1) >= 2, "{}q: {} tokens; need the CLS token and at least one patch", p,
        in.q.size(1));
  check(in.heads > 0 && in.q.size(2) % in.heads == 0, "{}heads: {} does not divide the width {}",
        p, in.heads, in.q.size(2));
}

void check_features(const at::Tensor& features, std::int64_t rows, std::int64_t tokens) {
  check(features.defined(), "features: undefined tensor");
  check(features.dim() == 3 && features.size(0) == rows && features.size(1) == tokens,
        "features: shape {} must be [sum P = {}, N = {}, D]", shape_of(features), rows, tokens);
  check(is_float(features), "features: dtype {} must be floating point", dtype_of(features));
}

void check_newline(const std::optional<at::Tensor>& image_newline, const at::Tensor& features) {
  check(image_newline.has_value() && image_newline->defined(), "image_newline: undefined tensor");
  check(image_newline->dim() == 1 && image_newline->size(0) == features.size(-1),
        "image_newline: shape {} must be [D = {}]", shape_of(*image_newline), features.size(-1));
  check(is_float(*image_newline), "image_newline: dtype {} must be floating point",
        dtype_of(*image_newline));
  check(image_newline->device() == features.device(), "image_newline: on {}, but features are on {}",
        image_newline->device().str(), features.device().str());
}

std::vector<std::int64_t> host_ints(const at::Tensor& t, std::int64_t rows, std::int64_t cols,
                                    const char* name) {
  check(t.defined(), "{}: undefined tensor", name);
  check(at::isIntegralType(t.scalar_type(), /*includeBool=*/false),
        "{}: dtype {} must be an integer type", name, dtype_of(t));
  const bool shape_ok = cols == 0 ? (t.dim() == 1 && t.size(0) == rows)
                                  : (t.dim() == 2 && t.size(0) == rows && t.size(1) == cols);
  check(shape_ok, "{}: shape {} must be [{}{}]", name, shape_of(t), rows,
        cols == 0 ? std::string() : ", " + std::to_string(cols));
  const at::Tensor h = t.to(at::kCPU, at::kLong).contiguous();
  return {h.data_ptr<std::int64_t>(), h.data_ptr<std::int64_t>() + h.numel()};
}

at::Tensor long_tensor(const std::vector<std::int64_t>& values, const at::Device& device) {
  return at::tensor(at::ArrayRef<std::int64_t>(values), at::kLong).to(device);
}

at::Tensor channels_contiguous(const at::Tensor& t) {
  return t.stride(2) == 1 ? t : t.contiguous();
}

}  // namespace hired::detail

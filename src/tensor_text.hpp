// How the LibTorch adapter names tensors' shapes and dtypes in its error messages.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <string_view>

namespace hired::detail {

/// "[2, 3, 577]"
inline std::string shape_of(const at::Tensor& t) {
  std::string s = "[";
  for (std::int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

inline std::string_view dtype_of(const at::Tensor& t) { return c10::toString(t.scalar_type()); }

}  // namespace hired::detail

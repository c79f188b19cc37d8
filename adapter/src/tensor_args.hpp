// How the adapter reads its tensor arguments: the checks its entries share (each message names
// the argument) and the conversions between tensors and the core's host vectors.
#pragma once

#include "hired/error.hpp"
#include "hired/layout.hpp"
#include "hired/torch/token_dropper.hpp"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hired::detail {

inline std::string shape_of(const at::Tensor& t) { return shape_text(t.sizes()); }
std::string_view dtype_of(const at::Tensor& t);
bool is_float(const at::Tensor& t);

/// [sum P, H, N + 1] floating attention rows.
void check_attention(const at::Tensor& t, const char* name);
/// One layer's q and k: equal [sum P, N + 1, H * d] floating shapes on one device, H | width.
/// Messages name "<name>.q" etc. ("q" alone when `name` is empty).
void check_query_keys(const QueryKeys& in, std::string_view name);
/// `features` [rows, tokens, D], floating.
void check_features(const at::Tensor& features, std::int64_t rows, std::int64_t tokens);
/// `image_newline` [D] on the features' device, or what the policy needs is missing.
void check_newline(const std::optional<at::Tensor>& image_newline, const at::Tensor& features);

/// An integer tensor of shape [rows] (cols == 0) or [rows, cols], as host int64 values.
std::vector<std::int64_t> host_ints(const at::Tensor& t, std::int64_t rows, std::int64_t cols,
                                    const char* name);
at::Tensor long_tensor(const std::vector<std::int64_t>& values, const at::Device& device);
/// A view with unit channel stride (what the kernels and qk_scores read): as it is, or a copy.
at::Tensor channels_contiguous(const at::Tensor& t);

}  // namespace hired::detail

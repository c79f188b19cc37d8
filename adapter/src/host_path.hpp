// The CPU path: the core's selection and packing on host copies of the inputs, the results as
// tensors on the inputs' device. Also the fallback for CUDA tensors when hired is built
// without its kernels.
#pragma once

#include "hired/config.hpp"
#include "hired/layout.hpp"
#include "hired/selection.hpp"
#include "hired/torch/token_dropper.hpp"

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

namespace hired::detail {

/// The core's [sum P, N] scores of attention rows [sum P, H, N + 1] (heads summed in order).
std::vector<float> host_head_sums(const at::Tensor& attention, const char* name);

/// The core's scores from q/k (hired/qk_scores.hpp, rows spread over ATen's threads): init on
/// the full-image rows only (the rest 0: the budgets read no other), final on every row.
struct HostScores {
  std::vector<float> init, final;
};
HostScores host_qk_scores(const QueryKeys& init, const QueryKeys& final,
                          const std::vector<ImageLayout>& layouts);

/// Attention rows [sum P, H, N + 1] on the host by hired::qk_attention (rows spread over ATen's
/// threads).
at::Tensor host_qk_attention(const QueryKeys& qk);

/// A host selection as TokenSelection tensors on `device`.
TokenSelection selection_tensors(Selection host, const at::Device& device);

/// The kept features in packing order, gathered with ATen on the features' device.
PackedFeatures gather_on_host(const Selection& selection, const at::Tensor& features,
                              const std::optional<at::Tensor>& image_newline,
                              NewlinePolicy policy);

/// Rows in packing order without newlines, [K, D], laid out with newline rows by `policy`.
PackedFeatures pack_rows_on_host(const Selection& selection, const at::Tensor& rows,
                                 const std::optional<at::Tensor>& image_newline,
                                 NewlinePolicy policy);

}  // namespace hired::detail

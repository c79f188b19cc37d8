// The CUDA path: hired's kernels (hired/kernels/selection.cuh) on the current stream, in two
// launches for a whole batch. Compiled only when hired is built with nvcc against a CUDA
// LibTorch (HIRED_CUDA_DISPATCH).
#pragma once

#include "hired/config.hpp"
#include "hired/layout.hpp"
#include "hired/torch/token_dropper.hpp"

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

namespace hired::detail {

class PlanCache;

TokenSelection select_cuda(const at::Tensor& init_cls_attn, const at::Tensor& final_cls_attn,
                           std::vector<ImageLayout> layouts, const VisionGrid& vision,
                           const DropConfig& config, PlanCache& cache);
TokenSelection select_cuda(const QueryKeys& init, const QueryKeys& final,
                           std::vector<ImageLayout> layouts, const VisionGrid& vision,
                           const DropConfig& config, PlanCache& cache);

/// Whether gather_cuda packs these features (CUDA, f32/f16/bf16, D > 0); otherwise the host
/// plan packs them.
bool gathers_on_device(const DeviceSelection& selection, const at::Tensor& features);
PackedFeatures gather_cuda(const DeviceSelection& selection, const at::Tensor& features,
                           const std::optional<at::Tensor>& image_newline, NewlinePolicy policy);

/// Raises what a pack_kernel status word (PackedFeatures::status) reports; nothing for 0.
void raise_pack_status(unsigned status);

}  // namespace hired::detail

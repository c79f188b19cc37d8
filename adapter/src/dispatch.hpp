// TokenDropper's choice of path for packing, with the newline policy as an argument, so the
// LLaVA-Next splice can gather without newline rows and lay them out after the projector.
#pragma once

#include "hired/config.hpp"
#include "hired/torch/token_dropper.hpp"

#include <ATen/core/Tensor.h>

#include <optional>

namespace hired::detail {

/// CUDA kernels for a CUDA selection and CUDA features (f32/f16/bf16, D > 0), else the host plan.
PackedFeatures gather_features(const TokenSelection& selection, const at::Tensor& features,
                               const std::optional<at::Tensor>& image_newline,
                               NewlinePolicy policy);

}  // namespace hired::detail

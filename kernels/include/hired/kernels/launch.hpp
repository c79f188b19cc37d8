// Host entry points of hired_kernels (compiled by nvcc in kernels/src/instantiate.cu): the two
// launches of a batch's selection (hired/kernels/selection.cuh), each one kernel launch on the
// caller's stream, no allocation, no host synchronisation, so they can be captured in a CUDA
// graph. Each returns cudaErrorInvalidValue for parameters its kernel does not support
// (checked on the host; nothing is launched), otherwise the launch's status. Needs only the
// CUDA runtime API header, not a CUDA compiler.
#pragma once

#include "hired/kernels/params.hpp"

#include <cuda_runtime_api.h>

namespace hired::kernels {

/// Launch 1: select_kernel over sum P blocks, scoring attention rows or CLS queries and keys.
/// cudaErrorInvalidValue (nothing launched) unless selection_supports(...),
/// budget_rule_supported(params.rule) and input_supported(params.input) hold, the image and
/// workspace pointers are set and the workspace has SelectionWorkspace::layout(...).bytes.
/// Per-image problems are not checked here (the images are in device memory): plan_selection
/// checks them on its host copy.
cudaError_t launch_select(const SelectParams<AttentionInput<Element::f32>>& params,
                          cudaStream_t stream);
cudaError_t launch_select(const SelectParams<AttentionInput<Element::f16>>& params,
                          cudaStream_t stream);
cudaError_t launch_select(const SelectParams<AttentionInput<Element::bf16>>& params,
                          cudaStream_t stream);
cudaError_t launch_select(const SelectParams<QueryKeyInput<Element::f32>>& params,
                          cudaStream_t stream);
cudaError_t launch_select(const SelectParams<QueryKeyInput<Element::f16>>& params,
                          cudaStream_t stream);
cudaError_t launch_select(const SelectParams<QueryKeyInput<Element::bf16>>& params,
                          cudaStream_t stream);
/// Launch 2: pack_kernel over (sum P, ceil(dim / chunk)) blocks; `feature_bytes` is the size
/// of a feature element (2 for f16/bf16, 4 for f32; ignored without features). Same checks,
/// plus a status pointer; output capacities are the kernel's to check (status bits).
cudaError_t launch_pack(const PackParams& params, int feature_bytes, cudaStream_t stream);

}  // namespace hired::kernels

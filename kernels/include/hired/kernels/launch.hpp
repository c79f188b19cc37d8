// Host entry points of hired_kernels (compiled by nvcc in kernels/src/instantiate.cu): one
// kernel launch each on the caller's stream, no allocation, no host synchronisation, so they
// can be captured in a CUDA graph. Each returns cudaErrorInvalidValue for shapes its kernel
// does not support (checked on the host; nothing is launched), otherwise the launch's status.
// Needs only the CUDA runtime API header, not a CUDA compiler.
#pragma once

#include "hired/kernels/params.hpp"

#include <cuda_runtime_api.h>

namespace hired::kernels {

cudaError_t launch_cls_scores(const ClsScoresParams<Element::f32>& params, cudaStream_t stream);
cudaError_t launch_cls_scores(const ClsScoresParams<Element::f16>& params, cudaStream_t stream);
cudaError_t launch_cls_scores(const ClsScoresParams<Element::bf16>& params, cudaStream_t stream);
cudaError_t launch_cls_scores(const ClsScoresQkParams<Element::f32>& params, cudaStream_t stream);
cudaError_t launch_cls_scores(const ClsScoresQkParams<Element::f16>& params, cudaStream_t stream);
cudaError_t launch_cls_scores(const ClsScoresQkParams<Element::bf16>& params, cudaStream_t stream);
cudaError_t launch_topk(const TopKParams& params, cudaStream_t stream);
/// budget_kernel, one block per image; cudaErrorInvalidValue unless budget_supports(params).
/// Per-image problems are not checked here (the images are in device memory): run
/// budget_image_status on the host copy first.
cudaError_t launch_budgets(const BudgetParams& params, cudaStream_t stream);

/// The fused selection (hired/kernels/selection.cuh), launch 1: select_kernel over sum P
/// blocks, scoring attention rows or CLS queries and keys. cudaErrorInvalidValue (nothing
/// launched) unless selection_supports(...) and input_supported(params.input) hold, the image
/// and workspace pointers are set and the workspace has SelectionWorkspace::layout(...).bytes.
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

// Host entry points of hired_kernels (compiled by nvcc in kernels/src/instantiate.cu): the two
// launches of a batch's selection (hired/kernels/selection.cuh), each one kernel launch on the
// caller's stream, no allocation, no host synchronisation, so they can be captured in a CUDA
// graph. Each returns cudaErrorInvalidValue for parameters its kernel does not support
// (checked on the host; nothing is launched), otherwise the launch's status. Their parameters
// come from select_params / pack_params (hired/kernels/plan.hpp). Needs only the CUDA runtime
// API header, not a CUDA compiler.
#pragma once

#include "hired/kernels/params.hpp"

#include <cuda_runtime_api.h>

namespace hired::kernels {

/// Launch 1: select_kernel over sum P blocks, scoring attention rows or CLS queries and keys
/// (every Element of AttentionInput and QueryKeyInput). cudaErrorInvalidValue (nothing
/// launched) unless selection_supports(...), budget_rule_supported(params.rule) and
/// input_supported(params.input) hold, the image and workspace pointers are set and the
/// workspace has SelectionWorkspace::layout(...).bytes. Per-image problems are not checked
/// here (the images are in device memory): plan_selection checks them on its host copy.
template <SelectInput Input>
cudaError_t launch_select(const SelectParams<Input>& params, cudaStream_t stream);

/// Launch 2: pack_kernel over (sum P, ceil(dim / chunk)) blocks, copying feature words of
/// params.rows.element_bytes (2 or 4; not read without features). Same launch-wide checks,
/// plus a status pointer; output capacities are the kernel's to check (status bits).
cudaError_t launch_pack(const PackParams& params, cudaStream_t stream);

}  // namespace hired::kernels

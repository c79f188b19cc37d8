// The two kernels at their production block sizes, compiled by nvcc, and the launch functions
// declared in hired/kernels/launch.hpp.
#include "hired/kernels/launch.hpp"

#include "hired/kernels/selection.cuh"

namespace hired::kernels {

template __global__ void select_kernel<AttentionInput<Element::f32>, kSelectThreads>(
    SelectParams<AttentionInput<Element::f32>>);
template __global__ void select_kernel<AttentionInput<Element::f16>, kSelectThreads>(
    SelectParams<AttentionInput<Element::f16>>);
template __global__ void select_kernel<AttentionInput<Element::bf16>, kSelectThreads>(
    SelectParams<AttentionInput<Element::bf16>>);
template __global__ void select_kernel<QueryKeyInput<Element::f32>, kSelectThreads>(
    SelectParams<QueryKeyInput<Element::f32>>);
template __global__ void select_kernel<QueryKeyInput<Element::f16>, kSelectThreads>(
    SelectParams<QueryKeyInput<Element::f16>>);
template __global__ void select_kernel<QueryKeyInput<Element::bf16>, kSelectThreads>(
    SelectParams<QueryKeyInput<Element::bf16>>);
template __global__ void pack_kernel<std::uint16_t, kPackThreads>(PackParams);
template __global__ void pack_kernel<std::uint32_t, kPackThreads>(PackParams);

namespace {

template <class Input>
cudaError_t launch_fused_select(const SelectParams<Input>& p, cudaStream_t stream) {
  const BudgetRule& rule = p.rule;
  if (!selection_supports(p.partitions, p.image_count, rule.tokens, rule.side) ||
      !budget_rule_supported(rule) || !input_supported(p.input) || p.images == nullptr ||
      p.workspace == nullptr ||
      p.workspace_bytes < SelectionWorkspace::layout(p.partitions, rule.tokens, rule.side).bytes)
    return cudaErrorInvalidValue;
  select_kernel<Input, kSelectThreads><<<select_grid(p), kSelectThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_select(const SelectParams<AttentionInput<Element::f32>>& p,
                          cudaStream_t stream) {
  return launch_fused_select(p, stream);
}
cudaError_t launch_select(const SelectParams<AttentionInput<Element::f16>>& p,
                          cudaStream_t stream) {
  return launch_fused_select(p, stream);
}
cudaError_t launch_select(const SelectParams<AttentionInput<Element::bf16>>& p,
                          cudaStream_t stream) {
  return launch_fused_select(p, stream);
}
cudaError_t launch_select(const SelectParams<QueryKeyInput<Element::f32>>& p,
                          cudaStream_t stream) {
  return launch_fused_select(p, stream);
}
cudaError_t launch_select(const SelectParams<QueryKeyInput<Element::f16>>& p,
                          cudaStream_t stream) {
  return launch_fused_select(p, stream);
}
cudaError_t launch_select(const SelectParams<QueryKeyInput<Element::bf16>>& p,
                          cudaStream_t stream) {
  return launch_fused_select(p, stream);
}

cudaError_t launch_pack(const PackParams& p, int feature_bytes, cudaStream_t stream) {
  if (!selection_supports(p.partitions, p.image_count, p.tokens, p.side) || p.images == nullptr ||
      p.status == nullptr || p.workspace == nullptr ||
      p.workspace_bytes < SelectionWorkspace::layout(p.partitions, p.tokens, p.side).bytes ||
      (p.features != nullptr && (p.chunk <= 0 || p.dim <= 0 || pack_grid(p).y > 65535u)))
    return cudaErrorInvalidValue;
  if (p.features == nullptr || feature_bytes == 2)
    pack_kernel<std::uint16_t, kPackThreads><<<pack_grid(p), kPackThreads, 0, stream>>>(p);
  else if (feature_bytes == 4)
    pack_kernel<std::uint32_t, kPackThreads><<<pack_grid(p), kPackThreads, 0, stream>>>(p);
  else
    return cudaErrorInvalidValue;
  return cudaGetLastError();
}

}  // namespace hired::kernels

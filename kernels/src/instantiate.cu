// The kernels at their production block sizes, compiled by nvcc, and the launch functions
// declared in hired/kernels/launch.hpp. rows == 0 launches nothing.
#include "hired/kernels/launch.hpp"

#include "hired/kernels/block_topk.cuh"
#include "hired/kernels/budget.cuh"
#include "hired/kernels/cls_scores.cuh"
#include "hired/kernels/selection.cuh"

namespace hired::kernels {

template __global__ void cls_scores_kernel<Element::f32, kClsScoresThreads>(
    ClsScoresParams<Element::f32>);
template __global__ void cls_scores_kernel<Element::f16, kClsScoresThreads>(
    ClsScoresParams<Element::f16>);
template __global__ void cls_scores_kernel<Element::bf16, kClsScoresThreads>(
    ClsScoresParams<Element::bf16>);
template __global__ void cls_scores_qk_kernel<Element::f32, kClsScoresThreads>(
    ClsScoresQkParams<Element::f32>);
template __global__ void cls_scores_qk_kernel<Element::f16, kClsScoresThreads>(
    ClsScoresQkParams<Element::f16>);
template __global__ void cls_scores_qk_kernel<Element::bf16, kClsScoresThreads>(
    ClsScoresQkParams<Element::bf16>);
template __global__ void topk_kernel<kTopKThreads>(TopKParams);
template __global__ void budget_kernel<kBudgetThreads>(BudgetParams);
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

template <Element E>
cudaError_t launch_attention(const ClsScoresParams<E>& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.rows < 0 || p.heads <= 0 || p.tokens <= 0) return cudaErrorInvalidValue;
  cls_scores_kernel<E, kClsScoresThreads>
      <<<cls_scores_grid(p), kClsScoresThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <Element E>
cudaError_t launch_qk(const ClsScoresQkParams<E>& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (!cls_scores_qk_supports(p)) return cudaErrorInvalidValue;
  cls_scores_qk_kernel<E, kClsScoresThreads>
      <<<cls_scores_grid(p), kClsScoresThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

template <class Input>
cudaError_t launch_fused_select(const SelectParams<Input>& p, cudaStream_t stream) {
  const BudgetParams& b = p.budget;
  if (!selection_supports(p.partitions, b.image_count, b.tokens, b.side) || !budget_supports(b) ||
      !input_supported(p.input) || b.images == nullptr || p.workspace == nullptr ||
      p.workspace_bytes < SelectionWorkspace::layout(p.partitions, b.tokens, b.side).bytes)
    return cudaErrorInvalidValue;
  select_kernel<Input, kSelectThreads><<<select_grid(p), kSelectThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_cls_scores(const ClsScoresParams<Element::f32>& p, cudaStream_t stream) {
  return launch_attention(p, stream);
}
cudaError_t launch_cls_scores(const ClsScoresParams<Element::f16>& p, cudaStream_t stream) {
  return launch_attention(p, stream);
}
cudaError_t launch_cls_scores(const ClsScoresParams<Element::bf16>& p, cudaStream_t stream) {
  return launch_attention(p, stream);
}
cudaError_t launch_cls_scores(const ClsScoresQkParams<Element::f32>& p, cudaStream_t stream) {
  return launch_qk(p, stream);
}
cudaError_t launch_cls_scores(const ClsScoresQkParams<Element::f16>& p, cudaStream_t stream) {
  return launch_qk(p, stream);
}
cudaError_t launch_cls_scores(const ClsScoresQkParams<Element::bf16>& p, cudaStream_t stream) {
  return launch_qk(p, stream);
}

cudaError_t launch_topk(const TopKParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (!topk_supports(p)) return cudaErrorInvalidValue;
  topk_kernel<kTopKThreads><<<topk_grid(p), kTopKThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_budgets(const BudgetParams& p, cudaStream_t stream) {
  if (p.image_count == 0) return cudaSuccess;
  if (p.image_count < 0 || p.init_scores == nullptr || p.images == nullptr ||
      p.budgets == nullptr || !budget_supports(p))
    return cudaErrorInvalidValue;
  budget_kernel<kBudgetThreads><<<budget_grid(p), kBudgetThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

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

// The kernels at their production block sizes, compiled by nvcc, and the launch functions
// declared in hired/kernels/launch.hpp. rows == 0 launches nothing.
#include "hired/kernels/launch.hpp"

#include "hired/kernels/block_topk.cuh"
#include "hired/kernels/budget.cuh"
#include "hired/kernels/cls_scores.cuh"

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

}  // namespace hired::kernels

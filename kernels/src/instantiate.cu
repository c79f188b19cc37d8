// The two kernels at their production block sizes, compiled by nvcc, and the launch functions
// declared in hired/kernels/launch.hpp.
#include "hired/kernels/launch.hpp"

#include "hired/kernels/selection.cuh"

namespace hired::kernels {

template <SelectInput Input>
cudaError_t launch_select(const SelectParams<Input>& p, cudaStream_t stream) {
  const BudgetRule& rule = p.rule;
  if (!selection_supports(p.partitions, p.image_count, rule.tokens, rule.side) ||
      !budget_rule_supported(rule) || !input_supported(p.input) || p.images == nullptr ||
      p.workspace == nullptr ||
      p.workspace_bytes < SelectionWorkspace::layout(p.partitions, rule.tokens, rule.side).bytes)
    return cudaErrorInvalidValue;
  select_kernel<Input, kSelectThreads><<<select_grid(p), kSelectThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

// The inputs launch.hpp promises: both kinds, every element type.
#define HIRED_LAUNCH_SELECT(E)                                                              \
  template cudaError_t launch_select(const SelectParams<AttentionInput<E>>&, cudaStream_t); \
  template cudaError_t launch_select(const SelectParams<QueryKeyInput<E>>&, cudaStream_t);
HIRED_LAUNCH_SELECT(Element::f32)
HIRED_LAUNCH_SELECT(Element::f16)
HIRED_LAUNCH_SELECT(Element::bf16)
#undef HIRED_LAUNCH_SELECT

cudaError_t launch_pack(const PackParams& p, cudaStream_t stream) {
  const PackRows& rows = p.rows;
  const bool copies = rows.features != nullptr;
  if (!selection_supports(p.partitions, p.image_count, p.tokens, p.side) || p.images == nullptr ||
      p.status == nullptr || p.workspace == nullptr ||
      p.workspace_bytes < SelectionWorkspace::layout(p.partitions, p.tokens, p.side).bytes ||
      (copies && (p.chunk <= 0 || rows.dim <= 0 || pack_grid(p).y > 65535u)))
    return cudaErrorInvalidValue;
  // Without features no word is copied: either instantiation writes the same CSR and rows.
  if (!copies || rows.element_bytes == 2)
    pack_kernel<std::uint16_t, kPackThreads><<<pack_grid(p), kPackThreads, 0, stream>>>(p);
  else if (rows.element_bytes == 4)
    pack_kernel<std::uint32_t, kPackThreads><<<pack_grid(p), kPackThreads, 0, stream>>>(p);
  else
    return cudaErrorInvalidValue;
  return cudaGetLastError();
}

}  // namespace hired::kernels

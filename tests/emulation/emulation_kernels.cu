// nvcc's view of the kernels the emulation tests run: the kernel half of emulation_test.cpp
// (under __CUDACC__ only that half compiles) and the standalone kernels at their production
// block size, so the kernel text the emulator runs on the host is proven to build for the GPU
// too.
#include "emulation_test.cpp"
#include "standalone_kernels.cuh"

namespace hired::kernels::standalone {

#define HIRED_STANDALONE_SCORES(E)                                                  \
  template __global__ void cls_scores_kernel<E, kThreads>(ClsScoresParams<E>);      \
  template __global__ void cls_scores_qk_kernel<E, kThreads>(ClsScoresQkParams<E>);
HIRED_STANDALONE_SCORES(Element::f32)
HIRED_STANDALONE_SCORES(Element::f16)
HIRED_STANDALONE_SCORES(Element::bf16)
#undef HIRED_STANDALONE_SCORES
template __global__ void topk_kernel<kThreads>(TopKParams);
template __global__ void budget_kernel<kThreads>(BudgetParams);

}  // namespace hired::kernels::standalone

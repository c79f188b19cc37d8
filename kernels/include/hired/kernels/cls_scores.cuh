// CLS-row attention scores on the device (DESIGN §2): s[p][j] = sum over heads h = 0, 1, ...
// (ascending) of a[p][h][1 + j], the CLS query's attention to patch key j, in float.
//
// Two kernels, one thread block per partition row p: grid = cls_scores_grid(params),
// block = BlockThreads threads (kClsScoresThreads in production), no dynamic shared memory.
//
// - cls_scores_kernel: from given attention rows a[rows][heads][N + 1]. Score j is the float
//   sum ((0 + a[p][0][1+j]) + a[p][1][1+j]) + ..., exactly the additions hired::sum_heads
//   (hired/scores.hpp) performs, so the result is bit-identical to the CPU path for float32,
//   fp16 and bf16 inputs (16-bit values widen to float exactly). That needs IEEE addition with
//   subnormals: never build kernels with --use_fast_math or -ftz=true.
// - cls_scores_qk_kernel: from q and k [rows][N + 1][heads * head_dim], CLS query row (t = 0)
//   only. Per head: logits scale * (q_0 . k_t) over all N + 1 keys (t = 0 is CLS -> CLS), a
//   softmax over them in float (max-subtracted), then the patch keys' probabilities are added
//   to the scores in ascending head order. Dot products are fmaf chains in channel order (the
//   same on the GPU and in the emulator); expf and the block-wide max/sum differ from a
//   sequential CPU softmax, so this kernel is not bit-exact. Contract: every score's relative
//   error against the exact (real-number) value is at most
//   cls_scores_qk_relative_error_bound(...), checked by tests/emulation/kernels_test.cpp.
//
// Element types: Element::f32 reads float; Element::f16 / Element::bf16 read raw 16-bit
// patterns (std::uint16_t) converted with hired/half.hpp, so neither build needs CUDA's
// __half types. Validation costs no host synchronisation: pass `invalid` (a device word the
// caller zeroes) and the kernel ORs 1 into it when an input is out of contract (NaN, Inf or a
// negative attention value, as sum_heads rejects; a non-finite logit for q/k); the scores are
// then written but meaningless. It ORs 2 (and writes nothing) when cls_scores_qk_kernel gets a
// shape beyond its template limits or a block that is not BlockThreads wide.
#pragma once

#include "hired/kernels/device.hpp"
#include "hired/kernels/params.hpp"

#include <cmath>
#include <cstdint>

namespace hired::kernels {

/// One block per partition row.
template <class Params>
inline dim3 cls_scores_grid(const Params& params) {
  return dim3(static_cast<unsigned>(params.rows));
}

namespace detail {

struct MaxOp {
  HIRED_DEVICE float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  HIRED_DEVICE float operator()(float a, float b) const { return a + b; }
};

/// Block-wide reduction whose result is bit-identical in every thread: a xor butterfly per
/// warp (both partners of each step combine the same two values, and op is commutative), then
/// every thread folds the warp partials in warp order. `partials` (kWarps floats of shared
/// memory) may be reused once every thread has passed a later __syncthreads.
template <int BlockThreads, class Op>
HIRED_DEVICE float block_all_reduce(float value, float* partials, Op op) {
  for (int offset = 16; offset > 0; offset /= 2)
    value = op(value, __shfl_xor_sync(0xffffffffu, value, offset));
  if (threadIdx.x % 32 == 0) partials[threadIdx.x / 32] = value;
  __syncthreads();
  float result = partials[0];
  for (int w = 1; w < BlockThreads / 32; ++w) result = op(result, partials[w]);
  return result;
}

// NaN fails both comparisons.
HIRED_DEVICE bool finite_non_negative(float v) { return v >= 0.0f && v <= 3.40282347e38f; }
HIRED_DEVICE bool finite(float v) { return v >= -3.40282347e38f && v <= 3.40282347e38f; }

}  // namespace detail

/// Scores from attention rows; see the file comment. Thread t handles keys t, t + BlockThreads,
/// ... (coalesced per head); key 0 is only validated.
template <Element E, int BlockThreads>
HIRED_KERNEL void __launch_bounds__(BlockThreads) cls_scores_kernel(const ClsScoresParams<E> p) {
  static_assert(BlockThreads >= 32 && BlockThreads <= 1024);
  const std::int64_t row = blockIdx.x;
  const storage_t<E>* attention = p.attention + row * p.row_stride;
  bool bad = false;
  for (std::int32_t key = threadIdx.x; key <= p.tokens; key += BlockThreads) {
    float sum = 0.0f;  // sum_heads' accumulator starts at +0 too
    for (std::int32_t h = 0; h < p.heads; ++h) {
      const float v = to_float<E>(attention[h * p.head_stride + key]);
      bad |= !detail::finite_non_negative(v);
      sum += v;
    }
    if (key > 0) p.scores[row * p.score_stride + key - 1] = sum;
  }
  if (bad && p.invalid != nullptr) atomicOr(p.invalid, 1u);
}

/// Scores from the CLS query and the keys; see the file comment. Requires
/// cls_scores_qk_supports<MaxTokens, MaxHeadDim>(p) and blockDim.x == BlockThreads.
template <Element E, int BlockThreads, int MaxTokens = kClsScoresQkMaxTokens,
          int MaxHeadDim = kClsScoresQkMaxHeadDim>
HIRED_KERNEL void __launch_bounds__(BlockThreads)
    cls_scores_qk_kernel(const ClsScoresQkParams<E> p) {
  static_assert(BlockThreads % 32 == 0 && BlockThreads >= 32 && BlockThreads <= 1024,
                "whole warps: the reductions use full-warp shuffles");
  constexpr int kWarps = BlockThreads / 32;
  // Thread t owns keys t, t + BlockThreads, ...: their logits and head sums stay in registers.
  constexpr int kKeysPerThread = (MaxTokens + 1 + BlockThreads - 1) / BlockThreads;
  __shared__ float q_head[MaxHeadDim];
  __shared__ float max_partials[kWarps];
  __shared__ float sum_partials[kWarps];
  if (!(p.tokens > 0 && p.tokens <= MaxTokens && p.heads > 0 && p.head_dim > 0 &&
        p.head_dim <= MaxHeadDim && blockDim.x == BlockThreads)) {
    // Checked on the host; with device asserts compiled out, fail visibly, write nothing.
    HIRED_KERNEL_ASSERT(!"cls_scores_qk_kernel: unsupported shape or block size");
    if (p.invalid != nullptr && threadIdx.x == 0) atomicOr(p.invalid, 2u);
    return;
  }

  const std::int64_t row = blockIdx.x;
  const std::int32_t keys = p.tokens + 1;
  const storage_t<E>* q = p.q + row * p.q_row_stride;
  const storage_t<E>* k = p.k + row * p.k_row_stride;
  float score[kKeysPerThread];
  float value[kKeysPerThread];
  HIRED_UNROLL
  for (int i = 0; i < kKeysPerThread; ++i) score[i] = value[i] = 0.0f;
  bool bad = false;

  for (std::int32_t h = 0; h < p.heads; ++h) {
    // Safe to overwrite: every thread finished the previous head's dot products before the
    // previous max reduction's barrier.
    for (std::int32_t c = threadIdx.x; c < p.head_dim; c += BlockThreads)
      q_head[c] = to_float<E>(q[h * p.head_dim + c]);
    __syncthreads();

    float local_max = __uint_as_float(0xff800000u);  // -Inf
    HIRED_UNROLL
    for (int i = 0; i < kKeysPerThread; ++i) {
      const std::int32_t t = static_cast<std::int32_t>(threadIdx.x) + i * BlockThreads;
      if (t >= keys) continue;
      const storage_t<E>* kt = k + t * p.k_token_stride + h * p.head_dim;
      float dot = 0.0f;
      for (std::int32_t c = 0; c < p.head_dim; ++c) dot = fmaf(q_head[c], to_float<E>(kt[c]), dot);
      value[i] = dot * p.scale;
      bad |= !detail::finite(value[i]);
      local_max = fmaxf(local_max, value[i]);
    }
    const float max = detail::block_all_reduce<BlockThreads>(local_max, max_partials,
                                                              detail::MaxOp{});

    float local_sum = 0.0f;
    HIRED_UNROLL
    for (int i = 0; i < kKeysPerThread; ++i) {
      const std::int32_t t = static_cast<std::int32_t>(threadIdx.x) + i * BlockThreads;
      if (t >= keys) continue;
      value[i] = expf(value[i] - max);
      local_sum += value[i];
    }
    const float sum = detail::block_all_reduce<BlockThreads>(local_sum, sum_partials,
                                                              detail::SumOp{});
    HIRED_UNROLL
    for (int i = 0; i < kKeysPerThread; ++i) {
      const std::int32_t t = static_cast<std::int32_t>(threadIdx.x) + i * BlockThreads;
      if (t >= 1 && t < keys) score[i] += value[i] / sum;
    }
  }

  HIRED_UNROLL
  for (int i = 0; i < kKeysPerThread; ++i) {
    const std::int32_t t = static_cast<std::int32_t>(threadIdx.x) + i * BlockThreads;
    if (t >= 1 && t < keys) p.scores[row * p.score_stride + t - 1] = score[i];
  }
  if (bad && p.invalid != nullptr) atomicOr(p.invalid, 1u);
}

}  // namespace hired::kernels

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

#include "hired/half.hpp"
#include "hired/host_device.hpp"
#include "hired/kernels/device.hpp"

#include <cmath>
#include <cstdint>

namespace hired::kernels {

/// Element type of the kernels' 16/32-bit float inputs.
enum class Element { f32, f16, bf16 };

template <Element E>
struct ElementStorage {
  using type = std::uint16_t;  // raw fp16 / bf16 bits
};
template <>
struct ElementStorage<Element::f32> {
  using type = float;
};
template <Element E>
using storage_t = typename ElementStorage<E>::type;

/// An input element widened to float (exact for every element type).
template <Element E>
HIRED_HOST_DEVICE inline float to_float(storage_t<E> value) {
  if constexpr (E == Element::f32) return value;
  else if constexpr (E == Element::f16) return half_to_float(value);
  else return bf16_to_float(value);
}

/// Production block size of both kernels.
inline constexpr int kClsScoresThreads = 256;
/// Largest N (patch tokens per partition) and head_dim cls_scores_qk_kernel is instantiated
/// for by default; LLaVA-Next's CLIP ViT-L/14-336 has N = 576, head_dim = 64.
inline constexpr int kClsScoresQkMaxTokens = 1024;
inline constexpr int kClsScoresQkMaxHeadDim = 256;

/// cls_scores_qk_kernel's accuracy contract: the relative error of every score, given
/// L = logit_bound >= scale * sum_c |q_c * k_tc| over all keys t and heads (which bounds both
/// the logits and their rounding error), as long as every logit lies in [-40, 40] (so that no
/// probability underflows). With u = 2^-24: the fmaf dot and
/// the scaling are off by at most (d + 1) u L, a max-subtracted logit by 2 (d + 2) u L, which
/// is the relative error of its exponential, plus 2 ulp (4 u) for expf; the sum over N + 1 keys
/// adds N u, the division u, the head sum H u. First order, that is
/// u (4 (d + 2) L + N + H + 9); the bound doubles it for the higher-order terms.
HIRED_HOST_DEVICE constexpr double cls_scores_qk_relative_error_bound(int head_dim, int tokens,
                                                                      int heads,
                                                                      double logit_bound) {
  constexpr double u = 1.0 / 16777216.0;
  return 2.0 * u * (4.0 * (head_dim + 2) * logit_bound + tokens + heads + 9);
}

/// Parameters of cls_scores_kernel. Element (p, h, t) of the attention rows is at
/// attention[p * row_stride + h * head_stride + t] (t = 0..tokens, 0 is the CLS key), score
/// (p, j) at scores[p * score_stride + j].
template <Element E>
struct ClsScoresParams {
  const storage_t<E>* attention = nullptr;
  std::int64_t row_stride = 0;
  std::int64_t head_stride = 0;
  float* scores = nullptr;
  std::int64_t score_stride = 0;
  std::int32_t rows = 0;
  std::int32_t heads = 0;
  std::int32_t tokens = 0;  // N; each head row has N + 1 keys
  unsigned* invalid = nullptr;  // optional, see the file comment

  /// Contiguous [rows, heads, N + 1] attention and [rows, N] scores.
  static ClsScoresParams contiguous(const storage_t<E>* attention, float* scores,
                                    std::int32_t rows, std::int32_t heads, std::int32_t tokens,
                                    unsigned* invalid = nullptr) {
    const std::int64_t keys = std::int64_t{tokens} + 1;
    return {.attention = attention, .row_stride = heads * keys, .head_stride = keys,
            .scores = scores, .score_stride = tokens, .rows = rows, .heads = heads,
            .tokens = tokens, .invalid = invalid};
  }
};

/// Parameters of cls_scores_qk_kernel. Channel c = h * head_dim + i of row p's CLS query is
/// q[p * q_row_stride + c] (token 0 of q; no other token is read), of its key t
/// k[p * k_row_stride + t * k_token_stride + c]; score (p, j) is scores[p * score_stride + j].
template <Element E>
struct ClsScoresQkParams {
  const storage_t<E>* q = nullptr;
  std::int64_t q_row_stride = 0;
  const storage_t<E>* k = nullptr;
  std::int64_t k_row_stride = 0;
  std::int64_t k_token_stride = 0;
  float* scores = nullptr;
  std::int64_t score_stride = 0;
  std::int32_t rows = 0;
  std::int32_t heads = 0;
  std::int32_t head_dim = 0;
  std::int32_t tokens = 0;  // N; N + 1 keys
  float scale = 0.0f;       // logit scale; 1 / sqrt(head_dim) for standard attention
  unsigned* invalid = nullptr;  // optional, see the file comment

  /// Contiguous q, k [rows, N + 1, heads * head_dim], [rows, N] scores, scale 1/sqrt(d).
  static ClsScoresQkParams contiguous(const storage_t<E>* q, const storage_t<E>* k,
                                      float* scores, std::int32_t rows, std::int32_t heads,
                                      std::int32_t head_dim, std::int32_t tokens,
                                      unsigned* invalid = nullptr) {
    const std::int64_t width = std::int64_t{heads} * head_dim;
    const std::int64_t row = (std::int64_t{tokens} + 1) * width;
    return {.q = q, .q_row_stride = row, .k = k, .k_row_stride = row, .k_token_stride = width,
            .scores = scores, .score_stride = tokens, .rows = rows, .heads = heads,
            .head_dim = head_dim, .tokens = tokens,
            .scale = 1.0f / std::sqrt(static_cast<float>(head_dim)), .invalid = invalid};
  }
};

/// One block per partition row.
template <class Params>
inline dim3 cls_scores_grid(const Params& params) {
  return dim3(static_cast<unsigned>(params.rows));
}

/// Whether cls_scores_qk_kernel<E, Threads, MaxTokens, MaxHeadDim> accepts these shapes (the
/// kernel asserts it too; a host dispatcher checks first).
template <int MaxTokens = kClsScoresQkMaxTokens, int MaxHeadDim = kClsScoresQkMaxHeadDim,
          Element E>
inline bool cls_scores_qk_supports(const ClsScoresQkParams<E>& p) {
  return p.rows > 0 && p.heads > 0 && p.tokens > 0 && p.tokens <= MaxTokens &&
         p.head_dim > 0 && p.head_dim <= MaxHeadDim;
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

// CLS-row scores on the device (docs/DESIGN.md, section 2): s[p][j] = sum over heads h = 0, 1,
// ... (ascending) of a[p][h][1 + j], the CLS query's attention to patch key j, in float. Two
// block-level building blocks (CUB style) of select_kernel (selection.cuh), one per input:
//
// - block_head_sums: from given attention rows a[heads][N + 1]. Score j is the float sum
//   ((0 + a[0][1+j]) + a[1][1+j]) + ..., exactly the additions hired::sum_heads
//   (hired/scores.hpp) performs, so the result is bit-identical to the CPU path for float32,
//   fp16 and bf16 inputs (16-bit values widen to float exactly). That needs IEEE addition with
//   subnormals: never build kernels with --use_fast_math or -ftz=true.
// - BlockQkScores: from q and k [N + 1][heads * head_dim], CLS query row (t = 0) only, by the
//   arithmetic hired/qk_scores.hpp specifies (fma dot products in channel order, a
//   max-subtracted softmax with qk_math::exp_nonpositive, the lane-strided sum of 32 partials,
//   heads added in ascending order). Each operation is one IEEE rounding, never fused, so
//   the scores equal hired::qk_scores' bit for bit on any GPU and in the emulator.
//
// Element types: Element::f32 reads float; Element::f16 / Element::bf16 read raw 16-bit
// patterns (std::uint16_t) converted with hired/half.hpp, so neither build needs CUDA's
// __half types. Both report, per thread, whether their inputs were in contract (finite and
// non-negative attention, as sum_heads requires; finite q/k logits): the scores are then
// written but meaningless, and select_kernel flags status::invalid_input.
#pragma once

#include "hired/kernels/device.hpp"
#include "hired/kernels/params.hpp"
#include "hired/qk_math.hpp"

#include <cmath>
#include <cstdint>

namespace hired::kernels {

namespace detail {

// NaN fails both comparisons.
HIRED_DEVICE bool finite_non_negative(float v) { return v >= 0.0f && v <= 3.40282347e38f; }

}  // namespace detail

/// One attention row's scores, by the block.
///
/// Contract of block_head_sums<E, BlockThreads>(attention, head_stride, heads, tokens, out):
/// - Called by all BlockThreads threads of a 1-D block (blockDim.x == BlockThreads) with
///   block-uniform arguments; heads > 0, tokens > 0. Head h's key t is at
///   attention[h * head_stride + t], t = 0..tokens (0: the CLS key).
/// - Thread t handles keys t, t + BlockThreads, ... (coalesced per head), summing the heads
///   from +0 in ascending order as sum_heads does, and writes score j to out[j] (global or
///   shared memory) for key 1 + j; key 0 is only validated; out may be null to validate only.
/// - Returns, per thread, whether every value it read was finite and non-negative; OR it over
///   the block for the row's verdict.
/// - No barrier and no shared memory: read other threads' scores only after a barrier.
template <Element E, int BlockThreads>
HIRED_DEVICE bool block_head_sums(const storage_t<E>* attention, std::int64_t head_stride,
                                  int heads, int tokens, float* out) {
  bool valid = true;
  for (std::int64_t key = threadIdx.x; key <= tokens; key += BlockThreads) {
    float sum = 0.0f;
    for (int h = 0; h < heads; ++h) {
      const float v = to_float<E>(attention[h * head_stride + key]);
      valid = valid && detail::finite_non_negative(v);
      sum += v;
    }
    if (key > 0 && out != nullptr) out[key - 1] = sum;
  }
  return valid;
}

namespace detail {

/// Sixteen bytes of input elements, loaded at once. On the host (the emulator) the type may
/// alias the element arrays it is read from.
template <class T>
struct alignas(16)
#if HIRED_EMULATED
    [[gnu::may_alias]]
#endif
    Vector16 {
  static constexpr int kSize = 16 / static_cast<int>(sizeof(T));
  T v[kSize];
};

}  // namespace detail

/// The scores of one row from its CLS query and keys, as hired::qk_row_scores computes them.
///
/// Contract of scores<E>(q, k, k_token_stride, heads, head_dim, tokens, scale, out):
/// - Called by all BlockThreads threads of a 1-D block (blockDim.x == BlockThreads, whole
///   warps) with block-uniform arguments; 0 < tokens <= MaxTokens, heads > 0,
///   0 < head_dim <= MaxHeadDim. q points at the row's CLS query (channel c at q[c]), k at its
///   key 0 (key t's channel c at k[t * k_token_stride + c]).
/// - Writes score j to out[j] (global or shared memory) from the thread that owns key 1 + j,
///   after its last barrier: read other threads' scores only after a barrier.
/// - Returns, per thread, whether every logit that thread computed was finite; OR it over the
///   block (__syncthreads_or) for the row's verdict. Non-finite logits leave meaningless
///   scores, never a fault.
/// - Barriers: 1 + 3 per head. Consecutive calls on the same TempStorage need no barrier in
///   between.
/// Thread t owns keys t, t + BlockThreads, ...: their logits, exponentials and head sums stay
/// in registers; per head the block reduces the maximum (warp butterflies + one partial per
/// warp) and warp 0 forms the lane-strided sum from the exponentials in shared memory. The
/// next head's query is loaded while warp 0 sums. A key's head slice is read 16 bytes at a time
/// when k, its token stride and head_dim allow it (a contiguous or qkv-chunked fp16 k does),
/// else element by element; the products are added in channel order either way.
template <int BlockThreads, int MaxTokens = kSelectMaxTokens, int MaxHeadDim = kSelectMaxHeadDim>
class BlockQkScores {
 public:
  static_assert(BlockThreads % 32 == 0 && BlockThreads >= 32 && BlockThreads <= 1024,
                "whole warps: the reductions use full-warp shuffles");
  static_assert(qk_math::kLanes == 32, "the lane-strided sum is one warp's");
  static constexpr int kWarps = BlockThreads / 32;
  static constexpr int kKeysPerThread = (MaxTokens + 1 + BlockThreads - 1) / BlockThreads;

  struct TempStorage {
    float query[2][MaxHeadDim];       // this head's and the next head's CLS query
    float exponentials[MaxTokens + 1];
    float warp_max[kWarps];
    float total;
  };

  HIRED_DEVICE explicit BlockQkScores(TempStorage& storage) : s_(storage) {}

  template <Element E>
  HIRED_DEVICE bool scores(const storage_t<E>* q, const storage_t<E>* k,
                           std::int64_t k_token_stride, int heads, int head_dim, int tokens,
                           float scale, float* out) {
    using namespace qk_math;
    HIRED_KERNEL_ASSERT(tokens > 0 && tokens <= MaxTokens && heads > 0 && head_dim > 0 &&
                        head_dim <= MaxHeadDim && blockDim.x == BlockThreads);
    const int tid = static_cast<int>(threadIdx.x), lane = tid % 32;
    const int keys = tokens + 1;
    using Vector = detail::Vector16<storage_t<E>>;
    constexpr int kVector = Vector::kSize;
    const bool vectors = head_dim % kVector == 0 && k_token_stride % kVector == 0 &&
                         reinterpret_cast<std::uintptr_t>(k) % 16 == 0;
    float score[kKeysPerThread];
    float value[kKeysPerThread];
    HIRED_UNROLL
    for (int i = 0; i < kKeysPerThread; ++i) score[i] = value[i] = 0.0f;
    bool all_finite = true;

    for (int c = tid; c < head_dim; c += BlockThreads) s_.query[0][c] = to_float<E>(q[c]);
    __syncthreads();
    for (int h = 0; h < heads; ++h) {
      const float* query = s_.query[h & 1];
      float local_max = -3.40282347e38f;
      HIRED_UNROLL
      for (int i = 0; i < kKeysPerThread; ++i) {
        const int t = tid + i * BlockThreads;
        if (t >= keys) continue;
        const storage_t<E>* key = k + t * k_token_stride + static_cast<std::int64_t>(h) * head_dim;
        float dot = 0.0f;
        if (vectors) {
          for (int c0 = 0; c0 < head_dim; c0 += kVector) {
            const Vector chunk = *reinterpret_cast<const Vector*>(key + c0);
            HIRED_UNROLL
            for (int j = 0; j < kVector; ++j)
              dot = fma(query[c0 + j], to_float<E>(chunk.v[j]), dot);
          }
        } else {
          for (int c = 0; c < head_dim; ++c) dot = fma(query[c], to_float<E>(key[c]), dot);
        }
        value[i] = mul(dot, scale);
        all_finite = all_finite && finite(value[i]);
        local_max = fmaxf(local_max, value[i]);
      }
      for (int step = 16; step > 0; step /= 2)
        local_max = fmaxf(local_max, __shfl_xor_sync(0xffffffffu, local_max, step));
      if (lane == 0) s_.warp_max[tid / 32] = local_max;
      __syncthreads();  // every warp's maximum published
      float max = s_.warp_max[0];
      for (int w = 1; w < kWarps; ++w) max = fmaxf(max, s_.warp_max[w]);
      HIRED_UNROLL
      for (int i = 0; i < kKeysPerThread; ++i) {
        const int t = tid + i * BlockThreads;
        if (t >= keys) continue;
        value[i] = exp_nonpositive(add(value[i], -max));
        s_.exponentials[t] = value[i];
      }
      __syncthreads();  // the exponentials complete
      if (tid < 32) {
        float partial = 0.0f;
        for (int t = lane; t < keys; t += 32) partial = add(partial, s_.exponentials[t]);
        for (int step = 16; step > 0; step /= 2)
          partial = add(partial, __shfl_xor_sync(0xffffffffu, partial, step));
        if (lane == 0) s_.total = partial;
      }
      if (h + 1 < heads)
        for (int c = tid; c < head_dim; c += BlockThreads)
          s_.query[(h + 1) & 1][c] = to_float<E>(q[(h + 1) * head_dim + c]);
      __syncthreads();  // the total and the next query published
      const float total = s_.total;
      HIRED_UNROLL
      for (int i = 0; i < kKeysPerThread; ++i) {
        const int t = tid + i * BlockThreads;
        if (t >= 1 && t < keys) score[i] = add(score[i], div(value[i], total));
      }
    }
    HIRED_UNROLL
    for (int i = 0; i < kKeysPerThread; ++i) {
      const int t = tid + i * BlockThreads;
      if (t >= 1 && t < keys) out[t - 1] = score[i];
    }
    return all_finite;
  }

 private:
  TempStorage& s_;
};

}  // namespace hired::kernels

// Per-partition top-k on the device: BlockTopK, a block-level building block (CUB style) of
// select_kernel (selection.cuh) and BlockBudget (budget.cuh).
//
// Contract of BlockTopK<BlockThreads, MaxTokens>::select(scores, n, k, eligible, out):
// - Called by all BlockThreads threads of a 1-D block (blockDim.x == BlockThreads, a multiple
//   of 32), with block-uniform arguments; n <= MaxTokens (default kSelectMaxTokens = 1024;
//   LLaVA-Next has N = 576).
// - Among the tokens j in [0, n) that `eligible` admits, picks the min(max(k, 0), eligible
//   count) best-ranked ones: higher score first, the LOWER INDEX on equal scores — exactly
//   hired::top_k_ascending (hired/topk.hpp). Writes their indices to out[0, count) in
//   ASCENDING order, returns count in every thread, and writes nothing else.
// - Scores are read from global or shared memory. They should be finite (the CLS scores are
//   finite and >= 0); -0 ranks equal to +0 as float comparison says, negative values order
//   correctly. A NaN is out of contract (the result is then some deterministic set).
// - TempStorage is static shared memory the caller declares (`__shared__ typename
//   BlockTopK<...>::TempStorage storage;`). Consecutive select calls on the same storage need
//   no barrier in between: every shared write of a call comes after a barrier that all threads
//   reach only once they are done with the previous call's shared reads.
//
// Method: the scores map to order-preserving unsigned keys (order_key). A radix select, most
// significant 8-bit digit first, finds the class of the k-th best key: per digit a shared
// histogram (shared atomics) of the keys still in the running, a block-wide scan over the 256
// bins in descending digit order, and the one thread whose bin holds the k-th key publishes it.
// It stops early once a whole class is taken. Then one block-wide exclusive scan over packed
// (above, tied) counts gives every thread its output positions: tokens are owned in contiguous
// runs (thread t owns [t * chunk, (t + 1) * chunk)), so index order is thread order, the tied
// tokens with the lowest indices win, and the kept indices come out ascending with no sort.
// Barriers per call: none for k <= 0, 4 + 1 when k >= the eligible count (everything kept),
// at most 4 * 4 + 1 otherwise. Warp scans use __shfl_up_sync only (sm_30+), so the code is
// the same for sm_61 (P40) through sm_90.
#pragma once

#include "hired/kernels/device.hpp"
#include "hired/kernels/params.hpp"

#include <cstdint>

namespace hired::kernels {

/// Maps a float to an unsigned key with the same order (a < b  <=>  key(a) < key(b) for
/// non-NaN floats); -0 maps to +0's key because the two compare equal.
HIRED_HOST_DEVICE constexpr std::uint32_t order_key(float score) {
  std::uint32_t bits = detail::float_bits(score);
  if (bits == 0x80000000u) bits = 0;
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

template <int BlockThreads, int MaxTokens = kSelectMaxTokens>
class BlockTopK {
 public:
  static_assert(BlockThreads % 32 == 0 && BlockThreads >= 32 && BlockThreads <= 1024,
                "whole warps: the scans use full-warp shuffles");
  static_assert(MaxTokens > 0 && MaxTokens < 65536, "counts are packed in 16 bits");
  static constexpr int kItemsPerThread = (MaxTokens + BlockThreads - 1) / BlockThreads;
  static_assert(kItemsPerThread <= 32, "eligibility is a 32-bit mask per thread");

  struct TempStorage {
    unsigned histogram[256];
    unsigned warp_totals[BlockThreads / 32];
    unsigned digit, greater, in_bin;  // the published decision of a radix pass
  };

  HIRED_DEVICE explicit BlockTopK(TempStorage& storage) : s_(storage) {}

  HIRED_DEVICE int select(const float* scores, int n, int k, Eligibility eligible,
                          std::int32_t* out) {
    HIRED_KERNEL_ASSERT(n >= 0 && n <= MaxTokens && blockDim.x == BlockThreads);
    HIRED_KERNEL_ASSERT(eligible.side == 0 || eligible.side * eligible.side == n);
    const int tid = static_cast<int>(threadIdx.x);
    const int chunk = (n + BlockThreads - 1) / BlockThreads;  // <= kItemsPerThread
    const int first = tid * chunk;

    std::uint32_t key[kItemsPerThread];
    unsigned mine = 0;  // bit i: token first + i exists and is eligible
    HIRED_UNROLL
    for (int i = 0; i < kItemsPerThread; ++i) {
      key[i] = 0;
      const int token = first + i;
      if (i < chunk && token < n && eligible.admits(token)) {
        key[i] = order_key(scores[token]);
        mine |= 1u << i;
      }
    }
    if (k <= 0) return 0;

    // Radix select. Invariant: the keys whose `mask` bits equal `prefix` are still in the
    // running, and the k-th best key is the need-th best of them.
    std::uint32_t prefix = 0, mask = 0;
    unsigned need = static_cast<unsigned>(k);
    for (int shift = 24;; shift -= 8) {
      for (int b = tid; b < 256; b += BlockThreads) s_.histogram[b] = 0;
      __syncthreads();
      HIRED_UNROLL
      for (int i = 0; i < kItemsPerThread; ++i)
        if ((mine >> i & 1u) != 0 && (key[i] & mask) == prefix)
          atomicAdd(&s_.histogram[key[i] >> shift & 0xffu], 1u);
      __syncthreads();

      // Bins in descending digit order: slot r is digit 255 - r, so an exclusive scan counts
      // the keys with a greater digit.
      constexpr int kSlots = (256 + BlockThreads - 1) / BlockThreads;
      unsigned local = 0;
      for (int r = tid * kSlots; r < (tid + 1) * kSlots && r < 256; ++r)
        local += s_.histogram[255 - r];
      unsigned total = 0;
      unsigned greater = exclusive_sum(local, total);
      if (need == 0 || total == 0) return 0;  // block-uniform, as total is
      if (shift == 24 && total <= need) {     // k >= eligible: keep them all, no more passes
        need = total;                          // (mask 0: every eligible key is in the class)
        __syncthreads();  // warp_totals is written again below
        break;
      }
      for (int r = tid * kSlots; r < (tid + 1) * kSlots && r < 256; ++r) {
        const unsigned in_bin = s_.histogram[255 - r];
        if (greater < need && greater + in_bin >= need) {  // exactly one bin in the block
          s_.digit = static_cast<unsigned>(255 - r);
          s_.greater = greater;
          s_.in_bin = in_bin;
        }
        greater += in_bin;
      }
      __syncthreads();  // the decision published
      prefix |= s_.digit << shift;
      mask |= 0xffu << shift;
      need -= s_.greater;
      if (s_.in_bin == need || shift == 0) break;  // whole class taken, or exact ties left
    }

    // Selection: keys above the class are kept; of the class (ties), the `need` lowest
    // indices. Packed per-thread counts: above << 16 | tied.
    unsigned packed = 0;
    HIRED_UNROLL
    for (int i = 0; i < kItemsPerThread; ++i) {
      if ((mine >> i & 1u) == 0) continue;
      const std::uint32_t masked = key[i] & mask;
      packed += masked > prefix ? 0x10000u : masked == prefix ? 1u : 0u;
    }
    unsigned total = 0;
    const unsigned before = exclusive_sum(packed, total);
    unsigned above = before >> 16, tied = before & 0xffffu;
    HIRED_UNROLL
    for (int i = 0; i < kItemsPerThread; ++i) {
      if (i >= chunk || (mine >> i & 1u) == 0) continue;
      const std::uint32_t masked = key[i] & mask;
      if (masked > prefix) {
        out[above + (tied < need ? tied : need)] = first + i;
        ++above;
      } else if (masked == prefix) {
        if (tied < need) out[above + tied] = first + i;
        ++tied;
      }
    }
    return static_cast<int>((total >> 16) + need);
  }

 private:
  // Block-wide exclusive prefix sum of one value per thread, in thread order; `total` gets
  // the block's sum. Reads warp_totals after a barrier, so a later write to it must come
  // after another barrier (true for every use in select).
  HIRED_DEVICE unsigned exclusive_sum(unsigned value, unsigned& total) {
    const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    unsigned inclusive = value;
    for (unsigned d = 1; d < 32; d *= 2) {
      const unsigned y = __shfl_up_sync(0xffffffffu, inclusive, d);
      if (lane >= d) inclusive += y;
    }
    if (lane == 31) s_.warp_totals[warp] = inclusive;
    __syncthreads();
    unsigned before = 0;
    total = 0;
    for (unsigned w = 0; w < BlockThreads / 32; ++w) {
      const unsigned t = s_.warp_totals[w];
      if (w < warp) before += t;
      total += t;
    }
    return before + inclusive - value;
  }

  TempStorage& s_;
};

}  // namespace hired::kernels

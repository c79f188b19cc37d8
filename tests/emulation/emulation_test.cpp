// Tests of the host emulation of the CUDA execution model (hired/emulator/cuda.hpp).
//
// The first part of this file is kernel text only and is also compiled by nvcc, to prove that
// what the emulator runs is valid CUDA:
//   nvcc -std=c++20 -arch=sm_80 -x cu -Ikernels/include -Icore/include
//        -c tests/emulation/emulation_test.cpp -o emulation_kernels.o
// The tests themselves (second part) are host-only.
#if !defined(__CUDACC__)
#include "hired/emulator/cuda.hpp"  // first: the CUDA dialect on the host
#endif
#include "hired/kernels/device.hpp"

namespace hired::emu_test {

HIRED_DEVICE unsigned ceil_pow2(unsigned n) {
  unsigned p = 1;
  while (p < n) p *= 2;
  return p;
}

// Tree sum of one block's inputs through shared memory. Without the first barrier a thread can
// read a partner's slot before the partner has written it.
template <bool kFirstBarrier>
HIRED_KERNEL void block_sum(const int* in, int* out) {
  __shared__ int partial[1024];
  const unsigned t = threadIdx.x, n = blockDim.x;
  partial[t] = in[blockIdx.x * n + t];
  if (kFirstBarrier) __syncthreads();
  for (unsigned stride = ceil_pow2(n) / 2; stride > 0; stride /= 2) {
    if (t < stride && t + stride < n) partial[t] += partial[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = partial[0];
}

// out[t] = in[t - 1] via shared memory; without the barrier, reverse order exposes the race.
template <bool kBarrier>
HIRED_KERNEL void shift_right(const int* in, int* out) {
  __shared__ int staged[1024];
  const unsigned t = threadIdx.x;
  staged[t] = in[t];
  if (kBarrier) __syncthreads();
  out[t] = t > 0 ? staged[t - 1] : 0;
}

// Every lane ends with the warp's sum.
HIRED_KERNEL void warp_sum_xor(const int* in, int* out) {
  int v = in[threadIdx.x];
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  out[threadIdx.x] = v;
}

// Inclusive scan within segments of `width` lanes.
HIRED_KERNEL void segmented_scan_up(const int* in, int* out, int width) {
  const unsigned lane = threadIdx.x % 32;
  int v = in[threadIdx.x];
  for (unsigned d = 1; d < static_cast<unsigned>(width); d *= 2) {
    const int y = __shfl_up_sync(0xffffffffu, v, d, width);
    if (lane % static_cast<unsigned>(width) >= d) v += y;
  }
  out[threadIdx.x] = v;
}

// Suffix sums (reverse inclusive scan) over the whole warp with __shfl_down_sync.
HIRED_KERNEL void suffix_scan_down(const float* in, float* out) {
  const unsigned lane = threadIdx.x % 32;
  float v = in[threadIdx.x];
  for (unsigned d = 1; d < 32; d *= 2) {
    const float y = __shfl_down_sync(0xffffffffu, v, d);
    if (lane + d < 32) v += y;
  }
  out[threadIdx.x] = v;
}

// One raw shuffle: kMode 0 = idx, 1 = up, 2 = down, 3 = xor.
template <int kMode>
HIRED_KERNEL void shuffle_probe(const int* in, int* out, int arg, int width) {
  const int v = in[threadIdx.x];
  int r = 0;
  if (kMode == 0) r = __shfl_sync(0xffffffffu, v, arg, width);
  if (kMode == 1) r = __shfl_up_sync(0xffffffffu, v, static_cast<unsigned>(arg), width);
  if (kMode == 2) r = __shfl_down_sync(0xffffffffu, v, static_cast<unsigned>(arg), width);
  if (kMode == 3) r = __shfl_xor_sync(0xffffffffu, v, arg, width);
  out[threadIdx.x] = r;
}

// Votes of the lanes named in `mask` (the others skip): ballot, popc, any, all per lane.
HIRED_KERNEL void votes(const int* predicate, unsigned mask, unsigned* out) {
  const unsigned t = threadIdx.x;
  if ((mask >> (t % 32) & 1u) == 0) return;
  const unsigned ballot = __ballot_sync(mask, predicate[t]);
  out[4 * t + 0] = ballot;
  out[4 * t + 1] = static_cast<unsigned>(__popc(ballot));
  out[4 * t + 2] = static_cast<unsigned>(__any_sync(mask, predicate[t]));
  out[4 * t + 3] = static_cast<unsigned>(__all_sync(mask, predicate[t]));
}

// A block whose last warp is partial: each warp reduces with the mask of its existing lanes.
HIRED_KERNEL void partial_warp_sum(const int* in, int* sums, unsigned* masks) {
  const unsigned t = threadIdx.x, warp = t / 32;
  const unsigned lanes = blockDim.x - warp * 32 < 32 ? blockDim.x - warp * 32 : 32;
  const unsigned mask = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
  int v = in[t];
  for (int offset = 16; offset > 0; offset /= 2)
    if (static_cast<unsigned>(offset) < lanes) v += __shfl_xor_sync(mask, v, offset);
  const unsigned ballot = __ballot_sync(mask, 1);
  __syncwarp(mask);
  if (t % 32 == 0) {
    sums[warp] = v;
    masks[warp] = ballot;
  }
}

// Each block tags its shared memory with its own id and every thread reports what it sees.
HIRED_KERNEL void identify(unsigned* out) {
  __shared__ unsigned tag;
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  if (thread == threads - 1) tag = 1000 + block;
  __syncthreads();
  out[block * threads + thread] = tag * 1000000u + block * 1000u + thread;
  __syncthreads();  // nobody may retag before everyone has read
}

HIRED_KERNEL void barrier_votes(const int* predicate, int* out) {
  const unsigned t = threadIdx.x;
  out[3 * t + 0] = __syncthreads_count(predicate[t]);
  out[3 * t + 1] = __syncthreads_and(predicate[t]);
  out[3 * t + 2] = __syncthreads_or(predicate[t]);
}

HIRED_KERNEL void atomics(int* i, unsigned* u, unsigned long long* ull, float* f) {
  const unsigned g = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(&i[0], 1);
  atomicMax(&i[1], static_cast<int>(g));
  atomicMin(&i[2], -static_cast<int>(g));
  atomicOr(&u[0], 1u << (g % 32));
  atomicAdd(&u[1], 2u);
  atomicMax(&u[2], g);
  atomicAdd(&ull[0], 1ull << 33);
  atomicMax(&ull[1], static_cast<unsigned long long>(g) << 40);
  atomicAdd(&f[0], 0.5f);
  if (atomicCAS(&u[3], 0u, g + 1) == 0u) atomicExch(&i[3], static_cast<int>(g));
}

HIRED_KERNEL void one_barrier(int* out) {
  out[threadIdx.x] = static_cast<int>(threadIdx.x);
  __syncthreads();
  if (threadIdx.x == 0) out[blockDim.x] = out[blockDim.x - 1];
}

#if defined(__CUDACC__)
// Make nvcc compile every kernel template used by the tests.
template __global__ void block_sum<true>(const int*, int*);
template __global__ void block_sum<false>(const int*, int*);
template __global__ void shift_right<true>(const int*, int*);
template __global__ void shift_right<false>(const int*, int*);
template __global__ void shuffle_probe<0>(const int*, int*, int, int);
template __global__ void shuffle_probe<1>(const int*, int*, int, int);
template __global__ void shuffle_probe<2>(const int*, int*, int, int);
template __global__ void shuffle_probe<3>(const int*, int*, int, int);
#endif

}  // namespace hired::emu_test

#if !defined(__CUDACC__)
// ------------------------------------ host-only tests ------------------------------------
#include <gtest/gtest.h>

#include <array>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace hired::emu_test {
namespace {

using emu::KernelError;
using emu::Options;
using emu::Schedule;

constexpr unsigned kFull = 0xffffffffu;

std::vector<int> iota_values(std::size_t n, int start) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

int sum(const std::vector<int>& v, std::size_t begin, std::size_t end) {
  return std::accumulate(v.begin() + static_cast<std::ptrdiff_t>(begin),
                         v.begin() + static_cast<std::ptrdiff_t>(end), 0);
}

const Options kModes[] = {{Schedule::forward, false}, {Schedule::reverse, false},
                          {Schedule::forward, true}};

TEST(Emulation, BlockSumWithBarriersIsRightForEveryBlockSize) {
  for (unsigned n : {1u, 31u, 32u, 33u, 256u, 1024u}) {
    constexpr unsigned kBlocks = 2;
    std::vector<int> in(n * kBlocks);
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int>(i * 7919 % 1000) - 500;
    for (const Options& mode : kModes) {
      std::vector<int> out(kBlocks, -1);
      emu::launch_with(mode, block_sum<true>, dim3(kBlocks), dim3(n), in.data(), out.data());
      for (unsigned b = 0; b < kBlocks; ++b)
        EXPECT_EQ(out[b], sum(in, b * n, (b + 1) * n)) << "n=" << n << " block " << b;
    }
  }
}

TEST(Emulation, MissingBarrierIsDeterministicallyWrongUnderForwardOrder) {
  constexpr unsigned n = 256;
  const std::vector<int> first = iota_values(n, 1), second = iota_values(n, 5000);
  int out = 0;
  emu::launch_with({Schedule::forward}, block_sum<false>, dim3(1), dim3(n), first.data(), &out);
  emu::launch_with({Schedule::forward}, block_sum<false>, dim3(1), dim3(n), second.data(), &out);
  // Threads 0..127 ran before 128..255 wrote their slots, so they added what the previous
  // launch left there: exactly first[128..255].
  EXPECT_NE(out, sum(second, 0, n));
  EXPECT_EQ(out, sum(second, 0, n / 2) + sum(first, n / 2, n));
  // Reverse order runs the writers first, which hides this particular race.
  emu::launch_with({Schedule::reverse}, block_sum<false>, dim3(1), dim3(n), first.data(), &out);
  EXPECT_EQ(out, sum(first, 0, n));
}

TEST(Emulation, MissingBarrierIsDeterministicallyWrongUnderReverseOrder) {
  constexpr unsigned n = 64;
  const std::vector<int> first = iota_values(n, 1), second = iota_values(n, 700);
  std::vector<int> out(n);
  for (Schedule s : {Schedule::forward, Schedule::reverse}) {
    emu::launch_with({s}, shift_right<true>, dim3(1), dim3(n), second.data(), out.data());
    for (unsigned t = 1; t < n; ++t) ASSERT_EQ(out[t], second[t - 1]);
  }
  emu::launch_with({Schedule::forward}, shift_right<false>, dim3(1), dim3(n), first.data(),
                   out.data());
  for (unsigned t = 1; t < n; ++t) ASSERT_EQ(out[t], first[t - 1]) << "forward hides it";
  emu::launch_with({Schedule::reverse}, shift_right<false>, dim3(1), dim3(n), second.data(),
                   out.data());
  for (unsigned t = 1; t < n; ++t) EXPECT_EQ(out[t], first[t - 1]) << "stale slot, t=" << t;
}

TEST(Emulation, XorButterflyGivesEveryLaneTheWarpSum) {
  const std::vector<int> in = iota_values(64, -20);
  std::vector<int> out(64);
  for (const Options& mode : kModes) {
    emu::launch_with(mode, warp_sum_xor, dim3(1), dim3(64), in.data(), out.data());
    for (unsigned t = 0; t < 64; ++t) EXPECT_EQ(out[t], sum(in, t / 32 * 32, t / 32 * 32 + 32));
  }
}

TEST(Emulation, ShuffleUpScanRespectsWidth) {
  const std::vector<int> in = iota_values(32, 1);  // 1..32
  std::vector<int> out(32);
  for (int width : {32, 8, 1}) {
    emu::launch(segmented_scan_up, dim3(1), dim3(32), in.data(), out.data(), width);
    for (int lane = 0; lane < 32; ++lane) {
      const int start = lane / width * width;  // segment start; scan of start+1..lane+1
      EXPECT_EQ(out[lane], (lane + 1) * (lane + 2) / 2 - start * (start + 1) / 2)
          << "width " << width << " lane " << lane;
    }
  }
}

TEST(Emulation, ShuffleDownSuffixScan) {
  std::vector<float> in(32), out(32);
  for (int i = 0; i < 32; ++i) in[i] = 0.5f * static_cast<float>(i);
  emu::launch(suffix_scan_down, dim3(1), dim3(32), in.data(), out.data());
  for (int lane = 0; lane < 32; ++lane)
    EXPECT_EQ(out[lane], 0.25f * static_cast<float>((31 * 32 - (lane - 1) * lane)));
}

// Each lane holds 100 + lane; expected values worked out by hand from the CUDA definitions.
TEST(Emulation, RawShufflesMatchHandWorkedValues) {
  const std::vector<int> in = iota_values(32, 100);
  std::vector<int> out(32);
  const auto probe = [&](auto kernel, int arg, int width) {
    emu::launch(kernel, dim3(1), dim3(32), in.data(), out.data(), arg, width);
    return out;
  };
  std::vector<int> expected(32, 105);
  for (int i = 8; i < 32; ++i) expected[i] = 105 + i / 8 * 8;
  EXPECT_EQ(probe(shuffle_probe<0>, 13, 8), expected);  // 13 % 8 = lane 5 of each segment
  EXPECT_EQ(probe(shuffle_probe<0>, -1, 32), std::vector<int>(32, 131));  // -1 wraps to 31

  EXPECT_EQ(probe(shuffle_probe<1>, 3, 8),
            (std::vector<int>{100, 101, 102, 100, 101, 102, 103, 104,  //
                              108, 109, 110, 108, 109, 110, 111, 112,  //
                              116, 117, 118, 116, 117, 118, 119, 120,  //
                              124, 125, 126, 124, 125, 126, 127, 128}));
  EXPECT_EQ(probe(shuffle_probe<2>, 3, 8),
            (std::vector<int>{103, 104, 105, 106, 107, 105, 106, 107,  //
                              111, 112, 113, 114, 115, 113, 114, 115,  //
                              119, 120, 121, 122, 123, 121, 122, 123,  //
                              127, 128, 129, 130, 131, 129, 130, 131}));
  std::vector<int> up = probe(shuffle_probe<1>, 5, 32);
  for (int lane = 0; lane < 32; ++lane) EXPECT_EQ(up[lane], lane < 5 ? 100 + lane : 95 + lane);
  std::vector<int> down = probe(shuffle_probe<2>, 31, 32);
  for (int lane = 1; lane < 32; ++lane) EXPECT_EQ(down[lane], 100 + lane);
  EXPECT_EQ(down[0], 131);
  // Lane mask 9 with width 8: lanes may read earlier segments but not later ones.
  EXPECT_EQ(probe(shuffle_probe<3>, 9, 8),
            (std::vector<int>{100, 101, 102, 103, 104, 105, 106, 107,  //
                              101, 100, 103, 102, 105, 104, 107, 106,  //
                              116, 117, 118, 119, 120, 121, 122, 123,  //
                              117, 116, 119, 118, 121, 120, 123, 122}));
  EXPECT_EQ(probe(shuffle_probe<3>, 1, 32)[6], 107);
}

TEST(Emulation, VotesMatchHandWorkedValues) {
  std::vector<int> odd(32);
  for (int i = 0; i < 32; ++i) odd[i] = i % 2 == 1 ? 7 : 0;
  std::vector<unsigned> out(4 * 32, 99);
  emu::launch(votes, dim3(1), dim3(32), odd.data(), kFull, out.data());
  for (int t = 0; t < 32; ++t) {
    EXPECT_EQ(out[4 * t + 0], 0xaaaaaaaau);
    EXPECT_EQ(out[4 * t + 1], 16u);
    EXPECT_EQ(out[4 * t + 2], 1u);
    EXPECT_EQ(out[4 * t + 3], 0u);
  }
  // Only lanes 1, 3 and 5 take part; all three are true.
  std::fill(out.begin(), out.end(), 99);
  emu::launch(votes, dim3(1), dim3(32), odd.data(), 0x2au, out.data());
  for (int t : {1, 3, 5}) {
    EXPECT_EQ(out[4 * t + 0], 0x2au);
    EXPECT_EQ(out[4 * t + 1], 3u);
    EXPECT_EQ(out[4 * t + 2], 1u);
    EXPECT_EQ(out[4 * t + 3], 1u);
  }
  EXPECT_EQ(out[0], 99u);  // lane 0 skipped
  const std::vector<int> none(32, 0);
  emu::launch(votes, dim3(1), dim3(32), none.data(), kFull, out.data());
  EXPECT_EQ(out[4 * 9 + 0], 0u);
  EXPECT_EQ(out[4 * 9 + 2], 0u);
  EXPECT_EQ(out[4 * 9 + 3], 0u);
}

TEST(Emulation, BitIntrinsicsMatchHandWorkedValues) {
  EXPECT_EQ(__popc(0xf0f0u), 8);
  EXPECT_EQ(__popcll(0xffffffffffull), 40);
  EXPECT_EQ(__ffs(0), 0);
  EXPECT_EQ(__ffs(8), 4);
  EXPECT_EQ(__ffs(static_cast<int>(0x80000000u)), 32);
  EXPECT_EQ(__ffsll(1ll << 40), 41);
  EXPECT_EQ(__clz(0), 32);
  EXPECT_EQ(__clz(1), 31);
  EXPECT_EQ(__clz(-1), 0);
  EXPECT_EQ(__clzll(1), 63);
  EXPECT_EQ(__brev(1u), 0x80000000u);
  EXPECT_EQ(__brev(0x0000f00du), 0xb00f0000u);
  EXPECT_EQ(__brevll(1ull), 0x8000000000000000ull);
  EXPECT_EQ(__float_as_uint(1.0f), 0x3f800000u);
  EXPECT_EQ(__uint_as_float(0xc0200000u), -2.5f);
  EXPECT_EQ(__float_as_int(-0.0f), static_cast<int>(0x80000000u));
  EXPECT_EQ(__int_as_float(0x40000000), 2.0f);
}

TEST(Emulation, PartialWarpUsesItsOwnLanes) {
  const std::vector<int> in = iota_values(40, 1);
  for (const Options& mode : kModes) {
    std::array<int, 2> sums{};
    std::array<unsigned, 2> masks{};
    emu::launch_with(mode, partial_warp_sum, dim3(1), dim3(40), in.data(), sums.data(),
                     masks.data());
    EXPECT_EQ(sums[0], sum(in, 0, 32));
    EXPECT_EQ(sums[1], sum(in, 32, 40));  // lanes 32..39 only
    EXPECT_EQ(masks[0], kFull);
    EXPECT_EQ(masks[1], 0xffu);
  }
}

TEST(Emulation, FullMaskInPartialWarpIsToleratedUnlessStrict) {
  std::vector<unsigned> ballots(40);
  const auto kernel = [](unsigned* out) {
    out[threadIdx.x] = __ballot_sync(0xffffffffu, 1);
    if (!__all_sync(0xffffffffu, 1)) out[threadIdx.x] = 0;  // absent lanes do not vote
    if (threadIdx.x == 32) out[0] = __activemask();
  };
  emu::launch(kernel, dim3(1), dim3(40), ballots.data());
  EXPECT_EQ(ballots[0], 0xffu);  // __activemask of the 8-lane warp
  EXPECT_EQ(ballots[1], kFull);
  EXPECT_EQ(ballots[39], 0xffu);
  EXPECT_THROW(emu::launch_with({Schedule::forward, true}, kernel, dim3(1), dim3(40),
                                ballots.data()),
               KernelError);
}

TEST(Emulation, ShuffleFromNonParticipatingLaneIsPoisonOrStrictError) {
  std::vector<int> out(32);
  const auto kernel = [](int* o) {
    if (threadIdx.x < 8) o[threadIdx.x] = __shfl_xor_sync(0xffu, 5, 8);  // reads lanes 8..15
  };
  emu::launch(kernel, dim3(1), dim3(32), out.data());
  EXPECT_EQ(out[3], -1);
  EXPECT_THROW(emu::launch_with({Schedule::forward, true}, kernel, dim3(1), dim3(32), out.data()),
               KernelError);
}

TEST(Emulation, BlocksSeeTheirIndicesAndOwnSharedMemory) {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  constexpr unsigned kBlocks = 12, kThreads = 24;
  for (const Options& mode : kModes) {
    std::vector<unsigned> out(kBlocks * kThreads, 0);
    emu::launch_with(mode, identify, grid, block, out.data());
    for (unsigned b = 0; b < kBlocks; ++b)
      for (unsigned t = 0; t < kThreads; ++t)
        EXPECT_EQ(out[b * kThreads + t], (1000 + b) * 1000000u + b * 1000u + t);
  }
}

TEST(Emulation, BarrierVariantsCountPredicates) {
  std::vector<int> predicate(48, 0), out(3 * 48);
  predicate[5] = predicate[40] = 3;
  emu::launch(barrier_votes, dim3(1), dim3(48), predicate.data(), out.data());
  EXPECT_EQ(out[3 * 7 + 0], 2);
  EXPECT_EQ(out[3 * 7 + 1], 0);
  EXPECT_EQ(out[3 * 7 + 2], 1);
  std::fill(predicate.begin(), predicate.end(), 1);
  emu::launch(barrier_votes, dim3(1), dim3(48), predicate.data(), out.data());
  EXPECT_EQ(out[3 * 47 + 0], 48);
  EXPECT_EQ(out[3 * 47 + 1], 1);
}

TEST(Emulation, AtomicsAcrossBlocks) {
  std::array<int, 4> i{0, -1, 1, -1};
  std::array<unsigned, 4> u{};
  std::array<unsigned long long, 2> ull{};
  float f = 0;
  emu::launch_with({Schedule::reverse}, atomics, dim3(4), dim3(64), i.data(), u.data(),
                   ull.data(), &f);
  EXPECT_EQ(i[0], 256);
  EXPECT_EQ(i[1], 255);
  EXPECT_EQ(i[2], -255);
  EXPECT_EQ(u[0], kFull);
  EXPECT_EQ(u[1], 512u);
  EXPECT_EQ(u[2], 255u);
  EXPECT_EQ(ull[0], 256ull << 33);
  EXPECT_EQ(ull[1], 255ull << 40);
  EXPECT_EQ(f, 128.0f);
  EXPECT_EQ(u[3], 64u);  // reverse order: block 0's thread 63 wins the CAS
  EXPECT_EQ(i[3], 63);
}

TEST(Emulation, KernelExceptionReachesCallerAndPoolSurvives) {
  std::vector<int> out(65);
  const auto throwing = [](int* o) {
    o[threadIdx.x] = 1;
    __syncthreads();
    if (blockIdx.x == 1 && threadIdx.x == 5) throw std::runtime_error("thread 5 gave up");
    __syncthreads();  // the others wait here and must be unwound
    o[threadIdx.x] = 2;
  };
  try {
    emu::launch(throwing, dim3(3), dim3(64), out.data());
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "thread 5 gave up");
  }
  emu::launch(one_barrier, dim3(1), dim3(64), out.data());
  EXPECT_EQ(out[64], 63);

  const auto asserting = [](int* o) { HIRED_KERNEL_ASSERT(o[threadIdx.x] < 10); };
  out[17] = 10;
  EXPECT_THROW(emu::launch(asserting, dim3(1), dim3(32), out.data()), KernelError);
  const auto trapping = []() {
    if (threadIdx.x == 3) __trap();
  };
  EXPECT_THROW(emu::launch(trapping, dim3(1), dim3(8)), KernelError);
  const auto nested = []() { emu::launch(one_barrier, dim3(1), dim3(1), nullptr); };
  EXPECT_THROW(emu::launch(nested, dim3(1), dim3(1)), KernelError);
  emu::launch(one_barrier, dim3(1), dim3(64), out.data());
  EXPECT_EQ(out[64], 63);
}

TEST(Emulation, CollectiveMisuseIsReported) {
  const auto excludes_self = []() { __syncwarp(threadIdx.x == 3 ? 0x1u : 0xffffffffu); };
  EXPECT_THROW(emu::launch(excludes_self, dim3(1), dim3(32)), KernelError);
  const auto disagree = []() { __syncwarp(threadIdx.x < 16 ? 0xffffffffu : 0xffff0000u); };
  EXPECT_THROW(emu::launch(disagree, dim3(1), dim3(32)), KernelError);
  // Lanes 0..15 sync among themselves and exit; lanes 16..31 name them too. Only visible as
  // exited lanes in the mask, which strict mode reports.
  const auto named_but_gone = []() { __syncwarp(threadIdx.x < 16 ? 0xffffu : 0xffffffffu); };
  emu::launch(named_but_gone, dim3(1), dim3(32));
  EXPECT_THROW(emu::launch_with({Schedule::forward, true}, named_but_gone, dim3(1), dim3(32)),
               KernelError);
  const auto mixed_ops = []() {
    if (threadIdx.x == 0) __syncwarp();
    else (void)__ballot_sync(0xffffffffu, 1);
  };
  EXPECT_THROW(emu::launch(mixed_ops, dim3(1), dim3(32)), KernelError);
  const auto deadlock = []() {
    if (threadIdx.x == 0) (void)__shfl_sync(0xffffffffu, 1, 0);
    else __syncthreads();
  };
  try {
    emu::launch(deadlock, dim3(1), dim3(32));
    FAIL() << "no exception";
  } catch (const KernelError& e) {
    EXPECT_NE(std::string(e.what()).find("deadlock"), std::string::npos) << e.what();
  }
  const auto bad_width = []() { (void)__shfl_sync(0xffffffffu, 1, 0, 12); };
  EXPECT_THROW(emu::launch(bad_width, dim3(1), dim3(32)), KernelError);
  EXPECT_THROW(__syncthreads(), KernelError);  // not inside a kernel
}

TEST(Emulation, StrictModeReportsBarrierReachedBySomeThreads) {
  std::vector<int> out(64, 0);
  const auto early_exit = [](int* o) {
    if (threadIdx.x >= 40) return;
    o[threadIdx.x] = 1;
    __syncthreads();
    o[threadIdx.x] = o[(threadIdx.x + 1) % 40] + 1;
  };
  emu::launch(early_exit, dim3(1), dim3(64), out.data());  // live threads release the barrier
  EXPECT_EQ(out[0], 2);
  try {
    emu::launch_with({Schedule::forward, true}, early_exit, dim3(1), dim3(64), out.data());
    FAIL() << "no exception";
  } catch (const KernelError& e) {
    EXPECT_NE(std::string(e.what()).find("__syncthreads reached by 40 of 64"), std::string::npos)
        << e.what();
  }
}

TEST(Emulation, InvalidConfigurationIsRejected) {
  EXPECT_THROW(emu::launch(one_barrier, dim3(1), dim3(1025), nullptr), KernelError);
  EXPECT_THROW(emu::launch(one_barrier, dim3(1), dim3(32, 32, 2), nullptr), KernelError);
  EXPECT_THROW(emu::launch(one_barrier, dim3(0), dim3(32), nullptr), KernelError);
  EXPECT_THROW(emu::launch(one_barrier, dim3(1), dim3(0), nullptr), KernelError);
}

TEST(Emulation, ManySmallLaunchesReuseThePool) {
  std::vector<int> out(17);
  emu::launch(one_barrier, dim3(1), dim3(16), out.data());
  const std::size_t pool = emu::pool_size();
  for (int i = 0; i < 2000; ++i) {
    out[16] = -1;
    emu::launch(one_barrier, dim3(1), dim3(16), out.data());
    ASSERT_EQ(out[16], 15) << "launch " << i;
  }
  EXPECT_EQ(emu::pool_size(), pool);  // no threads created per launch
}

}  // namespace
}  // namespace hired::emu_test
#endif

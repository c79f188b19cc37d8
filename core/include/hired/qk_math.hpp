// The float arithmetic of CLS scores from q and k (hired/qk_scores.hpp specifies it), as
// small functions the host, nvcc's device code and the emulator share: single IEEE
// round-to-nearest operations that no compiler may fuse, and an exponential built from them.
// No fmt, no exceptions: CUDA kernels include this.
#pragma once

#include "hired/half.hpp"
#include "hired/host_device.hpp"

#include <cmath>
#include <cstdint>

namespace hired {

namespace qk_math {

/// Returns v unchanged, but the host compiler may not fuse the operation that produced it
/// with the one that consumes it (no FMA contraction across it). Emits no instruction.
HIRED_HOST_DEVICE inline float rounded(float v) {
#if !defined(__CUDA_ARCH__)
#if defined(__GNUC__) && defined(__x86_64__)
  __asm__("" : "+x"(v));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(v));
#else
  volatile float stored = v;
  v = stored;
#endif
#endif
  return v;
}

HIRED_HOST_DEVICE inline float mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return rounded(a * b);
#endif
}

HIRED_HOST_DEVICE inline float add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return rounded(a + b);
#endif
}

HIRED_HOST_DEVICE inline float div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return rounded(a / b);
#endif
}

/// a * b + c with one rounding.
HIRED_HOST_DEVICE inline float fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fmaf(a, b, c);
#endif
}

/// e^x for x <= 0: 2^n * P(r) with n = round(x / ln 2), r = x - n ln 2 (two FMA steps), P the
/// degree-7 Taylor polynomial in Horner form; within 2 ulp of e^x (measured in the tests).
/// Results below 2^-126 (x < -87) are 0: as a softmax term they are below float resolution
/// next to the maximum's 1. x > 0 is treated as 0. A NaN is returned as it is.
HIRED_HOST_DEVICE inline float exp_nonpositive(float x) {
  if (x != x) return x;
  if (!(x >= -87.0f)) return 0.0f;
  if (x > 0.0f) x = 0.0f;
  constexpr float log2e = 0x1.715476p+0f;
  constexpr float ln2_hi = 0x1.62e430p-1f, ln2_lo = -0x1.05c610p-29f;
  constexpr float round_shift = 0x1.8p+23f;  // adding it rounds |y| < 2^22 to an integer
  const float n = add(add(mul(x, log2e), round_shift), -round_shift);  // -126..0
  float r = fma(-n, ln2_hi, x);
  r = fma(-n, ln2_lo, r);
  float p = 0x1.a01a02p-13f;  // 1/7!
  p = fma(p, r, 0x1.6c16c2p-10f);
  p = fma(p, r, 0x1.111112p-7f);
  p = fma(p, r, 0x1.555556p-5f);
  p = fma(p, r, 0x1.555556p-3f);
  p = fma(p, r, 0x1.0p-1f);
  p = fma(p, r, 1.0f);
  p = fma(p, r, 1.0f);
  const auto exponent = static_cast<std::uint32_t>(static_cast<std::int32_t>(n) + 127);
  return mul(p, detail::bits_float(exponent << 23));
}

HIRED_HOST_DEVICE inline bool finite(float v) {
  return v >= -3.40282347e38f && v <= 3.40282347e38f;  // NaN fails both
}

/// Lanes of the lane-strided sum (one warp on the device).
inline constexpr int kLanes = 32;

/// 1 / sqrt(head_dim), each step rounded to float (head_dim > 0; hired::qk_scale checks).
inline float scale(std::int64_t head_dim) {
  return 1.0f / std::sqrt(static_cast<float>(head_dim));
}

}  // namespace qk_math

}  // namespace hired

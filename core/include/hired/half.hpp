// Bit-exact IEEE binary16 (fp16) and bfloat16 <-> float conversions on raw 16-bit patterns.
// Integer-only arithmetic, so results do not depend on the FPU rounding mode or on
// flush-to-zero settings (CUDA -ftz), and everything is usable in constant expressions.
#pragma once

#include <cstdint>

#include "hired/host_device.hpp"

namespace hired {

namespace detail {

// __builtin_bit_cast rather than std::bit_cast: it is constexpr in GCC, Clang and nvcc device
// code alike, without --expt-relaxed-constexpr.
HIRED_HOST_DEVICE constexpr std::uint32_t float_bits(float value) {
  return __builtin_bit_cast(std::uint32_t, value);
}

HIRED_HOST_DEVICE constexpr float bits_float(std::uint32_t bits) {
  return __builtin_bit_cast(float, bits);
}

}  // namespace detail

/// fp16 bit pattern -> float. Exact for every input (float is a superset of fp16); subnormals
/// become normal floats, Inf stays Inf, NaN keeps its sign and payload.
HIRED_HOST_DEVICE constexpr float half_to_float(std::uint16_t half) {
  const std::uint32_t sign = static_cast<std::uint32_t>(half & 0x8000u) << 16;
  const std::uint32_t exponent = (half >> 10) & 0x1fu;
  std::uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0x1fu) return detail::bits_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) {
    // Rebias 15 -> 127.
    return detail::bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  }
  if (mantissa == 0) return detail::bits_float(sign);
  // Subnormal m * 2^-24: shift the leading one up to the implicit-bit position.
  std::uint32_t float_exponent = 113;
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --float_exponent;
  }
  return detail::bits_float(sign | (float_exponent << 23) | ((mantissa & 0x3ffu) << 13));
}

/// float -> fp16 bit pattern, rounding to nearest with ties to even. Values at or above 65520
/// in magnitude become Inf; tiny values become signed zero or fp16 subnormals. A NaN keeps its
/// sign and the top 10 payload bits; if those are all zero the quiet bit is set so the result
/// stays a NaN (this makes half -> float -> half the identity on all 65536 patterns).
HIRED_HOST_DEVICE constexpr std::uint16_t float_to_half(float value) {
  const std::uint32_t bits = detail::float_bits(value);
  const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {
    if (magnitude == 0x7f800000u) return sign | 0x7c00u;
    auto payload = static_cast<std::uint16_t>((magnitude >> 13) & 0x3ffu);
    if (payload == 0) payload = 0x200u;
    return sign | 0x7c00u | payload;
  }
  // 65520 is halfway between 65504 (odd mantissa) and 2^16, so the tie goes up to Inf.
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;
  if (magnitude >= 0x38800000u) {
    // Normal fp16 range (>= 2^-14): rebias 127 -> 15 and round off 13 mantissa bits. A carry
    // out of the mantissa correctly bumps the exponent.
    const std::uint32_t odd = (magnitude >> 13) & 1u;
    return sign | static_cast<std::uint16_t>((magnitude - 0x38000000u + 0xfffu + odd) >> 13);
  }
  // Below 2^-25 (biased exponent 102) everything rounds to zero; exactly 2^-25 ties to zero.
  const std::uint32_t exponent = magnitude >> 23;
  if (exponent < 102) return sign;
  // Subnormal result in units of 2^-24: significand * 2^(exponent - 126).
  const std::uint32_t significand = (magnitude & 0x7fffffu) | 0x800000u;
  const std::uint32_t shift = 126 - exponent;  // 14..24
  std::uint32_t quotient = significand >> shift;
  const std::uint32_t remainder = significand & ((1u << shift) - 1u);
  const std::uint32_t halfway = 1u << (shift - 1);
  if (remainder > halfway || (remainder == halfway && (quotient & 1u) != 0)) ++quotient;
  // A quotient of 0x400 is the smallest normal fp16, encoded by the same bits.
  return sign | static_cast<std::uint16_t>(quotient);
}

/// bfloat16 bit pattern -> float. Exact: bfloat16 is the top half of a float.
HIRED_HOST_DEVICE constexpr float bf16_to_float(std::uint16_t bf16) {
  return detail::bits_float(static_cast<std::uint32_t>(bf16) << 16);
}

/// float -> bfloat16 bit pattern, rounding to nearest with ties to even (overflow rounds to Inf,
/// subnormals round like any other value). NaN handling mirrors float_to_half: sign and top 7
/// payload bits kept, quiet bit set only when they are all zero.
HIRED_HOST_DEVICE constexpr std::uint16_t float_to_bf16(float value) {
  const std::uint32_t bits = detail::float_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    auto truncated = static_cast<std::uint16_t>(bits >> 16);
    if ((truncated & 0x7fu) == 0) truncated |= 0x40u;
    return truncated;
  }
  const std::uint32_t odd = (bits >> 16) & 1u;
  return static_cast<std::uint16_t>((bits + 0x7fffu + odd) >> 16);
}

}  // namespace hired

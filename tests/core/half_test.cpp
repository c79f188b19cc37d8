// fp16 / bfloat16 conversions against hand-worked bit patterns, plus an exhaustive fp16 sweep.
#include "hired/half.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace hired {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Bit-level float comparison: distinguishes -0 from +0 and checks NaN payloads.
std::uint32_t bits(float value) { return detail::float_bits(value); }

// Usable at compile time, so constant tables of weights can be built from these.
static_assert(float_to_half(1.0f) == 0x3c00);
static_assert(half_to_float(0xc100) == -2.5f);
static_assert(float_to_bf16(1.0f) == 0x3f80);
static_assert(bf16_to_float(0xc020) == -2.5f);

TEST(HalfToFloat, HandWorkedPatterns) {
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(half_to_float(0xc100), -2.5f);
  EXPECT_EQ(half_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(half_to_float(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(half_to_float(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(bits(half_to_float(0x0000)), 0x00000000u);
  EXPECT_EQ(bits(half_to_float(0x8000)), 0x80000000u);
  EXPECT_EQ(half_to_float(0x7c00), kInf);
  EXPECT_EQ(half_to_float(0xfc00), -kInf);
  EXPECT_EQ(bits(half_to_float(0x7e00)), 0x7fc00000u);  // quiet NaN, payload kept
  EXPECT_EQ(bits(half_to_float(0xfd01)), 0xffa02000u);  // signalling NaN with sign and payload
}

TEST(FloatToHalf, HandWorkedPatterns) {
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.5f), 0xc100);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -14)), 0x0400);
  EXPECT_EQ(float_to_half(0.0f), 0x0000);
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
  EXPECT_EQ(float_to_half(kInf), 0x7c00);
  EXPECT_EQ(float_to_half(-kInf), 0xfc00);
  EXPECT_EQ(float_to_half(1e10f), 0x7c00);
  EXPECT_EQ(float_to_half(-1e10f), 0xfc00);
}

TEST(FloatToHalf, NanStaysNan) {
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::quiet_NaN()), 0x7e00);
  EXPECT_EQ(float_to_half(-std::numeric_limits<float>::quiet_NaN()), 0xfe00);
  // Payload only in the low 13 bits, which fp16 drops: must not collapse to Inf.
  EXPECT_EQ(float_to_half(detail::bits_float(0x7f800001u)), 0x7e00);
  EXPECT_EQ(float_to_half(detail::bits_float(0x7fa02000u)), 0x7d01);
}

TEST(FloatToHalf, RoundsTiesToEven) {
  // Spacing of fp16 at 1.0 is 2^-10.
  const float ulp = std::ldexp(1.0f, -10);
  EXPECT_EQ(float_to_half(1.0f + ulp / 2), 0x3c00);                 // tie, 0x3c00 is even
  EXPECT_EQ(float_to_half(1.0f + ulp + ulp / 2), 0x3c02);           // tie, up to even 0x3c02
  EXPECT_EQ(float_to_half(1.0f + ulp / 2 + std::ldexp(1.0f, -20)), 0x3c01);  // above tie
  EXPECT_EQ(float_to_half(1.0f + ulp / 2 - std::ldexp(1.0f, -20)), 0x3c00);  // below tie
  // Largest finite is 65504 (odd mantissa); the 65520 tie goes to Inf, just below stays.
  EXPECT_EQ(float_to_half(65519.996f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);
  // Carry from the mantissa into the exponent: 2047.5 / 2048 -> 2048.
  EXPECT_EQ(float_to_half(2047.5f), 0x6800);
}

TEST(FloatToHalf, SubnormalRounding) {
  const float tiny = std::ldexp(1.0f, -24);  // fp16 subnormal unit
  EXPECT_EQ(float_to_half(tiny / 2), 0x0000);                         // tie to even zero
  EXPECT_EQ(float_to_half(-tiny / 2), 0x8000);
  EXPECT_EQ(float_to_half(tiny / 2 + std::ldexp(1.0f, -40)), 0x0001);  // just above the tie
  EXPECT_EQ(float_to_half(tiny * 1.5f), 0x0002);                       // tie, up to even 2
  EXPECT_EQ(float_to_half(tiny * 2.5f), 0x0002);                       // tie, down to even 2
  EXPECT_EQ(float_to_half(tiny * 1023.5f), 0x0400);  // rounds up into the smallest normal
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::denorm_min()), 0x0000);
}

TEST(FloatToHalf, EveryHalfRoundTrips) {
  for (std::uint32_t pattern = 0; pattern <= 0xffff; ++pattern) {
    const auto half = static_cast<std::uint16_t>(pattern);
    const float value = half_to_float(half);
    const bool is_nan = (half & 0x7c00) == 0x7c00 && (half & 0x03ff) != 0;
    ASSERT_EQ(std::isnan(value), is_nan) << "pattern 0x" << std::hex << pattern;
    // Exact, NaN payloads included.
    ASSERT_EQ(float_to_half(value), half) << "pattern 0x" << std::hex << pattern;
  }
}

TEST(FloatToHalf, EveryMidpointTiesToEven) {
  // Every float halfway between two adjacent finite fp16 values must round to the even one.
  for (std::uint32_t pattern = 0; pattern < 0x7bff; ++pattern) {
    const auto low = static_cast<std::uint16_t>(pattern);
    const float mid = (half_to_float(low) + half_to_float(static_cast<std::uint16_t>(low + 1))) / 2;
    const std::uint16_t even = (low & 1) == 0 ? low : static_cast<std::uint16_t>(low + 1);
    ASSERT_EQ(float_to_half(mid), even) << "between 0x" << std::hex << pattern;
  }
}

TEST(Bf16, HandWorkedPatterns) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(-2.5f), 0xc020);
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xc020), -2.5f);
  EXPECT_EQ(bf16_to_float(0x7f7f), detail::bits_float(0x7f7f0000u));  // largest finite
  EXPECT_EQ(bf16_to_float(0x0001), detail::bits_float(0x00010000u));  // smallest subnormal
  EXPECT_EQ(float_to_bf16(detail::bits_float(0x00010000u)), 0x0001);
  EXPECT_EQ(float_to_bf16(kInf), 0x7f80);
  EXPECT_EQ(float_to_bf16(-kInf), 0xff80);
  EXPECT_EQ(bf16_to_float(0x7f80), kInf);
  EXPECT_EQ(float_to_bf16(-0.0f), 0x8000);
}

TEST(Bf16, RoundsTiesToEven) {
  EXPECT_EQ(float_to_bf16(detail::bits_float(0x3f808000u)), 0x3f80);  // tie, stays even
  EXPECT_EQ(float_to_bf16(detail::bits_float(0x3f818000u)), 0x3f82);  // tie, up to even
  EXPECT_EQ(float_to_bf16(detail::bits_float(0x3f808001u)), 0x3f81);  // above tie
  EXPECT_EQ(float_to_bf16(detail::bits_float(0x3f807fffu)), 0x3f80);  // below tie
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // overflows to Inf
  EXPECT_EQ(float_to_bf16(detail::bits_float(0x7f7f7fffu)), 0x7f7f);   // stays finite
}

TEST(Bf16, NanStaysNan) {
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::quiet_NaN()), 0x7fc0);
  EXPECT_EQ(float_to_bf16(detail::bits_float(0xff800001u)), 0xffc0);  // low payload only
  EXPECT_EQ(float_to_bf16(detail::bits_float(0x7fa00000u)), 0x7fa0);  // payload kept
  EXPECT_TRUE(std::isnan(bf16_to_float(0x7fc0)));
}

TEST(Bf16, EveryBf16RoundTrips) {
  for (std::uint32_t pattern = 0; pattern <= 0xffff; ++pattern) {
    const auto value = static_cast<std::uint16_t>(pattern);
    ASSERT_EQ(float_to_bf16(bf16_to_float(value)), value) << "pattern 0x" << std::hex << pattern;
  }
}

}  // namespace
}  // namespace hired

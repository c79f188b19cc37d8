// Step 1 of both budget modes as small arithmetic shared by the host (budget.hpp) and the
// device (kernels/budget.cuh), so the two agree to the token. Plain C++ that nvcc also
// compiles for the device: no std:: algorithms, and products rounded on their own (nvcc
// would otherwise fuse x * alpha + 1e-9 into one FMA, one rounding where the host does two).
#pragma once

#include "hired/host_device.hpp"

#include <cmath>
#include <cstdint>

namespace hired {

/// The image budget T, the full image's share B0, what the tiles share (S) and how many
/// full-image tokens are marked to score the tiles (K).
struct BudgetSplit {
  std::int64_t total = 0;       // T
  std::int64_t full_image = 0;  // B0
  std::int64_t tiles = 0;       // S
  std::int64_t marks = 0;       // K
};

namespace formula {

HIRED_HOST_DEVICE inline std::int64_t min64(std::int64_t a, std::int64_t b) { return a < b ? a : b; }
HIRED_HOST_DEVICE inline std::int64_t max64(std::int64_t a, std::int64_t b) { return a < b ? b : a; }

/// a * b rounded to double, never fused with a following add.
HIRED_HOST_DEVICE inline double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

/// Length of the intersection of [a0, a1) and [b0, b1).
HIRED_HOST_DEVICE inline std::int64_t overlap(std::int64_t a0, std::int64_t a1, std::int64_t b0,
                                              std::int64_t b1) {
  return max64(0, min64(a1, b1) - max64(a0, b0));
}

}  // namespace formula

/// The published code's arithmetic: double products truncated by int(), float32 ratios.
namespace reference_formula {

/// The published pipeline selects only below rate 1.0: at 1.0 every partition keeps all of
/// its N tokens, whatever alpha (the band split is never computed).
HIRED_HOST_DEVICE inline bool keeps_everything(double rate) { return rate >= 1.0; }

HIRED_HOST_DEVICE inline BudgetSplit split(std::int64_t partitions, std::int64_t tokens,
                                           double rate, double alpha) {
  using formula::min64, formula::mul_rn;
  BudgetSplit s;
  s.total = static_cast<std::int64_t>(mul_rn(static_cast<double>(partitions * tokens), rate));
  s.full_image = min64(static_cast<std::int64_t>(mul_rn(static_cast<double>(s.total), alpha)),
                       tokens);
  s.tiles = min64(s.total - s.full_image, (partitions - 1) * tokens);
  s.marks = static_cast<std::int64_t>(mul_rn(static_cast<double>(tokens), 1.0 - alpha));
  return s;
}

/// b_i = min(trunc(float32(float32(c_i) / float32(sum c) * S)), N).
HIRED_HOST_DEVICE inline std::int64_t tile_budget(std::int64_t marks_in_band,
                                                  std::int64_t marks_total,
                                                  std::int64_t tiles_share, std::int64_t tokens) {
  const float ratio = static_cast<float>(marks_in_band) / static_cast<float>(marks_total);
  const float product = ratio * static_cast<float>(tiles_share);
  return formula::min64(static_cast<std::int64_t>(product), tokens);
}

}  // namespace reference_formula

/// Exact mode's arithmetic. The 1e-9 keeps products such as 2880 * 0.2 from landing one
/// below an integer they equal on paper.
namespace exact_formula {

inline constexpr double epsilon = 1e-9;

HIRED_HOST_DEVICE inline std::int64_t total(std::int64_t partitions, std::int64_t tokens,
                                            double rate) {
  return static_cast<std::int64_t>(
      floor(formula::mul_rn(static_cast<double>(partitions * tokens), rate) + epsilon));
}

HIRED_HOST_DEVICE inline BudgetSplit split(std::int64_t total, std::int64_t tokens,
                                           double alpha) {
  using formula::min64, formula::mul_rn;
  BudgetSplit s;
  s.total = total;
  s.full_image = min64(
      static_cast<std::int64_t>(floor(mul_rn(static_cast<double>(total), alpha) + epsilon)),
      tokens);
  s.tiles = total - s.full_image;
  s.marks = static_cast<std::int64_t>(
      floor(mul_rn(static_cast<double>(tokens), 1.0 - alpha) + epsilon));
  return s;
}

}  // namespace exact_formula

}  // namespace hired

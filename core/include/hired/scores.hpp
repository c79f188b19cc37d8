// CLS-attention scores: s[p][j] = sum over heads of a[p][h][1 + j], the CLS query's attention
// to patch key j (key 0, CLS -> CLS, is skipped).
#pragma once

#include "hired/error.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

namespace hired {

/// `attention` is [rows, heads, keys] (keys = N + 1) in float; returns [rows, N] scores summed
/// over heads in ascending head order (float), the order every backend uses so that kept sets
/// agree exactly. Rejects NaN, Inf and negative attention, naming `what` and the position.
inline std::vector<float> sum_heads(const float* attention, std::int64_t rows, std::int64_t heads,
                                    std::int64_t keys, const char* what) {
  check(rows > 0 && heads > 0 && keys > 1, "{}: shape [{}, {}, {}] must be non-empty with N + 1 > 1 keys",
        what, rows, heads, keys);
  const std::int64_t tokens = keys - 1;
  std::vector<float> scores(static_cast<std::size_t>(rows * tokens), 0.0f);
  for (std::int64_t p = 0; p < rows; ++p) {
    for (std::int64_t h = 0; h < heads; ++h) {
      const float* row = attention + (p * heads + h) * keys;
      for (std::int64_t k = 0; k < keys; ++k)
        check(std::isfinite(row[k]) && row[k] >= 0.0f,
              "{}: value {} at [{}, {}, {}]; attention must be finite and non-negative", what,
              row[k], p, h, k);
      float* out = scores.data() + p * tokens;
      for (std::int64_t j = 0; j < tokens; ++j) out[j] += row[1 + j];
    }
  }
  return scores;
}

}  // namespace hired

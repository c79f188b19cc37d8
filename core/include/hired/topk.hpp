// Top-k of a score row with a deterministic order: higher score first, lower index on ties.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace hired {

/// True when token a ranks before token b: higher score, then lower index.
inline bool ranks_before(float score_a, std::int64_t a, float score_b, std::int64_t b) {
  return score_a > score_b || (score_a == score_b && a < b);
}

/// Indices of the k best-ranked tokens among `candidates` (indices into `scores`), returned in
/// ascending index order. k is clamped to the number of candidates.
inline std::vector<std::int32_t> top_k_ascending(const float* scores,
                                                 std::vector<std::int32_t> candidates,
                                                 std::int64_t k) {
  k = std::clamp<std::int64_t>(k, 0, static_cast<std::int64_t>(candidates.size()));
  const auto better = [scores](std::int32_t a, std::int32_t b) {
    return ranks_before(scores[a], a, scores[b], b);
  };
  std::nth_element(candidates.begin(), candidates.begin() + k, candidates.end(), better);
  candidates.resize(static_cast<std::size_t>(k));
  std::sort(candidates.begin(), candidates.end());
  return candidates;
}

/// Top-k over all n tokens of a row.
inline std::vector<std::int32_t> top_k_ascending(const float* scores, std::int64_t n,
                                                 std::int64_t k) {
  std::vector<std::int32_t> all(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) all[i] = static_cast<std::int32_t>(i);
  return top_k_ascending(scores, std::move(all), k);
}

}  // namespace hired

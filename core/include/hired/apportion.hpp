// Largest-remainder (Hamilton) apportionment under per-seat-holder capacities, with the
// surplus of capped holders re-distributed (water-filling). Integer-exact, allocation-free
// and usable from device code, so the CUDA kernels and the host agree to the token.
#pragma once

#include "hired/host_device.hpp"

#include <cstdint>

namespace hired {

/// Distributes `seats` among `n` holders in proportion to `weight` (>= 0), never giving
/// holder i more than `capacity[i]` (>= 0). Holders whose exact quota reaches their capacity
/// are filled and the rest is apportioned again among the others; when every weight left
/// is zero the remaining seats follow capacity instead. Remainders are compared exactly
/// (common denominator); ties go to the lower index. Writes `out[0..n)` and returns the
/// seats that found no room (0 unless seats > sum of capacities).
///
/// Overflow: seats * weight[i] and capacity[i] * sum(weight) must fit in int64 — true for
/// any anyres geometry (seats <= P*N, weights are pixel areas).
HIRED_HOST_DEVICE inline std::int64_t apportion_capped(const std::int64_t* weight,
                                                       const std::int64_t* capacity,
                                                       std::int64_t n, std::int64_t seats,
                                                       std::int64_t* out) {
  constexpr std::int64_t active = -1;
  for (std::int64_t i = 0; i < n; ++i) out[i] = capacity[i] > 0 ? active : 0;

  for (;;) {
    std::int64_t weight_sum = 0, capacity_sum = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      if (out[i] != active) continue;
      weight_sum += weight[i];
      capacity_sum += capacity[i];
    }
    if (capacity_sum == 0) return seats;
    if (seats >= capacity_sum) {  // everybody is full; what is left over goes back
      for (std::int64_t i = 0; i < n; ++i)
        if (out[i] == active) out[i] = capacity[i];
      return seats - capacity_sum;
    }
    const bool by_weight = weight_sum > 0;
    const std::int64_t denominator = by_weight ? weight_sum : capacity_sum;
    auto share = [&](std::int64_t i) { return seats * (by_weight ? weight[i] : capacity[i]); };

    // Fill every holder whose exact quota reaches its capacity, then apportion again.
    bool capped = false;
    std::int64_t seats_left = seats;
    for (std::int64_t i = 0; i < n; ++i) {
      if (out[i] == active && share(i) >= capacity[i] * denominator) {
        out[i] = capacity[i];
        seats_left -= capacity[i];
        capped = true;
      }
    }
    if (capped) {
      seats = seats_left;
      continue;
    }

    // No quota reaches its capacity: floors, plus one seat for each of the `extra` largest
    // remainders (a quota below capacity rounds up to at most the capacity). Holders of this
    // round are marked as -2 - value until every rank is known.
    std::int64_t extra = seats;
    for (std::int64_t i = 0; i < n; ++i)
      if (out[i] == active) extra -= share(i) / denominator;
    auto in_round = [&](std::int64_t i) { return out[i] == active || out[i] <= -2; };
    for (std::int64_t i = 0; i < n; ++i) {
      if (out[i] != active) continue;
      const std::int64_t remainder = share(i) % denominator;
      std::int64_t rank = 0;  // larger remainders first, then lower index
      for (std::int64_t j = 0; j < n; ++j) {
        if (j == i || !in_round(j)) continue;
        const std::int64_t other = share(j) % denominator;
        if (other > remainder || (other == remainder && j < i)) ++rank;
      }
      out[i] = -2 - (share(i) / denominator + (rank < extra ? 1 : 0));
    }
    for (std::int64_t i = 0; i < n; ++i)
      if (out[i] <= -2) out[i] = -2 - out[i];
    return 0;
  }
}

}  // namespace hired

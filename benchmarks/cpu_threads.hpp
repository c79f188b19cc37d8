// How many CPU threads hired_bench runs with when none are asked for: the cores that are idle
// when it starts. On a shared machine this is what keeps the ratios meaningful: two threads on
// two cores that a build also uses stall each other at every parallel region (one descheduled
// thread holds up the other), and the short 20% row, made of many small operations, suffers
// most; one thread beside the same build runs at its quiet speed (docs/NOTES.md, Measurements).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

namespace hired_bench {

/// Busy cores over a short window, from the kernel's counters.
struct CpuLoad {
  int cores = 0;      // online CPUs (the cpuN lines of /proc/stat)
  double busy = 0;    // cores' worth of time not idle, all processes
};

namespace detail {

struct CpuTimes {
  int cores = 0;
  std::uint64_t total = 0, idle = 0;
};

inline std::optional<CpuTimes> read_cpu_times() {
  std::ifstream stat("/proc/stat");
  CpuTimes t;
  bool aggregate = false;
  for (std::string line; std::getline(stat, line);) {
    if (line.rfind("cpu ", 0) == 0) {
      // user nice system idle iowait irq softirq steal (guest time is counted in user)
      std::istringstream fields(line.substr(4));
      std::uint64_t v[8] = {};
      for (std::uint64_t& x : v) fields >> x;
      if (!fields) return std::nullopt;
      for (const std::uint64_t x : v) t.total += x;
      t.idle = v[3] + v[4];
      aggregate = true;
    } else if (line.rfind("cpu", 0) == 0) {
      ++t.cores;
    }
  }
  if (!aggregate || t.cores == 0) return std::nullopt;
  return t;
}

}  // namespace detail

/// The machine's load over `window`; nullopt where /proc/stat cannot be read (not Linux).
inline std::optional<CpuLoad> measure_cpu_load(std::chrono::milliseconds window) {
  const auto before = detail::read_cpu_times();
  std::this_thread::sleep_for(window);
  const auto after = detail::read_cpu_times();
  if (!before || !after || after->total <= before->total) return std::nullopt;
  const double total = double(after->total - before->total);
  const double idle = double(after->idle - before->idle);
  return CpuLoad{after->cores, after->cores * std::clamp(1.0 - idle / total, 0.0, 1.0)};
}

/// The thread count for `load`: the idle cores, rounded, at least one and at most `most`
/// (the count the framework would use by itself).
inline int idle_core_threads(const CpuLoad& load, int most) {
  const int idle = static_cast<int>(std::lround(load.cores - load.busy));
  return std::clamp(idle, 1, std::max(most, 1));
}

/// What the table says about the choice, e.g. "auto: 1.9 of 2 cores busy at start".
inline std::string describe(const CpuLoad& load) {
  return fmt::format("auto: {:.1f} of {} cores busy at start", load.busy, load.cores);
}

}  // namespace hired_bench

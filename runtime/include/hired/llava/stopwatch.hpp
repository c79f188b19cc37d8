// Wall-clock timing of the runtime's stages (vision tower, projector, prefill, decode), on the
// monotonic clock; the CLIs and the benchmark time whole runs with the same type.
#pragma once

#include <chrono>

namespace hired::llava {

/// Seconds since construction.
class Stopwatch {
 public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace hired::llava

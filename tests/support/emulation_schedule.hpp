// The emulator options every kernel test uses: schedules alternate between cases so both
// orders of a race are tried; strict mode also rejects barriers some threads skip by exiting
// and warp masks naming exited lanes, which the kernels must never need.
#pragma once

#include "hired/emulator/cuda.hpp"

namespace hired_test {

inline hired::emu::Options alternating_schedule(int case_index) {
  return {case_index % 2 == 0 ? hired::emu::Schedule::forward : hired::emu::Schedule::reverse, true};
}

}  // namespace hired_test

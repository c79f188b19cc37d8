// The DropConfig most tests want: a rate, a newline policy, a mode (alpha 0.5).
#pragma once

#include "hired/config.hpp"

namespace hired_test {

inline hired::DropConfig drop_config(double rate,
                                     hired::NewlinePolicy newline = hired::NewlinePolicy::every_row,
                                     hired::Mode mode = hired::Mode::exact) {
  hired::DropConfig c;
  c.budget = hired::Budget::rate(rate);
  c.newline = newline;
  c.mode = mode;
  return c;
}

}  // namespace hired_test

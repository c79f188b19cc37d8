// HostSelection's shared state: the host copy of a selection, ready at once (CPU path) or
// filled on first use (CUDA path: a device-to-host copy after the kernels).
#pragma once

#include "hired/torch/token_dropper.hpp"

#include <functional>
#include <mutex>
#include <optional>

namespace hired::detail {

struct HostSelectionState {
  std::mutex mutex;
  std::optional<Selection> value;
  std::function<Selection()> fill;  // may throw (the kernels' error); then retried next time
};

/// A HostSelection that runs `fill` on first use.
HostSelection lazy_host_selection(std::function<Selection()> fill);

}  // namespace hired::detail

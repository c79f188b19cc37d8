// The CUDA path's device copies of each batch layout's kernel parameters (the per-image
// BudgetImages and requested budgets), uploaded once per layout and device, so a repeated
// layout (a warm-up before CUDA graph capture, or steady serving) needs no host-to-device
// copy, and a captured graph reads buffers that outlive the capture.
#pragma once

#include "hired/kernels/plan.hpp"

#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAStream.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace hired::detail {

class PlanCache {
 public:
  /// The plan's device buffers: images (BudgetImage bytes) and requested (int64 [B]).
  struct Buffers {
    at::Tensor images, requested;
  };

  /// The buffers for `plan` on `stream`'s device: cached, or uploaded now through pinned
  /// memory on `stream` (no synchronisation). Safe to use on `stream` at once.
  Buffers get(const kernels::SelectionPlan& plan, const c10::cuda::CUDAStream& stream);

 private:
  struct Entry;
  static constexpr std::size_t kLimit = 256;  // layouts kept; cleared when it grows past
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Entry>> entries_;
};

}  // namespace hired::detail

// What a selection made by the CUDA path keeps for gather(), check() and the host copy, and
// the small pieces both of that path's files use (cuda_select.cpp, cuda_gather.cpp). Compiled
// only with HIRED_CUDA_DISPATCH.
#pragma once

#include "hired/config.hpp"
#include "hired/kernels/launch.hpp"
#include "hired/kernels/plan.hpp"
#include "hired/layout.hpp"

#include <ATen/core/Tensor.h>

#include <functional>
#include <numeric>
#include <vector>

namespace hired::detail {

/// What a CUDA selection keeps alive for gather(), check() and the host copy.
struct DeviceSelection {
  kernels::SelectionPlan plan;
  Mode mode = Mode::exact;
  VisionGrid vision;
  std::vector<ImageLayout> layouts;
  std::vector<at::Tensor> inputs;         // as select_kernel reads them
  std::function<void()> explain_invalid;  // raises the CPU path's error for invalid inputs
  at::Tensor images;                      // the BudgetImages on the device (PlanCache's)
  at::Tensor workspace;                   // select_kernel's output, pack_kernel's input
  at::Tensor status;                      // int32 [1], written by select()'s pack_kernel launch
};

namespace K = kernels;

inline bool kernel_dtype(at::ScalarType t) {
  return t == at::kFloat || t == at::kHalf || t == at::kBFloat16;
}

inline std::int64_t sum(const std::vector<std::int64_t>& v) {
  return std::accumulate(v.begin(), v.end(), std::int64_t{0});
}

/// Raises the error behind a kernel status word (0: nothing). Invalid attention gets the CPU
/// path's message (the host check is re-run on the error path only).
inline void raise_status(int word, const DeviceSelection& d, NewlinePolicy policy) {
  const auto status = static_cast<unsigned>(word);
  if (status == 0) return;
  if ((status & K::status::invalid_input) != 0) d.explain_invalid();
  check((status & K::status::missing_newline) == 0,
        "image_newline: required by the newline policy '{}'", to_string(policy));
  fail<InternalError>("CUDA selection: the kernels reported status {:#x}, which the host checks "
                      "should have prevented", status);
}

inline const K::BudgetImage* device_images(const DeviceSelection& d) {
  return static_cast<const K::BudgetImage*>(d.images.const_data_ptr());
}

/// pack_kernel's parameters for the batch of `d`, without outputs.
inline K::PackParams pack_params(const DeviceSelection& d, NewlinePolicy policy) {
  return K::pack_params(d.plan, device_images(d), d.workspace.const_data_ptr(),
                        d.workspace.numel(), policy);
}

/// A device word as pack_kernel's status pointer.
inline unsigned* status_word(const at::Tensor& status) {
  return reinterpret_cast<unsigned*>(status.data_ptr<std::int32_t>());
}

}  // namespace hired::detail

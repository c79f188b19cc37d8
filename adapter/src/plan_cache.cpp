#include "plan_cache.hpp"

#include "cuda_check.hpp"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include <cstring>

namespace hired::detail {

struct PlanCache::Entry {
  at::Tensor images, requested;           // on the device
  at::Tensor staging, staging_requested;  // their pinned sources, alive while copies run
  at::cuda::CUDAEvent uploaded;           // recorded on `stream` after the copies
  c10::cuda::CUDAStream stream = c10::cuda::getDefaultCUDAStream();
};

namespace {

namespace K = kernels;

/// The cache key of a plan on a device: every field that reaches the device (not the raw
/// struct bytes, whose padding is indeterminate).
std::string plan_key(const K::SelectionPlan& plan, c10::DeviceIndex device) {
  std::string key;
  const auto add = [&key](std::int64_t v) {
    key.append(reinterpret_cast<const char*>(&v), sizeof v);
  };
  add(device);
  for (const K::BudgetImage& i : plan.images)
    for (const std::int64_t v :
         {i.offset, std::int64_t{i.partitions}, std::int64_t{i.grid_rows},
          std::int64_t{i.grid_cols}, i.total, std::int64_t{i.box.row_begin},
          std::int64_t{i.box.row_end}, std::int64_t{i.box.col_begin}, std::int64_t{i.box.col_end},
          std::int64_t{i.resized_height}, std::int64_t{i.resized_width}, std::int64_t{i.pad_top},
          std::int64_t{i.pad_left}})
      add(v);
  for (const std::int64_t v : plan.requested) add(v);
  return key;
}

/// Host bytes to the device on the current stream without a synchronisation: through a
/// pinned buffer (kept by the caller), never from pageable memory.
at::Tensor upload(const void* data, std::int64_t bytes, const at::Device& device,
                  at::Tensor& staging) {
  staging = at::empty({bytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
  if (bytes > 0) std::memcpy(staging.data_ptr(), data, static_cast<std::size_t>(bytes));
  return staging.to(at::TensorOptions().device(device), /*non_blocking=*/true);
}

}  // namespace

PlanCache::Buffers PlanCache::get(const K::SelectionPlan& plan,
                                  const c10::cuda::CUDAStream& stream) {
  const at::Device device = stream.device();
  std::shared_ptr<Entry> entry;
  {
    const std::lock_guard lock(mutex_);
    auto [it, fresh] = entries_.try_emplace(plan_key(plan, device.index()));
    if (fresh) {
      if (entries_.size() > kLimit) {
        auto keep = std::move(*it);
        entries_.clear();
        it = entries_.insert(std::move(keep)).first;
      }
      auto made = std::make_shared<Entry>();
      made->images = upload(plan.images.data(),
                            static_cast<std::int64_t>(plan.images.size() * sizeof(K::BudgetImage)),
                            device, made->staging);
      made->requested =
          upload(plan.requested.data(),
                 static_cast<std::int64_t>(plan.requested.size() * sizeof(std::int64_t)), device,
                 made->staging_requested)
              .view(at::kLong);
      made->stream = stream;
      made->uploaded.record(stream);
      it->second = std::move(made);
    }
    entry = it->second;
  }
  // Another stream waits for the upload (not while capturing: a captured stream may not wait
  // on an outside event; the warm-up before a capture uploads on the same stream).
  cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
  check_cuda(cudaStreamIsCapturing(stream.stream(), &capturing), "cudaStreamIsCapturing");
  if (entry->stream != stream && capturing == cudaStreamCaptureStatusNone)
    entry->uploaded.block(stream);
  // Used on this stream: the allocator must not hand the memory out before these kernels are
  // done with it, should the cache drop the entry meanwhile.
  c10::cuda::CUDACachingAllocator::recordStream(entry->images.storage().data_ptr(), stream);
  c10::cuda::CUDACachingAllocator::recordStream(entry->requested.storage().data_ptr(), stream);
  return {entry->images, entry->requested};
}

}  // namespace hired::detail

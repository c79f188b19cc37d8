// CUDA runtime failures as hired::CudaError, naming the call.
#pragma once

#include "hired/error.hpp"

#include <cuda_runtime_api.h>

namespace hired::detail {

inline void check_cuda(cudaError_t error, const char* what) {
  check<CudaError>(error == cudaSuccess, "CUDA: {} failed: {}", what, cudaGetErrorString(error));
}

}  // namespace hired::detail

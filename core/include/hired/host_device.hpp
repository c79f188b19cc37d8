// HIRED_HOST_DEVICE: marks small inline helpers callable from both host code and CUDA kernels.
// HIRED_HOST_DEVICE_INLINE also forces them inline in device code: a helper that takes a
// kernel parameter by reference and is not inlined makes the compiler copy the parameter
// struct to local memory (clang did, for budget_image_status).
#pragma once

#if defined(__CUDACC__)
#define HIRED_HOST_DEVICE __host__ __device__
#define HIRED_HOST_DEVICE_INLINE __host__ __device__ __forceinline__
#else
#define HIRED_HOST_DEVICE
#define HIRED_HOST_DEVICE_INLINE inline
#endif

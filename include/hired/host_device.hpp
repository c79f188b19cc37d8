// HIRED_HOST_DEVICE: marks small inline helpers callable from both host code and CUDA kernels.
#pragma once

#if defined(__CUDACC__)
#define HIRED_HOST_DEVICE __host__ __device__
#else
#define HIRED_HOST_DEVICE
#endif

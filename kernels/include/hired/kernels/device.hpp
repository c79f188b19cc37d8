// The one include for kernel source. nvcc gets the CUDA runtime and 16-bit types. A host
// compiler gets nothing: the .cuh files are CUDA source, and host code uses params.hpp,
// plan.hpp and launch.hpp. The tests and examples run the same kernel text on the CPU through
// hired's host emulator (emulator/include/hired/emulator/cuda.hpp, never installed), which
// they include before any kernel header. Kernels therefore use only what both provide: the
// qualifiers, the built-in index variables, __syncthreads*, the *_sync warp intrinsics, the
// bit intrinsics and the atomics the emulator declares.
#pragma once

#if defined(__CUDACC__)
#include <cassert>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define HIRED_EMULATED 0
// Device-side check: traps the kernel (the launch then fails with cudaErrorAssert).
#define HIRED_KERNEL_ASSERT(condition) assert(condition)
#elif defined(HIRED_HOST_EMULATOR)
#define HIRED_EMULATED 1  // HIRED_KERNEL_ASSERT comes from the emulator
#else
#error "hired/kernels/*.cuh are CUDA source: compile them with nvcc, or include the host emulator (hired/emulator/cuda.hpp) first"
#endif

#define HIRED_KERNEL __global__
#define HIRED_DEVICE __device__ __forceinline__

// Loop unrolling hint: nvcc's pragma; nothing for the host compiler.
#if defined(__CUDACC__)
#define HIRED_UNROLL _Pragma("unroll")
#else
#define HIRED_UNROLL
#endif

// nvcc's view of emulation_test.cpp: under __CUDACC__ only its kernel half compiles, so the
// kernels the emulator runs on the host are proven to build for the GPU too.
#include "emulation_test.cpp"

# One CUDA runtime per process: hired's kernels link the CUDA runtime of the nvcc that builds
# them, LibTorch its own; with different major versions a process would load two (for example
# libcudart.so.12 and .13), which LibTorch's streams and hired's launches must not straddle.
#
# hired_torch_cuda_version(<out> <torch prefix>): the CUDA version LibTorch was built with
#   ("13.2"), from the wheel's torch/version.py or a LibTorch archive's build-version
#   ("2.7.1+cu126"); empty for a CPU build or when neither file tells.
# hired_require_one_cuda_runtime(<torch CUDA version> <nvcc version>): a FATAL_ERROR saying
#   what to do when the major versions differ; nothing when either is unknown.

function(hired_torch_cuda_version out prefix)
  set(_version "")
  if(EXISTS "${prefix}/version.py")
    file(STRINGS "${prefix}/version.py" _line REGEX "^cuda")
    if(_line MATCHES "'([0-9]+\\.[0-9]+)")
      set(_version "${CMAKE_MATCH_1}")
    endif()
  elseif(EXISTS "${prefix}/build-version")
    file(READ "${prefix}/build-version" _line)
    if(_line MATCHES "\\+cu([0-9]+)([0-9])")
      set(_version "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}")
    endif()
  endif()
  set(${out} "${_version}" PARENT_SCOPE)
endfunction()

function(hired_require_one_cuda_runtime torch_cuda nvcc)
  if(NOT torch_cuda OR NOT nvcc)
    return()
  endif()
  string(REGEX MATCH "^[0-9]+" _torch_major "${torch_cuda}")
  string(REGEX MATCH "^[0-9]+" _nvcc_major "${nvcc}")
  if(NOT _torch_major STREQUAL _nvcc_major)
    message(FATAL_ERROR
      "hired: LibTorch is built with CUDA ${torch_cuda} but nvcc is CUDA ${nvcc}: hired's "
      "kernels would load a second CUDA runtime (libcudart.so.${_nvcc_major} next to "
      "LibTorch's libcudart.so.${_torch_major}). Use an nvcc ${_torch_major}.x "
      "(-DCMAKE_CUDA_COMPILER=/usr/local/cuda-${_torch_major}.x/bin/nvcc), a LibTorch built with "
      "CUDA ${_nvcc_major}.x (-DCMAKE_PREFIX_PATH=...), or -DHIRED_CUDA=OFF (CUDA tensors are "
      "then selected on the host).")
  endif()
endfunction()

# cmake -DSOURCE_DIR=<repo> -DWORK_DIR=<scratch> -P check_cuda_runtime.cmake
# The one-CUDA-runtime guard (cmake/HiredCudaRuntime.cmake): LibTorch's CUDA version read from
# a wheel's version.py and a LibTorch archive's build-version, and a configure error naming
# both versions and the ways out when the major versions differ.
include("${SOURCE_DIR}/cmake/HiredCudaRuntime.cmake")

function(expect what got want)
  if(NOT "${got}" STREQUAL "${want}")
    message(FATAL_ERROR "${what}: got '${got}', expected '${want}'")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(WRITE "${WORK_DIR}/wheel/version.py" "__version__ = '2.15.0+cu132'\ndebug = False\n"
                                          "cuda: Optional[str] = '13.2'\n")
file(WRITE "${WORK_DIR}/cpu_wheel/version.py" "__version__ = '2.15.0+cpu'\n"
                                              "cuda: Optional[str] = None\n")
file(WRITE "${WORK_DIR}/libtorch/build-version" "2.7.1+cu126\n")
file(MAKE_DIRECTORY "${WORK_DIR}/bare")
hired_torch_cuda_version(v "${WORK_DIR}/wheel")
expect("wheel" "${v}" "13.2")
hired_torch_cuda_version(v "${WORK_DIR}/cpu_wheel")
expect("CPU wheel" "${v}" "")
hired_torch_cuda_version(v "${WORK_DIR}/libtorch")
expect("LibTorch archive" "${v}" "12.6")
hired_torch_cuda_version(v "${WORK_DIR}/bare")
expect("no version file" "${v}" "")

# Same major, or an unknown side: accepted. Different majors: a FATAL_ERROR (child process).
hired_require_one_cuda_runtime("13.2" "13.0.88")
hired_require_one_cuda_runtime("" "13.0.88")
hired_require_one_cuda_runtime("12.6" "")
file(WRITE "${WORK_DIR}/mismatch.cmake"
     "include(\"${SOURCE_DIR}/cmake/HiredCudaRuntime.cmake\")\n"
     "hired_require_one_cuda_runtime(\"12.6\" \"13.0.88\")\n")
execute_process(COMMAND "${CMAKE_COMMAND}" -P "${WORK_DIR}/mismatch.cmake"
                RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(rc EQUAL 0)
  message(FATAL_ERROR "CUDA 12.6 LibTorch with nvcc 13.0 was accepted")
endif()
string(REGEX REPLACE "[ \n]+" " " err "${err}")
foreach(part "CUDA 12.6" "nvcc is CUDA 13.0.88" "libcudart.so.13" "libcudart.so.12"
             "cuda-12.x/bin/nvcc" "-DHIRED_CUDA=OFF")
  string(FIND "${err}" "${part}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the mismatch error does not say '${part}': ${err}")
  endif()
endforeach()
message(STATUS "one-CUDA-runtime guard: versions read, mismatch rejected")

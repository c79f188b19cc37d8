# Resolves HIRED_CUDA (AUTO | ON | OFF) into HIRED_WITH_CUDA and, when on, enables the CUDA
# language. With nvcc present the CUDA sources compile on a machine without a GPU.
include(CheckLanguage)
string(TOUPPER "${HIRED_CUDA}" _hired_cuda)
set(HIRED_WITH_CUDA OFF)
if(NOT _hired_cuda STREQUAL "OFF")
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    set(HIRED_WITH_CUDA ON)
  elseif(_hired_cuda STREQUAL "ON")
    message(FATAL_ERROR "HIRED_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER)")
  endif()
endif()
# sm_61 (Tesla P40) needs a CUDA 12.x nvcc: CUDA 13 dropped it (see README).
set(HIRED_CUDA_ARCHITECTURES "80;90" CACHE STRING "GPU architectures of hired's CUDA code")
if(HIRED_WITH_CUDA)
  enable_language(CUDA)
  # CMake 3.25 knows no C++20 dialect flag for nvcc; hired_core asks for cxx_std_20.
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA_EXTENSIONS OFF)
endif()
message(STATUS "hired: CUDA compiler '${CMAKE_CUDA_COMPILER}' -> HIRED_WITH_CUDA=${HIRED_WITH_CUDA}"
               " (architectures: ${HIRED_CUDA_ARCHITECTURES})")

# Settings every hired CUDA target shares.
function(hired_cuda_target target)
  set_target_properties(${target} PROPERTIES CUDA_ARCHITECTURES "${HIRED_CUDA_ARCHITECTURES}")
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20 --Werror all-warnings>)
endfunction()

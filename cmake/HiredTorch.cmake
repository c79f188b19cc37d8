# Finds LibTorch: through CMAKE_PREFIX_PATH / Torch_DIR when given, else the LibTorch hired
# was built with (HIRED_TORCH_PREFIX_HINT, for installed packages), else the torch wheel of the
# project's virtual environment (.venv, made by scripts/setup.sh) or of the active python3.
# Defines hired_use_torch_runtime(target): the pip wheel's CUDA libraries (nvidia/*/lib next
# to torch) are found at link time and first at run time, so one CUDA runtime is loaded.
# A CUDA LibTorch's config probes the GPU with try_run unless told the architectures; the
# probe fails without a GPU once the CUDA language is known. Only torch's own nvcc flags use it.
if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
endif()
if(NOT Torch_FOUND)
  find_package(Torch QUIET)
  if(NOT Torch_FOUND AND HIRED_TORCH_PREFIX_HINT)
    find_package(Torch QUIET PATHS "${HIRED_TORCH_PREFIX_HINT}" NO_DEFAULT_PATH)
  endif()
  if(NOT Torch_FOUND)
    # The Python package's build (scikit-build-core) names its interpreter: that torch first.
    set(_hired_pythons ${Python_EXECUTABLE} "${PROJECT_SOURCE_DIR}/.venv/bin/python" python3)
    foreach(_py IN LISTS _hired_pythons)
      execute_process(COMMAND ${_py} -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
                      OUTPUT_VARIABLE _hired_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
                      RESULT_VARIABLE _hired_rc ERROR_QUIET)
      if(_hired_rc EQUAL 0 AND EXISTS "${_hired_torch_prefix}")
        list(APPEND CMAKE_PREFIX_PATH "${_hired_torch_prefix}")
        set(HIRED_PYTHON_EXECUTABLE "${_py}")
        break()
      endif()
    endforeach()
    find_package(Torch REQUIRED)
  endif()
endif()

file(GLOB HIRED_TORCH_WHEEL_LIBDIRS LIST_DIRECTORIES true "${TORCH_INSTALL_PREFIX}/../nvidia/*/lib")

function(hired_use_torch_runtime target)
  get_target_property(_type ${target} TYPE)
  set(_scope PRIVATE)
  if(_type STREQUAL "SHARED_LIBRARY")
    set(_scope PUBLIC)  # whoever links the library links torch_cuda's dependencies too
  endif()
  foreach(_dir IN LISTS HIRED_TORCH_WHEEL_LIBDIRS)
    target_link_options(${target} ${_scope} "LINKER:-rpath-link,${_dir}")
  endforeach()
  if(_type STREQUAL "EXECUTABLE" OR _type STREQUAL "SHARED_LIBRARY")
    set_property(TARGET ${target} APPEND PROPERTY BUILD_RPATH ${HIRED_TORCH_WHEEL_LIBDIRS})
    set_property(TARGET ${target} APPEND PROPERTY INSTALL_RPATH ${HIRED_TORCH_WHEEL_LIBDIRS}
                 "${TORCH_INSTALL_PREFIX}/lib")
  endif()
endfunction()

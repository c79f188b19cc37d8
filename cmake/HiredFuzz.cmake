# The libFuzzer targets of fuzz/ (one per reader of untrusted files) and their CTest tests.
#
# The project's compiler is g++, which has no libFuzzer, and one CMake build has one C++
# compiler; so fuzz/ is a CMake project of its own that the main build runs as an
# ExternalProject with clang (HIRED_FUZZ_CLANG) and hired::io's source list: the targets compile
# the product's own sources under ASan + UBSan + libFuzzer's coverage, and nothing in the
# product depends on them.
#
# HIRED_FUZZ: AUTO (default) builds and tests them when clang++ can link -fsanitize=fuzzer
#   (scripts/setup.sh installs clang-16 and libclang-rt-16-dev), and otherwise says why and
#   skips them; ON makes that a configure error; OFF drops them. Never part of the Python build.
# Tests (label fuzz): fuzz.<target> runs a bounded number of executions from a copy of the
#   committed seed corpus (fuzz/corpus/<target>; the copy, not the corpus, receives new inputs)
#   and fails on any crash, sanitizer report, leak, timeout or out-of-memory.
set(HIRED_FUZZ AUTO CACHE STRING "Build the libFuzzer targets (fuzz/) with clang: AUTO, ON, OFF")
set_property(CACHE HIRED_FUZZ PROPERTY STRINGS AUTO ON OFF)
find_program(HIRED_FUZZ_CLANG NAMES clang++-16 DOC "clang++ with libFuzzer, for fuzz/")
set(HIRED_FUZZ_RUNS 20000 CACHE STRING "Executions per fuzz target in each fuzz.* test")

# Whether clang++ links a libFuzzer program under the sanitizers; the reason when not.
function(_hired_fuzz_probe out_reason)
  if(NOT HIRED_FUZZ_CLANG)
    set(${out_reason} "no clang++-16 (scripts/setup.sh installs clang-16)" PARENT_SCOPE)
    return()
  endif()
  set(_dir "${PROJECT_BINARY_DIR}/fuzz_probe")
  file(WRITE "${_dir}/probe.cpp" [[
#include <cstddef>
#include <cstdint>
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }
]])
  execute_process(COMMAND ${HIRED_FUZZ_CLANG} -fsanitize=fuzzer,address,undefined
                          "${_dir}/probe.cpp" -o "${_dir}/probe"
                  RESULT_VARIABLE _status ERROR_VARIABLE _error OUTPUT_QUIET)
  if(_status EQUAL 0)
    set(${out_reason} "" PARENT_SCOPE)
  else()
    string(REGEX REPLACE "\n.*" "" _error "${_error}")  # the first line says enough
    set(${out_reason} "${HIRED_FUZZ_CLANG} cannot link -fsanitize=fuzzer (libclang-rt-16-dev \
missing?) ${_error}" PARENT_SCOPE)
  endif()
endfunction()

function(hired_fuzz_targets)
  if(HIRED_FUZZ STREQUAL "OFF")
    return()
  endif()
  _hired_fuzz_probe(_missing)
  if(_missing)
    if(HIRED_FUZZ STREQUAL "ON")
      message(FATAL_ERROR "hired: HIRED_FUZZ=ON, but ${_missing}")
    endif()
    message(STATUS "hired: fuzz targets skipped: ${_missing}")
    return()
  endif()
  message(STATUS "hired: fuzz targets (label fuzz) with ${HIRED_FUZZ_CLANG}")

  include(ExternalProject)
  set(_build "${PROJECT_BINARY_DIR}/fuzz")
  ExternalProject_Add(hired_fuzz
    SOURCE_DIR "${PROJECT_SOURCE_DIR}/fuzz"
    BINARY_DIR "${_build}"
    CMAKE_ARGS -DCMAKE_CXX_COMPILER=${HIRED_FUZZ_CLANG}  # flags: fuzz/CMakeLists.txt, asserts on
    CMAKE_CACHE_ARGS "-DHIRED_IO_SOURCES:STRING=${HIRED_IO_SOURCES}"
    BUILD_ALWAYS ON       # the io sources change without the sub-build's knowledge
    INSTALL_COMMAND ""
    USES_TERMINAL_BUILD ON)

  if(NOT HIRED_TESTS)
    return()
  endif()
  find_program(HIRED_FUZZ_SYMBOLIZER NAMES llvm-symbolizer-16 llvm-symbolizer)
  # target, its -max_len (the largest seed with room to grow) and its dictionary (fuzz/*.dict;
  # none: without one).
  set(_targets config_json 8192 json image 8192 image pixel_values 16384 safetensors
               safetensors 8192 safetensors selection_input 8192 safetensors
               tokenizer 16384 none weight_index 16384 json)
  while(_targets)
    list(POP_FRONT _targets _target _max_len _dictionary)
    add_test(NAME fuzz.${_target} COMMAND ${CMAKE_COMMAND}
             "-DFUZZER=${_build}/fuzz_${_target}"
             "-DCORPUS=${PROJECT_SOURCE_DIR}/fuzz/corpus/${_target}"
             "-DDICTIONARY=${PROJECT_SOURCE_DIR}/fuzz/${_dictionary}.dict"
             "-DWORK_DIR=${_build}/runs/${_target}" "-DRUNS=${HIRED_FUZZ_RUNS}"
             "-DMAX_LEN=${_max_len}" "-DSYMBOLIZER=${HIRED_FUZZ_SYMBOLIZER}"
             -P "${PROJECT_SOURCE_DIR}/fuzz/run_target.cmake")
    set_tests_properties(fuzz.${_target} PROPERTIES LABELS fuzz TIMEOUT 600)
  endwhile()
endfunction()

# Fails unless ARTEFACT holds SASS for sm_ARCH, read from the cubin's own ELF header (not only
# a PTX image, nor only the fatbin's label), and that cubin has code for every kernel that
# nvcc compiled into REFERENCE (the main hired_kernels objects): a kernel that silently
# disappears for sm_ARCH (an #if __CUDA_ARCH__ branch, a forgotten instantiation) fails here.
#   cmake -DCUOBJDUMP=... -DARTEFACT=lib.a -DARCH=61 [-DREFERENCE=a.o;b.o] -P check_sm61.cmake
# MISSING, when set, is why the artefact could not be built or checked: the test fails with it.
cmake_minimum_required(VERSION 3.25)
if(DEFINED MISSING)
  message(FATAL_ERROR "cannot build or check the sm_${ARCH} kernels: ${MISSING}\n"
                      "Run scripts/setup.sh, or configure with -DHIRED_SM61=OFF to drop it.")
endif()

# Kernels per architecture, as "NN:name;NN:name..." from `cuobjdump -elf`: each ELF starts
# with a line from its header, "64bit elf: type=2, abi=7, sm=61, ..." (CUDA 12 cubins) or
# "64-bit ELF: type=ET_EXEC, ABI=8, sm=80, ..." (CUDA 13), and lists its kernels as sections
# .text.<mangled name>.
function(sass_kernels object out_var)
  execute_process(COMMAND "${CUOBJDUMP}" -elf "${object}" OUTPUT_VARIABLE dump
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cuobjdump -elf ${object} failed (${rc}): ${err}")
  endif()
  string(REGEX MATCHALL "[Ee][Ll][Ff]: [^\n]*sm=[0-9]+|\\.text\\.[A-Za-z0-9_$]+" tokens "${dump}")
  set(sm "")
  set(result "")
  foreach(token IN LISTS tokens)
    if(token MATCHES "sm=([0-9]+)$")
      set(sm "${CMAKE_MATCH_1}")
    elseif(sm)
      string(REGEX REPLACE "^\\.text\\." "" name "${token}")
      list(APPEND result "${sm}:${name}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES result)
  set(${out_var} "${result}" PARENT_SCOPE)
endfunction()

sass_kernels("${ARTEFACT}" found)
set(mine "")
foreach(entry IN LISTS found)
  if(entry MATCHES "^${ARCH}:(.*)$")
    list(APPEND mine "${CMAKE_MATCH_1}")
  endif()
endforeach()
list(LENGTH mine count)
if(count EQUAL 0)
  execute_process(COMMAND "${CUOBJDUMP}" --list-elf --list-ptx "${ARTEFACT}" OUTPUT_VARIABLE listing
                  ERROR_VARIABLE listing)
  message(FATAL_ERROR "${ARTEFACT}: no sm_${ARCH} SASS (no cubin whose ELF header says "
                      "sm=${ARCH}, or one without kernels). cuobjdump lists:\n${listing}")
endif()

set(expected "")
foreach(object IN LISTS REFERENCE)
  sass_kernels("${object}" reference)
  foreach(entry IN LISTS reference)
    string(REGEX REPLACE "^[0-9]+:" "" name "${entry}")
    list(APPEND expected "${name}")
  endforeach()
endforeach()
list(REMOVE_DUPLICATES expected)
if(REFERENCE AND NOT expected)
  message(FATAL_ERROR "no kernels found in the reference ${REFERENCE}: cannot compare")
endif()
set(absent "")
foreach(name IN LISTS expected)
  if(NOT name IN_LIST mine)
    list(APPEND absent "${name}")
  endif()
endforeach()
if(absent)
  list(JOIN absent "\n  " absent)
  message(FATAL_ERROR "${ARTEFACT}: kernels nvcc built for the other architectures have no "
                      "sm_${ARCH} SASS:\n  ${absent}")
endif()
list(LENGTH expected reference_count)
list(JOIN mine "\n  " mine)
message(STATUS "sm_${ARCH} SASS in ${ARTEFACT}: ${count} kernels "
               "(${reference_count} in the reference build):\n  ${mine}")

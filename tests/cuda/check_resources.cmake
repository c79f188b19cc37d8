# Fails unless every kernel in OBJECTS (object files or archives) runs without a stack frame or
# local memory on every architecture it was built for: no register spills, no parameter copied
# to local memory, no out-of-line call (cuobjdump -res-usage: STACK:0 and LOCAL:0).
set(kernels 0)
foreach(object IN LISTS OBJECTS)
  execute_process(COMMAND "${CUOBJDUMP}" -res-usage "${object}" OUTPUT_VARIABLE usage
                  RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "cuobjdump -res-usage ${object} failed (${rc}): ${err}")
  endif()
  string(REPLACE "\n" ";" lines "${usage}")
  set(arch "?")
  set(function "?")
  foreach(line IN LISTS lines)
    if(line MATCHES "arch = (sm_[0-9]+)")
      set(arch "${CMAKE_MATCH_1}")
    elseif(line MATCHES "Function ([^:]+):")
      set(function "${CMAKE_MATCH_1}")
    elseif(line MATCHES "REG:([0-9]+) STACK:([0-9]+) SHARED:([0-9]+) LOCAL:([0-9]+)")
      math(EXPR kernels "${kernels} + 1")
      if(NOT CMAKE_MATCH_2 EQUAL 0 OR NOT CMAKE_MATCH_4 EQUAL 0)
        message(FATAL_ERROR "${arch} ${function}: ${CMAKE_MATCH_1} registers, stack "
                            "${CMAKE_MATCH_2} B, local ${CMAKE_MATCH_4} B (expected no stack, "
                            "no local memory)")
      endif()
    endif()
  endforeach()
endforeach()
if(kernels EQUAL 0)
  message(FATAL_ERROR "no kernel found in ${OBJECTS}")
endif()
message(STATUS "${kernels} kernel images, none with a stack frame or local memory")

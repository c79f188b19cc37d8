# One fuzz.<target> test (cmake/HiredFuzz.cmake): RUNS executions of FUZZER from a fresh copy of
# its seed corpus CORPUS in WORK_DIR (libFuzzer writes the inputs it finds into the first
# corpus directory; the committed one is never written), with a fixed seed so that a failure
# reproduces. Fails, with libFuzzer's report, on a crash, a sanitizer report, a leak, an input
# that runs over 30 s or an allocation beyond 512 MB; the input is then in WORK_DIR/artifacts.
foreach(var FUZZER CORPUS WORK_DIR RUNS MAX_LEN)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_target.cmake: ${var} is not set")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/corpus" "${WORK_DIR}/artifacts")
file(COPY "${CORPUS}/" DESTINATION "${WORK_DIR}/corpus")

set(args -runs=${RUNS} -seed=1 -max_len=${MAX_LEN} -timeout=30 -rss_limit_mb=2048
         -malloc_limit_mb=512 -artifact_prefix=${WORK_DIR}/artifacts/ -print_final_stats=1)
if(DICTIONARY AND EXISTS "${DICTIONARY}")
  list(APPEND args -dict=${DICTIONARY})
endif()
if(SYMBOLIZER)
  set(ENV{ASAN_SYMBOLIZER_PATH} "${SYMBOLIZER}")
endif()
set(ENV{UBSAN_OPTIONS} "print_stacktrace=1")
execute_process(COMMAND "${FUZZER}" ${args} "${WORK_DIR}/corpus"
                RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${status}); reproducer in ${WORK_DIR}/artifacts:\n"
                      "${output}")
endif()
string(REGEX MATCH "#[0-9]+[ \t]+DONE[^\n]*" done "${output}")
message(STATUS "${done}")

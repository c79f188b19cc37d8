# The packaging contract: install the build tree into a scratch prefix, then build and run one
# consumer of each installed component with find_package(hired COMPONENTS ...), as a user
# would (examples/<name>), and check what each prints.
#   cmake -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK_DIR=... -DCOMPONENTS="core;io;..." -P consumers.cmake
cmake_policy(SET CMP0057 NEW)  # if(IN_LIST) in script mode
file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

# consumer(<example> <component> <regex the program must print> [program arguments...])
function(consumer example component expect)
  if(NOT component IN_LIST COMPONENTS)
    message(STATUS "consumers: ${example} skipped (component ${component} not built)")
    return()
  endif()
  set(build "${WORK_DIR}/${example}")
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/examples/${example}" -B "${build}"
      "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_BUILD_TYPE=Release
      "-DHIRED_EMULATOR_INCLUDE=${SOURCE_DIR}/emulator/include")
  run(${CMAKE_COMMAND} --build "${build}" -j 2)
  run("${build}/${example}" ${ARGN})  # each example's program is named after its folder
  if(NOT out MATCHES "${expect}")
    message(FATAL_ERROR "${example} printed:\n${out}\nexpected: ${expect}")
  endif()
  message(STATUS "consumers: ${example} (hired::${component}): ${out}")
endfunction()

run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
consumer(budgets core "budgets: 5 partitions.*kept 576 of 576 requested")
consumer(read_checkpoint io "init_cls_attn F16 \\[5, 16, 577\\]"
         "${SOURCE_DIR}/examples/data/sample_600x600.safetensors")
consumer(kernels_on_host kernels "kept 576 of 2880 tokens.*agrees with the CPU path")
consumer(link_from_cmake hired "link_from_cmake: kept 576 of 2880")
consumer(generate llava "generate: 576 visual tokens kept; tokens [0-9]+ [0-9]+ [0-9]+ [0-9]+"
         "${SOURCE_DIR}/examples/data/sample_600x600.png")
message(STATUS "consumers: every installed component built and ran")

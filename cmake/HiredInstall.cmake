# Installation by component: each layer installs its headers and targets into an export set of
# its own (hired-<component>-targets.cmake), and find_package(hired COMPONENTS ...) loads the
# components asked for (all installed ones by default) with what they depend on.
#
# hired_install_component(<component> TARGETS <targets...> HEADERS <dir> DESTINATION <subdir>)
#   installs <dir> as include/<subdir>/ and the targets into export set hired-<component>.
# hired_install_package() writes hiredConfig.cmake, after every component was declared.
set(HIRED_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/hired)
set_property(GLOBAL PROPERTY HIRED_INSTALLED_COMPONENTS "")

function(hired_install_component component)
  if(HIRED_PYTHON)
    return()  # the wheel installs its own files (ops/CMakeLists.txt)
  endif()
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "HEADERS;DESTINATION" "TARGETS")
  install(DIRECTORY "${arg_HEADERS}"
          DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}/${arg_DESTINATION}" COMPONENT ${component})
  install(TARGETS ${arg_TARGETS} EXPORT hired-${component} COMPONENT ${component}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(EXPORT hired-${component} NAMESPACE hired:: FILE hired-${component}-targets.cmake
          DESTINATION ${HIRED_INSTALL_CMAKEDIR} COMPONENT ${component})
  set_property(GLOBAL APPEND PROPERTY HIRED_INSTALLED_COMPONENTS ${component})
endfunction()

function(hired_install_package)
  include(CMakePackageConfigHelpers)
  get_property(HIRED_INSTALLED_COMPONENTS GLOBAL PROPERTY HIRED_INSTALLED_COMPONENTS)
  set(HIRED_TORCH_PREFIX_HINT "${Torch_DIR}")
  configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/hiredConfig.cmake.in
    ${PROJECT_BINARY_DIR}/hiredConfig.cmake INSTALL_DESTINATION ${HIRED_INSTALL_CMAKEDIR})
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/hiredConfigVersion.cmake
    COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/hiredConfig.cmake
                ${PROJECT_BINARY_DIR}/hiredConfigVersion.cmake
          DESTINATION ${HIRED_INSTALL_CMAKEDIR})
  if(HIRED_TORCH)
    install(FILES ${PROJECT_SOURCE_DIR}/cmake/HiredTorch.cmake DESTINATION ${HIRED_INSTALL_CMAKEDIR})
  endif()
endfunction()

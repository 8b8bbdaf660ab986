# SPDX-License-Identifier: MIT
# Checks of the sources themselves, run by CI and by hand:
#   cmake --build build --target format-check   clang-format, .clang-format: fails on any difference
#   cmake --build build --target format         rewrites the sources in that style
#   cmake --build build --target tidy-check     clang-tidy, .clang-tidy, on the library's sources
#                                               (and the headers they include): fails on any finding
# Each is defined only when its tool is found (Debian: clang-format,
# clang-tidy; tools/install-deps.sh --checks installs both).
find_program(PROCPOOL_CLANG_FORMAT NAMES clang-format clang-format-14)
find_program(PROCPOOL_RUN_CLANG_TIDY NAMES run-clang-tidy run-clang-tidy-14)

if(PROCPOOL_CLANG_FORMAT)
  set(format_dirs procpool tests examples bench soak fuzz)
  set(format_sources "")
  foreach(dir IN LISTS format_dirs)
    file(GLOB_RECURSE found RELATIVE ${PROJECT_SOURCE_DIR} CONFIGURE_DEPENDS
      ${PROJECT_SOURCE_DIR}/${dir}/*.cpp ${PROJECT_SOURCE_DIR}/${dir}/*.hpp)
    list(APPEND format_sources ${found})
  endforeach()
  add_custom_target(format-check
    COMMAND ${PROCPOOL_CLANG_FORMAT} --dry-run --Werror ${format_sources}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    COMMENT "clang-format --dry-run --Werror on ${PROJECT_NAME}'s sources"
    VERBATIM)
  add_custom_target(format
    COMMAND ${PROCPOOL_CLANG_FORMAT} -i ${format_sources}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    COMMENT "clang-format -i on ${PROJECT_NAME}'s sources"
    VERBATIM)
endif()

if(PROCPOOL_RUN_CLANG_TIDY)
  # clang-tidy reads each file's flags from the compilation database; set
  # before the library's target is made, which takes it from this variable.
  set(CMAKE_EXPORT_COMPILE_COMMANDS ON)
  cmake_host_system_information(RESULT tidy_jobs QUERY NUMBER_OF_LOGICAL_CORES)
  # run-clang-tidy takes its argument as a pattern over the database's
  # absolute paths: every source under procpool/ that this build compiles
  # (the MPI backend's too, when it is on).
  add_custom_target(tidy-check
    COMMAND ${PROCPOOL_RUN_CLANG_TIDY} -quiet -j ${tidy_jobs} -p ${PROJECT_BINARY_DIR}
            "^${PROJECT_SOURCE_DIR}/procpool/"
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    COMMENT "clang-tidy (.clang-tidy) on ${PROJECT_NAME}'s library sources"
    VERBATIM)
endif()

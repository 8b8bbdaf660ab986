# SPDX-License-Identifier: MIT
# Checks of the sources themselves, run by CI and by hand:
#   cmake --build build --target format-check   clang-format, .clang-format: fails on any difference
#   cmake --build build --target format         rewrites the sources in that style
# Defined only when clang-format is found (Debian: clang-format).
find_program(PROCPOOL_CLANG_FORMAT NAMES clang-format clang-format-14)
if(NOT PROCPOOL_CLANG_FORMAT)
  return()
endif()
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

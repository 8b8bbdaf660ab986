# SPDX-License-Identifier: MIT
# Line coverage of the library's sources (procpool/ only: not the tests,
# benchmarks, soak, fuzzers or examples), in a build configured with
# -DPROCPOOL_COVERAGE=ON (Debian: gcovr, tools/install-deps.sh --coverage):
#   ctest --test-dir build-cov                      runs the suites; every process adds to the counts
#   cmake --build build-cov --target coverage       prints the summary; per-file report in coverage.txt
#   cmake --build build-cov --target coverage-reset deletes the counts, for a fresh run
find_program(PROCPOOL_GCOVR NAMES gcovr)
if(NOT PROCPOOL_GCOVR)
  message(WARNING "PROCPOOL_COVERAGE: gcovr not found (tools/install-deps.sh --coverage); no coverage target")
  return()
endif()
# The gcov of the compiler that wrote the counts (gcov-12 for g++-12).
string(REGEX MATCH "^[0-9]+" compiler_major "${CMAKE_CXX_COMPILER_VERSION}")
find_program(PROCPOOL_GCOV NAMES gcov-${compiler_major} gcov)
set(coverage_report ${CMAKE_BINARY_DIR}/coverage.txt)
add_custom_target(coverage
  COMMAND ${PROCPOOL_GCOVR} --root ${PROJECT_SOURCE_DIR} --object-directory ${CMAKE_BINARY_DIR}
          --gcov-executable ${PROCPOOL_GCOV} -j 1
          --filter ${PROJECT_SOURCE_DIR}/procpool/
          --exclude ${PROJECT_SOURCE_DIR}/tests/ --exclude ${PROJECT_SOURCE_DIR}/bench/
          --exclude ${PROJECT_SOURCE_DIR}/soak/ --exclude ${PROJECT_SOURCE_DIR}/fuzz/
          --exclude ${PROJECT_SOURCE_DIR}/examples/
          --sort-uncovered --txt ${coverage_report} --print-summary
  COMMAND ${CMAKE_COMMAND} -E echo "coverage: per-file report (uncovered lines under Missing) in ${coverage_report}"
  WORKING_DIRECTORY ${CMAKE_BINARY_DIR}
  COMMENT "gcovr: line coverage of procpool/"
  VERBATIM)
add_custom_target(coverage-reset
  COMMAND find ${CMAKE_BINARY_DIR} -name "*.gcda" -delete
  COMMENT "Deleting the gcov counts (*.gcda) under ${CMAKE_BINARY_DIR}"
  VERBATIM)

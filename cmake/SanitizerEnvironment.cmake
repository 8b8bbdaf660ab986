# SPDX-License-Identifier: MIT
# procpool_sanitizer_environment(<test>...): in a sanitizer build
# (-DPROCPOOL_SANITIZE=...), every process of these tests writes its report
# to a file under ${CMAKE_BINARY_DIR}/sanitizer-logs/ instead of stderr:
# workers' too, whose stderr a test may capture or discard, and whose
# report would otherwise pass for the crash a test expects. .ci/run fails
# when a file is there after the suites ran. Options given after NO_LEAKS
# apply to the tests listed after it: a task that calls exit() runs
# LeakSanitizer's exit check inside a forked worker, which cannot see the
# host's (absent) threads: false leaks.
function(procpool_sanitizer_environment)
  if(NOT PROCPOOL_SANITIZE)
    return()
  endif()
  set(logs ${CMAKE_BINARY_DIR}/sanitizer-logs)
  file(MAKE_DIRECTORY ${logs})
  set(leaks TRUE)
  foreach(test IN LISTS ARGN)
    if(test STREQUAL "NO_LEAKS")
      set(leaks FALSE)
      continue()
    endif()
    if(PROCPOOL_SANITIZE MATCHES "address")
      set(asan "ASAN_OPTIONS=log_path=${logs}/asan")
      if(NOT leaks)
        string(APPEND asan ":detect_leaks=0")
      endif()
      set_property(TEST ${test} APPEND PROPERTY ENVIRONMENT "${asan}"
                   "UBSAN_OPTIONS=log_path=${logs}/ubsan:print_stacktrace=1")
    endif()
    if(PROCPOOL_SANITIZE MATCHES "thread")
      set_property(TEST ${test} APPEND PROPERTY ENVIRONMENT
                   "TSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/tsan.supp:log_path=${logs}/tsan")
    endif()
  endforeach()
endfunction()

# Every unit test registered through stls_unit_test() once more under
# valgrind memcheck: leaks and invalid accesses fail the test. Included last
# from tests/CMakeLists.txt so that the list of unit tests is complete.
#
# valgrind is a declared dependency (scripts/install-deps.sh, LAB_PKGS), so a
# missing valgrind is a configuration error rather than a reason to quietly
# run fewer tests. Under STLS_SANITIZE the binaries carry ASan, which does
# not run under valgrind; the sanitizers then do this job.
if(STLS_SANITIZE)
  message(STATUS "memcheck: STLS_SANITIZE is ON, so the unit tests are not "
                 "registered under valgrind (ASan and valgrind do not mix)")
  return()
endif()

find_program(STLS_VALGRIND valgrind)
if(NOT STLS_VALGRIND)
  message(FATAL_ERROR "valgrind not found: the memcheck_* tests need it. Install "
                      "it (scripts/install-deps.sh, or apt-get install valgrind), "
                      "or point STLS_VALGRIND at it.")
endif()

get_property(_stls_unit_tests GLOBAL PROPERTY STLS_UNIT_TESTS)
if(NOT _stls_unit_tests)
  message(FATAL_ERROR "memcheck: no unit tests registered; memcheck.cmake must "
                      "be included after the files that call stls_unit_test()")
endif()
foreach(_name IN LISTS _stls_unit_tests)
  add_test(NAME memcheck_${_name}
           COMMAND ${STLS_VALGRIND} --error-exitcode=1 --leak-check=full
                   --errors-for-leak-kinds=definite,indirect --track-origins=no -q
                   $<TARGET_FILE:${_name}>)
  set_tests_properties(memcheck_${_name} PROPERTIES LABELS memcheck)
endforeach()

# The scanner itself under valgrind, in the lab: a scan of every lab domain
# with every feature on, and probes that take the fallback paths.
add_test(NAME lab_memcheck
         COMMAND ${STLS_NETNS} bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/memcheck-scan.sh
                 $<TARGET_FILE:starttls-scan>)
set_tests_properties(lab_memcheck PROPERTIES LABELS "lab;memcheck" TIMEOUT 400)

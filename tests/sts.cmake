# MTA-STS: the TXT/policy parsers and MX matching (unit, no network), and
# the whole discovery against the HTTPS lab (tests/lab/sts: nginx serving
# policies, the lab DNS, the lab CA) inside the namespace.

stls_unit_test(test_sts ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sts.c)

# test_sts_lab fetches policies over the network, so it runs only inside the
# lab namespace, with the lab DNS (run-with-dns.sh) and nginx
# (run-with-sts.sh) started around it.
add_executable(test_sts_lab ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_sts_lab.c)
target_link_libraries(test_sts_lab PRIVATE stls PkgConfig::CMOCKA)
set(STLS_STS_LAB_RUN ${STLS_NETNS} bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/dns/run-with-dns.sh
    bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/sts/run-with-sts.sh)
add_test(NAME sts_lab COMMAND ${STLS_STS_LAB_RUN} $<TARGET_FILE:test_sts_lab>)
set_tests_properties(sts_lab PROPERTIES LABELS lab TIMEOUT 180)

# The start script must refuse to bind port 443 outside the namespace.
add_test(NAME sts_start_refuses_outside_netns
         COMMAND env -u STLS_IN_NETNS bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/sts/start-sts.sh
                 ${CMAKE_CURRENT_BINARY_DIR}/sts-refuse)
set_tests_properties(sts_start_refuses_outside_netns PROPERTIES
                     LABELS unit
                     PASS_REGULAR_EXPRESSION "run me inside tests/lab/netns-run.sh")

# The lab program under valgrind as well (see dns.cmake); the test gives its
# deadlines ten times longer (STLS_STS_LAB_SLOW).
find_program(STLS_VALGRIND valgrind)
if(STLS_VALGRIND AND NOT STLS_SANITIZE)
  add_test(NAME sts_lab_memcheck
           COMMAND ${STLS_STS_LAB_RUN} env STLS_STS_LAB_SLOW=1
                   ${STLS_VALGRIND} -q --leak-check=full --error-exitcode=99
                   $<TARGET_FILE:test_sts_lab>)
  set_tests_properties(sts_lab_memcheck PROPERTIES LABELS "lab;memcheck" TIMEOUT 400)
endif()

# Batch scanner tests: `starttls-scan scan` over the lab DNS and Postfix
# endpoints (tests/scan/), inside the lab namespace.
add_test(NAME lab_scan
         COMMAND ${STLS_NETNS} ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/scan/test_scan.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(lab_scan PROPERTIES LABELS lab TIMEOUT 300)

# The engine in-process (no subprocess): records by callback on the test's
# own loop, against the lab DNS and an SMTP listener the test starts.
add_executable(test_engine_lab ${CMAKE_CURRENT_SOURCE_DIR}/lab/test_engine_lab.c)
target_link_libraries(test_engine_lab PRIVATE stls PkgConfig::CMOCKA)
add_test(NAME engine_lab
         COMMAND ${STLS_NETNS} bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/dns/run-with-dns.sh
                 $<TARGET_FILE:test_engine_lab>)
set_tests_properties(engine_lab PROPERTIES LABELS lab TIMEOUT 120)
if(STLS_VALGRIND AND NOT STLS_SANITIZE)
  add_test(NAME engine_lab_memcheck
           COMMAND ${STLS_NETNS} bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/dns/run-with-dns.sh
                   ${STLS_VALGRIND} -q --leak-check=full --error-exitcode=99
                   $<TARGET_FILE:test_engine_lab>)
  set_tests_properties(engine_lab_memcheck PROPERTIES LABELS "lab;memcheck" TIMEOUT 300)
endif()

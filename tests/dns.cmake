# DNS stage: domain normalisation and MX rules (unit, no network), and the
# resolver against the lab DNS server (tests/lab/dns) inside the namespace.

stls_unit_test(test_domain ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_domain.c)
stls_unit_test(test_dns ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_dns.c)

# test_dns_lab sends queries, so it runs only inside the lab namespace with
# unbound started by run-with-dns.sh.
add_executable(test_dns_lab ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_dns_lab.c)
target_link_libraries(test_dns_lab PRIVATE stls PkgConfig::CMOCKA)
add_test(NAME dns_lab
         COMMAND ${STLS_NETNS} bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/dns/run-with-dns.sh
                 $<TARGET_FILE:test_dns_lab>)
set_tests_properties(dns_lab PROPERTIES LABELS lab TIMEOUT 180)

# The server script must refuse to bind port 53 outside the namespace.
add_test(NAME dns_start_refuses_outside_netns
         COMMAND env -u STLS_IN_NETNS bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/dns/start-dns.sh
                 ${CMAKE_CURRENT_BINARY_DIR}/dns-refuse)
set_tests_properties(dns_start_refuses_outside_netns PROPERTIES
                     LABELS unit
                     PASS_REGULAR_EXPRESSION "run me inside tests/lab/netns-run.sh")

# The lab program under valgrind too (memcheck.cmake covers the unit
# tests): leaks and invalid accesses on the real network paths fail it.
# Not with sanitizers, which valgrind cannot run alongside.
find_program(STLS_VALGRIND valgrind)
if(STLS_VALGRIND AND NOT STLS_SANITIZE)
  add_test(NAME dns_lab_memcheck
           COMMAND ${STLS_NETNS} bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/dns/run-with-dns.sh
                   ${STLS_VALGRIND} -q --leak-check=full --error-exitcode=99
                   $<TARGET_FILE:test_dns_lab>)
  set_tests_properties(dns_lab_memcheck PROPERTIES LABELS "lab;memcheck" TIMEOUT 300)
endif()

# DANE: TLSA usability and chain matching against real certificates
# (unit/certs/dane-*.pem and the digests OpenSSL wrote next to them, see
# unit/certs/make-dane.sh).
stls_unit_test(test_dane ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_dane.c)
target_compile_definitions(test_dane PRIVATE
  STLS_TEST_CERTS_DIR="${CMAKE_CURRENT_SOURCE_DIR}/unit/certs")

# DANE against the lab: the signed zones (nsd), the validating resolver
# (unbound) and TLSA records made from a fresh lab PKI (run-with-dns.sh
# --pki), matched against the chains of the lab's Postfix endpoints.
add_executable(test_dane_lab ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_dane_lab.c)
target_link_libraries(test_dane_lab PRIVATE stls PkgConfig::CMOCKA)
add_test(NAME dane_lab
         COMMAND ${STLS_NETNS} bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/dns/run-with-dns.sh --pki
                 $<TARGET_FILE:test_dane_lab>)
set_tests_properties(dane_lab PROPERTIES LABELS lab TIMEOUT 180)
if(STLS_VALGRIND AND NOT STLS_SANITIZE)
  add_test(NAME dane_lab_memcheck
           COMMAND ${STLS_NETNS} bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/dns/run-with-dns.sh --pki
                   ${STLS_VALGRIND} -q --leak-check=full --error-exitcode=99
                   $<TARGET_FILE:test_dane_lab>)
  set_tests_properties(dane_lab_memcheck PROPERTIES LABELS "lab;memcheck" TIMEOUT 300)
endif()

# The same cases through real Postfix (posttls-finger -l dane) against the
# lab's Postfix endpoints: the lab means what test_dane_lab asserts.
add_test(NAME dane_lab_postfix
         COMMAND ${STLS_NETNS} bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/dns/test-dane-postfix.sh)
set_tests_properties(dane_lab_postfix PROPERTIES LABELS lab TIMEOUT 300
                     PASS_REGULAR_EXPRESSION "all cases agree with Postfix")

# Malformed answers from a scripted DNS server (tests/dns/scripted_dns.py)
# through the whole program: a compression pointer into the header is
# dns-error, never null-mx.
add_test(NAME lab_dns_answers
         COMMAND ${STLS_NETNS} ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/dns/test_dns_answers.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(lab_dns_answers PROPERTIES LABELS lab TIMEOUT 120)

# A malformed --resolver is a usage error (exit 2), in the namespace so a
# wrongly accepted value could send nothing off the machine.
add_test(NAME dns_resolver_usage
         COMMAND ${STLS_NETNS} ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/dns/test_resolver_usage.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(dns_resolver_usage PROPERTIES LABELS lab TIMEOUT 120)

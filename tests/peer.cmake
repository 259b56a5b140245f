# Fault tests: the probe against a scripted SMTP peer (tests/peer/), one
# scenario per file, inside the lab namespace because they listen on loopback.
add_test(NAME lab_faults
         COMMAND ${STLS_NETNS} ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/peer/test_faults.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(lab_faults PROPERTIES LABELS lab TIMEOUT 300)

# scan's retry of a 421 (politeness), against the peer; needs the lab DNS.
add_test(NAME lab_retry
         COMMAND ${STLS_NETNS} bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/dns/run-with-dns.sh
                 ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/peer/test_retry.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(lab_retry PROPERTIES LABELS lab TIMEOUT 120)

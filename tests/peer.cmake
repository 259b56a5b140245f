# Fault tests: the probe against a scripted SMTP peer (tests/peer/), one
# scenario per file, inside the lab namespace because they listen on loopback.
add_test(NAME lab_faults
         COMMAND ${STLS_NETNS} ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/peer/test_faults.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(lab_faults PROPERTIES LABELS lab TIMEOUT 300)

# scan's politeness (retry of a 421, per-address concurrency) against the
# peer; needs the lab DNS.
add_test(NAME lab_politeness
         COMMAND ${STLS_NETNS} bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/dns/run-with-dns.sh
                 ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/peer/test_politeness.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(lab_politeness PROPERTIES LABELS lab TIMEOUT 120)

# The private-address guard (--refuse-private): a peer on 127.0.26.1 sees no
# connection and the record says blocked; without the flag, probed as ever.
add_test(NAME lab_guard
         COMMAND ${STLS_NETNS} bash ${CMAKE_CURRENT_SOURCE_DIR}/lab/dns/run-with-dns.sh
                 ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/peer/test_guard.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(lab_guard PROPERTIES LABELS lab TIMEOUT 120)

# Batch scanner tests: `starttls-scan scan` over the lab DNS and Postfix
# endpoints (tests/scan/), inside the lab namespace.
add_test(NAME lab_scan
         COMMAND ${STLS_NETNS} ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/scan/test_scan.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(lab_scan PROPERTIES LABELS lab TIMEOUT 300)

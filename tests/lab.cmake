# lab tests: real servers on loopback addresses inside a private network
# namespace (tests/lab/netns-run.sh; needs root). See tests/lab/README.md.

# Postfix lab: every endpoint probed by our binary and cross-checked against
# posttls-finger and openssl s_client.
add_test(NAME lab_postfix
         COMMAND ${STLS_NETNS} ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/lab/test_postfix.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(lab_postfix PROPERTIES LABELS lab TIMEOUT 300)

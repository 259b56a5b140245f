# Policy verdicts: unit scenarios, and the cross-check against real Postfix
# delivery in the lab (a second Postfix instance sends under each TLS level).
stls_unit_test(test_policy ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_policy.c)

add_test(NAME lab_policy_postfix
         COMMAND ${STLS_NETNS} ${STLS_PYTHON}
                 ${CMAKE_CURRENT_SOURCE_DIR}/lab/test_policy_postfix.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(lab_policy_postfix PROPERTIES LABELS lab TIMEOUT 400)

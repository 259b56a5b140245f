# The service (`starttls-scan serve`) over real HTTP on loopback, inside the
# lab namespace (tests/serve/). Needs python3-yaml, python3-prometheus-client,
# chromium and promtool (scripts/install-deps.sh).
# promtool comes out of Debian 12's prometheus .deb into the cache
# (install-deps.sh), so that the server itself is never installed.
find_program(STLS_PROMTOOL promtool PATHS /var/cache/starttls-scan/promtool)
if(NOT STLS_PROMTOOL)
  set(STLS_PROMTOOL "")
endif()
add_test(NAME serve_api
         COMMAND ${STLS_NETNS} ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/serve/test_serve.py
                 --bin $<TARGET_FILE:starttls-scan> --promtool "${STLS_PROMTOOL}")
set_tests_properties(serve_api PROPERTIES LABELS "lab;serve" TIMEOUT 180)

# The service scanning for real: jobs, ?max_age, cancel, a full queue, a
# restart mid-job, --targets, and the private-address guard, against the
# lab's Postfix and DNS (tests/serve/test_serve_scan.py).
add_test(NAME serve_scan
         COMMAND ${STLS_NETNS} ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/serve/test_serve_scan.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(serve_scan PROPERTIES LABELS "lab;serve" TIMEOUT 400)

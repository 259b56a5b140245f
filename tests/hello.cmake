# TLS handshake messages without a TLS library (scanner/hello.c): the
# ClientHello builder for legacy-version probes and the server-reply parser.
#
# test_hello checks both against flights captured from openssl s_server
# (unit/hello/, made by hello/openssl_flights.py) and hand-made ones.
stls_unit_test(test_hello ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_hello.c)
target_include_directories(test_hello PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/hello)
target_compile_definitions(test_hello PRIVATE
  STLS_TEST_HELLO_DIR="${CMAKE_CURRENT_SOURCE_DIR}/unit/hello")

# hello_tool gives the scripts the builder and the parser.
add_executable(hello_tool ${CMAKE_CURRENT_SOURCE_DIR}/hello/hello_tool.c)
target_include_directories(hello_tool PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/hello)
target_link_libraries(hello_tool PRIVATE stls)

# The same scenarios live: our ClientHellos against openssl s_server
# (TLS 1.0 to 1.3, refusals) and s_client's flights through a relay, inside
# the lab namespace.
add_test(NAME hello_openssl_lab
         COMMAND ${STLS_NETNS} ${STLS_PYTHON}
                 ${CMAKE_CURRENT_SOURCE_DIR}/hello/openssl_flights.py
                 --tool $<TARGET_FILE:hello_tool> check)
set_tests_properties(hello_openssl_lab PROPERTIES LABELS lab TIMEOUT 300)

# The fuzz target, as in unit.cmake: replayed over its corpus in CTest with
# any compiler, and a libFuzzer binary with STLS_FUZZ.
add_executable(fuzz_hello_replay ${STLS_FUZZ_DIR}/fuzz_hello.c
               ${STLS_FUZZ_DIR}/run_corpus.c ${PROJECT_SOURCE_DIR}/scanner/hello.c)
target_include_directories(fuzz_hello_replay PRIVATE ${PROJECT_SOURCE_DIR}/include
                           ${CMAKE_CURRENT_SOURCE_DIR}/hello)
add_test(NAME fuzz_hello_corpus
         COMMAND fuzz_hello_replay ${STLS_FUZZ_DIR}/corpus/hello)
set_tests_properties(fuzz_hello_corpus PROPERTIES LABELS "unit;fuzz")

if(STLS_FUZZ)
  add_executable(fuzz_hello ${STLS_FUZZ_DIR}/fuzz_hello.c
                 ${PROJECT_SOURCE_DIR}/scanner/hello.c)
  target_include_directories(fuzz_hello PRIVATE ${PROJECT_SOURCE_DIR}/include
                             ${CMAKE_CURRENT_SOURCE_DIR}/hello)
  target_compile_options(fuzz_hello PRIVATE -fsanitize=fuzzer,address,undefined
                         -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_link_options(fuzz_hello PRIVATE -fsanitize=fuzzer,address,undefined)
endif()

# The capture script starts servers, so it must refuse to run outside the
# lab namespace.
add_test(NAME hello_flights_refuse_outside_netns
         COMMAND env -u STLS_IN_NETNS ${STLS_PYTHON}
                 ${CMAKE_CURRENT_SOURCE_DIR}/hello/openssl_flights.py
                 --tool $<TARGET_FILE:hello_tool> check)
set_tests_properties(hello_flights_refuse_outside_netns PROPERTIES
                     LABELS unit
                     PASS_REGULAR_EXPRESSION "run me inside tests/lab/netns-run.sh")

# The chain a TLS <= 1.2 server sends in clear, read from the same flights
# (legacy-only servers are described from it).
stls_unit_test(test_flight ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_flight.c)
target_compile_definitions(test_flight PRIVATE
  STLS_TEST_HELLO_DIR="${CMAKE_CURRENT_SOURCE_DIR}/unit/hello")

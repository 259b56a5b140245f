# Unit tests of the pure parsers, and replay of their fuzz corpora.
stls_unit_test(test_reply ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_reply.c)
stls_unit_test(test_names ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_names.c)
stls_unit_test(test_addrguard ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_addrguard.c)
stls_unit_test(test_conn ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_conn.c)
stls_unit_test(test_cli ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cli.c)

# Each fuzz target is built twice: with run_corpus.c as main, so CTest
# replays the corpus with any compiler (and under STLS_SANITIZE), and, with
# STLS_FUZZ, as a real libFuzzer binary. Both compile the parser sources
# directly rather than linking the stls library, so the fuzzer instruments
# exactly the code under test and does not need the rest of the library.
set(STLS_FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
set(STLS_FUZZ_TARGETS reply names)
set(STLS_FUZZ_SOURCES_reply ${PROJECT_SOURCE_DIR}/scanner/reply.c)
set(STLS_FUZZ_SOURCES_names ${PROJECT_SOURCE_DIR}/scanner/names.c)

option(STLS_FUZZ "Build libFuzzer binaries for the parsers (needs clang)" OFF)
if(STLS_FUZZ AND NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "STLS_FUZZ needs clang (libFuzzer); configure with "
                      "-DCMAKE_C_COMPILER=clang. See tests/fuzz/README.md.")
endif()

foreach(target ${STLS_FUZZ_TARGETS})
  add_executable(fuzz_${target}_replay ${STLS_FUZZ_DIR}/fuzz_${target}.c
                 ${STLS_FUZZ_DIR}/run_corpus.c ${STLS_FUZZ_SOURCES_${target}})
  target_include_directories(fuzz_${target}_replay PRIVATE ${PROJECT_SOURCE_DIR}/include)
  add_test(NAME fuzz_${target}_corpus
           COMMAND fuzz_${target}_replay ${STLS_FUZZ_DIR}/corpus/${target})
  set_tests_properties(fuzz_${target}_corpus PROPERTIES LABELS "unit;fuzz")

  if(STLS_FUZZ)
    add_executable(fuzz_${target} ${STLS_FUZZ_DIR}/fuzz_${target}.c
                   ${STLS_FUZZ_SOURCES_${target}})
    target_include_directories(fuzz_${target} PRIVATE ${PROJECT_SOURCE_DIR}/include)
    target_compile_options(fuzz_${target} PRIVATE -fsanitize=fuzzer,address,undefined
                           -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer,address,undefined)
  endif()
endforeach()

# The service's change events and store.
stls_unit_test(test_diff ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_diff.c)
stls_unit_test(test_store ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_store.c)

# Fuzz targets whose code under test needs the rest of the program (c-ares,
# libidn2, cJSON, the result model): the file under test is compiled into
# the target, so libFuzzer instruments exactly it, and the stls library
# supplies everything else. As in unit.cmake, each is built as a corpus
# replay for CTest (any compiler, and under STLS_SANITIZE) and, with
# STLS_FUZZ, as a libFuzzer binary. See fuzz/README.md.
set(STLS_FUZZ_LINKED dns resume sts sts_http target writer serve_http)
set(STLS_FUZZ_SOURCES_dns ${PROJECT_SOURCE_DIR}/scanner/dns.c)
set(STLS_FUZZ_SOURCES_resume ${PROJECT_SOURCE_DIR}/scanner/input.c)
set(STLS_FUZZ_SOURCES_sts ${PROJECT_SOURCE_DIR}/scanner/sts.c)
# fuzz_sts_http.c includes sts.c itself (its HTTP callbacks are static).
set(STLS_FUZZ_SOURCES_sts_http)
set(STLS_FUZZ_SOURCES_target ${PROJECT_SOURCE_DIR}/scanner/domain.c)
# fuzz_serve_http.c includes serve.c (its handlers are static); the HTTP
# layer and the store are instrumented too.
set(STLS_FUZZ_SOURCES_serve_http ${PROJECT_SOURCE_DIR}/scanner/http.c
                                 ${PROJECT_SOURCE_DIR}/scanner/store.c
                                 ${PROJECT_SOURCE_DIR}/scanner/diff.c)
set(STLS_FUZZ_SOURCES_writer ${PROJECT_SOURCE_DIR}/scanner/writer.c
                             ${PROJECT_SOURCE_DIR}/scanner/util.c)

foreach(target ${STLS_FUZZ_LINKED})
  add_executable(fuzz_${target}_replay ${STLS_FUZZ_DIR}/fuzz_${target}.c
                 ${STLS_FUZZ_DIR}/run_corpus.c ${STLS_FUZZ_SOURCES_${target}})
  target_link_libraries(fuzz_${target}_replay PRIVATE stls)
  target_include_directories(fuzz_${target}_replay PRIVATE ${PROJECT_SOURCE_DIR}/scanner
                             ${PROJECT_BINARY_DIR}/scanner/gen)
  target_compile_definitions(fuzz_${target}_replay PRIVATE STLS_VERSION="${PROJECT_VERSION}")
  add_test(NAME fuzz_${target}_corpus
           COMMAND fuzz_${target}_replay ${STLS_FUZZ_DIR}/corpus/${target})
  set_tests_properties(fuzz_${target}_corpus PROPERTIES LABELS "unit;fuzz")

  if(STLS_FUZZ)
    add_executable(fuzz_${target} ${STLS_FUZZ_DIR}/fuzz_${target}.c
                   ${STLS_FUZZ_SOURCES_${target}})
    target_link_libraries(fuzz_${target} PRIVATE stls)
    target_include_directories(fuzz_${target} PRIVATE ${PROJECT_SOURCE_DIR}/scanner
                               ${PROJECT_BINARY_DIR}/scanner/gen)
    target_compile_definitions(fuzz_${target} PRIVATE STLS_VERSION="${PROJECT_VERSION}")
    target_compile_options(fuzz_${target} PRIVATE -fsanitize=fuzzer,address,undefined
                           -fno-sanitize-recover=undefined)
    target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer,address,undefined)
  endif()
endforeach()

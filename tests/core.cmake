# Unit tests of the result model, the JSON writer and the certificate facts.
stls_unit_test(test_result ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_result.c)
# test_result makes chosen allocations fail to walk the ENOMEM paths; the
# wrap applies to the library's calls too because stls is a static library.
target_link_options(test_result PRIVATE
  -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc)

# The certificate fixtures (and the facts OpenSSL reported about them, see
# unit/certs/make.sh) are read from the source tree.
stls_unit_test(test_cert ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_cert.c)
target_compile_definitions(test_cert PRIVATE
  STLS_TEST_CERTS_DIR="${CMAKE_CURRENT_SOURCE_DIR}/unit/certs")

# test_writer also writes every record it builds to STLS_RECORDS_OUT, one per
# line; writer_records_schema then checks that file against the published
# schema with the same validator the lab tests use. The fixture makes CTest
# run the two in order; the check is reported "Not Run" when test_writer fails.
stls_unit_test(test_writer ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_writer.c)
set(STLS_WRITER_RECORDS ${CMAKE_CURRENT_BINARY_DIR}/writer-records.ndjson)
set_tests_properties(test_writer PROPERTIES
  ENVIRONMENT "STLS_RECORDS_OUT=${STLS_WRITER_RECORDS}"
  FIXTURES_SETUP writer_records)
add_test(NAME writer_records_schema
         COMMAND ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/lib/validate.py
                 --kind probe ${STLS_WRITER_RECORDS})
set_tests_properties(writer_records_schema PROPERTIES
  LABELS "unit;schema" FIXTURES_REQUIRED writer_records)

# The command line: help, version and option spelling (no network).
add_test(NAME cli
         COMMAND ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_cli.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(cli PROPERTIES LABELS unit)

# Docs that cannot rot: every command in README.md and docs/*.md runs in the
# lab and its output is compared; docs/examples are real lab records.
add_test(NAME lab_docs
         COMMAND ${STLS_NETNS} ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/docs/test_docs.py
                 --bin $<TARGET_FILE:starttls-scan>)
set_tests_properties(lab_docs PROPERTIES LABELS "lab;docs" TIMEOUT 600)

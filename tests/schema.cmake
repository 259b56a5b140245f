# schema tests: the published JSON Schema accepts the documented examples,
# rejects records that break the contract, and the python test library
# (tests/lib/stlstest.py) that lab and peer tests use works as they expect.
add_test(NAME schema
         COMMAND ${STLS_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/schema/test_schema.py)
set_tests_properties(schema PROPERTIES LABELS unit)

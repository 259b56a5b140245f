# Chain quality and multi-store trust (scanner/chain.c): unit tests over the
# fixtures made by unit/certs/make-chain.sh, read from the source tree.
stls_unit_test(test_chain ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_chain.c)
target_compile_definitions(test_chain PRIVATE
  STLS_TEST_CHAIN_DIR="${CMAKE_CURRENT_SOURCE_DIR}/unit/certs/chain")

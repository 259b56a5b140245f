# The container path: the Kubernetes Job validates against the Kubernetes
# API schema (python3-kubernetes' models), and the checker rejects broken
# copies. The image build itself is proven by docker/build-rootfs.py,
# which takes minutes and is not part of the suite (docker/README.md).
add_test(NAME docker_k8s_schema
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/docker/test_k8s.sh)
set_tests_properties(docker_k8s_schema PROPERTIES LABELS unit TIMEOUT 60
                     ENVIRONMENT "STLS_PYTHON=${STLS_PYTHON}")

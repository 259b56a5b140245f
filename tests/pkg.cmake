# Install and packaging: cmake --install and the .deb (dpkg-buildpackage,
# lintian, dpkg --root into a scratch root). About a minute and a half on
# two busy cores, most of it the package build; label "pkg" (the sanitizer
# run skips it: it builds its own binary).
add_test(NAME package
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/pkg/test_package.sh
                 ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
set_tests_properties(package PROPERTIES LABELS pkg TIMEOUT 600)

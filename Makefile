# Convenience targets; CMake does the real work. Both top targets are
# idempotent: dependencies are installed only when missing.
#
#   make demo   install, build, start the lab on loopback, scan its domains
#   make serve-demo  the same lab, scanned through `starttls-scan serve`
#   make test   install, build (warnings are errors), run the whole suite
#               under ASan+UBSan, then the normal build's suite
#   make build  just build into build/

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CTEST_ARGS ?=

.PHONY: all deps build build-asan demo serve-demo test test-asan test-plain clean

all: build

deps:
	@if [ "$$(id -u)" -eq 0 ]; then bash scripts/install-deps.sh; \
	 else echo "make deps: run as root (or: sudo bash scripts/install-deps.sh)"; \
	      sudo bash scripts/install-deps.sh; fi

build: deps
	cmake -S . -B $(BUILD) -DSTLS_WERROR=ON >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DSTLS_WERROR=ON -DSTLS_SANITIZE=ON \
	      -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)

demo: build
	bash tests/lab/netns-run.sh bash tests/lab/demo.sh $(BUILD)/scanner/starttls-scan

serve-demo: build
	bash tests/lab/netns-run.sh bash tests/lab/serve-demo.sh $(BUILD)/scanner/starttls-scan

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -LE 'memcheck|pkg' $(CTEST_ARGS)

test-plain: build
	cd $(BUILD) && ctest --output-on-failure $(CTEST_ARGS)

# The sanitizer run comes first so the last line is the main suite's summary.
test: test-asan test-plain

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

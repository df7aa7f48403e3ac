# houston - the two commands a new user needs:
#   make run    install what is missing, build, start `houston serve`
#   make test   install what is missing, build, run every test
BUILD   ?= build
PYTHON  ?= /usr/bin/python3
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
# Warnings are errors in CI (CI=true) and when asked (WERROR=ON).
WERROR  ?= $(if $(filter true,$(CI)),ON,OFF)
SOURCES  = $(shell find src tests/unit -name '*.[ch]' 2>/dev/null)

.PHONY: all build run test unit e2e deps-build deps-test format format-check clean sanitize

all: build

deps-build:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

build: deps-build
	@cmake -S . -B $(BUILD) -DHOUSTON_WERROR=$(WERROR) > /dev/null
	cmake --build $(BUILD) -j$(JOBS)

run: build
	./$(BUILD)/houston serve

test: deps-test
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory unit e2e

unit:
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

e2e:
	HOUSTON_BIN=$(CURDIR)/$(BUILD)/houston $(PYTHON) -m pytest -v tests/e2e

format:
	clang-format -i $(SOURCES)

format-check:
	clang-format --dry-run --Werror $(SOURCES)

clean:
	rm -rf $(BUILD)

# The same tests against an AddressSanitizer + UBSan build (CI runs it).
sanitize: deps-test
	@cmake -S . -B $(BUILD)-asan -DHOUSTON_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DHOUSTON_WERROR=$(WERROR) > /dev/null
	cmake --build $(BUILD)-asan -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1 ctest --test-dir $(BUILD)-asan --output-on-failure -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 HOUSTON_BIN=$(CURDIR)/$(BUILD)-asan/houston $(PYTHON) -m pytest -q tests/e2e

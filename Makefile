# houston - the two commands a new user needs:
#   make run    install what is missing, build, start `houston serve`
#   make test   install what is missing, build, run every test
SHELL   := /bin/bash
BUILD   ?= build
PYTHON  ?= /usr/bin/python3
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
# Warnings are errors in CI (CI=true) and when asked (WERROR=ON).
WERROR  ?= $(if $(filter true,$(CI)),ON,OFF)
SOURCES  = $(shell find src tests/unit bench -name '*.[ch]' 2>/dev/null)

PREFIX  ?= /usr/local
DESTDIR ?=

.PHONY: all build run test unit e2e e2e-mariadb browser js deps-build deps-test format format-check clean sanitize fuzz \
        install deb deps-bench deploy-test bench bench-quick bench-scaleout bench-smoke check tsan cppcheck build-types

all: build

deps-build:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

deps-bench:
	@scripts/install-deps.sh bench

# The container image and the compose stack, built from Debian packages only
# (a base image by mmdebstrap, stand-ins for the MariaDB and Redis images) and
# run with podman-compose; the prototype's commands against it; everything it
# made removed. About 5 minutes, most of it apt inside the builds.
deploy-test:
	@scripts/install-deps.sh deploy
	$(PYTHON) tests/deploy/deploy_test.py

build: deps-build
	@cmake -S . -B $(BUILD) -DHOUSTON_WERROR=$(WERROR) > /dev/null
	cmake --build $(BUILD) -j$(JOBS)

run: build
	./$(BUILD)/houston serve

# bin/houston, share/man/man1/houston.1.gz, lib/systemd/system/houston.service
# and share/doc/houston under PREFIX, inside DESTDIR when given.
install: build
	DESTDIR="$(if $(DESTDIR),$(abspath $(DESTDIR)))" cmake --install $(BUILD) --prefix $(PREFIX)

# $(BUILD)/houston_<version>_<arch>.deb (dpkg-deb), checked with lintian in the tests.
deb: build
	scripts/make-deb.sh $(BUILD)

test: deps-test
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory unit e2e e2e-mariadb browser js

unit:
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

e2e:
	HOUSTON_BIN=$(CURDIR)/$(BUILD)/houston $(PYTHON) -m pytest -v tests/e2e

# The API flows once more with the store on a throwaway MariaDB server.
e2e-mariadb:
	HOUSTON_BIN=$(CURDIR)/$(BUILD)/houston tests/support/with-mariadb.sh bash -c \
	  'HOUSTON_TEST_DB_URL=$$HOUSTON_TEST_STORE_URL $(PYTHON) -m pytest -q tests/e2e/test_messaging.py tests/e2e/test_history.py tests/e2e/test_retention.py tests/e2e/test_batch.py tests/e2e/test_deletion.py'

# The web console in headless Debian Chromium, driven by npm playwright-core
# (installed into tests/browser/node_modules from the committed lock when
# that is newer than the install;
# no browser download). Writes $(BUILD)/test-output/console.png and
# operations.png; with redis-server and mariadbd, the Operations tab in the
# scale-out mode (test_console.py starts the roles, runs nodes.spec.mjs:
# operations-scaleout.png). hostile.spec.mjs:
# a page from another origin against a keyless server (docs/security.md).
browser:
	@[ tests/browser/node_modules/.package-lock.json -nt tests/browser/package-lock.json ] || \
	  (cd tests/browser && npm ci --no-audit --no-fund)
	@mkdir -p $(BUILD)/test-output
	HOUSTON_BIN=$(CURDIR)/$(BUILD)/houston HOUSTON_TEST_OUTPUT=$(CURDIR)/$(BUILD)/test-output \
	  node --test tests/browser/console.spec.mjs tests/browser/operations.spec.mjs tests/browser/hostile.spec.mjs
	HOUSTON_BROWSER=1 HOUSTON_BIN=$(CURDIR)/$(BUILD)/houston HOUSTON_TEST_OUTPUT=$(CURDIR)/$(BUILD)/test-output \
	  $(PYTHON) -m pytest -q tests/e2e/test_console.py -k scale_out_mode

# The JavaScript client (clients/js/houston.js) under Node against the real
# binary: Node's global WebSocket (Node 22+; Node 20 needs the flag). No npm
# packages. About a second.
js:
	HOUSTON_BIN=$(CURDIR)/$(BUILD)/houston node --experimental-websocket --test tests/js/houston.test.mjs

# houston, the ceiling server and nchan side by side (docs/performance.md):
# the fan-out matrix (2 subscriber counts x 4 publish depths), the steady
# rate and idle memory, 3 runs each alternating the servers, and the other
# scenarios once; tables on stdout and in bench/results/<date>-<host>.md,
# SVG plots beside it; 15-20 minutes on 2 busy cores (bounded: 1,500 s).
bench: deps-bench
	@$(MAKE) --no-print-directory build
	BUILD=$(BUILD) $(PYTHON) bench/run

# The same with one run per cell and 1 s of publishing (~4 minutes).
bench-quick: deps-bench
	@$(MAKE) --no-print-directory build
	BUILD=$(BUILD) $(PYTHON) bench/run --quick

# The scale-out mode measured (docs/performance.md, "Scale-out"): a throwaway
# MariaDB and Redis, publisher/consumer/notifier processes, wsload; every row
# 3 times, a table on stdout and in bench/results/<date>-<host>-scaleout.md,
# in under 10 minutes. REDIS=cluster runs the rows on services.RedisCluster.
bench-scaleout:
	@$(MAKE) --no-print-directory build
	BUILD=$(BUILD) $(PYTHON) bench/scaleout.py $(if $(REDIS),--redis $(REDIS))

# A tiny bench run (~10 s) that checks the tools work: nothing lost, exit 0,
# the plots well-formed.
# nchan takes part only when it is installed; the scale-out smoke (one run of
# 40 subscribers, ~3 s on a quiet machine) only when redis-server and mariadbd
# are. CI runs it; no timing is judged.
bench-smoke:
	@$(MAKE) --no-print-directory build
	BUILD=$(BUILD) $(PYTHON) bench/run --smoke
	BUILD=$(BUILD) $(PYTHON) bench/scaleout.py --smoke

format:
	clang-format -i $(SOURCES)

format-check:
	clang-format --dry-run --Werror $(SOURCES)

# Every build directory: $(BUILD) and the $(BUILD)-<type> ones (build-types,
# sanitize, tsan, fuzz).
clean:
	rm -rf $(BUILD) $(BUILD)-*

# Every build type compiles without a warning under -Werror, each in its own
# directory $(BUILD)-<type>; compiles only (every target: houston, the unit
# tests, bench/; no test runs). A warning one optimisation level shows and
# another does not (gcc -O3 inlines more and warns about what it then sees)
# otherwise breaks the build of whoever uses that type first (the image is
# Release). asan, tsan and fuzz are configured exactly as `make sanitize`,
# `make tsan` and `make fuzz` configure $(BUILD)-asan, -tsan and -fuzz, so
# those reuse the objects. fuzz is clang-14 (the whole tree, not only the
# fuzz targets: clang's warnings too). BUILD_TYPES picks some (CI skips
# relwithdebinfo: `make test` builds $(BUILD) with that type and -Werror).
BUILD_TYPES ?= debug release relwithdebinfo minsizerel asan tsan fuzz
BUILD_TYPE_debug          = -DCMAKE_BUILD_TYPE=Debug
BUILD_TYPE_release        = -DCMAKE_BUILD_TYPE=Release
BUILD_TYPE_relwithdebinfo = -DCMAKE_BUILD_TYPE=RelWithDebInfo
BUILD_TYPE_minsizerel     = -DCMAKE_BUILD_TYPE=MinSizeRel
BUILD_TYPE_asan           = -DHOUSTON_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
BUILD_TYPE_tsan           = -DHOUSTON_TSAN=ON -DCMAKE_BUILD_TYPE=Debug
BUILD_TYPE_fuzz           = -DHOUSTON_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo
build-types:
	@scripts/install-deps.sh $(if $(filter fuzz,$(BUILD_TYPES)),fuzz,test)
	@all=$$SECONDS; for t in $(BUILD_TYPES); do \
	  start=$$SECONDS; \
	  $(MAKE) --no-print-directory build-type-$$t || { echo "build-types: $$t FAILED"; exit 1; }; \
	  echo "build-types: $$t warning-free in $$((SECONDS - start)) s"; \
	done; echo "build-types: $(BUILD_TYPES): $$((SECONDS - all)) s"

build-type-%:
	@[ -n "$(BUILD_TYPE_$*)" ] || { echo "build-types: unknown type '$*' (one of: debug release relwithdebinfo minsizerel asan tsan fuzz)"; exit 2; }
	@cmake -S . -B $(BUILD)-$* $(BUILD_TYPE_$*) -DHOUSTON_WERROR=ON > /dev/null
	cmake --build $(BUILD)-$* -j$(JOBS)

# The same tests against an AddressSanitizer + UBSan build (CI runs it).
sanitize: deps-test
	@cmake -S . -B $(BUILD)-asan -DHOUSTON_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DHOUSTON_WERROR=$(WERROR) > /dev/null
	cmake --build $(BUILD)-asan -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1 ctest --test-dir $(BUILD)-asan --output-on-failure -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1 HOUSTON_SANITIZED=1 HOUSTON_BIN=$(CURDIR)/$(BUILD)-asan/houston $(PYTHON) -m pytest -q tests/e2e

# The unit tests and the end-to-end tests that exercise threads against a
# ThreadSanitizer build (CI runs it): the flush helpers (net/flush_pool.c)
# write sockets while the loop thread waits, the store has its own thread.
# Any report fails it: each process writes its reports to
# $(BUILD)-tsan/tsan-reports/ (halt_on_error stops it at the first), and the
# target fails when that directory is not empty. HOUSTON_TSAN=1 lets a test
# skip what is timing-bound under TSan (5-15x slower), with a reason.
# TSAN_E2E: the fan-out with and without helpers, TLS (encrypting on the
# loop thread beside them), the limits (many connections, slow readers), the
# messaging flows, history, guarantees, recovery and kill -9 durability (the
# store threads). About 3 minutes in all with the build on 2 idle cores.
# Not scale-out: its two-notifier tests wait on asyncio timeouts that TSan's
# slowness passes (the rest of the e2e suite was clean under TSan by hand).
TSAN_E2E ?= test_fanout.py test_tls.py test_limits.py test_messaging.py test_history.py \
            test_guarantees.py test_recovery.py test_durability.py
TSAN_REPORTS = $(CURDIR)/$(BUILD)-tsan/tsan-reports
TSAN_ENV = TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$(TSAN_REPORTS)/tsan" \
           HOUSTON_TSAN=1
tsan: deps-test
	@cmake -S . -B $(BUILD)-tsan -DHOUSTON_TSAN=ON -DCMAKE_BUILD_TYPE=Debug -DHOUSTON_WERROR=$(WERROR) > /dev/null
	cmake --build $(BUILD)-tsan -j$(JOBS)
	@rm -rf $(TSAN_REPORTS) && mkdir -p $(TSAN_REPORTS)
	$(TSAN_ENV) ctest --test-dir $(BUILD)-tsan --output-on-failure -j$(JOBS) || { cat $(TSAN_REPORTS)/* 2>/dev/null; exit 1; }
	$(TSAN_ENV) HOUSTON_SANITIZED=1 HOUSTON_BIN=$(CURDIR)/$(BUILD)-tsan/houston \
	  $(PYTHON) -m pytest -q $(addprefix tests/e2e/,$(TSAN_E2E)) || { cat $(TSAN_REPORTS)/* 2>/dev/null; exit 1; }
	@if [ -n "$$(ls -A $(TSAN_REPORTS))" ]; then cat $(TSAN_REPORTS)/*; echo "ThreadSanitizer reported (above)"; exit 1; fi
	@echo "ThreadSanitizer: no reports"

# cppcheck (Debian) over every file of the build's compile_commands.json
# (src/, tests/unit, bench/); any finding fails. Suppressions, each with its
# reason: scripts/cppcheck-suppressions.txt. About 30 s (cached in
# $(BUILD)/cppcheck: a second run checks only changed files).
CPPCHECK_CHECKS ?= warning,performance,portability
cppcheck: deps-test
	@$(MAKE) --no-print-directory build
	@mkdir -p $(BUILD)/cppcheck
	cppcheck --project=$(BUILD)/compile_commands.json --enable=$(CPPCHECK_CHECKS) \
	  --cppcheck-build-dir=$(BUILD)/cppcheck -j$(JOBS) --quiet --error-exitcode=1 --inline-suppr \
	  --suppress=missingIncludeSystem --suppressions-list=scripts/cppcheck-suppressions.txt \
	  -i $(BUILD)/generated

# libFuzzer targets (clang-14), each run for FUZZ_SECONDS on a scratch copy of
# its seed corpus in fuzz/corpus/; any crash, leak or timeout fails.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS  = ulid ws_frame json http token
fuzz:
	@scripts/install-deps.sh fuzz
	@cmake -S . -B $(BUILD)-fuzz -DHOUSTON_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHOUSTON_WERROR=$(WERROR) > /dev/null
	cmake --build $(BUILD)-fuzz -j$(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	@for t in $(FUZZ_TARGETS); do \
	  work=$$(mktemp -d) && cp fuzz/corpus/$$t/* $$work/ && \
	  echo "fuzz_$$t: $(FUZZ_SECONDS) s" && \
	  ./$(BUILD)-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix=$(BUILD)-fuzz/ $$work 2>&1 | grep -E "DONE|ERROR|SUMMARY|Test unit|deadly|timeout|runtime error|fuzz_[a-z_]+: " ; \
	  status=$${PIPESTATUS[0]}; rm -rf $$work; \
	  [ $$status -eq 0 ] || { echo "fuzz_$$t FAILED (artifacts in $(BUILD)-fuzz/)"; exit 1; }; \
	done

# The delivery checker (tests/check/README.md): randomised load and faults
# from SEED against the embedded and/or scale-out topology for CHECK_S
# seconds in all, then the invariants; exit status 1 on any violation.
# CHECK_REDIS=cluster runs the scale-out topology on a Redis Cluster.
SEED     ?=
CHECK_S  ?= 120
TOPOLOGY ?= both
HOUSTON_BIN ?= $(CURDIR)/$(BUILD)/houston
check:
	$(if $(CHECK_REDIS),CHECK_REDIS=$(CHECK_REDIS)) $(PYTHON) tests/check/check.py $(if $(SEED),--seed $(SEED)) --seconds $(CHECK_S) \
	  --topology $(TOPOLOGY) --bin $(HOUSTON_BIN) \
	  $(if $(CHECK_FAULTS),--faults $(CHECK_FAULTS)) $(if $(CHECK_SKIP),--skip-actions $(CHECK_SKIP))

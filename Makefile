# A thin wrapper over CMake (as Neovim does): the two commands of the README, and a few more.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
ARGS ?=

.PHONY: all deps configure build run test bench bench-hardening clean

all: build

deps:
	@./.ci/install-deps

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j$(JOBS) -- --no-print-directory

# Serves scripts/ on 127.0.0.1:8080 in development mode and prints how to call it. Builds
# mcp.so too, which `luamcp test` runs the specs with.
run: configure
	@cmake --build $(BUILD) -j$(JOBS) --target luamcp mcp_module -- --no-print-directory
	./$(BUILD)/luamcp serve --dev $(ARGS)

# Every test (unit, busted specs, integration with real clients), plain and under
# ASan+UBSan, in one ctest run.
test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 600

bench: configure
	@./.ci/install-deps wrk
	@cmake --build $(BUILD) -j$(JOBS) --target luamcp jose_bench floor_server -- --no-print-directory
	@cd bench/sdk && if [ ! -f node_modules/.package-lock.json ] || \
		[ package-lock.json -nt node_modules/.package-lock.json ]; then \
		npm ci --no-audit --no-fund --loglevel=error; fi
	./bench/run.sh ./$(BUILD)/luamcp

# Echo before (d9da975) and after the sandbox and edge hardening, same run; draws bench/hardening.svg.
bench-hardening: configure
	@./.ci/install-deps wrk gnuplot-nox
	@cmake --build $(BUILD) -j$(JOBS) --target luamcp -- --no-print-directory
	./bench/hardening.sh ./$(BUILD)/luamcp $(BUILD)

clean:
	rm -rf $(BUILD)

#!/bin/sh
# luamcp fuzzing driver, called by ctest (see CMakeLists.txt here) or by hand.
#
#   run.sh build <source-dir> <fuzz-build-dir> <version>
#       configure (once) and build the clang/libFuzzer targets in <fuzz-build-dir>
#   run.sh run <source-dir> <fuzz-build-dir> <name>
#       run fuzz_<name> for LUAMCP_FUZZ_SECONDS (default 10) seconds over a temporary copy
#       of <source-dir>/spec/fuzz/corpus/<name>; crash inputs go to
#       <fuzz-build-dir>/artifacts/<name>/ and make the run fail.
#
# Missing clang or libFuzzer is a failure, not a skip: these tests must not pass silently.
set -eu

die() { echo "luamcp fuzz: $*" >&2; exit 1; }

[ $# -eq 4 ] || die "usage: $0 build <src> <build-dir> <version> | run <src> <build-dir> <name>"
mode=$1 src=$2 bdir=$3 arg=$4

case "$mode" in
build)
    cc=${LUAMCP_FUZZ_CC:-clang}
    command -v "$cc" >/dev/null 2>&1 ||
        die "'$cc' not found: the fuzz tests need clang with libFuzzer (Debian: apt-get install clang libclang-rt-14-dev, or run .ci/install-deps)"
    # Probe libFuzzer + sanitizers with a tiny target before configuring anything.
    probe=$(mktemp -d)
    trap 'rm -rf "$probe"' EXIT
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
        >"$probe/probe.c"
    "$cc" -fsanitize=fuzzer,address,undefined "$probe/probe.c" -o "$probe/probe" \
        >"$probe/log" 2>&1 || {
        cat "$probe/log" >&2
        die "'$cc -fsanitize=fuzzer,address,undefined' does not link: libFuzzer/sanitizer runtimes missing (Debian: apt-get install libclang-rt-14-dev)"
    }
    if [ ! -f "$bdir/CMakeCache.txt" ]; then
        cmake -S "$src/spec/fuzz/build" -B "$bdir" -DCMAKE_C_COMPILER="$cc" \
            -DCMAKE_BUILD_TYPE=None -DLUAMCP_SOURCE_DIR="$src" -DLUAMCP_VERSION="$arg" ||
            die "configuring the fuzz build in $bdir failed"
    fi
    jobs=$(nproc 2>/dev/null || echo 2)
    cmake --build "$bdir" -j "$jobs" || die "building the fuzzers in $bdir failed"
    ;;
run)
    name=$arg
    exe=$bdir/fuzz_$name
    seeds=$src/spec/fuzz/corpus/$name
    [ -x "$exe" ] || die "$exe is missing: the fuzz_build test (fixture) must pass first"
    [ -d "$seeds" ] || die "no seed corpus at $seeds"
    secs=${LUAMCP_FUZZ_SECONDS:-10}
    arts=$bdir/artifacts/$name
    mkdir -p "$arts"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir "$work/corpus"
    cp "$seeds"/* "$work/corpus/"
    # Sanitizer reports end the process with a non-zero status, which libFuzzer reports.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    export ASAN_OPTIONS UBSAN_OPTIONS
    echo "luamcp fuzz: fuzz_$name for ${secs}s, seeds $seeds"
    status=0
    "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$arts/" "$work/corpus" "$seeds" >"$work/log" 2>&1 || status=$?
    cat "$work/log"
    if [ "$status" -ne 0 ]; then
        echo "luamcp fuzz: fuzz_$name FAILED (exit $status)" >&2
        crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/log")
        if [ -n "$crash" ]; then
            echo "crash input: $crash" >&2
            echo "reproduce:   $exe $crash" >&2
        else
            echo "no crash input was written; see the log above (artifacts dir: $arts)" >&2
        fi
        exit 1
    fi
    echo "luamcp fuzz: fuzz_$name clean, corpus grew to $(find "$work/corpus" -type f | wc -l) inputs"
    ;;
*)
    die "unknown mode '$mode'"
    ;;
esac

#!/usr/bin/env bash
# Builds snakefleet and runs every test: the Criterion suites (ASan+UBSan
# build), a valgrind pass over every Criterion suite, pytest, short bounded
# libFuzzer runs, and the integration tests against a real Kafka (KRaft, from
# Maven Central jars) and a real redis-server, both started and stopped here
# on loopback. Installs what is missing first (deploy/setup.sh).
#
#   tests/run.sh            everything
#   FUZZ_SECONDS=0 …        skip fuzzing;  SKIP_INTEGRATION=1 … skip Kafka/Redis
#   SKIP_NEMESIS=1 …        skip the fleet-across-hosts scenarios (tests/nemesis)
#   FUZZ_BUILD_DIR=DIR …    the libFuzzer build's directory (default build/fuzz)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FUZZ_SECONDS="${FUZZ_SECONDS:-15}"
FUZZ_DIR="${FUZZ_BUILD_DIR:-build/fuzz}"
JOBS="$(nproc)"

"$ROOT/deploy/setup.sh" || { echo "run.sh: setup failed" >&2; exit 1; }
PY="$ROOT/.venv/bin/python"

passed=0
failed=0
failures=()
stage() { # stage NAME CMD… — runs one stage and records its outcome
    local name="$1"
    shift
    echo "=== $name"
    local t0=$SECONDS
    if "$@"; then
        passed=$((passed + 1))
        echo "=== $name: ok ($((SECONDS - t0)) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "=== $name: FAILED ($((SECONDS - t0)) s)"
    fi
}

build_asan() {
    cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSF_SANITIZE=ON >/dev/null &&
        cmake --build build/asan -j "$JOBS"
}
build_release() {
    cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
        cmake --build build/release -j "$JOBS"
}
fuzz_built=0 # set by build_fuzz: the fuzz stage tells a failed build from a crash
build_fuzz() {
    CC=clang cmake -S . -B "$FUZZ_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSF_FUZZ=ON \
        -DSF_SANITIZE=ON -DSF_TESTS=OFF >/dev/null && cmake --build "$FUZZ_DIR" -j "$JOBS" &&
        fuzz_built=1
}
criterion() {
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --test-dir build/asan --output-on-failure --timeout 600
}
valgrind_suites() {
    # Every suite ctest knows (tests/unit/CMakeLists.txt registers them), each
    # under valgrind. Python workers and redis-server are skipped: valgrind checks our C.
    local t bin suites n=0 rc=0
    suites=$(ctest --test-dir build/release -N | sed -n 's/^ *Test *#[0-9]*: //p')
    [[ -n "$suites" ]] || { echo "valgrind: ctest lists no suite in build/release" >&2; return 1; }
    for t in $suites; do
        bin="build/release/tests/unit/$t"
        [[ -x "$bin" ]] || { echo "valgrind: $t is registered, but there is no $bin" >&2; rc=1; continue; }
        n=$((n + 1))
        valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
            --trace-children=yes --trace-children-skip='*python*,*redis*' \
            "$bin" --jobs 1 >/dev/null 2>"build/valgrind-$t.log" ||
            { echo "valgrind: $t failed, see build/valgrind-$t.log" >&2; tail -30 "build/valgrind-$t.log" >&2; rc=1; }
    done
    echo "valgrind: $n suites run"
    return $rc
}
pytest_all() {
    "$PY" -m pytest -q python/tests
}
python_lint() {
    "$PY" -m ruff check python && "$PY" -m ruff format --check python && "$PY" -m mypy python/snakefleet
}
c_format() {
    local files
    files=$(git ls-files '*.c' '*.h')
    [[ -z "$files" ]] || clang-format --dry-run --Werror $files
}
fuzz() {
    local t dir bin log rc before artifacts
    for t in fuzz_frame_reader fuzz_request; do
        bin="$FUZZ_DIR/tests/fuzz/$t"
        log="$FUZZ_DIR/$t.log"
        if ((!fuzz_built)); then # an older binary may be there: it would test stale code
            echo "fuzz: $t not run: the libFuzzer build failed (see its stage above)" >&2
            return 1
        elif [[ ! -x "$bin" ]]; then
            echo "fuzz: $t binary missing: no $bin after a successful build" >&2
            return 1
        fi
        dir="$FUZZ_DIR/corpus-$t"
        mkdir -p "$dir"
        case $t in
        fuzz_frame_reader) cp schemas/vectors/frame/*.msgpack "$dir"/ ;;
        fuzz_request) cp schemas/vectors/request/*.msgpack "$dir"/ ;;
        esac
        # A finding leaves an artifact (crash-, leak-, timeout-, oom-, slow-unit-…):
        # one that was not there before the run.
        before=$(find "$FUZZ_DIR" -maxdepth 1 -name "$t-*-*" | sort)
        rc=0
        "$bin" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 \
            -artifact_prefix="$FUZZ_DIR/$t-" "$dir" 2>"$log" || rc=$?
        artifacts=$(comm -13 <(echo "$before") <(find "$FUZZ_DIR" -maxdepth 1 -name "$t-*-*" | sort))
        if [[ -n "$artifacts" ]]; then
            echo "fuzz: $t found a crash ($artifacts), see $log (exit $rc)" >&2
            tail -40 "$log" >&2
            return 1
        elif ((rc != 0)); then
            echo "fuzz: $t failed without a finding (exit $rc: could not run?), see $log" >&2
            tail -20 "$log" >&2
            return 1
        fi
        grep -E "^Done [0-9]+ runs" "$log"
    done
}

stage "build (ASan+UBSan)" build_asan
stage "build (release)" build_release
stage "C format" c_format
stage "Criterion (ASan+UBSan)" criterion
stage "valgrind (C suites)" valgrind_suites
stage "pytest" pytest_all
stage "Python lint and types" python_lint
if [[ "$FUZZ_SECONDS" != 0 ]]; then
    stage "build (libFuzzer)" build_fuzz
    stage "fuzz (${FUZZ_SECONDS}s per target)" fuzz
fi
if [[ -z "${SKIP_INTEGRATION:-}" && -x tests/integration/run.sh ]]; then
    stage "integration (real Kafka, real Redis)" tests/integration/run.sh
fi
nemesis() {
    "$PY" -m ruff check tests/nemesis && "$PY" -m ruff format --check tests/nemesis &&
        "$PY" -m mypy --ignore-missing-imports tests/nemesis/*.py &&
        SNAKEFLEET_NEMESIS_SKIP_BUILD=1 tests/nemesis/run.sh
}
if [[ -z "${SKIP_NEMESIS:-}" && -z "${SKIP_INTEGRATION:-}" ]]; then
    stage "nemesis (hosts in network namespaces, faults injected)" nemesis
fi

echo
echo "stages: $passed passed, $failed failed"
((failed == 0)) || { printf '  failed: %s\n' "${failures[@]}"; exit 1; }

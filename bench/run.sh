#!/usr/bin/env bash
# bench/run.sh pool — the pool benchmark and its baselines (see bench/README.md).
# bench/run.sh e2e  — end to end on a real Kafka and Redis: see bench/e2e.sh.
#
# Installs what is missing (deploy/setup.sh, dspy into the venv), builds the
# release tree, then measures, all in one run so that every ratio compares
# figures taken minutes apart on the same (shared, noisy) machine:
#   1. pool_bench vs raw_echo vs mp_pool.py (multiprocessing.Pool on the same
#      no-op), interleaved and repeated, 2 workers at pipeline depths 1, 8, 32
#      and 1 worker at depths 1 and 8; then the other multiprocessing ways
#   3. a backlog run (2048 calls queued) and the head-of-line table (one
#      session in 8 sleeps 5 ms), depth 1 vs 8
#   4. spawn-to-ready with preload=dspy: zygote fork vs exec + import
# Prints the tables and, as its last line, one JSON object with the headline
# figures; everything is also saved under bench/out/.
#
# Environment: BENCH_SECONDS (measured seconds per run, 1.5), BENCH_REPS
# (repetitions of the 2-worker points, 5), BENCH_BUILD_DIR (build/release).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

what="${1:-pool}"
if [[ "$what" == "e2e" ]]; then
  # The end-to-end benchmark on a real Kafka and Redis: bench/e2e.sh.
  exec bash "$ROOT/bench/e2e.sh" "${@:2}"
fi
if [[ "$what" != "pool" ]]; then
  echo "usage: bench/run.sh pool|e2e" >&2
  exit 2
fi

SECONDS_PER_RUN="${BENCH_SECONDS:-1.5}"
WARMUP="0.5"
REPS="${BENCH_REPS:-5}"
BUILD="${BENCH_BUILD_DIR:-$ROOT/build/release}"
PY="$ROOT/.venv/bin/python"
OUT="$ROOT/bench/out"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$OUT/pool-$STAMP.jsonl"
LOG="$OUT/pool-$STAMP.log"
mkdir -p "$OUT"
: >"$RESULTS"
: >"$LOG"

say() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------- setup, build
bash "$ROOT/deploy/setup.sh"

PRELOAD="dspy"
PRELOAD_NOTE="dspy"
if ! "$PY" -c "import dspy" >/dev/null 2>&1; then
  say "installing dspy into the venv (for the spawn-to-ready measurement)"
  if ! "$PY" -m pip install -q dspy >>"$LOG" 2>&1 || ! "$PY" -c "import dspy" >/dev/null 2>&1; then
    # Fallback: a heavy import list of the standard library (and numpy if present).
    PRELOAD="asyncio,email.mime.multipart,http.client,xml.etree.ElementTree,sqlite3,decimal,ssl"
    PRELOAD+=",urllib.request,multiprocessing,concurrent.futures,unittest,logging.handlers,json"
    if "$PY" -c "import numpy" >/dev/null 2>&1; then PRELOAD="numpy,$PRELOAD"; fi
    PRELOAD_NOTE="FALLBACK (dspy could not be installed): $PRELOAD"
    say "dspy unavailable; preload falls back to: $PRELOAD"
  fi
fi
if [[ "$PRELOAD" == "dspy" ]]; then
  PRELOAD_NOTE="dspy $("$PY" -c 'import importlib.metadata as m; print(m.version("dspy"))')"
fi

say "building $BUILD"
if ! cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >>"$LOG" 2>&1 ||
  ! cmake --build "$BUILD" --target pool_bench raw_echo >>"$LOG" 2>&1; then
  say "the build failed (full log: $LOG):"
  grep -E "error|FAILED" "$LOG" | head -n 20 >&2 || tail -n 20 "$LOG" >&2
  exit 1
fi
POOL_BENCH="$BUILD/bench/pool_bench"
RAW_ECHO="$BUILD/bench/raw_echo"

# ---------------------------------------------------------------- measurements
# Each driver prints one JSON line on stdout; its stderr goes to the log.
record() {
  if ! "$@" >>"$RESULTS" 2>>"$LOG"; then
    say "FAILED: $* (see $LOG)"
    tail -n 20 "$LOG" >&2
    exit 1
  fi
}

# Throughput point: raw_echo then pool_bench at the same workers, depth and
# calls in flight (workers × depth), the same number of sessions (4 per call in
# flight, at least 16), spread evenly over the workers for raw_echo.
pair() {
  local workers=$1 depth=$2
  local inflight=$((workers * depth))
  local sessions=$((inflight * 4 < 16 ? 16 : inflight * 4))
  local common=(--workers "$workers" --depth "$depth" --warmup-s "$WARMUP" --duration-s "$SECONDS_PER_RUN")
  say "throughput: workers=$workers depth=$depth inflight=$inflight"
  record "$RAW_ECHO" "${common[@]}" --sessions $((sessions / workers))
  record "$POOL_BENCH" "${common[@]}" --inflight "$inflight" --sessions "$sessions"
}

started=$(date +%s)
# The headline figures (2 workers: pool, raw_echo, multiprocessing.Pool per
# call) are repeated and interleaved, so that a noisy minute hits all three.
for ((rep = 1; rep <= REPS; rep++)); do
  for depth in 1 8 32; do pair 2 "$depth"; done
  say "multiprocessing.Pool imap_unordered(chunksize=1), 2 workers"
  record "$PY" "$ROOT/bench/mp_pool.py" --workers 2 --duration-s "$SECONDS_PER_RUN" --ways imap1
  # The 1-worker points, in the first three repetitions only (time budget).
  if ((rep <= 3)); then
    for depth in 1 8; do pair 1 "$depth"; done
  fi
done

say "multiprocessing.Pool, other ways"
record "$PY" "$ROOT/bench/mp_pool.py" --workers 2 --duration-s "$SECONDS_PER_RUN" --inflight 16 \
  --ways apply_async,imap64
record "$PY" "$ROOT/bench/mp_pool.py" --workers 1 --duration-s "$SECONDS_PER_RUN" --ways imap1

say "backlog: 2048 calls submitted, 16 of them in the pipes"
record "$POOL_BENCH" --workers 2 --depth 8 --inflight 2048 --sessions 2048 --warmup-s "$WARMUP" \
  --duration-s "$SECONDS_PER_RUN" --label backlog

say "head-of-line: one session in 8 sleeps 5 ms"
for depth in 1 8; do
  record "$POOL_BENCH" --workers 2 --depth "$depth" --inflight 8 --sessions 8 --slow-every 8 \
    --sleep-ms 5 --warmup-s "$WARMUP" --duration-s "$SECONDS_PER_RUN" --label "hol_d$depth"
done

say "spawn-to-ready, preload: $PRELOAD"
record "$POOL_BENCH" --cold 9 --zygote 1 --preload "$PRELOAD" --label zygote
# The pool's exec path never imports `preload`: preload_worker.py does it
# before running the ordinary worker, as an exec-started worker would pay.
SF_BENCH_PRELOAD="$PRELOAD" record "$POOL_BENCH" --cold 5 --zygote 0 \
  --worker-module preload_worker --python-path "$ROOT/bench" --label exec_preload
record "$POOL_BENCH" --cold 5 --zygote 0 --label exec_plain
# The pool itself with zygote off and preload set: shows whether exec preloads.
record "$POOL_BENCH" --cold 3 --zygote 0 --preload "$PRELOAD" --label exec_pool_preload
say "measured in $(($(date +%s) - started)) s; raw results in $RESULTS"

# ---------------------------------------------------------------- report
echo
echo "snakefleet bench pool — $(nproc) cores, $(uname -r), $STAMP"
echo
"$PY" "$ROOT/bench/report.py" "$RESULTS" "$OUT/pool-$STAMP.json" "$PRELOAD_NOTE" |
  tee "$OUT/pool-$STAMP.txt"
cp "$OUT/pool-$STAMP.json" "$OUT/latest.json"

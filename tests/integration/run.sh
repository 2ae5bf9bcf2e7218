#!/usr/bin/env bash
# Runs snakefleet's integration tests (tests/integration, pytest) against a
# real Kafka broker and a real redis-server, both started here on loopback on
# free ports and always stopped again, as is every supervisor the tests start
# (trap on EXIT, also after a failure, a timeout or Ctrl-C).
#
# Steps: deploy/setup.sh (venv, packages) -> confluent-kafka in the venv ->
# build the release supervisor (build/release) and copy it into the run dir
# (so a concurrent rebuild cannot swap it mid-run) -> deploy/kafka/fetch.sh ->
# one KRaft broker (deploy/kafka/start.sh, topics snakefleet.requests:8,
# snakefleet.replies:4, snakefleet.telemetry:1, snakefleet.dlq:1) -> one
# redis-server (deploy/redis/start.sh) -> pytest -q tests/integration, bounded
# by IT_TIMEOUT seconds (each test also has its own pytest-timeout).
#
# Usage: tests/integration/run.sh [PYTEST-ARGS...]   e.g.  -k sigkill -x
# Environment:
#   IT_TIMEOUT=1200        seconds for the whole pytest run
#   IT_KEEP=1              keep the run dir (supervisor logs) even on success
#   SNAKEFLEET_IT_SKIP_BUILD=1  do not (re)build build/release
# The run dir ($TMPDIR/snakefleet-it.XXXXXX) holds the supervisor logs
# (pytest/<test>/<supervisor id>.log); it is kept when the run fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
IT_TIMEOUT="${IT_TIMEOUT:-1200}"
t_start=$SECONDS

note() { echo "integration/run.sh: $*" >&2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/snakefleet-it.XXXXXX")"
PIDFILE="$WORK/supervisors.pids"
: >"$PIDFILE"
KAFKA_DIR=""
REDIS_DIR=""
pytest_pid=""
rc=1

# alive PID: exists and is not a zombie
alive() {
  local st
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$st" && "$st" != Z ]]
}
# kill_if PID PATTERN: SIGKILL PID if its command line contains PATTERN
kill_if() {
  local cmd
  alive "$1" || return 0
  cmd="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 0
  [[ "$cmd" == *"$2"* ]] || return 0
  note "killing leftover pid $1 ($2)"
  kill -KILL "$1" 2>/dev/null || true
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  set +e
  if [[ -n "$pytest_pid" ]] && alive "$pytest_pid"; then
    note "stopping pytest (pid $pytest_pid)"
    kill -TERM "$pytest_pid" 2>/dev/null
    for _ in $(seq 100); do alive "$pytest_pid" || break; sleep 0.1; done
    kill -KILL "$pytest_pid" 2>/dev/null
  fi
  # Supervisors the tests started (their pids are in PIDFILE), then any of
  # their workers (pids from the pool.worker_ready log lines).
  local p
  while read -r p; do
    [[ "$p" =~ ^[0-9]+$ ]] && kill_if "$p" snakefleet-supervisor
  done <"$PIDFILE"
  if [[ -d "$WORK/pytest" ]]; then
    grep -rha 'event=pool.worker_ready ' "$WORK/pytest" 2>/dev/null |
      sed -n 's/.* pid=\([0-9][0-9]*\).*/\1/p' | sort -u | while read -r p; do
      kill_if "$p" snakefleet
    done
  fi
  [[ -n "$KAFKA_DIR" ]] && "$ROOT/deploy/kafka/stop.sh" "$KAFKA_DIR"
  [[ -n "$REDIS_DIR" ]] && "$ROOT/deploy/redis/stop.sh" "$REDIS_DIR"
  if ((status == 0)) && [[ "${IT_KEEP:-0}" != 1 ]]; then
    rm -rf "$WORK"
  else
    note "run dir kept: $WORK (supervisor logs under $WORK/pytest)"
  fi
  note "wall time $((SECONDS - t_start)) s, exit $status"
  exit "$status"
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT
trap 'note "terminated"; exit 143' TERM HUP

# ---------------------------------------------------------------- prerequisites
"$ROOT/deploy/setup.sh"
"$PY" -c 'import confluent_kafka' 2>/dev/null || {
  note "installing confluent-kafka into the venv"
  "$PY" -m pip install -q 'confluent-kafka>=2.0'
}
if [[ "${SNAKEFLEET_IT_SKIP_BUILD:-0}" != 1 ]]; then
  cmake -S "$ROOT" -B "$ROOT/build/release" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$ROOT/build/release" -j "$(nproc)" >"$WORK/build.log" 2>&1 ||
    { tail -40 "$WORK/build.log" >&2; note "the release build failed"; exit 1; }
fi
mkdir -p "$WORK/bin"
cp "$ROOT/build/release/supervisor/snakefleet-supervisor" "$WORK/bin/"
"$ROOT/deploy/kafka/fetch.sh" >/dev/null

# free_port: a port on 127.0.0.1 that is free, and (for Kafka's controller)
# whose successor is free too
free_port() {
  "$PY" - <<'EOF'
import socket
for _ in range(50):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    try:
        t = socket.socket()
        t.bind(("127.0.0.1", port + 1))
        t.close()
    except OSError:
        s.close()
        continue
    s.close()
    print(port)
    break
EOF
}

# ---------------------------------------------------------------- Kafka, Redis
TOPICS="snakefleet.requests:8,snakefleet.replies:4,snakefleet.telemetry:1,snakefleet.dlq:1"
for attempt in 1 2 3; do
  port="$(free_port)"
  rm -rf "$WORK/kafka"
  if "$ROOT/deploy/kafka/start.sh" -d "$WORK/kafka" -p "$port" -t "$TOPICS" >"$WORK/kafka.env"; then
    break
  fi
  ((attempt < 3)) || { note "Kafka did not start"; exit 1; }
  note "Kafka start attempt $attempt failed; retrying on another port"
done
eval "$(cat "$WORK/kafka.env")" # KAFKA_BOOTSTRAP, KAFKA_DIR, KAFKA_PID

for attempt in 1 2 3; do
  rport="$(free_port)"
  rm -rf "$WORK/redis"
  if "$ROOT/deploy/redis/start.sh" -d "$WORK/redis" -p "$rport" >"$WORK/redis.env"; then
    break
  fi
  ((attempt < 3)) || { note "redis-server did not start"; exit 1; }
done
eval "$(cat "$WORK/redis.env")" # REDIS_URL, REDIS_DIR, REDIS_PORT, REDIS_PID

export SNAKEFLEET_IT_KAFKA="$KAFKA_BOOTSTRAP"
export SNAKEFLEET_IT_REDIS="$REDIS_URL"
export SNAKEFLEET_IT_SUPERVISOR="$WORK/bin/snakefleet-supervisor"
export SNAKEFLEET_IT_PIDFILE="$PIDFILE"
note "Kafka $KAFKA_BOOTSTRAP, Redis $REDIS_URL, supervisor $SNAKEFLEET_IT_SUPERVISOR; setup took $((SECONDS - t_start)) s"

# ---------------------------------------------------------------- pytest
# In the background and waited for, so a TERM/INT to this script is handled
# at once (the EXIT trap then stops pytest and everything else).
timeout --kill-after=30 "$IT_TIMEOUT" "$PY" -m pytest -q tests/integration \
  --basetemp="$WORK/pytest" "$@" &
pytest_pid=$!
set +e
wait "$pytest_pid"
rc=$?
set -e
pytest_pid=""
((rc != 124)) || note "pytest did not finish within ${IT_TIMEOUT} s"
exit "$rc"

#!/usr/bin/env bash
# The quick start: the whole snakefleet path on one machine, with nothing but
# this repository. Installs what is missing, builds, then starts
#   - the embedded Kafka (`snakefleet dev-broker`, librdkafka's mock cluster),
#   - a local redis-server,
#   - a snakefleet-supervisor with its Python worker pool,
# runs a sample multi-session workload through Kafka with the CLI (sessions
# created, a stateful program created and executed, state read, sessions
# ended), prints the replies and the fleet's stats, and stops everything it
# started — also on Ctrl-C or failure.
#
# Usage: deploy/quickstart.sh [-h|--help]
#   Takes no other arguments. Needs sudo (or root) when Debian packages are
#   missing; builds into build/release; everything else lives in a
#   /tmp/snakefleet-quickstart.* dir that is removed at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
case "${1:-}" in
    "") ;;
    -h | --help) usage; exit 0 ;;
    *) echo "quickstart.sh: error: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac
cd "$ROOT"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "setting up (Debian packages, Python venv) and building"
deploy/setup.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release --target snakefleet snakefleet-supervisor >/dev/null
CLI="$ROOT/build/release/cli/snakefleet"
SUP="$ROOT/build/release/supervisor/snakefleet-supervisor"

WORK="$(mktemp -d /tmp/snakefleet-quickstart.XXXXXX)"
BROKER_PID=""
SUP_PID=""
REDIS_DIR=""
cleanup() {
    local rc=$?
    [[ -n "$SUP_PID" ]] && kill -TERM "$SUP_PID" 2>/dev/null && wait "$SUP_PID" 2>/dev/null
    [[ -n "$BROKER_PID" ]] && kill -TERM "$BROKER_PID" 2>/dev/null && wait "$BROKER_PID" 2>/dev/null
    [[ -n "$REDIS_DIR" ]] && deploy/redis/stop.sh "$REDIS_DIR" >/dev/null 2>&1
    if ((rc != 0)); then
        echo "quickstart failed; the supervisor's last log lines:" >&2
        tail -20 "$WORK/supervisor.log" 2>/dev/null >&2 || true
    fi
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$ROOT/.venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # wait_for FILE PATTERN SECONDS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1" >&2
    return 1
}

say "starting the embedded Kafka (librdkafka mock cluster)"
"$CLI" dev-broker >"$WORK/broker.out" 2>"$WORK/broker.log" &
BROKER_PID=$!
wait_for "$WORK/broker.out" KAFKA_BOOTSTRAP= 10
BOOTSTRAP="$(sed -n 's/^KAFKA_BOOTSTRAP=//p' "$WORK/broker.out" | head -1)"
echo "bootstrap: $BOOTSTRAP"
# The mock cluster answers an empty fetch only after fetch.wait.max.ms.
KAFKA=(--kafka.bootstrap.servers="$BOOTSTRAP" --kafka.fetch.wait.max.ms=5)

say "starting redis-server"
eval "$(deploy/redis/start.sh -d "$WORK/redis" -p "$(free_port)")"
echo "redis: $REDIS_URL"

say "starting snakefleet-supervisor (2 Python workers)"
# preload=dspy: a zygote imports DSPy once and forks ready workers; the "dummy" LM
# answers offline, so the DSPy programs below run with no network.
"$SUP" "${KAFKA[@]}" --redis.url="$REDIS_URL" --supervisor.id=quickstart \
    --pool.pool_size=2 --telemetry.interval=1000 --python.preload=dspy \
    --python.lm_model=dummy 2>"$WORK/supervisor.log" &
SUP_PID=$!
wait_for "$WORK/supervisor.log" "event=lease.taken" 30

say "the workload: the DSPex guide's qa_bot flow, and sessions with a counter program"
WORKLOAD="$WORK/workload.jsonl"
: >"$WORKLOAD"
for s in alice bob carol dave; do
    cat >>"$WORKLOAD" <<EOF
{"session": "$s", "op": "create_session", "args": {"state": {"n": 0, "owner": "$s"}}}
{"session": "$s", "op": "create_program", "program": "counter", "args": {"spec": {"kind": "callable", "entry": "snakefleet.examples:counter"}}}
{"session": "$s", "op": "execute_program", "program": "counter", "args": {"by": 1}}
{"session": "$s", "op": "execute_program", "program": "counter", "args": {"by": 10}}
{"session": "$s", "op": "execute_program", "program": "counter", "args": {"by": 100}}
{"session": "$s", "op": "get_session_state"}
{"session": "$s", "op": "list_programs"}
{"session": "$s", "op": "end_session"}
EOF
done
# The DSPex guide's flow: create a session, create the qa_bot program from a signature,
# ask it questions, read the session state, end the session.
for s in user_1 user_2; do
    cat >>"$WORKLOAD" <<EOF
{"session": "$s", "op": "create_session", "args": {"state": {"user_preferences": {"theme": "dark"}}}}
{"session": "$s", "op": "create_program", "program": "qa_bot", "args": {"spec": {"kind": "dspy", "signature": "question -> answer", "module": "Predict"}}}
{"session": "$s", "op": "execute_program", "program": "qa_bot", "args": {"question": "What is DSPex? ($s)"}}
{"session": "$s", "op": "execute_program", "program": "qa_bot", "args": {"question": "Why put it behind Kafka? ($s)"}}
{"session": "$s", "op": "get_session_state"}
{"session": "$s", "op": "end_session"}
EOF
done
# An error is an answer too: a session that does not exist.
cat >>"$WORKLOAD" <<'EOF'
{"session": "erin", "op": "execute_program", "program": "counter", "args": {}}
{"session": "alice", "op": "ping"}
EOF
rc=0
"$CLI" batch "${KAFKA[@]}" --in "$WORKLOAD" --out "$WORK/replies.jsonl" --concurrency 16 \
    --timeout-ms 30000 || rc=$?
((rc <= 1)) || { echo "batch failed (exit $rc)" >&2; exit 1; } # 1: some replies are errors, as intended

say "replies (session, op, outcome)"
"$ROOT/.venv/bin/python" - "$WORKLOAD" "$WORK/replies.jsonl" <<'EOF'
import json, sys
ops = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
replies = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
replies.sort(key=lambda r: r.get("line", 0))
for r in replies:
    rep = r.get("reply", r)
    line = r.get("line")
    op = ops[line - 1] if isinstance(line, int) and 0 < line <= len(ops) else {}
    what = f"{op.get('session', rep.get('session', '?')):6} {op.get('op', '?'):18}"
    if rep.get("ok"):
        print(f"{what} ok     {json.dumps(rep.get('result'))}")
    else:
        err = rep.get("error", {})
        print(f"{what} error  {err.get('type')}: {err.get('message')}")
EOF

say "fleet stats (from the telemetry topic)"
sleep 1.5
"$CLI" status "${KAFKA[@]}" --timeout-ms 5000 || true

say "stopping"
kill -TERM "$SUP_PID"
wait "$SUP_PID" && echo "supervisor drained and stopped"
SUP_PID=""

#!/usr/bin/env bash
# bench/e2e.sh — `bench/run.sh e2e`: end-to-end throughput and latency of the
# supervisor on a real Kafka 3.9 broker and a real redis-server, against two
# baselines measured in the same run (see bench/README.md, "e2e"):
#   echo   bench/kafka_echo.c: a C consumer-group member that republishes each
#          request as its reply (the ceiling of the Kafka path here)
#   py     bench/py_consumer.py: confluent-kafka consumer + multiprocessing.Pool(2)
#          running the same no-op (what a Python user would write)
#   e2e    snakefleet-supervisor, examples.noop
#   state  snakefleet-supervisor, examples.counter (session state in Redis),
#          every session's counter checked against its executes at the end
#   durable the same counter on a second supervisor with redis.min_replicas = 1
#          against the same Redis and a replica of it: every write waits (WAIT)
#          for the replica, as a fleet does that must survive a failover
#          (the `failover` row; bench/README.md)
# All four services are started once, each on its own topics and group, and
# stay up; the load generator (bench/e2e_load.c) then measures them in turns:
#   1. peak: closed loop over E2E_SESSIONS sessions at each number of
#      outstanding requests in E2E_INFLIGHT; rounds of echo, py, e2e, state,
#      interleaved (BENCH_REPS rounds). A system's peak is its best median.
#   2. latency: open loop at half of e2e's median peak, e2e and echo in turn
# Starts its own Kafka (fresh dir, free port) and redis-server (free port),
# stops everything it started on exit (trap). Prints the tables and, as its
# last line, one JSON object; everything is saved under bench/out/e2e-<stamp>.*
#
# Environment (defaults in brackets):
#   BENCH_REPS [3]            peak rounds
#   E2E_LAT_REPS [3]          open-loop (latency) runs of e2e and of echo
#   BENCH_SECONDS [3]         measured seconds per run (after E2E_WARMUP [1.5])
#   E2E_SESSIONS [256]        sessions per run (fresh ones each run)
#   E2E_INFLIGHT ["1000 4000"] outstanding requests in the closed loop: each
#                             system runs at each; its peak is the best median
#   E2E_DEPTH [8]             --pool.pipeline_depth of the supervisor
#   E2E_POOL_SIZE [2]         --pool.pool_size (and the py baseline's processes)
#   E2E_KAFKA ["linger.ms=5 socket.nagle.disable=true"]
#                             librdkafka settings given to every client: the
#                             supervisor, the echo, the py baseline and the
#                             load generator (space separated KEY=VALUE)
#   E2E_SOAK_S [0]            after the latency phase, the counter in open loop at
#                             half of e2e's peak for this many seconds (600 for
#                             the "flat over 10 minutes" run), Redis's keys and
#                             memory sampled every 30 s: they must stay flat
#   BENCH_BUILD_DIR [build/release]
#   REDIS_APPENDFSYNC [always] and the other REDIS_* of deploy/redis/start.sh;
#                             everysec for numbers comparable with runs before
#                             always became the default (recorded in settings)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

REPS="${BENCH_REPS:-3}"
LAT_REPS="${E2E_LAT_REPS:-3}"
SECS="${BENCH_SECONDS:-3}"
WARMUP="${E2E_WARMUP:-1.5}"
SESSIONS="${E2E_SESSIONS:-256}"
INFLIGHTS="${E2E_INFLIGHT:-1000 4000}"
DEPTH="${E2E_DEPTH:-8}"
POOL_SIZE="${E2E_POOL_SIZE:-2}"
KAFKA_SETTINGS="${E2E_KAFKA:-linger.ms=5 socket.nagle.disable=true}"
BUILD="${BENCH_BUILD_DIR:-$ROOT/build/release}"
PY="$ROOT/.venv/bin/python"
OUT="$ROOT/bench/out"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$OUT/e2e-$STAMP.jsonl"
LOG="$OUT/e2e-$STAMP.log"
mkdir -p "$OUT"
: >"$RESULTS"
: >"$LOG"
T_START=$SECONDS

say() { echo "bench e2e: $*" >&2; }
die() { say "error: $*"; exit 1; }

# ---------------------------------------------------------------- setup, build
bash "$ROOT/deploy/setup.sh" >>"$LOG" 2>&1 || die "deploy/setup.sh failed (see $LOG)"
if ! "$PY" -c "import confluent_kafka, msgpack" >/dev/null 2>&1; then
  say "installing confluent-kafka into the venv (the py baseline)"
  "$PY" -m pip install -q confluent-kafka msgpack >>"$LOG" 2>&1 || die "pip install confluent-kafka failed"
fi
say "building $BUILD"
if ! cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >>"$LOG" 2>&1 ||
  ! cmake --build "$BUILD" --target snakefleet-supervisor e2e_load kafka_echo >>"$LOG" 2>&1; then
  grep -E "error|FAILED" "$LOG" | head -n 20 >&2 || tail -n 20 "$LOG" >&2
  die "the build failed (full log: $LOG)"
fi
SUP="$BUILD/supervisor/snakefleet-supervisor"
LOAD="$BUILD/bench/e2e_load"
ECHO="$BUILD/bench/kafka_echo"

# ---------------------------------------------------------------- cleanup
KAFKA_DIR="" REDIS_DIR="" DUR_REDIS_DIR="" REPLICA_DIR="" SUP_PID="" DUR_PID="" ECHO_PID="" PYC_PID=""
stop_pid() { # PID NAME: SIGTERM, bounded wait, SIGKILL
  local pid=$1 name=$2
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) still running 10 s after SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  say "stopping what this run started"
  stop_pid "$SUP_PID" supervisor
  stop_pid "$DUR_PID" "supervisor (min_replicas)"
  stop_pid "$ECHO_PID" kafka_echo
  stop_pid "$PYC_PID" py_consumer
  [[ -n "$REDIS_DIR" ]] && bash "$ROOT/deploy/redis/stop.sh" "$REDIS_DIR" >>"$LOG" 2>&1 || true
  [[ -n "$DUR_REDIS_DIR" ]] && bash "$ROOT/deploy/redis/stop.sh" "$DUR_REDIS_DIR" >>"$LOG" 2>&1 || true
  [[ -n "$REPLICA_DIR" ]] && bash "$ROOT/deploy/redis/stop.sh" "$REPLICA_DIR" >>"$LOG" 2>&1 || true
  [[ -n "$KAFKA_DIR" ]] && KAFKA_STOP_TIMEOUT=15 bash "$ROOT/deploy/kafka/stop.sh" "$KAFKA_DIR" >>"$LOG" 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- Kafka, Redis
free_port() { # a port P with P and P+1 free on 127.0.0.1 (Kafka's controller takes P+1)
  "$PY" - <<'EOF'
import random, socket
for _ in range(200):
    p = random.randint(30000, 45000)
    try:
        for q in (p, p + 1):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
    except OSError:
        continue
    print(p); break
EOF
}
say "starting Kafka (KRaft, fresh dir)"
env_kafka="$(KAFKA_WARM=1 bash "$ROOT/deploy/kafka/start.sh" -p "$(free_port)" -t none 2>>"$LOG")" ||
  die "Kafka did not start (see $LOG)"
eval "$env_kafka"
say "starting redis-server"
env_redis="$(bash "$ROOT/deploy/redis/start.sh" -p "$(free_port)" 2>>"$LOG")" || die "redis-server did not start (see $LOG)"
eval "$env_redis"
# The durable row has a Redis of its own and a replica of it, so replication
# costs nothing to the other rows.
say "starting a second redis-server and its replica (for the durable row)"
env_dur="$(bash "$ROOT/deploy/redis/start.sh" -p "$(free_port)" 2>>"$LOG")" || die "redis-server did not start (see $LOG)"
DUR_REDIS_DIR="$(sed -n 's/^REDIS_DIR=//p' <<<"$env_dur")"
DUR_REDIS_PORT="$(sed -n 's/^REDIS_PORT=//p' <<<"$env_dur")"
DUR_REDIS_PID="$(sed -n 's/^REDIS_PID=//p' <<<"$env_dur")"
env_replica="$(bash "$ROOT/deploy/redis/start.sh" -p "$(free_port)" -- --replicaof 127.0.0.1 "$DUR_REDIS_PORT" 2>>"$LOG")" ||
  die "the replica did not start (see $LOG)"
REPLICA_DIR="$(sed -n 's/^REDIS_DIR=//p' <<<"$env_replica")"
REPLICA_PORT="$(sed -n 's/^REDIS_PORT=//p' <<<"$env_replica")"
REPLICA_PID="$(sed -n 's/^REDIS_PID=//p' <<<"$env_replica")"
for _ in $(seq 100); do
  redis-cli -p "$REPLICA_PORT" info replication 2>/dev/null | grep -q master_link_status:up && break
  sleep 0.2
done
say "Kafka $KAFKA_BOOTSTRAP (pid $KAFKA_PID), Redis $REDIS_URL (pid $REDIS_PID); durable row: Redis port $DUR_REDIS_PORT (pid $DUR_REDIS_PID), its replica port $REPLICA_PORT (pid $REPLICA_PID)"

T=bench
"$LOAD" --bootstrap "$KAFKA_BOOTSTRAP" --create-topics \
  "$T.e2e.requests:8,$T.e2e.replies:4,$T.durable.requests:8,$T.durable.replies:4,$T.echo.requests:8,$T.echo.replies:4,$T.py.requests:8,$T.py.replies:4,$T.telemetry:1,$T.dlq:1" \
  >>"$LOG" 2>&1 || die "creating topics failed (see $LOG)"

kafka_flags=()
for kv in $KAFKA_SETTINGS; do kafka_flags+=("--kafka.$kv"); done
# Consumers of a fresh group start at the beginning, so nothing sent before
# a group has joined is lost (the generator's ping waits for the answer).
svc_kafka=("${kafka_flags[@]}" --kafka.auto.offset.reset=earliest)

# ---------------------------------------------------------------- services
"$SUP" --kafka.bootstrap.servers="$KAFKA_BOOTSTRAP" --redis.url="$REDIS_URL" --supervisor.id=bench \
  --pool.pool_size="$POOL_SIZE" --pool.max_overflow=0 --pool.pipeline_depth="$DEPTH" \
  --topics.requests=$T.e2e.requests --topics.replies=$T.e2e.replies \
  --topics.telemetry=$T.telemetry --topics.dlq=$T.dlq --topics.group=$T.e2e \
  "${svc_kafka[@]}" --supervisor.log_level=warn >>"$OUT/e2e-$STAMP.supervisor.log" 2>&1 &
SUP_PID=$!
"$SUP" --kafka.bootstrap.servers="$KAFKA_BOOTSTRAP" --redis.url="redis://127.0.0.1:$DUR_REDIS_PORT" --supervisor.id=bench-durable \
  --pool.pool_size="$POOL_SIZE" --pool.max_overflow=0 --pool.pipeline_depth="$DEPTH" \
  --topics.requests=$T.durable.requests --topics.replies=$T.durable.replies \
  --topics.telemetry=$T.telemetry --topics.dlq=$T.dlq --topics.group=$T.durable \
  --redis.min_replicas=1 \
  "${svc_kafka[@]}" --supervisor.log_level=warn >>"$OUT/e2e-$STAMP.durable.log" 2>&1 &
DUR_PID=$!
"$ECHO" --bootstrap "$KAFKA_BOOTSTRAP" --topic $T.echo.requests --group $T.echo \
  --reply-topic $T.echo.replies "${svc_kafka[@]}" >>"$OUT/e2e-$STAMP.echo.out" 2>>"$LOG" &
ECHO_PID=$!
"$PY" "$ROOT/bench/py_consumer.py" --bootstrap "$KAFKA_BOOTSTRAP" --topic $T.py.requests \
  --group $T.py --reply-topic $T.py.replies --workers "$POOL_SIZE" "${svc_kafka[@]}" \
  >>"$OUT/e2e-$STAMP.py.out" 2>>"$LOG" &
PYC_PID=$!
sleep 1
kill -0 "$SUP_PID" 2>/dev/null || die "the supervisor exited at start (see $OUT/e2e-$STAMP.supervisor.log)"
kill -0 "$DUR_PID" 2>/dev/null || die "the durable supervisor exited at start (see $OUT/e2e-$STAMP.durable.log)"
children() { pgrep -P "$1" | paste -sd, -; }

# One measurement: SYSTEM MODE [extra e2e_load args]; one JSON line to RESULTS.
measure() {
  local system=$1 mode=$2
  shift 2
  local topic watch=(--watch "broker=$KAFKA_PID")
  case "$system" in
    echo) topic=echo; watch+=(--watch "svc=$ECHO_PID") ;;
    py) topic=py; watch+=(--watch "svc=$PYC_PID" --watch "workers=$(children "$PYC_PID")") ;;
    e2e | state)
      topic=e2e
      watch+=(--watch "svc=$SUP_PID" --watch "workers=$(children "$SUP_PID")" --watch "redis=$REDIS_PID")
      ;;
    durable)
      topic=durable
      watch+=(--watch "svc=$DUR_PID" --watch "workers=$(children "$DUR_PID")" --watch "redis=$DUR_REDIS_PID,$REPLICA_PID")
      ;;
  esac
  local args=(--bootstrap "$KAFKA_BOOTSTRAP" --topic "$T.$topic.requests" --reply-topic "$T.$topic.replies"
    --system "$system" --mode "$mode" --sessions "$SESSIONS" --warmup-s "$WARMUP" --duration-s "$SECS"
    "${watch[@]}" "${kafka_flags[@]}")
  case "$system" in
    e2e) args+=(--setup) ;;
    state | durable) args+=(--setup --program-entry snakefleet.examples:counter --args '{"by": 1}' --verify-counter) ;;
  esac
  if ! timeout "${MEASURE_TIMEOUT:-150}" "$LOAD" "${args[@]}" "$@" >>"$RESULTS" 2>>"$LOG"; then
    die "the load generator failed: $system $mode $* (see $LOG)"
  fi
  tail -n 1 "$RESULTS" | "$PY" "$ROOT/bench/e2e_report.py" --line >&2
}

# ---------------------------------------------------------------- warm-up
# The broker's JIT and every service's first requests (program builds, Redis
# script cache) are warmed up before anything is recorded.
say "warm-up (not recorded)"
for system in echo py e2e durable; do
  timeout 150 "$LOAD" --bootstrap "$KAFKA_BOOTSTRAP" --topic "$T.$system.requests" \
    --reply-topic "$T.$system.replies" --system "$system" --sessions "$SESSIONS" \
    --warmup-s 0 --duration-s 2 --inflight 2000 $([[ $system == e2e || $system == durable ]] && echo --setup) \
    "${kafka_flags[@]}" >>"$LOG" 2>&1 || die "warm-up of $system failed (see $LOG)"
done

# ---------------------------------------------------------------- peak
{
  printf '{"bench": "settings", "sessions": %s, "inflight": %s, "pool_size": %s, "pipeline_depth": %s,' \
    "$SESSIONS" "[${INFLIGHTS// /, }]" "$POOL_SIZE" "$DEPTH"
  printf ' "kafka": "%s", "warmup_s": %s, "seconds": %s, "reps": %s, "nproc": %s, "loadavg": "%s",' \
    "$KAFKA_SETTINGS" "$WARMUP" "$SECS" "$REPS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf ' "partitions": {"requests": 8, "replies": 4}, "redis": "%s", "redis_appendfsync": "%s",' \
    "$(redis-server --version | grep -o 'v=[0-9.]*')" \
    "$(redis-cli -p "$REDIS_PORT" config get appendfsync 2>/dev/null | tail -1)"
  printf ' "librdkafka": "%s"}\n' "$(pkg-config --modversion rdkafka)"
} >>"$RESULTS"
for ((rep = 1; rep <= REPS; rep++)); do
  say "peak, round $rep/$REPS (closed loop, $SESSIONS sessions, outstanding: $INFLIGHTS)"
  for system in echo py e2e state durable; do
    for inflight in $INFLIGHTS; do
      measure "$system" closed --inflight "$inflight"
    done
  done
done

# Redis after each phase: its size (every execute leaves a dedupe record for
# redis.dedupe_ttl) and its AOF rewrites (each forks redis-server), which show
# in the latency tail.
redis_info() { # PHASE
  redis-cli -p "$REDIS_PORT" info all 2>/dev/null | "$PY" -c '
import json, sys
kv = dict(l.strip().split(":", 1) for l in sys.stdin if ":" in l and not l.startswith("#"))
keys = sum(int(v.split(",")[0].split("=")[1]) for k, v in kv.items() if k.startswith("db"))
cmds = {}
for k, v in kv.items():
    if k.startswith("cmdstat_"):
        f = dict(x.split("=") for x in v.split(","))
        cmds[k[8:]] = {"calls": int(f["calls"]), "usec": int(f["usec"])}
print(json.dumps({"bench": "redis", "phase": sys.argv[1], "keys": keys,
                  "used_memory_mb": round(int(kv["used_memory"]) / 2**20, 1),
                  "aof_rewrites": int(kv.get("aof_rewrites", 0)),
                  "latest_fork_ms": round(int(kv.get("latest_fork_usec", 0)) / 1000, 1),
                  "aof_delayed_fsync": int(kv.get("aof_delayed_fsync", 0)),
                  "commands": cmds}))' "$1" >>"$RESULTS" || true
}
redis_info peak

# ---------------------------------------------------------------- latency at half of peak
half="$("$PY" - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in rows:
    if r.get("system") == "e2e" and r.get("mode") == "closed":
        by.setdefault(r["inflight"], []).append(r["req_per_s"])
print(round(max(statistics.median(v) for v in by.values()) / 2))
EOF
)"
say "latency at half of e2e's peak: open loop at $half req/s"
for ((rep = 1; rep <= LAT_REPS; rep++)); do
  measure e2e open --rate "$half" --inflight 1000000
  measure echo open --rate "$half" --inflight 1000000
done

redis_info latency

# ---------------------------------------------------------------- soak (E2E_SOAK_S)
SOAK="${E2E_SOAK_S:-0}"
if ((SOAK > 0)); then
  say "soak: the counter in open loop at $half req/s for $SOAK s, Redis sampled every 30 s"
  (
    t0=$SECONDS
    while sleep 30; do
      redis-cli -p "$REDIS_PORT" info all 2>/dev/null | "$PY" -c '
import json, sys
kv = dict(l.strip().split(":", 1) for l in sys.stdin if ":" in l and not l.startswith("#"))
keys = sum(int(v.split(",")[0].split("=")[1]) for k, v in kv.items() if k.startswith("db"))
print(json.dumps({"bench": "soak", "t_s": int(sys.argv[1]), "keys": keys,
                  "used_memory_mb": round(int(kv["used_memory"]) / 2**20, 1),
                  "cpu_s": round(float(kv["used_cpu_sys"]) + float(kv["used_cpu_user"]), 1)}))' \
        "$((SECONDS - t0))" >>"$RESULTS" || true
    done
  ) &
  SAMPLER=$!
  MEASURE_TIMEOUT=$((SOAK + 120)) measure state open --rate "$half" --inflight 1000000 \
    --warmup-s 0 --duration-s "$SOAK"
  kill "$SAMPLER" 2>/dev/null || true
  wait "$SAMPLER" 2>/dev/null || true
  redis_info soak
fi
say "measured in $((SECONDS - T_START)) s; raw results in $RESULTS"
echo
echo "snakefleet bench e2e — $(nproc) cores, $(uname -r), $STAMP, load average now: $(cut -d" " -f1-3 /proc/loadavg)"
echo
"$PY" "$ROOT/bench/e2e_report.py" "$RESULTS" "$OUT/e2e-$STAMP.json" | tee "$OUT/e2e-$STAMP.txt"
cp "$OUT/e2e-$STAMP.json" "$OUT/e2e-latest.json"

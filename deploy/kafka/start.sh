#!/usr/bin/env bash
# Starts a single-node Apache Kafka 3.9 test broker in KRaft mode (one JVM,
# combined broker + controller) on 127.0.0.1 only, for snakefleet's
# integration tests, benchmarks and local work, and creates its topics.
#
# Steps: fetch.sh (cached jars) -> write DIR/server.properties and
# DIR/log4j.properties -> format DIR/data with a random cluster id
# (kafka.tools.StorageTool; skipped when DIR/data is already formatted, so a
# stopped broker can be restarted on its data with KEEP=1 stop.sh + start.sh)
# -> `java -cp 'libs/*' kafka.Kafka DIR/server.properties` in the background
# in its own session, pid in DIR/kafka.pid -> wait (bounded) until the broker
# logs "Kafka Server started" and its port accepts connections -> create the
# topics with topics.sh and, alongside, __consumer_offsets (all in
# parallel). Everything goes to stderr except the final lines on stdout, made
# for eval:
#   KAFKA_BOOTSTRAP=127.0.0.1:PORT
#   KAFKA_DIR=DIR
#   KAFKA_PID=PID
# e.g.  eval "$(deploy/kafka/start.sh)"; ...; deploy/kafka/stop.sh "$KAFKA_DIR"
#
# Usage: deploy/kafka/start.sh [options]
#   -d, --dir DIR            data dir ($KAFKA_DIR, else a fresh mktemp -d)
#   -p, --port PORT          client listener port ($KAFKA_PORT, else 19092)
#   -c, --controller-port P  KRaft controller port ($KAFKA_CONTROLLER_PORT,
#                            else PORT+1)
#   -t, --topics SPEC        topics to create: "name[:partitions],..." (comma
#                            or space separated); "" or "none" for none.
#                            Default $KAFKA_TOPICS if set, else
#                            snakefleet.requests:8,snakefleet.replies:4,
#                            snakefleet.telemetry:1,snakefleet.dlq:1
#   -P, --prop KEY=VALUE     extra server.properties line (repeatable; wins
#                            over the defaults)
#   -w, --timeout SECONDS    readiness wait ($KAFKA_START_TIMEOUT, else 60)
#   --no-warm                skip creating __consumer_offsets at start
#                            (KAFKA_WARM=0); by default it is created in
#                            parallel with the topics, so a test's first
#                            consumer group join is not ~3 s slower
# Environment:
#   KAFKA_VERSION, SNAKEFLEET_CACHE  which Kafka 3.9.x to run (see fetch.sh)
#   KAFKA_EXTRA_PROPS     extra server.properties lines (newline separated)
#   KAFKA_HOST            the address to listen on (default 127.0.0.1; the
#                         nemesis tests run the broker in a network namespace
#                         of their own on a link-local address)
#   KAFKA_HEAP_OPTS       broker heap (default -Xms128m -Xmx512m)
#   KAFKA_JVM_OPTS        other broker JVM options (default -XX:+UseSerialGC
#                         -Xshare:auto -XX:+ExitOnOutOfMemoryError)
#   KAFKA_TOOLS_JVM_OPTS  JVM options of StorageTool / TopicCommand
# Files in DIR: server.properties, log4j.properties, data/ (log.dirs and
# KRaft metadata), logs/server.log (broker log), kafka.out (JVM stdout and
# stderr), kafka.pid, env (the stdout lines above), .snakefleet-kafka (marks
# the dir as removable by stop.sh).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { echo "kafka/start.sh: error: $*" >&2; exit 1; }
usage_error() { echo "kafka/start.sh: error: $*" >&2; exit 2; }
note() { echo "kafka/start.sh: $*" >&2; }
now_ms() { date +%s%3N; }
t0="$(now_ms)"

DEFAULT_TOPICS="snakefleet.requests:8,snakefleet.replies:4,snakefleet.telemetry:1,snakefleet.dlq:1"
dir="${KAFKA_DIR:-}"
port="${KAFKA_PORT:-19092}"
host="${KAFKA_HOST:-127.0.0.1}"
cport="${KAFKA_CONTROLLER_PORT:-}"
topics="${KAFKA_TOPICS-$DEFAULT_TOPICS}"
timeout_s="${KAFKA_START_TIMEOUT:-60}"
warm="${KAFKA_WARM:-1}"
extra_props=()
if [[ -n "${KAFKA_EXTRA_PROPS:-}" ]]; then
  mapfile -t extra_props <<<"$KAFKA_EXTRA_PROPS"
fi

need_arg() { (($1 >= 2)) || usage_error "$2 needs a value"; }
while (($#)); do
  case "$1" in
    -d|--dir) need_arg $# "$1"; dir="$2"; shift 2 ;;
    -p|--port) need_arg $# "$1"; port="$2"; shift 2 ;;
    -c|--controller-port) need_arg $# "$1"; cport="$2"; shift 2 ;;
    -t|--topics) need_arg $# "$1"; topics="$2"; shift 2 ;;
    -P|--prop) need_arg $# "$1"; extra_props+=("$2"); shift 2 ;;
    -w|--timeout) need_arg $# "$1"; timeout_s="$2"; shift 2 ;;
    --no-warm) warm=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) usage_error "unknown argument '$1' (try --help)" ;;
  esac
done

valid_port() { [[ "$1" =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= 65535)); }
valid_port "$port" || die "invalid port '$port'"
[[ -n "$cport" ]] || cport=$((port + 1))
valid_port "$cport" || die "invalid controller port '$cport'"
((cport != port)) || die "controller port must differ from the client port ($port)"
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || die "invalid timeout '$timeout_s'"
[[ "$warm" == 0 || "$warm" == 1 ]] || die "KAFKA_WARM must be 0 or 1, got '$warm'"

# Parse the topic spec into name/partition pairs before starting anything.
topic_names=()
topic_parts=()
if [[ "$topics" != "none" ]]; then
  read -r -a specs <<<"${topics//,/ }"
  for spec in "${specs[@]}"; do
    name="${spec%%:*}"
    parts=1
    [[ "$spec" == *:* ]] && parts="${spec#*:}"
    [[ "$name" =~ ^[A-Za-z0-9._-]{1,249}$ ]] || die "invalid topic name in '$spec'"
    [[ "$parts" =~ ^[1-9][0-9]*$ ]] || die "invalid partition count in '$spec'"
    topic_names+=("$name")
    topic_parts+=("$parts")
  done
fi
for p in "${extra_props[@]}"; do
  [[ -z "$p" || "$p" == \#* || "$p" == ?*=* ]] || die "extra property must be KEY=VALUE, got '$p'"
done

command -v java >/dev/null 2>&1 || die "java not found (Java 17 is needed)"
if [[ -n "$dir" && -f "$dir/kafka.pid" ]]; then
  old="$(cat "$dir/kafka.pid")"
  if [[ "$old" =~ ^[0-9]+$ ]] && kill -0 "$old" 2>/dev/null; then
    die "a broker (pid $old) is already running in $dir; stop it with deploy/kafka/stop.sh $dir"
  fi
fi
port_open() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }
port_open "$port" && die "port $port on $host is already in use (choose another with --port)"
port_open "$cport" && die "controller port $cport on $host is already in use (choose another with --controller-port)"

libs="$("$HERE/fetch.sh")" || die "could not fetch the Kafka jars (see above)"

if [[ -z "$dir" ]]; then
  dir="$(mktemp -d "${TMPDIR:-/tmp}/snakefleet-kafka.XXXXXX")"
else
  [[ "$dir" != *[[:space:]]* ]] || die "data dir path must not contain spaces: '$dir'"
  mkdir -p "$dir" || die "cannot create data dir '$dir'"
  dir="$(cd "$dir" && pwd)"
  if [[ ! -f "$dir/.snakefleet-kafka" && -n "$(ls -A "$dir")" ]]; then
    die "data dir $dir is not empty and was not made by start.sh; give an empty or new dir"
  fi
  rm -f "$dir/kafka.pid"
fi
touch "$dir/.snakefleet-kafka"
mkdir -p "$dir/data" "$dir/logs"

cat >"$dir/server.properties" <<EOF
# Single-node KRaft test broker written by deploy/kafka/start.sh.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$host:$cport
listeners=PLAINTEXT://$host:$port,CONTROLLER://$host:$cport
advertised.listeners=PLAINTEXT://$host:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.segment.bytes=16777216
log.retention.hours=24
log.retention.bytes=268435456
log.retention.check.interval.ms=60000
log.cleaner.dedupe.buffer.size=8388608
EOF
if ((${#extra_props[@]})); then
  {
    echo "# extra properties (--prop / KAFKA_EXTRA_PROPS)"
    printf '%s\n' "${extra_props[@]}"
  } >>"$dir/server.properties"
fi

cat >"$dir/log4j.properties" <<EOF
# Broker logging (reload4j), written by deploy/kafka/start.sh.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$dir/logs/server.log
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF

read -r -a tools_opts <<<"${KAFKA_TOOLS_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -Xmx256m}"
tools_log4j="-Dlog4j.configuration=file:$HERE/tools-log4j.properties"

if [[ -f "$dir/data/meta.properties" ]]; then
  note "reusing the formatted storage in $dir/data ($(grep '^cluster.id=' "$dir/data/meta.properties"))"
else
  # A Kafka Uuid: 16 random bytes, base64url without padding, not starting
  # with '-' (as Uuid.randomUuid guarantees).
  cluster_id=""
  while [[ ${#cluster_id} -ne 22 || "$cluster_id" == -* ]]; do
    cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
  done
  if ! timeout 60 java "${tools_opts[@]}" "$tools_log4j" -cp "$libs/*" kafka.tools.StorageTool \
      format -t "$cluster_id" -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1; then
    cat "$dir/logs/format.log" >&2
    die "formatting the storage in $dir/data failed"
  fi
fi
t_formatted="$(now_ms)"

read -r -a heap_opts <<<"${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
read -r -a jvm_opts <<<"${KAFKA_JVM_OPTS:--XX:+UseSerialGC -Xshare:auto -XX:+ExitOnOutOfMemoryError}"
# setsid: the broker gets its own session, so a terminal's Ctrl-C or the
# caller's process group being killed does not take it down mid-test; stop.sh
# is the way to stop it. setsid execs java in place (the background child is
# not a group leader), so $! is the JVM's pid.
setsid java "${heap_opts[@]}" "${jvm_opts[@]}" -Djava.awt.headless=true \
  "-Dlog4j.configuration=file:$dir/log4j.properties" \
  -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
  </dev/null >"$dir/kafka.out" 2>&1 &
pid=$!
echo "$pid" >"$dir/kafka.pid"

# Until the broker is ready with its topics, any failure or interruption of
# this script stops the broker and its helper JVMs (the dir is kept for
# inspection), so a failed start leaves no process behind.
ok=0
bg_pids=()
on_exit() {
  ((ok)) && return 0
  local p
  for p in "${bg_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/kafka.pid"
  note "the broker is stopped; its dir $dir is kept for inspection"
}
trap on_exit EXIT
trap 'note "interrupted"; exit 130' INT TERM HUP
fail() {
  note "error: $*"
  note "broker output ($dir/kafka.out) and log ($dir/logs/server.log), last lines:"
  tail -n 15 "$dir/kafka.out" >&2 || true
  grep -E ' (ERROR|FATAL|WARN) ' "$dir/logs/server.log" 2>/dev/null | tail -n 15 >&2 || true
  exit 1
}

deadline=$(($(now_ms) + timeout_s * 1000))
until grep -q 'Kafka Server started' "$dir/logs/server.log" 2>/dev/null && port_open "$port"; do
  kill -0 "$pid" 2>/dev/null || fail "the broker exited during startup"
  (($(now_ms) < deadline)) || fail "the broker was not ready within ${timeout_s} s"
  sleep 0.1
done
t_ready="$(now_ms)"

# Warm-up, in parallel with the topic creation: a FindCoordinator request
# (ConsumerGroupCommand --describe) makes the broker create and load
# __consumer_offsets now, instead of during a test's first group join (which
# otherwise takes ~3 s longer). Best effort: a failure is only reported.
warm_pid=""
if ((warm)); then
  timeout --kill-after=5 "$timeout_s" java "${tools_opts[@]}" "$tools_log4j" -cp "$libs/*" \
    org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
    --bootstrap-server "$host:$port" --describe --group snakefleet-start-warmup \
    >"$dir/logs/warmup.log" 2>&1 &
  warm_pid=$!
  bg_pids+=("$warm_pid")
fi

# Create the topics in parallel: each TopicCommand is its own short JVM. With
# no topics, a topic list checks that the broker answers admin requests.
tool_pids=()
tool_what=()
if ((${#topic_names[@]})); then
  for i in "${!topic_names[@]}"; do
    KAFKA_TOOLS_TIMEOUT="$timeout_s" "$HERE/topics.sh" -b "$host:$port" \
      create "${topic_names[$i]}" "${topic_parts[$i]}" >"$dir/logs/topic-$i.log" 2>&1 &
    tool_pids+=($!)
    tool_what+=("creating topic ${topic_names[$i]}")
  done
else
  KAFKA_TOOLS_TIMEOUT="$timeout_s" "$HERE/topics.sh" -b "$host:$port" list \
    >"$dir/logs/topic-0.log" 2>&1 &
  tool_pids+=($!)
  tool_what+=("listing topics")
fi
bg_pids+=("${tool_pids[@]}")
# Watch the broker while the tools run: if it dies they would only time out.
while :; do
  running=0
  for p in "${tool_pids[@]}"; do kill -0 "$p" 2>/dev/null && running=1; done
  ((running)) || break
  kill -0 "$pid" 2>/dev/null || fail "the broker died while its topics were being created"
  sleep 0.1
done
failed=()
for i in "${!tool_pids[@]}"; do
  wait "${tool_pids[$i]}" || failed+=("${tool_what[$i]}")
done
if ((${#failed[@]})); then
  for i in "${!tool_pids[@]}"; do cat "$dir/logs/topic-$i.log" >&2; done
  fail "$(IFS=,; echo "${failed[*]}") failed"
fi
rm -f "$dir"/logs/topic-*.log
if [[ -n "$warm_pid" ]]; then
  wait "$warm_pid" || note "warning: the __consumer_offsets warm-up failed (see $dir/logs/warmup.log); continuing"
fi
t_done="$(now_ms)"

kill -0 "$pid" 2>/dev/null || fail "the broker died after startup"
{
  printf 'KAFKA_BOOTSTRAP=%s:%s\n' "$host" "$port"
  printf 'KAFKA_DIR=%q\n' "$dir"
  printf 'KAFKA_PID=%s\n' "$pid"
} >"$dir/env"
note "Kafka $(basename "$(dirname "$libs")" | sed 's/^kafka-//') ready on $host:$port (controller $cport, pid $pid, dir $dir); topics: ${topic_names[*]:-none}"
note "timing: format $((t_formatted - t0)) ms, broker up $((t_ready - t_formatted)) ms, topics+warm-up $((t_done - t_ready)) ms, total $((t_done - t0)) ms"
ok=1
cat "$dir/env"

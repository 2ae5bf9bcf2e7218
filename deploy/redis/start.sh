#!/usr/bin/env bash
# Starts a Redis server (Debian's redis-server) for snakefleet's integration
# tests, benchmarks and local work: bound to 127.0.0.1 only, in its own data
# dir, daemonized with a pidfile, and waits (bounded) until `redis-cli ping`
# answers PONG. Everything goes to stderr except the final lines on stdout,
# made for eval:
#   REDIS_URL=redis://127.0.0.1:PORT
#   REDIS_DIR=DIR
#   REDIS_PORT=PORT
#   REDIS_PID=PID
# e.g.  eval "$(deploy/redis/start.sh)"; ...; deploy/redis/stop.sh "$REDIS_DIR"
#
# Usage: deploy/redis/start.sh [options] [-- REDIS-SERVER-ARGS...]
#   -d, --dir DIR          data dir ($REDIS_DIR, else a fresh mktemp -d); an
#                          existing dir of an earlier run is reused (restart
#                          on its AOF after KEEP=1 stop.sh)
#   -p, --port PORT        port ($REDIS_PORT, else 16379)
#   -w, --timeout SECONDS  readiness wait ($REDIS_START_TIMEOUT, else 20)
#   -- ARGS                extra redis-server arguments (e.g. --maxmemory 256mb)
# Environment (persistence defaults: no RDB snapshots, AOF fsync'd on every write):
#   REDIS_SAVE         value of `save` (default "": no snapshots)
#   REDIS_APPENDONLY   yes|no (default yes)
#   REDIS_APPENDFSYNC  always|everysec|no (default always)
# appendfsync always: Redis fsyncs the AOF before it answers a write, so a
# write the supervisor was told is stored (and whose request's offset it then
# commits in Kafka) survives a crash of the machine. everysec fsyncs once a
# second in the background: a power loss or kernel crash can lose up to about
# 2 s of acknowledged writes (Redis's own worst case for it; with a slow disk
# a redis-server crash can too), i.e. session state and remembered replies of
# requests already committed in Kafka, which are not delivered again. Choose
# everysec only for benchmarks or throwaway data.
# Files in DIR: redis.conf, redis.pid, redis.log, appendonlydir/, env (the
# stdout lines above), .snakefleet-redis (marks the dir as removable by stop.sh).
set -euo pipefail

die() { echo "redis/start.sh: error: $*" >&2; exit 1; }
usage_error() { echo "redis/start.sh: error: $*" >&2; exit 2; }
note() { echo "redis/start.sh: $*" >&2; }
# shellcheck source=deploy/lib/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/proc.sh"
now_ms() { date +%s%3N; }
t0="$(now_ms)"

dir="${REDIS_DIR:-}"
port="${REDIS_PORT:-16379}"
timeout_s="${REDIS_START_TIMEOUT:-20}"
save="${REDIS_SAVE:-}"
appendonly="${REDIS_APPENDONLY:-yes}"
appendfsync="${REDIS_APPENDFSYNC:-always}"
extra=()

need_arg() { (($1 >= 2)) || usage_error "$2 needs a value"; }
while (($#)); do
  case "$1" in
    -d|--dir) need_arg $# "$1"; dir="$2"; shift 2 ;;
    -p|--port) need_arg $# "$1"; port="$2"; shift 2 ;;
    -w|--timeout) need_arg $# "$1"; timeout_s="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) usage_error "unknown argument '$1' (try --help)" ;;
  esac
done

if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then die "invalid port '$port'"; fi
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || die "invalid timeout '$timeout_s'"
[[ "$appendonly" == yes || "$appendonly" == no ]] || die "REDIS_APPENDONLY must be yes or no, got '$appendonly'"
[[ "$appendfsync" =~ ^(always|everysec|no)$ ]] || die "REDIS_APPENDFSYNC must be always, everysec or no, got '$appendfsync'"
[[ "$save" =~ ^[0-9\ ]*$ ]] || die "REDIS_SAVE must be empty or 'SECONDS CHANGES ...', got '$save'"
command -v redis-server >/dev/null 2>&1 || die "redis-server not found (Debian: apt-get install redis-server)"
command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found (Debian: apt-get install redis-tools)"

if [[ -n "$dir" && -f "$dir/redis.pid" ]]; then
  old="$(cat "$dir/redis.pid")"
  # alive, not kill -0: a server killed with SIGKILL may stay a zombie until its
  # parent (init, after daemonizing) reaps it, and a zombie serves nothing
  if [[ "$old" =~ ^[0-9]+$ ]] && alive "$old"; then
    die "a redis-server (pid $old) is already running in $dir; stop it with deploy/redis/stop.sh $dir"
  fi
fi
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_open "$port" && die "port $port on 127.0.0.1 is already in use (choose another with --port)"

if [[ -z "$dir" ]]; then
  dir="$(mktemp -d "${TMPDIR:-/tmp}/snakefleet-redis.XXXXXX")"
else
  [[ "$dir" != *[[:space:]\"]* ]] || die "data dir path must not contain spaces or quotes: '$dir'"
  mkdir -p "$dir" || die "cannot create data dir '$dir'"
  dir="$(cd "$dir" && pwd)"
  if [[ ! -f "$dir/.snakefleet-redis" && -n "$(ls -A "$dir")" ]]; then
    die "data dir $dir is not empty and was not made by start.sh; give an empty or new dir"
  fi
  rm -f "$dir/redis.pid"
fi
touch "$dir/.snakefleet-redis"

cat >"$dir/redis.conf" <<EOF
# Written by deploy/redis/start.sh.
bind 127.0.0.1
protected-mode yes
port $port
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
loglevel notice
dir $dir
save "$save"
appendonly $appendonly
appendfsync $appendfsync
appendfilename "appendonly.aof"
EOF

redis-server "$dir/redis.conf" "${extra[@]}" </dev/null >"$dir/redis.out" 2>&1 \
  || { cat "$dir/redis.out" >&2; tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true; die "redis-server failed to start"; }

fail() {
  note "error: $*"
  note "last lines of $dir/redis.log:"
  tail -n 20 "$dir/redis.log" >&2 2>/dev/null || true
  if [[ -f "$dir/redis.pid" ]]; then
    p="$(cat "$dir/redis.pid")"
    kill -KILL "$p" 2>/dev/null || true
    rm -f "$dir/redis.pid"
  fi
  note "its dir $dir is kept for inspection"
  exit 1
}

deadline=$(($(now_ms) + timeout_s * 1000))
until [[ -s "$dir/redis.pid" ]] && [[ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; do
  (($(now_ms) < deadline)) || fail "redis-server did not answer PING within ${timeout_s} s"
  sleep 0.05
done
pid="$(cat "$dir/redis.pid")"
{
  printf 'REDIS_URL=redis://127.0.0.1:%s\n' "$port"
  printf 'REDIS_DIR=%q\n' "$dir"
  printf 'REDIS_PORT=%s\n' "$port"
  printf 'REDIS_PID=%s\n' "$pid"
} >"$dir/env"
note "redis-server ready on 127.0.0.1:$port (pid $pid, dir $dir, appendonly $appendonly/$appendfsync) in $(($(now_ms) - t0)) ms"
cat "$dir/env"

#!/usr/bin/env bash
# Stops a Redis server started by deploy/redis/start.sh: `redis-cli shutdown
# nosave`, a bounded wait, then SIGTERM and SIGKILL to the pid in
# DIR/redis.pid if it is still there (only if that process is the
# redis-server of DIR); then removes DIR unless KEEP=1. Idempotent: a server
# already gone is fine, and so is a missing DIR.
#
# Usage: deploy/redis/stop.sh [-h|--help] [--] [DIR]   DIR defaults to $REDIS_DIR
# Environment:
#   KEEP=1               keep DIR (AOF, log) after stopping
#   REDIS_STOP_TIMEOUT   seconds to wait for the shutdown before killing (10)
# Exit status 0 when no redis-server of DIR is left running; 2 on a usage error.
set -euo pipefail

die() { echo "redis/stop.sh: error: $*" >&2; exit 1; }
note() { echo "redis/stop.sh: $*" >&2; }
usage_error() { echo "redis/stop.sh: error: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) usage_error "unknown option '$1' (try --help)" ;;
    *) break ;;
  esac
done
(($# <= 1)) || usage_error "one DIR at most, got $# arguments (try --help)"
dir="${1:-${REDIS_DIR:-}}"
[[ -n "$dir" ]] || usage_error "no DIR given and REDIS_DIR is not set (try --help)"
stop_timeout="${REDIS_STOP_TIMEOUT:-10}"
[[ "$stop_timeout" =~ ^[0-9]+$ ]] || die "invalid REDIS_STOP_TIMEOUT '$stop_timeout'"

if [[ ! -d "$dir" ]]; then
  note "$dir does not exist; nothing to stop"
  exit 0
fi
dir="$(cd "$dir" && pwd)"

# shellcheck source=deploy/lib/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/proc.sh"
# ours PID PORT: a redis-server serving 127.0.0.1:PORT (redis-server sets its
# process title to "redis-server 127.0.0.1:PORT"; Debian's binary is a link to
# redis-check-rdb, so /proc/PID/exe does not tell), so a recycled pid of an
# unrelated process is never signalled.
ours() {
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == redis-server*"127.0.0.1:$2"* ]]
}

port=""
if [[ -f "$dir/redis.conf" ]]; then
  port="$(awk '$1 == "port" {print $2}' "$dir/redis.conf")"
fi

if [[ -f "$dir/redis.pid" && -n "$port" ]]; then
  pid="$(cat "$dir/redis.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || die "bad pid file $dir/redis.pid: '$pid'"
  if alive "$pid" && ours "$pid" "$port"; then
    timeout 5 redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
    if ! wait_gone "$pid" "$stop_timeout"; then
      note "redis-server pid $pid still running ${stop_timeout} s after SHUTDOWN"
      stop_pid "$pid" 5 redis-server
    fi
    note "stopped redis-server pid $pid (port $port)"
  elif alive "$pid"; then
    note "pid $pid from $dir/redis.pid is not this dir's redis-server; not signalling it"
  fi
  rm -f "$dir/redis.pid"
else
  note "no $dir/redis.pid; no redis-server to stop"
fi

if [[ "${KEEP:-0}" == 1 ]]; then
  note "KEEP=1: keeping $dir"
elif [[ -f "$dir/.snakefleet-redis" ]]; then
  rm -rf "$dir"
else
  note "$dir was not made by start.sh (no .snakefleet-redis marker); not removing it"
fi

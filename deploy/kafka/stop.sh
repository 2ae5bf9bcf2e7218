#!/usr/bin/env bash
# Stops a Kafka test broker started by deploy/kafka/start.sh: SIGTERM to the
# pid in DIR/kafka.pid (only if that process is the broker of DIR), a bounded
# wait for the clean shutdown, then SIGKILL; then removes DIR unless KEEP=1.
# Idempotent: a broker already gone is fine, and so is a missing DIR.
#
# Usage: deploy/kafka/stop.sh [-h|--help] [--] [DIR]   DIR defaults to $KAFKA_DIR
# Environment:
#   KEEP=1               keep DIR (data, logs) after stopping
#   KAFKA_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (30)
# Exit status 0 when no broker of DIR is left running; 2 on a usage error.
set -euo pipefail

die() { echo "kafka/stop.sh: error: $*" >&2; exit 1; }
note() { echo "kafka/stop.sh: $*" >&2; }
usage_error() { echo "kafka/stop.sh: error: $*" >&2; exit 2; }
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
dir="${1:-${KAFKA_DIR:-}}"
[[ -n "$dir" ]] || usage_error "no DIR given and KAFKA_DIR is not set (try --help)"
stop_timeout="${KAFKA_STOP_TIMEOUT:-30}"
[[ "$stop_timeout" =~ ^[0-9]+$ ]] || die "invalid KAFKA_STOP_TIMEOUT '$stop_timeout'"

if [[ ! -d "$dir" ]]; then
  note "$dir does not exist; nothing to stop"
  exit 0
fi
dir="$(cd "$dir" && pwd)"

# shellcheck source=deploy/lib/proc.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/proc.sh"
# ours PID: its command line is `java ... kafka.Kafka DIR/server.properties`,
# so a recycled pid of an unrelated process is never signalled.
ours() {
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *" kafka.Kafka $dir/server.properties"* ]]
}

if [[ -f "$dir/kafka.pid" ]]; then
  pid="$(cat "$dir/kafka.pid")"
  [[ "$pid" =~ ^[0-9]+$ ]] || die "bad pid file $dir/kafka.pid: '$pid'"
  if alive "$pid" && ours "$pid"; then
    start_s=$SECONDS
    stop_pid "$pid" "$stop_timeout" broker
    note "stopped broker pid $pid in $((SECONDS - start_s)) s"
  elif alive "$pid"; then
    note "pid $pid from $dir/kafka.pid is not this dir's broker; not signalling it"
  fi
  rm -f "$dir/kafka.pid"
else
  note "no $dir/kafka.pid; no broker to stop"
fi

if [[ "${KEEP:-0}" == 1 ]]; then
  note "KEEP=1: keeping $dir"
elif [[ -f "$dir/.snakefleet-kafka" ]]; then
  rm -rf "$dir"
else
  note "$dir was not made by start.sh (no .snakefleet-kafka marker); not removing it"
fi

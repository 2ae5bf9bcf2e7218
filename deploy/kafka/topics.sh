#!/usr/bin/env bash
# Creates, lists, describes or deletes topics on a Kafka broker (e.g. the local
# test broker of start.sh) with Kafka's own admin tool,
# org.apache.kafka.tools.TopicCommand, run from the jars fetch.sh caches.
#
# Usage: deploy/kafka/topics.sh [-b BOOTSTRAP] COMMAND ...
#   create NAME [PARTITIONS] [KEY=VALUE ...]
#                      create NAME (default 1 partition, replication factor
#                      $KAFKA_REPLICATION or 1) with optional topic configs;
#                      an existing topic is left as it is (--if-not-exists)
#   list               print the topic names, one a line
#   describe [NAME]    partitions, leaders, configs (all topics without NAME)
#   delete NAME        delete NAME (--if-exists)
# Options / environment:
#   -b, --bootstrap-server HOST:PORT  default $KAFKA_BOOTSTRAP, else 127.0.0.1:19092
#   KAFKA_VERSION, SNAKEFLEET_CACHE   which cached Kafka to run (see fetch.sh)
#   KAFKA_TOOLS_JVM_OPTS              JVM options for the tool
#   KAFKA_TOOLS_TIMEOUT               seconds before the tool is killed (60)
# Exit status: the tool's (124 when it timed out).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { echo "kafka/topics.sh: error: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

bootstrap="${KAFKA_BOOTSTRAP:-127.0.0.1:19092}"
while (($#)); do
  case "$1" in
    -b|--bootstrap-server) (($# >= 2)) || die "$1 needs HOST:PORT"; bootstrap="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option '$1' (try --help)" ;;
    *) break ;;
  esac
done
(($#)) || { usage >&2; exit 2; }
cmd="$1"; shift

args=()
case "$cmd" in
  create)
    (($# >= 1)) || die "create needs a topic NAME"
    name="$1"; shift
    partitions=1
    if (($#)) && [[ "$1" != *=* ]]; then partitions="$1"; shift; fi
    [[ "$partitions" =~ ^[1-9][0-9]*$ ]] || die "partitions must be a positive integer, got '$partitions'"
    args=(--create --if-not-exists --topic "$name" --partitions "$partitions"
      --replication-factor "${KAFKA_REPLICATION:-1}")
    for kv in "$@"; do
      [[ "$kv" == ?*=* ]] || die "topic config must be KEY=VALUE, got '$kv'"
      args+=(--config "$kv")
    done
    ;;
  list) (($# == 0)) || die "list takes no arguments"; args=(--list) ;;
  describe)
    args=(--describe)
    if (($# == 1)); then args+=(--topic "$1"); elif (($# > 1)); then die "describe takes at most one NAME"; fi
    ;;
  delete)
    (($# == 1)) || die "delete needs exactly one topic NAME"
    args=(--delete --if-exists --topic "$1")
    ;;
  *) die "unknown command '$cmd' (create, list, describe, delete)" ;;
esac
if [[ -n "${name:-}" ]]; then
  [[ "$name" =~ ^[A-Za-z0-9._-]{1,249}$ ]] || die "invalid topic name '$name'"
fi

libs="$("$HERE/fetch.sh")" || die "could not fetch the Kafka jars (see above)"
command -v java >/dev/null 2>&1 || die "java not found"

read -r -a jvm_opts <<<"${KAFKA_TOOLS_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -Xmx256m}"
exec timeout --kill-after=5 "${KAFKA_TOOLS_TIMEOUT:-60}" \
  java "${jvm_opts[@]}" "-Dlog4j.configuration=file:$HERE/tools-log4j.properties" \
  -cp "$libs/*" org.apache.kafka.tools.TopicCommand \
  --bootstrap-server "$bootstrap" "${args[@]}"

#!/usr/bin/env bash
# Fetches the jars of an Apache Kafka 3.9.x KRaft broker (kafka.Kafka), its
# storage formatting tool (kafka.tools.StorageTool), the topic admin tool
# (org.apache.kafka.tools.TopicCommand) and the slf4j -> reload4j logging
# binding from Maven Central, with `mvn dependency:copy-dependencies` on
# deploy/kafka/pom.xml, into
#   ${SNAKEFLEET_CACHE:-$HOME/.cache/snakefleet}/kafka-<version>/libs
# Idempotent: a verified stamp file (.fetched: version + every jar's size)
# makes a second run a no-op without touching the network. Concurrent runs
# are serialised with flock. Prints the libs directory on stdout (the only
# stdout output), so callers can do  LIBS="$(deploy/kafka/fetch.sh)".
#
# Usage: deploy/kafka/fetch.sh [--check] [VERSION]
#   VERSION        3.9.x (default: $KAFKA_VERSION, else 3.9.2). 4.x is refused:
#                  it drops protocol versions librdkafka 2.0.2 relies on.
#   --check        do not fetch: exit 0 (and print the libs dir) when the
#                  version is already fetched and verified, 1 otherwise.
# Environment:
#   KAFKA_VERSION       version to fetch (overridden by the VERSION argument)
#   SNAKEFLEET_CACHE    cache root (default $HOME/.cache/snakefleet)
#   SNAKEFLEET_MVN_ARGS extra mvn arguments, word-split (e.g. "-o" offline,
#                       "-Dmaven.repo.local=/path")
#   KAFKA_FETCH_FORCE=1 discard an existing fetch and fetch again
set -euo pipefail

DEFAULT_KAFKA_VERSION=3.9.2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() { echo "kafka/fetch.sh: error: $*" >&2; exit 1; }
usage_error() { echo "kafka/fetch.sh: error: $*" >&2; exit 2; }
note() { echo "kafka/fetch.sh: $*" >&2; }

check_only=0
version="${KAFKA_VERSION:-$DEFAULT_KAFKA_VERSION}"
while (($#)); do
  case "$1" in
    --check) check_only=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) usage_error "unknown option '$1' (try --help)" ;;
    *) version="$1" ;;
  esac
  shift
done

if [[ "$version" =~ ^[4-9]\. ]]; then
  die "Kafka $version is not acceptable: Kafka 4.x removed protocol versions that librdkafka 2.0.2 relies on; use 3.9.x"
fi
[[ "$version" =~ ^3\.9\.[0-9]+$ ]] || die "unsupported Kafka version '$version' (expected 3.9.x, e.g. $DEFAULT_KAFKA_VERSION)"

cache="${SNAKEFLEET_CACHE:-${HOME:-/tmp}/.cache/snakefleet}"
dest="$cache/kafka-$version"
libs="$dest/libs"
stamp="$dest/.fetched"

# Jars without which start.sh / topics.sh cannot work.
required_jars=("kafka_2.13-$version.jar" "kafka-tools-$version.jar"
  "kafka-storage-$version.jar" "kafka-server-common-$version.jar"
  "kafka-clients-$version.jar" "kafka-raft-$version.jar"
  "kafka-metadata-$version.jar" "slf4j-reload4j-" "reload4j-" "scala-library-")

# verified: the stamp exists, names this version, and every jar it lists is
# present with the recorded size.
verified() {
  [[ -f "$stamp" && -d "$libs" ]] || return 1
  [[ "$(head -n1 "$stamp")" == "kafka_version=$version" ]] || return 1
  local expected actual
  expected="$(tail -n +2 "$stamp")"
  [[ -n "$expected" ]] || return 1
  actual="$(cd "$libs" && cut -d' ' -f1 <<<"$expected" | xargs stat -c '%n %s' 2>/dev/null)" || return 1
  [[ "$actual" == "$expected" ]]
}

if [[ "${KAFKA_FETCH_FORCE:-0}" != 1 ]] && verified; then
  echo "$libs"
  exit 0
fi
if ((check_only)); then
  note "Kafka $version is not fetched, or its fetch is incomplete (no verified stamp at $stamp)"
  exit 1
fi

command -v mvn >/dev/null 2>&1 || die "mvn not found (Debian: apt-get install maven)"
command -v java >/dev/null 2>&1 || die "java not found (Debian: apt-get install openjdk-17-jre-headless)"

mkdir -p "$cache" || die "cannot create cache directory $cache"
lock="$cache/kafka-$version.lock"
if command -v flock >/dev/null 2>&1; then
  exec 9>"$lock"
  flock -w 900 9 || die "timed out waiting for another fetch holding $lock"
  # Another process may have finished the fetch while we waited.
  if [[ "${KAFKA_FETCH_FORCE:-0}" != 1 ]] && verified; then
    echo "$libs"
    exit 0
  fi
fi

mkdir -p "$dest"
tmp="$(mktemp -d "$dest/libs.tmp.XXXXXX")"
log="$dest/fetch.log"
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

note "fetching Apache Kafka $version jars from Maven Central into $libs (log: $log)"
start_s=$SECONDS
mvn_extra=()
if [[ -n "${SNAKEFLEET_MVN_ARGS:-}" ]]; then
  read -r -a mvn_extra <<<"$SNAKEFLEET_MVN_ARGS"
fi
if ! mvn -q -B -f "$HERE/pom.xml" "${mvn_extra[@]}" \
    dependency:copy-dependencies \
    "-Dkafka.version=$version" "-Dsnakefleet.kafka.libs=$tmp" >"$log" 2>&1; then
  echo "----- last lines of $log -----" >&2
  tail -n 25 "$log" >&2
  echo "------------------------------" >&2
  if grep -q "Could not resolve\|Could not find artifact\|not found in" "$log"; then
    die "Maven could not resolve Kafka $version artifacts: is Maven Central reachable, and is $version a released 3.9.x version?"
  fi
  die "mvn dependency:copy-dependencies failed for Kafka $version (full log: $log)"
fi

shopt -s nullglob
jars=("$tmp"/*.jar)
shopt -u nullglob
((${#jars[@]} > 0)) || die "mvn succeeded but copied no jars into $tmp (log: $log)"
for want in "${required_jars[@]}"; do
  found=0
  for j in "${jars[@]}"; do
    [[ "$(basename "$j")" == "$want"* ]] && { found=1; break; }
  done
  ((found)) || die "fetched jars lack ${want}* (log: $log)"
done

# Swap the new jars in, then write the stamp last: a crash before this point
# leaves no stamp, so the next run fetches again.
rm -f "$stamp"
rm -rf "$libs"
mv "$tmp" "$libs"
chmod 755 "$libs"
{
  echo "kafka_version=$version"
  (cd "$libs" && stat -c '%n %s' -- *.jar)
} >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
verified || die "internal error: fresh fetch does not verify against $stamp"

note "fetched Kafka $version: ${#jars[@]} jars, $(du -sh "$libs" | cut -f1) in $((SECONDS - start_s)) s"
echo "$libs"

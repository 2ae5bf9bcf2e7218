#!/usr/bin/env bash
# Runs the nemesis tests (tests/nemesis): three "hosts", each a network
# namespace with one supervisor, joined by veth pairs to a core namespace
# where a Kafka broker and a redis-server listen on 169.254.0.1; faults are
# injected with nft rules, a token-bucket qdisc, signals and restarts. All
# addresses are link-local and exist only inside the namespaces made here.
#
# Needs root (namespaces), iproute2 and nftables (deploy/setup.sh installs
# them); without them it says why and exits 0 (skipped). Builds the release
# supervisor unless SNAKEFLEET_NEMESIS_SKIP_BUILD=1. Everything it makes is
# removed on exit, also after a failure, a timeout or Ctrl-C.
#
# Usage: tests/nemesis/run.sh [PYTEST-ARGS...]
# Environment:
#   NEMESIS_SEED=1        seed of the random schedule (replays a failing run)
#   NEMESIS_TIMEOUT=900   seconds for the whole pytest run
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
note() { echo "nemesis/run.sh: $*" >&2; }

if [[ "$(id -u)" != 0 ]]; then
  note "skipped: network namespaces need root"
  exit 0
fi
for tool in ip nft tc; do
  command -v "$tool" >/dev/null || { note "skipped: '$tool' is not installed (deploy/setup.sh)"; exit 0; }
done

"$ROOT/deploy/setup.sh" >&2
"$PY" -c 'import confluent_kafka' 2>/dev/null || "$PY" -m pip install -q 'confluent-kafka>=2.0' >&2
if [[ "${SNAKEFLEET_NEMESIS_SKIP_BUILD:-0}" != 1 ]]; then
  cmake -S "$ROOT" -B "$ROOT/build/release" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$ROOT/build/release" -j "$(nproc)" >/dev/null
fi
"$ROOT/deploy/kafka/fetch.sh" >&2

TAG="$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/snakefleet-nemesis.XXXXXX")"
mkdir -p "$WORK/bin"
cp "$ROOT/build/release/supervisor/snakefleet-supervisor" "$WORK/bin/"
cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  (cd "$ROOT/tests/nemesis" && "$PY" -c "import netns; netns.sweep('$TAG')") || true
  if [[ $status -eq 0 && "${NEMESIS_KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; else note "run dir kept: $WORK"; fi
  exit "$status"
}
trap cleanup EXIT INT TERM HUP

export SNAKEFLEET_NEMESIS_SUPERVISOR="$WORK/bin/snakefleet-supervisor"
export SNAKEFLEET_NEMESIS_TAG="$TAG" SNAKEFLEET_NEMESIS_DIR="$WORK"
export PYTHONPATH="$ROOT/tests/nemesis${PYTHONPATH:+:$PYTHONPATH}"
cd "$ROOT/tests/nemesis"
timeout -k 10 "${NEMESIS_TIMEOUT:-900}" "$PY" -m pytest -q -s . "$@"

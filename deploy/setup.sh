#!/usr/bin/env bash
# Installs what snakefleet needs on a fresh Debian 12 machine: the C build
# dependencies and tools, redis-server, Java and Maven for the Kafka test
# broker, and the project's Python venv (.venv at the repository root, with
# the snakefleet package installed editable).
# Idempotent: a second run only checks. Used by tests/run.sh, quickstart.sh
# and bench/run.sh.
#
# Usage: deploy/setup.sh [-h|--help]
#   Installs the missing Debian packages (apt-get, with sudo when not root),
#   creates .venv and installs python/ into it editable with its dev, kafka
#   and dspy extras. Takes no other arguments.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
case "${1:-}" in
  "") ;;
  -h|--help) usage; exit 0 ;;
  *) echo "setup.sh: error: unknown argument '$1' (try --help)" >&2; exit 2 ;;
esac

# What the scripts under deploy/, tests/ and bench/ run, not only what the C
# build links: ninja-build (every cmake -G Ninja), git (tests/run.sh's format
# check lists files with it), libclang-rt-14-dev (clang's sanitizer and
# libFuzzer runtimes: the -DSF_FUZZ=ON build links them), redis-tools
# (redis-cli: deploy/redis/*.sh), maven and a Java 17 runtime
# (deploy/kafka/*.sh fetch and run the Kafka test broker), iproute2, nftables
# and procps (tests/nemesis: hosts as network namespaces, faults as nft rules
# and qdiscs, pgrep).
DEB_PACKAGES=(build-essential cmake ninja-build pkg-config git clang clang-format
  libclang-rt-14-dev valgrind librdkafka-dev libhiredis-dev libmsgpack-dev
  libevent-dev libinih-dev libjansson-dev libcriterion-dev redis-server redis-tools
  maven openjdk-17-jre-headless python3 python3-venv iproute2 nftables procps)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

VENV="$ROOT/.venv"
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "setup: creating the Python venv at $VENV" >&2
  # The Debian interpreter, not a pyenv shim: workers are spawned by the
  # venv's absolute path and a shim costs ~100 ms per start.
  /usr/bin/python3 -m venv "$VENV"
fi
stamp="$VENV/.snakefleet-installed"
if [[ ! -f "$stamp" || "$ROOT/python/pyproject.toml" -nt "$stamp" ]]; then
  echo "setup: installing the snakefleet Python package into the venv" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e "$ROOT/python[dev,kafka,dspy]"
  touch "$stamp"
fi
# Workers start often: compiled bytecode saves ~8 ms per start (PYTHONDONTWRITEBYTECODE
# may be set in the environment, so compile explicitly).
if [[ -z "$(find "$ROOT/python/snakefleet" -name '*.py' -newer "$VENV/.snakefleet-compiled" 2>/dev/null | head -1)" && -f "$VENV/.snakefleet-compiled" ]]; then
  :
else
  "$VENV/bin/python" -m compileall -q "$ROOT/python/snakefleet" >/dev/null
  touch "$VENV/.snakefleet-compiled"
fi

#!/usr/bin/env bash
# Installs what snakefleet needs on a fresh Debian 12 machine: the C build
# dependencies, redis-server, and the project's Python venv (.venv at the
# repository root, with the snakefleet package installed editable).
# Idempotent: a second run only checks. Used by tests/run.sh, quickstart.sh
# and bench/run.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

DEB_PACKAGES=(build-essential cmake pkg-config clang clang-format valgrind
  librdkafka-dev libhiredis-dev libmsgpack-dev libevent-dev libinih-dev
  libjansson-dev libcriterion-dev redis-server python3 python3-venv)

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

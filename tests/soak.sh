#!/usr/bin/env bash
# The long run of the nemesis (not in CI): three hosts, each a network
# namespace with its own supervisor, under load for SOAK_S seconds (1800 by
# default) with a random fault every 4-10 s drawn from every kind the nemesis
# has (cuts from Kafka, from Redis or both, a slow lossy link, SIGKILL,
# SIGSTOP past the session timeout, a whole host killed, broker and Redis
# restarts), then the checker's report: lost requests, double effects, order
# violations, replies contradicting the state, duplicates, errors by type,
# final lag, and per fault the time to recover and p99 during and after.
#
# Usage: tests/soak.sh            SOAK_S=1800 NEMESIS_SEED=1 by default
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOAK_S="${SOAK_S:-1800}"
export NEMESIS_DURATION="$SOAK_S" NEMESIS_TIMEOUT="$((SOAK_S + 900))"
exec "$ROOT/tests/nemesis/run.sh" -k random -o "timeout=$((SOAK_S + 600))" "$@"

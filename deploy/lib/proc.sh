# shellcheck shell=bash
# Process helpers shared by the deploy scripts (sourced, not run). Callers
# define note() and die().
#
# Usage: source "$(dirname "${BASH_SOURCE[0]}")/../lib/proc.sh"   (from a deploy script)
#   alive PID, wait_gone PID SECONDS, stop_pid PID SECONDS NAME; see below.
#   Run on its own it only prints this text (-h, --help).

# Run rather than sourced: say what this file is, and do nothing else.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-}" in
    -h|--help) sed -n '2,/^$/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "lib/proc.sh: error: this file is sourced by the deploy scripts, not run (try --help)" >&2; exit 2 ;;
  esac
fi

# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() {
  local state
  state="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}

# wait_gone PID SECONDS: true once PID is gone, false if it outlives SECONDS.
wait_gone() {
  local deadline=$((SECONDS + $2))
  while alive "$1" && ((SECONDS < deadline)); do sleep 0.05; done
  ! alive "$1"
}

# stop_pid PID SECONDS NAME: SIGTERM, up to SECONDS for it to go, then SIGKILL.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait_gone "$1" "$2" && return 0
  note "$3 pid $1 still running $2 s after SIGTERM; sending SIGKILL"
  kill -KILL "$1" 2>/dev/null || true
  wait_gone "$1" 10 || die "$3 pid $1 survived SIGKILL"
}

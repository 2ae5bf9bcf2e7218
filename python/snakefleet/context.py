"""The session context a program receives as its first argument.

A program sees `ctx.session_id`, `ctx.worker_id`, `ctx.program_id` and
`ctx.state`: the session state the supervisor sent with the call (from Redis),
or `{}` when none was sent. Of its request it sees `ctx.request_id`,
`ctx.deadline_ms` (wall-clock epoch ms, or None), `ctx.meta` (the request's
`meta` map, or `{}`) and the W3C trace context of the request's headers,
`ctx.traceparent` and `ctx.tracestate` (None when absent), to log and trace
with; the reply carries the same trace headers back. The program may mutate `ctx.state` in place or
assign a new dict to it; `state_delta()` tells the worker whether the state
changed and must travel back in `result.state`.

Change detection favours correctness over cleverness: when a state was sent,
its msgpack encoding is taken before the call (or handed in, when the state
comes from the worker's cache as bytes) and compared with the encoding after
it, so in-place mutation of nested values (`ctx.state["seq"].append(x)`) is
caught as surely as reassignment. Without a sent state the baseline is the
empty map, and only a non-empty state counts as a change.
"""

from __future__ import annotations

from snakefleet.codec import EncodeError, encode, find_unsendable, refusal_message

# `typing` costs a worker ~3 ms of start-up (it imports `re`); annotations are
# strings here (PEP 563), so type-only names are imported for checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    State = dict[str, Any]


STATE = "the session state"  # how error messages name it


class StateError(ValueError):
    """The program left ctx.state in a shape that cannot be sent back."""


class SessionContext:
    __slots__ = (
        "_baseline",
        "deadline_ms",
        "encoded",
        "meta",
        "program_id",
        "request_id",
        "session_id",
        "state",
        "traceparent",
        "tracestate",
        "worker_id",
    )

    def __init__(
        self,
        session_id: str,
        worker_id: str,
        program_id: str,
        state: State | None = None,
        baseline: bytes | None = None,
        request: dict[str, Any] | None = None,
    ) -> None:
        self.session_id = session_id
        self.worker_id = worker_id
        self.program_id = program_id
        r = request or {}
        self.request_id: str | None = r.get("id")
        self.deadline_ms: int | None = r.get("deadline_ms")
        self.meta: dict[str, Any] = r.get("meta") or {}
        self.traceparent: str | None = r.get("traceparent")
        self.tracestate: str | None = r.get("tracestate")
        if state is None:
            self.state: State = {}
            self._baseline: bytes | None = None
        else:
            self.state = state
            self._baseline = encode(state) if baseline is None else baseline
        # The state's encoding after the call, once state_delta() found it changed.
        self.encoded: bytes | None = None

    @property
    def baseline(self) -> bytes | None:
        """The encoding of the state the call started from (None: none was sent)."""
        return self._baseline

    def __repr__(self) -> str:
        return (
            f"SessionContext(session_id={self.session_id!r}, worker_id={self.worker_id!r}, "
            f"program_id={self.program_id!r}, state={self.state!r})"
        )

    def state_delta(self) -> State | None:
        """The state to return in `result.state`, or None if it is unchanged.

        Raises StateError when the state is no longer a map with string keys
        or holds a value msgpack cannot encode; nested keys and ext types are
        judged when the reply is encoded (Worker.on_call)."""
        state = self.state
        if not isinstance(state, dict):
            raise StateError(f"ctx.state must be a dict, got {type(state).__name__}")
        if self._baseline is None and not state:
            return None
        try:
            after = encode(state)
        except EncodeError as e:
            raise StateError(state_refusal(state, e)) from None
        if after == self._baseline:
            return None
        for key in state:
            if not isinstance(key, str):
                raise StateError(state_refusal(state, EncodeError("map keys must be strings")))
        self.encoded = after
        return state


def state_refusal(state: State, error: Exception) -> str:
    """Why a session state cannot be sent, naming the path of the offending
    item (`state["cart"][3]`, `state[1]`). A state is stored as a message of
    its own, so even bin keys are refused at its top level."""
    return refusal_message(STATE, find_unsendable(state, "state", str_keys_at_root=True), error)

"""The error types of the reply contract, and the exception that carries one.

A reply with `ok: false` carries `error: {type, message, traceback?, field?}`.
Its `type` is one of the strings below; schemas/README.md ("Error types, one
by one") says when each is sent and schemas/reply.schema.json lists them too
(python/tests/test_errors.py keeps the three in step). Most are produced by
the supervisor; a worker produces invalid_request, program_not_found,
invalid_program, program_error and internal, raised as `ProgramError` and
sent back in a `result` frame, which the supervisor turns into the reply.

`stale_cache` is not a reply type: it stays between a supervisor and its
workers (the supervisor sends the call again with what the worker lacked).

Receivers must accept types not listed here: newer versions may add some.
"""

from __future__ import annotations

# `typing` costs a worker ~3 ms of start-up (it imports `re`); annotations are
# strings here (PEP 563), so type-only names are imported for checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# ---------------------------------------------------------------- reply types

INVALID_REQUEST = "invalid_request"
UNKNOWN_VERSION = "unknown_version"
SESSION_NOT_FOUND = "session_not_found"
PROGRAM_NOT_FOUND = "program_not_found"
INVALID_PROGRAM = "invalid_program"
PROGRAM_ERROR = "program_error"
TIMEOUT = "timeout"
CHECKOUT_TIMEOUT = "checkout_timeout"
DEADLINE_EXCEEDED = "deadline_exceeded"
DUPLICATE_IN_PROGRESS = "duplicate_in_progress"
POISON_PILL = "poison_pill"
SESSION_LIMIT = "session_limit"
REPLY_TOO_LARGE = "reply_too_large"
WRONG_PARTITION = "wrong_partition"
CONFLICT = "conflict"
UNAVAILABLE = "unavailable"
INTERNAL = "internal"
# Reserved, not sent by this version: a request whose worker dies is run again
# on another worker, and answered poison_pill once it has crashed enough of them.
WORKER_CRASHED = "worker_crashed"

# The types a reply of this version may carry.
REPLY_TYPES = frozenset(
    {
        INVALID_REQUEST,
        UNKNOWN_VERSION,
        SESSION_NOT_FOUND,
        PROGRAM_NOT_FOUND,
        INVALID_PROGRAM,
        PROGRAM_ERROR,
        TIMEOUT,
        CHECKOUT_TIMEOUT,
        DEADLINE_EXCEEDED,
        DUPLICATE_IN_PROGRESS,
        POISON_PILL,
        SESSION_LIMIT,
        REPLY_TOO_LARGE,
        WRONG_PARTITION,
        CONFLICT,
        UNAVAILABLE,
        INTERNAL,
    }
)
# Names the contract keeps for later versions; no reply carries them yet.
RESERVED_TYPES = frozenset({WORKER_CRASHED})

# ---------------------------------------------------------------- worker only

# The call named a spec or state version this worker no longer holds; the
# supervisor sends the call again with the spec and state themselves.
STALE_CACHE = "stale_cache"


# ---------------------------------------------------------------- the exception


class ProgramError(Exception):
    """A failure reported as a result error rather than a crash: `error_type`
    is one of the types above, `field` the request field at fault, if any."""

    def __init__(
        self,
        error_type: str,
        message: str,
        traceback: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.traceback = traceback
        self.field = field

    def to_wire(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.traceback is not None:
            error["traceback"] = self.traceback
        if self.field is not None:
            error["field"] = self.field
        return error


def describe(exc: BaseException) -> str:
    """'ExcType: message' (just 'ExcType' when the message is empty): how an
    exception is named in an error's `message`."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide the error
        text = "<exception str() failed>"
    name = type(exc).__name__
    return f"{name}: {text}" if text else name

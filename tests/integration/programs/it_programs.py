"""Programs only the integration tests use; the supervisors under test get
this directory through --python.path."""

from __future__ import annotations

import time
from typing import Any


def slow_record(ctx: Any, op: Any, seconds: float = 1.0) -> int:
    """Sleeps, then appends `op` to state["seq"] (like snakefleet.examples:record):
    a state-changing call that is still running when its supervisor is frozen."""
    time.sleep(seconds)
    seq = ctx.state.setdefault("seq", [])
    seq.append(op)
    return len(seq)


def slow_counter(ctx: Any, by: int = 1, seconds: float = 0.01) -> int:
    """Sleeps, then adds `by` to state["n"] (like snakefleet.examples:counter):
    keeps a worker busy long enough that a supervisor killed mid-load is
    sure to hold claimed, unfinished requests."""
    time.sleep(seconds)
    n = int(ctx.state.get("n", 0)) + by
    ctx.state["n"] = n
    return n


def paced_record(ctx: Any, op: Any, seconds: float = 0.003) -> int:
    """snakefleet.examples:record taking a few milliseconds: a burst then keeps
    a supervisor busy long enough that a signal sent mid-burst finds work in
    hand, however fast the machine."""
    time.sleep(seconds)
    seq = ctx.state.setdefault("seq", [])
    seq.append(op)
    return len(seq)


def span(ctx: Any, seconds: float = 0.3) -> dict[str, Any]:
    """Sleeps; returns when it ran (wall clock, seconds) and in which worker
    process: replies of calls that ran at the same time show overlapping spans."""
    import os

    start = time.time()
    time.sleep(seconds)
    return {"start": start, "end": time.time(), "pid": os.getpid()}


def grow(ctx: Any, size: int = 10) -> bytes:
    """Adds 1 to state["n"] and returns `size` zero bytes: a state change
    with a result that may be too large to reply with."""
    ctx.state["n"] = int(ctx.state.get("n", 0)) + 1
    return bytes(size)


def slow_crash(ctx: Any, seconds: float = 1.0) -> None:
    """Sleeps, then kills its worker: a poison pill that leaves time to act
    between its claim and its verdict."""
    import os

    time.sleep(seconds)
    os._exit(9)

"""Sample programs for tests, benchmarks and the quick start.

Each is a `callable` program: spec `{kind: "callable", entry:
"snakefleet.examples:NAME"}`, called as `fn(ctx, **inputs)`. Some misbehave on
purpose (fail, crash, allocate, print_noise, bad_result) so the worker's and
the supervisor's failure handling can be tested against real behaviour.

`QABot` is a `dspy` program module (spec `{kind: "dspy", module:
"snakefleet.examples:QABot"}`). It is built on first access (a module
`__getattr__`), so importing this module never imports dspy.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from snakefleet.context import SessionContext

MIB = 1024 * 1024
PAGE = 4096

# Memory held by allocate(); lives as long as the worker process.
_held: list[bytearray] = []


def noop(ctx: SessionContext, **inputs: Any) -> None:
    """Does nothing: the floor of a call's cost."""
    return None


def echo(ctx: SessionContext, **inputs: Any) -> dict[str, Any]:
    """Returns its inputs."""
    return inputs


def add(ctx: SessionContext, a: Any, b: Any) -> Any:
    return a + b


def counter(ctx: SessionContext, by: int = 1) -> int:
    """Adds `by` to the session's state["n"] and returns the new n."""
    n = int(ctx.state.get("n", 0)) + by
    ctx.state["n"] = n
    return n


def record(ctx: SessionContext, op: Any) -> int:
    """Appends `op` to the session's state["seq"]; returns its length. Tests
    use it to check that a session's requests ran once each, in order."""
    seq = ctx.state.setdefault("seq", [])
    seq.append(op)
    return len(seq)


def get_state(ctx: SessionContext) -> dict[str, Any]:
    """Returns the session state as the program sees it."""
    return ctx.state


def replace_state(ctx: SessionContext, **state: Any) -> None:
    """Assigns a new dict to ctx.state (rather than mutating it)."""
    ctx.state = dict(state)


def whoami(ctx: SessionContext) -> dict[str, Any]:
    """The context's identity, what it shows of the request, and this process's pid."""
    return {
        "session": ctx.session_id,
        "worker": ctx.worker_id,
        "program": ctx.program_id,
        "pid": os.getpid(),
        "request_id": ctx.request_id,
        "deadline_ms": ctx.deadline_ms,
        "meta": ctx.meta,
        "traceparent": ctx.traceparent,
        "tracestate": ctx.tracestate,
    }


def loaded(ctx: SessionContext, module: str) -> bool:
    """Whether `module` is already imported in this worker (preload checks)."""
    return module in sys.modules


def fail(ctx: SessionContext, message: str = "boom") -> None:
    """Raises ValueError(message)."""
    raise ValueError(message)


def mutate_then_fail(ctx: SessionContext, key: str = "n") -> None:
    """Changes the state, then raises: a failed call changes no state."""
    ctx.state[key] = "changed"
    raise RuntimeError("failed after changing the state")


def spawn_sleeper(ctx: SessionContext, seconds: float = 0.3, new_session: bool = False) -> int:
    """Starts `sleep` as a child process (in a session of its own with
    `new_session`) and returns its pid without waiting: user code that leaves
    a process behind."""
    import subprocess

    return subprocess.Popen(["sleep", str(seconds)], start_new_session=new_session).pid


def sleep(ctx: SessionContext, seconds: float = 1.0) -> float:
    """Sleeps, then returns the seconds slept (timeout and SIGTERM tests)."""
    time.sleep(seconds)
    return seconds


def allocate(ctx: SessionContext, mb: int = 1) -> int:
    """Holds `mb` more MiB of real, touched memory; returns the MiB held."""
    block = bytearray(mb * MIB)
    pages = len(block) // PAGE
    if pages:
        memoryview(block)[::PAGE] = b"\x01" * len(range(0, len(block), PAGE))
    _held.append(block)
    return sum(len(b) for b in _held) // MIB


def crash(ctx: SessionContext, how: str = "abort") -> None:
    """Kills the worker: "abort" (SIGABRT), "segv" (a null pointer read) or
    "exit" (os._exit(7), no cleanup)."""
    sys.stderr.flush()
    if how == "abort":
        os.abort()
    elif how == "segv":
        import ctypes

        ctypes.string_at(0)
    elif how == "exit":
        os._exit(7)
    raise ValueError(f"crash: unknown how={how!r} (abort, segv or exit)")


def print_noise(ctx: SessionContext, n: int = 100) -> str:
    """print()s n lines and writes raw bytes to fd 1, then returns "ok": proves
    stdout output cannot corrupt the frame stream."""
    for i in range(n):
        print(f"noise line {i} \x00\x00\x00\x05 not a frame")
    sys.stdout.flush()
    os.write(1, b"\x00\x00\x00\x03\xc1\xc1\xc1 raw write to fd 1\n")
    return "ok"


def blob(ctx: SessionContext, size: int = 1024) -> bytes:
    """Returns `size` zero bytes (large-result and frame-limit tests)."""
    return bytes(size)


def read_stdin(ctx: SessionContext) -> dict[str, str]:
    """What user code gets from stdin: always empty in a worker, whose fd 0
    is /dev/null (the frames arrive on a private fd)."""
    return {"sys.stdin": sys.stdin.read(), "fd0": os.read(0, 100).decode()}


def bad_result(ctx: SessionContext, what: str = "object") -> Any:
    """Returns something msgpack cannot (or must not) carry: an object(), a
    set, or a map with int keys."""
    if what == "set":
        return {1, 2, 3}
    if what == "int_keys":
        return {"ok": {1: "one"}}
    return object()


# ---------------------------------------------------------------- dspy


def __getattr__(name: str) -> Any:
    """Builds the dspy example classes on first access (imports dspy)."""
    if name == "QABot":
        cls = _make_qabot()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _make_qabot() -> Any:
    import importlib

    dspy: Any = importlib.import_module("dspy")

    class QABot(dspy.Module):  # type: ignore[misc]
        """Answers with ChainOfThought and says who answered. Constructed as
        `QABot(signature)` when the spec has a signature, else `QABot()`
        ("question -> answer")."""

        def __init__(self, signature: Any = "question -> answer") -> None:
            super().__init__()
            self.respond = dspy.ChainOfThought(signature)

        def forward(self, **inputs: Any) -> Any:
            expected = list(self.respond.predict.signature.input_fields)
            missing = [name for name in expected if name not in inputs]
            if missing:
                raise ValueError(f"QABot: missing input field(s) {missing}, expected {expected}")
            prediction = self.respond(**inputs)
            return dspy.Prediction(**dict(prediction.items()), answered_by="QABot")

    QABot.__module__ = __name__
    QABot.__qualname__ = "QABot"
    return QABot

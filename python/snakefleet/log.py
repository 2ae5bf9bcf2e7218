"""Structured logs for the worker: key=value, one event per line, on stderr.

The supervisor reads each worker's stderr and logs it with the worker id, so
these lines must stay one per event and parse as logfmt. A value is quoted
(with backslash escapes) only when it contains a space, a quote, an `=`, a
backslash or a control character, or is empty. Imports nothing heavier than
`time`: the worker's start-up cost matters.
"""

from __future__ import annotations

import sys
import time

# `typing` costs a worker ~3 ms of start-up (it imports `re`); annotations are
# strings here (PEP 563), so type-only names are imported for checkers only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_SPECIAL = frozenset(' "=\\\n\r\t')


def quote(value: Any) -> str:
    """Render one logfmt value."""
    s = value if isinstance(value, str) else str(value)
    if s and _SPECIAL.isdisjoint(s) and s.isprintable():
        return s
    s = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    s = s.replace("\r", "\\r").replace("\t", "\\t")
    return f'"{s}"'


def format_line(level: str, event: str, fields: dict[str, Any]) -> str:
    now = time.time()
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    parts = [f"ts={ts}", f"level={level}", f"event={quote(event)}"]
    parts.extend(f"{k}={quote(v)}" for k, v in fields.items() if v is not None)
    return " ".join(parts)


class Logger:
    """Writes events to the current sys.stderr with a fixed set of base fields
    (the worker id) in front of each event's own fields."""

    __slots__ = ("base",)

    def __init__(self, **base: Any) -> None:
        self.base = base

    def log(self, level: str, event: str, **fields: Any) -> None:
        line = format_line(level, event, {**self.base, **fields})
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr gone: nothing sensible left to tell anyone

    def info(self, event: str, **fields: Any) -> None:
        self.log("info", event, **fields)

    def warn(self, event: str, **fields: Any) -> None:
        self.log("warn", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log("error", event, **fields)

#!/usr/bin/env python3
"""Round-trip demo: spawn `python -m snakefleet.worker`, speak frames over its
pipes like a supervisor, run a `callable` program, then show an exception
coming back as an error result with its traceback.

    .venv/bin/python python/tools/roundtrip_demo.py

Exits 0 when both round trips behave, 1 otherwise.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PYTHON_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PYTHON_DIR))  # runnable without installing the package

from snakefleet.codec import FrameReader, encode_frame, validate_frame  # noqa: E402


class Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PYTHON_DIR), env.get("PYTHONPATH")]))
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "snakefleet.worker", "--worker-id", "demo-1"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.reader = FrameReader()
        self.seq = 0

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while (frame := self.reader.get_frame()) is None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError("no frame from the worker")
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                raise EOFError(f"worker exited (rc={self.proc.wait()})")
            self.reader.feed(data)
        validate_frame(frame)
        return frame

    def call(self, **fields: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.seq += 1
        frame = {"t": "call", "v": 1, "seq": self.seq, "session": "demo", **fields}
        print(f"  -> {frame}")
        self.proc.stdin.write(encode_frame(frame))
        self.proc.stdin.flush()
        reply = self.recv()
        print(f"  <- {reply}")
        return reply

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # EOF: the worker exits 0
        return self.proc.wait(10)


def main() -> int:
    worker = Worker()
    failures = []
    try:
        ready = worker.recv()
        ms = (time.perf_counter() - worker.started) * 1000
        print(f"ready after {ms:.1f} ms: {ready}")

        print("1. a callable program")
        entry = "snakefleet.examples:counter"
        reply = worker.call(
            op="execute_program",
            program="counter",
            spec={"kind": "callable", "entry": entry},
            args={"by": 2},
            state={"n": 40},
        )
        if not (reply["ok"] and reply["value"] == 42 and reply.get("state") == {"n": 42}):
            failures.append("callable round trip")

        print("2. an exception in a program")
        reply = worker.call(
            op="execute_program",
            program="fail",
            spec={"kind": "callable", "entry": "snakefleet.examples:fail"},
            args={"message": "something broke"},
        )
        error = reply.get("error", {})
        if reply["ok"] or error.get("type") != "program_error":
            failures.append("error result")
        else:
            print(f"error: {error['message']}\n{error.get('traceback', '(no traceback)')}")
            if "Traceback" not in error.get("traceback", ""):
                failures.append("traceback")
    finally:
        rc = worker.close()
    if rc != 0:
        failures.append(f"worker exit code {rc}")
    print("FAILED: " + ", ".join(failures) if failures else "OK: both round trips behaved")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

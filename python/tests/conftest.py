"""Shared helpers: where the repository's files are, and `WorkerProc`, a worker
subprocess spoken to over real pipes exactly as a supervisor would."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from snakefleet.codec import FrameReader, encode_frame, validate_frame

PYTHON_DIR = Path(__file__).resolve().parents[1]
REPO = PYTHON_DIR.parent
SCHEMAS = REPO / "schemas"
VECTORS = SCHEMAS / "vectors"


def worker_env(*extra_path: str) -> dict[str, str]:
    """The environment for a worker: the package importable even when it is
    not installed (plus `extra_path` for test-made program modules)."""
    env = dict(os.environ)
    paths = [*extra_path, str(PYTHON_DIR), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    return env


def spec(name: str) -> dict[str, str]:
    return {"kind": "callable", "entry": f"snakefleet.examples:{name}"}


class WorkerProc:
    """`python -m snakefleet.worker` with frames on its stdin/stdout and its
    stderr in a temporary file (read with `stderr_text()`)."""

    def __init__(self, *args: str, worker_id: str = "w-test", path: str | None = None) -> None:
        self.worker_id = worker_id
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by kill()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "snakefleet.worker", "--worker-id", worker_id, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=worker_env(*([path] if path else [])),
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin_fd = self.proc.stdin.fileno()
        self.stdout_fd = self.proc.stdout.fileno()
        self.reader = FrameReader()
        self.seq = 0

    # ---------------------------------------------------------------- I/O

    def send_raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.stdin_fd, view)
            view = view[n:]

    def send(self, *frames: dict[str, Any]) -> None:
        """All frames in one write."""
        self.send_raw(b"".join(encode_frame(f) for f in frames))

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next frame (validated); fails the test after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.reader.get_frame()
            if frame is not None:
                validate_frame(frame)
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no frame within {timeout}s; stderr:\n{self.stderr_text()}")
            ready, _, _ = select.select([self.stdout_fd], [], [], left)
            if ready:
                data = os.read(self.stdout_fd, 1 << 16)
                if not data:
                    pytest.fail(
                        f"worker closed stdout (rc={self.proc.poll()}); stderr:\n"
                        + self.stderr_text()
                    )
                self.reader.feed(data)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def call_frame(self, op: str, session: str = "s", **fields: Any) -> dict[str, Any]:
        return {"t": "call", "v": 1, "seq": self.next_seq(), "op": op, "session": session, **fields}

    def call(
        self, op: str, session: str = "s", timeout: float = 10.0, **fields: Any
    ) -> dict[str, Any]:
        frame = self.call_frame(op, session, **fields)
        self.send(frame)
        reply = self.recv(timeout)
        assert reply["t"] == "result", reply
        assert reply["seq"] == frame["seq"], reply
        return reply

    def execute(
        self, name: str, session: str = "s", program: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        """execute_program of snakefleet.examples:NAME, spec included."""
        return self.call(
            "execute_program", session, program=program or name, spec=spec(name), **fields
        )

    def ready(self) -> dict[str, Any]:
        frame = self.recv()
        assert frame["t"] == "ready", frame
        return frame

    # ---------------------------------------------------------------- end

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def wait_stderr(self, needle: str, timeout: float = 5.0) -> str:
        """stderr once it contains `needle` (the log line may trail a frame)."""
        deadline = time.monotonic() + timeout
        while needle not in (text := self.stderr_text()):
            if time.monotonic() > deadline:
                pytest.fail(f"{needle!r} not in stderr within {timeout}s:\n{text}")
            time.sleep(0.01)
        return text

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()
        self._stderr.close()


@pytest.fixture
def worker() -> Iterator[WorkerProc]:
    """A started worker whose ready frame has been consumed."""
    w = WorkerProc()
    try:
        w.ready()
        yield w
    finally:
        w.kill()


@pytest.fixture
def make_worker() -> Iterator[Any]:
    """Factory for workers with custom flags; all are killed at the end."""
    made: list[WorkerProc] = []

    def make(*args: str, path: str | None = None) -> WorkerProc:
        w = WorkerProc(*args, path=path)
        made.append(w)
        return w

    try:
        yield make
    finally:
        for w in made:
            w.kill()

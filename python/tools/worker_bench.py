#!/usr/bin/env python3
"""Measure one worker from Python: spawn-to-ready time and call round trips.

    .venv/bin/python python/tools/worker_bench.py [--spawns 20] [--calls 20000]

Prints: spawn-to-ready (median, p90, min over --spawns starts; Popen to the
ready frame read), synchronous round trips per second (one `execute_program`
of snakefleet.examples:noop in flight at a time), the same with the counter
program carrying session state, and pipelined throughput (batches of 50
calls per write).
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PYTHON_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PYTHON_DIR))

from snakefleet.codec import FrameReader, encode_frame  # noqa: E402


def spawn() -> tuple[subprocess.Popen[bytes], FrameReader, float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PYTHON_DIR), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakefleet.worker", "--worker-id", "bench"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    reader = FrameReader()
    frame = recv(proc, reader)
    assert frame["t"] == "ready", frame
    return proc, reader, (time.perf_counter() - started) * 1000


def recv(proc: subprocess.Popen[bytes], reader: FrameReader) -> dict[str, Any]:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    while (frame := reader.get_frame()) is None:
        if not select.select([fd], [], [], 10)[0]:
            raise TimeoutError("worker did not answer")
        data = os.read(fd, 1 << 16)
        if not data:
            raise EOFError("worker exited")
        reader.feed(data)
    return frame


def round_trips(
    proc: subprocess.Popen[bytes], reader: FrameReader, calls: int, program: str, with_state: bool
) -> float:
    assert proc.stdin is not None
    fd = proc.stdin.fileno()
    spec = {"kind": "callable", "entry": f"snakefleet.examples:{program}"}
    base = {"t": "call", "v": 1, "op": "execute_program", "session": "s", "program": program}
    os.write(fd, encode_frame({**base, "seq": 0, "spec": spec, "args": {}}))
    recv(proc, reader)
    state: dict[str, Any] = {"n": 0}
    started = time.perf_counter()
    for seq in range(1, calls + 1):
        frame = {**base, "seq": seq, "args": {}}
        if with_state:
            frame["state"] = state
        os.write(fd, encode_frame(frame))
        reply = recv(proc, reader)
        assert reply["ok"] and reply["seq"] == seq, reply
        if with_state:
            state = reply.get("state", state)
    return calls / (time.perf_counter() - started)


def pipelined(
    proc: subprocess.Popen[bytes], reader: FrameReader, calls: int, batch: int = 50
) -> float:
    assert proc.stdin is not None
    fd = proc.stdin.fileno()
    base = {
        "t": "call",
        "v": 1,
        "op": "execute_program",
        "session": "s",
        "program": "noop",
        "args": {},
    }
    started = time.perf_counter()
    seq = 0
    for _ in range(calls // batch):
        data = b"".join(encode_frame({**base, "seq": seq + i}) for i in range(batch))
        os.write(fd, data)
        for _ in range(batch):
            assert recv(proc, reader)["ok"]
        seq += batch
    return seq / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=20)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()

    times = []
    for _ in range(args.spawns):
        proc, _, ms = spawn()
        times.append(ms)
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    times.sort()
    p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
    print(
        f"spawn-to-ready: median {statistics.median(times):.1f} ms, p90 {p90:.1f} ms, "
        f"min {times[0]:.1f} ms ({args.spawns} starts, PYTHONDONTWRITEBYTECODE="
        f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r})"
    )

    proc, reader, _ = spawn()
    try:
        rate = round_trips(proc, reader, args.calls, "noop", with_state=False)
        print(f"sync round trips, noop:             {rate:,.0f} calls/s ({1e6 / rate:.1f} us each)")
        rate = round_trips(proc, reader, args.calls, "counter", with_state=True)
        print(f"sync round trips, counter + state:  {rate:,.0f} calls/s ({1e6 / rate:.1f} us each)")
        rate = pipelined(proc, reader, args.calls)
        print(f"pipelined (50 per write), noop:     {rate:,.0f} calls/s")
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())

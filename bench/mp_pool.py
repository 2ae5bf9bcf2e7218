"""The multiprocessing.Pool baseline: what a Python user would write instead.

`multiprocessing.Pool(processes=N)` runs the same no-op function the pool
benchmark runs (`snakefleet.examples.noop`), measured three ways:

- `imap_unordered(chunksize=1)`: one task per item, the fair per-call
  comparison with snakefleet (which sends every call as its own frame). This
  is the headline figure.
- `apply_async` closed loop: --inflight calls outstanding at any time, each
  completion callback submitting the next (the shape of pool_bench).
- `imap_unordered(chunksize=64)`: batched, for reference only; snakefleet
  does not batch calls of different sessions into one message.

Each way runs for about --duration-s after a short warm-up; the number of
items for the imap runs is sized from a calibration pass. Prints one JSON
line per way.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import threading
import time
from typing import Any

from snakefleet.examples import noop as _noop

# The very function pool_bench runs; multiprocessing hands it the item as
# `ctx`, which it ignores (typed loosely for that reason).
noop: Any = _noop


def run_imap(pool: Any, chunksize: int, duration_s: float) -> dict[str, Any]:
    """calls/s of imap_unordered over enough items to last about duration_s."""
    calib = 20000 * chunksize
    t0 = time.perf_counter()
    for _ in pool.imap_unordered(noop, range(calib), chunksize=chunksize):
        pass
    rate = calib / max(time.perf_counter() - t0, 1e-6)
    n = max(int(rate * duration_s), 1000)
    t0 = time.perf_counter()
    for _ in pool.imap_unordered(noop, range(n), chunksize=chunksize):
        pass
    secs = time.perf_counter() - t0
    return {"calls": n, "seconds": secs, "calls_per_s": n / secs}


def run_apply_async(pool: Any, inflight: int, duration_s: float) -> dict[str, Any]:
    """calls/s and latency of a closed loop keeping `inflight` calls outstanding."""
    lock = threading.Lock()
    done = threading.Event()
    state = {"measuring": False, "stop": False, "count": 0, "outstanding": 0}
    latencies: list[float] = []

    def submit() -> None:
        started = time.perf_counter()
        state["outstanding"] += 1
        pool.apply_async(
            noop,
            (None,),
            callback=lambda _r: on_result(started),
            error_callback=on_error,
        )

    def on_result(started: float) -> None:
        now = time.perf_counter()
        with lock:
            state["outstanding"] -= 1
            if state["measuring"]:
                state["count"] += 1
                latencies.append(now - started)
            if not state["stop"]:
                submit()
            elif state["outstanding"] == 0:
                done.set()

    def on_error(e: BaseException) -> None:
        with lock:
            state["outstanding"] -= 1
            state["stop"] = True
            done.set()

    with lock:
        for _ in range(inflight):
            submit()
    time.sleep(min(1.0, duration_s / 4))
    with lock:
        state["measuring"] = True
        t0 = time.perf_counter()
    time.sleep(duration_s)
    with lock:
        state["measuring"] = False
        state["stop"] = True
        secs = time.perf_counter() - t0
        count = state["count"]
        if state["outstanding"] == 0:
            done.set()
    done.wait(30)
    latencies.sort()

    def q(p: float) -> int:
        if not latencies:
            return 0
        return int(latencies[min(int(p * len(latencies)), len(latencies) - 1)] * 1e6)

    return {
        "calls": count,
        "seconds": secs,
        "calls_per_s": count / secs,
        "inflight": inflight,
        "p50_us": q(0.50),
        "p99_us": q(0.99),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--duration-s", type=float, default=3.0)
    ap.add_argument("--inflight", type=int, default=16)
    ap.add_argument(
        "--ways",
        default="imap1,apply_async,imap64",
        help="comma-separated: imap1, apply_async, imap64",
    )
    args = ap.parse_args()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes=args.workers) as pool:
        pool.map(noop, range(args.workers * 4))  # every process started and warm
        for way in args.ways.split(","):
            if way == "imap1":
                r = run_imap(pool, 1, args.duration_s)
            elif way == "imap64":
                r = run_imap(pool, 64, args.duration_s)
            elif way == "apply_async":
                r = run_apply_async(pool, args.inflight, args.duration_s)
            else:
                raise SystemExit(f"mp_pool: unknown way '{way}'")
            r = {"bench": "mp_pool", "way": way, "workers": args.workers, **r}
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

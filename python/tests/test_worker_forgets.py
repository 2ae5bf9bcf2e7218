"""A long-lived worker does not grow with every session it has served: its
program and state caches are bounded (SNAKEFLEET_PROGRAM_CACHE_MAX,
SNAKEFLEET_STATE_CACHE_MAX), so after the first few hundred sessions its RSS
stays flat; cleanup_session and delete_program drop what they name."""

from __future__ import annotations

import pytest
from conftest import WorkerProc, spec


def rss_kb(w: WorkerProc) -> int:
    return int(w.call("stats")["value"]["rss_kb"])


def test_ten_thousand_sessions_through_one_worker_leave_its_rss_flat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SNAKEFLEET_PROGRAM_CACHE_MAX", "200")
    monkeypatch.setenv("SNAKEFLEET_STATE_CACHE_MAX", "200")
    w = WorkerProc()
    try:
        w.ready()
        state = {"notes": "x" * 2000}  # ~2 KB a session, so growth would show
        samples = {}
        for i in range(10_000):
            r = w.execute("counter", session=f"s{i}", spec_ver=1, state=dict(state))
            assert r["ok"], r
            if i + 1 in (500, 2_000, 10_000):
                samples[i + 1] = rss_kb(w)
        stats = w.call("stats")["value"]
        assert stats["programs"] <= 200 and stats["cached_states"] <= 200, stats
        assert stats["programs_evicted"] >= 9_800, stats
        grown = samples[10_000] - samples[500]
        print(f"RSS after 500 / 2,000 / 10,000 sessions: {samples} kB")
        # unbounded, 9,500 more sessions would hold > 19 MB of states alone
        assert grown < 4_096, f"RSS grew {grown} kB between 500 and 10,000 sessions"
    finally:
        w.kill()


def test_cleanup_session_and_delete_program_drop_what_they_name(worker: WorkerProc) -> None:
    worker.execute("counter", session="a", spec_ver=1, state={})
    worker.call("create_program", "a", program="echo", spec=spec("echo"), spec_ver=2)
    worker.execute("counter", session="b", spec_ver=1, state={})
    assert worker.call("stats")["value"]["programs"] == 3
    assert worker.call("delete_program", "a", program="echo")["value"] is True
    assert worker.call("stats")["value"]["programs"] == 2
    assert worker.call("cleanup_session", "b")["value"] == 1
    stats = worker.call("stats")["value"]
    assert stats["programs"] == 1 and stats["sessions"] == 1, stats
    # what was dropped is a cache miss, which the pool answers with the spec
    r = worker.call("execute_program", "b", program="counter", spec_ver=1)
    assert not r["ok"] and r["error"]["type"] == "stale_cache", r

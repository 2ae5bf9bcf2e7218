"""`python -m snakefleet.worker` as a subprocess over real pipes, the way a
supervisor drives it. Every wait is bounded (recv/wait timeouts, plus the
per-test pytest timeout)."""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import WorkerProc, spec, worker_env

from snakefleet.codec import encode_frame
from snakefleet.programs import available_kinds
from snakefleet.worker import parse_args

# ---------------------------------------------------------------- handshake


def test_ready_frame() -> None:
    w = WorkerProc(worker_id="w-ready")
    try:
        ready = w.ready()
        assert ready == {
            "t": "ready",
            "v": 1,
            "pid": w.proc.pid,
            "worker_id": "w-ready",
            "python": "{}.{}.{}".format(*sys.version_info[:3]),
            "caps": available_kinds(),  # "callable", plus "dspy" when it is installed
        }
        assert ready["caps"][0] == "callable"
        w.wait_stderr("event=ready")
    finally:
        w.kill()


def test_ping_frame_gets_pong(worker: WorkerProc) -> None:
    worker.send({"t": "ping", "v": 1, "seq": 77})
    pong = worker.recv()
    assert pong["t"] == "pong" and pong["seq"] == 77
    assert pong["rss_kb"] > 1000


# ---------------------------------------------------------------- calls


def test_callable_round_trip(worker: WorkerProc) -> None:
    created = worker.call("create_program", program="adder", spec=spec("add"))
    assert created["ok"] is True
    assert created["value"] == {"program": "adder", "kind": "callable"}
    result = worker.call("execute_program", program="adder", args={"a": 2, "b": 3})
    assert result["ok"] is True and result["value"] == 5
    assert isinstance(result["exec_us"], int) and result["exec_us"] >= 0
    assert "state" not in result
    echo = worker.execute("echo", args={"x": [1, "two", b"\x03", None, 4.5, True]})
    assert echo["value"] == {"x": [1, "two", b"\x03", None, 4.5, True]}


def test_state_update_returned(worker: WorkerProc) -> None:
    r = worker.execute("counter", args={"by": 2}, state={"n": 40})
    assert (r["value"], r["state"]) == (42, {"n": 42})
    r = worker.execute("record", args={"op": "b"}, state={"seq": ["a"], "other": 1})
    assert r["state"] == {"seq": ["a", "b"], "other": 1}
    r = worker.execute("counter")  # no state sent
    assert r["state"] == {"n": 1}
    r = worker.execute("get_state", state={"k": {"deep": [1]}})
    assert r["value"] == {"k": {"deep": [1]}} and "state" not in r
    r = worker.execute("replace_state", args={"fresh": True}, state={"old": 1})
    assert r["state"] == {"fresh": True}


def test_program_error_with_traceback_and_worker_survives(worker: WorkerProc) -> None:
    r = worker.execute("fail", args={"message": "no good"}, state={"n": 1})
    assert r["ok"] is False
    error = r["error"]
    assert error["type"] == "program_error"
    assert error["message"] == "ValueError: no good"
    assert error["traceback"].startswith("Traceback (most recent call last):")
    assert "in fail" in error["traceback"] and "ValueError: no good" in error["traceback"]
    assert "state" not in r
    assert worker.execute("add", args={"a": 1, "b": 1})["value"] == 2
    log = worker.stderr_text()
    assert "event=call_failed" in log and "worker_id=w-test" in log and "session=s" in log


def test_invalid_program_and_not_found(worker: WorkerProc) -> None:
    bad = {"kind": "callable", "entry": "no_such_module_xyz:run"}
    r = worker.call("create_program", program="p", spec=bad)
    assert r["ok"] is False and r["error"]["type"] == "invalid_program"
    assert "no_such_module_xyz:run" in r["error"]["message"]
    r = worker.call("execute_program", program="never-created", args={})
    assert r["ok"] is False and r["error"]["type"] == "program_not_found"
    r = worker.call("execute_program", program="p", args=[1, 2], spec=spec("noop"))
    assert r["ok"] is False and r["error"]["type"] == "invalid_request"
    assert r["error"]["field"] == "args"


def test_print_does_not_corrupt_the_stream(worker: WorkerProc) -> None:
    r = worker.execute("print_noise", args={"n": 500})
    assert r["ok"] is True and r["value"] == "ok"
    assert worker.execute("add", args={"a": 20, "b": 22})["value"] == 42
    log = worker.stderr_text()
    assert "noise line 499" in log and "raw write to fd 1" in log


def test_pipelined_calls_answered_in_order(worker: WorkerProc) -> None:
    frames = [
        worker.call_frame("execute_program", program="c", spec=spec("add"), args={"a": i, "b": 1})
        for i in range(50)
    ]
    worker.send(*frames)  # one write
    results = [worker.recv() for _ in frames]
    assert [r["seq"] for r in results] == [f["seq"] for f in frames]
    assert [r["value"] for r in results] == [i + 1 for i in range(50)]


def test_program_namespaced_by_session(worker: WorkerProc) -> None:
    assert worker.call("create_program", "alice", program="p", spec=spec("add"))["ok"]
    assert worker.call("create_program", "bob", program="p", spec=spec("echo"))["ok"]
    assert worker.call("create_program", "bob", program="q", spec=spec("noop"))["ok"]
    alice = worker.call("execute_program", "alice", program="p", args={"a": 1, "b": 2})
    bob = worker.call("execute_program", "bob", program="p", args={"a": 1, "b": 2})
    assert alice["value"] == 3 and bob["value"] == {"a": 1, "b": 2}
    assert worker.call("list_programs", "bob")["value"] == ["p", "q"]
    assert worker.call("list_programs", "alice")["value"] == ["p"]
    assert worker.call("cleanup_session", "bob")["value"] == 2
    assert worker.call("list_programs", "bob")["value"] == []
    gone = worker.call("execute_program", "bob", program="p", args={})
    assert gone["error"]["type"] == "program_not_found"
    assert worker.call("delete_program", "alice", program="p")["value"] is True
    assert worker.call("delete_program", "alice", program="p")["value"] is False


@pytest.mark.parametrize(
    ("what", "where"),
    [
        ("object", "at result: value of type object"),
        ("set", "at result: value of type set"),
        ("int_keys", 'at result["ok"][1]: key of type int'),
    ],
)
def test_not_serializable_result(worker: WorkerProc, what: str, where: str) -> None:
    r = worker.execute("bad_result", args={"what": what})
    assert r["ok"] is False
    assert r["error"]["type"] == "program_error"
    assert r["error"]["message"].startswith(f"the result is not serializable {where}")
    assert "in bad_result" in r["error"]["traceback"]
    assert worker.call("ping")["value"] == "pong"


def test_too_large_result_is_an_error_not_a_broken_stream(make_worker: Any) -> None:
    w = make_worker("--max-frame-bytes", "4096")
    w.ready()
    assert w.execute("blob", args={"size": 4000})["ok"] is True
    # One result frame over the limit would make the supervisor drop the
    # stream; the worker reports it as an error result instead.
    r = w.execute("blob", args={"size": 5000})
    assert r["ok"] is False and r["error"]["type"] == "program_error"
    assert "too large" in r["error"]["message"]
    assert w.call("ping")["value"] == "pong"


def test_stats(worker: WorkerProc) -> None:
    worker.execute("noop")
    worker.execute("fail")
    stats = worker.call("stats")["value"]
    assert stats["pid"] == worker.proc.pid
    assert stats["worker_id"] == "w-test"
    assert stats["calls"] == 3 and stats["errors"] == 1
    assert stats["programs"] == 2
    assert stats["rss_kb"] > 1000
    assert stats["python"] == "{}.{}.{}".format(*sys.version_info[:3])


# ---------------------------------------------------------------- caches


def test_spec_sent_once_per_version(worker: WorkerProc) -> None:
    """A program is built once per (session, program, spec version); a call
    naming a version the worker holds needs no spec."""
    r = worker.call("execute_program", program="c", spec=spec("counter"), spec_ver=7)
    assert r["ok"] is True
    for _ in range(3):
        r = worker.call("execute_program", program="c", spec_ver=7)
        assert r["ok"] is True, r
    assert worker.call("stats")["value"]["builds"] == 1
    # A new version without its spec is a miss, answered stale_cache ...
    r = worker.call("execute_program", program="c", spec_ver=8)
    assert r["ok"] is False and r["error"]["type"] == "stale_cache"
    assert r["error"]["field"] == "spec_ver"
    # ... and so is the same version in another session (programs are per session).
    r = worker.call("execute_program", session="t", program="c", spec_ver=7)
    assert r["error"]["type"] == "stale_cache"
    # With its spec the new version is built and replaces the old one.
    r = worker.call("execute_program", program="c", spec=spec("echo"), spec_ver=8, args={"a": 1})
    assert r["value"] == {"a": 1}
    r = worker.call("execute_program", program="c", spec_ver=7)
    assert r["error"]["type"] == "stale_cache"
    assert worker.call("stats")["value"]["builds"] == 2


def test_create_program_caches_its_version(worker: WorkerProc) -> None:
    worker.call("create_program", program="e", spec=spec("echo"), spec_ver=42)
    r = worker.call("execute_program", program="e", spec_ver=42, args={"x": 1})
    assert r["ok"] is True and r["value"] == {"x": 1}


def test_state_by_version(worker: WorkerProc) -> None:
    """A state the worker received or produced is named by the seq of that
    call; a call carrying only `state_ver` runs on the cached copy."""
    first = worker.call_frame("execute_program", program="c", spec=spec("counter"), state={"n": 1})
    worker.send(first)
    r = worker.recv()
    assert r["state"] == {"n": 2}
    produced = first["seq"]  # the new state's version
    r = worker.call("execute_program", program="c", spec=spec("counter"), state_ver=produced)
    assert r["ok"] is True and r["state"] == {"n": 3}, r
    # That call produced version (its seq); the older version is gone.
    r = worker.call("execute_program", program="c", spec=spec("counter"), state_ver=produced)
    assert r["error"]["type"] == "stale_cache" and r["error"]["field"] == "state_ver"
    stats = worker.call("stats")["value"]
    assert stats["state_hits"] == 1 and stats["cached_states"] == 1


def test_unchanged_state_keeps_its_version(worker: WorkerProc) -> None:
    sent = worker.call_frame("execute_program", program="g", spec=spec("get_state"), state={"k": 1})
    worker.send(sent)
    assert worker.recv()["value"] == {"k": 1}
    for _ in range(2):
        r = worker.call(
            "execute_program", program="g", spec=spec("get_state"), state_ver=sent["seq"]
        )
        assert r["ok"] is True and r["value"] == {"k": 1} and "state" not in r


def test_failed_call_leaves_the_delivered_state_cached(worker: WorkerProc) -> None:
    """A call that fails after its state arrived (even mutating it first)
    leaves the delivered state, unmutated, under that call's seq."""
    sent = worker.call_frame(
        "execute_program", program="f", spec=spec("mutate_then_fail"), state={"n": 5}
    )
    worker.send(sent)
    assert worker.recv()["ok"] is False
    r = worker.call("execute_program", program="g", spec=spec("get_state"), state_ver=sent["seq"])
    assert r["ok"] is True and r["value"] == {"n": 5}


def test_cleanup_session_drops_cached_state(worker: WorkerProc) -> None:
    sent = worker.call_frame("execute_program", program="g", spec=spec("get_state"), state={"a": 1})
    worker.send(sent)
    worker.recv()
    worker.call("cleanup_session")
    r = worker.call("execute_program", program="g", spec=spec("get_state"), state_ver=sent["seq"])
    assert r["error"]["type"] == "stale_cache"


def test_allocate_grows_rss(worker: WorkerProc) -> None:
    before = worker.call("stats")["value"]["rss_kb"]
    assert worker.execute("allocate", args={"mb": 32})["value"] == 32
    after = worker.call("stats")["value"]["rss_kb"]
    assert after - before >= 30 * 1024


# ---------------------------------------------------------------- bad frames


def test_malformed_body_gets_error_frame_and_worker_keeps_serving(worker: WorkerProc) -> None:
    worker.send_raw(struct.pack(">I", 3) + b"\xc1\xc1\xc1")
    err = worker.recv()
    assert err["t"] == "error" and "malformed" in err["message"] and "seq" not in err
    assert worker.call("ping")["value"] == "pong"
    log = worker.stderr_text()
    assert "event=bad_frame" in log and "code=malformed" in log


@pytest.mark.parametrize(
    ("frame", "needle"),
    [
        ({"t": "dance", "v": 1, "seq": 41}, "unknown frame type 'dance'"),
        ({"t": "call", "v": 1, "seq": 42, "session": "s"}, "missing field 'op'"),
        ({"t": "call", "v": 1, "seq": 43, "op": "rm_rf", "session": "s"}, "rm_rf"),
        (
            {
                "t": "call",
                "v": 1,
                "seq": 44,
                "op": "create_program",
                "session": "s",
                "program": "p",
            },
            "'spec'",
        ),
        ({"t": "ping", "v": 2, "seq": 45}, "version"),
        ({"t": "result", "v": 1, "seq": 46, "ok": True, "value": 1, "exec_us": 1}, "'result'"),
    ],
)
def test_invalid_frame_gets_error_frame_with_seq(
    worker: WorkerProc, frame: dict[str, Any], needle: str
) -> None:
    worker.send(frame)
    err = worker.recv()
    assert err["t"] == "error" and err["seq"] == frame["seq"]
    assert needle in err["message"]
    assert needle in worker.stderr_text()
    assert worker.call("ping")["value"] == "pong"


def test_oversized_length_exits_3(make_worker: Any) -> None:
    w = make_worker("--max-frame-bytes", "1024")
    w.ready()
    w.send_raw(struct.pack(">I", 2000) + b"x" * 10)
    err = w.recv()
    assert err["t"] == "error" and "too_large" in err["message"]
    assert w.wait(10) == 3
    assert "too_large" in w.stderr_text()


def test_oversized_length_default_limit_exits_3(worker: WorkerProc) -> None:
    worker.send_raw(b"\xff\xff\xff\xff")
    assert worker.recv()["t"] == "error"
    assert worker.wait(10) == 3


# ---------------------------------------------------------------- ending


def test_eof_exits_0_quickly(worker: WorkerProc) -> None:
    assert worker.call("ping")["ok"]
    started = time.monotonic()
    worker.close_stdin()
    assert worker.wait(5) == 0
    assert time.monotonic() - started < 2
    assert "reason=eof" in worker.stderr_text()


def test_eof_mid_frame_exits_0(worker: WorkerProc) -> None:
    worker.send_raw(encode_frame({"t": "ping", "v": 1, "seq": 1})[:-2])
    worker.close_stdin()
    assert worker.wait(5) == 0
    assert "eof_mid_frame" in worker.stderr_text()


def test_shutdown_exits_0(worker: WorkerProc) -> None:
    worker.send({"t": "shutdown", "v": 1})
    assert worker.wait(5) == 0


def test_shutdown_after_pipelined_calls_answers_them_first(worker: WorkerProc) -> None:
    calls = [worker.call_frame("ping") for _ in range(3)]
    worker.send(*calls, {"t": "shutdown", "v": 1})
    assert [worker.recv()["seq"] for _ in calls] == [c["seq"] for c in calls]
    assert worker.wait(5) == 0


def test_sigterm_while_idle_exits_0(worker: WorkerProc) -> None:
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(5) == 0
    assert "reason=SIGTERM" in worker.stderr_text()


def test_sigterm_during_a_program_exits_0(worker: WorkerProc) -> None:
    worker.send(
        worker.call_frame("execute_program", program="z", spec=spec("sleep"), args={"seconds": 30})
    )
    time.sleep(0.3)  # let the program start sleeping
    started = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(5) == 0
    assert time.monotonic() - started < 3


def test_sigterm_exits_even_if_user_code_swallows_it(make_worker: Any, tmp_path: Path) -> None:
    (tmp_path / "stubborn.py").write_text(
        "import time\n"
        "def run(ctx, seconds):\n"
        "    try:\n"
        "        time.sleep(seconds)\n"
        "    except BaseException:\n"
        "        return 'swallowed'\n"
    )
    w = make_worker(path=str(tmp_path))
    w.ready()
    entry = {"kind": "callable", "entry": "stubborn:run"}
    w.send(w.call_frame("execute_program", program="s", spec=entry, args={"seconds": 30}))
    time.sleep(0.3)
    w.proc.send_signal(signal.SIGTERM)
    assert w.wait(5) == 0


def test_import_error_in_user_module_is_invalid_program(make_worker: Any, tmp_path: Path) -> None:
    (tmp_path / "broken_mod.py").write_text("x = 1 / 0\n")
    w = make_worker(path=str(tmp_path))
    w.ready()
    r = w.call("create_program", program="b", spec={"kind": "callable", "entry": "broken_mod:f"})
    assert r["ok"] is False and r["error"]["type"] == "invalid_program"
    assert "ZeroDivisionError" in r["error"]["message"]
    assert "broken_mod.py" in r["error"]["traceback"]


@pytest.mark.parametrize(
    ("how", "rc"), [("exit", 7), ("abort", -signal.SIGABRT), ("segv", -signal.SIGSEGV)]
)
def test_crash_kills_the_worker(worker: WorkerProc, how: str, rc: int) -> None:
    worker.send(
        worker.call_frame("execute_program", program="x", spec=spec("crash"), args={"how": how})
    )
    assert worker.wait(10) == rc


def test_user_code_cannot_read_the_frame_channel(worker: WorkerProc) -> None:
    # A frame already queued behind the call must not be eaten by user code
    # reading stdin: fd 0 is /dev/null inside the worker.
    call = worker.call_frame("execute_program", program="r", spec=spec("read_stdin"))
    ping = worker.call_frame("ping")
    worker.send(call, ping)
    assert worker.recv()["value"] == {"sys.stdin": "", "fd0": ""}
    assert worker.recv()["value"] == "pong"


# ---------------------------------------------------------------- flags


def test_parse_args() -> None:
    assert parse_args(["--worker-id", "w1"]) == ("w1", 16 * 1024 * 1024)
    assert parse_args(["--worker-id=w2", "--max-frame-bytes=100"]) == ("w2", 100)
    for bad in (
        [],
        ["--worker-id"],
        ["--bogus", "1"],
        ["--worker-id", "w", "--max-frame-bytes", "0"],
    ):
        with pytest.raises(ValueError):
            parse_args(bad)


def test_bad_flags_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "snakefleet.worker", "--nope"],
        capture_output=True,
        timeout=30,
        env=worker_env(),
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert b"unknown argument '--nope'" in proc.stderr
    assert proc.stdout == b""


def test_the_context_shows_the_request_and_its_trace_context(worker: WorkerProc) -> None:
    ctx = {
        "id": "r-1",
        "deadline_ms": 1_900_000_000_000,
        "meta": {"tenant": "t1"},
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "tracestate": "sf=1",
    }
    r = worker.execute("whoami", ctx=ctx)
    assert r["ok"], r
    v = r["value"]
    assert v["request_id"] == "r-1" and v["deadline_ms"] == 1_900_000_000_000, v
    assert v["meta"] == {"tenant": "t1"} and v["tracestate"] == "sf=1", v
    assert v["traceparent"] == ctx["traceparent"], v
    bare = worker.execute("whoami", session="other")["value"]
    assert bare["request_id"] is None and bare["meta"] == {} and bare["traceparent"] is None

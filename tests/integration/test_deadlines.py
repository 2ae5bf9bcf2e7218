"""A request's deadline_ms holds while its call runs, through Kafka: a sync
call still running when the deadline passes is answered deadline_exceeded
then (not when the call would have ended), its worker is killed and
replaced, its state change is not saved, and the session goes on."""

from __future__ import annotations

import time

import pytest

from conftest import Fleet, KafkaEnv, now_ms
from helpers import PROGRAMS_DIR, final_states, setup_session

SLOW_RECORD = {"kind": "callable", "entry": "it_programs:slow_record"}


@pytest.mark.timeout(120)
def test_a_deadline_passing_mid_run_is_answered_and_saves_nothing(
    kafka: KafkaEnv, fleet: Fleet
) -> None:
    sup = fleet.start(python__path=PROGRAMS_DIR)
    replies = kafka.replies()
    s = kafka.session("d")
    ids = setup_session(kafka, s, "rec", SLOW_RECORD)
    kafka.send(
        kafka.request(f"{s}/1", s, "execute_program", program="rec", args={"op": 1, "seconds": 0})
    )
    kafka.flush()
    replies.wait_ids([*ids, f"{s}/1"], 60)

    t0 = time.monotonic()
    kafka.send(
        kafka.request(
            f"{s}/2",
            s,
            "execute_program",
            program="rec",
            args={"op": 2, "seconds": 20},
            deadline_ms=now_ms() + 1500,
        )
    )
    kafka.send(
        kafka.request(f"{s}/3", s, "execute_program", program="rec", args={"op": 3, "seconds": 0})
    )
    kafka.flush()
    got = replies.wait_ids([f"{s}/2", f"{s}/3"], 60)
    took = time.monotonic() - t0
    late = got[f"{s}/2"][0]
    assert not late["ok"] and late["error"]["type"] == "deadline_exceeded", late
    assert took < 15, f"answered after {took:.1f} s: the call ran to its end"
    after = got[f"{s}/3"][0]
    assert after["ok"] and after["result"] == 2, after  # [1, 3]: op 2 saved nothing
    state = final_states(kafka, replies, [s])[s]
    assert state.get("seq") == [1, 3], state
    assert sup.events("pool.deadline_exceeded"), "the worker was not stopped at the deadline"
    print(f"deadline_exceeded after {took:.1f} s")


@pytest.mark.timeout(120)
def test_the_program_sees_its_request_and_the_trace_context_comes_back(
    kafka: KafkaEnv, fleet: Fleet
) -> None:
    """ctx.request_id, ctx.deadline_ms, ctx.meta and the W3C trace context of
    the request's headers reach the program; the reply carries traceparent
    and tracestate back, next to the correlation id."""
    fleet.start()
    replies = kafka.replies()
    s = kafka.session("t")
    ids = setup_session(
        kafka, s, "who", {"kind": "callable", "entry": "snakefleet.examples:whoami"}
    )
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    deadline = now_ms() + 60_000
    kafka.send(
        kafka.request(
            f"{s}/who", s, "execute_program", program="who", meta={"tenant": "t1"},
            deadline_ms=deadline,
        ),
        headers=[("traceparent", tp.encode()), ("tracestate", b"sf=1"),
                 ("correlation-id", b"c-7")],
    )  # fmt: skip
    kafka.flush()
    got = replies.wait_ids([*ids, f"{s}/who"], 60)
    seen = got[f"{s}/who"][0]
    assert seen["ok"], seen
    r = seen["result"]
    assert r["request_id"] == f"{s}/who" and r["deadline_ms"] == deadline, r
    assert r["meta"] == {"tenant": "t1"}, r
    assert r["traceparent"] == tp and r["tracestate"] == "sf=1", r
    rec = next(x for x in replies.records if isinstance(x.msg, dict) and x.msg["id"] == f"{s}/who")
    assert rec.headers.get("traceparent") == tp.encode(), rec.headers
    assert rec.headers.get("tracestate") == b"sf=1", rec.headers
    assert rec.headers.get("correlation-id") == b"c-7", rec.headers


@pytest.mark.timeout(120)
def test_the_python_client_raises_typed_errors_and_carries_the_trace(
    kafka: KafkaEnv, fleet: Fleet
) -> None:
    """snakefleet.client.Client against the real broker: call() returns the
    result, raises SessionNotFound for a session that does not exist, and a
    traceparent given as a header reaches the program."""
    from snakefleet.client import Client, SessionNotFound

    fleet.start()
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    s = kafka.session("c")
    with Client(kafka.bootstrap, kafka.requests, kafka.replies_topic) as c:
        with pytest.raises(SessionNotFound):
            c.call(s, "execute_program", program="who", timeout=60)
        c.call(s, "create_session", timeout=60)
        spec = {"kind": "callable", "entry": "snakefleet.examples:whoami"}
        c.call(s, "create_program", program="who", args={"spec": spec}, timeout=60)
        who = c.call(
            s, "execute_program", program="who", headers=[("traceparent", tp.encode())], timeout=60
        )
    assert who["traceparent"] == tp and who["session"] == s, who

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

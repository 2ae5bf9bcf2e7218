"""Guarantee 4 of docs/DESIGN.md, fenced state: a supervisor that lost its
partition (a zombie, here frozen by SIGSTOP in the middle of a call) cannot
overwrite the new owner's writes; its late write is refused by the partition's
lease epoch and the op takes effect once, run by the new owner.

Two supervisors writing one session, wrong partitions and fleets with their own
key prefix are in test_one_answer.py, test_partitioning.py and
test_operator_view.py.

Same isolation as the other integration tests (conftest.py): every test has its
own request topic, reply topic, consumer group and session ids, and stops every
process it starts.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from conftest import Fleet, KafkaEnv, wait_until
from helpers import PROGRAMS_DIR, final_states


@pytest.mark.timeout(180)
def test_zombie_supervisor_cannot_write_state(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 4: a supervisor frozen (SIGSTOP) in the middle of a
    state-changing call loses its partition (session timeout); when it wakes
    up and finishes the call, its write is refused (stale lease epoch), and
    the op takes effect exactly once, run by the new owner."""
    opts: dict[str, Any] = {
        "python__path": PROGRAMS_DIR,
        # the new owner re-runs the zombie's claimed request once the claim
        # expires: TTL = request_timeout + checkout_timeout + 5 s = 20 s
        "pool__request_timeout": 5000,
        "pool__checkout_timeout": 10000,
    }
    a, b = fleet.start(**opts), fleet.start(**opts)
    fleet.wait_stable([a, b])
    replies = kafka.replies()
    # a session on one of a's partitions: produce create_session for a few
    # candidates and keep the first the producer put on a's partitions
    owned = {p for _, p in a.assigned()}
    candidates = [kafka.session(f"z{i}") for i in range(24)]
    for c in candidates:
        kafka.send(kafka.request(f"{c}/create", c, "create_session", args={"state": {}}))
    kafka.flush()
    part_of = {d[3].decode(): d[1] for d in kafka.delivered}
    s = next(c for c in candidates if part_of[c] in owned)
    spec = {"kind": "callable", "entry": "it_programs:slow_record"}
    op0 = kafka.request(
        f"{s}/op0", s, "execute_program", program="slow", args={"op": 0, "seconds": 2.0}
    )
    kafka.send(kafka.request(f"{s}/prog", s, "create_program", program="slow", args={"spec": spec}))
    kafka.send(op0)
    kafka.flush()
    replies.wait_ids([f"{s}/prog"], 30)
    time.sleep(0.7)  # op0 is running on a's worker now (it takes 2 s)
    a.signal(signal.SIGSTOP)
    try:
        # b takes a's partitions after the session timeout (6 s) and bumps the epochs
        wait_until(lambda: len(b.assigned()) == 8, 30, "b to own all 8 partitions")
        time.sleep(1.0)
    finally:
        a.signal(signal.SIGCONT)
    a.wait_event("store.fenced", timeout=30)
    a.signal(signal.SIGKILL)  # the zombie has tried its write; keep the group simple
    a.wait(10)
    byid = replies.wait_ids([op0["id"]], 60)
    reps = byid[op0["id"]]
    assert all(r["ok"] and r["result"] == 1 for r in reps), reps
    assert {r["supervisor"] for r in reps} == {b.id}, reps
    assert final_states(kafka, replies, [s])[s] == {"seq": [0]}
    fenced = a.events("store.fenced")
    assert any(f.get("session") == s for f in fenced), fenced

"""Guarantee 1 of docs/DESIGN.md, session affinity and order: a session's
requests run one at a time, in offset order, on the supervisor that owns their
partition, while different sessions run at the same time on every worker
(parallelism is not capped by the partition count).

Real supervisors (2 workers each unless a test says otherwise) consume a real
Kafka as one group, session state is in a real Redis, replies are read back
from the reply topic.

Same isolation as the other integration tests (conftest.py): every test has its
own request topic, reply topic, consumer group and session ids, and stops every
process it starts.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from conftest import Fleet, KafkaEnv
from helpers import (
    PROGRAMS_DIR,
    assert_all_ok,
    exec_id,
    exec_streams,
    final_states,
    produce_round,
    produce_setup,
    schema_errors,
    setup_requests,
)


def produce_load(env: KafkaEnv, sessions: list[str], nops: int) -> list[str]:
    """Every session's setup, then op 0 of every session, op 1 of every
    session, ... (sessions interleave on each partition). Returns all ids."""
    ids = produce_setup(env, sessions)
    for k in range(nops):
        ids += produce_round(env, sessions, k)
    env.flush()
    return ids


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_per_session_order_across_two_supervisors(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 1: 200 sessions x 20 ops over 2 supervisors; each session's
    ops run once each, in order; both supervisors do work."""
    nsess, nops = 200, 20
    a, b = fleet.start(), fleet.start()
    fleet.wait_stable([a, b])
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(nsess)]
    t0 = time.monotonic()
    ids = produce_load(kafka, sessions, nops)
    byid = replies.wait_ids(ids, 180)
    took = time.monotonic() - t0
    print(f"{len(ids)} requests answered in {took:.1f} s ({len(ids) / took:.0f}/s)")

    assert_all_ok(byid)
    for r in replies.records[::97]:  # a sample of the replies against the wire contract
        assert schema_errors("reply", r.msg) == [], r.msg
    dup = {rid: len(r) for rid, r in byid.items() if len(r) != 1}
    assert not dup, f"requests answered more than once without any failure: {list(dup.items())[:5]}"
    streams = exec_streams(replies)
    for s in sessions:
        assert streams.get(s) == list(range(nops)), (
            f"session {s}: replies in order {streams.get(s)}"
        )
        # record returns len(seq): op k must see exactly k earlier executions
        for k in range(nops):
            assert byid[exec_id(s, k)][0]["result"] == k + 1, (
                s,
                k,
                byid[exec_id(s, k)],
            )
    states = final_states(kafka, replies, sessions)
    for s in sessions:
        assert states[s] == {"seq": list(range(nops))}, f"session {s}: {states[s]}"

    # parallelism across the group, and affinity: one supervisor per session
    by_sup = Counter(r[0].get("supervisor") for r in byid.values())
    assert set(by_sup) == {a.id, b.id}, f"requests per supervisor: {dict(by_sup)}"
    for s in sessions:
        sups = {byid[exec_id(s, k)][0]["supervisor"] for k in range(nops)}
        assert len(sups) == 1, f"session {s} ran on {sups}"
    print(f"requests per supervisor: {dict(by_sup)}")


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The largest number of [start, end) intervals that hold at one instant."""
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    most = now = 0
    for _, d in edges:
        now += d
        most = max(most, now)
    return most


@pytest.mark.timeout(120)
def test_parallelism_is_not_capped_by_partitions(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 1, key-ordered concurrency: a request topic of ONE partition,
    one supervisor with 4 workers, 8 sessions with one 0.3 s call each plus a
    second call of session 0. The sessions' calls run at the same time on
    different workers (their spans overlap), while session 0's two calls run
    one after the other, in offset order."""
    one = kafka.create_topic(f"{kafka.prefix}.one", 1)
    sup = fleet.start(topics__requests=one, pool__pool_size=4, python__path=PROGRAMS_DIR)
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(8)]
    spec = {"kind": "callable", "entry": "it_programs:span"}
    setup = []
    for s in sessions:
        for r in setup_requests(kafka, s, program="span", spec=spec):
            kafka.send(r, topic=one)
            setup.append(r["id"])
    kafka.flush()
    replies.wait_ids(setup, 60)
    ids = []
    for s in sessions:
        r = kafka.request(f"{s}/op0", s, "execute_program", program="span")
        kafka.send(r, topic=one)
        ids.append(r["id"])
    second = kafka.request(f"{sessions[0]}/op1", sessions[0], "execute_program", program="span")
    kafka.send(second, topic=one)
    kafka.flush()
    everything = [*ids, second["id"]]
    byid = replies.wait_ids(everything, 60)
    assert_all_ok(byid)
    results = {rid: byid[rid][0]["result"] for rid in everything}
    spans = [(results[rid]["start"], results[rid]["end"]) for rid in ids]
    overlap = max_overlap(spans)
    pids = {results[rid]["pid"] for rid in ids}
    assert overlap >= 3, f"at most {overlap} of 8 sessions ran at once on 4 workers: {spans}"
    assert len(pids) >= 3, pids
    first, then = results[f"{sessions[0]}/op0"], results[second["id"]]
    assert first["end"] <= then["start"], (first, then)
    print(f"{overlap} calls at once on {len(pids)} workers from one partition ({sup.id})")


@pytest.mark.timeout(180)
def test_a_long_queue_of_instant_answers_in_one_session(kafka: KafkaEnv, fleet: Fleet) -> None:
    """20,000 pings queued in one session behind a 2 s call: when the call
    ends, each ping is answered as soon as it runs. They are answered one after
    the other by one loop, not by a call chain one level deeper per ping
    (which overflowed the stack at this depth)."""
    sup = fleet.start(supervisor__max_queued=30000, supervisor__resume_below=1000)
    fleet.wait_stable([sup])
    replies = kafka.replies()
    s = kafka.session("deep")
    sleep = {"kind": "callable", "entry": "snakefleet.examples:sleep"}
    for r in setup_requests(kafka, s, program="slp", spec=sleep):
        kafka.send(r)
    kafka.send(
        kafka.request(f"{s}/slow", s, "execute_program", program="slp", args={"seconds": 2.0})
    )
    ids = [f"{s}/slow"]
    for i in range(20000):
        kafka.send(kafka.request(f"{s}/p{i}", s, "ping"))
        ids.append(f"{s}/p{i}")
    kafka.flush()
    byid = replies.wait_ids(ids, 150)
    assert all(r[0]["ok"] for r in byid.values())
    assert sup.alive(), "the supervisor died"

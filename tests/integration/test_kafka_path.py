"""The Kafka path end to end: requests produced to a real broker, real
supervisors (2 workers each) consuming them as one group, session state in a
real Redis, replies read back from the reply topic.

Each test has its own request topic, reply topic, consumer group and session
ids (see conftest.py) and stops every process it starts. Guarantees refer to
docs/DESIGN.md, "Guarantees".
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from typing import Any

import jsonschema
import msgpack
import pytest

from conftest import (
    DLQ_TOPIC,
    RECORD_SPEC,
    ROOT,
    TELEMETRY_TOPIC,
    Fleet,
    KafkaEnv,
    Record,
    Replies,
    live_workers,
    now_ms,
    wait_until,
)

# ---------------------------------------------------------------- helpers


def setup_requests(
    env: KafkaEnv,
    s: str,
    program: str = "rec",
    spec: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """create_session + create_program: the first two requests of a session
    (the session FIFO keeps them before its execute_program requests)."""
    return [
        env.request(f"{s}/create", s, "create_session", args={"state": state or {}}),
        env.request(
            f"{s}/prog-{program}",
            s,
            "create_program",
            program=program,
            args={"spec": spec or RECORD_SPEC},
        ),
    ]


def exec_id(s: str, k: int) -> str:
    return f"{s}/op{k}"


def op_of(reply_id: str) -> int | None:
    _, sep, k = reply_id.rpartition("/op")
    return int(k) if sep and k.isdigit() else None


def produce_round(env: KafkaEnv, sessions: list[str], k: int) -> list[str]:
    ids = []
    for s in sessions:
        env.send(env.request(exec_id(s, k), s, "execute_program", program="rec", args={"op": k}))
        ids.append(exec_id(s, k))
    return ids


def produce_load(env: KafkaEnv, sessions: list[str], nops: int) -> list[str]:
    """Every session's setup, then op 0 of every session, op 1 of every
    session, ... (sessions interleave on each partition). Returns all ids."""
    ids = produce_setup(env, sessions)
    for k in range(nops):
        ids += produce_round(env, sessions, k)
    env.flush()
    return ids


def produce_setup(
    env: KafkaEnv, sessions: list[str], spec: dict[str, Any] | None = None
) -> list[str]:
    ids = []
    for s in sessions:
        for r in setup_requests(env, s, spec=spec):
            env.send(r)
            ids.append(r["id"])
    return ids


def disrupt_mid_burst(
    env: KafkaEnv,
    replies: Replies,
    sessions: list[str],
    victim: Any,
    warm: int,
    burst: int,
    spec: dict[str, Any] | None = None,
) -> tuple[list[str], int]:
    """Sets the sessions up and runs ops [0, warm) to completion, then produces
    ops [warm, burst) at once and returns as soon as `victim` has answered one
    of them: the victim then holds consumed, unfinished work. Returns the ids
    produced and the number of replies seen at that point."""
    ids = produce_setup(env, sessions, spec)
    for k in range(warm):
        ids += produce_round(env, sessions, k)
    env.flush()
    replies.wait_ids(ids, 120)
    burst_ids: set[str] = set()
    for k in range(warm, burst):
        burst_ids.update(produce_round(env, sessions, k))
    env.flush()
    ids += sorted(burst_ids)

    def victim_busy(recs: list[Record]) -> bool:
        return any(
            isinstance(r.msg, dict)
            and r.msg.get("id") in burst_ids
            and r.msg.get("supervisor") == victim.id
            for r in recs
        )

    deadline = time.monotonic() + 60
    while not victim_busy(replies.records):
        if time.monotonic() > deadline:
            pytest.fail(f"{victim.id} answered nothing of the burst within 60 s")
        for m in replies.c.consume(num_messages=20, timeout=0.05):
            if not m.error():
                replies.records.append(Record.of(m))
    return ids, len(replies.records)


def exec_streams(replies: Replies) -> dict[str, list[int]]:
    """Per session, the op numbers of its execute_program replies in the order
    they are on the reply topic (a session's replies share one partition)."""
    out: dict[str, list[int]] = {}
    for r in replies.records:
        m = r.msg
        if isinstance(m, dict):
            k = op_of(m.get("id", ""))
            if k is not None:
                out.setdefault(m["session"], []).append(k)
    return out


def final_states(
    env: KafkaEnv, replies: Replies, sessions: list[str], tag: str = "final"
) -> dict[str, Any]:
    """get_session_state of every session, asked after everything else was answered."""
    ids = {}
    for s in sessions:
        rid = f"{s}/{tag}"
        env.send(env.request(rid, s, "get_session_state"))
        ids[rid] = s
    env.flush()
    byid = replies.wait_ids(list(ids), 120)
    out = {}
    for rid, s in ids.items():
        rep = byid[rid][-1]
        assert rep["ok"], f"get_session_state of {s} failed: {rep}"
        out[s] = rep["result"]
    return out


def check_replayed_sequence(seq: list[int], n: int) -> str | None:
    """Checks one session's ops 0..n-1 as seen under at-least-once delivery;
    returns what is wrong, or None.

    Why this shape: a supervisor that dies (SIGKILL) or loses a partition in a
    rebalance after handling some of a session's requests, but before their
    offsets were committed, makes the partition's next owner re-consume from
    the last committed offset, so the requests from that offset on are
    delivered again, in order. With request-id dedupe (docs/DESIGN.md guarantee 3)
    a redelivered request does not run again: it gets its cached reply again.
    So the *reply stream* of a session may contain replays, and so would its
    *executions* if dedupe were off or broken. Either way what must hold
    (guarantees 1 and 2) is:
      - order: each element is either the next op (previous + 1) or the start
        of a replay at an earlier op (<= previous); a jump forward would mean
        an op was handled before its predecessor, i.e. order broken or a
        request lost;
      - it starts at op 0;
      - every op 0..n-1 is there, and the last element is op n-1 (nothing
        after the session's last op, nothing missing at the end).
    The tests apply it to reply streams; the session state (the executions
    that took effect) must be exactly [0, 1, ..., n-1] because of dedupe.
    """
    if not seq:
        return "no execution at all"
    if seq[0] != 0:
        return f"starts at op {seq[0]}, not 0: {seq}"
    for i in range(1, len(seq)):
        prev, cur = seq[i - 1], seq[i]
        if cur != prev + 1 and cur > prev:
            return f"op {cur} ran right after op {prev} (ops skipped or reordered): {seq}"
    missing = set(range(n)) - set(seq)
    if missing:
        return f"ops {sorted(missing)} never ran: {seq}"
    if seq[-1] != n - 1:
        return f"ends at op {seq[-1]}, not {n - 1}: {seq}"
    if any(not 0 <= x < n for x in seq):
        return f"unknown ops in {seq}"
    return None


def test_check_replayed_sequence_helper() -> None:
    ok = [[0, 1, 2, 3], [0, 1, 2, 1, 2, 3], [0, 1, 0, 1, 2, 3], [0, 1, 2, 3, 3]]
    bad = [[], [1, 2, 3], [0, 2, 3], [0, 1, 3, 2, 3], [0, 1, 2], [0, 1, 2, 3, 1]]
    for s in ok:
        assert check_replayed_sequence(s, 4) is None, s
    for s in bad:
        assert check_replayed_sequence(s, 4) is not None, s


def assert_all_ok(byid: dict[str, list[dict[str, Any]]]) -> None:
    bad = {rid: reps for rid, reps in byid.items() if not all(r["ok"] for r in reps)}
    assert not bad, f"{len(bad)} requests got error replies, e.g. {list(bad.items())[:3]}"


def check_sessions(
    env: KafkaEnv, replies: Replies, sessions: list[str], nops: int, sups: list[Any]
) -> str:
    """The checks after a disruption (kill, join, drain): every session's reply
    stream has the at-least-once shape (check_replayed_sequence), a request
    answered twice got the same reply twice (the cached one: guarantee 3),
    and each session's state shows every op taking effect exactly once, in
    order. Returns a one-line summary."""
    streams = exec_streams(replies)
    for s in sessions:
        problem = check_replayed_sequence(streams.get(s, []), nops)
        assert problem is None, f"session {s}, replies: {problem}"
    byid = replies.by_id()
    dups = {rid: reps for rid, reps in byid.items() if len(reps) > 1}
    for rid, reps in dups.items():
        assert all(r == reps[0] for r in reps[1:]), f"{rid} answered differently: {reps}"
    states = final_states(env, replies, sessions)
    for s in sessions:
        assert states[s] == {"seq": list(range(nops))}, (
            f"session {s}: ops did not take effect exactly once in order: {states[s]}"
        )
    dedup = sum(len(x.events("request.duplicate")) for x in sups)
    per_sup = Counter(reps[0].get("supervisor") for rid, reps in byid.items() if "/op" in rid)
    return (
        f"{len(dups)} requests answered more than once (identical replies), "
        f"{dedup} cached replies served (request.duplicate); "
        f"execute replies per supervisor: {dict(per_sup)}"
    )


def wait_replies(replies: Replies, n: int, timeout: float) -> None:
    replies.wait_for(lambda recs: len(recs) >= n, timeout, f"{n} replies")


# ---------------------------------------------------------------- a. order


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


# ---------------------------------------------------------------- b. SIGKILL


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_one_of_two_under_load(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 2 (and 7's orphan rule): SIGKILL one of two supervisors in the
    middle of 100 sessions x 40 ops; the other takes its partitions over after
    the session timeout; every request is answered; replies may repeat (cached)
    but every op takes effect once, in order (guarantees 1-3)."""
    nsess, nops, warm, burst = 100, 40, 5, 30
    # A request the victim had claimed in Redis but not finished is re-run by
    # the survivor only once the claim expires: claim TTL = request_timeout +
    # checkout_timeout + 5 s (daemon.c sf_daemon_new), 70 s with the defaults.
    # Shorter timeouts keep this test short.
    opts: dict[str, Any] = {
        "pool__request_timeout": 5000,
        "pool__checkout_timeout": 10000,
    }
    claim_ttl_s = 5 + 10 + 5
    a, b = fleet.start(**opts), fleet.start(**opts)
    fleet.wait_stable([a, b])
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(nsess)]
    victim, survivor = a, b
    # Kill in the middle of a burst of 2500 requests: the victim holds work.
    ids, answered_before = disrupt_mid_burst(kafka, replies, sessions, victim, warm, burst)
    workers = victim.worker_pids()
    assert workers, "no worker pids in the victim's log"
    t_kill = time.monotonic()
    # SIGKILL to the supervisor only: its workers must die on their own
    victim.signal(signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    # the rest of the ops go out while the victim's partitions are orphaned
    for k in range(burst, nops):
        ids += produce_round(kafka, sessions, k)
    kafka.flush()
    wait_until(
        lambda: not live_workers(workers),
        10,
        f"the killed supervisor's workers {sorted(workers)} to exit (PR_SET_PDEATHSIG)",
    )

    byid = replies.wait_ids(ids, 180)
    recovered = time.monotonic() - t_kill
    assert_all_ok(byid)
    wait_until(
        lambda: len(survivor.assigned()) == 8,
        30,
        "the survivor to own all 8 partitions",
    )
    summary = check_sessions(kafka, replies, sessions, nops, [victim, survivor])
    print(
        f"answered before the kill: {answered_before}/{len(ids)}; everything answered "
        f"{recovered:.1f} s after the kill (claim TTL {claim_ttl_s} s); {summary}"
    )


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_static_member_restarts_without_a_rebalance(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Static membership (kafka.group.instance.id): a supervisor SIGKILLed
    and started again under the same instance id within session.timeout.ms
    gets its partitions back and the other member never gives up any of its
    own (no rebalance). Requests produced meanwhile are all answered, each
    op once and in order."""
    nsess, nops = 40, 10
    base: dict[str, Any] = {"kafka__session.timeout.ms": 20000}
    a = fleet.start(**base, **{"kafka__group.instance.id": f"{kafka.prefix}-a"})
    b = fleet.start(**base, **{"kafka__group.instance.id": f"{kafka.prefix}-b"})
    fleet.wait_stable([a, b])
    owned_a, owned_b = a.assigned(), b.assigned()
    assert owned_a and owned_b, (owned_a, owned_b)
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(nsess)]
    ids = produce_setup(kafka, sessions)
    for k in range(nops // 2):
        ids += produce_round(kafka, sessions, k)
    kafka.flush()
    replies.wait_ids(ids, 60)
    a.signal(signal.SIGKILL)
    assert a.wait(10) == -signal.SIGKILL
    for k in range(nops // 2, nops):
        ids += produce_round(kafka, sessions, k)
    kafka.flush()
    a2 = fleet.start(**base, **{"kafka__group.instance.id": f"{kafka.prefix}-a"})
    byid = replies.wait_ids(ids, 120)
    assert_all_ok(byid)
    assert a2.assigned() == owned_a, (a2.assigned(), owned_a)
    assert not b.events("kafka.revoked"), "the other member went through a rebalance"
    assert b.assigned() == owned_b
    print(check_sessions(kafka, replies, sessions, nops, [a, a2, b]))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_sigterm_with_the_broker_gone_still_stops_in_bounded_time(
    kafka: KafkaEnv, fleet: Fleet, tmp_path: Any
) -> None:
    """Guarantee 7 when Kafka is unreachable: a supervisor whose (own) broker
    was SIGKILLed still stops on SIGTERM with exit code 0: the drain gives up
    at shutdown_timeout (its replies can no longer be acknowledged), and the
    commit, the leave-group close and the producer flush that follow are each
    bounded (sf_kafka_commit_sync, sf_kafka_close), whatever state the
    consumer is in. The bound checked (40 s) is generous; the point is that
    the stop ends by itself."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = subprocess.run(
        [
            str(ROOT / "deploy/kafka/start.sh"),
            "-d",
            str(tmp_path / "kafka"),
            "-p",
            str(port),
            "-t",
            "gone.requests:2,gone.replies:1,snakefleet.telemetry:1,snakefleet.dlq:1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    env = dict(line.split("=", 1) for line in start.stdout.split() if "=" in line)
    try:
        sup = fleet.start(
            **{"kafka__bootstrap.servers": env["KAFKA_BOOTSTRAP"]},
            topics__requests="gone.requests",
            topics__replies="gone.replies",
            supervisor__shutdown_timeout=3000,
            # librdkafka's default (45 s), which bounds a blocking close
            **{"kafka__session.timeout.ms": None, "kafka__heartbeat.interval.ms": None},
        )
        os.kill(int(env["KAFKA_PID"]), signal.SIGKILL)
        time.sleep(3)  # the clients notice: connections refused, the coordinator lost
        t0 = time.monotonic()
        sup.signal(signal.SIGTERM)
        rc = sup.wait(40)
        took = time.monotonic() - t0
        assert rc == 0, f"exit {rc} after {took:.1f} s"
        assert sup.events("supervisor.stopped"), "no supervisor.stopped line"
        print(f"stopped {took:.1f} s after SIGTERM with the broker gone")
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(
                [str(ROOT / "deploy/kafka/stop.sh"), env.get("KAFKA_DIR", str(tmp_path / "kafka"))],
                capture_output=True,
                timeout=60,
            )


# ---------------------------------------------------------------- c. join


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("strategy", ["eager", "cooperative-sticky"])
def test_third_supervisor_joins_under_load(kafka: KafkaEnv, fleet: Fleet, strategy: str) -> None:
    """A third supervisor joining mid-load gets partitions (rebalance) and
    work; every request is answered; order holds. Run with librdkafka's
    default eager assignors and with the cooperative protocol
    (cooperative-sticky: only the partitions that move are revoked, through
    incremental assign/unassign).

    Why the reply streams get the replay-tolerant check and not the strict
    one: the rebalance is eager (librdkafka's default range,roundrobin), so
    every member's partitions are revoked. A revoked partition's queued jobs
    are dropped (daemon.c purge_revoked) and only the contiguous finished
    prefix of its offsets is committed, while jobs of *other sessions* after
    the first dropped one may already have run. The new owner re-consumes from
    the committed offset: those requests are delivered twice without any
    failure, and answered twice (from the dedupe cache). The session state is
    still checked strictly: each op takes effect once, in order, because the
    old owner finishes its running jobs before giving a partition up and a
    redelivered request is not run again."""
    nsess, nops = 200, 20
    opts: dict[str, Any] = {}
    if strategy != "eager":
        opts["kafka__partition.assignment.strategy"] = strategy
    a, b = fleet.start(**opts), fleet.start(**opts)
    fleet.wait_stable([a, b])
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(nsess)]
    ids: list[str] = []
    for s in sessions:
        for r in setup_requests(kafka, s):
            kafka.send(r)
            ids.append(r["id"])
    c = None
    for k in range(nops):
        ids += produce_round(kafka, sessions, k)
        kafka.flush()
        if k == 2:
            c = fleet.spawn(**opts)  # joins while the first rounds are being worked on
        if k == nops // 2:
            # the second half goes out once the newcomer owns partitions
            assert c is not None
            c.wait_event("kafka.assigned", timeout=60)
        time.sleep(0.15)
    assert c is not None

    byid = replies.wait_ids(ids, 180)
    assert_all_ok(byid)
    fleet.wait_stable([a, b, c])
    for sup in (a, b):
        assert sup.events("kafka.revoked"), f"{sup.id} logged no revocation"
    by_sup = Counter(r[-1].get("supervisor") for r in byid.values())
    assert by_sup[c.id] > 0, f"the newcomer answered nothing: {dict(by_sup)}"
    protocols = {e.get("protocol") for sup in (a, b, c) for e in sup.events("kafka.assigned")}
    assert protocols == {"EAGER" if strategy == "eager" else "COOPERATIVE"}, protocols

    print(check_sessions(kafka, replies, sessions, nops, [a, b, c]))


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


# ---------------------------------------------------------------- d. bad input


def bin_json(v: Any) -> Any:
    """A decoded msgpack value as the schemas read it (bin -> {"$bin": b64})."""
    if isinstance(v, bytes):
        return {"$bin": base64.b64encode(v).decode()}
    if isinstance(v, dict):
        return {k: bin_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [bin_json(x) for x in v]
    return v


def schema(name: str) -> dict[str, Any]:
    from conftest import ROOT

    return json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())


def schema_errors(name: str, doc: Any) -> list[str]:
    v = jsonschema.Draft202012Validator(schema(name))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in v.iter_errors(bin_json(doc))
    ]


def delivered_at(env: KafkaEnv, value: bytes) -> tuple[int, int]:
    """(partition, offset) the producer got for the request with these bytes."""
    for topic, p, off, _key, v in env.delivered:
        if topic == env.requests and v == value:
            return p, off
    raise AssertionError("request not delivered")


@pytest.mark.timeout(180)
def test_bad_input_gets_an_answer_and_the_partition_keeps_flowing(
    kafka: KafkaEnv, fleet: Fleet
) -> None:
    """Guarantee 5: every kind of bad request gets an error reply (reply topic
    known) or a DLQ record (not known), and a good request right after it on
    the same partition is answered. Also the reply-topic / correlation-id
    headers (Spring Kafka's names too)."""
    sup = fleet.start(supervisor__max_message_bytes=2048)
    fleet.wait_stable([sup])
    dlq = kafka.reader(DLQ_TOPIC, from_end=True)
    replies = kafka.replies()
    hdr_topic = kafka.create_topic(f"{kafka.prefix}.hdr-replies", 1)
    hdr_replies = kafka.replies(hdr_topic)
    s = kafka.session("bad")
    R = kafka.replies_topic
    good: list[str] = []
    n = 0

    def good_one() -> None:
        nonlocal n
        n += 1
        rid = f"{s}/good{n}"
        kafka.send(kafka.request(rid, s, "get_session_state"))
        good.append(rid)

    kafka.send(kafka.request(f"{s}/create", s, "create_session", args={"state": {"x": 1}}))
    good_one()
    # 1. garbage, no reply topic anywhere -> DLQ
    garbage = b"\xc1\xc1 this is not msgpack \x00\xff"
    kafka.send(garbage, key=s)
    good_one()
    # 1b. garbage without a key -> DLQ with key nil (lands on any partition)
    garbage_nokey = b"\x93\x01\x02"  # a msgpack array, not a map
    kafka.send(garbage_nokey, key=None)
    # 2. unknown schema version, reply_to given -> unknown_version
    kafka.send({"v": 99, "id": f"{s}/v99", "session": s, "op": "ping", "reply_to": R})
    good_one()
    # 3. no session, reply_to given -> invalid_request field session
    kafka.send({"v": 1, "id": f"{s}/nosession", "op": "ping", "reply_to": R}, key=s)
    good_one()
    # 4. key differs from session
    kafka.send(
        {
            "v": 1,
            "id": f"{s}/wrongkey",
            "session": f"{s}-other",
            "op": "ping",
            "reply_to": R,
        },
        key=s,
    )
    good_one()
    # 5. larger than supervisor.max_message_bytes (2048)
    big = {
        "v": 1,
        "id": f"{s}/big",
        "session": s,
        "op": "ping",
        "reply_to": R,
        "meta": {"pad": "x" * 4096},
    }
    kafka.send(big)
    good_one()
    # 6. unknown op
    kafka.send({"v": 1, "id": f"{s}/badop", "session": s, "op": "frobnicate", "reply_to": R})
    good_one()
    # 7. reply topic and correlation id as headers
    kafka.send(
        {"v": 1, "id": f"{s}/hdr", "session": s, "op": "ping"},
        headers=[("reply-topic", hdr_topic.encode()), ("correlation-id", b"corr-123")],
    )
    kafka.send(
        {"v": 1, "id": f"{s}/spring", "session": s, "op": "ping"},
        headers=[
            ("kafka_replyTopic", hdr_topic.encode()),
            ("kafka_correlationId", b"\x00\x01spring"),
        ],
    )
    # 8. garbage, but a reply-topic header -> error reply there, no DLQ
    garbage2 = b"\xc1 more garbage"
    kafka.send(
        garbage2,
        key=s,
        headers=[
            ("reply-topic", hdr_topic.encode()),
            ("correlation-id", b"corr-garbage"),
        ],
    )
    good_one()
    kafka.flush()

    want = [
        *good,
        f"{s}/create",
        f"{s}/v99",
        f"{s}/nosession",
        f"{s}/wrongkey",
        f"{s}/big",
        f"{s}/badop",
    ]
    byid = replies.wait_ids(want, 60)
    for rid in good:
        rep = byid[rid]
        assert len(rep) == 1 and rep[0]["ok"], f"{rid}: {rep}"
        assert rep[0]["result"] == {"x": 1}

    def err(rid: str, session: str = s) -> dict[str, Any]:
        rep = byid[rid]
        assert len(rep) == 1, rep
        assert rep[0]["ok"] is False, rep
        assert rep[0]["id"] == rid, rep
        assert rep[0]["session"] == session, rep
        assert schema_errors("reply", rep[0]) == [], rep
        return rep[0]["error"]

    e = err(f"{s}/v99")
    assert e["type"] == "unknown_version" and "99" in e["message"], e
    e = err(f"{s}/nosession")
    assert e["type"] == "invalid_request" and e.get("field") == "session", e
    e = err(f"{s}/wrongkey", session=f"{s}-other")  # the reply names the body's session
    assert e["type"] == "invalid_request" and e.get("field") == "session", e
    assert "key" in e["message"], e
    e = err(f"{s}/big")
    big_len = len(msgpack.packb(big))
    assert e["type"] == "invalid_request", e
    assert str(big_len) in e["message"] and "2048" in e["message"], e
    e = err(f"{s}/badop")
    assert e["type"] == "invalid_request" and e.get("field") == "op", e

    # the header replies
    hdr_replies.wait_for(lambda recs: len(recs) >= 3, 30, "3 replies on the header topic")
    by = {r.msg["id"]: r for r in hdr_replies.records}
    assert by[f"{s}/hdr"].msg["ok"] and by[f"{s}/hdr"].headers.get("correlation-id") == b"corr-123"
    assert by[f"{s}/hdr"].key == s.encode()
    assert by[f"{s}/spring"].msg["ok"]
    assert by[f"{s}/spring"].headers.get("kafka_correlationId") == b"\x00\x01spring"
    g = by[""]  # the garbage had no id
    assert g.msg["ok"] is False and g.msg["error"]["type"] == "invalid_request", g.msg
    assert g.msg["session"] == s and g.key == s.encode(), g.msg
    assert g.headers.get("correlation-id") == b"corr-garbage"
    assert all(r.msg.get("id") not in (f"{s}/hdr", f"{s}/spring") for r in replies.records), (
        "a header-addressed reply also went to the default reply topic"
    )

    # the DLQ: exactly the two records without a reply topic
    def mine(rs: list[Record]) -> list[Record]:
        return [r for r in rs if isinstance(r.msg, dict) and r.msg.get("topic") == kafka.requests]

    dlq.wait_for(lambda rs: len(mine(rs)) >= 2, 30, "2 DLQ records")
    dlq.poll(1.0)  # nothing more may come
    recs = mine(dlq.records)
    assert len(recs) == 2, [r.msg for r in recs]
    by_value = {r.msg["value"]: r for r in recs}
    assert set(by_value) == {garbage, garbage_nokey}
    for value, key in ((garbage, s.encode()), (garbage_nokey, None)):
        r = by_value[value]
        m = r.msg
        p, off = delivered_at(kafka, value)
        assert (m["partition"], m["offset"]) == (p, off), m
        assert m["key"] == key and r.key == key, m
        assert m["v"] == 1 and m["supervisor"] == sup.id
        assert isinstance(m["reason"], str) and m["reason"], m
        assert isinstance(m["error_type"], str) and m["error_type"], m
        assert abs(m["ts_ms"] - now_ms()) < 120_000, m
        assert schema_errors("dlq", m) == [], m

    # The partition kept flowing: every offset of it got finished and committed.
    p, _ = delivered_at(kafka, garbage)
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": f"{kafka.prefix}-wm"})
    try:
        _, hi = c.get_watermark_offsets(TopicPartition(kafka.requests, p), timeout=10)
    finally:
        c.close()
    wait_until(
        lambda: kafka.committed([p]).get(p) == hi,
        20,
        f"the group's committed offset on partition {p} to reach {hi}",
        interval=0.5,
    )


# ---------------------------------------------------------------- e. SIGTERM


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigterm_under_load_drains_and_loses_nothing(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 7: SIGTERM mid-load; the supervisor drains what it holds,
    commits, leaves the group and exits 0 within its shutdown timeout; the
    other supervisor answers the rest; no worker process survives."""
    nsess, nops, warm, burst = 100, 40, 5, 30
    shutdown_s = 20
    a = fleet.start(python__path=PROGRAMS_DIR)
    b = fleet.start(python__path=PROGRAMS_DIR)
    fleet.wait_stable([a, b])
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(nsess)]
    workers = a.worker_pids()
    # SIGTERM in the middle of a burst of 2500 requests of 3 ms each: `a` holds
    # work to drain (about a second of it), however fast the machine is.
    paced = {"kind": "callable", "entry": "it_programs:paced_record"}
    ids, answered_before = disrupt_mid_burst(kafka, replies, sessions, a, warm, burst, paced)
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    # the rest of the ops go out while `a` drains: its partitions are paused,
    # so `b` must take them over once `a` has left
    for k in range(burst, nops):
        ids += produce_round(kafka, sessions, k)
    kafka.flush()
    rc = a.wait(shutdown_s + 15)
    took = time.monotonic() - t0
    assert rc == 0, f"exit code {rc} after SIGTERM ({took:.1f} s)"
    assert took < shutdown_s + 10, f"took {took:.1f} s to stop"
    assert a.has_event("supervisor.draining") and a.has_event("supervisor.left_group")
    assert a.has_event("supervisor.stopped")
    assert not a.events("supervisor.drain_timeout"), "the drain did not finish in time"
    held = int(a.events("supervisor.draining")[0]["held"])
    assert held > 0, "nothing to drain: SIGTERM came too late"
    wait_until(lambda: not live_workers(workers), 10, f"workers {sorted(workers)} to exit")

    byid = replies.wait_ids(ids, 180)
    assert_all_ok(byid)
    summary = check_sessions(kafka, replies, sessions, nops, [a, b])
    print(
        f"stopped in {took:.1f} s, draining {held} held requests; "
        f"answered before SIGTERM: {answered_before}/{len(ids)}; {summary}"
    )


# ---------------------------------------------------------------- f. telemetry


@pytest.mark.timeout(120)
def test_telemetry_snapshot_matches_the_schema(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Telemetry every interval on snakefleet.telemetry, keyed by the
    supervisor id, valid against schemas/telemetry.schema.json."""
    tel = kafka.reader(TELEMETRY_TOPIC, from_end=True)
    sup = fleet.start()
    fleet.wait_stable([sup])
    replies = kafka.replies()
    ids = [f"{kafka.session(i)}/ping" for i in range(5)]
    for i, rid in enumerate(ids):
        kafka.send(kafka.request(rid, kafka.session(i), "ping"))
    kafka.flush()
    replies.wait_ids(ids, 30)

    def mine(recs: list[Record]) -> list[Record]:
        return [r for r in recs if r.key == sup.id.encode()]

    def settled(recs: list[Record]) -> Any:
        m = [r for r in mine(recs) if r.msg.get("total_commands", 0) >= len(ids)]
        return m or None

    t0 = time.monotonic()
    tel.wait_for(settled, 15, f"a snapshot of {sup.id} counting {len(ids)} commands")
    print(f"snapshot with the commands after {time.monotonic() - t0:.1f} s")
    snaps = mine(tel.records)
    assert snaps, "no telemetry"
    problems = {}
    for r in snaps:
        errs = schema_errors("telemetry", r.msg)
        if errs:
            problems[r.offset] = errs
    assert not problems, f"snapshots not valid against telemetry.schema.json: {problems}"
    last = snaps[-1].msg
    assert last["supervisor"] == sup.id and last["v"] == 1
    assert last["pool_size"] == 2 and last["healthy_workers"] == 2, last
    assert last["total_errors"] == 0, last
    assert abs(last["ts_ms"] - now_ms()) < 60_000
    assert set(last["lag"]) == {f"{kafka.requests}/{p}" for p in range(8)}, last["lag"]
    assert all(v == 0 for v in last["lag"].values()), last["lag"]
    assert last["latency"]["total"]["count"] >= len(ids), last["latency"]
    extra = set(last) - set(schema("telemetry")["properties"])
    print(f"fields the schema does not describe: {sorted(extra)}")


# ---------------------------------------------------------------- g. poison pill


@pytest.mark.timeout(120)
def test_poison_pill_goes_to_the_dlq(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 5: a request that crashes a worker poison_threshold (3) times
    gets a poison_pill error reply and a DLQ record; its session goes on."""
    sup = fleet.start()
    fleet.wait_stable([sup])
    dlq = kafka.reader(DLQ_TOPIC, from_end=True)
    replies = kafka.replies()
    s = kafka.session("poison")
    crash_spec = {"kind": "callable", "entry": "snakefleet.examples:crash"}
    reqs = [
        *setup_requests(kafka, s),
        kafka.request(
            f"{s}/prog-crash",
            s,
            "create_program",
            program="crash",
            args={"spec": crash_spec},
        ),
        kafka.request(f"{s}/op0", s, "execute_program", program="rec", args={"op": 0}),
        kafka.request(f"{s}/pill", s, "execute_program", program="crash", args={"how": "abort"}),
        kafka.request(f"{s}/op1", s, "execute_program", program="rec", args={"op": 1}),
        kafka.request(f"{s}/state", s, "get_session_state"),
    ]
    for r in reqs:
        kafka.send(r)
    kafka.flush()
    pill_bytes = msgpack.packb(reqs[4], use_bin_type=True)
    byid = replies.wait_ids([r["id"] for r in reqs], 90)

    pill = byid[f"{s}/pill"]
    assert len(pill) == 1 and not pill[0]["ok"], pill
    assert pill[0]["error"]["type"] == "poison_pill", pill
    for rid in (
        f"{s}/create",
        f"{s}/prog-rec",
        f"{s}/prog-crash",
        f"{s}/op0",
        f"{s}/op1",
    ):
        assert byid[rid][0]["ok"], byid[rid]
    assert byid[f"{s}/op1"][0]["result"] == 2
    assert byid[f"{s}/state"][0]["result"] == {"seq": [0, 1]}
    retries = sup.events("request.retry_after_crash")
    assert len(retries) == 2, retries  # crashes 1 and 2 are retried, the 3rd is the verdict
    assert len(sup.events("pool.worker_died")) >= 3

    def mine(rs: list[Record]) -> list[Record]:
        return [r for r in rs if isinstance(r.msg, dict) and r.msg.get("topic") == kafka.requests]

    recs = dlq.wait_for(mine, 30, "the poison pill's DLQ record")
    dlq.poll(1.0)
    recs = mine(dlq.records)
    assert len(recs) == 1, [r.msg for r in recs]
    m = recs[0].msg
    assert m["error_type"] == "poison_pill" and "poison" in m["reason"], m
    assert m["value"] == pill_bytes and m["key"] == s.encode(), m
    p, off = delivered_at(kafka, pill_bytes)
    assert (m["partition"], m["offset"]) == (p, off), m
    assert schema_errors("dlq", m) == [], m
    # the pool recovers: two healthy workers again
    wait_until(lambda: len(sup.events("pool.worker_ready")) >= 5, 30, "replacement workers")


# ---------------------------------------------------------------- h. deadline


@pytest.mark.timeout(120)
def test_deadline_in_the_past_is_not_run(kafka: KafkaEnv, fleet: Fleet) -> None:
    sup = fleet.start()
    fleet.wait_stable([sup])
    replies = kafka.replies()
    s = kafka.session("deadline")
    reqs = [
        *setup_requests(kafka, s),
        kafka.request(
            f"{s}/late",
            s,
            "execute_program",
            program="rec",
            args={"op": 0},
            deadline_ms=now_ms() - 60_000,
        ),
        kafka.request(
            f"{s}/op1",
            s,
            "execute_program",
            program="rec",
            args={"op": 1},
            deadline_ms=now_ms() + 120_000,
        ),
        kafka.request(f"{s}/late-state", s, "get_session_state", deadline_ms=1),
        kafka.request(f"{s}/state", s, "get_session_state", deadline_ms=0),
    ]
    for r in reqs:
        kafka.send(r)
    kafka.flush()
    byid = replies.wait_ids([r["id"] for r in reqs], 60)
    late = byid[f"{s}/late"][0]
    assert not late["ok"] and late["error"]["type"] == "deadline_exceeded", late
    assert late["error"].get("field") == "deadline_ms", late
    assert late.get("supervisor") == sup.id
    assert not byid[f"{s}/late-state"][0]["ok"]
    assert byid[f"{s}/late-state"][0]["error"]["type"] == "deadline_exceeded"
    op1 = byid[f"{s}/op1"][0]
    assert op1["ok"] and op1["result"] == 1, op1  # op 0 never ran
    st = byid[f"{s}/state"][0]
    assert st["ok"] and st["result"] == {"seq": [1]}, st


# ---------------------------------------------------------------- dedupe


@pytest.mark.timeout(120)
def test_redelivered_request_id_gets_the_cached_reply(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 3: the same request produced twice (a client retry) runs
    once; the second copy gets the first one's reply again."""
    sup = fleet.start()
    fleet.wait_stable([sup])
    replies = kafka.replies()
    s = kafka.session("dedupe")
    op0 = kafka.request(f"{s}/op0", s, "execute_program", program="rec", args={"op": 0})
    op1 = kafka.request(f"{s}/op1", s, "execute_program", program="rec", args={"op": 1})
    reqs = [*setup_requests(kafka, s), op0, op0, op1, op0]
    for r in reqs:
        kafka.send(r)
    kafka.flush()
    replies.wait_for(lambda recs: len(recs) >= len(reqs), 60, f"{len(reqs)} replies")
    byid = replies.by_id()
    assert len(byid[op0["id"]]) == 3, byid[op0["id"]]
    first = byid[op0["id"]][0]
    assert first["ok"] and first["result"] == 1, first
    assert all(r == first for r in byid[op0["id"]]), byid[op0["id"]]
    assert byid[op1["id"]][0]["result"] == 2, byid[op1["id"]]
    assert final_states(kafka, replies, [s])[s] == {"seq": [0, 1]}
    assert len(sup.events("request.duplicate")) == 2


# ---------------------------------------------------------------- fencing

PROGRAMS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")


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


# ---------------------------------------------------------------- undeliverable reply


@pytest.mark.timeout(120)
def test_undeliverable_reply_does_not_stall_the_partition(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 5 ("neither stalls its partition") for a request whose reply
    topic does not exist (the broker does not auto-create topics): the
    requests after it are answered, and the group's committed offset on the
    partition must move past it once the reply has failed for good (the
    reason goes to the DLQ)."""
    # fail the reply after 3 s instead of librdkafka's 30 s wait for the topic
    sup = fleet.start(kafka__topic__metadata__propagation__max__ms=3000)
    fleet.wait_stable([sup])
    replies = kafka.replies()
    s = kafka.session("lost")
    kafka.send(kafka.request(f"{s}/create", s, "create_session", args={"state": {}}))
    kafka.send(kafka.request(f"{s}/lost", s, "ping", reply_to=f"{kafka.prefix}.missing"))
    kafka.send(kafka.request(f"{s}/after", s, "get_session_state"))
    kafka.flush()
    replies.wait_ids([f"{s}/create", f"{s}/after"], 30)
    # never deliverable: it becomes a DLQ record with the reason, and is finished
    sup.wait_event("reply.undeliverable", timeout=30)
    p = kafka.delivered[0][1]
    end = max(off for t, part, off, _k, _v in kafka.delivered if part == p) + 1
    wait_until(
        lambda: kafka.committed([p]).get(p) == end,
        8,
        f"the committed offset of partition {p} to reach {end} "
        f"(it stays at the lost reply's offset)",
        interval=0.5,
    )


@pytest.mark.timeout(120)
def test_reply_too_large_for_kafka_is_a_typed_error(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantee 5 for a result bigger than a Kafka record may be (librdkafka's
    message.max.bytes, 1,000,000 by default; worker frames allow 16 MiB): the
    client gets `reply_too_large` instead of nothing, the call's state change
    is not saved (like any failed call), and the session and its partition go
    on."""
    sup = fleet.start(python__path=PROGRAMS_DIR)
    fleet.wait_stable([sup])
    replies = kafka.replies()
    s = kafka.session("big")
    grow = {"kind": "callable", "entry": "it_programs:grow"}
    setup = setup_requests(kafka, s, program="grow", spec=grow, state={"n": 7})
    for r in setup:
        kafka.send(r)
    for rid, size in ((f"{s}/big", 1_200_000), (f"{s}/small", 10)):
        kafka.send(kafka.request(rid, s, "execute_program", program="grow", args={"size": size}))
    kafka.send(kafka.request(f"{s}/state", s, "get_session_state"))
    kafka.flush()
    ids = [*(r["id"] for r in setup), f"{s}/big", f"{s}/small", f"{s}/state"]
    byid = replies.wait_ids(ids, 60)
    big = byid[f"{s}/big"][0]
    assert not big["ok"] and big["error"]["type"] == "reply_too_large", big
    assert "message.max.bytes" in big["error"]["message"]
    small = byid[f"{s}/small"][0]
    assert small["ok"] and len(small["result"]) == 10, small
    assert byid[f"{s}/state"][0]["result"] == {"n": 8}, "only the small call's change landed"
    assert sup.events("reply.too_large")


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


# ---------------------------------------------------------------- nothing lost on a new group


@pytest.mark.timeout(120)
def test_fresh_group_reads_requests_produced_before_it_joined(
    kafka: KafkaEnv, fleet: Fleet
) -> None:
    """Guarantee 2 for a brand-new group: requests produced before any
    supervisor joined are consumed (auto.offset.reset must be earliest;
    librdkafka's default, latest, would skip them silently)."""
    replies = kafka.replies()
    ids = [f"{kafka.session(i)}/early" for i in range(8)]
    for i, rid in enumerate(ids):
        kafka.send(kafka.request(rid, kafka.session(i), "ping"))
    kafka.flush()
    sup = fleet.start()  # with the daemon's own auto.offset.reset
    fleet.wait_stable([sup])
    replies.wait_ids(ids, 10)


def test_environment() -> None:
    """The binary under test (printed for the log)."""
    from conftest import ENV_MISSING, SUPERVISOR

    if ENV_MISSING:
        pytest.skip(ENV_MISSING)

    assert os.access(SUPERVISOR, os.X_OK), SUPERVISOR
    print(f"supervisor binary: {SUPERVISOR}")


# ---------------------------------------------------------------- an idle member stays in its group


@pytest.mark.timeout(120)
def test_idle_supervisor_keeps_its_partitions(kafka: KafkaEnv, fleet: Fleet) -> None:
    """A supervisor with nothing to do must still poll its consumer: otherwise
    librdkafka leaves the group after max.poll.interval.ms, every partition
    is revoked and reassigned, and requests wait out a rebalance. With the
    interval at 6 s, 9 idle seconds would show such a rejoin."""
    sup = fleet.start(kafka__session__timeout__ms=6000, kafka__max__poll__interval__ms=6000)
    fleet.wait_stable([sup])
    assigned = len(sup.events("kafka.assigned"))
    time.sleep(9)
    replies = kafka.replies()
    rid = f"{kafka.session(0)}/after-idle"
    kafka.send(kafka.request(rid, kafka.session(0), "ping"))
    kafka.flush()
    byid = replies.wait_ids([rid], 30)
    assert_all_ok(byid)
    assert not sup.has_event("kafka.revoking"), "the idle supervisor lost its partitions"
    assert len(sup.events("kafka.assigned")) == assigned, "the idle supervisor rejoined"

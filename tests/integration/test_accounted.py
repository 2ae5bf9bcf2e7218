"""Every reply accounted for, and durable when it says so: real supervisors
against a real Kafka and a real redis-server (docs/DESIGN.md guarantees 2, 5, 8).

  1. replies to a reply topic that does not exist: the first ones (librdkafka
     waits topic.metadata.propagation.max.ms for the topic to appear, then
     fails them in their delivery reports) and the later ones (refused at
     once by rd_kafka_producev) each get exactly one `reply_undeliverable`
     DLQ record naming the topic; the group's committed offset covers a
     request only once its DLQ record is in Kafka; a restarted supervisor
     consumes none of them again
  2. a DLQ record Kafka refuses (the DLQ topic deleted under the supervisor):
     logged as an error, the request's offset is not committed, and the
     request is consumed again once the topic is back
  3. a full producer queue: records wait for room, in order; every request is
     answered once, every counter exact
  4. redis-server killed with SIGKILL right after acknowledged writes, with
     deploy/redis/start.sh's defaults (appendonly yes, appendfsync always),
     restarted on its AOF, three times under a stream of counter executes:
     every acknowledged count is still there, every counter exact

Same isolation as the other integration tests (conftest.py).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import msgpack
import pytest
from confluent_kafka import TopicPartition

from conftest import (
    DLQ_TOPIC,
    Fleet,
    KafkaEnv,
    Record,
    RedisServer,
    Replies,
    TopicReader,
    decode,
    wait_until,
)

COUNTER = {"kind": "callable", "entry": "snakefleet.examples:counter"}


# ---------------------------------------------------------------- helpers


def setup_counters(kafka: KafkaEnv, replies: Replies, sessions: list[str]) -> None:
    """create_session + create_program `c` (the counter) for each session, answered ok."""
    ids = []
    for s in sessions:
        kafka.send(kafka.request(f"{s}/create", s, "create_session", args={"state": {}}))
        kafka.send(
            kafka.request(f"{s}/prog", s, "create_program", program="c", args={"spec": COUNTER})
        )
        ids += [f"{s}/create", f"{s}/prog"]
    kafka.flush()
    got = replies.wait_ids(ids, 60)
    bad = {r: got[r] for r in ids if not got[r][0]["ok"]}
    assert not bad, bad


def request_offsets(kafka: KafkaEnv) -> dict[str, tuple[int, int]]:
    """request id -> (partition, offset) of every request the test produced."""
    out: dict[str, tuple[int, int]] = {}
    for topic, p, off, _key, value in kafka.delivered:
        if topic != kafka.requests:
            continue
        try:
            m = decode(value)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            continue
        if isinstance(m, dict) and isinstance(m.get("id"), str):
            out[m["id"]] = (p, off)
    return out


def dlq_of(records: list[Record], requests_topic: str) -> dict[Any, list[dict[str, Any]]]:
    """The DLQ records about requests of `requests_topic`, by request id (the
    id decoded from the original bytes; None when they do not decode)."""
    out: dict[Any, list[dict[str, Any]]] = {}
    for r in records:
        m = r.msg
        if not isinstance(m, dict) or m.get("topic") != requests_topic:
            continue
        try:
            req = decode(m.get("value"))
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            req = None
        out.setdefault(req.get("id") if isinstance(req, dict) else None, []).append(m)
    return out


def read_to_end(reader: TopicReader, timeout: float = 15.0) -> None:
    """Reads every partition of the reader's topic up to its current high
    watermark: afterwards the reader holds every record Kafka had acknowledged
    when this was called. For a reader from the topic's start (a position is
    only known once a record of the partition was read)."""
    c = reader.c
    parts = sorted(c.list_topics(reader.topic, timeout=10).topics[reader.topic].partitions)
    his = {
        p: c.get_watermark_offsets(TopicPartition(reader.topic, p), timeout=10)[1] for p in parts
    }
    deadline = time.monotonic() + timeout
    while True:
        pos = {
            tp.partition: tp.offset
            for tp in c.position([TopicPartition(reader.topic, p) for p in parts])
        }
        if all(pos.get(p, -1) >= hi or hi == 0 for p, hi in his.items()):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{reader.topic} not read up to {his} within {timeout:.0f} s (at {pos})")
        reader.poll(0.2)


class Accounting:
    """Checks, each time it is asked, the invariant of guarantee 2 for a set of
    requests answered by DLQ records: the group's committed offset covers one
    only if its DLQ record is in Kafka (the committed offsets are read first,
    then the DLQ is read up to its end)."""

    def __init__(self, kafka: KafkaEnv, dlq: TopicReader):
        self.kafka = kafka
        self.dlq = dlq
        self.watched: dict[str, tuple[int, int]] = {}
        self.checks = 0
        self.checks_with_pending = 0  # checks that found some DLQ record not there yet

    def watch(self, ids: list[str]) -> None:
        at = request_offsets(self.kafka)
        for rid in ids:
            self.watched[rid] = at[rid]

    def check(self) -> tuple[dict[int, int], set[str]]:
        """Returns the committed offsets and the watched ids with a DLQ record."""
        parts = sorted({p for p, _ in self.watched.values()})
        committed = self.kafka.committed(parts)
        read_to_end(self.dlq)
        have = {rid for rid in dlq_of(self.dlq.records, self.kafka.requests) if rid}
        early = {
            rid: (p, off, committed[p])
            for rid, (p, off) in self.watched.items()
            if committed.get(p, -1) > off and rid not in have
        }
        assert not early, (
            "committed offsets cover requests whose DLQ record is not in Kafka "
            f"(id: partition, offset, committed): {early}"
        )
        self.checks += 1
        if set(self.watched) - have:
            self.checks_with_pending += 1
        return committed, have

    def settle(self, timeout: float) -> dict[int, int]:
        """Checks until every watched request has its DLQ record and the
        committed offsets cover them all."""
        deadline = time.monotonic() + timeout
        while True:
            committed, have = self.check()
            covered = all(committed.get(p, -1) > off for p, off in self.watched.values())
            if covered and have >= set(self.watched):
                return committed
            if time.monotonic() > deadline:
                missing = sorted(set(self.watched) - have)
                pytest.fail(
                    f"not settled within {timeout:.0f} s: {len(missing)} requests without a "
                    f"DLQ record (e.g. {missing[:3]}), committed {committed}"
                )
            time.sleep(0.5)


# ---------------------------------------------------------------- 1. missing reply topic


@pytest.mark.timeout(240)
def test_every_reply_to_a_missing_topic_gets_one_dlq_record(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Guarantees 2 and 5 for replies that cannot be delivered: requests of
    four sessions (three each, two executes and a ping) name a reply topic
    that does not exist. The first round is failed by librdkafka in delivery
    reports once it gives up waiting for the topic (the supervisor shortens
    that wait to 5 s); the second round, with librdkafka knowing the topic is
    missing, is refused at once by rd_kafka_producev — which used to log
    `reply.produce_failed`, send nothing and commit the offset: the reply was
    gone. Each request gets exactly one DLQ record (`reply_undeliverable`,
    the reason naming the topic), the committed offsets cover a request only
    once its DLQ record is in Kafka, the sessions go on meanwhile, and a
    supervisor started afterwards consumes none of them again."""
    sup = fleet.start()
    fleet.wait_stable([sup])
    dlq = kafka.reader(DLQ_TOPIC)  # from its start: see read_to_end
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(4)]
    setup_counters(kafka, replies, sessions)
    missing = f"{kafka.prefix}.missing"
    acct = Accounting(kafka, dlq)

    def send_round(tag: str) -> tuple[list[str], list[str]]:
        lost, answered = [], []
        for s in sessions:
            for k in range(2):  # two of one session, back to back
                rid = f"{s}/{tag}x{k}"
                kafka.send(
                    kafka.request(
                        rid, s, "execute_program", program="c", args={"by": 1}, reply_to=missing
                    )
                )
                lost.append(rid)
            kafka.send(kafka.request(f"{s}/{tag}p", s, "ping", reply_to=missing))
            lost.append(f"{s}/{tag}p")
            # the session goes on: answered to the test's reply topic
            kafka.send(kafka.request(f"{s}/{tag}ok", s, "get_session_state"))
            answered.append(f"{s}/{tag}ok")
        kafka.flush()
        acct.watch(lost)
        return lost, answered

    # Round 1: librdkafka does not know the topic yet.
    t0 = time.monotonic()
    lost1, ok1 = send_round("a")
    got = replies.wait_ids(ok1, 30)
    assert all(got[r][0]["ok"] for r in ok1), {r: got[r] for r in ok1}
    time.sleep(2.5)  # auto.commit.interval.ms is 1 s: a wrong commit would be visible now
    acct.check()
    acct.settle(60)
    first_failure = time.monotonic() - t0
    assert first_failure < 25, f"the first replies took {first_failure:.1f} s to be accounted for"
    assert acct.checks_with_pending >= 1, "round 1 was over before it could be watched"

    # Round 2: librdkafka knows the topic is missing and refuses the replies at once.
    lost2, ok2 = send_round("b")
    got = replies.wait_ids(ok2, 30)
    assert all(got[r][0]["ok"] for r in ok2), {r: got[r] for r in ok2}
    committed = acct.settle(30)

    stages = {e.get("stage") for e in sup.events("reply.undeliverable")}
    assert stages == {"delivery", "produce"}, f"reply.undeliverable stages: {stages}"
    assert not sup.events("reply.lost") and not sup.events("dlq.lost")

    by_id = dlq_of(dlq.records, kafka.requests)
    at = request_offsets(kafka)
    for rid in lost1 + lost2:
        recs = by_id.get(rid, [])
        assert len(recs) == 1, f"{rid}: {len(recs)} DLQ records: {recs}"
        m = recs[0]
        assert m["error_type"] == "reply_undeliverable", m
        assert f"'{missing}'" in m["reason"], m["reason"]
        assert (m["partition"], m["offset"]) == at[rid], (m, at[rid])
        assert m["supervisor"] == sup.id
    # the offsets went all the way: nothing held up its partition
    ends: dict[int, int] = {}
    for p, off in at.values():
        ends[p] = max(ends.get(p, 0), off + 1)
    assert all(committed[p] == end for p, end in ends.items() if p in committed), (committed, ends)

    # A supervisor started afterwards consumes none of them again.
    assert sup.stop() == 0
    sup2 = fleet.start()
    fleet.wait_stable([sup2])
    for s in sessions:
        kafka.send(kafka.request(f"{s}/after", s, "get_session_state"))
    kafka.flush()
    got = replies.wait_ids([f"{s}/after" for s in sessions], 60)
    for s in sessions:
        # every execute ran once: two per round
        assert got[f"{s}/after"][0]["result"] == {"n": 4}, (s, got[f"{s}/after"])
    time.sleep(1.0)
    read_to_end(dlq)
    again = {rid: len(v) for rid, v in dlq_of(dlq.records, kafka.requests).items() if len(v) != 1}
    assert not again, f"DLQ records again after the restart: {again}"
    assert not sup2.events("request.dlq"), sup2.events("request.dlq")
    print(
        f"{len(lost1) + len(lost2)} undeliverable replies, each one DLQ record; the first "
        f"accounted for after {first_failure:.1f} s; {acct.checks} commit/DLQ checks, "
        f"{acct.checks_with_pending} with DLQ records pending"
    )


# ---------------------------------------------------------------- 2. the DLQ refuses


@pytest.mark.timeout(240)
def test_a_dlq_record_kafka_refuses_leaves_the_offset_uncommitted(
    kafka: KafkaEnv, fleet: Fleet
) -> None:
    """The DLQ topic is deleted under a running supervisor: a request without
    a reply topic (garbage) and one whose reply topic is missing cannot be
    answered. Both records Kafka refuses (in a delivery report, later at once)
    are logged as errors (`dlq.lost`) and their offsets stay uncommitted,
    while later requests of the partition are answered. With the topic back,
    the next supervisor consumes them again and each gets its DLQ record,
    once."""
    dlq_topic = kafka.create_topic(f"{kafka.prefix}.dlq", 1)
    sup = fleet.start(topics__dlq=dlq_topic)
    fleet.wait_stable([sup])
    replies = kafka.replies()
    s = kafka.session("d")
    setup_counters(kafka, replies, [s])
    for f in kafka.admin.delete_topics([dlq_topic], operation_timeout=30).values():
        f.result(timeout=60)
    wait_until(
        lambda: dlq_topic not in kafka.admin.list_topics(timeout=10).topics,
        30,
        f"{dlq_topic} to be deleted",
    )
    missing = f"{kafka.prefix}.missing"
    garbage = [b"\xc1 not msgpack 1", b"\xc1 not msgpack 2"]
    lost: list[str] = []
    for k in range(2):  # the second round finds the DLQ topic known missing
        kafka.send(garbage[k], key=s)
        kafka.send(
            kafka.request(
                f"{s}/x{k}", s, "execute_program", program="c", args={"by": 1}, reply_to=missing
            )
        )
        lost.append(f"{s}/x{k}")
        kafka.send(kafka.request(f"{s}/ok{k}", s, "get_session_state"))
        kafka.flush()
        replies.wait_ids([f"{s}/ok{k}"], 60)
        # a reply to the missing topic is failed after 5 s, then its DLQ record
        sup.wait_event("dlq.lost", timeout=60, count=2 * (k + 1))
    events = sup.events("dlq.lost")
    assert {e.get("stage") for e in events} >= {"produce"}, events
    first = min(off for t, _p, off, _k, v in kafka.delivered if v == garbage[0])
    p = next(p for t, p, _o, _k, v in kafka.delivered if v == garbage[0])
    time.sleep(2.5)  # auto-commit runs every second: a wrong commit would be visible now
    c = kafka.committed([p])[p]
    assert c <= first, f"partition {p} committed up to {c}, past the unanswered offset {first}"

    # The topic back, a new owner: each request consumed again, each one DLQ record.
    assert sup.stop() == 0
    kafka.create_topic(dlq_topic, 1)
    kafka.topics_made.remove(dlq_topic)  # listed once, for the deletion at the end
    dlq = kafka.reader(dlq_topic, from_end=False)
    sup2 = fleet.start(topics__dlq=dlq_topic)
    fleet.wait_stable([sup2])
    dlq.wait_for(lambda rs: len({r.value for r in rs}) >= 4, 60, "4 DLQ records")
    end = max(off for t, part, off, _k, _v in kafka.delivered if part == p) + 1
    wait_until(lambda: kafka.committed([p])[p] == end, 30, f"partition {p} committed to {end}")
    read_to_end(dlq)
    recs = [r.msg for r in dlq.records]
    assert len(recs) == 4, recs
    for g in garbage:
        assert sum(m["value"] == g for m in recs) == 1, recs
    by_id = dlq_of(dlq.records, kafka.requests)
    for rid in lost:
        assert len(by_id.get(rid, [])) == 1, by_id
        assert by_id[rid][0]["error_type"] == "reply_undeliverable", by_id[rid]
    # each execute ran once, the redelivered ones answered from the dedupe cache
    kafka.send(kafka.request(f"{s}/final", s, "get_session_state"))
    kafka.flush()
    assert replies.wait_ids([f"{s}/final"], 30)[f"{s}/final"][0]["result"] == {"n": 2}


# ---------------------------------------------------------------- 3. a full producer queue


@pytest.mark.timeout(180)
def test_a_full_producer_queue_delays_replies_and_loses_none(kafka: KafkaEnv, fleet: Fleet) -> None:
    """The producer's queue holds 4 records (queue.buffering.max.messages), so
    a burst of requests finds it full again and again (RD_KAFKA_RESP_ERR__
    QUEUE_FULL at once): transient, not a reason to drop or DLQ a reply. Every
    request is answered once, each session's replies come in order, every
    counter is exact, nothing goes to the DLQ, and the offsets are committed."""
    sup = fleet.start(kafka__queue__buffering__max__messages=4)
    fleet.wait_stable([sup])
    dlq = kafka.reader(DLQ_TOPIC)  # from its start: see read_to_end
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(10)]
    setup_counters(kafka, replies, sessions)
    n = 20
    ids = []
    for k in range(n):
        for s in sessions:
            kafka.send(kafka.request(f"{s}/i{k}", s, "execute_program", program="c", args={}))
            ids.append(f"{s}/i{k}")
    kafka.flush()
    byid = replies.wait_ids(ids, 90)
    assert sup.events("kafka.queue_full"), "the producer queue was never full"
    dup = {rid: v for rid, v in byid.items() if rid in ids and len(v) != 1}
    assert not dup, dup
    for s in sessions:
        seq = [
            r.msg["result"]
            for r in replies.records
            if isinstance(r.msg, dict) and r.msg.get("session") == s and "/i" in r.msg["id"]
        ]
        assert seq == list(range(1, n + 1)), f"session {s}: results in reply order {seq}"
    read_to_end(dlq)
    assert not dlq_of(dlq.records, kafka.requests)
    at = request_offsets(kafka)
    ends: dict[int, int] = {}
    for p, off in at.values():
        ends[p] = max(ends.get(p, 0), off + 1)
    wait_until(
        lambda: kafka.committed(sorted(ends)) == ends, 20, f"the committed offsets to be {ends}"
    )


# ---------------------------------------------------------------- 4. Redis SIGKILLed


@pytest.mark.timeout(180)
def test_acknowledged_counts_survive_redis_sigkill(
    own_redis: RedisServer, kafka: KafkaEnv, fleet: Fleet
) -> None:
    """Guarantee 8 (docs/DESIGN.md), "durable when acknowledged", with the
    shipped deploy/redis/start.sh (appendonly yes, appendfsync always): a
    stream of counter executes for 16 sessions; as soon as replies of a
    round have been acknowledged, redis-server is killed with SIGKILL (no
    shutdown, no final AOF write) and started again on its dir, three rounds.
    Every session's counter is at least the highest count a reply
    acknowledged for it — nothing acknowledged lost — and, with the dedupe,
    exactly its number of executes answered ok once everything is answered;
    the ok results of a session, in request order, are 1, 2, 3, ... (an
    execute answered `unavailable` changed nothing; they are counted and
    reported). It fails at once with appendonly no (the sessions are gone
    after the first kill). A SIGKILL of the process does not tell always
    from everysec: the AOF is written before the replies either way, and the
    kernel keeps what was written; everysec loses acknowledged writes when
    the machine dies, or when a slow fsync held the writes back."""
    own_redis.start()
    assert own_redis.cli("CONFIG", "GET", "appendfsync").split()[-1] == "always"
    sup = fleet.start(redis__url=own_redis.url, redis__retry_timeout=20000)
    fleet.wait_stable([sup])
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(16)]
    setup_counters(kafka, replies, sessions)
    rounds, per_round = 3, 40
    ids: list[str] = []
    acked: dict[str, int] = {s: 0 for s in sessions}  # highest count a reply acknowledged
    seen = 0

    def take_replies(current: set[str]) -> int:
        """Reads what replies there are; returns how many new ones answer `current`."""
        nonlocal seen
        replies.poll(0.05)
        new = replies.records[seen:]
        seen = len(replies.records)
        n = 0
        for r in new:
            m = r.msg
            if isinstance(m, dict) and m.get("ok") and "/r" in m.get("id", ""):
                acked[m["session"]] = max(acked[m["session"]], int(m["result"]))
                n += m["id"] in current
        return n

    kills = []
    for rnd in range(rounds):
        mine = []
        for k in range(per_round):
            for s in sessions:
                rid = f"{s}/r{rnd}i{k}"
                kafka.send(kafka.request(rid, s, "execute_program", program="c", args={}))
                mine.append(rid)
        kafka.producer.flush(30)
        ids += mine
        # as soon as some of this round are acknowledged: SIGKILL, mid-stream
        got = 0
        deadline = time.monotonic() + 60
        current = set(mine)
        while got < 60:
            assert time.monotonic() < deadline, f"round {rnd}: no replies within 60 s"
            got += take_replies(current)
        pid = own_redis.pid
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        wait_until(lambda pid=pid: zombie_or_gone(pid), 10, f"redis-server {pid} to die")
        snapshot = dict(acked)  # a lower bound: more may be acknowledged, unread
        time.sleep(0.5)
        own_redis.start()  # same dir and port: it loads its AOF
        kills.append((snapshot, time.monotonic() - t_kill))
        # What was acknowledged before the kill is in the restarted Redis. (The
        # supervisor writes again soon, but counters only grow; the exact checks
        # at the end catch a loss the supervisor has written over since.)
        states = redis_counters(own_redis, sessions)
        lost = {s: (states[s], snapshot[s]) for s in sessions if states[s] < snapshot[s]}
        assert not lost, f"round {rnd}: acknowledged counts lost (in Redis, acknowledged): {lost}"

    byid = replies.wait_ids(ids, 120)
    firsts = {rid: byid[rid][0] for rid in ids}
    for rid in ids:
        assert all(r == firsts[rid] for r in byid[rid][1:]), f"{rid} answered differently"
    errors = {rid: r for rid, r in firsts.items() if not r["ok"]}
    other = {rid: r["error"] for rid, r in errors.items() if r["error"]["type"] != "unavailable"}
    assert not other, f"errors other than unavailable: {list(other.items())[:3]}"
    final: dict[str, Any] = {}
    for s in sessions:
        kafka.send(kafka.request(f"{s}/final", s, "get_session_state"))
    kafka.flush()
    got_final = replies.wait_ids([f"{s}/final" for s in sessions], 60)
    for s in sessions:
        rep = got_final[f"{s}/final"][-1]
        assert rep["ok"], rep
        final[s] = rep["result"].get("n", 0)
    for s in sessions:
        mine = [firsts[f"{s}/r{rnd}i{k}"] for rnd in range(rounds) for k in range(per_round)]
        results = [r["result"] for r in mine if r["ok"]]
        assert final[s] >= max(results), (
            f"session {s}: counter {final[s]}, acknowledged {max(results)}"
        )
        assert results == list(range(1, len(results) + 1)), f"session {s}: ok results {results}"
        assert final[s] == len(results), (
            f"session {s}: counter {final[s]}, {len(results)} executes answered ok, "
            f"{len(mine) - len(results)} unavailable"
        )
    print(
        f"{len(ids)} executes over {rounds} SIGKILLs of redis-server (down "
        f"{', '.join(f'{d:.1f}' for _, d in kills)} s); answered unavailable: {len(errors)}; "
        f"acknowledged before each kill (sum of counters): "
        f"{[sum(snap.values()) for snap, _ in kills]}"
    )


def redis_counters(redis: RedisServer, sessions: list[str]) -> dict[str, int]:
    """Each session's counter (state["n"]) as Redis holds it now, read in Redis
    (the state is a msgpack map at sf:{<session>}:state); -1 for no state."""
    script = (
        "local out = {} for i, k in ipairs(KEYS) do local v = redis.call('GET', k) "
        "if v then out[i] = tonumber(cmsgpack.unpack(v)['n'] or 0) else out[i] = -1 end end "
        "return out"
    )
    keys = [f"sf:{{{s}}}:state" for s in sessions]
    vals = redis.cli("EVAL", script, str(len(keys)), *keys).split()
    assert len(vals) == len(sessions), vals
    return {s: int(v) for s, v in zip(sessions, vals)}


def zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].split(" ", 1)[0] == "Z"

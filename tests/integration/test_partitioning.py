"""Wrong partition detected (docs/DESIGN.md, guarantee 4): a producer on
librdkafka's default partitioner (CRC32, `consistent_random`) puts a session's
requests on other partitions than the fleet's murmur2, so two supervisors
could run one session at once and lose updates. Each supervisor hashes every
request's key over the topic's partition count and refuses one that came on
the wrong partition (`wrong_partition`, not run), or with
supervisor.partition_check = warn runs it and counts it.

Two supervisors in one group, a real Kafka and a real Redis (conftest.py);
two producers write counter executes for the same 16 sessions, one with
partitioner=murmur2_random and one with consistent_random.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import NewPartitions

from conftest import TELEMETRY_TOPIC, Fleet, KafkaEnv, Replies, Supervisor, TopicReader, wait_until
from helpers import http_base, http_get, murmur2, murmur2_partition, parse_metrics

COUNTER = {"spec": {"kind": "callable", "entry": "snakefleet.examples:counter"}}
PARTITIONS = 8  # the test's request topic (conftest)
NSESSIONS, NROUNDS = 16, 6


def crc32_partition(key: str) -> int:
    return zlib.crc32(key.encode()) % PARTITIONS


def test_the_reference_hashes() -> None:
    """The helpers above against Kafka's UtilsTest.testMurmur2 and the CRC-32 check value."""
    assert murmur2(b"21") == -973932308 & 0xFFFFFFFF
    assert murmur2(b"foobar") == -790332482 & 0xFFFFFFFF
    assert murmur2(b"abc") == 479470107
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971 & 0xFFFFFFFF
    assert zlib.crc32(b"123456789") == 0xCBF43926


def pick_sessions(kafka: KafkaEnv) -> list[str]:
    """16 sessions: 4 whose CRC32 partition happens to be their murmur2 one
    (the CRC32 producer's requests for them are correctly routed) and 12
    whose is not."""
    same, other = [], []
    for i in range(2000):
        s = kafka.session(i)
        (same if crc32_partition(s) == murmur2_partition(s) else other).append(s)
        if len(same) >= 4 and len(other) >= NSESSIONS - 4:
            return same[:4] + other[: NSESSIONS - 4]
    raise AssertionError("no session mix found")


class CrcProducer:
    """A confluent-kafka producer left at librdkafka's keyed default,
    partitioner=consistent_random (CRC32); remembers where each request went."""

    def __init__(self, kafka: KafkaEnv):
        self.kafka = kafka
        self.p = Producer(
            {
                "bootstrap.servers": kafka.bootstrap,
                "partitioner": "consistent_random",
                "enable.idempotence": True,
                "linger.ms": 5,
            }
        )
        self.partition_of: dict[str, int] = {}

    def send(self, req: dict[str, Any]) -> None:
        def delivered(err: Any, msg: Any, rid: str = req["id"]) -> None:
            if err is not None:
                raise KafkaException(err)
            self.partition_of[rid] = msg.partition()

        value = msgpack.packb(req, use_bin_type=True)
        self.p.produce(self.kafka.requests, key=req["session"], value=value, on_delivery=delivered)
        self.p.poll(0)

    def flush(self) -> None:
        assert self.p.flush(30) == 0, "requests not delivered"


def setup_sessions(kafka: KafkaEnv, replies: Replies, sessions: list[str]) -> dict[str, int]:
    """create_session + create_program (the counter) for every session through
    the murmur2 producer; returns each session's partition as Kafka took it."""
    ids = []
    for i, s in enumerate(sessions):
        kafka.send(kafka.request(f"{i}c", s, "create_session", args={"state": {}}))
        kafka.send(kafka.request(f"{i}p", s, "create_program", program="c", args=COUNTER))
        ids += [f"{i}c", f"{i}p"]
    kafka.flush()
    got = replies.wait_ids(ids, 90)
    bad = {r: got[r] for r in ids if not got[r][0]["ok"]}
    assert not bad, bad
    home = {}
    for topic, p, _off, key, _v in kafka.delivered:
        if topic == kafka.requests:
            home[key.decode()] = p
    assert home == {s: murmur2_partition(s) for s in sessions}, "murmur2_random is Java's murmur2"
    return home


def produce_executes(
    kafka: KafkaEnv, crc: CrcProducer, sessions: list[str]
) -> tuple[list[str], list[str]]:
    """NROUNDS executes per session, even rounds through the murmur2 producer,
    odd ones through the CRC32 one. Returns (murmur2 ids, CRC32 ids)."""
    via_murmur, via_crc = [], []
    for k in range(NROUNDS):
        for i, s in enumerate(sessions):
            req = kafka.request(f"{i}x{k}", s, "execute_program", program="c", args={})
            if k % 2 == 0:
                kafka.send(req)
                via_murmur.append(req["id"])
            else:
                crc.send(req)
                via_crc.append(req["id"])
    kafka.flush()
    crc.flush()
    return via_murmur, via_crc


def session_of(rid: str, sessions: list[str]) -> str:
    return sessions[int(rid.split("x")[0])]


def telemetry_total(tel: TopicReader, sups: list[Supervisor], field: str) -> int | None:
    """The sum of `field` over each supervisor's newest snapshot (None until all sent one)."""
    tel.poll(0.5)
    newest: dict[bytes, Any] = {}
    for r in tel.records:
        if isinstance(r.msg, dict) and r.key in {s.id.encode() for s in sups}:
            newest[r.key] = r.msg
    if len(newest) < len(sups):
        return None
    return sum(int(m.get(field, 0)) for m in newest.values())


def metrics_total(sups: list[Supervisor]) -> float:
    return sum(
        parse_metrics(http_get(f"{http_base(s)}/metrics")[2])["snakefleet_wrong_partition_total"]
        for s in sups
    )


def wait_total(what: str, get: Callable[[], Any], want: Callable[[Any], bool]) -> Any:
    seen: list[Any] = [None]

    def ok() -> bool:
        seen[0] = get()
        return seen[0] is not None and want(seen[0])

    wait_until(ok, 30, f"{what} (last: {seen[0]})", interval=0.5)
    return seen[0]


def start_pair(fleet: Fleet, **opts: Any) -> list[Supervisor]:
    a = fleet.start(supervisor__http_listen="127.0.0.1:0", **opts)
    b = fleet.start(supervisor__http_listen="127.0.0.1:0", **opts)
    fleet.wait_stable([a, b])
    return [a, b]


@pytest.mark.timeout(240)
def test_a_misrouted_request_is_refused_and_no_update_is_lost(
    kafka: KafkaEnv, fleet: Fleet
) -> None:
    """partition_check = refuse (the default): every request the CRC32
    producer put on another partition than its key's murmur2 one is answered
    wrong_partition, naming both partitions and the producer setting, and is
    not run; each counter ends at exactly the number of correctly routed
    executes of its session. The refusals are counted in telemetry, /metrics
    and /health."""
    tel = kafka.reader(TELEMETRY_TOPIC, from_end=True)
    sups = start_pair(fleet)
    replies = kafka.replies()
    sessions = pick_sessions(kafka)
    home = setup_sessions(kafka, replies, sessions)
    crc = CrcProducer(kafka)
    via_murmur, via_crc = produce_executes(kafka, crc, sessions)
    for rid, p in crc.partition_of.items():
        assert p == crc32_partition(session_of(rid, sessions)), "consistent_random is CRC32"
    misrouted = {r for r in via_crc if crc.partition_of[r] != home[session_of(r, sessions)]}
    routed = [r for r in via_murmur + via_crc if r not in misrouted]
    assert len(misrouted) == 12 * (NROUNDS // 2), len(misrouted)
    byid = replies.wait_ids(via_murmur + via_crc, 120)

    dup = {r: v for r, v in byid.items() if r in set(via_murmur + via_crc) and len(v) != 1}
    assert not dup, f"answered more than once: {dup}"
    for rid in misrouted:
        rep = byid[rid][0]
        s = session_of(rid, sessions)
        err = rep.get("error") or {}
        assert not rep["ok"] and err.get("type") == "wrong_partition", rep
        assert rep["session"] == s, rep
        msg = err["message"]
        for part in (f"partition {crc.partition_of[rid]} of", f"partition {home[s]} of"):
            assert part in msg, (part, msg)
        assert "murmur2_random" in msg and "partitioner=murmur2_random" in msg, msg
    for rid in routed:
        assert byid[rid][0]["ok"], byid[rid][0]

    # Not run: each counter counted exactly its session's correctly routed executes.
    expected = {s: 0 for s in sessions}
    results: dict[str, list[int]] = {s: [] for s in sessions}
    for rid in routed:
        s = session_of(rid, sessions)
        expected[s] += 1
        results[s].append(byid[rid][0]["result"])
    for s in sessions[:4]:
        assert expected[s] == NROUNDS, "all 6 of a same-partition session's executes run"
    for s in sessions[4:]:
        assert expected[s] == NROUNDS // 2
    for s in sessions:
        assert sorted(results[s]) == list(range(1, expected[s] + 1)), (s, results[s])
    state_ids = {f"{i}g": s for i, s in enumerate(sessions)}
    for rid, s in state_ids.items():
        kafka.send(kafka.request(rid, s, "get_session_state"))
    kafka.flush()
    states = replies.wait_ids(list(state_ids), 60)
    for rid, s in state_ids.items():
        rep = states[rid][0]
        assert rep["ok"] and rep["result"] == {"n": expected[s]}, (s, expected[s], rep)

    total = wait_total(
        "telemetry wrong_partition to count every refusal",
        lambda: telemetry_total(tel, sups, "wrong_partition"),
        lambda v: v >= len(misrouted),
    )
    assert total == len(misrouted), total
    assert metrics_total(sups) == len(misrouted)
    health = [json.loads(http_get(f"{http_base(s)}/health")[2]) for s in sups]
    assert sum(h["wrong_partition"] for h in health) == len(misrouted), health
    refused = [e for s in sups for e in s.events("request.wrong_partition")]
    assert refused and all(e["action"] == "refused" for e in refused), refused
    # once a minute per partition: at most one line for each partition the CRC32 producer used
    assert len(refused) <= len({crc.partition_of[r] for r in misrouted}), refused


@pytest.mark.timeout(240)
def test_with_warn_a_misrouted_request_is_run_and_counted(kafka: KafkaEnv, fleet: Fleet) -> None:
    """partition_check = warn (for a topic whose partition count was just
    raised): the misrouted requests are run, logged (request.wrong_partition,
    action=processed, with a count) and counted in telemetry and /metrics.
    The counters themselves are not asserted: two supervisors do run one
    session at once here."""
    tel = kafka.reader(TELEMETRY_TOPIC, from_end=True)
    sups = start_pair(fleet, supervisor__partition_check="warn")
    replies = kafka.replies()
    sessions = pick_sessions(kafka)
    home = setup_sessions(kafka, replies, sessions)
    crc = CrcProducer(kafka)
    via_murmur, via_crc = produce_executes(kafka, crc, sessions)
    misrouted = {r for r in via_crc if crc.partition_of[r] != home[session_of(r, sessions)]}
    byid = replies.wait_ids(via_murmur + via_crc, 120)

    kinds = [(byid[r][0].get("error") or {}).get("type") for r in via_murmur + via_crc]
    assert "wrong_partition" not in kinds, kinds
    assert any(byid[r][0]["ok"] for r in misrouted), "misrouted requests were run"
    total = wait_total(
        "telemetry wrong_partition to count every misrouted request",
        lambda: telemetry_total(tel, sups, "wrong_partition"),
        lambda v: v >= len(misrouted),
    )
    assert total >= len(misrouted), total
    assert metrics_total(sups) >= len(misrouted)
    warned = [e for s in sups for e in s.events("request.wrong_partition")]
    assert warned and all(e["action"] == "processed" for e in warned), warned
    assert all(int(e["count"]) >= 1 for e in warned), warned


@pytest.mark.timeout(180)
def test_partitions_added_to_the_topic_are_seen(kafka: KafkaEnv, fleet: Fleet) -> None:
    """The partition count is read again after it grows (at the rebalance it
    causes, and every telemetry.interval): requests a fresh murmur2 producer
    hashes over the new count are run, not refused."""
    sup = fleet.start(kafka__topic__metadata__refresh__interval__ms=1000)
    fleet.wait_stable([sup])
    fs = kafka.admin.create_partitions([NewPartitions(kafka.requests, 12)], operation_timeout=30)
    for f in fs.values():
        f.result(timeout=60)
    wait_until(
        lambda: any(e.get("partitions") == "12" for e in sup.events("kafka.partition_count")),
        30,
        "the supervisor to see 12 partitions",
    )
    assert {e["previous"] for e in sup.events("kafka.partition_count")} == {"0", "8"}
    fleet.wait_stable([sup], partitions=12)
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
    )
    replies = kafka.replies()
    ids: list[str] = []
    where: dict[str, int] = {}
    for i in range(24):
        s = kafka.session(i)
        rid = f"{i}p"

        def delivered(err: Any, msg: Any, rid: str = rid) -> None:
            assert err is None, err
            where[rid] = msg.partition()

        req = kafka.request(rid, s, "ping")
        producer.produce(
            kafka.requests,
            key=s,
            value=msgpack.packb(req, use_bin_type=True),
            on_delivery=delivered,
        )
        ids.append(rid)
    assert producer.flush(30) == 0
    assert max(where.values()) >= 8, f"no request on a new partition: {where}"
    byid = replies.wait_ids(ids, 60)
    assert all(byid[r][0]["ok"] for r in ids), {r: byid[r] for r in ids if not byid[r][0]["ok"]}
    assert not sup.events("request.wrong_partition")

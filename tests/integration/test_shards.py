"""The session store sharded by Kafka partition over independent Redis
nodes (redis.url lists them): partition N of the request topic keeps its
sessions, lease and reply records on shard N % count, so every script call
touches one node. Two redis-servers of the test's own, two supervisors, one
SIGKILLed mid-load and replaced: every increment is answered once, every
counter exact, and each session's keys (and each partition's lease) are on
its partition's shard and nowhere else.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Fleet, KafkaEnv, RedisServer
from helpers import (
    PROGRAMS_DIR,
    SLOW_COUNTER_SPEC,
    check_counters,
    produce_increments,
    setup_session,
)

PARTITIONS = 8


def murmur2_partition(key: str, partitions: int) -> int:
    """The Java client's default partition of a key (librdkafka's murmur2_random)."""
    data = key.encode()
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(data)) & 0xFFFFFFFF
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = data[4 * n4 :]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if rest:
        h ^= rest[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


@pytest.fixture
def shards(tmp_path: Path) -> Iterator[list[RedisServer]]:
    servers = [RedisServer(tmp_path / f"shard{i}") for i in range(2)]
    try:
        for s in servers:
            s.start()
        yield servers
    finally:
        for s in servers:
            if s.started:
                s.stop()


@pytest.mark.timeout(240)
def test_sessions_live_on_their_partitions_shard_and_survive_a_takeover(
    kafka: KafkaEnv, fleet: Fleet, shards: list[RedisServer]
) -> None:
    nsess, nops, before = 24, 30, 10
    opts = {
        "python__path": PROGRAMS_DIR,
        "redis__url": ",".join(s.url for s in shards),
        "kafka__session.timeout.ms": 6000,
        "kafka__heartbeat.interval.ms": 500,
    }
    sup1 = fleet.start(**opts)
    sup2 = fleet.start(**opts)
    fleet.wait_stable([sup1, sup2], PARTITIONS)
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(nsess)]
    ids: list[str] = []
    for s in sessions:
        ids += setup_session(kafka, s, "ctr", SLOW_COUNTER_SPEC)
    for k in range(before):
        ids += produce_increments(kafka, sessions, k)
    kafka.flush()
    replies.wait_ids(ids[: 2 * nsess + 3 * nsess], 60)

    sup1.signal(signal.SIGKILL)  # its runs in flight are redelivered to the others
    t_kill = time.monotonic()
    for k in range(before, nops):
        ids += produce_increments(kafka, sessions, k)
    kafka.flush()
    sup3 = fleet.start(**opts)
    replies.wait_ids(ids, 150)
    check_counters(kafka, replies, sessions, nops)
    print(f"everything answered {time.monotonic() - t_kill:.1f} s after the SIGKILL")

    placed = {0: 0, 1: 0}
    for s in sessions:
        want = murmur2_partition(s, PARTITIONS) % len(shards)
        held = [
            i
            for i, srv in enumerate(shards)
            if srv.cli("EXISTS", f"sf:{{{s}}}:state").strip() == "1"
        ]
        assert held == [want], f"session {s} (shard {want}) has its state on shards {held}"
        placed[want] += 1
    assert all(placed.values()), f"every session on one shard: {placed}"
    for i, srv in enumerate(shards):
        keys = srv.cli("KEYS", "sf:epoch:*").split()
        parts = sorted(int(k.rsplit("/", 1)[1]) for k in keys)
        assert parts and all(p % len(shards) == i for p in parts), (
            f"shard {i} holds the leases of partitions {parts}"
        )
    assert sup3.alive() and sup2.alive()

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
    check_counters,
    counters_under_way,
    murmur2_partition,
    produce_increments,
)

PARTITIONS = 8


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
    sessions, ids = counters_under_way(kafka, replies, nsess, before, 3)

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

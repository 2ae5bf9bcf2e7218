"""Guarantee 2 of docs/DESIGN.md, nothing lost: every consumed request is
answered before its offset can be committed, and a supervisor that dies (even
by SIGKILL) or gives partitions up in a rebalance loses no request: the next
owner consumes again from the last commit. Replies may then repeat (from the
dedupe cache, guarantee 3); every op still takes effect once, in order
(check_sessions, check_replayed_sequence). Also the group membership this
rests on: a member joining under load (eager and cooperative-sticky), a static
member restarting without a rebalance, a new group reading what was produced
before it joined, an idle member keeping its partitions.

Replies Kafka refuses are in test_accounted.py and test_bad_input.py, exact
counters after a SIGKILL in test_effectively_once.py.

Same isolation as the other integration tests (conftest.py): every test has its
own request topic, reply topic, consumer group and session ids, and stops every
process it starts.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from typing import Any

import pytest

from conftest import Fleet, KafkaEnv, live_workers, wait_until
from helpers import (
    assert_all_ok,
    check_replayed_sequence,
    check_sessions,
    disrupt_mid_burst,
    produce_round,
    produce_setup,
    setup_requests,
)


def test_check_replayed_sequence_helper() -> None:
    ok = [[0, 1, 2, 3], [0, 1, 2, 1, 2, 3], [0, 1, 0, 1, 2, 3], [0, 1, 2, 3, 3]]
    bad = [[], [1, 2, 3], [0, 2, 3], [0, 1, 3, 2, 3], [0, 1, 2], [0, 1, 2, 3, 1]]
    for s in ok:
        assert check_replayed_sequence(s, 4) is None, s
    for s in bad:
        assert check_replayed_sequence(s, 4) is not None, s


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
    # checkout_timeout + 5 s (daemon.c, sf_daemon_new), 70 s with the defaults.
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
    are dropped (sessions.c purge_revoked) and only the contiguous finished
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

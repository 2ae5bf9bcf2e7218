"""Guarantees 1-4 of docs/DESIGN.md (order, nothing lost, effectively once,
fencing) across hosts, under network faults, process faults and restarts of
the broker and of Redis. Each scenario runs the checker's workload through a
fleet of three supervisors, each in a network namespace of its own, and
fails on any lost request, double effect, order violation or reply that
contradicts the state (harness.py, Report.ok). Every report is printed.
"""

from __future__ import annotations

import os
import time

from conftest import Fleet
from harness import Report, wait_for

SEED = int(os.environ.get("NEMESIS_SEED", "1"))
DURATION = float(os.environ.get("NEMESIS_DURATION", "60"))  # tests/soak.sh: 1800


def started(fleet: Fleet) -> None:
    wait_for(lambda: all(s.events("kafka.assigned") for s in fleet.sups), 90, "every host assigned")
    fleet.checker.setup()


def judged(fleet: Fleet, what: str) -> Report:
    report = fleet.checker.finish()
    print(f"{what}:\n{report.text()}")
    for line in fleet.nemesis.log:
        print(f"  nemesis {line}")
    assert report.ok(), report.text()
    return report


def test_three_hosts_under_a_random_nemesis(fleet: Fleet) -> None:
    """NEMESIS_DURATION (60) s of load with a fault every 4-10 s, drawn from
    every kind the nemesis has (NEMESIS_SEED replays a schedule)."""
    started(fleet)
    fleet.nemesis.schedule(SEED)
    fleet.checker.run(DURATION, fleet.nemesis)
    judged(fleet, f"random nemesis, seed {SEED}")


def test_a_host_cut_from_kafka_but_not_from_redis_is_fenced(fleet: Fleet) -> None:
    """Host 1 loses Kafka for 15 s (past the 6 s session timeout) and keeps
    Redis: the group gives its partitions to the others, who take new
    leases; whatever host 1 still runs from what it had fetched is a zombie's
    write, refused FENCED. Nothing is lost or applied twice."""
    started(fleet)
    fleet.checker.run(5)
    fleet.nemesis.inject("cut_kafka", 1, 15)
    fleet.checker.run(20, fleet.nemesis)
    judged(fleet, "host 1 cut from Kafka")
    others = [e for s in fleet.sups[1:] for e in s.events("lease.taken") if "epoch=1 " not in e]
    assert others, "no other host took a newer lease on host 1's partitions"
    print(f"host 1 fenced writes: {len(fleet.sups[0].events('store.fenced'))}")


def test_a_host_cut_from_redis_pauses_and_answers_nothing_wrong(fleet: Fleet) -> None:
    """Host 1 loses Redis for 25 s and keeps Kafka: within redis.link_timeout
    (3 s) it sees the link gone and pauses, answering nothing it could not
    store; after redis.leave_after (10 s) it leaves the group, so the others
    serve its partitions while the cut lasts, and it joins again when Redis
    is back. Its sessions are answered again long before the cut ends."""
    started(fleet)
    fleet.checker.run(5)
    fleet.nemesis.inject("cut_redis", 1, 25)
    fleet.checker.run(30, fleet.nemesis)
    report = judged(fleet, "host 1 cut from Redis")
    h1 = fleet.sups[0]
    assert h1.events("store.down"), "host 1 never saw Redis go"
    assert h1.events("supervisor.leaving_group"), "host 1 never gave its partitions up"
    assert h1.events("supervisor.rejoining"), "host 1 never joined again"
    assert not report.errors, f"host 1 answered errors: {dict(report.errors)}"
    rec = report.recovery[0]["recovered_s"]
    assert rec < 24, f"host 1's sessions waited {rec} s, the whole cut"


def test_a_broker_restart_under_load(fleet: Fleet) -> None:
    started(fleet)
    fleet.checker.run(5)
    fleet.nemesis.inject("broker_restart", 0, 2)
    fleet.checker.run(20, fleet.nemesis)
    judged(fleet, "broker restarted on its data")


def test_a_host_stopped_past_the_session_timeout_wakes_as_a_zombie(fleet: Fleet) -> None:
    """SIGSTOP host 1's supervisor for 12 s (past the 6 s session timeout),
    then SIGCONT: it wakes believing it owns partitions the others now hold;
    its writes are fenced and it rejoins."""
    started(fleet)
    fleet.checker.run(5)
    fleet.nemesis.inject("sigstop", 1, 12)
    fleet.checker.run(20, fleet.nemesis)
    time.sleep(1)
    judged(fleet, "host 1 stopped past the session timeout")

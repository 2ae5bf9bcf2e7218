"""Guarantee 7 of docs/DESIGN.md, graceful: SIGTERM under load stops consuming,
drains what the supervisor holds, commits, leaves the group and exits 0 within
its shutdown timeout, also with the broker gone; no worker outlives its
supervisor.

The orphan rule after a SIGKILL is shown by test_nothing_lost.py, SIGHUP by
test_operator_view.py.

Same isolation as the other integration tests (conftest.py): every test has its
own request topic, reply topic, consumer group and session ids, and stops every
process it starts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from typing import Any

import pytest

from conftest import ROOT, Fleet, KafkaEnv, live_workers, wait_until
from helpers import PROGRAMS_DIR, assert_all_ok, check_sessions, disrupt_mid_burst, produce_round


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

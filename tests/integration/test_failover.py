"""Guarantee 8 of docs/DESIGN.md across a Redis failover, through Kafka: a
primary, one replica and three Sentinels on loopback (Debian's redis-server,
run as `--sentinel` for the sentinels), the supervisor finding the primary
through them (redis.sentinels) and waiting for the replica on every write
(redis.min_replicas = 1). The primary is SIGKILLed under load; the fleet
pauses, follows the new primary and goes on, and every request is counted:
no lost effect, no double effect, every counter exact.

Same isolation as the other integration tests (conftest.py); the Redis
processes are the test's own and are stopped at its end whatever happens.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Fleet, KafkaEnv, free_port, wait_until
from helpers import (
    PROGRAMS_DIR,
    SLOW_COUNTER_SPEC,
    check_counters,
    produce_increments,
    setup_session,
)

MASTER = "sfmaster"


def cli(port: int, *args: str) -> str:
    r = subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10
    )
    return r.stdout.strip()


class Replicated:
    """A primary, a replica and three sentinels, each a redis-server of its
    own in `root`; stop() kills whatever is left."""

    def __init__(self, root: Path):
        self.root = root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: dict[str, int] = {}

    def _server(self, name: str, *extra: str) -> None:
        d = self.root / name
        d.mkdir(exist_ok=True)
        port = self.ports.setdefault(name, free_port())
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d)]
        args += ["--save", "", "--appendonly", "no", *extra]
        log = open(d / "log", "ab")  # noqa: SIM115  (closed with the process)
        self.procs[name] = subprocess.Popen(args, stdout=log, stderr=log)
        wait_until(lambda: cli(port, "ping") == "PONG", 20, f"{name} to answer")

    def start(self) -> None:
        self._server("a")
        self._server("b", "--replicaof", "127.0.0.1", str(self.ports["a"]))
        wait_until(
            lambda: "master_link_status:up" in cli(self.ports["b"], "info", "replication"),
            20,
            "the replica to sync",
        )
        for i in range(3):
            name = f"sentinel{i}"
            d = self.root / name
            d.mkdir(exist_ok=True)
            port = self.ports.setdefault(name, free_port())
            conf = d / "sentinel.conf"  # rewritten by the sentinel itself
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {d}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.ports['a']} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 5000\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
            )
            log = open(d / "log", "ab")  # noqa: SIM115
            self.procs[name] = subprocess.Popen(
                ["redis-server", str(conf), "--sentinel"], stdout=log, stderr=log
            )
        wait_until(
            lambda: all(
                cli(self.ports[f"sentinel{i}"], "sentinel", "ckquorum", MASTER).startswith("OK")
                for i in range(3)
            ),
            30,
            "the sentinels to agree on the primary",
        )

    @property
    def sentinels(self) -> str:
        return ",".join(f"127.0.0.1:{self.ports[f'sentinel{i}']}" for i in range(3))

    def primary(self) -> int:
        """The primary's port as the first sentinel sees it."""
        out = cli(self.ports["sentinel0"], "sentinel", "get-master-addr-by-name", MASTER).split()
        return int(out[1]) if len(out) == 2 else 0

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def restart(self, name: str) -> None:
        """Starts a killed server again on its port, empty (no persistence):
        the sentinels turn it into a replica of the new primary."""
        self._server(name)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[Replicated]:
    r = Replicated(tmp_path)
    try:
        r.start()
        yield r
    finally:
        r.stop()


@pytest.mark.timeout(300)
def test_redis_failover_under_load_loses_nothing_with_min_replicas(
    kafka: KafkaEnv, fleet: Fleet, replicated: Replicated
) -> None:
    """SIGKILL the primary in the middle of 40 increments per session over 20
    sessions. The supervisor, which asks the sentinels for the primary and
    waits for one replica on every write, pauses while the sentinels fail over
    (writes the replica did not confirm count as failed and run again), finds
    the replica promoted and goes on once the old primary is back as the new
    one's replica (its WAITs need a replica again). Every increment is
    answered once, the results of each session are 1..40 and every counter
    ends at 40: nothing acknowledged by the old primary was lost."""
    nsess, nops, before = 20, 40, 12
    sup = fleet.start(
        python__path=PROGRAMS_DIR,
        redis__url="redis://127.0.0.1:1",  # behind Sentinel only the db counts
        redis__sentinels=replicated.sentinels,
        redis__master_name=MASTER,
        redis__min_replicas=1,
        redis__replica_timeout=500,
        redis__retry_timeout=120000,  # the outage is waited out, not answered `unavailable`
    )
    a = replicated.ports["a"]
    assert replicated.primary() == a
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(nsess)]
    ids: list[str] = []
    for s in sessions:
        ids += setup_session(kafka, s, "ctr", SLOW_COUNTER_SPEC)
    for k in range(before):
        ids += produce_increments(kafka, sessions, k)
    kafka.flush()
    replies.wait_ids(ids[: 2 * nsess + 4 * nsess], 60)  # under way: sessions set up, some run

    replicated.kill("a")
    t_kill = time.monotonic()
    for k in range(before, nops):
        ids += produce_increments(kafka, sessions, k)
    kafka.flush()
    wait_until(lambda: replicated.primary() == replicated.ports["b"], 30, "the failover")
    t_failover = time.monotonic() - t_kill
    replicated.restart("a")  # back as the new primary's replica

    replies.wait_ids(ids, 150)
    recovered = time.monotonic() - t_kill
    check_counters(kafka, replies, sessions, nops)
    primaries = [e.get("port", "") for e in sup.events("store.primary")]
    print(
        f"failover after {t_failover:.1f} s; everything answered {recovered:.1f} s after the "
        f"kill; writes not confirmed by a replica: {len(sup.events('store.not_replicated'))} "
        f"log lines; primaries found: {len(primaries)}"
    )
    assert str(replicated.ports["b"]) in primaries, (
        f"the promoted replica not followed: {primaries}"
    )


@pytest.mark.timeout(240)
def test_a_planned_failover_is_followed_and_loses_nothing(
    kafka: KafkaEnv, fleet: Fleet, replicated: Replicated
) -> None:
    """`SENTINEL FAILOVER` under load: the primary is demoted, not killed,
    so nothing drops the supervisor's link; the sentinel's `+switch-master`
    (or the first write refused READONLY) sends it to the promoted replica.
    The old primary becomes the new one's replica at once, so min_replicas = 1
    keeps being met; every increment is answered once and every counter is
    exact."""
    nsess, nops, before = 10, 30, 10
    sup = fleet.start(
        python__path=PROGRAMS_DIR,
        redis__url="redis://127.0.0.1:1",
        redis__sentinels=replicated.sentinels,
        redis__master_name=MASTER,
        redis__min_replicas=1,
        redis__retry_timeout=120000,
    )
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(nsess)]
    ids: list[str] = []
    for s in sessions:
        ids += setup_session(kafka, s, "ctr", SLOW_COUNTER_SPEC)
    for k in range(before):
        ids += produce_increments(kafka, sessions, k)
    kafka.flush()
    replies.wait_ids(ids[: 2 * nsess + 3 * nsess], 60)

    out = cli(replicated.ports["sentinel0"], "sentinel", "failover", MASTER)
    assert out == "OK", out
    for k in range(before, nops):
        ids += produce_increments(kafka, sessions, k)
    kafka.flush()
    wait_until(lambda: replicated.primary() == replicated.ports["b"], 30, "the failover")
    replies.wait_ids(ids, 120)
    check_counters(kafka, replies, sessions, nops)
    ports = [e.get("port", "") for e in sup.events("store.primary")]
    assert str(replicated.ports["b"]) in ports, f"the new primary not followed: {ports}"
    followed = sup.events("store.switch_master") + sup.events("store.readonly")
    print(
        f"followed by: {[e.get('event') for e in followed]}; "
        f"disconnects: {len(sup.events('store.disconnected'))}"
    )

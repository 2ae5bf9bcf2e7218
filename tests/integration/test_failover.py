"""Guarantee 8 of docs/DESIGN.md across a Redis failover, through Kafka: a
primary, two replicas and three Sentinels on loopback (Debian's redis-server,
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
    check_counters,
    counters_under_way,
    produce_increments,
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

    def start(self, replicas: tuple[str, ...] = ("b",)) -> None:
        self._server("a")
        for r in replicas:
            self._server(r, "--replicaof", "127.0.0.1", str(self.ports["a"]))
        for r in replicas:
            wait_until(
                lambda r=r: "master_link_status:up" in cli(self.ports[r], "info", "replication"),
                20,
                f"replica {r} to sync",
            )
        for i in range(3):
            self._sentinel(f"sentinel{i}", self.ports["a"])
        wait_until(
            lambda: all(
                cli(self.ports[f"sentinel{i}"], "sentinel", "ckquorum", MASTER).startswith("OK")
                for i in range(3)
            ),
            30,
            "the sentinels to agree on the primary",
        )

    def _sentinel(self, name: str, monitored: int) -> None:
        d = self.root / name
        d.mkdir(exist_ok=True)
        port = self.ports.setdefault(name, free_port())
        conf = d / "sentinel.conf"  # rewritten by the sentinel itself
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {d}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {monitored} 2\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        log = open(d / "log", "ab")  # noqa: SIM115
        self.procs[name] = subprocess.Popen(
            ["redis-server", str(conf), "--sentinel"], stdout=log, stderr=log
        )

    def start_decoy(self) -> None:
        """A sentinel that monitors, under the same master name, a Redis of its
        own ("x", empty, a primary): what a sentinel of another deployment,
        or one cut off and left behind, would answer. Listed first."""
        self._server("x")
        self._sentinel("decoy", self.ports["x"])
        port = self.ports["decoy"]
        wait_until(
            lambda: cli(port, "sentinel", "get-master-addr-by-name", MASTER) != "",
            20,
            "the decoy sentinel to answer",
        )

    @property
    def sentinels(self) -> str:
        names = (["decoy"] if "decoy" in self.procs else []) + [f"sentinel{i}" for i in range(3)]
        return ",".join(f"127.0.0.1:{self.ports[n]}" for n in names)

    def primary(self, sentinel: int = 0) -> int:
        """The primary's port as that sentinel sees it."""
        out = cli(
            self.ports[f"sentinel{sentinel}"], "sentinel", "get-master-addr-by-name", MASTER
        ).split()
        return int(out[1]) if len(out) == 2 else 0

    def kill(self, name: str) -> None:
        self.procs[name].send_signal(signal.SIGKILL)
        self.procs[name].wait(10)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def replicated(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Replicated]:
    """Replicas as the test's `replicas` mark says (default: one, "b")."""
    mark = request.node.get_closest_marker("replicas")
    r = Replicated(tmp_path)
    try:
        r.start(tuple(mark.args) if mark else ("b",))
        yield r
    finally:
        r.stop()


@pytest.mark.timeout(300)
@pytest.mark.replicas("b", "c")
def test_redis_failover_under_load_loses_nothing_with_min_replicas(
    kafka: KafkaEnv, fleet: Fleet, replicated: Replicated
) -> None:
    """SIGKILL the primary in the middle of 40 increments per session over 20
    sessions. The supervisor, which asks the sentinels for the primary and
    waits for one replica on every call, pauses while the sentinels fail over
    (calls no replica confirmed count as failed and run again), finds the
    promoted replica and goes on once the other replica has joined it (its
    WAITs need a replica again). Every increment is answered once, the
    results of each session are 1..40 and every counter ends at 40: nothing
    acknowledged by the old primary was lost.

    The dead primary stays dead: a Redis without persistence must not come
    back on its own (it would come back empty, still calling itself primary
    until the sentinels demote it; see docs/DESIGN.md, limit 6)."""
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
    sessions, ids = counters_under_way(kafka, replies, nsess, before, 4)

    replicated.kill("a")
    t_kill = time.monotonic()
    for k in range(before, nops):
        ids += produce_increments(kafka, sessions, k)
    kafka.flush()
    promoted = {replicated.ports["b"], replicated.ports["c"]}
    wait_until(lambda: replicated.primary() in promoted, 30, "the failover")
    t_failover = time.monotonic() - t_kill

    replies.wait_ids(ids, 150)
    recovered = time.monotonic() - t_kill
    check_counters(kafka, replies, sessions, nops)
    primaries = [int(e.get("port", "0")) for e in sup.events("store.primary")]
    print(
        f"failover after {t_failover:.1f} s; everything answered {recovered:.1f} s after the "
        f"kill; calls not confirmed by a replica: {len(sup.events('store.not_replicated'))} "
        f"log lines; primaries found: {primaries}"
    )
    assert replicated.primary() in primaries, f"the promoted replica not followed: {primaries}"


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
    sessions, ids = counters_under_way(kafka, replies, nsess, before, 3)

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


@pytest.mark.timeout(240)
def test_a_hung_sentinel_and_a_stale_one_do_not_mislead_the_store(
    kafka: KafkaEnv, fleet: Fleet, replicated: Replicated
) -> None:
    """Four sentinels listed: first a decoy that names another, empty Redis
    under the same master name (a sentinel left behind), then the three real
    ones, the first of which is frozen (SIGSTOP: it accepts connections and
    never answers) from before the supervisor starts. The store asks all four
    at once, gives the frozen one up after its timeout, and of the three
    answers (a majority of four) takes the address most of them name at the
    highest config-epoch: the real primary, not the decoy's. A planned
    failover is then made through another sentinel (the real ones' epoch goes
    up, the decoy's does not), the frozen one is thawed and every client link
    of the new primary is killed: asked again, the store follows the newest
    epoch. Every increment is answered once and every counter is exact."""
    nsess, nops, before = 10, 30, 10
    replicated.start_decoy()
    replicated.procs["sentinel0"].send_signal(signal.SIGSTOP)
    try:
        sup = fleet.start(
            python__path=PROGRAMS_DIR,
            redis__url="redis://127.0.0.1:1",
            redis__sentinels=replicated.sentinels,  # sentinel0 first
            redis__master_name=MASTER,
            redis__min_replicas=1,
            redis__retry_timeout=120000,
        )
        replies = kafka.replies()
        sessions, ids = counters_under_way(kafka, replies, nsess, before, 3)

        out = cli(replicated.ports["sentinel1"], "sentinel", "failover", MASTER)
        assert out == "OK", out
        for k in range(before, nops):
            ids += produce_increments(kafka, sessions, k)
        kafka.flush()
        b = replicated.ports["b"]
        wait_until(lambda: replicated.primary(1) == b, 30, "the failover")
        wait_until(
            lambda: any(e.get("port") == str(b) for e in sup.events("store.primary")),
            30,
            "the store to follow the failover",
        )
    finally:
        replicated.procs["sentinel0"].send_signal(signal.SIGCONT)
    # Asked again: the thawed sentinel may still name the old primary, the decoy names x.
    connects = len(sup.events("store.connected"))
    cli(b, "client", "kill", "type", "normal")
    wait_until(lambda: len(sup.events("store.connected")) > connects, 30, "the store to reconnect")
    replies.wait_ids(ids, 120)
    check_counters(kafka, replies, sessions, nops)
    hung = [e for e in sup.events("store.sentinel_failed") if "no answer" in e.get("reason", "")]
    assert hung, "the frozen sentinel was never given up"
    primaries = [(e.get("port"), e.get("config_epoch")) for e in sup.events("store.primary")]
    assert primaries and primaries[-1][0] == str(b), f"not on the new primary: {primaries}"
    decoy = str(replicated.ports["x"])
    assert all(p != decoy for p, _ in primaries), f"the decoy's Redis was taken: {primaries}"
    print(f"primaries (port, config_epoch): {primaries}; frozen sentinel given up {len(hung)}x")

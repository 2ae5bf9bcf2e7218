"""Hosts on one machine: network namespaces joined by veth pairs.

Layout (every address link-local, existing only inside the namespaces this
module makes, plus the one veth end it gives the machine's own namespace so
the test itself can produce and read):

    core  (sfn<tag>c)   lo 169.254.0.1/32: Kafka and Redis listen here
      |-- veth --  machine's namespace  169.254.250.2/30 (the checker)
      |-- veth --  host 1 (sfn<tag>h1)  169.254.1.2/30
      |-- veth --  host 2 (sfn<tag>h2)  169.254.2.2/30   ...

Each host routes 169.254.0.1 over its own veth, so a fault on one host's
link (nft rules in its namespace dropping what it sends to Kafka's or Redis's
port, a token-bucket qdisc that slows its link, a random-drop rule) touches
that host only. `Net.down()` kills every process left in the namespaces and
removes them (the veths go with them); `sweep(tag)` does the same for a run
that died without cleaning up (tests/nemesis/run.sh calls it on exit).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

CORE_ADDR = "169.254.0.1"
CHECKER_ADDR = "169.254.250.2"


def sh(*args: str, check: bool = True) -> str:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout


def can_make_namespaces() -> str:
    """'' when this machine lets us make namespaces, veths and nft rules; else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft", "tc"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            return f"'{tool}' is not installed (deploy/setup.sh installs iproute2 and nftables)"
    probe = f"sfprobe{os.getpid() % 100000}"
    try:
        sh("ip", "netns", "add", probe)
        sh("ip", "netns", "exec", probe, "nft", "add", "table", "inet", "probe")
        sh("ip", "link", "add", f"{probe}a", "type", "veth", "peer", "name", f"{probe}b")
        sh("ip", "link", "del", f"{probe}a")
    except (RuntimeError, OSError) as e:
        return f"cannot make network namespaces here: {e}"
    finally:
        sh("ip", "netns", "del", probe, check=False)
    return ""


def ns_pids(ns: str) -> list[int]:
    out = sh("ip", "netns", "pids", ns, check=False)
    return [int(p) for p in out.split()]


def kill_all_in(ns: str) -> None:
    """SIGKILL every process in namespace ns (and SIGCONT, so a stopped one dies)."""
    for _ in range(20):
        pids = ns_pids(ns)
        if not pids:
            return
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
                os.kill(p, signal.SIGCONT)
        time.sleep(0.1)


def sweep(tag: str) -> None:
    """Removes every namespace of run `tag`, killing what runs in it."""
    for line in sh("ip", "netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(f"sfn{tag}"):
            kill_all_in(name)
            sh("ip", "netns", "del", name, check=False)
    sh("ip", "link", "del", f"sf{tag}r0", check=False)


@dataclass
class Host:
    index: int
    ns: str
    addr: str
    dev: str  # its veth end, inside its namespace
    faults: set[str] = field(default_factory=set)


class Net:
    """The core namespace, the checker's link to it, and the hosts."""

    def __init__(self, tag: str):
        self.tag = tag
        self.core = f"sfn{tag}c"
        self.hosts: list[Host] = []
        self.ports: dict[str, int] = {}  # "kafka", "redis": what cuts drop

    def up(self) -> None:
        c = self.core
        sh("ip", "netns", "add", c)
        sh("ip", "-n", c, "link", "set", "lo", "up")
        sh("ip", "-n", c, "addr", "add", f"{CORE_ADDR}/32", "dev", "lo")
        a, b = f"sf{self.tag}r0", f"sf{self.tag}r1"
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "link", "set", b, "netns", c)
        sh("ip", "addr", "add", f"{CHECKER_ADDR}/30", "dev", a)
        sh("ip", "link", "set", a, "up")
        sh("ip", "-n", c, "addr", "add", "169.254.250.1/30", "dev", b)
        sh("ip", "-n", c, "link", "set", b, "up")
        sh("ip", "route", "add", f"{CORE_ADDR}/32", "via", "169.254.250.1")

    def add_host(self) -> Host:
        i = len(self.hosts) + 1
        ns = f"sfn{self.tag}h{i}"
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        core_end, host_end = f"sf{self.tag}h{i}a", f"sf{self.tag}h{i}b"
        sh("ip", "link", "add", core_end, "type", "veth", "peer", "name", host_end)
        sh("ip", "link", "set", core_end, "netns", self.core)
        sh("ip", "link", "set", host_end, "netns", ns)
        sh("ip", "-n", self.core, "addr", "add", f"169.254.{i}.1/30", "dev", core_end)
        sh("ip", "-n", self.core, "link", "set", core_end, "up")
        sh("ip", "-n", ns, "addr", "add", f"169.254.{i}.2/30", "dev", host_end)
        sh("ip", "-n", ns, "link", "set", host_end, "up")
        sh("ip", "-n", ns, "route", "add", f"{CORE_ADDR}/32", "via", f"169.254.{i}.1")
        nft = (
            "add table inet nemesis; "
            "add chain inet nemesis out { type filter hook output priority 0; }"
        )
        sh("ip", "netns", "exec", ns, "nft", nft)
        h = Host(i, ns, f"169.254.{i}.2", host_end)
        self.hosts.append(h)
        return h

    def _rules(self, h: Host) -> None:
        """Rewrites host h's nft chain from its fault set."""
        rules = ["flush chain inet nemesis out"]
        for what in ("kafka", "redis"):
            if f"cut_{what}" in h.faults:
                rules.append(
                    f"add rule inet nemesis out ip daddr {CORE_ADDR} "
                    f"tcp dport {self.ports[what]} drop"
                )
        if "loss" in h.faults:
            rules.append(
                f"add rule inet nemesis out ip daddr {CORE_ADDR} numgen random mod 100 < 5 drop"
            )
        sh("ip", "netns", "exec", h.ns, "nft", "; ".join(rules))

    def cut(self, h: Host, kafka: bool = False, redis: bool = False) -> None:
        if kafka:
            h.faults.add("cut_kafka")
        if redis:
            h.faults.add("cut_redis")
        self._rules(h)

    def slow(self, h: Host) -> None:
        """A slow, lossy link: 2 Mbit/s through a token bucket that queues up
        to 200 ms, and 5 % of what the host sends to the core dropped. (This
        kernel may lack netem; a token bucket and nft's random drop need none.)"""
        h.faults.add("loss")
        self._rules(h)
        sh("tc", "-n", h.ns, "qdisc", "replace", "dev", h.dev, "root", "tbf", "rate", "2mbit",
           "burst", "16kb", "latency", "200ms")  # fmt: skip
        h.faults.add("slow")

    def heal(self, h: Host) -> None:
        if "slow" in h.faults:
            sh("tc", "-n", h.ns, "qdisc", "del", "dev", h.dev, "root", check=False)
        h.faults.clear()
        self._rules(h)

    def down(self) -> None:
        for h in self.hosts:
            kill_all_in(h.ns)
        kill_all_in(self.core)
        sweep(self.tag)

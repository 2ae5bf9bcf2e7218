"""Fixtures of the nemesis tests (tests/nemesis/run.sh runs them as root).

`net` (one per run): the core namespace with Kafka and Redis on 169.254.0.1,
and three hosts. `fleet` (one per test): fresh topics and group, a
supervisor in each host, a checker, a nemesis; at the end every fault is
healed and every supervisor stopped. Everything is removed at the end of the
run, also after a failure; tests/nemesis/run.sh sweeps what a killed run left.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import Checker, Core, HostSupervisor, Nemesis, Topics, reset_dir
from netns import Net, can_make_namespaces

HOSTS = 3
SUPERVISOR = os.environ.get("SNAKEFLEET_NEMESIS_SUPERVISOR", "")
WORKDIR = Path(os.environ.get("SNAKEFLEET_NEMESIS_DIR", "/tmp/snakefleet-nemesis"))


@dataclass
class Env:
    net: Net
    core: Core


@dataclass
class Fleet:
    env: Env
    topics: Topics
    sups: list[HostSupervisor]
    checker: Checker
    nemesis: Nemesis


@pytest.fixture(scope="session")
def env() -> Iterator[Env]:
    why = (
        "" if SUPERVISOR else "SNAKEFLEET_NEMESIS_SUPERVISOR is not set (run tests/nemesis/run.sh)"
    )
    why = why or can_make_namespaces()
    if why:
        pytest.skip(f"nemesis tests skipped: {why}")
    tag = os.environ.get("SNAKEFLEET_NEMESIS_TAG") or uuid.uuid4().hex[:4]
    net = Net(tag)
    work = reset_dir(WORKDIR / tag)
    core = Core(net, work)
    try:
        net.up()
        for _ in range(HOSTS):
            net.add_host()
        core.start_kafka()
        core.start_redis()
        yield Env(net, core)
    finally:
        core.stop()
        net.down()


@pytest.fixture
def fleet(env: Env, request: pytest.FixtureRequest) -> Iterator[Fleet]:
    name = request.node.name.replace("test_", "")[:24].replace("_", "-")
    prefix = f"nem-{name}-{uuid.uuid4().hex[:6]}"
    topics = Topics.make(env.core, prefix)
    logdir = reset_dir(env.core.dir / prefix)
    sups = [HostSupervisor(h, env.core, topics, logdir, SUPERVISOR) for h in env.net.hosts]
    checker = Checker(env.core, topics)
    nemesis = Nemesis(env.net, env.core, sups, checker)
    for s in sups:
        s.start()
    try:
        yield Fleet(env, topics, sups, checker, nemesis)
    finally:
        nemesis.heal()
        for h in env.net.hosts:
            env.net.heal(h)
        for s in sups:
            s.stop()
        checker.stop_reading.set()
        print(f"supervisor logs: {logdir}")

"""Fixtures of the integration tests: real supervisors against a real Kafka
broker and a real redis-server.

tests/integration/run.sh starts the broker and Redis and exports:

  SNAKEFLEET_IT_KAFKA       bootstrap servers, e.g. 127.0.0.1:PORT
  SNAKEFLEET_IT_REDIS       redis://127.0.0.1:PORT
  SNAKEFLEET_IT_SUPERVISOR  path of the snakefleet-supervisor binary
  SNAKEFLEET_IT_PIDFILE     (optional) file this conftest appends the pid of
                            every supervisor it starts to, so run.sh can kill
                            leftovers even if pytest itself is killed

Isolation: every test gets its own request topic (8 partitions), its own
reply topic, its own consumer group and its own session-id prefix, so tests
never see each other's requests, replies or sessions. The shared topics
(snakefleet.dlq, snakefleet.telemetry) are read from the end offset they had
when the test started and filtered by request topic / supervisor id. Tests
that stop or reconfigure Redis take the own_redis fixture: a redis-server of
their own (RedisServer), stopped at the end of the test.

Helpers the tests share that are not fixtures are in helpers.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupState,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
KAFKA = os.environ.get("SNAKEFLEET_IT_KAFKA", "")
REDIS = os.environ.get("SNAKEFLEET_IT_REDIS", "")
SUPERVISOR = os.environ.get("SNAKEFLEET_IT_SUPERVISOR", "")
PIDFILE = os.environ.get("SNAKEFLEET_IT_PIDFILE", "")

DLQ_TOPIC = "snakefleet.dlq"
TELEMETRY_TOPIC = "snakefleet.telemetry"
RECORD_SPEC = {"kind": "callable", "entry": "snakefleet.examples:record"}

ENV_MISSING = (
    ""
    if KAFKA and REDIS and SUPERVISOR
    else "integration tests need SNAKEFLEET_IT_KAFKA, SNAKEFLEET_IT_REDIS and "
    "SNAKEFLEET_IT_SUPERVISOR (run tests/integration/run.sh)"
)


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Polls pred() until it returns something truthy; fails the test after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------- processes


def proc_alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    # state is the first field after the parenthesised comm
    return stat[stat.rfind(")") + 2 :].split(" ", 1)[0] != "Z"


def proc_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def live_workers(pids: set[int]) -> set[int]:
    """The pids of `pids` that are still running a snakefleet worker (a recycled
    pid of an unrelated process does not count)."""
    return {p for p in pids if proc_alive(p) and "snakefleet" in proc_cmdline(p)}


LOG_KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_log_line(line: str) -> dict[str, str]:
    return {k: (v[1:-1] if v.startswith('"') else v) for k, v in LOG_KV.findall(line)}


class Supervisor:
    """One snakefleet-supervisor process. Its stderr (key=value log lines) goes
    to LOGDIR/<id>.log. Started in its own session so a signal to the test's
    process group does not reach it; its workers have their own process group
    and PR_SET_PDEATHSIG, and are tracked from the `pool.worker_ready` lines."""

    def __init__(self, sid: str, logdir: Path, args: list[str]):
        self.id = sid
        self.log_path = logdir / f"{sid}.log"
        self.args = [SUPERVISOR, *args]
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def start(self) -> Supervisor:
        self._log = open(self.log_path, "wb")  # noqa: SIM115  (closed in wait())
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
            cwd=str(self.log_path.parent),
        )
        if PIDFILE:
            with open(PIDFILE, "a") as f:
                f.write(f"{self.proc.pid}\n")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    # -- the log

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def events(self, event: str | None = None) -> list[dict[str, str]]:
        out = []
        for line in self.log_text().splitlines():
            if "event=" not in line:
                continue
            kv = parse_log_line(line)
            if event is None or kv.get("event") == event:
                out.append(kv)
        return out

    def has_event(self, event: str) -> bool:
        return f"event={event} " in self.log_text() or self.log_text().rstrip().endswith(
            f"event={event}"
        )

    def wait_event(self, event: str, timeout: float = 30.0, count: int = 1) -> None:
        def seen() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(
                    f"supervisor {self.id} exited with {self.proc.returncode} while waiting "
                    f"for event={event}; log tail:\n{self.tail()}"
                )
            return len(self.events(event)) >= count

        wait_until(seen, timeout, f"event={event} in the log of {self.id}")

    def assigned(self) -> set[tuple[str, int]]:
        """The partitions this supervisor owns according to its log: every
        kafka.assigned adds one, every kafka.revoked removes one (in order)."""
        owned: set[tuple[str, int]] = set()
        for kv in self.events():
            ev = kv.get("event")
            if ev in ("kafka.assigned", "kafka.revoked"):
                tp = (kv["topic"], int(kv["partition"]))
                if ev == "kafka.assigned":
                    owned.add(tp)
                else:
                    owned.discard(tp)
        return owned

    def worker_pids(self) -> set[int]:
        return {int(kv["pid"]) for kv in self.events("pool.worker_ready") if "pid" in kv}

    def tail(self, n: int = 60) -> str:
        lines = [ln for ln in self.log_text().splitlines() if "event=kafka.log" not in ln]
        return "\n".join(lines[-n:])

    # -- stopping

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int | None:
        """Waits for the exit; returns the exit code, or None if still running."""
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        with contextlib.suppress(Exception):
            self._log.close()
        return self.returncode

    def kill(self) -> None:
        """SIGKILL, reap, and make sure no worker of it survives."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(10)
        # PR_SET_PDEATHSIG should have taken the workers down; make sure anyway.
        for p in live_workers(self.worker_pids()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)

    def stop(self, timeout: float = 40.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL after timeout s."""
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is None:
            self.kill()
        return rc


# ---------------------------------------------------------------- Kafka


def decode(value: bytes | None) -> Any:
    return msgpack.unpackb(value, raw=False, strict_map_key=False) if value is not None else None


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    msg: Any = None  # decoded value (None if not msgpack)

    @classmethod
    def of(cls, m: Any) -> Record:
        hdrs = {k: v for k, v in (m.headers() or [])}
        try:
            d = decode(m.value())
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
            d = None
        return cls(m.topic(), m.partition(), m.offset(), m.key(), m.value(), hdrs, d)


class TopicReader:
    """Reads one topic (all partitions) from given start offsets, without a
    consumer group (assign, no commits): no subscribe/rebalance race, and
    nothing produced after the reader's start offsets can be missed."""

    def __init__(self, bootstrap: str, topic: str, from_end: bool):
        self.topic = topic
        self.records: list[Record] = []
        self.c = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"it-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 50,
            }
        )
        md = self.c.list_topics(topic, timeout=10)
        parts = sorted(md.topics[topic].partitions)
        assert parts, f"topic {topic} has no partitions"
        tps = []
        for p in parts:
            if from_end:
                _, hi = self.c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                tps.append(TopicPartition(topic, p, hi))
            else:
                tps.append(TopicPartition(topic, p, OFFSET_BEGINNING))
        self.c.assign(tps)

    def poll(self, seconds: float = 0.2) -> int:
        """Reads what is there (up to `seconds`); returns how many records came."""
        n = 0
        deadline = time.monotonic() + seconds
        while True:
            msgs = self.c.consume(num_messages=1000, timeout=max(0.0, deadline - time.monotonic()))
            for m in msgs:
                if m.error():
                    continue
                self.records.append(Record.of(m))
                n += 1
            if not msgs or time.monotonic() >= deadline:
                return n

    def wait_for(self, pred: Callable[[list[Record]], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            v = pred(self.records)
            if v:
                return v
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} on {self.topic}")
            self.poll(0.3)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.c.close()


class Replies(TopicReader):
    """The replies on a test's own reply topic, indexed by request id."""

    def by_id(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for r in self.records:
            if isinstance(r.msg, dict):
                out.setdefault(r.msg.get("id", ""), []).append(r.msg)
        return out

    def wait_ids(
        self, ids: set[str] | list[str], timeout: float
    ) -> dict[str, list[dict[str, Any]]]:
        """Waits until every id has at least one reply; returns replies by id."""
        want = set(ids)
        seen: set[str] = set()
        done = 0
        deadline = time.monotonic() + timeout
        while True:
            for r in self.records[done:]:
                if isinstance(r.msg, dict):
                    seen.add(r.msg.get("id", ""))
            done = len(self.records)
            missing = want - seen
            if not missing:
                return self.by_id()
            if time.monotonic() > deadline:
                pytest.fail(
                    f"{len(missing)} of {len(want)} requests got no reply within {timeout:.0f} s "
                    f"(e.g. {sorted(missing)[:5]})"
                )
            self.poll(0.5)


def make_request(
    rid: str,
    session: str | None,
    op: str,
    program: str | None = None,
    args: dict[str, Any] | None = None,
    reply_to: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    r: dict[str, Any] = {"v": 1, "id": rid, "op": op}
    if session is not None:
        r["session"] = session
    if program is not None:
        r["program"] = program
    if args is not None:
        r["args"] = args
    if reply_to is not None:
        r["reply_to"] = reply_to
    r.update(extra)
    return r


@dataclass
class KafkaEnv:
    """A test's Kafka world: its own request topic (8 partitions), reply topic
    (4 partitions) and consumer group, a producer, and readers."""

    bootstrap: str
    prefix: str
    requests: str
    replies_topic: str
    group: str
    admin: AdminClient
    producer: Producer
    readers: list[TopicReader] = field(default_factory=list)
    delivered: list[Any] = field(default_factory=list)
    topics_made: list[str] = field(default_factory=list)

    def create_topic(self, name: str, partitions: int) -> str:
        fs = self.admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)],
            operation_timeout=30,
        )
        for f in fs.values():
            f.result(timeout=60)
        self.topics_made.append(name)

        def ready() -> bool:
            md = self.admin.list_topics(name, timeout=10)
            t = md.topics.get(name)
            return bool(
                t is not None
                and t.error is None
                and len(t.partitions) == partitions
                and all(p.leader >= 0 for p in t.partitions.values())
            )

        wait_until(ready, 30, f"topic {name} to have leaders")
        return name

    def session(self, i: int | str) -> str:
        return f"{self.prefix}-s{i}"

    def request(self, rid: str, session: str | None, op: str, **kw: Any) -> dict[str, Any]:
        kw.setdefault("reply_to", self.replies_topic)
        return make_request(rid, session, op, **kw)

    def send(
        self,
        req: dict[str, Any] | bytes,
        key: str | bytes | None = "",
        headers: list[tuple[str, bytes]] | None = None,
        topic: str | None = None,
    ) -> None:
        """Produces one request; key defaults to the request's session."""
        if isinstance(req, dict):
            value = msgpack.packb(req, use_bin_type=True)
            if key == "":
                key = req.get("session")
        else:
            value = req
            if key == "":
                key = None
        kw: dict[str, Any] = {"value": value, "on_delivery": self._on_delivery}
        if key is not None:
            kw["key"] = key
        if headers:
            kw["headers"] = headers
        while True:
            try:
                self.producer.produce(topic or self.requests, **kw)
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            raise KafkaException(err)
        self.delivered.append((msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value()))

    def flush(self) -> None:
        left = self.producer.flush(30)
        assert left == 0, f"{left} requests not delivered to Kafka"

    def reader(self, topic: str, from_end: bool = False) -> TopicReader:
        r = TopicReader(self.bootstrap, topic, from_end)
        self.readers.append(r)
        return r

    def replies(self, topic: str | None = None) -> Replies:
        """A reader of the test's reply topic (or another fresh one) from its start."""
        r = Replies(self.bootstrap, topic or self.replies_topic, from_end=False)
        self.readers.append(r)
        return r

    def committed(self, partitions: list[int]) -> dict[int, int]:
        """The group's committed offsets on the request topic."""
        c = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,
            }
        )
        try:
            tps = c.committed([TopicPartition(self.requests, p) for p in partitions], timeout=10)
            return {tp.partition: tp.offset for tp in tps}
        finally:
            c.close()

    def group_members(self) -> list[Any]:
        """The members of the test's group if it is Stable, else []."""
        try:
            fut = self.admin.describe_consumer_groups([self.group], request_timeout=10)[self.group]
            g = fut.result(timeout=15)
        except (KafkaException, TimeoutError, ValueError):
            return []
        if g.state != ConsumerGroupState.STABLE:
            return []
        return list(g.members)

    def close(self) -> None:
        for r in self.readers:
            r.close()
        with contextlib.suppress(Exception):
            self.producer.flush(5)
        if self.topics_made:
            with contextlib.suppress(Exception):
                self.admin.delete_topics(self.topics_made, operation_timeout=10)


@pytest.fixture
def kafka(request: pytest.FixtureRequest) -> Iterator[KafkaEnv]:
    if ENV_MISSING:
        pytest.skip(ENV_MISSING)
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:60].strip("-")
    prefix = f"it-{name}-{uuid.uuid4().hex[:8]}"
    # log_level 4: no "Purging unserved events" notice when it is garbage-collected
    admin = AdminClient({"bootstrap.servers": KAFKA, "log_level": 4})
    producer = Producer(
        {
            "bootstrap.servers": KAFKA,
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 5,
            "queue.buffering.max.messages": 200000,
        }
    )
    env = KafkaEnv(
        KAFKA,
        prefix,
        f"{prefix}.requests",
        f"{prefix}.replies",
        f"{prefix}.group",
        admin,
        producer,
    )
    env.create_topic(env.requests, 8)
    env.create_topic(env.replies_topic, 4)
    try:
        yield env
    finally:
        env.close()


# ---------------------------------------------------------------- supervisors


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome: Any = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


class Fleet:
    """Starts supervisors for one test, and stops them all at its end."""

    def __init__(self, env: KafkaEnv, logdir: Path):
        self.env = env
        self.logdir = logdir
        self.all: list[Supervisor] = []
        self.n = 0
        self.unclean: dict[str, int | None] = {}

    def args(self, sid: str, **opts: Any) -> list[str]:
        o: dict[str, Any] = {
            "kafka.bootstrap.servers": self.env.bootstrap,
            "redis.url": REDIS,
            "supervisor.id": sid,
            "pool.pool_size": 2,
            "pool.max_overflow": 0,
            # load tests queue hundreds of sessions on 2 workers: the checkout
            # wait is not what they test
            "pool.checkout_timeout": 60000,
            "telemetry.interval": 1000,
            "topics.requests": self.env.requests,
            "topics.replies": self.env.replies_topic,
            "topics.group": self.env.group,
            # a SIGKILLed member is noticed after session.timeout.ms
            "kafka.session.timeout.ms": 6000,
            "kafka.heartbeat.interval.ms": 1000,
            "kafka.auto.commit.interval.ms": 1000,
            "python.executable": str(VENV_PYTHON),
            "supervisor.shutdown_timeout": 20000,
        }
        for k, v in opts.items():
            key = k.replace("__", ".")
            if v is None:
                o.pop(key, None)
            else:
                o[key] = v
        return [f"--{k}={v}" for k, v in o.items()]

    def spawn(self, **opts: Any) -> Supervisor:
        """Starts one supervisor (options as section__key=value; None removes a
        default) without waiting for anything."""
        self.n += 1
        sid = f"{self.env.prefix}-sup{self.n}"
        sup = Supervisor(sid, self.logdir, self.args(sid, **opts)).start()
        self.all.append(sup)
        return sup

    def start(self, wait_assigned: bool = True, **opts: Any) -> Supervisor:
        """spawn(), then waits for supervisor.started, a ready worker and (unless
        wait_assigned is false) a kafka.assigned."""
        sup = self.spawn(**opts)
        sup.wait_event("supervisor.started", timeout=60)
        wait_until(
            lambda: len(sup.events("pool.worker_ready")) >= 1,
            60,
            f"a ready worker in {sup.id}",
        )
        if wait_assigned:
            sup.wait_event("kafka.assigned", timeout=60)
        return sup

    def wait_stable(self, sups: list[Supervisor], partitions: int = 8, timeout: float = 60) -> None:
        """Waits until the group is Stable with exactly `sups` as members, each
        has processed its assignment (its log agrees with the broker), and the
        assignments cover every partition of the request topic once."""

        def stable() -> bool:
            members = self.env.group_members()
            if len(members) != len(sups):
                return False
            by_client = {m.client_id: m for m in members}
            union: list[tuple[str, int]] = []
            for s in sups:
                m = by_client.get(s.id)
                if m is None or m.assignment is None:
                    return False
                broker = {(tp.topic, tp.partition) for tp in m.assignment.topic_partitions}
                if not broker or s.assigned() != broker:
                    return False
                union.extend(broker)
            return len(union) == partitions and len(set(union)) == partitions

        wait_until(
            stable,
            timeout,
            f"group {self.env.group} stable with {len(sups)} members",
            interval=0.3,
        )

    def stop_all(self) -> set[int]:
        """SIGTERM to every supervisor still running, SIGKILL to any that does
        not exit within 25 s. Returns the worker pids still alive 5 s after
        their supervisor exited (an orphan: a bug), after killing them."""
        termed = [s for s in self.all if s.alive()]
        for s in termed:
            s.signal(signal.SIGTERM)
        for s in self.all:
            if s.proc is not None and s.wait(25) is None:
                s.proc.kill()
                s.wait(10)
        # a supervisor stopped with SIGTERM must drain and exit 0
        self.unclean = {s.id: s.returncode for s in termed if s.returncode != 0}
        workers: set[int] = set()
        for s in self.all:
            workers |= s.worker_pids()
        deadline = time.monotonic() + 5
        while live_workers(workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphans = live_workers(workers)
        for s in self.all:
            s.kill()  # reaps, and kills any worker left behind
        return orphans


@pytest.fixture
def fleet(kafka: KafkaEnv, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(kafka, tmp_path)
    orphans: set[int] = set()
    try:
        yield f
    finally:
        orphans = f.stop_all()
        rep = getattr(request.node, "rep_call", None)
        if rep is None or rep.failed:
            for s in f.all:
                print(f"\n---- log tail of {s.id} (exit {s.returncode}, full log {s.log_path})")
                print(s.tail())
    assert not orphans, f"worker processes outlived their supervisor: {sorted(orphans)}"
    assert not f.unclean, f"supervisors that did not exit 0 after SIGTERM: {f.unclean}"


@pytest.fixture
def schemas_dir() -> Path:
    return ROOT / "schemas"


# ---------------------------------------------------------------- a redis-server of a test's own


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of a test's own (deploy/redis/start.sh, stop.sh), for
    tests that stop and restart it. `appendfsync` None: start.sh's default."""

    def __init__(self, dirpath: Path, appendfsync: str | None = None):
        self.dir = dirpath
        self.port = 0
        self.url = ""
        self.env = {k: v for k, v in os.environ.items() if k != "REDIS_APPENDFSYNC"}
        self.env["REDIS_APPENDONLY"] = "yes"
        if appendfsync is not None:
            self.env["REDIS_APPENDFSYNC"] = appendfsync
        self.started = False

    @property
    def pid(self) -> int:
        """The running server's pid (its pidfile)."""
        return int((self.dir / "redis.pid").read_text().strip())

    def start(self) -> None:
        """Starts it (again: on the same dir and port, replaying its AOF)."""
        for attempt in range(3):
            if not self.started and attempt:
                self.port = 0
            port = self.port or free_port()
            r = subprocess.run(
                [str(ROOT / "deploy/redis/start.sh"), "-d", str(self.dir), "-p", str(port)],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if r.returncode == 0:
                self.port = port
                self.url = f"redis://127.0.0.1:{port}"
                self.started = True
                return
            if self.started:  # a restart must reuse its port
                break
        pytest.fail(f"deploy/redis/start.sh failed: {r.stderr[-2000:]}")

    def stop(self) -> None:
        """deploy/redis/stop.sh with KEEP=1 (SHUTDOWN NOSAVE: the AOF stays)."""
        subprocess.run(
            [str(ROOT / "deploy/redis/stop.sh"), str(self.dir)],
            env={**self.env, "KEEP": "1"},
            capture_output=True,
            timeout=60,
            check=True,
        )

    def cli(self, *args: str) -> str:
        return redis_cli(self.url, *args)


def redis_cli(url: str, *args: str) -> str:
    host, _, port = url.removeprefix("redis://").partition("/")[0].partition(":")
    r = subprocess.run(
        ["redis-cli", "-h", host, "-p", port or "6379", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return r.stdout


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own with appendonly yes and the shipped
    persistence defaults of deploy/redis/start.sh; stopped at the end of the
    test whatever happens."""
    # start.sh's default is appendfsync always: Redis writes and fsyncs the
    # AOF before it sends the reply of a write (the AOF buffer is flushed in
    # beforeSleep, ahead of the client replies), so every commit the
    # supervisor saw acknowledged is on disk. everysec can lose up to ~2 s of
    # acknowledged writes when the machine dies (and when redis-server dies
    # while a slow fsync holds back its AOF writes); the tests' claim is "no
    # acknowledged state lost", and they test what is shipped.
    srv = RedisServer(tmp_path / "redis")
    try:
        yield srv
    finally:
        if srv.started:
            with contextlib.suppress(Exception):
                srv.stop()

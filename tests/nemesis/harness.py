"""A fleet across "hosts" (netns.py) under a nemesis, and the checker.

Core services run in the core namespace on 169.254.0.1: one Kafka broker
(deploy/kafka/start.sh with KAFKA_HOST) and one redis-server (appendonly,
fsync'd on every write), each restartable on its data. Each host runs one
snakefleet-supervisor (with its own Python pool) inside its namespace.

The checker produces a known workload from the machine's namespace: S
sessions, each sent the executes 1..N of `snakefleet.examples:record`
(which appends its argument to state["seq"] and returns the list's length),
in order, at a steady rate, each request timed from when it was due. It
reads every reply, then every session's final state, and reports lost
requests, double effects, order violations, replies that contradict the
state, duplicate replies (and whether they matched), error replies by type,
final lag, and per fault the time until every session it touched was
answered again and the p99 latency during and after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from netns import CORE_ADDR, Host, Net, kill_all_in, sh

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
KAFKA_PORT, REDIS_PORT = 19092, 16379
PARTITIONS = 8
RECORD = {"kind": "callable", "entry": "snakefleet.examples:record"}


def wait_for(pred: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- core services


class Core:
    """Kafka and Redis in the core namespace, each restartable on its data."""

    def __init__(self, net: Net, workdir: Path):
        self.net = net
        self.dir = workdir
        self.kafka_dir = workdir / "kafka"
        self.redis_dir = workdir / "redis"
        self.redis: subprocess.Popen[bytes] | None = None
        self.bootstrap = f"{CORE_ADDR}:{KAFKA_PORT}"
        self.redis_url = f"redis://{CORE_ADDR}:{REDIS_PORT}"
        net.ports.update(kafka=KAFKA_PORT, redis=REDIS_PORT)

    def start_kafka(self) -> None:
        env = dict(os.environ, KAFKA_HOST=CORE_ADDR)
        topics = "snakefleet.telemetry:1,snakefleet.dlq:1"
        r = subprocess.run(
            ["ip", "netns", "exec", self.net.core, str(ROOT / "deploy/kafka/start.sh"),
             "-d", str(self.kafka_dir), "-p", str(KAFKA_PORT), "-t", topics],
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(f"kafka/start.sh failed: {r.stderr[-3000:]}")

    def stop_kafka(self, keep: bool = True) -> None:
        env = dict(os.environ, KEEP="1" if keep else "0")
        subprocess.run(
            [str(ROOT / "deploy/kafka/stop.sh"), str(self.kafka_dir)],
            env=env, capture_output=True, timeout=90,
        )  # fmt: skip

    def start_redis(self) -> None:
        self.redis_dir.mkdir(exist_ok=True)
        log = open(self.redis_dir / "log", "ab")  # noqa: SIM115 (closed with the process)
        self.redis = subprocess.Popen(
            ["ip", "netns", "exec", self.net.core, "redis-server", "--bind", CORE_ADDR,
             "--port", str(REDIS_PORT), "--dir", str(self.redis_dir), "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction",
             "--protected-mode", "no"],  # reachable only inside the namespaces made here
            stdout=log, stderr=log,
        )  # fmt: skip
        wait_for(lambda: self.redis_cli("PING") == "PONG", 30, "redis-server to answer")

    def redis_cli(self, *args: str) -> str:
        r = subprocess.run(
            ["redis-cli", "-h", CORE_ADDR, "-p", str(REDIS_PORT), *args],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        return r.stdout.strip()

    def kill_redis(self) -> None:
        """SIGKILL (fsync'd on every write: nothing acknowledged is lost)."""
        if self.redis and self.redis.poll() is None:
            for pid in self.redis_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.redis.wait(10)

    def redis_pids(self) -> list[int]:
        out = sh("pgrep", "-f", f"redis-server {CORE_ADDR}:{REDIS_PORT}", check=False)
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        self.kill_redis()
        self.stop_kafka(keep=False)


# ---------------------------------------------------------------- supervisors


class HostSupervisor:
    """The supervisor of one host, started inside its namespace."""

    def __init__(self, host: Host, core: Core, topics: Topics, logdir: Path, binary: str):
        self.host = host
        self.core = core
        self.topics = topics
        self.id = f"{topics.prefix}-h{host.index}"
        self.log_path = logdir / f"h{host.index}.log"
        self.binary = binary
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = False

    def args(self) -> list[str]:
        o = {
            "kafka.bootstrap.servers": self.core.bootstrap,
            "redis.url": self.core.redis_url,
            "supervisor.id": self.id,
            "topics.requests": self.topics.requests,
            "topics.replies": self.topics.replies,
            "topics.group": self.topics.group,
            "pool.pool_size": 2,
            "pool.max_overflow": 0,
            "pool.checkout_timeout": 60000,
            "telemetry.interval": 1000,
            "kafka.session.timeout.ms": 6000,
            "kafka.heartbeat.interval.ms": 500,
            "kafka.auto.commit.interval.ms": 1000,
            "redis.retry_timeout": 60000,
            "python.executable": str(VENV_PYTHON),
            "supervisor.shutdown_timeout": 10000,
        }
        return [f"--{k}={v}" for k, v in o.items()]

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.host.ns, self.binary, *self.args()],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        self.stopped = False

    def pid(self) -> int | None:
        """The supervisor's own pid (ip netns exec execs it, so it is the child's)."""
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def signal(self, sig: int) -> None:
        pid = self.pid()
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def kill_tree(self) -> None:
        """The whole host gone: every process in its namespace, workers too."""
        kill_all_in(self.host.ns)
        if self.proc:
            self.proc.wait(10)

    def events(self, name: str) -> list[str]:
        if not self.log_path.exists():
            return []
        return [ln for ln in self.log_path.read_text(errors="replace").splitlines()
                if f"event={name} " in ln or ln.endswith(f"event={name}")]  # fmt: skip

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill_tree()


# ---------------------------------------------------------------- topics


@dataclass
class Topics:
    prefix: str
    requests: str
    replies: str
    group: str

    @staticmethod
    def make(core: Core, prefix: str) -> Topics:
        t = Topics(prefix, f"{prefix}.requests", f"{prefix}.replies", f"{prefix}.group")
        admin = AdminClient({"bootstrap.servers": core.bootstrap, "log_level": 4})
        fs = admin.create_topics(
            [NewTopic(t.requests, PARTITIONS, 1), NewTopic(t.replies, 4, 1)],
            operation_timeout=30,
        )
        for f in fs.values():
            f.result(60)
        return t


# ---------------------------------------------------------------- the checker


@dataclass
class Fault:
    name: str
    host: int  # 0: the core (broker, Redis)
    start: float
    end: float = 0.0  # healed (or the process started again)


@dataclass
class Checker:
    """Produces the workload, reads the replies, and judges."""

    core: Core
    topics: Topics
    sessions: int = 24
    rate: float = 300.0  # requests per second over all sessions
    sent: dict[str, float] = field(default_factory=dict)  # id -> when it was due
    replies: dict[str, list[tuple[float, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    next_seq: dict[str, int] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.names = [f"{self.topics.prefix}-s{i}" for i in range(self.sessions)]
        self.producer = Producer(
            {
                "bootstrap.servers": self.core.bootstrap,
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 300000,
                "log_level": 2,
            }
        )
        self.stop_reading = threading.Event()
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _send(self, rid: str, session: str, op: str, **kw: Any) -> None:
        req = {"v": 1, "id": rid, "session": session, "op": op, "reply_to": self.topics.replies}
        req.update(kw)
        while True:
            try:
                self.producer.produce(
                    self.topics.requests, key=session, value=msgpack.packb(req, use_bin_type=True)
                )
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def _read(self) -> None:
        c = Consumer(
            {
                "bootstrap.servers": self.core.bootstrap,
                "group.id": f"{self.topics.prefix}-checker",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "log_level": 2,
            }
        )
        c.assign([TopicPartition(self.topics.replies, p, OFFSET_BEGINNING) for p in range(4)])
        while not self.stop_reading.is_set():
            for m in c.consume(500, 0.2):
                if m.error():
                    continue
                t = time.monotonic()
                msg = msgpack.unpackb(m.value(), raw=False)
                with self.lock:
                    self.replies[str(msg.get("id"))].append((t, msg))
        c.close()

    def setup(self) -> None:
        for s in self.names:
            self._send(f"{s}/create", s, "create_session", args={"state": {}})
            self._send(f"{s}/prog", s, "create_program", program="rec", args={"spec": RECORD})
            self.next_seq[s] = 1
        self.producer.flush(60)
        ids = [f"{s}/{x}" for s in self.names for x in ("create", "prog")]
        self.wait_ids(ids, 120)

    def run(self, seconds: float, nemesis: Nemesis | None = None) -> None:
        """The executes, round robin over the sessions at `rate`, for `seconds`."""
        t0 = time.monotonic()
        n = 0
        while True:
            due = t0 + n / self.rate
            now = time.monotonic()
            if due - t0 >= seconds:
                break
            if due > now:
                time.sleep(min(due - now, 0.05))
                if nemesis:
                    nemesis.tick()
                continue
            s = self.names[n % len(self.names)]
            k = self.next_seq[s]
            self.next_seq[s] = k + 1
            rid = f"{s}/{k}"
            self.sent[rid] = due
            self._send(rid, s, "execute_program", program="rec", args={"op": k})
            n += 1
        if nemesis:
            nemesis.finish()
        self.producer.flush(120)

    def wait_ids(self, ids: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(i in self.replies for i in ids):
                    return True
            time.sleep(0.2)
        return False

    def finish(self, timeout: float = 180) -> Report:
        """Waits for every reply (up to timeout), reads every final state, judges."""
        self.wait_ids(list(self.sent), timeout)
        finals = [f"{s}/final" for s in self.names]
        for s in self.names:
            self._send(f"{s}/final", s, "get_session_state")
        self.producer.flush(60)
        self.wait_ids(finals, 120)
        time.sleep(2)  # late duplicates
        self.stop_reading.set()
        self.reader.join(10)
        return self.judge()

    def judge(self) -> Report:
        r = Report()
        r.requests = len(self.sent)
        states: dict[str, list[int]] = {}
        for s in self.names:
            reps = self.replies.get(f"{s}/final", [])
            ok = [m for _, m in reps if m.get("ok")]
            if not ok:
                r.problems.append(f"session {s}: no final state ({[m for _, m in reps]})")
                continue
            states[s] = list((ok[-1].get("result") or {}).get("seq", []))
        lat: list[tuple[float, float, str]] = []  # (due, latency, session)
        for rid, due in self.sent.items():
            reps = self.replies.get(rid, [])
            if not reps:
                r.lost.append(rid)
                continue
            first_t, first = reps[0]
            lat.append((due, first_t - due, rid.rsplit("/", 1)[0]))
            if len(reps) > 1:
                r.duplicates += 1
                if any(m != first for _, m in reps[1:]):
                    r.duplicates_differing.append(rid)
            if not first.get("ok"):
                r.errors[str((first.get("error") or {}).get("type"))] += 1
                continue
            s, k = rid.rsplit("/", 1)
            seq = states.get(s)
            pos = first.get("result")
            if seq is not None and (
                not isinstance(pos, int) or pos < 1 or pos > len(seq) or seq[pos - 1] != int(k)
            ):
                r.contradicted.append(f"{rid}: reply says position {pos}")
        for s, seq in states.items():
            c = Counter(seq)
            r.double_effects += sum(v - 1 for v in c.values() if v > 1)
            if any(b <= a for a, b in zip(seq, seq[1:], strict=False)):
                r.order_violations.append(s)
            sent = {int(rid.rsplit("/", 1)[1]) for rid in self.sent if rid.rsplit("/", 1)[0] == s}
            answered_ok = {
                int(rid.rsplit("/", 1)[1])
                for rid in self.sent
                if rid.rsplit("/", 1)[0] == s
                and self.replies.get(rid)
                and self.replies[rid][0][1].get("ok")
            }
            missing = answered_ok - set(seq)
            if missing:
                r.contradicted.append(f"{s}: answered ok but not in the state: {sorted(missing)}")
            extra = set(seq) - sent
            if extra:
                r.contradicted.append(f"{s}: in the state but never sent: {sorted(extra)}")
        r.recovery = self._recovery(lat)
        r.p99_ms = p99([x for _, x, _ in lat]) * 1000
        r.lag = self.final_lag()
        return r

    def _recovery(self, lat: list[tuple[float, float, str]]) -> list[dict[str, Any]]:
        """Per fault: seconds from its start until every session was answered
        again (the first reply to each session's first request due after the
        fault), and p99 latency of the requests due during that time and of
        those due after it, until the next fault."""
        out = []
        lat.sort()
        for i, f in enumerate(self.faults):
            nxt = self.faults[i + 1].start if i + 1 < len(self.faults) else float("inf")
            after = [(d, x, s) for d, x, s in lat if f.start <= d < nxt]
            first: dict[str, float] = {}
            for d, x, s in after:
                first.setdefault(s, d + x)
            back = max(first.values(), default=f.start)
            rec = max(0.0, back - f.start)
            during = [x for d, x, _ in after if d <= back]
            later = [x for d, x, _ in after if d > back]
            out.append(
                {
                    "fault": f.name,
                    "host": f.host,
                    "at_s": round(f.start - self.faults[0].start, 1),
                    "lasted_s": round((f.end or f.start) - f.start, 1),
                    "recovered_s": round(rec, 1),
                    "p99_during_ms": round(p99(during) * 1000),
                    "p99_after_ms": round(p99(later) * 1000),
                }
            )
        return out

    def final_lag(self) -> int:
        c = Consumer(
            {
                "bootstrap.servers": self.core.bootstrap,
                "group.id": self.topics.group,
                "log_level": 2,
            }
        )
        try:
            tps = [TopicPartition(self.topics.requests, p) for p in range(PARTITIONS)]
            committed = c.committed(tps, timeout=20)
            lag = 0
            for tp in committed:
                _, hi = c.get_watermark_offsets(tp, timeout=10)
                lag += hi - max(tp.offset, 0)
            return lag
        finally:
            c.close()


def p99(xs: list[float]) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


@dataclass
class Report:
    requests: int = 0
    lost: list[str] = field(default_factory=list)
    double_effects: int = 0
    order_violations: list[str] = field(default_factory=list)
    contradicted: list[str] = field(default_factory=list)
    duplicates: int = 0
    duplicates_differing: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    recovery: list[dict[str, Any]] = field(default_factory=list)
    p99_ms: float = 0.0
    lag: int = 0

    def ok(self) -> bool:
        return not (
            self.lost
            or self.double_effects
            or self.order_violations
            or self.contradicted
            or self.problems
        )

    def text(self) -> str:
        lines = [
            f"requests {self.requests}; lost {len(self.lost)}; double effects "
            f"{self.double_effects}; order violations {len(self.order_violations)}; replies "
            f"contradicting the state {len(self.contradicted)}; duplicate replies "
            f"{self.duplicates} ({len(self.duplicates_differing)} differing); error replies "
            f"{dict(self.errors) or 0}; final lag {self.lag}; p99 {self.p99_ms:.0f} ms",
        ]
        for x in self.lost[:5] + self.contradicted[:5] + self.problems[:5]:
            lines.append(f"  ! {x}")
        if self.order_violations:
            lines.append(f"  ! order violated in {self.order_violations[:5]}")
        for f in self.recovery:
            lines.append("  fault " + json.dumps(f))
        return "\n".join(lines)


# ---------------------------------------------------------------- the nemesis

FAULTS = (
    "cut_kafka",
    "cut_redis",
    "cut_both",
    "slow",
    "sigkill",
    "sigstop",
    "kill_host",
    "broker_restart",
    "redis_restart",
)


class Nemesis:
    """Injects faults, one at a time: `inject` now, or a random schedule from a
    seed (`schedule`), driven by the checker's loop (`tick`). Every fault is
    healed (or the process it killed started again) after its duration."""

    def __init__(self, net: Net, core: Core, sups: list[HostSupervisor], checker: Checker):
        self.net = net
        self.core = core
        self.sups = sups
        self.checker = checker
        self.rng: random.Random | None = None
        self.kinds: tuple[str, ...] = FAULTS
        self.active: tuple[Fault, float] | None = None  # the fault and when it heals
        self.next_at = 0.0
        self.log: list[str] = []

    def schedule(self, seed: int, kinds: tuple[str, ...] = FAULTS, first_after: float = 5) -> None:
        self.rng = random.Random(seed)
        self.kinds = kinds
        self.next_at = time.monotonic() + first_after

    def note(self, what: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {what}"
        self.log.append(line)
        print(f"nemesis: {line}", flush=True)

    def inject(self, kind: str, host: int = 1, duration: float = 8.0) -> None:
        sup = self.sups[host - 1 if host else 0]  # core faults (host 0) use neither
        h = self.net.hosts[host - 1 if host else 0]
        if kind == "cut_kafka":
            self.net.cut(h, kafka=True)
        elif kind == "cut_redis":
            self.net.cut(h, redis=True)
        elif kind == "cut_both":
            self.net.cut(h, kafka=True, redis=True)
        elif kind == "slow":
            self.net.slow(h)
        elif kind == "sigkill":
            sup.signal(signal.SIGKILL)
        elif kind == "sigstop":
            sup.signal(signal.SIGSTOP)
        elif kind == "kill_host":
            sup.kill_tree()
        elif kind == "broker_restart":
            self.core.stop_kafka(keep=True)
        elif kind == "redis_restart":
            self.core.kill_redis()
        f = Fault(kind, host, time.monotonic())
        self.checker.faults.append(f)
        self.active = (f, f.start + duration)
        self.note(f"inject {kind} host={host} for {duration:.1f} s")

    def heal(self) -> None:
        if self.active is None:
            return
        f, _ = self.active
        self.active = None
        sup = self.sups[f.host - 1 if f.host else 0]
        h = self.net.hosts[f.host - 1 if f.host else 0]
        if f.name in ("cut_kafka", "cut_redis", "cut_both", "slow"):
            self.net.heal(h)
        elif f.name == "sigstop":
            sup.signal(signal.SIGCONT)
        elif f.name in ("sigkill", "kill_host"):
            sup.start()
        elif f.name == "broker_restart":
            self.core.start_kafka()
        elif f.name == "redis_restart":
            self.core.start_redis()
        f.end = time.monotonic()
        self.note(f"heal {f.name} host={f.host}")

    def tick(self) -> None:
        now = time.monotonic()
        if self.active and now >= self.active[1]:
            self.heal()
            if self.rng:
                self.next_at = now + self.rng.uniform(4, 10)
        if self.rng and self.active is None and now >= self.next_at:
            kind = self.rng.choice(self.kinds)
            core = kind in ("broker_restart", "redis_restart")
            host = 0 if core else self.rng.randint(1, len(self.sups))
            # past the group's session timeout (6 s) for a stopped one: a zombie that wakes
            duration = self.rng.uniform(8, 12) if kind == "sigstop" else self.rng.uniform(3, 10)
            self.inject(kind, host, duration)

    def finish(self) -> None:
        while self.active:
            time.sleep(0.1)
            self.tick()


def reset_dir(p: Path) -> Path:
    shutil.rmtree(p, ignore_errors=True)
    p.mkdir(parents=True)
    return p

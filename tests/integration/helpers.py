"""Helpers the integration tests share (the fixtures, and the servers and
supervisors they start, are in conftest.py): the requests of a session's setup
and of rounds of ops, the checks after a disruption (each op once, in order:
check_sessions, check_counters), the wire contract's schemas, GET /health and
/metrics, and the path of the `snakefleet` CLI.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import RECORD_SPEC, ROOT, KafkaEnv, Record, Replies, Supervisor

PROGRAMS_DIR = str(Path(__file__).resolve().parent / "programs")
# snakefleet.examples:counter plus a 10 ms sleep per increment (programs/it_programs.py)
SLOW_COUNTER_SPEC = {"kind": "callable", "entry": "it_programs:slow_counter"}
CLI = ROOT / "build" / "release" / "cli" / "snakefleet"


# ---------------------------------------------------------------- a session's requests and replies


def setup_requests(
    env: KafkaEnv,
    s: str,
    program: str = "rec",
    spec: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """create_session + create_program: the first two requests of a session
    (the session FIFO keeps them before its execute_program requests)."""
    return [
        env.request(f"{s}/create", s, "create_session", args={"state": state or {}}),
        env.request(
            f"{s}/prog-{program}",
            s,
            "create_program",
            program=program,
            args={"spec": spec or RECORD_SPEC},
        ),
    ]


def exec_id(s: str, k: int) -> str:
    return f"{s}/op{k}"


def op_of(reply_id: str) -> int | None:
    _, sep, k = reply_id.rpartition("/op")
    return int(k) if sep and k.isdigit() else None


def produce_round(env: KafkaEnv, sessions: list[str], k: int) -> list[str]:
    ids = []
    for s in sessions:
        env.send(env.request(exec_id(s, k), s, "execute_program", program="rec", args={"op": k}))
        ids.append(exec_id(s, k))
    return ids


def produce_setup(
    env: KafkaEnv, sessions: list[str], spec: dict[str, Any] | None = None
) -> list[str]:
    ids = []
    for s in sessions:
        for r in setup_requests(env, s, spec=spec):
            env.send(r)
            ids.append(r["id"])
    return ids


def disrupt_mid_burst(
    env: KafkaEnv,
    replies: Replies,
    sessions: list[str],
    victim: Any,
    warm: int,
    burst: int,
    spec: dict[str, Any] | None = None,
) -> tuple[list[str], int]:
    """Sets the sessions up and runs ops [0, warm) to completion, then produces
    ops [warm, burst) at once and returns as soon as `victim` has answered one
    of them: the victim then holds consumed, unfinished work. Returns the ids
    produced and the number of replies seen at that point."""
    ids = produce_setup(env, sessions, spec)
    for k in range(warm):
        ids += produce_round(env, sessions, k)
    env.flush()
    replies.wait_ids(ids, 120)
    burst_ids: set[str] = set()
    for k in range(warm, burst):
        burst_ids.update(produce_round(env, sessions, k))
    env.flush()
    ids += sorted(burst_ids)

    def victim_busy(recs: list[Record]) -> bool:
        return any(
            isinstance(r.msg, dict)
            and r.msg.get("id") in burst_ids
            and r.msg.get("supervisor") == victim.id
            for r in recs
        )

    deadline = time.monotonic() + 60
    while not victim_busy(replies.records):
        if time.monotonic() > deadline:
            pytest.fail(f"{victim.id} answered nothing of the burst within 60 s")
        for m in replies.c.consume(num_messages=20, timeout=0.05):
            if not m.error():
                replies.records.append(Record.of(m))
    return ids, len(replies.records)


def exec_streams(replies: Replies) -> dict[str, list[int]]:
    """Per session, the op numbers of its execute_program replies in the order
    they are on the reply topic (a session's replies share one partition)."""
    out: dict[str, list[int]] = {}
    for r in replies.records:
        m = r.msg
        if isinstance(m, dict):
            k = op_of(m.get("id", ""))
            if k is not None:
                out.setdefault(m["session"], []).append(k)
    return out


def wait_replies(replies: Replies, n: int, timeout: float) -> None:
    replies.wait_for(lambda recs: len(recs) >= n, timeout, f"{n} replies")


# ---------------------------------------------------------------- checks: every op once, in order


def final_states(
    env: KafkaEnv, replies: Replies, sessions: list[str], tag: str = "final"
) -> dict[str, Any]:
    """get_session_state of every session, asked after everything else was answered."""
    ids = {}
    for s in sessions:
        rid = f"{s}/{tag}"
        env.send(env.request(rid, s, "get_session_state"))
        ids[rid] = s
    env.flush()
    byid = replies.wait_ids(list(ids), 120)
    out = {}
    for rid, s in ids.items():
        rep = byid[rid][-1]
        assert rep["ok"], f"get_session_state of {s} failed: {rep}"
        out[s] = rep["result"]
    return out


def check_replayed_sequence(seq: list[int], n: int) -> str | None:
    """Checks one session's ops 0..n-1 as seen under at-least-once delivery;
    returns what is wrong, or None.

    Why this shape: a supervisor that dies (SIGKILL) or loses a partition in a
    rebalance after handling some of a session's requests, but before their
    offsets were committed, makes the partition's next owner re-consume from
    the last committed offset, so the requests from that offset on are
    delivered again, in order. With request-id dedupe (docs/DESIGN.md guarantee 3)
    a redelivered request does not run again: it gets its cached reply again.
    So the *reply stream* of a session may contain replays, and so would its
    *executions* if dedupe were off or broken. Either way what must hold
    (guarantees 1 and 2) is:
      - order: each element is either the next op (previous + 1) or the start
        of a replay at an earlier op (<= previous); a jump forward would mean
        an op was handled before its predecessor, i.e. order broken or a
        request lost;
      - it starts at op 0;
      - every op 0..n-1 is there, and the last element is op n-1 (nothing
        after the session's last op, nothing missing at the end).
    The tests apply it to reply streams; the session state (the executions
    that took effect) must be exactly [0, 1, ..., n-1] because of dedupe.
    """
    if not seq:
        return "no execution at all"
    if seq[0] != 0:
        return f"starts at op {seq[0]}, not 0: {seq}"
    for i in range(1, len(seq)):
        prev, cur = seq[i - 1], seq[i]
        if cur != prev + 1 and cur > prev:
            return f"op {cur} ran right after op {prev} (ops skipped or reordered): {seq}"
    missing = set(range(n)) - set(seq)
    if missing:
        return f"ops {sorted(missing)} never ran: {seq}"
    if seq[-1] != n - 1:
        return f"ends at op {seq[-1]}, not {n - 1}: {seq}"
    if any(not 0 <= x < n for x in seq):
        return f"unknown ops in {seq}"
    return None


def assert_all_ok(byid: dict[str, list[dict[str, Any]]]) -> None:
    bad = {rid: reps for rid, reps in byid.items() if not all(r["ok"] for r in reps)}
    assert not bad, f"{len(bad)} requests got error replies, e.g. {list(bad.items())[:3]}"


def check_sessions(
    env: KafkaEnv, replies: Replies, sessions: list[str], nops: int, sups: list[Any]
) -> str:
    """The checks after a disruption (kill, join, drain): every session's reply
    stream has the at-least-once shape (check_replayed_sequence), a request
    answered twice got the same reply twice (the cached one: guarantee 3),
    and each session's state shows every op taking effect exactly once, in
    order. Returns a one-line summary."""
    streams = exec_streams(replies)
    for s in sessions:
        problem = check_replayed_sequence(streams.get(s, []), nops)
        assert problem is None, f"session {s}, replies: {problem}"
    byid = replies.by_id()
    dups = {rid: reps for rid, reps in byid.items() if len(reps) > 1}
    for rid, reps in dups.items():
        assert all(r == reps[0] for r in reps[1:]), f"{rid} answered differently: {reps}"
    states = final_states(env, replies, sessions)
    for s in sessions:
        assert states[s] == {"seq": list(range(nops))}, (
            f"session {s}: ops did not take effect exactly once in order: {states[s]}"
        )
    dedup = sum(len(x.events("request.duplicate")) for x in sups)
    per_sup = Counter(reps[0].get("supervisor") for rid, reps in byid.items() if "/op" in rid)
    return (
        f"{len(dups)} requests answered more than once (identical replies), "
        f"{dedup} cached replies served (request.duplicate); "
        f"execute replies per supervisor: {dict(per_sup)}"
    )


# ---------------------------------------------------------------- counters (SLOW_COUNTER_SPEC)


def setup_session(
    env: KafkaEnv,
    s: str,
    program: str,
    spec: dict[str, Any],
    state: dict[str, Any] | None = None,
) -> list[str]:
    """Produces create_session + create_program of session s; returns the ids."""
    env.send(env.request(f"{s}/create", s, "create_session", args={"state": state or {}}))
    env.send(
        env.request(
            f"{s}/prog-{program}", s, "create_program", program=program, args={"spec": spec}
        )
    )
    return [f"{s}/create", f"{s}/prog-{program}"]


def first_replies(byid: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {rid: reps[0] for rid, reps in byid.items()}


def inc_id(s: str, k: int) -> str:
    return f"{s}/inc{k}"


def counters_under_way(
    env: KafkaEnv, replies: Replies, nsess: int, before: int, answered: int
) -> tuple[list[str], list[str]]:
    """nsess counter sessions (SLOW_COUNTER_SPEC as "ctr") set up and `before`
    increments each produced; returns (sessions, ids) once the setups and the
    first `answered` rounds of increments are answered: load under way."""
    sessions = [env.session(i) for i in range(nsess)]
    ids: list[str] = []
    for s in sessions:
        ids += setup_session(env, s, "ctr", SLOW_COUNTER_SPEC)
    for k in range(before):
        ids += produce_increments(env, sessions, k)
    env.flush()
    replies.wait_ids(ids[: 2 * nsess + answered * nsess], 60)
    return sessions, ids


def produce_increments(env: KafkaEnv, sessions: list[str], k: int) -> list[str]:
    ids = []
    for s in sessions:
        env.send(env.request(inc_id(s, k), s, "execute_program", program="ctr", args={"by": 1}))
        ids.append(inc_id(s, k))
    return ids


def check_counters(
    env: KafkaEnv, replies: Replies, sessions: list[str], n: int
) -> dict[str, list[dict[str, Any]]]:
    """Every increment answered ok; per session, the first replies of the n
    increments carry the results 1..n once each, the reply stream has the
    at-least-once shape (replays are cached replies), and the state says n."""
    byid = replies.by_id()
    assert_all_ok({rid: reps for rid, reps in byid.items() if "/inc" in rid})
    for rid, reps in byid.items():
        assert all(r == reps[0] for r in reps[1:]), f"{rid} answered differently: {reps}"
    streams: dict[str, list[int]] = {}
    for r in replies.records:
        m = r.msg
        if isinstance(m, dict) and "/inc" in m.get("id", "") and m.get("ok"):
            streams.setdefault(m["session"], []).append(int(m["result"]) - 1)
    for s in sessions:
        results = sorted(byid[inc_id(s, k)][0]["result"] for k in range(n))
        assert results == list(range(1, n + 1)), f"session {s}: increment results {results}"
        problem = check_replayed_sequence(streams.get(s, []), n)
        assert problem is None, f"session {s}, counter values in reply order: {problem}"
    states = final_states(env, replies, sessions)
    bad = {s: st for s, st in states.items() if st.get("n") != n}
    assert not bad, f"sessions whose counter is not {n}: {bad}"
    return byid


# ---------------------------------------------------------------- the wire contract's schemas


def bin_json(v: Any) -> Any:
    """A decoded msgpack value as the schemas read it (bin -> {"$bin": b64})."""
    if isinstance(v, bytes):
        return {"$bin": base64.b64encode(v).decode()}
    if isinstance(v, dict):
        return {k: bin_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [bin_json(x) for x in v]
    return v


def schema(name: str) -> dict[str, Any]:
    from conftest import ROOT

    return json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())


def schema_errors(name: str, doc: Any) -> list[str]:
    v = jsonschema.Draft202012Validator(schema(name))
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in v.iter_errors(bin_json(doc))
    ]


# ---------------------------------------------------------------- HTTP: /health, /metrics


def http_base(sup: Supervisor) -> str:
    """http://HOST:PORT of a supervisor started with supervisor.http_listen=127.0.0.1:0
    (the port it bound is in its http.listening line)."""
    sup.wait_event("http.listening", timeout=30)
    return "http://" + sup.events("http.listening")[0]["address"]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], str]:
    """(status, headers, body); a 4xx/5xx is returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


PROM_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^{}]*\})? (\S+)$")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text format: every non-comment line `name{labels} value`.
    Returns name{labels} -> value; fails on a line that does not parse."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = PROM_LINE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


class Poller:
    """Polls one URL of a supervisor every `interval` s in a thread; keeps
    (monotonic time, status, body)."""

    def __init__(self, url: str, interval: float = 0.1):
        self.url = url
        self.interval = interval
        self.samples: list[tuple[float, int, str]] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                code, _, body = http_get(self.url, timeout=2)
            except OSError as e:  # refused, reset: the supervisor is gone
                code, body = -1, str(e)
            self.samples.append((time.monotonic(), code, body))
            self._stop.wait(self.interval)

    def __enter__(self) -> Poller:
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join(10)


# ---------------------------------------------------------------- partitioning


def murmur2(data: bytes) -> int:
    """The Java client's Utils.murmur2 (unsigned 32-bit)."""
    m, length = 0x5BD1E995, len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = data[length - length % 4 :]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def murmur2_partition(key: str, partitions: int = 8) -> int:
    """The partition the Java client's default partitioner (librdkafka's
    murmur2_random) gives a key, of `partitions` (the tests' request topics: 8)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions

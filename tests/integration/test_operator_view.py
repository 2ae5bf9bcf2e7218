"""What an operator sees and does with a running fleet: consumer lag that is
right from the first second after a restart, program code changed under a
running fleet, and two fleets sharing one Redis database. Real supervisors
against a real Kafka and a real redis-server (conftest.py).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conftest import TELEMETRY_TOPIC, Fleet, KafkaEnv, Supervisor, free_port, wait_until
from helpers import CLI, http_base, http_get, parse_metrics


def metrics_lag(base: str) -> dict[int, float]:
    """partition -> snakefleet_consumer_lag from /metrics (absent: unknown)."""
    out: dict[int, float] = {}
    for name, v in parse_metrics(http_get(f"{base}/metrics")[2]).items():
        if name.startswith("snakefleet_consumer_lag{"):
            out[int(name.rsplit("/", 1)[1].rstrip('"}'))] = v
    return out


def status_snapshot(kafka: KafkaEnv, tmp_path: Path, sup: Supervisor) -> Any:
    """The newest snapshot of `sup` that `snakefleet status --json` shows, or None."""
    cli = tmp_path / "snakefleet"
    if not cli.exists():
        shutil.copy2(CLI, cli)  # a concurrent rebuild cannot swap it mid-test
    r = subprocess.run(
        [
            str(cli),
            "status",
            "--json",
            "--timeout-ms",
            "3000",
            f"--kafka.bootstrap.servers={kafka.bootstrap}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if r.returncode != 0:
        return None
    mine = [x for x in json.loads(r.stdout)["snapshots"] if x.get("supervisor") == sup.id]
    return mine[0] if mine else None


def telemetry_lag(tel: Any, sup: Supervisor) -> dict[int, int] | None:
    """partition -> lag of the newest telemetry snapshot of `sup`, or None."""
    tel.poll(0.5)
    mine = [r for r in tel.records if r.key == sup.id.encode()]
    if not mine:
        return None
    return {int(k.rsplit("/", 1)[1]): v for k, v in mine[-1].msg["lag"].items()}


@pytest.mark.timeout(240)
def test_lag_is_right_from_the_first_second_after_a_restart(
    kafka: KafkaEnv, fleet: Fleet, tmp_path: Path
) -> None:
    """A supervisor stopped with everything answered and committed, then
    started again: lag 0 on every partition in /metrics, telemetry and
    `snakefleet status` while no request arrives (it used to equal the end
    offsets until a message reached each partition). With requests pending
    that cannot finish (Redis unreachable), the lag counts exactly them."""
    if not CLI.exists():
        pytest.fail(f"{CLI} not built (tests/integration/run.sh builds build/release)")
    opts = {"supervisor.http_listen": "127.0.0.1:0"}
    a = fleet.start(**opts)
    fleet.wait_stable([a])
    replies = kafka.replies()
    ids = [f"{kafka.session(i)}/ping{j}" for i in range(40) for j in range(3)]
    for rid in ids:
        kafka.send(kafka.request(rid, rid.split("/")[0], "ping"))
    kafka.flush()
    replies.wait_ids(ids, 60)
    ends: Counter[int] = Counter(p for _, p, _, _, _ in kafka.delivered)
    assert len(ends) == 8, f"the sessions should cover all 8 partitions: {ends}"
    assert a.stop() == 0
    committed = kafka.committed(list(range(8)))
    assert committed == dict(ends), f"committed {committed}, produced {dict(ends)}"

    tel = kafka.reader(TELEMETRY_TOPIC, from_end=True)
    b = fleet.start(**opts)
    fleet.wait_stable([b])
    base = http_base(b)
    lag = wait_until(
        lambda: (m := metrics_lag(base)) and len(m) == 8 and m,
        15,
        "/metrics to show the lag of all 8 partitions",
    )
    assert all(v == 0 for v in lag.values()), f"lag after a clean restart: {lag}"
    tlag = wait_until(lambda: telemetry_lag(tel, b), 15, f"a telemetry snapshot of {b.id}")
    assert tlag == {p: 0 for p in range(8)}, f"telemetry lag after a clean restart: {tlag}"
    snap = wait_until(lambda: status_snapshot(kafka, tmp_path, b), 20, f"{b.id} in status")
    assert all(v == 0 for v in snap["lag"].values()), f"status lag: {snap['lag']}"
    assert b.stop() == 0

    # Requests that cannot finish: the next owner cannot reach Redis.
    kafka.delivered.clear()
    pend = [f"{kafka.session(i)}/pending" for i in range(12)]
    for rid in pend:
        kafka.send(kafka.request(rid, rid.split("/")[0], "ping"))
    kafka.flush()
    pending: Counter[int] = Counter(p for _, p, _, _, _ in kafka.delivered)
    c = fleet.start(
        **opts,
        redis__url=f"redis://127.0.0.1:{free_port()}",
        supervisor__shutdown_timeout=2000,
    )
    base = http_base(c)
    want = {p: float(pending.get(p, 0)) for p in range(8)}
    wait_until(
        lambda: metrics_lag(base) == want,
        20,
        f"/metrics lag {want} (the pending requests)",
    )
    assert not replies.by_id().keys() & set(pend), "a pending request was answered"
    c.kill()


MODULE_V1 = """
def count(ctx, by=1):
    ctx.state["n"] = int(ctx.state.get("n", 0)) + by
    return ctx.state["n"]
"""
MODULE_V2 = (
    MODULE_V1
    + """

def twice(ctx):
    return "new code"
"""
)


def setup_sessions(kafka: KafkaEnv, replies: Any, sessions: list[str], entry: str) -> None:
    ids = []
    for s in sessions:
        kafka.send(kafka.request(f"{s}/create", s, "create_session", args={"state": {}}))
        spec = {"spec": {"kind": "callable", "entry": entry}}
        kafka.send(kafka.request(f"{s}/prog", s, "create_program", program="c", args=spec))
        ids += [f"{s}/create", f"{s}/prog"]
    kafka.flush()
    byid = replies.wait_ids(ids, 60)
    bad = {r: v for r, v in byid.items() if not v[0]["ok"]}
    assert not bad, bad


@pytest.mark.timeout(240)
def test_changed_program_code_is_picked_up_by_sighup_under_load(
    kafka: KafkaEnv, fleet: Fleet, tmp_path: Path
) -> None:
    """A function added to the user's module while the fleet serves a steady
    stream of counter executes: `invalid_program` before, found after SIGHUP,
    with every execute answered once and ok and every counter exact (no call
    cut short, none lost, none run twice) across the rolling replacement."""
    mod_dir = tmp_path / "code"
    mod_dir.mkdir()
    (mod_dir / "user_mod.py").write_text(MODULE_V1)
    sup = fleet.start(python__path=str(mod_dir), pool__pool_size=3, python__preload="user_mod")
    fleet.wait_stable([sup])
    replies = kafka.replies()
    sessions = [kafka.session(i) for i in range(12)]
    setup_sessions(kafka, replies, sessions, "user_mod:count")

    def new_fn(tag: str) -> dict[str, Any]:
        s = sessions[0]
        spec = {"spec": {"kind": "callable", "entry": "user_mod:twice"}}
        kafka.send(kafka.request(f"{s}/{tag}-p", s, "create_program", program="t", args=spec))
        kafka.send(kafka.request(f"{s}/{tag}-x", s, "execute_program", program="t", args={}))
        kafka.flush()
        got = replies.wait_ids([f"{s}/{tag}-p", f"{s}/{tag}-x"], 60)
        return got[f"{s}/{tag}-p"][0]

    before = new_fn("before")
    assert not before["ok"] and before["error"]["type"] == "invalid_program", before

    rounds = 30
    ids: list[str] = []
    for r in range(rounds):
        for s in sessions:
            rid = f"{s}/x{r}"
            kafka.send(kafka.request(rid, s, "execute_program", program="c", args={}))
            ids.append(rid)
        if r == rounds // 3:
            kafka.flush()
            (mod_dir / "user_mod.py").write_text(MODULE_V2)
            sup.signal(signal.SIGHUP)
        kafka.producer.poll(0.02)
    kafka.flush()
    sup.wait_event("pool.reloaded", timeout=60)
    got = replies.wait_ids(ids, 120)
    byid = {rid: got[rid] for rid in ids}
    twice = {rid: len(v) for rid, v in byid.items() if len(v) != 1}
    assert not twice, f"answered more than once: {list(twice.items())[:5]}"
    bad = {rid: v[0] for rid, v in byid.items() if not v[0]["ok"]}
    assert not bad, f"{len(bad)} executes failed across the reload: {list(bad.items())[:3]}"
    for s in sessions:
        got = [byid[f"{s}/x{r}"][0]["result"] for r in range(rounds)]
        assert got == list(range(1, rounds + 1)), f"{s}: {got}"

    after = new_fn("after")
    assert after["ok"], after
    x = replies.by_id()[f"{sessions[0]}/after-x"][0]
    assert x["ok"] and x["result"] == "new code", x
    recycled = [e for e in sup.events("pool.worker_recycle") if e.get("reason") == "reload"]
    assert len(recycled) >= 3, f"every worker replaced: {recycled}"
    assert sup.alive(), "SIGHUP must not stop the supervisor"


@pytest.mark.timeout(240)
def test_two_fleets_share_one_redis_database_with_their_own_key_prefix(
    kafka: KafkaEnv, fleet: Fleet
) -> None:
    """Two fleets with the same session ids, each on its own request topic,
    one Redis database: with their own redis.key_prefix neither sees the
    other's sessions, and every counter is exact for each."""
    replies = kafka.replies()
    other_topic = kafka.create_topic(f"{kafka.prefix}.requests-b", 8)
    # On one broker two fleets cannot share a topic, so fleet B reads its own;
    # what they share is every session id, which shared the keys
    # sf:{S}:state and sf:{S}:programs before redis.key_prefix: B's
    # create_session reset A's counters. (Lease keys apart: test_store.c.)
    a = fleet.start(redis__key_prefix="blue")
    b = fleet.start(
        redis__key_prefix="green",
        topics__requests=other_topic,
        topics__group=f"{kafka.group}-b",
    )
    fleet.wait_stable([a])
    sessions = [kafka.session(i) for i in range(6)]
    tag = {kafka.requests: "a", other_topic: "b"}
    for topic in (kafka.requests, other_topic):
        for s in sessions:
            kafka.send(
                kafka.request(f"{s}/{tag[topic]}create", s, "create_session", args={"state": {}}),
                topic=topic,
            )
            spec = {"spec": {"kind": "callable", "entry": "snakefleet.examples:counter"}}
            kafka.send(
                kafka.request(f"{s}/{tag[topic]}prog", s, "create_program", program="c", args=spec),
                topic=topic,
            )
    kafka.flush()
    made = [f"{s}/{t}{what}" for s in sessions for t in "ab" for what in ("create", "prog")]
    got = replies.wait_ids(made, 60)
    assert all(got[rid][0]["ok"] for rid in made), {rid: got[rid] for rid in made}
    n = {kafka.requests: 20, other_topic: 7}
    ids = []
    for i in range(20):
        for topic in (kafka.requests, other_topic):
            if i >= n[topic]:
                continue
            for s in sessions:
                rid = f"{s}/{tag[topic]}x{i}"
                kafka.send(
                    kafka.request(rid, s, "execute_program", program="c", args={}), topic=topic
                )
                ids.append(rid)
    kafka.flush()
    got = replies.wait_ids(ids, 120)
    byid = {rid: got[rid] for rid in ids}
    bad = {rid: v[0] for rid, v in byid.items() if not v[0]["ok"]}
    assert not bad, f"{len(bad)} failed: {list(bad.items())[:3]}"
    for topic in (kafka.requests, other_topic):
        for s in sessions:
            last = byid[f"{s}/{tag[topic]}x{n[topic] - 1}"][0]["result"]
            assert last == n[topic], f"{topic} {s}: counter {last}, want {n[topic]}"
    assert not a.has_event("store.fenced") and not b.has_event("store.fenced")

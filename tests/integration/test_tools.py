"""The tools around a supervisor, against a real supervisor on the real broker:
telemetry on snakefleet.telemetry (valid against
schemas/telemetry.schema.json), GET /health and /metrics, the `snakefleet` CLI
(submit, loadtest, status), and the binary under test. What an operator sees of
a running fleet is also in test_operator_view.py.

Same isolation as the other integration tests (conftest.py): every test has its
own request topic, reply topic, consumer group and session ids, and stops every
process it starts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import TELEMETRY_TOPIC, Fleet, KafkaEnv, Record, now_ms, wait_until
from helpers import CLI, http_base, http_get, parse_metrics, schema, schema_errors


def test_environment() -> None:
    """The binary under test (printed for the log)."""
    from conftest import ENV_MISSING, SUPERVISOR

    if ENV_MISSING:
        pytest.skip(ENV_MISSING)

    assert os.access(SUPERVISOR, os.X_OK), SUPERVISOR
    print(f"supervisor binary: {SUPERVISOR}")


@pytest.mark.timeout(120)
def test_telemetry_snapshot_matches_the_schema(kafka: KafkaEnv, fleet: Fleet) -> None:
    """Telemetry every interval on snakefleet.telemetry, keyed by the
    supervisor id, valid against schemas/telemetry.schema.json."""
    tel = kafka.reader(TELEMETRY_TOPIC, from_end=True)
    sup = fleet.start()
    fleet.wait_stable([sup])
    replies = kafka.replies()
    ids = [f"{kafka.session(i)}/ping" for i in range(5)]
    for i, rid in enumerate(ids):
        kafka.send(kafka.request(rid, kafka.session(i), "ping"))
    kafka.flush()
    replies.wait_ids(ids, 30)

    def mine(recs: list[Record]) -> list[Record]:
        return [r for r in recs if r.key == sup.id.encode()]

    def settled(recs: list[Record]) -> Any:
        m = [r for r in mine(recs) if r.msg.get("total_commands", 0) >= len(ids)]
        return m or None

    t0 = time.monotonic()
    tel.wait_for(settled, 15, f"a snapshot of {sup.id} counting {len(ids)} commands")
    print(f"snapshot with the commands after {time.monotonic() - t0:.1f} s")
    snaps = mine(tel.records)
    assert snaps, "no telemetry"
    problems = {}
    for r in snaps:
        errs = schema_errors("telemetry", r.msg)
        if errs:
            problems[r.offset] = errs
    assert not problems, f"snapshots not valid against telemetry.schema.json: {problems}"
    last = snaps[-1].msg
    assert last["supervisor"] == sup.id and last["v"] == 1
    assert last["pool_size"] == 2 and last["healthy_workers"] == 2, last
    assert last["total_errors"] == 0, last
    assert abs(last["ts_ms"] - now_ms()) < 60_000
    assert set(last["lag"]) == {f"{kafka.requests}/{p}" for p in range(8)}, last["lag"]
    assert all(v == 0 for v in last["lag"].values()), last["lag"]
    assert last["latency"]["total"]["count"] >= len(ids), last["latency"]
    extra = set(last) - set(schema("telemetry")["properties"])
    print(f"fields the schema does not describe: {sorted(extra)}")


@pytest.mark.timeout(120)
def test_health_and_metrics_endpoints(kafka: KafkaEnv, fleet: Fleet) -> None:
    """/health: 200 and JSON (status healthy, the pool's stats); /metrics:
    Prometheus text, every sample line `name{labels} value`, and
    snakefleet_requests_total counts the requests answered."""
    sup = fleet.start(supervisor__http_listen="127.0.0.1:0")
    fleet.wait_stable([sup])
    base = http_base(sup)
    code, headers, body = http_get(f"{base}/health")
    assert code == 200, (code, body)
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    h = json.loads(body)
    assert h["status"] == "healthy" and h["supervisor"] == sup.id and h["redis"] is True, h
    assert h["partitions"] == 8, h
    assert isinstance(h["pool"], dict) and h["pool"], h
    pool_ints = {k: v for k, v in h["pool"].items() if isinstance(v, int)}
    assert pool_ints, f"no pool numbers in {h['pool']}"

    code, headers, text = http_get(f"{base}/metrics")
    assert code == 200 and headers.get("Content-Type", "").startswith("text/plain"), headers
    m0 = parse_metrics(text)
    for name in (
        "snakefleet_requests_total",
        "snakefleet_held",
        "snakefleet_redis_up",
        "snakefleet_healthy_workers",
        "snakefleet_request_seconds_count",
    ):
        assert name in m0, f"{name} missing from /metrics"
    assert m0["snakefleet_redis_up"] == 1 and m0["snakefleet_pool_size"] == 2, m0
    lags = [k for k in m0 if k.startswith("snakefleet_consumer_lag{")]
    assert len(lags) == 8, lags
    # every metric is declared by # TYPE
    types = set(re.findall(r"^# TYPE (\S+) (counter|gauge|summary)$", text, re.MULTILINE))
    declared = {n for n, _ in types}
    for k in m0:
        name = k.split("{")[0]
        assert name in declared or re.sub(r"_(sum|count)$", "", name) in declared, name

    replies = kafka.replies()
    ids = [f"{kafka.session(i)}/ping" for i in range(7)]
    for i, rid in enumerate(ids):
        kafka.send(kafka.request(rid, kafka.session(i), "ping"))
    kafka.flush()
    replies.wait_ids(ids, 30)
    m1 = parse_metrics(http_get(f"{base}/metrics")[2])
    assert m1["snakefleet_requests_total"] >= m0["snakefleet_requests_total"] + len(ids), (
        m0["snakefleet_requests_total"],
        m1["snakefleet_requests_total"],
    )
    assert m1["snakefleet_request_seconds_count"] >= len(ids)
    assert http_get(f"{base}/nope")[0] == 404
    h1 = json.loads(http_get(f"{base}/health")[2])
    assert h1["requests"] >= len(ids), h1
    print(f"/health: {h1}")


@pytest.mark.timeout(180)
def test_cli_against_a_real_supervisor(kafka: KafkaEnv, fleet: Fleet, tmp_path: Path) -> None:
    """`snakefleet submit`, `loadtest` and `status` against a supervisor on
    the real broker: a JSON reply and exit 0 for a good request, exit 1 for
    an error reply, a load test with no error and no order violation, and
    the supervisor in the fleet status."""
    if not CLI.exists():
        pytest.fail(f"{CLI} not built (tests/integration/run.sh builds build/release)")
    cli = tmp_path / "snakefleet"
    shutil.copy2(CLI, cli)  # a concurrent rebuild cannot swap it mid-test
    sup = fleet.start()
    fleet.wait_stable([sup])
    common = [
        f"--kafka.bootstrap.servers={kafka.bootstrap}",
        f"--topics.requests={kafka.requests}",
        f"--topics.replies={kafka.replies_topic}",
    ]

    def run(cmd: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(cli), cmd, *args, *common],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
        )

    def submit(*args: str) -> tuple[int, dict[str, Any]]:
        r = run("submit", "--timeout-ms", "20000", *args)
        lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
        assert lines, f"submit {args} printed nothing (exit {r.returncode}): {r.stderr}"
        return r.returncode, json.loads(lines[-1])

    s = kafka.session("cli")
    rc, rep = submit("--session", s, "--op", "ping")
    assert rc == 0 and rep["ok"] and rep["result"]["pong"] is True, rep
    assert rep["supervisor"] == sup.id and rep["session"] == s, rep
    rc, rep = submit("--session", s, "--op", "create_session", "--args", '{"state": {"k": 1}}')
    assert rc == 0 and rep["ok"], rep
    spec = {"spec": {"kind": "callable", "entry": "snakefleet.examples:echo"}}
    rc, rep = submit(
        "--session", s, "--op", "create_program", "--program", "e", "--args", json.dumps(spec)
    )
    assert rc == 0 and rep["ok"], rep
    rc, rep = submit(
        "--session",
        s,
        "--op",
        "execute_program",
        "--program",
        "e",
        "--args",
        '{"x": [1, "two"]}',
        "--id",
        f"{s}/exec",
    )
    assert rc == 0 and rep["ok"] and rep["result"] == {"x": [1, "two"]}, rep
    assert rep["id"] == f"{s}/exec", rep
    rc, rep = submit("--session", kafka.session("missing"), "--op", "get_session_state")
    assert rc == 1 and not rep["ok"], (rc, rep)
    assert rep["error"]["type"] == "session_not_found", rep

    r = run(
        "loadtest",
        "--sessions",
        "20",
        "--ops",
        "20",
        "--program-entry",
        "snakefleet.examples:record",
        "--session-prefix",
        f"{kafka.prefix}-lt",
        "--timeout-ms",
        "30000",
        timeout=120,
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert lines, f"loadtest printed nothing (exit {r.returncode}): {r.stderr[-2000:]}"
    summary = json.loads(lines[-1])
    assert r.returncode == 0, (r.returncode, summary, r.stderr[-2000:])
    assert summary["requests"] == 400 and summary["ok"] == 400, summary
    assert summary["errors"] == 0 and summary["order_violations"] == 0, summary
    assert summary["timeouts"] == 0, summary

    def status() -> Any:
        r = run("status", "--json", "--timeout-ms", "3000", "--telemetry.interval=1000")
        if r.returncode != 0:
            return None
        doc = json.loads(r.stdout)
        mine = [x for x in doc["snapshots"] if x.get("supervisor") == sup.id]
        return (doc, mine[0]) if mine and mine[0].get("total_commands", 0) >= 405 else None

    doc, snap = wait_until(status, 30, f"`snakefleet status` to show {sup.id} with the load")
    assert snap["pool_size"] == 2 and snap["healthy_workers"] == 2, snap
    assert "fleet" in doc, doc
    print(
        f"loadtest: {summary['req_per_s']} req/s, p99 {summary['p99_ms']} ms; status: "
        f"{ {k: snap[k] for k in ('total_commands', 'total_errors', 'active_sessions')} }"
    )

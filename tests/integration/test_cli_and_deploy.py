"""`snakefleet-supervisor --dev` and `snakefleet status` together, on the
supervisor's embedded mock cluster (no real Kafka or Redis needed):

  - --dev prints its broker's address on stdout as one KAFKA_BOOTSTRAP=HOST:PORT
    line, flushed, and logs no "no bootstrap.servers" notice;
  - `snakefleet status` beside a stale snapshot (a supervisor gone ten
    minutes ago) lists it apart and sums only the live supervisor.

Uses SNAKEFLEET_IT_SUPERVISOR (else build/release's) and the CLI of
build/release (SNAKEFLEET_IT_CLI to use another).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from confluent_kafka import Producer

from conftest import PIDFILE, ROOT, VENV_PYTHON, wait_until

SUPERVISOR = Path(
    os.environ.get("SNAKEFLEET_IT_SUPERVISOR")
    or ROOT / "build" / "release" / "supervisor" / "snakefleet-supervisor"
)
CLI = Path(os.environ.get("SNAKEFLEET_IT_CLI") or ROOT / "build" / "release" / "cli" / "snakefleet")
TELEMETRY_MS = 500


def closed_port() -> int:
    """A loopback port nothing listens on (so the supervisor's Redis is absent)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def dev_supervisor(tmp_path: Path, sup_id: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """snakefleet-supervisor --dev with one worker; yields it and the address
    it printed. Its stderr (the log) is in tmp_path/<sup_id>.log."""
    if not SUPERVISOR.exists():
        pytest.skip(f"{SUPERVISOR} not built")
    log = tmp_path / f"{sup_id}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                str(SUPERVISOR),
                "--dev",
                f"--supervisor.id={sup_id}",
                "--pool.pool_size=1",
                "--pool.max_overflow=0",
                f"--telemetry.interval={TELEMETRY_MS}",
                f"--redis.url=redis://127.0.0.1:{closed_port()}",
                # the binary may be a copy outside the checkout: name the venv's interpreter
                f"--python.executable={VENV_PYTHON}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=tmp_path,
        )
    if PIDFILE:
        with open(PIDFILE, "a") as f:
            f.write(f"{proc.pid}\n")
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, f"--dev printed nothing on stdout in 30 s; log:\n{log.read_text()}"
        line = proc.stdout.readline().decode()
        m = re.fullmatch(r"KAFKA_BOOTSTRAP=(127\.0\.0\.1:\d+)\n", line)
        assert m, f"first stdout line of --dev: {line!r}"
        yield proc, m.group(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_dev_prints_its_bootstrap_and_no_bootstrap_notice(tmp_path: Path) -> None:
    with dev_supervisor(tmp_path, "it-dev") as (proc, bootstrap):
        log = tmp_path / "it-dev.log"
        wait_until(
            lambda: "event=supervisor.started" in log.read_text(), 30, "the supervisor to start"
        )
        assert f"bootstrap={bootstrap}" in log.read_text()
    assert proc.returncode == 0, log.read_text()[-2000:]
    text = log.read_text()
    assert "bootstrap.servers" not in text, [
        ln for ln in text.splitlines() if "bootstrap.servers" in ln
    ]


@pytest.mark.timeout(120)
def test_status_sums_live_supervisors_only(tmp_path: Path) -> None:
    if not CLI.exists():
        pytest.skip(f"{CLI} not built")
    cli = tmp_path / "snakefleet"
    shutil.copy2(CLI, cli)  # a concurrent rebuild cannot swap it mid-test
    with dev_supervisor(tmp_path, "it-live") as (_, bootstrap):
        # A 4-worker supervisor that stopped ten minutes ago: its last snapshot
        # is still in the topic's tail.
        ghost = {
            "supervisor": "it-ghost",
            "ts_ms": int(time.time() * 1000) - 600_000,
            "pool_size": 4,
            "busy_workers": 1,
            "idle_workers": 3,
            "healthy_workers": 4,
            "total_commands": 1000,
        }
        p = Producer({"bootstrap.servers": bootstrap})
        p.produce("snakefleet.telemetry", key=b"it-ghost", value=msgpack.packb(ghost))
        assert p.flush(10) == 0

        common = [
            f"--kafka.bootstrap.servers={bootstrap}",
            "--kafka.fetch.wait.max.ms=5",
            f"--telemetry.interval={TELEMETRY_MS}",
            "--timeout-ms=3000",
        ]

        def status() -> dict[str, object] | None:
            r = subprocess.run(
                [str(cli), "status", "--json", *common],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if r.returncode != 0:
                return None
            doc: dict[str, object] = json.loads(r.stdout)
            ids = {s["supervisor"] for s in doc["snapshots"]}  # type: ignore[attr-defined]
            return doc if {"it-live", "it-ghost"} <= ids else None

        doc = wait_until(status, 30, "status to show it-live and it-ghost")
        fleet = doc["fleet"]
        assert fleet["supervisors"] == 1, fleet
        assert fleet["stale"] == ["it-ghost"], fleet
        assert fleet["pool_size"] == 1 and fleet["healthy_workers"] == 1, fleet
        assert fleet["total_commands"] < 1000, fleet

        table = subprocess.run(
            [str(cli), "status", *common], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        rows = {ln.split()[0]: ln for ln in table.splitlines() if ln.strip()}
        assert "*" in rows["it-ghost"], table
        assert re.match(r"fleet \(1\)\s+-\s+1\s+0/1\s+1\b", rows["fleet"]), table
        assert "1 stale supervisor(s) not in the fleet total" in table, table

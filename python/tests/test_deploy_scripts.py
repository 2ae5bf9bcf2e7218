"""The scripts under deploy/: each answers -h and --help with its usage and
exit 0, touching nothing; each refuses an unknown option with exit 2 and says
which. And deploy/redis/start.sh's Redis fsyncs its AOF on every write unless
told otherwise."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

DEPLOY = REPO / "deploy"
SCRIPTS = sorted(DEPLOY.rglob("*.sh"))
IDS = [str(p.relative_to(REPO)) for p in SCRIPTS]


def run_script(script: Path, *args: str, tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Runs script with HOME, TMPDIR, the Kafka cache and the working dir all
    in tmp (so a side effect shows up there), and none of the caller's
    KAFKA_* / REDIS_* settings."""
    for d in ("home", "tmp", "cwd"):
        (tmp / d).mkdir(exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "REDIS_"))}
    base.update(
        HOME=str(tmp / "home"),
        TMPDIR=str(tmp / "tmp"),
        SNAKEFLEET_CACHE=str(tmp / "home" / "cache"),
        **env,
    )
    cmd = [str(script)] if os.access(script, os.X_OK) else ["bash", str(script)]
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp / "cwd",
        env=base,
        stdin=subprocess.DEVNULL,
    )


def left_behind(tmp: Path) -> list[str]:
    return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())


def test_every_script_is_found() -> None:
    names = set(IDS)
    for s in ("deploy/setup.sh", "deploy/quickstart.sh", "deploy/lib/proc.sh"):
        assert s in names, names
    assert any(s.startswith("deploy/kafka/") for s in names)
    assert any(s.startswith("deploy/redis/") for s in names)


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_help_prints_usage_and_does_nothing(script: Path, flag: str, tmp_path: Path) -> None:
    r = run_script(script, flag, tmp=tmp_path)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    usage = [ln for ln in r.stdout.splitlines() if ln.lower().startswith("usage:")]
    assert usage, f"no 'Usage:' line on stdout:\n{r.stdout}"
    assert script.name in usage[0], usage[0]
    assert left_behind(tmp_path) == [], left_behind(tmp_path)


@pytest.mark.parametrize("script", SCRIPTS, ids=IDS)
def test_unknown_option_is_a_usage_error(script: Path, tmp_path: Path) -> None:
    r = run_script(script, "--no-such-option", tmp=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "--no-such-option" in r.stderr or "sourced" in r.stderr, r.stderr
    assert "error" in r.stderr, r.stderr
    assert left_behind(tmp_path) == [], left_behind(tmp_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_setting(port: int, key: str) -> str:
    out = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), "config", "get", key],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout.split()
    assert len(out) == 2 and out[0] == key, out
    return out[1]


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server")
@pytest.mark.parametrize(
    ("env", "want"), [({}, "always"), ({"REDIS_APPENDFSYNC": "everysec"}, "everysec")]
)
def test_redis_start_fsyncs_every_write_by_default(
    env: dict[str, str], want: str, tmp_path: Path
) -> None:
    data = tmp_path / "redis"
    start = DEPLOY / "redis" / "start.sh"
    stop = DEPLOY / "redis" / "stop.sh"
    for _ in range(3):  # another process may take the free port first
        port = free_port()
        r = run_script(start, "-d", str(data), "-p", str(port), tmp=tmp_path, **env)
        if r.returncode == 0:
            break
    assert r.returncode == 0, r.stderr
    try:
        assert redis_setting(port, "appendonly") == "yes"
        assert redis_setting(port, "appendfsync") == want
        assert f"appendfsync {want}" in (data / "redis.conf").read_text()
    finally:
        s = run_script(stop, str(data), tmp=tmp_path)
        assert s.returncode == 0, s.stderr
    assert not data.exists()

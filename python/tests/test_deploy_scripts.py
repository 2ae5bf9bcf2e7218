"""The scripts under deploy/: each answers -h and --help with its usage and
exit 0, touching nothing; each refuses an unknown option with exit 2 and says
which."""

from __future__ import annotations

import os
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

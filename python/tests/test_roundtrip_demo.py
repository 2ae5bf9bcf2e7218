"""tools/roundtrip_demo.py runs and succeeds."""

from __future__ import annotations

import subprocess
import sys

from conftest import PYTHON_DIR, worker_env


def test_roundtrip_demo() -> None:
    proc = subprocess.run(
        [sys.executable, str(PYTHON_DIR / "tools" / "roundtrip_demo.py")],
        capture_output=True,
        text=True,
        timeout=30,
        env=worker_env(),
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: both round trips behaved" in proc.stdout
    assert "ValueError: something broke" in proc.stdout
    assert "Traceback (most recent call last)" in proc.stdout

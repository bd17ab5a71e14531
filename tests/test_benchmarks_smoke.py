"""The benchmark script runs end to end (``benchmarks/run.py --smoke``): tiny sizes, no thresholds.

It starts gunicorn servers and the real CLI, so this also proves the benchmark's scenarios still
match the extension's behaviour (each scenario fails loudly when a request it expects to succeed
is refused). PostgreSQL is used when ``CLIENTAUTH_TEST_POSTGRES_URL`` is set; otherwise the scale
part is skipped, saying so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Every test here starts a real server or process (``pytest -m "not slow"`` leaves them out).
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
HEADINGS = [
    "## Machine",
    "## 1. In-process",
    "## 2. Over HTTP",
    "## 3. Cold path",
    "## 4. Scale",
    "## 5. Revocation",
    "## 6. Attack",
    "## 7. Start-up",
]


def test_smoke_run_prints_every_table(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    env = dict(os.environ)
    env.pop("CLIENTAUTH_BENCH_POSTGRES_URL", None)  # only the test database, if any
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--json", str(out_json)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    for heading in HEADINGS:
        assert heading in proc.stdout, heading
    assert "FAILED" not in proc.stdout
    assert "| ratio" in proc.stdout or "**ratio protected/bare**" in proc.stdout
    if not env.get("CLIENTAUTH_TEST_POSTGRES_URL"):
        assert "Skipped:" in proc.stdout.split("## 4. Scale", 1)[1].split("## 5.", 1)[0]
    assert out_json.exists()

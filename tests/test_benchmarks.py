"""Benchmarks are not timed tests: CI only checks that every script runs in --quick mode and reports a ratio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_benchmark_runs_and_reports_a_ratio(tmp_path, data_root):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "benchmarks/run_all.py", "--quick", "--data-root", str(data_root),
                           "--json", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = json.loads(out.read_text())
    scripts = {p.name for p in (REPO / "benchmarks").glob("*.py")} - {"run_all.py"}
    assert {r["script"] for r in rows} == scripts
    for row in rows:
        assert row["status"] == "ok" and row["results"], row
        assert all(ratio > 0 for _, ratio in row["results"]), row

"""Every lesson runs end to end in SMOKE mode (as CI executes it: the jupytext .py script), and every
.py/.ipynb pair is in sync with no committed outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))


def _cells_of_py(path: Path) -> list[tuple[str, str]]:
    import jupytext

    nb = jupytext.read(path)
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def _cells_of_ipynb(path: Path) -> list[tuple[str, str]]:
    nb = json.loads(path.read_text())
    return [(c["cell_type"], "".join(c["source"]).strip()) for c in nb["cells"]]


@pytest.mark.parametrize("script", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_pair_in_sync_and_stripped(script):
    ipynb = script.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} missing: run jupytext --sync {script.name}"
    assert _cells_of_py(script) == _cells_of_ipynb(ipynb), f"out of sync: run jupytext --sync {script.name}"
    nb = json.loads(ipynb.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{ipynb.name} has outputs"


@pytest.mark.parametrize("script", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode(script, tmp_path, data_root):
    env = {**os.environ, "SMOKE": "1", "MPLBACKEND": "Agg", "CVAELIB_DATA": str(data_root),
           "CVAELIB_WORK": str(tmp_path / "work"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, script.name], cwd=script.parent, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"

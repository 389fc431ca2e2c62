"""A lesson run in SMOKE mode and then as a full run in the same work folder: the full run trains its own models
and never resumes (or overwrites) the SMOKE run's tiny ones.

The "full" run is shortened for CI - the same notebook with SMOKE unset, but with every ``fit`` capped at a few
seconds and the datasets cut to a few thousand images (patched in before the lesson starts), which changes nothing
about which checkpoints the lesson opens.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from cvaelib.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
LESSON = REPO / "notebooks" / "01_autoencoder.py"

SHORTENED = """
import runpy, sys
import cvaelib, cvaelib.train, cvaelib.classifier, cvaelib.notebook

_fit, _load = cvaelib.train.fit, cvaelib.load_dataset
def fit(*args, **kwargs):
    kwargs["max_seconds"] = 3.0
    return _fit(*args, **kwargs)
def load_dataset(*args, **kwargs):
    return cvaelib.subset(_load(*args, **kwargs), 3000, seed=1)
def judge(self, dataset, train=None):
    return cvaelib.classifier.train_classifier(cvaelib.subset(_load(dataset, self.data_root, "train"), 3000), epochs=1)
cvaelib.fit = cvaelib.train.fit = fit
cvaelib.load_dataset = load_dataset
cvaelib.notebook.NotebookEnv.judge = judge
runpy.run_path(sys.argv[1], run_name="__main__")
"""


def _run(work: Path, data_root: Path, smoke: bool) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg", "CVAELIB_WORK": str(work),
           "CVAELIB_DATA": str(data_root), "SMOKE": "1" if smoke else "0"}
    cmd = [sys.executable, str(LESSON)] if smoke else [sys.executable, "-c", SHORTENED, str(LESSON)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_full_run_after_a_smoke_run_trains_its_own_models(tmp_path, data_root):
    work = tmp_path / "work"
    _run(work, data_root, smoke=True)
    smoke = sorted(work.glob("*_smoke.pt"))
    assert [p.name for p in smoke] == ["01_ae_z16_smoke.pt", "01_ae_z2_smoke.pt"]
    before = {p.name: _digest(p) for p in smoke}

    _run(work, data_root, smoke=False)
    assert {p.name: _digest(p) for p in sorted(work.glob("*_smoke.pt"))} == before  # untouched
    for name in ("01_ae_z16", "01_ae_z2"):
        full, tiny = load_checkpoint(work / f"{name}.pt"), load_checkpoint(work / f"{name}_smoke.pt")
        # trained from scratch on the full run's data: its own data fingerprint, not the SMOKE subset's
        assert full["data"]["size"] != tiny["data"]["size"] and full["data"]["hash"] != tiny["data"]["hash"]
        assert full["history"]["images"] <= 2700 * full["history"]["epochs"]  # no SMOKE epochs carried over

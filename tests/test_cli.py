"""The CLI contract: outputs with documented shapes/ranges/keys, and one-line errors with non-zero exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, ok: bool = True, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg", **(env_extra or {})}
    proc = subprocess.run([sys.executable, "-m", "cvaelib", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=600)
    if ok:
        assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("cvae")
    run("train", "--model", "cvae", "--dataset", "fashion-mnist", "--data-root", str(data_root), "--epochs", "3",
        "--limit", "8000", "--quiet", "--out", str(out))
    return out


def test_train_writes_checkpoint_metrics_and_samples(cvae_run):
    metrics = json.loads((cvae_run / "metrics.json").read_text())
    for key in ("epochs", "seconds", "images_per_second", "train_loss", "train_recon", "train_kl", "val_loss"):
        assert key in metrics, key
    assert metrics["epochs"] == 3 and metrics["images_per_second"] > 0
    assert (cvae_run / "checkpoint.pt").stat().st_size > 10_000
    assert (cvae_run / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generate_by_id_and_by_name(cvae_run, tmp_path):
    for label in ("7", "sneaker", "Ankle boot", "t-shirt"):
        npy = tmp_path / f"{label}.npy"
        run("generate", "--checkpoint", str(cvae_run), "--label", label, "--n", "6", "--seed", "1",
            "--out", str(tmp_path / f"{label}.png"), "--npy", str(npy))
        arr = np.load(npy)
        assert arr.shape == (6, 1, 28, 28) and arr.dtype == np.float32
        assert 0.0 <= arr.min() and arr.max() <= 1.0
    a, b = np.load(tmp_path / "7.npy"), np.load(tmp_path / "sneaker.npy")
    assert np.array_equal(a, b)  # class 7 is Sneaker, same seed -> same images


def test_reconstruct_roundtrip(cvae_run, tmp_path, data_root):
    from cvaelib import load_dataset

    test = load_dataset("fashion-mnist", data_root, "test")
    np.save(tmp_path / "x.npy", test.float_images()[:20].numpy())
    np.save(tmp_path / "y.npy", test.labels[:20].numpy())
    run("reconstruct", "--checkpoint", str(cvae_run), "--npy-in", str(tmp_path / "x.npy"),
        "--npy-out", str(tmp_path / "r.npy"), "--labels", str(tmp_path / "y.npy"))
    r = np.load(tmp_path / "r.npy")
    assert r.shape == (20, 1, 28, 28) and r.dtype == np.float32 and 0 <= r.min() and r.max() <= 1
    err = ((r - np.load(tmp_path / "x.npy")) ** 2).mean()
    assert err < 0.06


def test_unconditional_model_generates_without_label(tmp_path):
    out = tmp_path / "vae"
    run("train", "--model", "vae-mlp", "--dataset", "digits", "--epochs", "2", "--quiet", "--out", str(out))
    run("generate", "--checkpoint", str(out), "--n", "4", "--out", str(tmp_path / "s.png"), "--npy",
        str(tmp_path / "s.npy"))
    assert np.load(tmp_path / "s.npy").shape == (4, 1, 8, 8)
    bad = run("generate", "--checkpoint", str(out), "--label", "3", "--out", str(tmp_path / "x.png"), ok=False)
    assert bad.returncode == 2 and "unconditional" in bad.stderr


@pytest.mark.parametrize("args,expect", [
    (["train", "--model", "gan", "--dataset", "digits", "--out", "{tmp}/o"], "unknown model 'gan'"),
    (["train", "--model", "cvae", "--dataset", "cifar", "--out", "{tmp}/o"], "unknown dataset 'cifar'"),
    (["train", "--model", "cvae", "--injection", "film", "--dataset", "digits", "--out", "{tmp}/o"], "unknown injection"),
    (["train", "--model", "cvae", "--dataset", "mnist", "--data-root", "{tmp}/missing", "--out", "{tmp}/o"],
     "python -m cvaelib fetch mnist"),
    (["train", "--model", "cvae", "--dataset", "digits", "--epochs", "-3", "--out", "{tmp}/o"], "--epochs must be"),
    (["generate", "--checkpoint", "{tmp}/nothing", "--label", "3", "--out", "{tmp}/x.png"], "no checkpoint at"),
    (["generate", "--checkpoint", "{run}", "--label", "spaceship", "--out", "{tmp}/x.png"], "unknown class"),
    (["generate", "--checkpoint", "{run}", "--label", "12", "--out", "{tmp}/x.png"], "out of range"),
    (["generate", "--checkpoint", "{run}", "--out", "{tmp}/x.png"], "class-conditional"),
    (["generate", "--checkpoint", "{run}", "--label", "1", "--n", "0", "--out", "{tmp}/x.png"], "--n must be"),
    (["reconstruct", "--checkpoint", "{run}", "--npy-in", "{tmp}/none.npy", "--npy-out", "{tmp}/r.npy"],
     "does not exist"),
])
def test_bad_input_gives_one_line_error(args, expect, tmp_path, cvae_run):
    args = [a.format(tmp=tmp_path, run=cvae_run) for a in args]
    proc = run(*args, ok=False)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expect in lines[0]
    assert "Traceback" not in proc.stderr


def test_wrong_shape_for_reconstruct(cvae_run, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 3, 32, 32), np.float32))
    proc = run("reconstruct", "--checkpoint", str(cvae_run), "--npy-in", str(tmp_path / "x.npy"),
               "--npy-out", str(tmp_path / "r.npy"), "--labels", str(tmp_path / "x.npy"), ok=False)
    assert proc.returncode == 2 and "needs [N, 1, 28, 28]" in proc.stderr


def test_quickstart_trains_and_writes_grid(tmp_path):
    proc = run("quickstart", "--out", str(tmp_path / "qs"), "--max-seconds", "5")
    assert (tmp_path / "qs" / "samples.png").exists()
    assert "samples.png" in proc.stdout


def test_label_names_resolve_and_typos_get_a_suggestion():
    from cvaelib.data import FASHION_CLASSES
    from cvaelib.errors import PromptError
    from cvaelib.generate import resolve_label

    assert [resolve_label(x, FASHION_CLASSES) for x in ("7", 7, "Sneakers", "t-shirt", "top", "ANKLE BOOT")] == \
        [7, 7, 7, 0, 0, 9]
    with pytest.raises(PromptError, match=r"did you mean 'Sneaker'\?"):
        resolve_label("sneakr", FASHION_CLASSES)
    with pytest.raises(PromptError) as info:
        resolve_label("spaceship", FASHION_CLASSES)
    assert "did you mean" not in str(info.value) and "9=Ankle boot" in str(info.value)

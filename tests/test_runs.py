"""Runs that keep their promises: a time cap covers every phase, a finished run re-run with resume changes nothing,
a checkpoint is never resumed on other data or settings, big generate requests are capped or written in full, label
swapping through ``reconstruct --decode-labels``, and the prep scripts run as plain files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cvaelib.cli import main as cli_main
from cvaelib.data import load_dataset, subset
from cvaelib.errors import KitError
from cvaelib.models import ConvVAE, build_model
from cvaelib.train import fit

REPO = Path(__file__).resolve().parents[1]


def _err(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line]


def test_max_seconds_caps_the_code_prior_too_and_metrics_say_how(tmp_path, capsys):
    """A VQ-VAE asked for 100 prior epochs but given 6 s in all: training gets 70 %, the code prior what is left,
    both reported in metrics.json; the prior stops when its share runs out."""
    out = tmp_path / "vq"
    rc = cli_main(["train", "--model", "vqvae", "--dataset", "digits", "--epochs", "1000", "--max-seconds", "6",
                   "--out", str(out)])
    assert rc == 0, _err(capsys)
    printed = capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stopped_by_time"] and metrics["epochs"] < 1000
    budget, phases = metrics["budget"], metrics["phases"]
    assert budget["max_seconds"] == 6 and budget["train"] == pytest.approx(4.2)
    assert set(phases) == {"train", "code prior"} and "code prior" in budget
    assert phases["code prior"] < budget["code prior"] + 3  # 100 epochs of the prior would take far longer
    assert "budget 6 s split: train 4 s, code prior" in printed.out


def test_a_finished_run_resumed_loads_at_once_and_leaves_its_checkpoint_alone(tmp_path, capsys):
    out = tmp_path / "vq"
    args = ["train", "--model", "vqvae", "--dataset", "digits", "--epochs", "2", "--quiet", "--out", str(out)]
    assert cli_main(args) == 0
    before = (out / "checkpoint.pt").read_bytes()
    stamp = (out / "checkpoint.pt").stat().st_mtime_ns
    assert cli_main(args + ["--resume"]) == 0, _err(capsys)
    assert (out / "checkpoint.pt").read_bytes() == before and (out / "checkpoint.pt").stat().st_mtime_ns == stamp
    # asking for more is continuing: then it trains, runs the prior again and saves
    assert cli_main(args[:5] + ["--epochs", "3"] + args[7:] + ["--resume"]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3


def test_fit_resume_of_a_finished_run_runs_nothing(tmp_path):
    data = load_dataset("digits", split="train")
    torch.manual_seed(0)
    model = build_model({"model": "cvae", "image_shape": [1, 8, 8], "num_classes": 10, "latent_dim": 4})
    first = fit(model, data, epochs=2, progress=False, checkpoint=tmp_path / "c.pt")
    before = (tmp_path / "c.pt").read_bytes()
    again = build_model(model.config)

    def boom(*a, **k):
        raise AssertionError("after_fit must not run again on a finished run")

    again.after_fit = boom
    history = fit(again, data, epochs=2, progress=False, checkpoint=tmp_path / "c.pt", resume=True)
    assert history.epochs == first.epochs == 2 and (tmp_path / "c.pt").read_bytes() == before
    assert torch.equal(again.prior_mean, model.prior_mean)  # the fitted prior came back with the weights


def test_a_checkpoint_of_other_data_or_settings_is_not_resumed(tmp_path):
    """What separates a lesson's SMOKE run from its full run (a small subset vs the whole split) is caught."""
    data = load_dataset("digits", split="train")
    small, full = subset(data, 300, seed=0), data
    model = ConvVAE((1, 8, 8), latent_dim=4)
    fit(model, small, epochs=1, progress=False, checkpoint=tmp_path / "run")
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(KitError, match=r"trained on other data \(digits, 300 images, hash .*\) than this run "
                                       r"\(digits, 1437 images.*start over without resume"):
        fit(ConvVAE((1, 8, 8), latent_dim=4), full, epochs=2, progress=False, checkpoint=tmp_path / "run",
            resume=True)
    with pytest.raises(KitError, match="trained with batch_size 128, this run asks for 64"):
        fit(ConvVAE((1, 8, 8), latent_dim=4), small, epochs=2, batch_size=64, progress=False,
            checkpoint=tmp_path / "run", resume=True)
    with pytest.raises(KitError, match="another config"):
        fit(ConvVAE((1, 8, 8), latent_dim=6), small, epochs=2, progress=False, checkpoint=tmp_path / "run",
            resume=True)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before
    with pytest.raises(KitError, match="epochs must be at least 1"):
        fit(model, small, epochs=0, progress=False)


def test_generate_more_than_a_grid_shows(tmp_path, capsys):
    run = tmp_path / "cvae"
    assert cli_main(["train", "--model", "cvae", "--dataset", "digits", "--epochs", "2", "--quiet",
                     "--out", str(run)]) == 0
    assert cli_main(["generate", "--checkpoint", str(run), "--label", "3", "--n", "3000",
                     "--out", str(tmp_path / "a.png")]) == 2
    err = _err(capsys)
    assert len(err) == 1 and "more than a grid shows (256); pass --npy FILE to keep all 3000" in err[0]
    assert not (tmp_path / "a.png").exists()
    assert cli_main(["generate", "--checkpoint", str(run), "--label", "3", "--n", "3000",
                     "--out", str(tmp_path / "a.png"), "--npy", str(tmp_path / "a.npy")]) == 0
    assert np.load(tmp_path / "a.npy").shape == (3000, 1, 8, 8) and (tmp_path / "a.png").stat().st_size > 0


def test_label_swap_decodes_each_code_with_another_class(tmp_path, data_root):
    """``reconstruct --decode-labels``: the code of a test digit decoded with another class is read as that class
    by an independent judge far more often than chance (the default CVAE, whose decoder is trained to obey)."""
    from cvaelib.classifier import get_classifier, predict

    run = tmp_path / "cvae"
    assert cli_main(["train", "--model", "cvae", "--dataset", "mnist", "--data-root", str(data_root), "--limit",
                     "8000", "--epochs", "6", "--quiet", "--out", str(run)]) == 0
    test = load_dataset("mnist", data_root, "test").take(slice(0, 300))
    new = (test.labels + torch.randint(1, 10, (300,), generator=torch.Generator().manual_seed(0))) % 10
    for name, arr in (("x", test.float_images()), ("y", test.labels), ("y2", new)):
        np.save(tmp_path / f"{name}.npy", arr.numpy())
    base = ["reconstruct", "--checkpoint", str(run), "--npy-in", str(tmp_path / "x.npy"), "--labels",
            str(tmp_path / "y.npy")]
    assert cli_main(base + ["--npy-out", str(tmp_path / "same.npy")]) == 0
    assert cli_main(base + ["--decode-labels", str(tmp_path / "y2.npy"), "--npy-out", str(tmp_path / "swap.npy")]) == 0
    judge = get_classifier("mnist", data_root)
    same = predict(judge, torch.from_numpy(np.load(tmp_path / "same.npy")))
    swap = predict(judge, torch.from_numpy(np.load(tmp_path / "swap.npy")))
    assert float((same == test.labels).float().mean()) > 0.8  # a plain reconstruction keeps its class
    swapped, kept = float((swap == new).float().mean()), float((swap == test.labels).float().mean())
    assert swapped > 0.6 and swapped > 5 * kept, (swapped, kept)  # chance 0.1; measured 0.82 vs 0.03


def test_train_flags_build_the_plain_cvae_and_refuse_unknown_priors(tmp_path, capsys):
    """``--swap-weight 0 --prior standard --beta 1``: the textbook CVAE (no label critic, z ~ N(0, I) samples)."""
    from cvaelib.checkpoint import load_model

    run = tmp_path / "plain"
    assert cli_main(["train", "--model", "cvae", "--dataset", "digits", "--epochs", "1", "--swap-weight", "0",
                     "--prior", "standard", "--beta", "1", "--quiet", "--out", str(run)]) == 0
    model = load_model(run)
    assert model.critic is None and not model.uses_fitted_prior and model.config["beta"] == 1.0
    capsys.readouterr()
    assert cli_main(["train", "--model", "cvae", "--dataset", "digits", "--prior", "class", "--out",
                     str(tmp_path / "x")]) == 2
    assert "unknown prior 'class' for cvae; choose one of: standard, pooled, fitted" in capsys.readouterr().err
    assert cli_main(["train", "--model", "vae", "--dataset", "digits", "--swap-weight", "3", "--out",
                     str(tmp_path / "y")]) == 2
    assert "--swap-weight" in capsys.readouterr().err


def test_run_functions_take_typed_keywords_and_refuse_misspelt_ones(tmp_path):
    from cvaelib.runs import generate_run, train_run

    with pytest.raises(TypeError, match="epoch"):
        train_run("cvae", "digits", tmp_path / "o", epoch=3)  # the option is `epochs`
    with pytest.raises(TypeError, match="labels"):
        generate_run(tmp_path / "o", tmp_path / "g.png", labels="3")  # the option is `label`


@pytest.mark.parametrize("script", ["celeba", "coco"])
def test_prep_scripts_run_as_files_and_as_modules(script):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for cmd in ([sys.executable, f"data_prep/{script}.py", "--help"],
                [sys.executable, "-m", f"data_prep.{script}", "--help"]):
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith(f"usage: data_prep.{script}"), proc.stderr[-800:]

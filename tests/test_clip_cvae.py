"""CLIP-conditioned CVAE: contract, bridges, generation modes, text-prompted accuracy and the CLI, all offline.

Uses the cached test TinyCLIP of tests/test_tiny_clip.py and a CVAE trained for a few seconds on real MNIST; the
judge is the kit's independent classifier.  Prompts are written the way a student would type them and are not
the captions TinyCLIP trained on.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cvaelib.checkpoint import load_model
from cvaelib.classifier import get_classifier, predict
from cvaelib.conditioning.bridge import retrieve, text_anchor, text_conditions
from cvaelib.clip.tiny import TINY_FILE, save_tiny_clip
from cvaelib.clip_generate import (generate_from_images, generate_from_text, interpolate, load_clip_cvae,
                                   manipulate, prompt_accuracy, reconstruct, train_clip_cvae)
from cvaelib.data import load_dataset, subset
from cvaelib.errors import KitError
from cvaelib.models import build_model
from cvaelib.models.clip_cvae import INJECTIONS, ClipConditionalVAE, perturb_condition
from tiny_models import tiny_clip


@pytest.fixture(scope="module")
def run(data_root, tmp_path_factory):
    """A clip-cvae trained for 4 epochs on 20,000 real MNIST images (~25 s) with the cached test TinyCLIP."""
    out = tmp_path_factory.mktemp("clip_cvae")
    enc = tiny_clip(data_root)
    save_tiny_clip(enc, out / TINY_FILE)  # the run folder's TinyCLIP is used, not retrained
    r = train_clip_cvae("mnist", out, data_root, epochs=4, max_seconds=None, limit=20000, progress=False)
    return out, r


@pytest.fixture(scope="module")
def judge(data_root):
    return get_classifier("mnist", data_root)


@pytest.mark.parametrize("injection", INJECTIONS)
def test_contract_and_injection_points(injection):
    model = build_model({"model": "clip-cvae", "injection": injection, "condition_dim": 32, "bank_size": 50})
    x = torch.rand(6, 1, 28, 28)
    c = F.normalize(torch.randn(6, 32), dim=-1)
    model.train()
    terms = model.loss(x, c)
    assert set(terms) == {"loss", "recon", "kl"} and terms["loss"].ndim == 0
    model.eval()
    assert model.sample(6, c).shape == (6, 1, 28, 28)
    assert model.reconstruct(x, c).shape == (6, 1, 28, 28)
    # the condition really enters the encoder at every injection point
    assert not torch.allclose(model.encode(x, c)[0], model.encode(x, c.flip(0))[0])
    with pytest.raises(KitError, match=r"\[N, 32\]"):
        model.sample(6, torch.randn(6, 64))
    with pytest.raises(KitError, match="needs a condition"):
        model.sample(6)
    with pytest.raises(KitError, match="unknown injection"):
        ClipConditionalVAE(injection="middle")
    with pytest.raises(KitError, match="empty embedding bank"):
        model.bank_embeddings()


def test_lafite_perturbation_keeps_unit_length_and_relative_size():
    c = F.normalize(torch.randn(1000, 64), dim=-1)
    p = perturb_condition(c, 0.1)
    torch.testing.assert_close(p.norm(dim=1), torch.ones(1000))
    cos = (p * c).sum(1)
    assert 0.98 < float(cos.mean()) < 0.999  # a small step away, not a new direction
    assert torch.equal(perturb_condition(c, 0.0), c)


def test_checkpoint_holds_bank_and_gap(run):
    out, r = run
    model, enc = load_clip_cvae(out)
    assert int(model.bank_count) == 10000 and bool(model.gap_is_set) and bool(model.bank_z_is_set)
    assert model.bank_z.abs().sum() > 0 and model.cond_std.min() > 0  # latent codes and condition statistics
    assert model.ref_text.shape == (10, 64)  # one reference text per class for contrastive retrieval
    torch.testing.assert_close(model.bank_embeddings().norm(dim=1), torch.ones(10000))
    again = load_model(out)
    assert torch.equal(again.bank, model.bank)
    # retrieval returns real bank rows, most similar first
    t = enc.encode_text(["a handwritten seven"])[0]
    near, sims = retrieve(model, t, k=10)
    assert near.shape == (10, 64) and sims.shape == (10,) and bool(model.ref_is_set)
    torch.testing.assert_close(near @ t, sims)
    c = text_conditions(model, enc, "a handwritten seven", 5, generator=torch.Generator().manual_seed(0))
    near64, _ = retrieve(model, t, k=64)
    assert c.shape == (5, 64) and all(bool((near64 == row).all(1).any()) for row in c)  # real image embeddings
    # the gap: text embeddings sit far from image embeddings; the bridges move them next to images
    bank = model.bank_embeddings()
    direct = float((bank @ text_anchor(model, enc, "a seven", "direct")).max())
    bridged = float((bank @ text_anchor(model, enc, "a seven", "retrieval")).max())
    assert bridged > direct
    with pytest.raises(KitError, match="unknown bridge"):
        text_anchor(model, enc, "a seven", "teleport")
    with pytest.raises(KitError, match="prompt is empty"):
        generate_from_text(model, enc, "   ")


def test_text_prompts_generate_the_named_digit(run, judge):
    out, _ = run
    model, enc = load_clip_cvae(out)
    prompts = {7: ["a handwritten seven"], 3: ["the number 3"], 0: ["zero"], 5: ["a scribbled five"],
               2: ["the digit two"], 8: ["an eight"]}
    res = prompt_accuracy(model, enc, prompts, judge, n=32)
    assert res["overall"] >= 0.85, res
    direct = prompt_accuracy(model, enc, prompts, judge, n=32, bridge="direct")
    assert res["overall"] >= direct["overall"] - 0.02  # the bridge never hurts
    a = generate_from_text(model, enc, "a handwritten seven", 8, seed=3)
    b = generate_from_text(model, enc, "a handwritten seven", 8, seed=3)
    assert torch.equal(a, b) and a.shape == (8, 1, 28, 28) and 0 <= float(a.min()) and float(a.max()) <= 1


def test_image_modes_keep_or_move_the_class(run, judge, data_root):
    out, _ = run
    model, enc = load_clip_cvae(out)
    test = subset(load_dataset("mnist", data_root, "test"), 64, seed=2)
    x, y = test.float_images(), test.labels
    # image -> image: new samples of the same digit
    gen = generate_from_images(model, enc, x, n_per_image=2)
    assert gen.shape == (128, 1, 28, 28)
    assert float((predict(judge, gen) == y.repeat_interleave(2)).float().mean()) >= 0.85
    # reconstruction is close and class-preserving; manipulation with factor 1 is the reconstruction
    rec = reconstruct(model, enc, x)
    assert float(F.mse_loss(rec, x)) < 0.03
    torch.testing.assert_close(manipulate(model, enc, x[:8], "a three", image_embed_factor=1.0), rec[:8],
                               atol=1e-4, rtol=0)
    # factor 0: the text decides the class
    sevens = x[y != 3][:16]
    moved = manipulate(model, enc, sevens, "the number 3", image_embed_factor=0.0)
    assert float((predict(judge, moved) == 3).float().mean()) >= 0.6
    # interpolation: the ends are the two prompts
    path = interpolate(model, enc, "a handwritten one", "a handwritten eight", steps=6)
    assert path.shape == (6, 1, 28, 28)
    ends = predict(judge, path[[0, -1]])
    assert ends.tolist() == [1, 8]
    two = interpolate(model, enc, x[0], x[1], steps=4)
    assert float(F.mse_loss(two[0], rec[0])) < 1e-3
    with pytest.raises(KitError, match="image_embed_factor"):
        manipulate(model, enc, x[:2], "a three", image_embed_factor=2.0)
    with pytest.raises(KitError, match="this model needs"):
        reconstruct(model, enc, torch.rand(2, 3, 32, 32))


def test_cli_generate_and_reconstruct(run, tmp_path):
    out, _ = run
    env_py = [sys.executable, "-m", "cvaelib"]
    png, npy = tmp_path / "g.png", tmp_path / "g.npy"
    p = subprocess.run(env_py + ["generate", "--checkpoint", str(out), "--prompt", "a handwritten seven", "--n", "6",
                                 "--seed", "1", "--out", str(png), "--npy", str(npy)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    arr = np.load(npy)
    assert arr.shape == (6, 1, 28, 28) and arr.dtype == np.float32 and png.stat().st_size > 0
    assert 0 <= arr.min() and arr.max() <= 1
    p = subprocess.run(env_py + ["generate", "--checkpoint", str(out), "--prompt", "one", "--to", "seven", "--n", "5",
                                 "--out", str(png), "--npy", str(npy)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert np.load(npy).shape == (5, 1, 28, 28)
    p = subprocess.run(env_py + ["generate", "--checkpoint", str(out), "--label", "7", "--out", str(png)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--prompt" in p.stderr and "Traceback" not in p.stderr
    np.save(tmp_path / "x.npy", arr[:3])
    p = subprocess.run(env_py + ["reconstruct", "--checkpoint", str(out), "--npy-in", str(tmp_path / "x.npy"),
                                 "--npy-out", str(tmp_path / "r.npy")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "r.npy").shape == (3, 1, 28, 28)

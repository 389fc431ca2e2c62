"""evaluate_checkpoint on tiny models trained for a few seconds on real MNIST / digits."""

from __future__ import annotations

import json

import pytest
import torch

from cvaelib.checkpoint import load_model, save_checkpoint
from cvaelib.data import load_dataset, subset
from cvaelib.errors import KitError
from cvaelib.conditioning import Conditioning
from cvaelib.evaluation import evaluate_checkpoint, evaluate_model, format_table
from cvaelib.models import ConditionalVAE, GenerativeModel, build_model
from cvaelib.prompts import parse_prompt
from cvaelib.train import fit
from tiny_models import tiny_clip

N = 300


@pytest.fixture(scope="module")
def mnist_small(data_root):
    return subset(load_dataset("mnist", data_root, "train"), 4000, seed=0)


def _train(config: dict, data, folder, epochs: int = 2):
    torch.manual_seed(0)
    model = build_model(config)
    # a high learning rate and small batches: many steps in a few seconds (4,000 images x 2 epochs = 124 steps)
    fit(model, data, epochs=epochs, lr=3e-3, batch_size=64, checkpoint=folder, progress=False,
        meta={"dataset": data.name, "class_names": data.class_names})
    return model


@pytest.fixture(scope="module")
def trained(mnist_small, tmp_path_factory):
    """AE, VAE and CVAE trained briefly (same data, same budget): name -> run folder."""
    folders = {}
    for name in ("ae", "vae", "cvae"):
        config = {"model": name, "image_shape": [1, 28, 28], "latent_dim": 8}
        if name == "cvae":
            config["num_classes"] = 10
        folders[name] = tmp_path_factory.mktemp(name)
        _train(config, mnist_small, folders[name])
    return folders


@pytest.fixture(scope="module")
def results(trained, data_root):
    """Each checkpoint evaluated once."""
    return {name: evaluate_checkpoint(folder, data_root, n=N, inception=False) for name, folder in trained.items()}


def test_every_model_gets_reconstruction_metrics(results):
    for name, r in results.items():
        assert r["model"] == name and r["dataset"] == "mnist" and r["n"] == N
        assert 0.0 < r["recon_mse"] < 0.1, name
        assert 0.2 < r["recon_ssim"] <= 1.0, name
        assert r["recon_psnr"] > 10.0
        assert r["ssim_window"] == 11
        assert r["checkpoint"].endswith("checkpoint.pt")
        json.dumps(r, allow_nan=False)  # the CLI writes it as JSON


def test_sample_fid_is_reported_with_counts_and_a_real_data_reference(results):
    for name, r in results.items():
        assert r["sample_cfid_n"] == [N, N] and r["real_cfid_n"] == [N, N]
        # real training images are far closer to the test images than any briefly trained model's samples
        assert 0.0 <= r["real_cfid"] < r["sample_cfid"], name
        assert "sample_fid" not in r  # Inception off
        assert any("biased upward" in note for note in r["notes"])
    # decoding N(0, I) codes of a plain autoencoder is worse than sampling the VAE it is compared with
    assert results["ae"]["sample_cfid"] > results["vae"]["sample_cfid"]
    assert any("autoencoder" in note for note in results["ae"]["notes"])


def test_cvae_conditional_accuracy_per_class(results):
    r = results["cvae"]
    per_class = r["cond_acc_per_class"]
    assert list(per_class) == load_dataset("digits").class_names  # "zero" .. "nine" from the checkpoint meta
    assert all(0.0 <= v <= 1.0 for v in per_class.values())
    assert r["cond_acc_mean"] == pytest.approx(sum(per_class.values()) / 10, abs=1e-3)
    assert r["cond_acc_mean"] > 0.2  # well above chance (0.1) after a few seconds
    assert r["judge_accuracy"] > 0.97
    assert "cond_acc_mean" not in results["vae"] and "cond_acc_mean" not in results["ae"]
    # the default CVAE's decoder follows its label: test digits re-decoded with another class look like that class
    assert r["label_swap_acc"] > 0.5, r["label_swap_acc"]


def test_format_table_lists_the_numbers(results):
    table = format_table(results["cvae"])
    assert "cvae on mnist" in table.splitlines()[0]
    for label in ("reconstruction SSIM", "classifier-FID samples vs test", "conditional accuracy (mean)",
                  "  seven", f"n={N}/{N}", "note:"):
        assert label in table
    assert f"{results['cvae']['recon_ssim']:.4f}" in table
    assert "conditional accuracy" not in format_table(results["vae"])


def test_digits_cvae_small_images(tmp_path):
    data = load_dataset("digits", split="train")
    _train({"model": "cvae", "image_shape": [1, 8, 8], "latent_dim": 4, "num_classes": 10}, data, tmp_path, 5)
    r = evaluate_checkpoint(tmp_path, n=1000, inception=False)
    assert r["dataset"] == "digits" and r["n"] == len(load_dataset("digits", split="test")) == 360  # capped
    assert r["ssim_window"] == 7 and 0 < r["recon_ssim"] <= 1
    assert "7x7 window" in format_table(r) and "label swap" in format_table(r)
    assert any("capped" in note for note in r["notes"])
    assert 0.0 <= r["cond_acc_mean"] <= 1.0


def test_vqvae_with_class_prior(mnist_small, data_root, tmp_path):
    """A VQ-VAE reconstructs well after a few seconds (SSIM 0.85 measured); its class prior needs minutes to draw
    recognisable digits, so its samples are judged per class but only their bookkeeping is asserted here."""
    config = {"model": "vqvae", "image_shape": [1, 28, 28], "num_classes": 10, "num_codes": 32, "width": 16,
              "ema": True, "prior_dim": 32, "prior_layers": 1, "prior_epochs": 1, "prior_max_seconds": 3}
    torch.manual_seed(0)
    model = build_model(config)
    fit(model, mnist_small, epochs=2, lr=2e-3, batch_size=64, checkpoint=tmp_path, progress=False,
        meta={"dataset": mnist_small.name, "class_names": mnist_small.class_names})
    r = evaluate_checkpoint(tmp_path, data_root, n=200, inception=False)
    assert r["condition"] == "label" and r["recon_ssim"] > 0.7
    per_class = r["cond_acc_per_class"]  # samples of every class were drawn through the class prior and judged
    assert len(per_class) == 10 and r["cond_acc_mean"] == pytest.approx(sum(per_class.values()) / 10, abs=1e-3)
    assert r["sample_cfid"] > r["real_cfid"] >= 0.0
    assert "sampling skipped" not in " ".join(r["notes"])  # the class prior was trained by fit's after_fit
    assert "label_swap_acc" not in r  # its decoder never reads the class: a label swap would mean nothing


class _PromptCVAE(GenerativeModel):
    """Test double for a CVAE conditioned on vectors: a one-hot vector stands for its class, decoded by a real
    trained label CVAE."""

    name = "prompt-cvae-test"
    condition_kind = "vector"

    def __init__(self, inner: ConditionalVAE) -> None:
        super().__init__({"image_shape": inner.config["image_shape"], "latent_dim": inner.latent_dim})
        self.inner = inner

    def encode(self, x, c=None):
        return self.inner.encode(x, c.argmax(1))

    def decode(self, z, c=None):
        return self.inner.decode(z, c.argmax(1))

    def sample(self, n, c=None, generator=None):  # the inner CVAE's own sampling prior (fitted by default)
        return self.inner.sample(n, c.argmax(1), generator=generator)


class _OneHotPrompts(Conditioning):
    """Test double for a conditioning that reads text: a prompt's condition is the one-hot vector of the class the
    kit's prompt parser finds in it, a test image's condition the one-hot vector of its label.  Exercises evaluate's
    path for a new condition kind, plugged in through the conditioning layer."""

    kind = "vector"

    def __init__(self, model, reads: bool = True) -> None:
        super().__init__(model)
        self.reads = reads

    def reads_text(self) -> bool:
        return self.reads

    def test_conditions(self, data):
        return torch.nn.functional.one_hot(data.labels, 10).float() if self.reads else None

    def prompt_images(self, prompt, n, seed=0):
        k = parse_prompt(prompt, "mnist")[0]
        return self.sample(n, torch.nn.functional.one_hot(torch.full((n,), k), 10).float(), seed)


def test_vector_model_prompt_accuracy_via_the_conditioning_layer(results, trained, data_root):
    model = _PromptCVAE(load_model(trained["cvae"])).eval()
    r = evaluate_model(model, "mnist", data_root, n=N, inception=False, conditioning=_OneHotPrompts(model))
    assert r["condition"] == "vector"
    assert "a handwritten seven" in r["prompts"]["seven"]  # the kit's example prompts, several per class
    assert set(r["prompt_acc_per_class"]) == set(r["prompts"])
    # the same network behind the prompts: prompt accuracy ~ the label CVAE's conditional accuracy (other z draws)
    assert r["prompt_acc_mean"] == pytest.approx(results["cvae"]["cond_acc_mean"], abs=0.1)
    assert r["recon_ssim"] == pytest.approx(results["cvae"]["recon_ssim"], abs=1e-6)
    # its condition vectors double as "text embeddings" but there is no image side: no CLIP score
    assert "clip_score" not in r and any("CLIP score skipped" in note for note in r["notes"])
    assert "prompt accuracy (mean)" in format_table(r)

    # a conditioning that can neither read text nor tell a test image's condition is reported, not crashed
    bare = evaluate_model(model, "mnist", data_root, n=50, inception=False,
                          conditioning=_OneHotPrompts(model, reads=False))
    assert "recon_ssim" not in bare and "prompt_acc_mean" not in bare
    assert any("reconstruction skipped" in note for note in bare["notes"])


def test_clip_cvae_checkpoint_prompt_metrics(data_root, tmp_path):
    """A real clip-cvae run folder (cached test TinyCLIP + a briefly trained CVAE): prompt accuracy, CLIP score."""
    from cvaelib.clip.tiny import TINY_FILE, save_tiny_clip
    from cvaelib.clip_generate import train_clip_cvae

    enc = tiny_clip(data_root)
    save_tiny_clip(enc, tmp_path / TINY_FILE)
    train_clip_cvae("mnist", tmp_path, data_root, epochs=2, max_seconds=None, limit=3000, lr=3e-3, batch_size=64,
                    progress=False)
    r = evaluate_checkpoint(tmp_path, data_root, n=120, inception=False)
    assert r["model"] == "clip-cvae" and r["condition"] == "clip"
    assert r["recon_ssim"] > 0.3  # (0.39 measured) each test image conditioned on its own CLIP image embedding
    assert set(r["prompt_acc_per_class"]) == set(load_dataset("digits").class_names)
    # 84 steps are enough for the retrieval bridge to draw the prompted digit (measured 0.72-0.81; chance is 0.1),
    # and for the samples to sit nearer their own prompt than another class's in CLIP's space (0.59 vs 0.16)
    assert r["prompt_acc_mean"] > 0.5
    assert sum(len(p) for p in r["prompts"].values()) == 40  # the kit's 4 example prompts per digit
    assert r["clip_score"] > r["clip_score_other_class"] + 0.05
    assert r["sample_cfid"] > r["real_cfid"] >= 0.0
    json.dumps(r, allow_nan=False)
    assert "CLIP score (cosine)" in format_table(r) and "another class's prompt" in format_table(r)

    (tmp_path / TINY_FILE).unlink()  # without its CLIP the model is still evaluated, minus the prompt metrics
    bare = evaluate_checkpoint(tmp_path, data_root, n=50, inception=False)
    assert "prompt_acc_mean" not in bare and "CLIP not available" in bare["notes"][0]


def test_mistakes_give_one_line_errors(tmp_path, data_root):
    model = build_model({"model": "vae", "image_shape": [1, 28, 28], "latent_dim": 4})
    save_checkpoint(tmp_path / "checkpoint.pt", {"config": model.config, "state_dict": model.state_dict()})
    with pytest.raises(KitError, match="does not record its dataset"):
        evaluate_checkpoint(tmp_path, data_root)
    with pytest.raises(KitError, match="at least 2"):
        evaluate_checkpoint(tmp_path, data_root, n=1, dataset="mnist")
    with pytest.raises(KitError, match="no checkpoint"):
        evaluate_checkpoint(tmp_path / "missing", data_root)
    with pytest.raises(KitError, match=r"\(1, 28, 28\) images but digits"):
        evaluate_checkpoint(tmp_path, dataset="digits")

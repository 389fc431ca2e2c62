"""The CVAE's fitted sampling prior (a per-class Gaussian mixture over training codes), its trunks, and the
training-loop options that make the default fast: mixed precision on the CPU and a time-aware cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

from cvaelib import ConditionalVAE, fit, load_dataset, subset
from cvaelib.checkpoint import load_checkpoint
from cvaelib.errors import KitError
from cvaelib.models.blocks import ConvEncoder, MLPDecoder
from cvaelib.device import autocast_dtype, cpu_has_fast_bf16


@pytest.fixture(scope="module")
def trained(data_root):
    """A small default-architecture CVAE with a per-class prior, trained on 3,000 real MNIST digits (the prior
    fitted by ``fit``)."""
    train = subset(load_dataset("mnist", data_root, "train"), 3000, seed=2)
    torch.manual_seed(0)
    model = ConditionalVAE(train.shape, latent_dim=8, prior="fitted", prior_components=3, swap_weight=0.0)
    fit(model, train, epochs=2, lr=4e-3, progress=False, seed=0)
    return model.eval(), train


def test_fit_fits_a_mixture_per_class(trained):
    model, train = trained
    assert model.uses_fitted_prior
    weights = model.prior_logits.softmax(1)
    # ~300 images per class and 8-d codes allow 300 // 16 = 18 >= 3 components: all used, weights sum to 1
    assert torch.allclose(weights.sum(1), torch.ones(10)) and bool((weights > 0).all())
    # the mixture sits where the class's codes are: its mean is the mean of the codes
    mu = model.embed(train.float_images(), train.labels)
    for k in (0, 7):
        mixture_mean = (weights[k, :, None] * model.prior_mean[k]).sum(0)
        assert torch.allclose(mixture_mean, mu[train.labels == k].mean(0), atol=0.05 * float(mu.std()))


def test_prior_log_prob_is_the_mixture_density(trained):
    model, _ = trained
    c = torch.tensor([1, 1, 4, 9])
    z = model.prior_z(c, torch.Generator().manual_seed(0)) + 0.1
    for i, k in enumerate(c.tolist()):
        ref = D.MixtureSameFamily(D.Categorical(logits=model.prior_logits[k]),
                                  D.MultivariateNormal(model.prior_mean[k], scale_tril=model.prior_scale_tril[k]))
        assert math.isclose(float(model.prior_log_prob(z[i:i + 1], c[i:i + 1])), float(ref.log_prob(z[i])),
                            rel_tol=1e-4, abs_tol=1e-3)
    z.requires_grad_(True)
    model.prior_log_prob(z, c).sum().backward()  # differentiable: guided sampling follows this gradient
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_prior_samples_follow_the_mixture(trained):
    model, _ = trained
    c = torch.full((6000,), 3)
    z = model.prior_z(c, torch.Generator().manual_seed(1))
    w = model.prior_logits[3].softmax(0)
    mean = (w[:, None] * model.prior_mean[3]).sum(0)
    assert torch.allclose(z.mean(0), mean, atol=0.08 * float(z.std()))
    # same generator seed, same codes; the samples are decoded images in [0, 1]
    assert torch.equal(z, model.prior_z(c, torch.Generator().manual_seed(1)))
    images = model.sample(6, torch.arange(6), generator=torch.Generator().manual_seed(0))
    assert images.shape == (6, 1, 28, 28) and 0 <= float(images.min()) and float(images.max()) <= 1


def test_small_and_missing_classes_fall_back_gracefully():
    model = ConditionalVAE((1, 28, 28), num_classes=3, latent_dim=4, prior="fitted", prior_components=10)
    x = torch.rand(40, 1, 28, 28)
    y = torch.tensor([0] * 39 + [1])  # class 0: 39 codes (4 clusters at most, 39 // 8); class 1: one; class 2: none
    model.fit_prior(x, y)
    used = torch.isfinite(model.prior_logits).sum(1).tolist()
    assert 1 <= used[0] <= 4 and used[1:] == [1, 1]
    # every cluster of class 0 holds more codes than z has dimensions (smaller ones are merged), weights sum to 1
    weights = model.prior_logits[0].softmax(0)[:used[0]]
    assert bool((weights * 39 > 4 + 1e-4).all()) and abs(float(weights.sum()) - 1) < 1e-5
    assert torch.equal(model.prior_mean[2], torch.zeros(10, 4))  # the absent class keeps N(0, I)
    assert torch.isfinite(model.prior_z(torch.tensor([0, 1, 2]))).all()


def test_standard_prior_samples_n01():
    model = ConditionalVAE((1, 28, 28), latent_dim=4, prior="standard")
    z = model.prior_z(torch.zeros(4000, dtype=torch.long), torch.Generator().manual_seed(0))
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05
    assert not model.uses_fitted_prior


def test_trunks_shapes():
    enc = ConvEncoder(1, (28, 28), width=16, hidden=0, extra=10)
    assert enc(torch.rand(3, 1, 28, 28), extra=torch.rand(3, 10)).shape == (3, enc.out_features)
    assert enc.out_features == 32 * 7 * 7 + 10
    assert ConvEncoder(1, (28, 28), width=16, hidden=64).out_features == 64
    assert MLPDecoder(12, 3, (8, 8), hidden=32)(torch.rand(5, 12)).shape == (5, 3, 8, 8)
    with pytest.raises(ValueError, match="decoder"):
        ConditionalVAE((1, 28, 28), decoder="deconv")


def test_conv_encoder_flattens_pixel_by_pixel_in_any_layout():
    """Feature i of pixel (r, c) is channel i of that pixel (checkpoint format 2), whatever the memory layout."""
    torch.manual_seed(0)
    enc = ConvEncoder(1, (28, 28), width=8, hidden=0)
    x = torch.rand(4, 1, 28, 28)
    h = enc(x)
    maps = enc.conv(x)  # [4, 16, 7, 7]
    assert torch.allclose(h[:, :16], maps[:, :, 0, 0]) and torch.allclose(h[:, 16:32], maps[:, :, 0, 1])
    enc_cl = enc.to(memory_format=torch.channels_last)
    assert torch.allclose(enc_cl(x.contiguous(memory_format=torch.channels_last)), h, atol=1e-6)


def test_decoder_depth_is_a_setting():
    linears = lambda m: sum(isinstance(layer, torch.nn.Linear) for layer in m.decoder.modules())  # noqa: E731
    assert linears(ConditionalVAE((1, 28, 28))) == 2  # the default: one hidden layer of 1,024 units
    assert linears(ConditionalVAE((1, 28, 28), decoder_layers=2)) == 3
    assert ConditionalVAE((1, 28, 28), decoder_layers=2).config["decoder_layers"] == 2


def test_autocast_dtype_choices():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(cpu, "fp32") is None and autocast_dtype(cuda, "fp32") is None
    assert autocast_dtype(cuda, "auto") == torch.float16
    assert autocast_dtype(cpu, "auto") == (torch.bfloat16 if cpu_has_fast_bf16() else None)
    assert autocast_dtype(cpu, "bf16") == torch.bfloat16
    with pytest.raises(KitError, match="precision"):
        autocast_dtype(cpu, "int8")


def test_bf16_training_matches_fp32_training(data_root):
    train = subset(load_dataset("mnist", data_root, "train"), 1024, seed=3)
    losses = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = ConditionalVAE(train.shape, latent_dim=8, prior="standard")
        losses[precision] = fit(model, train, epochs=2, lr=4e-3, progress=False, precision=precision).train[-1]["loss"]
    assert abs(losses["bf16"] - losses["fp32"]) < 0.03 * losses["fp32"], losses


def test_cosine_schedule_ends_with_the_time_budget(data_root, tmp_path):
    """``--max-seconds`` with many epochs: the rate still decays to ~0 by the time the budget runs out."""
    train = subset(load_dataset("mnist", data_root, "train"), 2048, seed=4)
    model = ConditionalVAE(train.shape, latent_dim=8, prior="standard")
    history = fit(model, train, epochs=1000, lr=4e-3, max_seconds=3.0, progress=False, lr_schedule="cosine",
                  checkpoint=tmp_path)
    assert history.stopped_by_time and history.epochs < 1000
    lr = load_checkpoint(tmp_path / "checkpoint.pt")["optimizer"]["param_groups"][0]["lr"]
    assert lr < 0.1 * 4e-3, lr  # without the time term it would still be ~4e-3 (a few of 1000 epochs done)


def test_pooled_prior_does_not_know_the_class():
    """``prior="pooled"``: one mixture fitted to the codes of all classes; the class reaches the sample only
    through the decoder, so the same noise gives the same code whatever the label."""
    torch.manual_seed(0)
    model = ConditionalVAE((1, 28, 28), latent_dim=4, prior="pooled", prior_components=3)
    model.fit_prior(torch.rand(300, 1, 28, 28), torch.arange(300) % 10)
    assert model.uses_fitted_prior and model.prior_logits.shape == (1, 3)
    z = {k: model.prior_z(torch.full((50,), k), torch.Generator().manual_seed(0)) for k in (0, 7)}
    assert torch.equal(z[0], z[7])
    assert torch.allclose(model.prior_log_prob(z[0], torch.zeros(50)), model.prior_log_prob(z[0], torch.full((50,), 7)))
    mu = model.embed(torch.rand(300, 1, 28, 28), torch.arange(300) % 10)
    assert float(model.prior_z(torch.zeros(6000, dtype=torch.long)).std()) == pytest.approx(float(mu.std()), rel=0.3)

"""Exercise checks for lessons 01-02: reconstruction loss, reconstruction, reparameterisation, Gaussian KL."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._core import _call, _close, _fail, _fmt, _ok, _require_callable, _require_tensor, _scalar


__all__ = ["check_recon_loss", "check_reconstruct", "check_reparameterize", "check_kl"]


def check_recon_loss(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(logits, x)``: the Bernoulli reconstruction loss, summed over pixels, averaged over images.

    Reference: :func:`cvaelib.losses.bernoulli_nll`.
    """
    from ...losses import bernoulli_nll

    check = "check_recon_loss"
    _require_callable(check, fn, "recon_loss")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 1, 6, 6, generator=g) * 3
    x = torch.rand(4, 1, 6, 6, generator=g)
    got = _scalar(check, _call(check, fn, logits, x), "loss")
    want = float(bernoulli_nll(logits, x))
    n_pixels, n_images = x[0].numel(), x.shape[0]
    if math.isclose(got, want, rel_tol=1e-4):
        _ok(check, f"{got:.2f} nats per image, the same as cvaelib.losses.bernoulli_nll")
        return
    if math.isclose(got, want / n_pixels, rel_tol=1e-3):
        raise _fail(check, f"you averaged over the pixels as well ({got:.3f} instead of {want:.2f}).",
                    "the ELBO needs log p(x|z) of the whole image: sum over pixels (reduction='sum'), then "
                    "divide by the number of images, x.shape[0].")
    if math.isclose(got, want * n_images, rel_tol=1e-4):
        raise _fail(check, f"you summed over the whole batch ({got:.1f} instead of {want:.2f}).",
                    "divide by the number of images, x.shape[0], so the loss does not grow with the batch size.")
    probs = torch.sigmoid(logits)
    as_probs = F.binary_cross_entropy(probs.clamp(1e-6, 1 - 1e-6), x, reduction="sum") / n_images
    if math.isclose(got, float(F.binary_cross_entropy_with_logits(probs, x, reduction="sum")) / n_images,
                    rel_tol=1e-4):
        raise _fail(check, "you applied a sigmoid before binary_cross_entropy_with_logits (a sigmoid twice).",
                    "pass the decoder's logits directly: F.binary_cross_entropy_with_logits(logits, x, ...).")
    if math.isclose(got, float(F.mse_loss(probs, x, reduction="sum")) / n_images, rel_tol=1e-4) or \
            math.isclose(got, float(F.mse_loss(logits, x, reduction="sum")) / n_images, rel_tol=1e-4):
        raise _fail(check, "that is a squared error, not the Bernoulli log-likelihood the lessons use.",
                    "use F.binary_cross_entropy_with_logits(logits, x, reduction='sum') / x.shape[0].")
    if got < 0:
        raise _fail(check, f"your loss is negative ({got:.2f}); a negative log-likelihood of pixels is >= 0.",
                    "check the sign: minimise -log p(x|z), i.e. binary cross-entropy.")
    raise _fail(check, f"your loss is {got:.3f}, expected {want:.3f} (close to {float(as_probs):.3f} computed "
                       f"from probabilities).",
                "per image: sum over its pixels of BCE(sigmoid(logits), x); then average over the images.")


def check_reconstruct(fn: Callable[[Any, Tensor], Tensor]) -> None:
    """``fn(model, x)``: images in [0, 1] decoded from the code of ``x`` (``model.encode`` then ``model.decode``).

    Reference: :meth:`cvaelib.models.base.GenerativeModel.reconstruct`.
    """
    from ...models import ConvAutoencoder

    check = "check_reconstruct"
    _require_callable(check, fn, "reconstruct")
    torch.manual_seed(0)
    model = ConvAutoencoder(image_shape=(1, 28, 28), latent_dim=4).eval()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = _require_tensor(check, _call(check, fn, model, x), x.shape, "reconstruction")
        want = model.reconstruct(x)
        logits = model.decode(model.encode(x)[0])
    out = out.detach().float()
    if _close(out, want):
        _ok(check, "encode -> code -> decode -> sigmoid gives the model's reconstruction")
        return
    if _close(out, logits):
        raise _fail(check, f"your images range from {float(out.min()):.2f} to {float(out.max()):.2f}: those are "
                           f"logits, not pixel intensities.",
                    "decode returns logits; apply torch.sigmoid to get images in [0, 1].")
    if out.min() < 0 or out.max() > 1:
        raise _fail(check, "your images are not in [0, 1].", "finish with torch.sigmoid(model.decode(z)).")
    raise _fail(check, "your images differ from the model's reconstruction of x.",
                "encode returns a pair (code, None) for an autoencoder: take z = model.encode(x)[0], then "
                "torch.sigmoid(model.decode(z)).")


def check_reparameterize(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(mu, logvar)``: one sample z = mu + sigma * eps, differentiable in mu and logvar.

    Reference: :func:`cvaelib.losses.reparameterize` (compared by its statistics: the sample is random).
    """
    check = "check_reparameterize"
    _require_callable(check, fn, "reparameterize")
    n = 20000
    mu = torch.tensor([0.0, 2.0, -1.0]).repeat(n, 1).requires_grad_(True)
    logvar = torch.tensor([0.0, math.log(4.0), math.log(0.25)]).repeat(n, 1).requires_grad_(True)
    torch.manual_seed(0)
    z = _require_tensor(check, _call(check, fn, mu, logvar), mu.shape, "z")
    if not z.requires_grad:
        raise _fail(check, "no gradient flows from z back to mu and logvar.",
                    "draw eps = torch.randn_like(mu) and compute mu + torch.exp(0.5 * logvar) * eps "
                    "(torch.normal(mu, std) is not differentiable).")
    z.sum().backward()
    if mu.grad is None or not torch.allclose(mu.grad, torch.ones_like(mu)):
        raise _fail(check, "dz/dmu should be 1 for every element.",
                    "write the sample as z = mu + std * eps (torch.normal(mu, std) passes no gradient to mu).")
    if logvar.grad is None or float(logvar.grad.abs().sum()) == 0:
        raise _fail(check, "z does not depend on logvar: the noise is not scaled by sigma.",
                    "multiply eps by the standard deviation, torch.exp(0.5 * logvar).")
    z = z.detach()
    if float(z.std(0).max()) < 1e-6:
        raise _fail(check, "z is the same for every call: there is no noise in it.",
                    "draw eps ~ N(0, I) with torch.randn_like(mu) and add std * eps.")
    mean, std = z.mean(0), z.std(0)
    want_std = torch.tensor([1.0, 2.0, 0.5])
    if not torch.allclose(mean, mu[0].detach(), atol=0.05):
        raise _fail(check, f"the samples' mean is {_fmt(mean)}, expected mu = [0, 2, -1].",
                    "z = mu + std * eps: the noise eps must have mean 0 (torch.randn, not torch.rand).")
    if torch.allclose(std, torch.tensor([1.0, 4.0, 0.25]), rtol=0.05):
        raise _fail(check, "your noise is scaled by the variance exp(logvar), not the standard deviation.",
                    "sigma = exp(0.5 * logvar) = sqrt(exp(logvar)).")
    if torch.allclose(std, torch.ones(3), rtol=0.05):
        raise _fail(check, "your noise is not scaled by sigma (every dimension has std 1).",
                    "multiply eps by torch.exp(0.5 * logvar).")
    if not torch.allclose(std, want_std, rtol=0.05):
        raise _fail(check, f"the samples' standard deviation is {_fmt(std)}, expected "
                           f"[1.0, 2.0, 0.5] for logvar = [0, log 4, log 0.25].",
                    "sigma = torch.exp(0.5 * logvar); eps from torch.randn_like(mu) (a standard normal).")
    _ok(check, "mean mu, standard deviation exp(logvar / 2), and gradients reach both")


def check_kl(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(mu, logvar)``: KL(N(mu, sigma^2) || N(0, I)), summed over latent dimensions, averaged over images.

    Reference: :func:`cvaelib.losses.gaussian_kl`.
    """
    from ...losses import gaussian_kl

    check = "check_kl"
    _require_callable(check, fn, "kl")
    zero = _scalar(check, _call(check, fn, torch.zeros(2, 3), torch.zeros(2, 3)), "KL")
    if abs(zero) > 1e-5:
        raise _fail(check, f"for mu = 0, logvar = 0 (q equal to the prior) your KL is {zero:.3f}, not 0.",
                    "the closed form is 0.5 * sum(mu**2 + exp(logvar) - 1 - logvar).")
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(4, 5, generator=g), torch.randn(4, 5, generator=g) * 0.7
    got = _scalar(check, _call(check, fn, mu, logvar), "KL")
    want = float(gaussian_kl(mu, logvar))
    if math.isclose(got, want, rel_tol=1e-4):
        _ok(check, f"{got:.3f} nats per image, the same as cvaelib.losses.gaussian_kl")
        return
    b, d = mu.shape
    if got < 0:
        raise _fail(check, f"your KL is negative ({got:.3f}); a KL divergence is never negative.",
                    "check the signs: 0.5 * sum(mu**2 + exp(logvar) - 1 - logvar).")
    if math.isclose(got, 2 * want, rel_tol=1e-4):
        raise _fail(check, f"your KL is twice the right value ({got:.3f} vs {want:.3f}).", "multiply by 0.5.")
    if math.isclose(got, want * b, rel_tol=1e-4):
        raise _fail(check, f"you summed over the batch too ({got:.3f} vs {want:.3f}).",
                    "sum over latent dimensions, then divide by the number of images, mu.shape[0].")
    if math.isclose(got, want / d, rel_tol=1e-4):
        raise _fail(check, f"you averaged over the latent dimensions ({got:.3f} vs {want:.3f}).",
                    "the KL of independent dimensions adds up: sum over dimensions, average over images.")
    wrong_var = float(0.5 * torch.sum(mu.pow(2) + logvar - 1 - logvar.clamp_min(1e-6).log()) / b) \
        if bool((logvar > 0).all()) else float("nan")
    if math.isclose(got, wrong_var, rel_tol=1e-4):
        raise _fail(check, "you treated logvar as the variance.", "the variance is torch.exp(logvar).")
    raise _fail(check, f"your KL is {got:.4f}, expected {want:.4f}.",
                "0.5 * torch.sum(mu**2 + logvar.exp() - 1 - logvar) / mu.shape[0].")

"""Exercise checks for lessons 01-02: reconstruction loss, reconstruction by hand, reparameterisation, its gradient,
the Gaussian KL (closed form and Monte-Carlo), and the two lessons' predict-first questions."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._core import (Question, _call, _close, _fail, _fmt, _ok, _require_callable, _require_tensor, _scalar,
                    register_questions)


__all__ = ["check_recon_loss", "check_reconstruct", "check_reparameterize", "check_dz_dlogvar", "check_kl",
           "check_mc_kl"]

register_questions({
    "01.bottleneck": Question(
        {"a": "they look the same as with 16 numbers", "b": "the rough shape survives, details go, and some digits "
         "turn into other digits", "c": "pure noise: 2 numbers cannot describe an image"},
        "b", "two numbers can say roughly which digit and how it is slanted, not the strokes: similar digits (4 and "
        "9, 3 and 5) share codes and come back as a blurry average.",
        "count how much a code of 2 numbers can say, and remember the decoder always outputs *some* digit-like "
        "image: it was only ever trained to."),
    "01.random_codes": Question(
        {"a": "new, clear digits", "b": "mostly blobs and broken strokes", "c": "the same digit 16 times"},
        "b", "nothing in training made the space between (or away from) the real codes decode to digits, and the "
        "real codes do not sit where N(0, I) puts its samples.",
        "which codes did the decoder see during training, and do random N(0, I) codes look like them?"),
    "02.kl_training": Question(
        {"a": "it stays near 0: the prior term wins", "b": "it rises from near 0, then levels off",
         "c": "it falls below 0"},
        "b", "at the start q(z|x) is close to N(0, I) for every image (KL near 0, and the decoder learns nothing from "
        "z); to reconstruct better the encoder must tell images apart, and every nat of information it puts into z "
        "costs a nat of KL.",
        "a KL is never negative; what must the encoder do to make reconstructions better, and what does that cost?"),
    "02.beta": Question(
        {"a": "reconstruction error falls and the KL rises", "b": "reconstruction error rises (blurrier) and the "
         "KL falls", "c": "both fall"},
        "b", "β is the price of one nat in z: a higher price buys fewer nats, so z describes each image less exactly "
        "and reconstructions blur; at a high enough price some dimensions carry nothing at all (posterior collapse).",
        "β multiplies the KL: what does a higher weight on a term do to the value of that term at the optimum?"),
})


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
                    "log p(x|z) of an image is the sum of its pixels' log-probabilities (they are independent "
                    "given z), so pixels add up; only the images of the batch are averaged.")
    if math.isclose(got, want * n_images, rel_tol=1e-4):
        raise _fail(check, f"you summed over the whole batch ({got:.1f} instead of {want:.2f}).",
                    "the loss should not grow with the batch size: average the per-image sums over the images.")
    probs = torch.sigmoid(logits)
    as_probs = F.binary_cross_entropy(probs.clamp(1e-6, 1 - 1e-6), x, reduction="sum") / n_images
    if math.isclose(got, float(F.binary_cross_entropy_with_logits(probs, x, reduction="sum")) / n_images,
                    rel_tol=1e-4):
        raise _fail(check, "you applied a sigmoid before binary_cross_entropy_with_logits (a sigmoid twice).",
                    "the '_with_logits' version applies the sigmoid itself, so what you give it must still be "
                    "logits.")
    if math.isclose(got, float(F.mse_loss(probs, x, reduction="sum")) / n_images, rel_tol=1e-4) or \
            math.isclose(got, float(F.mse_loss(logits, x, reduction="sum")) / n_images, rel_tol=1e-4):
        raise _fail(check, "that is a squared error, not the Bernoulli log-likelihood the lessons use.",
                    "each pixel is the probability of a Bernoulli variable: its negative log-likelihood is a "
                    "binary cross-entropy.")
    if got < 0:
        raise _fail(check, f"your loss is negative ({got:.2f}); a negative log-likelihood of pixels is >= 0.",
                    "check the sign: training minimises -log p(x|z).")
    raise _fail(check, f"your loss is {got:.3f}, expected {want:.3f} on the check's inputs (logits [4, 1, 6, 6], "
                       f"x in [0, 1]; {float(as_probs):.3f} computed from probabilities).",
                "per image: the binary cross-entropy of every pixel, added up; then the mean over the images. "
                "Try your function on one pixel with logit 0 and x = 1: the loss should be log 2 = 0.693.")


def _spy_autoencoder() -> Any:
    """A small autoencoder that records which of its methods the student's code calls."""
    from ...models import ConvAutoencoder

    class Spy(ConvAutoencoder):
        def __init__(self) -> None:
            super().__init__(image_shape=(1, 28, 28), latent_dim=4)
            self.calls: list[str] = []

        def encode(self, x, c=None):
            self.calls.append("encode")
            return super().encode(x, c)

        def decode(self, z, c=None):
            self.calls.append("decode")
            return super().decode(z, c)

        def forward(self, x, c=None):
            self.calls.append("forward")
            return super().forward(x, c)

        def reconstruct(self, x, c=None):
            self.calls.append("reconstruct")
            return super().reconstruct(x, c)

    return Spy()


def check_reconstruct(fn: Callable[[Any, Tensor], Tensor]) -> None:
    """``fn(model, x)``: images in [0, 1] decoded from the code of ``x``, written as its three steps (encode,
    decode, sigmoid); the shortcuts ``model.reconstruct(x)`` and ``model(x)`` are refused.

    Reference: :meth:`cvaelib.models.base.GenerativeModel.reconstruct`.
    """
    check = "check_reconstruct"
    _require_callable(check, fn, "reconstruct")
    torch.manual_seed(0)
    model = _spy_autoencoder().eval()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = _require_tensor(check, _call(check, fn, model, x), x.shape, "reconstruction")
        calls = list(model.calls)
        want = torch.sigmoid(model.decoder(model.to_z(model.encoder(x))))
        logits = model.decoder(model.to_z(model.encoder(x)))
    out = out.detach().float()
    if "reconstruct" in calls or "forward" in calls:
        shortcut = "model.reconstruct" if "reconstruct" in calls else "model(x) (its forward)"
        raise _fail(check, f"your function calls {shortcut}, which does the whole job for you.",
                    "the exercise is to write the steps yourself: use the model's encode and decode methods and "
                    "turn the decoder's output into intensities.")
    if "encode" not in calls or "decode" not in calls:
        missing = " and ".join(m for m in ("encode", "decode") if m not in calls)
        raise _fail(check, f"your function never calls model.{missing}.",
                    "a reconstruction goes through the bottleneck: image -> code (encode) -> logits (decode).")
    if _close(out, want):
        _ok(check, "encode -> code -> decode -> sigmoid gives the model's reconstruction")
        return
    if _close(out, logits):
        raise _fail(check, f"your images range from {float(out.min()):.2f} to {float(out.max()):.2f}: those are "
                           f"logits, not pixel intensities.",
                    "decode returns logits (any real number); which function maps them into (0, 1)?")
    if out.min() < 0 or out.max() > 1:
        raise _fail(check, "your images are not in [0, 1].", "decode returns logits: squash them into (0, 1).")
    raise _fail(check, "your images differ from the model's reconstruction of x.",
                "print what model.encode(x) returns: for an autoencoder it is a pair, and only its first element "
                "is the code the decoder takes.")


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
                    "z must be computed from mu and logvar with ordinary tensor arithmetic; torch.normal(...) and "
                    ".detach() cut the graph. Keep the randomness in a separate noise tensor.")
    z.sum().backward()
    if mu.grad is None or not torch.allclose(mu.grad, torch.ones_like(mu)):
        raise _fail(check, "dz/dmu should be 1 for every element.",
                    "moving mu by 1 should move z by exactly 1: mu enters z as a plain sum (torch.normal(mu, sigma) "
                    "draws a sample but passes no such gradient).")
    if logvar.grad is None or float(logvar.grad.abs().sum()) == 0:
        raise _fail(check, "z does not depend on logvar: the noise is not scaled by sigma.",
                    "the spread of z has to come from logvar: scale the noise by something computed from it.")
    z = z.detach()
    if float(z.std(0).max()) < 1e-6:
        raise _fail(check, "z is the same for every call: there is no noise in it.",
                    "every call must draw fresh standard-normal noise, one number per element of mu.")
    mean, std = z.mean(0), z.std(0)
    want_std = torch.tensor([1.0, 2.0, 0.5])
    if not torch.allclose(mean, mu[0].detach(), atol=0.05):
        raise _fail(check, f"the samples' mean is {_fmt(mean)}, expected mu = [0, 2, -1].",
                    "the noise must have mean 0: torch.rand draws from [0, 1), not from N(0, 1).")
    if torch.allclose(std, torch.tensor([1.0, 4.0, 0.25]), rtol=0.05):
        raise _fail(check, "your noise is scaled by the variance exp(logvar), not the standard deviation.",
                    "logvar is log sigma^2: for logvar = log 4 the spread of z should be 2, not 4.")
    if torch.allclose(std, torch.ones(3), rtol=0.05):
        raise _fail(check, "your noise is not scaled by sigma (every dimension has std 1).",
                    "the noise must be stretched by sigma, which you compute from logvar.")
    if not torch.allclose(std, want_std, rtol=0.05):
        raise _fail(check, f"the samples' standard deviation is {_fmt(std)}, expected "
                           f"[1.0, 2.0, 0.5] for logvar = [0, log 4, log 0.25].",
                    "check how you turn logvar (= log sigma^2) into sigma, and that the noise is standard normal.")
    _ok(check, "mean mu, standard deviation exp(logvar / 2), and gradients reach both")


def check_dz_dlogvar(fn: Callable[[Tensor, Tensor, Tensor], Tensor]) -> None:
    """``fn(mu, logvar, eps)``: the derivative of z = mu + exp(logvar / 2) * eps with respect to logvar, element-wise.

    Reference: autograd on that formula.
    """
    check = "check_dz_dlogvar"
    _require_callable(check, fn, "dz_dlogvar")
    g = torch.Generator().manual_seed(2)
    mu, eps = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    logvar = torch.randn(4, 3, generator=g).requires_grad_(True)
    (mu + torch.exp(0.5 * logvar) * eps).sum().backward()
    want, logvar = logvar.grad, logvar.detach()
    got = _require_tensor(check, _call(check, fn, mu, logvar, eps), None, "derivative")
    got = got.detach().float()
    if got.numel() == 1:
        got = got.expand_as(mu)
    if tuple(got.shape) != tuple(mu.shape):
        raise _fail(check, f"your derivative has shape {list(got.shape)}, expected {list(mu.shape)}.",
                    "each z element depends only on its own logvar element: one derivative per element.")
    moved = _call(check, fn, mu + 1.0, logvar, eps)
    if isinstance(moved, Tensor) and not _close(moved.detach().float().expand_as(mu), got):
        raise _fail(check, "your derivative changes when mu changes.",
                    "mu enters z as a plain sum, so it drops out when you differentiate with respect to logvar.")
    if _close(got, want):
        _ok(check, "dz/d(log sigma^2) = (z - mu) / 2, the same as autograd")
        return
    sigma = torch.exp(0.5 * logvar)
    wrong = {
        "eps": ("that is dz/dsigma, not dz/d(log sigma^2).",
                "sigma itself depends on logvar: apply the chain rule through sigma = exp(logvar / 2)."),
        "sigma_eps": ("that is twice the right value: the chain rule's inner derivative is missing.",
                      "differentiate exp(v / 2) with respect to v."),
        "half_eps": ("your derivative does not grow with sigma.",
                     "d sigma / d logvar depends on sigma: a wide q moves more when logvar changes."),
        "var_eps": ("you used the variance exp(logvar) where sigma = exp(logvar / 2) belongs.",
                    "z = mu + sigma * eps with sigma = exp(logvar / 2)."),
        "half_var_eps": ("you used the variance exp(logvar) where sigma = exp(logvar / 2) belongs.",
                         "z = mu + sigma * eps with sigma = exp(logvar / 2)."),
        "one": ("that is dz/dmu.", "differentiate with respect to logvar, holding mu and eps fixed."),
    }
    candidates = {"eps": eps, "sigma_eps": sigma * eps, "half_eps": 0.5 * eps, "var_eps": logvar.exp() * eps,
                  "half_var_eps": 0.5 * logvar.exp() * eps, "one": torch.ones_like(mu)}
    for key, value in candidates.items():
        if _close(got, value):
            raise _fail(check, *wrong[key])
    raise _fail(check, f"your derivative is {_fmt(got)}, autograd says {_fmt(want)}.",
                "write z as a function of logvar alone (mu and eps fixed) and differentiate it with the chain rule.")


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
                    "a distribution's KL to itself is 0: evaluate each term of your formula at mu = 0, sigma = 1.")
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
                    "compare the sign of every term with the derivation above.")
    if math.isclose(got, 2 * want, rel_tol=1e-4):
        raise _fail(check, f"your KL is twice the right value ({got:.3f} vs {want:.3f}).",
                    "compare the factor in front of your sum with the derivation.")
    if math.isclose(got, want * b, rel_tol=1e-4):
        raise _fail(check, f"you summed over the batch too ({got:.3f} vs {want:.3f}).",
                    "the KL is a per-image number: average over the images, as recon_loss does.")
    if math.isclose(got, want / d, rel_tol=1e-4):
        raise _fail(check, f"you averaged over the latent dimensions ({got:.3f} vs {want:.3f}).",
                    "the dimensions of q and of the prior are independent, so their KLs add up.")
    wrong_var = float(0.5 * torch.sum(mu.pow(2) + logvar - 1 - logvar.clamp_min(1e-6).log()) / b) \
        if bool((logvar > 0).all()) else float("nan")
    if math.isclose(got, wrong_var, rel_tol=1e-4):
        raise _fail(check, "you treated logvar as the variance.", "logvar is log sigma^2.")
    one = _scalar(check, _call(check, fn, torch.ones(1, 1), torch.zeros(1, 1)), "KL")
    raise _fail(check, f"your KL is {got:.4f}, expected {want:.4f} on random mu, logvar [4, 5].",
                f"test one dimension by hand: for mu = 1, logvar = 0 the KL is 0.5 nats, yours gives {one:.3f}; "
                f"then try mu = 0, logvar = log 4 (the KL is 0.807).")


def _mc_reference(mu: float, logvar: float, n: int) -> tuple[float, float]:
    """Closed-form KL(N(mu, sigma^2) || N(0, 1)) and the standard error of an n-sample Monte-Carlo estimate of it."""
    kl = 0.5 * (mu ** 2 + math.exp(logvar) - 1.0 - logvar)
    g = torch.Generator().manual_seed(123)
    z = mu + math.exp(0.5 * logvar) * torch.randn(50_000, generator=g, dtype=torch.float64)
    terms = -0.5 * logvar - 0.5 * (z - mu) ** 2 / math.exp(logvar) + 0.5 * z ** 2
    return kl, float(terms.std()) / math.sqrt(n)


def check_mc_kl(fn: Callable[[Tensor, Tensor, int], Any]) -> None:
    """``fn(mu, logvar, n)``: a Monte-Carlo estimate of KL(N(mu, sigma^2) || N(0, 1)) for one dimension (``mu`` and
    ``logvar`` 0-d tensors): the mean of log q(z) - log p(z) over ``n`` samples z ~ q.

    Reference: the closed form, within five standard errors of an ``n``-sample estimate.
    """
    check = "check_mc_kl"
    _require_callable(check, fn, "mc_kl")
    n = 100_000

    def run(mu: float, logvar: float, seed: int) -> float:
        torch.manual_seed(seed)
        return _scalar(check, _call(check, fn, torch.tensor(mu), torch.tensor(logvar), n), "estimate")

    same = run(0.0, 0.0, 0)
    if any(abs(same - v) < 0.02 for v in (0.5, 0.5 + 0.5 * math.log(2 * math.pi))):
        raise _fail(check, f"for q = p = N(0, 1) your estimate is {same:.4f}, not 0: that is E[-log p(z)] alone.",
                    "the KL has two log-densities: the one of q at z is missing.")
    if abs(same) > 1e-3:
        raise _fail(check, f"for q = p = N(0, 1) your estimate is {same:.4f}; every sample of log q(z) - log p(z) is "
                           f"then exactly 0.",
                    "with mu = 0 and logvar = 0 the two log-densities are the same function of z: check that your "
                    "log q uses mu and the variance exp(logvar) the way log p uses 0 and 1.")
    for mu, logvar in ((1.0, 0.0), (-0.5, math.log(0.25)), (2.0, math.log(3.0))):
        got = run(mu, logvar, 1)
        kl, se = _mc_reference(mu, logvar, n)
        if abs(got - kl) <= 5 * se + 1e-4:
            if got == run(mu, logvar, 2):
                raise _fail(check, "your estimate is the same number for two different random seeds: it is not "
                                   "sampled.",
                            "draw n samples z ~ q with your my_reparameterize and average log q(z) - log p(z) over "
                            "them; the closed form is what the estimate is compared with, not the estimate.")
            continue
        where = f"for mu = {mu:g}, logvar = {logvar:.3g}: your estimate is {got:.4f}, the closed form {kl:.4f} " \
                f"(a {n}-sample estimate is within +-{2 * se:.4f} of it 95 % of the time)"
        sigma2 = math.exp(logvar)
        if got < 0:
            raise _fail(check, where + "; a KL is never negative.",
                        "KL(q || p) averages log q(z) - log p(z) over z ~ q: check the order of the two terms.")
        cross = 0.5 * (mu ** 2 + sigma2)
        if any(abs(got - v) <= 5 * se + 1e-3 for v in (cross, cross + 0.5 * math.log(2 * math.pi))):
            raise _fail(check, where + "; that is E[-log p(z)] alone.",
                        "the KL has two log-densities: the one of q at z is missing.")
        raise _fail(check, where + ".",
                    "check log q(z): a Normal density with mean mu and *variance* exp(logvar), at samples z drawn "
                    "from that same q (mean mu, standard deviation exp(logvar / 2)).")
    _ok(check, "your Monte-Carlo estimate agrees with the closed form within its sampling error")

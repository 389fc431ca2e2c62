"""Check functions for the notebooks' exercises: immediate, specific feedback for students.

Each ``check_*`` takes what the student wrote (a function or a value), runs it on small inputs and compares it
with the library's own implementation (``cvaelib.losses``, ``cvaelib.interpolate``, ``cvaelib.prompts``, ...), so
there is one reference for every idea.  A wrong answer raises :class:`ExerciseError` with a one-line message that
says *what* is wrong and gives a *hint*, e.g.::

    ExerciseError: check_kl: your KL is negative (-3.2) for mu=0.5, logvar=0.3 - a KL divergence is never
    negative. Hint: the closed form is 0.5 * sum(mu**2 + exp(logvar) - 1 - logvar).

A stub that still raises ``NotImplementedError("Exercise N: ...")`` is passed through unchanged, so an
unfinished exercise reads as "not done yet", not as a wrong answer.  A right answer prints one line starting
with ``correct:``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import KitError, PromptError


class ExerciseError(KitError):
    """An exercise's answer is wrong; the message says what is wrong and how to fix it."""


def _fail(check: str, what: str, hint: str) -> ExerciseError:
    return ExerciseError(f"{check}: {what} Hint: {hint}")


def _ok(check: str, message: str) -> None:
    print(f"correct: {check}: {message}")


def _require_callable(check: str, fn: Any, name: str) -> None:
    if not callable(fn):
        raise _fail(check, f"expected your function {name}, got a {type(fn).__name__}.",
                    f"pass the function itself, without calling it: {check}({name})")


def _call(check: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the student's function; keep NotImplementedError (an unfinished stub), explain anything else."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except ExerciseError:
        raise
    except Exception as exc:  # the student's code failed: say where it failed, not a deep traceback
        raise _fail(check, f"your function raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
                    "run it on the small example in the cell above and read the error; check shapes "
                    "(print(x.shape)) and dtypes.") from exc


def _require_tensor(check: str, out: Any, shape: Sequence[int] | None = None, what: str = "result") -> Tensor:
    if not isinstance(out, Tensor):
        raise _fail(check, f"your {what} is a {type(out).__name__}, not a torch.Tensor.",
                    "build it from torch operations on the inputs (and return it).")
    if shape is not None and tuple(out.shape) != tuple(shape):
        raise _fail(check, f"your {what} has shape {list(out.shape)}, expected {list(shape)}.",
                    "check which dimension you summed, concatenated or indexed over.")
    if out.is_floating_point() and not torch.isfinite(out).all():
        raise _fail(check, f"your {what} contains NaN or inf.",
                    "look for log(0), division by a zero norm, or exp of a huge number.")
    return out


def _fmt(t: Tensor) -> str:
    """A short tensor for a message: ``[0.75, 0.69]``."""
    return "[" + ", ".join(f"{float(v):.2f}" for v in t.flatten()[:8]) + (", ..." if t.numel() > 8 else "") + "]"


def _close(a: Tensor, b: Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=rtol, atol=atol)


def _scalar(check: str, out: Any, what: str) -> float:
    if isinstance(out, Tensor):
        if out.numel() != 1:
            raise _fail(check, f"your {what} has shape {list(out.shape)}; it should be one number per batch.",
                        "sum over pixels/dimensions and average over the images in the batch.")
        return float(out.detach())
    if isinstance(out, (int, float)):
        return float(out)
    raise _fail(check, f"your {what} is a {type(out).__name__}, not a number.", "return a tensor (or a float).")


# --- 01: the autoencoder ------------------------------------------------------------------------------------------
def check_recon_loss(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(logits, x)``: the Bernoulli reconstruction loss, summed over pixels, averaged over images.

    Reference: :func:`cvaelib.losses.bernoulli_nll`.
    """
    from ..losses import bernoulli_nll

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
    from ..models import ConvAutoencoder

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


# --- 02: the VAE ----------------------------------------------------------------------------------------------------
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
    from ..losses import gaussian_kl

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


# --- 03: the conditional VAE --------------------------------------------------------------------------------------
def check_condition_concat(fn: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    """``fn(z, c, num_classes)``: the decoder input of a one-hot CVAE, ``[B, latent + num_classes]``.

    Reference: a :class:`cvaelib.ConditionalVAE` with ``cond="onehot"``: its decoder applied to your input must
    equal ``model.decode(z, c)``.
    """
    from ..models import ConditionalVAE

    check = "check_condition_concat"
    _require_callable(check, fn, "condition_concat")
    torch.manual_seed(0)
    k, latent = 10, 4
    model = ConditionalVAE(image_shape=(1, 28, 28), num_classes=k, latent_dim=latent, cond="onehot").eval()
    z = torch.randn(5, latent, generator=torch.Generator().manual_seed(0))
    c = torch.tensor([3, 0, 9, 3, 7])
    out = _call(check, fn, z, c, k)
    out = _require_tensor(check, out, None, "decoder input")
    if tuple(out.shape) == (5, latent + 1):
        raise _fail(check, f"your result has shape {list(out.shape)}: you appended the class id as one number.",
                    "turn c into a one-hot vector first: F.one_hot(c, num_classes).float().")
    if tuple(out.shape) == (10, latent) or tuple(out.shape)[0] != 5:
        raise _fail(check, f"your result has shape {list(out.shape)}, expected [5, {latent + k}].",
                    "concatenate along the feature dimension: torch.cat([z, onehot], dim=1).")
    _require_tensor(check, out, (5, latent + k), "decoder input")
    if not out.is_floating_point():
        raise _fail(check, f"your result has dtype {out.dtype}; a network layer needs floats.",
                    "convert the one-hot vector with .float() before concatenating.")
    onehot = F.one_hot(c, k).float()
    if _close(out, torch.cat([onehot, z], 1)):
        raise _fail(check, "the one-hot vector comes first; the model expects z first.",
                    "torch.cat([z, onehot], dim=1).")
    with torch.no_grad():
        same = _close(model.decoder(out.float()), model.decode(z, c))
    if not same:
        raise _fail(check, "your decoder input does not reproduce model.decode(z, c).",
                    "keep z unchanged and append F.one_hot(c, num_classes).float() on the right.")
    _ok(check, "[z, one_hot(c)] is exactly what ConditionalVAE(cond='onehot') feeds its decoder")


def check_class_samples(fn: Callable[[Any, int, int, torch.Generator], Tensor]) -> None:
    """``fn(model, label, n, generator)``: ``n`` images of class ``label``, z ~ N(0, I) drawn with ``generator``.

    Reference: :meth:`cvaelib.ConditionalVAE.sample` with the standard prior.
    """
    from ..models import ConditionalVAE

    check = "check_class_samples"
    _require_callable(check, fn, "class_samples")
    torch.manual_seed(0)
    model = ConditionalVAE(image_shape=(1, 28, 28), num_classes=10, latent_dim=4).eval()
    label, n = 3, 6
    with torch.no_grad():
        out = _call(check, fn, model, label, n, torch.Generator().manual_seed(5))
        out = _require_tensor(check, out, (n, 1, 28, 28), "images").detach().float()
        again = _call(check, fn, model, label, n, torch.Generator().manual_seed(5)).detach().float()
        want = model.sample(n, torch.full((n,), label), generator=torch.Generator().manual_seed(5))
        z = torch.randn(n, 4, generator=torch.Generator().manual_seed(5))
        others = [torch.sigmoid(model.decode(z, torch.full((n,), k))) for k in range(10)]
    if out.min() < 0 or out.max() > 1:
        raise _fail(check, "your images are not in [0, 1] (decode returns logits).", "apply torch.sigmoid.")
    if _close(out, want):
        _ok(check, f"{n} images of class {label}, identical to model.sample with the same generator")
        return
    for k, img in enumerate(others):
        if _close(out, img):
            raise _fail(check, f"your images were decoded with class {k}, not {label}.",
                        "pass c = torch.full((n,), label) to model.decode.")
    if not _close(out, again):
        raise _fail(check, "two calls with identically seeded generators give different images.",
                    "draw the codes with the generator: torch.randn(n, model.latent_dim, generator=generator).")
    raise _fail(check, "your images differ from model.sample(n, c, generator=generator).",
                "z = torch.randn(n, model.latent_dim, generator=generator); c = torch.full((n,), label); "
                "images = torch.sigmoid(model.decode(z, c)).")


# --- 04: latent spaces and prompts ------------------------------------------------------------------------------
def check_slerp(fn: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    """``fn(z0, z1, steps)``: ``steps`` points from ``z0`` to ``z1`` along the great circle, norms interpolated.

    Reference: :func:`cvaelib.interpolate.slerp`.
    """
    from ..interpolate import lerp, slerp

    check = "check_slerp"
    _require_callable(check, fn, "slerp")
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(16, generator=g), torch.randn(16, generator=g) * 1.5
    out = _require_tensor(check, _call(check, fn, z0, z1, 5), (5, 16), "path")
    want, line = slerp(z0, z1, 5), lerp(z0, z1, 5)
    if _close(out, want, rtol=1e-3, atol=1e-4):
        _ok(check, "the path follows the great circle and keeps the (interpolated) length, like "
                   "cvaelib.interpolate.slerp")
        return
    dirs, want_dirs = F.normalize(out, dim=-1), F.normalize(want, dim=-1)
    if torch.allclose(dirs, want_dirs, atol=1e-3):
        raise _fail(check, "the directions are right but the lengths are not.",
                    "scale each unit direction by (1 - t) * |z0| + t * |z1|.")
    if not (_close(out[0], z0, 1e-3, 1e-4) and _close(out[-1], z1, 1e-3, 1e-4)):
        raise _fail(check, "the path must start at z0 (first row) and end at z1 (last row).",
                    "use t = torch.linspace(0, 1, steps), so t = 0 gives z0 and t = 1 gives z1.")
    if _close(out, line, 1e-3, 1e-4):
        raise _fail(check, "that is a straight line (lerp): its middle points are shorter than z0 and z1.",
                    "interpolate the angle: omega = acos(cos_sim(z0, z1)); direction = (sin((1-t)*omega) * u0 + "
                    "sin(t*omega) * u1) / sin(omega) with unit vectors u0, u1.")
    raise _fail(check, "the points leave the great circle through z0 and z1.",
                "normalise z0 and z1 first (u = z / z.norm()), and use the same t for both sin terms.")


def check_midpoint_norms(fn: Callable[[Tensor, Tensor], tuple[float, float]]) -> None:
    """``fn(z0, z1) -> (norm of the lerp midpoint, norm of the slerp midpoint)``.

    Reference: :func:`cvaelib.interpolate.lerp` and :func:`cvaelib.interpolate.slerp` with 3 steps.
    """
    from ..interpolate import lerp, slerp

    check = "check_midpoint_norms"
    _require_callable(check, fn, "midpoint_norms")
    g = torch.Generator().manual_seed(3)
    z0, z1 = torch.randn(64, generator=g), torch.randn(64, generator=g)
    out = _call(check, fn, z0, z1)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise _fail(check, f"return two numbers (lerp's midpoint norm, slerp's midpoint norm), got {out!r:.80}.",
                    "return float(line[1].norm()), float(arc[1].norm()).")
    got = [_scalar(check, v, "norm") for v in out]
    want = [float(lerp(z0, z1, 3)[1].norm()), float(slerp(z0, z1, 3)[1].norm())]
    if all(math.isclose(a, b, rel_tol=1e-3) for a, b in zip(got, want)):
        _ok(check, f"lerp's midpoint is {want[0] / want[1]:.2f} times as long as slerp's in 64-D")
        return
    if all(math.isclose(a, b, rel_tol=1e-3) for a, b in zip(got, want[::-1])):
        raise _fail(check, "you returned the two norms in the opposite order.", "return (lerp norm, slerp norm).")
    ends = [float(z0.norm()), float(z1.norm())]
    if any(math.isclose(v, e, rel_tol=1e-3) for v in got for e in ends):
        raise _fail(check, "one of your norms is the norm of an end point, not of the midpoint.",
                    "with steps=3 the path is [z0, midpoint, z1]: take row 1.")
    raise _fail(check, f"your norms are {got[0]:.3f}, {got[1]:.3f}; expected {want[0]:.3f}, {want[1]:.3f}.",
                "midpoints: walk.lerp(z0, z1, 3)[1] and walk.slerp(z0, z1, 3)[1]; then .norm().")


def check_prompt_rule(fn: Callable[[str], bool], label: int = 6, dataset: str = "fashion-mnist",
                      texts: Sequence[str] | None = None) -> None:
    """``fn(text) -> bool``: does the prompt ask for class ``label``?  Reference: :func:`cvaelib.prompts.parse_prompt`.

    The default texts probe the rules that trip up a first attempt at "shirt": case, plurals, punctuation,
    longer phrases that contain the word ("T-shirt", "sweatshirt") and words that merely start with it.
    """
    from ..prompts import parse_prompt

    check = "check_prompt_rule"
    _require_callable(check, fn, "rule")
    texts = list(texts) if texts is not None else [
        "a shirt", "two Shirts!", "SHIRT", "a dress shirt", "a shirt and a bag", "a T-shirt", "t-shirts",
        "a sweatshirt", "shirtless", "a bag", "t-shirts and a shirt", "a polo shirt"]
    for text in texts:
        try:
            expected = label in parse_prompt(text, dataset)
        except PromptError:
            expected = False
        got = _call(check, fn, text)
        if not isinstance(got, (bool, int)) and got is not None and not hasattr(got, "group"):
            raise _fail(check, f"for {text!r} your rule returned a {type(got).__name__}.",
                        "return True or False (e.g. re.search(...) is not None).")
        if bool(got) != expected:
            verdict = "should" if expected else "should not"
            hints = {"a T-shirt": "a longer phrase wins: remove 't shirt' matches before looking for 'shirt'.",
                     "t-shirts": "a longer phrase wins: remove 't shirts?' before looking for 'shirt'.",
                     "a sweatshirt": "match whole words only: r'\\bshirts?\\b'.",
                     "shirtless": "match whole words only: r'\\bshirts?\\b' (a word boundary on both sides).",
                     "two Shirts!": "lower-case the text first and allow a plural: r'shirts?'.",
                     "SHIRT": "lower-case the text first (text.lower())."}
            raise _fail(check, f"{text!r} {verdict} count as class {label} (parse_prompt gives "
                               f"{parse_prompt(text, dataset) if expected else 'another class or none'}).",
                        hints.get(text, "normalise the text (lower case, punctuation to spaces), then use "
                                        "word boundaries."))
    _ok(check, f"your rule agrees with cvaelib.prompts.parse_prompt on {len(texts)} prompts")


# --- 05: CLIP ---------------------------------------------------------------------------------------------------
def check_similarity_matrix(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(text_emb [T, D], image_emb [I, D])``: the cosine-similarity matrix ``[T, I]`` (inputs not normalised).

    Reference: :func:`cvaelib.metrics.clip_score` (the cosine of one text and each image), row by row.
    """
    from ..metrics import clip_score

    check = "check_similarity_matrix"
    _require_callable(check, fn, "similarity_matrix")
    g = torch.Generator().manual_seed(0)
    text = torch.randn(3, 8, generator=g) * torch.tensor([[1.0], [3.0], [0.5]])
    images = torch.randn(5, 8, generator=g) * 2
    out = _call(check, fn, text, images)
    if isinstance(out, Tensor) and tuple(out.shape) == (5, 3):
        raise _fail(check, "your matrix has shape [5, 3]: rows should be texts, columns images.",
                    "text @ images.T, not images @ text.T.")
    out = _require_tensor(check, out, (3, 5), "similarity matrix").detach().float()
    want = torch.stack([clip_score(images, text[i:i + 1], reduction="none") for i in range(len(text))])
    if _close(out, want):
        _ok(check, "cosine similarities of every text with every image, as cvaelib.metrics.clip_score computes")
        return
    if _close(out, text @ images.T):
        raise _fail(check, "those are dot products of unnormalised embeddings (some exceed 1).",
                    "normalise every row first: F.normalize(x, dim=-1), i.e. x / x.norm(dim=-1, keepdim=True).")
    if _close(out, F.normalize(text, dim=0) @ F.normalize(images, dim=0).T):
        raise _fail(check, "you normalised along the wrong dimension (columns instead of rows).",
                    "each embedding is a row: F.normalize(x, dim=-1).")
    if float(out.abs().max()) > 1 + 1e-4:
        raise _fail(check, f"a cosine similarity lies in [-1, 1]; yours reaches {float(out.abs().max()):.2f}.",
                    "normalise the rows of both matrices to unit length before multiplying.")
    raise _fail(check, "your matrix differs from the cosine similarities.",
                "F.normalize(text, dim=-1) @ F.normalize(images, dim=-1).T")


def check_perturb_condition(fn: Callable[[Tensor, float], Tensor]) -> None:
    """``fn(c, xi)``: LAFITE's noise, ``normalise(c + xi * |c| * eps / |eps|)`` with eps ~ N(0, I) per row.

    Reference: :func:`cvaelib.models.clip_cvae.perturb_condition` (compared by its geometry: it is random).
    """
    from ..models.clip_cvae import perturb_condition

    check = "check_perturb_condition"
    _require_callable(check, fn, "perturb")
    c = F.normalize(torch.randn(2000, 32, generator=torch.Generator().manual_seed(12345)), dim=-1)
    xi = 0.5
    torch.manual_seed(0)
    out = _require_tensor(check, _call(check, fn, c, xi), c.shape, "perturbed condition").detach().float()
    if not torch.allclose(out.norm(dim=-1), torch.ones(len(c)), atol=1e-4):
        raise _fail(check, f"the perturbed rows have norms from {float(out.norm(dim=-1).min()):.2f} to "
                           f"{float(out.norm(dim=-1).max()):.2f}; a CLIP condition has length 1.",
                    "normalise the result: F.normalize(c + noise, dim=-1).")
    if _close(out, c):
        raise _fail(check, "the result equals c: no noise was added.", "add xi * c.norm(dim=-1, keepdim=True) * "
                                                                        "F.normalize(torch.randn_like(c), dim=-1).")
    cos = (out * c).sum(-1)
    ref = (perturb_condition(c, xi, torch.Generator().manual_seed(1)) * c).sum(-1)
    if abs(float(cos.mean()) - float(ref.mean())) > 0.02:
        raise _fail(check, f"the mean cosine between c and its perturbed copy is {float(cos.mean()):.3f}, "
                           f"expected about {float(ref.mean()):.3f} for xi = {xi}.",
                    "the noise must have length xi * |c| exactly: normalise eps to unit length per row, then "
                    "scale by xi * c.norm(dim=-1, keepdim=True).")
    if float(cos.std()) > 3 * float(ref.std()) + 1e-3:
        raise _fail(check, "the amount of noise varies a lot between rows.",
                    "normalise eps per row (dim=-1), not over the whole matrix.")
    _ok(check, f"unit-length conditions at the angle LAFITE's xi = {xi} gives (mean cosine {float(cos.mean()):.3f})")


def check_value(value: Any, low: float, high: float, name: str = "value", hint: str = "") -> None:
    """A number the student computed lies in ``[low, high]`` (for open-ended exercises that produce a measurement)."""
    check = "check_value"
    if value is None:
        raise _fail(check, f"{name} is None.", hint or "assign your result to the variable.")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise _fail(check, f"{name} should be a number, got a {type(value).__name__}.",
                    hint or "convert with float(...).") from None
    if not (low <= v <= high) or math.isnan(v):
        raise _fail(check, f"{name} = {v:.4g} is outside the plausible range [{low}, {high}].",
                    hint or "re-read the exercise: which quantity, and in which units?")
    _ok(check, f"{name} = {v:.4g}")


# --- 06: faces, attributes and condition arithmetic ---------------------------------------------------------------
def check_condition_mix(fn: Callable[[Tensor, Tensor, float], Tensor]) -> None:
    """``fn(c_image [N, D], c_text [D], f)``: ``normalise(f * c_image + (1 - f) * c_text)`` per row.

    Reference: the mixing rule of :func:`cvaelib.clip_generate.manipulate` (f = 1 keeps the image's embedding).
    """
    check = "check_condition_mix"
    _require_callable(check, fn, "mix_condition")
    g = torch.Generator().manual_seed(0)
    c_img = F.normalize(torch.randn(4, 16, generator=g), dim=-1)
    c_txt = F.normalize(torch.randn(16, generator=g), dim=-1)
    for f in (1.0, 0.3):
        out = _require_tensor(check, _call(check, fn, c_img, c_txt, f), c_img.shape, "condition").detach().float()
        want = F.normalize(f * c_img + (1 - f) * c_txt, dim=-1)
        if _close(out, want):
            continue
        if _close(out, F.normalize((1 - f) * c_img + f * c_txt, dim=-1)):
            raise _fail(check, "f weights the text instead of the image (f = 1 must give back the image's own "
                               "embedding, i.e. the reconstruction).", "f * c_image + (1 - f) * c_text.")
        if _close(F.normalize(out, dim=-1), want):
            raise _fail(check, f"your conditions have lengths {_fmt(out.norm(dim=-1))}; the "
                               f"model was trained on unit-length CLIP embeddings.",
                        "normalise the mix: F.normalize(..., dim=-1).")
        raise _fail(check, f"for f = {f} your condition differs from normalise(f * c_image + (1 - f) * c_text).",
                    "c_text has shape [D]; broadcasting adds it to every row of c_image.")
    _ok(check, "f = 1 gives the image's embedding, smaller f moves along the mix toward the text, unit length")


def check_toggle(fn: Callable[..., Tensor]) -> None:
    """``fn(c, index, value=None)``: a *copy* of multi-hot conditions with attribute ``index`` set (or flipped).

    Reference: :meth:`cvaelib.models.AttributeCVAE.toggle`.
    """
    from ..models import AttributeCVAE

    check = "check_toggle"
    _require_callable(check, fn, "toggle")
    names = [f"attr_{i}" for i in range(6)]
    model = AttributeCVAE(image_shape=(3, 32, 32), latent_dim=4, width=4, attribute_names=names)
    c = torch.tensor([[1.0, 0, 1, 0, 0, 1], [0, 0, 1, 1, 0, 0]])
    original = c.clone()
    for index, value in ((3, 1.0), (2, None), (0, 0.0)):
        out = _call(check, fn, c, index) if value is None else _call(check, fn, c, index, value)
        out = _require_tensor(check, out, c.shape, "conditions").detach().float()
        if not torch.equal(c, original):
            raise _fail(check, "your function changed the conditions passed in (in place).",
                        "work on a copy: c = c.clone() first, or the faces' own labels change too.")
        want = model.toggle(c, names[index], value)
        if torch.equal(out, want):
            continue
        others = [j for j in range(c.shape[1]) if j != index]
        if not torch.equal(out[:, others], c[:, others]):
            raise _fail(check, f"setting attribute {index} also changed other attributes.",
                        "change only the column c[:, index].")
        if value is None:
            raise _fail(check, f"with value=None attribute {index} should flip (0 -> 1, 1 -> 0); got column "
                               f"{out[:, index].tolist()} from {c[:, index].tolist()}.", "1.0 - c[:, index].")
        raise _fail(check, f"attribute {index} should be set to {value} in every row; got {out[:, index].tolist()}.",
                    "c[:, index] = value (on a copy).")
    _ok(check, "sets or flips one attribute on a copy, like AttributeCVAE.toggle")


# --- 07: measuring generated images ---------------------------------------------------------------------------
def check_clip_score(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(image_emb [N, D], text_emb [N, D] or [1, D])``: mean cosine similarity of the paired rows.

    Reference: :func:`cvaelib.metrics.clip_score`.
    """
    from ..metrics import clip_score

    check = "check_clip_score"
    _require_callable(check, fn, "clip_score")
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(6, 8, generator=g) * 3, torch.randn(6, 8, generator=g)
    for t in (txt, txt[:1]):
        got = _scalar(check, _call(check, fn, img, t), "CLIP score")
        want = float(clip_score(img, t))
        if math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6):
            continue
        if math.isclose(got, float((img * t).sum(-1).mean()), rel_tol=1e-4):
            raise _fail(check, "that is the mean dot product of unnormalised embeddings.",
                        "normalise both to unit length first (F.normalize(x, dim=-1)).")
        if math.isclose(got, float((F.normalize(img, dim=-1) @ F.normalize(t, dim=-1).T).mean()), rel_tol=1e-4):
            raise _fail(check, "you averaged the whole similarity matrix; only row i of the images pairs with row i "
                               "of the texts.", "(F.normalize(img, dim=-1) * F.normalize(txt, dim=-1)).sum(-1).mean()")
        raise _fail(check, f"your score is {got:.4f}, expected {want:.4f}"
                           f"{' with one text row for all images' if len(t) == 1 else ''}.",
                    "cosine of each image row with its text row (one text row broadcasts), then the mean.")
    _ok(check, "mean cosine of paired rows, as cvaelib.metrics.clip_score")


def check_frechet_distance(fn: Callable[..., float]) -> None:
    """``fn(mu1, sigma1, mu2, sigma2)`` (numpy): ``|mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2))``.

    Reference: :func:`cvaelib.metrics.frechet_distance` (pytorch-fid's formula) on two feature sets.
    """
    import numpy as np

    from ..metrics.fid import feature_statistics, frechet_distance

    check = "check_frechet_distance"
    _require_callable(check, fn, "frechet")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 6, generator=g).double()
    b = (torch.randn(400, 6, generator=g) @ torch.diag(torch.tensor([2.0, 1, 1, 0.5, 1, 1]))).double() + 0.5
    (m1, s1), (m2, s2) = feature_statistics(a), feature_statistics(b)
    same = _scalar(check, _call(check, fn, m1, s1, m1, s1), "distance")
    if abs(same) > 1e-4:
        raise _fail(check, f"the distance of a distribution to itself should be 0, yours is {same:.4f}.",
                    "the trace term is Tr(s1 + s2 - 2 * sqrtm(s1 @ s2)) with scipy.linalg.sqrtm (a matrix square "
                    "root), which is s1 when s1 == s2.")
    got = _scalar(check, _call(check, fn, m1, s1, m2, s2), "distance")
    want = frechet_distance(a, b)
    if math.isclose(got, want, rel_tol=1e-3):
        _ok(check, f"{got:.4f}, the same as cvaelib.metrics.frechet_distance")
        return
    mean_term = float(np.sum((m1 - m2) ** 2))
    if math.isclose(got, mean_term, rel_tol=1e-3):
        raise _fail(check, "you only have the mean term; the covariances matter too.",
                    "add np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2)).")
    if math.isclose(got, float(np.sum(np.abs(m1 - m2))) + want - mean_term, rel_tol=1e-3) or \
            math.isclose(got, float(np.sqrt(mean_term)) + want - mean_term, rel_tol=1e-3):
        raise _fail(check, "the mean term should be the *squared* distance |mu1 - mu2|^2.",
                    "np.sum((mu1 - mu2) ** 2).")
    # only the diagonal of an element-wise root enters the trace, so every variant (abs, clip, nan) gives this
    elementwise = mean_term + float(np.trace(s1 + s2) - 2 * np.sum(np.sqrt(np.abs(np.diag(s1) * np.diag(s2)))))
    if math.isclose(got, elementwise, rel_tol=1e-3):
        raise _fail(check, "np.sqrt takes the square root of each entry; FID needs the *matrix* square root.",
                    "scipy.linalg.sqrtm(s1 @ s2) (take .real: rounding adds tiny imaginary parts).")
    raise _fail(check, f"your distance is {got:.4f}, expected {want:.4f}.",
                "|mu1 - mu2|^2 + Tr(s1 + s2 - 2 sqrtm(s1 @ s2)), with scipy.linalg.sqrtm and its .real part.")


# --- 08: CLIP guidance ----------------------------------------------------------------------------------------
def check_guidance_loss(fn: Callable[[Tensor, Tensor, Tensor, float], Tensor]) -> None:
    """``fn(image_feats [V, D], text_feat [D], z, prior_weight)``: what the guidance optimiser *minimises*:
    ``-mean(image_feats @ text_feat) + prior_weight * 0.5 * mean(z ** 2)`` (features are unit length).

    Reference: the objective of :func:`cvaelib.guided.optimise_latent` with its default prior.
    """
    check = "check_guidance_loss"
    _require_callable(check, fn, "guidance_loss")
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(12, 16, generator=g), dim=-1)
    text = F.normalize(torch.randn(16, generator=g), dim=-1)
    z = torch.randn(4, 8, generator=g).requires_grad_(True)
    lam = 0.3
    out = _call(check, fn, feats, text, z, lam)
    got = _scalar(check, out, "loss")
    sim, prior = float((feats @ text).mean()), float(0.5 * z.detach().pow(2).mean())
    want = -sim + lam * prior
    if math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6):
        if isinstance(out, Tensor) and not out.requires_grad:
            raise _fail(check, "the value is right but no gradient flows to z.",
                        "compute it with torch operations on z (no float(), .item() or .detach()).")
        _ok(check, "minimising it raises the CLIP similarity while the prior keeps z near N(0, I)")
        return
    if math.isclose(got, sim - lam * prior, rel_tol=1e-4, abs_tol=1e-6) or math.isclose(got, sim + lam * prior,
                                                                                        rel_tol=1e-4, abs_tol=1e-6):
        raise _fail(check, "the similarity enters with the wrong sign: Adam *minimises* the loss.",
                    "loss = -similarity.mean() + prior_weight * prior.")
    if math.isclose(got, -sim, rel_tol=1e-4, abs_tol=1e-6):
        raise _fail(check, "the prior term is missing.", "add prior_weight * 0.5 * z.pow(2).mean().")
    if math.isclose(got, -sim + lam * float(0.5 * z.detach().pow(2).sum()), rel_tol=1e-4):
        raise _fail(check, "the prior term sums over z; the kit averages (so it does not grow with the batch).",
                    "0.5 * z.pow(2).mean().")
    if math.isclose(got, -float((feats @ text).sum()) + lam * prior, rel_tol=1e-4):
        raise _fail(check, "you summed the similarities; average them over the views.", "(feats @ text).mean().")
    raise _fail(check, f"your loss is {got:.4f}, expected {want:.4f}.",
                "-(image_feats @ text_feat).mean() + prior_weight * 0.5 * z.pow(2).mean().")


def check_guided_result(result: Any, steps: int, n: int) -> None:
    """``result`` is what :func:`cvaelib.guided.guide_model` returns for ``n`` images and ``steps`` steps."""
    from ..guided import GuidedResult

    check = "check_guided_result"
    if not isinstance(result, GuidedResult):
        raise _fail(check, f"expected the GuidedResult that guide_model returns, got a {type(result).__name__}.",
                    "assign the call itself: without_aug = guide_model(...).")
    if len(result.similarity) != steps + 1:
        raise _fail(check, f"the result has {len(result.similarity) - 1} steps, expected {steps}.",
                    "pass steps=STEPS like the run above, so the two are comparable.")
    if result.images.shape[0] != n:
        raise _fail(check, f"the result has {result.images.shape[0]} images, expected {n}.", "pass n=N.")
    _ok(check, f"{n} images after {steps} steps; CLIP similarity {result.similarity[0]:.3f} -> "
               f"{result.similarity[-1]:.3f}")


# --- 09: VQ-VAE -----------------------------------------------------------------------------------------------
def check_perplexity(fn: Callable[[Tensor], float]) -> None:
    """``fn(counts [K])``: ``exp`` of the entropy of the code frequencies (0 log 0 = 0).

    Reference: the perplexity that :class:`cvaelib.models.vqvae.VQVAE` reports (``codebook_usage``).
    """
    check = "check_perplexity"
    _require_callable(check, fn, "perplexity_from_counts")
    cases = [(torch.ones(8), 8.0), (torch.tensor([5.0, 0.0, 0.0]), 1.0)]
    counts = torch.tensor([40.0, 10.0, 0.0, 25.0, 25.0, 0.0])
    p = counts / counts.sum()
    cases.append((counts, float(torch.exp(-(p * torch.log(p + 1e-10)).sum()))))
    for c, want in cases:
        got = _scalar(check, _call(check, fn, c.clone()), "perplexity")
        if math.isnan(got):
            raise _fail(check, f"for counts {_fmt(c)} you got NaN.",
                        "unused codes give 0 * log(0) = nan: keep only p > 0 before taking the log.")
        if math.isclose(got, want, rel_tol=1e-3):
            continue
        entropy = math.log(want) if want > 0 else float("nan")
        if math.isclose(got, entropy, rel_tol=1e-3, abs_tol=1e-6):
            raise _fail(check, f"for counts {_fmt(c)} you returned the entropy ({got:.3f}); perplexity is its exp.",
                        "return torch.exp(entropy).")
        if math.isclose(got, 2 ** entropy, rel_tol=1e-3) or math.isclose(got, math.exp(entropy / math.log(2)),
                                                                        rel_tol=1e-3):
            raise _fail(check, "you mixed log bases: exp(entropy in nats) or 2 ** (entropy in bits).",
                        "use torch.log and torch.exp together.")
        raise _fail(check, f"for counts {_fmt(c)} your perplexity is {got:.3f}, expected {want:.3f}.",
                    "p = counts / counts.sum(); p = p[p > 0]; exp(-(p * log p).sum()). Uniform use of K codes "
                    "gives K, a single code 1.")
    _ok(check, "uniform use of 8 codes gives 8, one code gives 1, and mixed counts match the VQ-VAE's own number")


def check_nearest_code(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(z [N, D], codebook [K, D])``: the index of the nearest code (squared Euclidean distance) per row.

    Reference: :meth:`cvaelib.models.vqvae.VectorQuantizer.nearest`.
    """
    from ..models.vqvae import VectorQuantizer

    check = "check_nearest_code"
    _require_callable(check, fn, "nearest_code")
    g = torch.Generator().manual_seed(0)
    vq = VectorQuantizer(6, 4)
    # codes of very different lengths: the largest dot product is then often not the nearest code
    book = torch.randn(6, 4, generator=g) * torch.tensor([0.2, 3.0, 1.0, 0.5, 2.0, 1.0])[:, None]
    with torch.no_grad():
        vq.codebook.copy_(book)
    codebook = book.clone()
    z = torch.randn(20, 4, generator=g)
    want = vq.nearest(z)
    out = _require_tensor(check, _call(check, fn, z, codebook.clone()), None, "indices")
    if out.dim() == 2 and tuple(out.shape) == (20, 6):
        raise _fail(check, "you returned the distance matrix [N, K]; return one index per row.",
                    "distances.argmin(dim=1).")
    out = _require_tensor(check, out, (20,), "indices")
    if out.is_floating_point():
        raise _fail(check, "indices should be integers.", "argmin returns int64 indices.")
    if torch.equal(out.long(), want):
        _ok(check, "every vector goes to its nearest code, as VectorQuantizer.nearest")
        return
    d = torch.cdist(z, codebook)
    if torch.equal(out.long(), d.argmax(1)):
        raise _fail(check, "you picked the *farthest* code.", "argmin, not argmax.")
    if torch.equal(out.long(), (z @ codebook.T).argmax(1)):
        raise _fail(check, "the largest dot product is not the nearest code when codes differ in length.",
                    "use squared distances: |z|^2 - 2 z·e + |e|^2 (or torch.cdist), then argmin.")
    raise _fail(check, f"{int((out.long() != want).sum())} of 20 vectors got a code that is not the nearest.",
                "distances = torch.cdist(z, codebook); return distances.argmin(dim=1).")

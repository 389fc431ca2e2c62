"""Exercise checks for lessons 03-04: condition injection, class samples, interpolation, prompts."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import PromptError
from ._core import _call, _close, _fail, _ok, _require_callable, _require_tensor, _scalar


__all__ = ["check_condition_concat", "check_class_samples", "check_slerp", "check_midpoint_norms", "check_prompt_rule"]


def check_condition_concat(fn: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    """``fn(z, c, num_classes)``: the decoder input of a one-hot CVAE, ``[B, latent + num_classes]``.

    Reference: a :class:`cvaelib.ConditionalVAE` with ``cond="onehot"``: its decoder applied to your input must
    equal ``model.decode(z, c)``.
    """
    from ...models import ConditionalVAE

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
    from ...models import ConditionalVAE

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


def check_slerp(fn: Callable[[Tensor, Tensor, int], Tensor]) -> None:
    """``fn(z0, z1, steps)``: ``steps`` points from ``z0`` to ``z1`` along the great circle, norms interpolated.

    Reference: :func:`cvaelib.interpolate.slerp`.
    """
    from ...interpolate import lerp, slerp

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
    from ...interpolate import lerp, slerp

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
    from ...prompts import parse_prompt

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

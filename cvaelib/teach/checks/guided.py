"""Exercise checks for lesson 08: CLIP-guided latent optimisation."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._core import _call, _fail, _ok, _require_callable, _scalar


__all__ = ["check_guidance_loss", "check_guided_result"]


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
    from ...guided import GuidedResult

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

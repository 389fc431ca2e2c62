"""Exercise checks and predict-first questions for lesson 08: CLIP-guided latent optimisation."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ._core import Question, _call, _fail, _ok, _require_callable, _scalar, register_questions


__all__ = ["check_guidance_loss", "check_guided_result", "check_weighted_loss"]

_TOL = {"rel_tol": 1e-4, "abs_tol": 1e-6}


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, **_TOL)


def check_guidance_loss(fn: Callable[..., Tensor]) -> None:
    """``fn(image_feats [V, D], text_feats [T, D], tau)``: CLIP's contrastive loss for guidance,
    ``-mean_v log softmax_j(image_feats[v] @ text_feats[j] / tau)[0]`` (row 0 of ``text_feats`` is the prompt, the
    other rows the negatives; features are unit length).

    Reference: :func:`cvaelib.guided_objectives.contrastive_loss`, the fit term :func:`cvaelib.guided.optimise_latent`
    minimises when it has negatives.
    """
    from ...guided_objectives import contrastive_loss

    check = "check_guidance_loss"
    _require_callable(check, fn, "guidance_loss")
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(6, 16, generator=g), dim=-1).requires_grad_(True)
    texts = F.normalize(torch.randn(4, 16, generator=g), dim=-1)
    tau = 0.2
    out = _call(check, fn, feats, texts.clone(), tau)
    got = _scalar(check, out, "loss")
    f = feats.detach()
    sims = f @ texts.T
    want = float(contrastive_loss(f, texts, tau))
    if _close(got, want):
        if not (isinstance(out, Tensor) and out.requires_grad):
            raise _fail(check, "the value is right but no gradient flows back to the image features.",
                        "compute it with torch operations (no float(), .item(), .detach() or numpy).")
        _ok(check, f"CLIP's classification loss: every view must pick the prompt among {len(texts)} texts "
                   f"(loss {got:.4f})")
        return
    target = torch.zeros(len(f), dtype=torch.long)
    wrong = {
        "wrong sign": -want,
        "cosine": -float(sims[:, 0].mean()),
        "no tau": float(F.cross_entropy(sims, target)),
        "times tau": float(F.cross_entropy(sims * tau, target)),
        "over views": float(F.cross_entropy((sims / tau).T, torch.zeros(len(texts), dtype=torch.long))),
        "softmax dim0": float(-torch.log_softmax(sims / tau, dim=0)[:, 0].mean()),
        "sum": float(F.cross_entropy(sims / tau, target, reduction="sum")),
        "probability": float(-torch.softmax(sims / tau, dim=1)[:, 0].mean()),
    }
    hints = {
        "wrong sign": ("the loss has the wrong sign: Adam *minimises* it, so it must be minus the log-probability.",
                       "a cross-entropy is -log p; F.cross_entropy already includes the minus."),
        "cosine": ("that is minus the mean cosine with the prompt: the negatives play no part.",
                   "turn the similarities with *all* texts into logits (divide by tau) and ask each view to pick row 0."),
        "no tau": ("the temperature is missing: raw cosines lie in [-1, 1], so the softmax stays nearly flat.",
                   "divide the similarities by tau before the softmax."),
        "times tau": ("you multiplied by tau; the logits are the cosines *divided* by the temperature.",
                      "a small tau must sharpen the softmax."),
        "over views": ("your softmax runs over the views: each view must choose among the *texts*.",
                       "logits [V, T], one row per view; the class to pick is column 0 for every view."),
        "softmax dim0": ("your softmax runs over the views (dim 0): each view must choose among the *texts*.",
                         "log_softmax over dim=1 (the texts), then take column 0."),
        "sum": ("you summed over the views; average them, so the loss does not grow with the number of views.",
                "F.cross_entropy averages by default; so does .mean()."),
        "probability": ("that is minus the probability, not minus its logarithm.",
                        "take the log-softmax (a cross-entropy), not the softmax."),
    }
    for key, value in wrong.items():
        if _close(got, value):
            raise _fail(check, *hints[key])
    raise _fail(check, f"your loss is {got:.4f}; the contrastive loss of these features is {want:.4f}.",
                "logits = image_feats @ text_feats.T / tau ([V, T]); every view's target class is 0 (the prompt).")


def check_weighted_loss(fn: Callable[..., Tensor]) -> None:
    """``fn(image_feats [V, D], text_feats [T, D], weights [T])``: VQGAN+CLIP's weighted prompts,
    ``sum_i weights[i] * mean_v 0.5 * angle(f_v, t_i) ** 2``.

    Reference: :func:`cvaelib.guided_objectives.weighted_prompt_loss`.
    """
    from ...guided_objectives import spherical_distance, weighted_prompt_loss

    check = "check_weighted_loss"
    _require_callable(check, fn, "weighted_loss")
    g = torch.Generator().manual_seed(1)
    feats = F.normalize(torch.randn(5, 12, generator=g), dim=-1).requires_grad_(True)
    texts = F.normalize(torch.randn(3, 12, generator=g), dim=-1)
    weights = torch.tensor([1.0, -0.5, 0.25])
    out = _call(check, fn, feats, texts.clone(), weights.clone())
    got = _scalar(check, out, "loss")
    f = feats.detach()
    want = float(weighted_prompt_loss(f, texts, weights))
    if _close(got, want):
        if not (isinstance(out, Tensor) and out.requires_grad):
            raise _fail(check, "the value is right but no gradient flows back to the image features.",
                        "compute it with torch operations on image_feats.")
        _ok(check, "positive weights pull the views toward their text, negative ones push them away")
        return
    d = spherical_distance(f, texts)  # [V, T]
    angle = torch.arccos((f @ texts.T).clamp(-1, 1))
    wrong = {
        "abs": (float((d.mean(0) * weights.abs()).sum()),
                "a negative weight must push away, so it has to keep its sign.",
                "multiply each prompt's distance by its weight as given, negative ones included."),
        "sign": (-want, "the whole loss has the wrong sign: a positive weight must *lower* the loss as the image "
                        "comes closer to its text.", "distances grow as the image moves away; weight them, do not "
                                                     "negate them."),
        "cos": (float(-((f @ texts.T).mean(0) * weights).sum()),
                "you weighted minus the cosines; the kit (like VQGAN+CLIP) weights distances on the sphere.",
                "the distance is half the squared angle between the unit vectors: 0.5 * arccos(cos) ** 2."),
        "angle": (float((angle.mean(0) * weights).sum()), "you weighted the angle itself; use half its square.",
                  "0.5 * angle ** 2."),
        "sum views": (float((d.sum(0) * weights).sum()), "you summed over the views; average them.",
                      "mean over dim 0 (the views), then the weighted sum over the prompts."),
        "mean prompts": (float((d.mean(0) * weights).mean()), "you averaged over the prompts; the weights already "
                                                               "set each prompt's share, so sum them.",
                         "weighted *sum* over the prompts."),
    }
    for value, what, hint in wrong.values():
        if _close(got, value):
            raise _fail(check, what, hint)
    raise _fail(check, f"your loss is {got:.4f}, expected {want:.4f}.",
                "distances [V, T] -> mean over the views -> times the weights -> sum over the prompts.")


def check_guided_result(result: Any, reference: Any, decoder_fn: Callable[..., Tensor] | None = None,
                        n_augment: int = 1) -> None:
    """``result`` is the guidance run ``reference`` repeated with ``n_augment`` views and nothing else changed.

    Reads ``result.settings`` (recorded by :func:`cvaelib.guided.optimise_latent`) and, with ``decoder_fn``, decodes
    ``result.latents`` to make sure the images are what the latents give (not a tensor made by hand).
    """
    from ...guided import GuidedResult

    check = "check_guided_result"
    if not isinstance(result, GuidedResult):
        raise _fail(check, f"expected the GuidedResult that optimise_latent / guide_model returns, got a "
                           f"{type(result).__name__}.", "assign the call itself: without_aug = optimise_latent(...).")
    if result is reference:
        raise _fail(check, "that is the run above itself.", "call the optimiser again with your own settings.")
    mine, theirs = result.settings, getattr(reference, "settings", {})
    if not mine:
        raise _fail(check, "this result was not made by the optimiser (it records no settings).",
                    "call optimise_latent / guide_model; do not build a GuidedResult by hand.")
    if mine.get("n_augment") != n_augment:
        raise _fail(check, f"your run used n_augment={mine.get('n_augment')}; this experiment needs "
                           f"n_augment={n_augment}.", "pass n_augment explicitly; its default is 8.")
    for key, what in (("prompt", "prompt"), ("negatives", "negative prompts"), ("steps", "number of steps"),
                      ("lr", "learning rate"), ("prior_weight", "prior weight"), ("loss", "loss"), ("tau", "tau")):
        if key in theirs and mine.get(key) != theirs[key]:
            raise _fail(check, f"your run changed the {what} ({mine.get(key)!r} instead of {theirs[key]!r}); change "
                               f"only the number of views, or the comparison means nothing.",
                        "copy the call above and change n_augment only.")
    if tuple(result.images.shape) != tuple(reference.images.shape):
        raise _fail(check, f"your run made {tuple(result.images.shape)} images, the one above "
                           f"{tuple(reference.images.shape)}.", "start from the same z0.")
    if decoder_fn is not None:
        with torch.no_grad():
            z = result.latents
            decoded = decoder_fn(z) if result.condition is None else decoder_fn(z, result.condition)
        if not torch.allclose(decoded.float().cpu(), result.images.float(), atol=1e-4):
            raise _fail(check, "the images are not what the result's latents decode to.",
                        "keep the optimiser's result as it is.")
    _ok(check, f"the same run with {n_augment} view(s): CLIP similarity {result.similarity[0]:.3f} -> "
               f"{result.similarity[-1]:.3f} (with {theirs.get('n_augment', '?')} views: "
               f"{reference.similarity[-1]:.3f})")


register_questions({
    "08.push": Question(
        {"a": "it stays at 1/tau: the prompt keeps pulling as hard as at the start",
         "b": "it shrinks toward 0: once CLIP is sure, the prompt stops pulling",
         "c": "it turns negative and pushes the image away from the prompt"},
        "b", "d(loss)/d(s_0) = p_0 - 1 (times 1/tau for the cosine): it vanishes as p_0 -> 1. Plain -cos pulls "
             "with the same force forever, whether or not the change sets the prompt apart from the other digits.",
        "differentiate -log softmax(s)_0 with respect to s_0; what is the softmax when s_0 is far above the rest?"),
    "08.views": Question(
        {"a": "CLIP still calls almost all of them 'seven'",
         "b": "about half",
         "c": "almost none: the pattern only works for the one view it was made for"},
        "c", "an adversarial pattern is tuned to one exact grid of pixels; shift or rotate it and CLIP no longer "
             "sees a seven. Optimising through random views makes the pattern survive them.",
        "what did the optimiser ever see? Only one fixed view of each image."),
})

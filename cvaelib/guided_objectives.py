"""What CLIP-guided optimisation minimises (lesson 08): the *fit terms* of :func:`cvaelib.guided.optimise_latent`.

Every term reads ``image_feats`` ``[V, D]`` (unit-length CLIP embeddings of the V augmented views of the images
being optimised) and ``text_feats`` ``[T, D]`` (unit-length text embeddings) and returns one number to *minimise*:

* :func:`cosine_loss` - minus the mean cosine with the prompt (row 0): the plain "climb CLIP's similarity";
* :func:`contrastive_loss` - CLIP's own classification loss against negatives (rows 1..): with
  :math:`s_j = \\cos(f_v, t_j)/\\tau`, :math:`-\\tfrac1V\\sum_v \\log \\mathrm{softmax}(s)_0`.  Its gradient with respect to
  :math:`s_0` is :math:`p_0 - 1`: the pull fades once CLIP is sure, and only what sets the image apart from the
  negatives pays;
* :func:`weighted_prompt_loss` - several prompts with signed weights, as in VQGAN+CLIP (Crowson et al. 2022,
  https://arxiv.org/abs/2204.08583): :math:`\\sum_i w_i\\,\\tfrac1V\\sum_v \\tfrac12\\theta(f_v, t_i)^2` with
  :math:`\\theta` the angle on the sphere.  A positive weight pulls the image toward a text, a negative one pushes it
  away; :func:`parse_weighted_prompts` reads the ``"text:weight | text:weight"`` notation of that source.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import KitError

#: CLIP's initial temperature (Radford et al. 2021): logits are cosines divided by tau
DEFAULT_TAU = 0.07


def cosine_loss(image_feats: Tensor, text_feats: Tensor) -> Tensor:
    """``-mean_v cos(f_v, t_0)``: raise the similarity of every view to the prompt (row 0 of ``text_feats``)."""
    return -(image_feats @ text_feats[0]).mean()


def contrastive_loss(image_feats: Tensor, text_feats: Tensor, tau: float = DEFAULT_TAU) -> Tensor:
    """CLIP's classification loss for guidance: each view must pick the prompt (row 0) among all texts.

    ``-mean_v log softmax_j(cos(f_v, t_j) / tau)[0]``; the other rows of ``text_feats`` are the negatives.
    """
    logits = image_feats @ text_feats.T / tau
    target = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)


def spherical_distance(a: Tensor, b: Tensor) -> Tensor:
    """Half the squared angle between unit vectors, ``[len(a), len(b)]``: ``0.5 * theta^2``.

    Computed from the chord length, ``2 * arcsin(|a - b| / 2)^2`` (VQGAN+CLIP's form); unlike ``1 - cos`` it does
    not flatten out near the target (``1 - cos ~ theta^2 / 2`` too, but its gradient in the angle vanishes there).
    """
    chord2 = (2 - 2 * a.float() @ b.float().T).clamp(1e-12, 4.0)  # |a - b|^2 of unit vectors
    return 2 * torch.arcsin(chord2.sqrt() / 2).pow(2)


def weighted_prompt_loss(image_feats: Tensor, text_feats: Tensor, weights: Tensor) -> Tensor:
    """``sum_i w_i * mean_v spherical_distance(f_v, t_i)``: positive weights attract, negative weights repel."""
    weights = torch.as_tensor(weights, dtype=torch.float32, device=image_feats.device)
    return (spherical_distance(image_feats, text_feats).mean(0) * weights).sum()


def choose_fit_term(weights: Tensor | None, negatives: bool, tau: float = DEFAULT_TAU,
                    loss_fn: Callable[..., Tensor] | None = None) -> tuple[Callable[[Tensor, Tensor], Tensor], str]:
    """The fit term :func:`cvaelib.guided.optimise_latent` minimises, as ``(fn(image_feats, text_feats), name)``.

    ``loss_fn`` (the caller's own) wins, called with ``weights`` as a third argument for weighted prompts; else
    weighted prompts -> :func:`weighted_prompt_loss`, negatives -> :func:`contrastive_loss`, else
    :func:`cosine_loss`.
    """
    if loss_fn is not None:
        name = getattr(loss_fn, "__name__", "custom")
        return ((lambda f, t: loss_fn(f, t, weights.to(f.device))) if weights is not None else loss_fn), name
    if weights is not None:
        return (lambda f, t: weighted_prompt_loss(f, t, weights)), "weighted"
    if negatives:
        return (lambda f, t: contrastive_loss(f, t, tau)), "contrastive"
    return cosine_loss, "cosine"


_WEIGHT = re.compile(r"^(?P<text>.*?)(?::\s*(?P<w>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))?\s*$", re.S)


def parse_weighted_prompts(spec: str) -> list[tuple[str, float]]:
    """``"a handwritten seven:1 | a thin digit:-0.5"`` -> ``[("a handwritten seven", 1.0), ("a thin digit", -0.5)]``.

    Prompts are separated by ``|``; a trailing ``:number`` is always read as the weight (default 1), so a prompt
    that itself ends in ``: 7`` needs its weight written out (``"the digit: 7:1"``).  At least one weight must be
    positive.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise KitError("the weighted prompt is empty; write e.g. 'a handwritten seven:1 | a handwritten one:-0.5'")
    out = []
    for part in spec.split("|"):
        m = _WEIGHT.match(part.strip())
        text = m.group("text").strip() if m else ""
        if not text:
            raise KitError(f"{part.strip()!r} has no text before its weight; write 'text:weight', e.g. 'a seven:1'")
        out.append((text, float(m.group("w")) if m.group("w") is not None else 1.0))
    return check_weighted_prompts(out)


def check_weighted_prompts(prompts) -> list[tuple[str, float]]:
    """Validate ``[(text, weight), ...]``: non-empty texts, finite weights, at least one positive weight."""
    try:
        pairs = [(str(t), float(w)) for t, w in prompts]
    except (TypeError, ValueError):
        raise KitError("weighted prompts are (text, weight) pairs, e.g. [('a handwritten seven', 1.0), "
                       "('a handwritten one', -0.5)]") from None
    if not pairs or any(not t.strip() for t, _ in pairs):
        raise KitError("every weighted prompt needs a text, e.g. [('a handwritten seven', 1.0)]")
    if any(w != w or abs(w) == float("inf") for _, w in pairs):
        raise KitError("prompt weights must be finite numbers")
    if not any(w > 0 for _, w in pairs):
        raise KitError("at least one prompt needs a positive weight (negative weights only say what to avoid)")
    return pairs


__all__ = ["DEFAULT_TAU", "check_weighted_prompts", "choose_fit_term", "contrastive_loss", "cosine_loss", "parse_weighted_prompts",
           "spherical_distance", "weighted_prompt_loss"]

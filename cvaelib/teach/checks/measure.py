"""Exercise checks for lesson 07: measuring generated images (CLIP score, Frechet distance)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ._core import _call, _fail, _ok, _require_callable, _scalar


__all__ = ["check_clip_score", "check_frechet_distance"]


def check_clip_score(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(image_emb [N, D], text_emb [N, D] or [1, D])``: mean cosine similarity of the paired rows.

    Reference: :func:`cvaelib.metrics.clip_score`.
    """
    from ...metrics import clip_score

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

    from ...metrics.fid import feature_statistics, frechet_distance

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

"""Exercise checks for lessons 05-06: CLIP similarity, condition perturbation, condition arithmetic."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ._core import _call, _close, _fail, _fmt, _ok, _require_callable, _require_tensor


__all__ = ["check_similarity_matrix", "check_perturb_condition", "check_condition_mix", "check_toggle"]


def check_similarity_matrix(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(text_emb [T, D], image_emb [I, D])``: the cosine-similarity matrix ``[T, I]`` (inputs not normalised).

    Reference: :func:`cvaelib.metrics.clip_score` (the cosine of one text and each image), row by row.
    """
    from ...metrics import clip_score

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
    from ...models.clip_cvae import perturb_condition

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
    from ...models import AttributeCVAE

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

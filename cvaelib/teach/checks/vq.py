"""Exercise checks for lesson 09: vector quantisation."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._core import _call, _fail, _fmt, _ok, _require_callable, _require_tensor, _scalar


__all__ = ["check_perplexity", "check_nearest_code"]


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
    from ...models.vqvae import VectorQuantizer

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

"""Exercise checks for lesson 09: vector quantisation (nearest code, straight-through estimator, codebook and
commitment losses, dead-code restarts, perplexity)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._core import Question, _call, _fail, _fmt, _ok, _require_callable, _require_tensor, _scalar, register_questions


__all__ = ["check_perplexity", "check_nearest_code", "check_straight_through", "check_vq_losses",
           "check_restart_dead_codes"]

register_questions({
    "09.same_value": Question(
        {"a": "they have different values but send the same gradients",
         "b": "they have the same value but send gradients to different places",
         "c": "the commitment loss is always the larger of the two"},
        "b", "sg[.] is the identity in the forward pass, so both are ||z_e - e||^2; backwards it blocks the gradient: "
             "the codebook loss moves only the code, the commitment loss only the encoder (weighted by beta).",
        "what does sg[.] change in the forward pass, and what in the backward pass?"),
    "09.collapse": Question(
        {"a": "nearly all 64", "b": "about half of them", "c": "a handful"},
        "c", "a code that is nobody's nearest gets no gradient from any term, so codes that start far from the "
             "encoder outputs stay unused forever; the few near the data take every vector (codebook collapse).",
        "which codes does the codebook loss ||sg[z_e] - e||^2 touch in a step, and which does it never touch?"),
    "09.no_straight_through": Question(
        {"a": "nothing changes: the codebook loss trains the encoder anyway",
         "b": "the encoder gets no reconstruction signal, only the commitment pull, and reconstructions get worse",
         "c": "training stops with an error: argmin has no gradient"},
        "b", "the reconstruction's gradient stops at z_q (a table lookup); the encoder is then trained only to sit "
             "near its codes, not to describe the image.",
        "follow the reconstruction's gradient backwards from the decoder: where does it stop? (PyTorch does not "
        "complain about a missing gradient: it simply has none.)"),
    "09.equal_code": Question(
        {"a": "about as sharp as the VQ-VAE's: a 7x7 grid is what keeps the detail",
         "b": "clearly blurrier, close to the 16-number VAE's: the KL price limits what the code carries",
         "c": "sharper than the VQ-VAE's: Gaussian codes hold more than 128 choices"},
        "b", "at beta = 1 the KL charges for every nat the grid carries, so the Gaussian grid passes a few dozen bits "
             "per image, like the 16-number VAE; the VQ grid may pass up to 49 log2(128) = 343 bits at no price. The "
             "limit is the information let through, not the code's shape.",
        "what does the KL term charge for, and does the VQ-VAE pay it?"),
})


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


def _quantised(g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """A small encoder grid ``z_e`` [2, 4, 3, 3] (a leaf that wants gradients), a codebook parameter [5, 4] and
    ``z_q`` looked up from it (so gradients can reach the codebook), as in :class:`VectorQuantizer`."""
    from ...models.vqvae import VectorQuantizer

    vq = VectorQuantizer(5, 4)
    with torch.no_grad():
        vq.codebook.copy_(torch.randn(5, 4, generator=g))
    z_e = torch.randn(2, 4, 3, 3, generator=g).requires_grad_(True)
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    z_q = vq.lookup(vq.nearest(flat).view(2, 3, 3))
    return z_e, vq.codebook, z_q


def _grads(out: Tensor, upstream: Tensor, *leaves: Tensor) -> list[Tensor]:
    """Gradients of ``sum(out * upstream)`` w.r.t. ``leaves`` (zeros where none flows)."""
    if not out.requires_grad:
        return [torch.zeros_like(leaf) for leaf in leaves]
    grads = torch.autograd.grad((out * upstream).sum(), leaves, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(leaf) if gr is None else gr.detach() for gr, leaf in zip(grads, leaves)]


def check_straight_through(fn: Callable[[Tensor, Tensor], Tensor]) -> None:
    """``fn(z_e, z_q)``: a tensor whose *value* is ``z_q`` and whose *gradient* goes unchanged to ``z_e``.

    Reference: the straight-through line of :meth:`cvaelib.models.vqvae.VectorQuantizer.forward` (its output has
    the codes' values, and the decoder's gradient reaches the encoder output as if quantisation were the identity).
    """
    check = "check_straight_through"
    _require_callable(check, fn, "straight_through")
    g = torch.Generator().manual_seed(0)
    z_e, book, z_q = _quantised(g)
    out = _require_tensor(check, _call(check, fn, z_e, z_q), z_e.shape, "output")
    upstream = torch.randn(z_e.shape, generator=g)
    g_enc, g_book = _grads(out, upstream, z_e, book)
    if not torch.allclose(out.detach(), z_q.detach(), atol=1e-6):
        if torch.allclose(out.detach(), z_e.detach(), atol=1e-6):
            raise _fail(check, "the output has the encoder's values, not the codes': the decoder would never see "
                               "a quantised grid.", "the forward value must be z_q; only the gradient takes the "
                                                    "shortcut to z_e.")
        raise _fail(check, "the output's values are neither the codes nor the encoder output.",
                    "write z_q as z_e plus a correction (z_q - z_e) that the gradient does not see.")
    if torch.allclose(g_enc, torch.zeros_like(g_enc)):
        raise _fail(check, "no gradient reaches z_e: the encoder would learn nothing from the reconstruction.",
                    "argmin has no gradient, so z_q alone is a dead end; detach the correction, not z_e.")
    if not torch.allclose(g_enc, upstream, atol=1e-5):
        raise _fail(check, f"the gradient reaching z_e is not the decoder's gradient (it is scaled or shifted: "
                           f"{_fmt(g_enc)} vs {_fmt(upstream)}).",
                    "the correction term must carry no gradient at all (.detach() the whole difference).")
    if not torch.allclose(g_book, torch.zeros_like(g_book)):
        raise _fail(check, "the reconstruction's gradient also reaches the codebook through your output.",
                    "the codebook learns from its own loss term; detach the whole correction (z_q - z_e).")
    _ok(check, "forward value = the codes, backward = the identity onto z_e, as VectorQuantizer.forward")


def check_vq_losses(fn: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]) -> None:
    """``fn(z_e, z_q)`` -> ``(codebook_loss, commitment_loss)``, each ``||.||^2`` summed per image, averaged over
    the batch: ``||sg[z_e] - z_q||^2`` moves only the codebook, ``||z_e - sg[z_q]||^2`` only the encoder.

    Reference: the ``vq`` and ``commit`` terms of :meth:`cvaelib.models.vqvae.VectorQuantizer.forward`.
    """
    from ...models.vqvae import VectorQuantizer

    check = "check_vq_losses"
    _require_callable(check, fn, "vq_losses")
    g = torch.Generator().manual_seed(1)
    z_e, book, z_q = _quantised(g)
    ref = VectorQuantizer(5, 4).eval()
    with torch.no_grad():
        ref.codebook.copy_(book)
    _, _, terms = ref(z_e.detach())
    out = _call(check, fn, z_e, z_q)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise _fail(check, f"expected two losses (codebook_loss, commitment_loss), got a {type(out).__name__}.",
                    "return codebook_loss, commitment_loss.")
    cb, com = (_scalar(check, v, name) for v, name in zip(out, ("codebook loss", "commitment loss")))
    want = float(terms["vq"].detach())
    for got, name in ((cb, "codebook loss"), (com, "commitment loss")):
        if math.isclose(got, want, rel_tol=1e-4):
            continue
        if math.isclose(got, want / z_e[0].numel(), rel_tol=1e-4):
            raise _fail(check, f"your {name} is averaged over every number of the grid.",
                        "like the reconstruction term: sum over the grid, average over the images (/ batch size).")
        if math.isclose(got, want * len(z_e), rel_tol=1e-4):
            raise _fail(check, f"your {name} is summed over the batch too.", "divide by the number of images.")
        if math.isclose(got, float((z_e - z_q).detach().flatten(1).norm(dim=1).mean()), rel_tol=1e-4):
            raise _fail(check, f"your {name} is a distance, not a *squared* distance.", "use .pow(2) and no sqrt.")
        raise _fail(check, f"your {name} is {got:.4f}, expected {want:.4f}.",
                    "squared differences between z_e and z_q, summed over the grid, divided by the batch size.")
    grads = [_grads(v, torch.ones(()), z_e, book) for v in out]
    moves = [(not torch.allclose(ge, torch.zeros_like(ge)), not torch.allclose(gb, torch.zeros_like(gb)))
             for ge, gb in grads]
    if moves == [(False, True), (True, False)]:
        _ok(check, "the same number twice, with different gradients: the codebook loss moves the codes, the "
                   "commitment loss the encoder")
        return
    if moves == [(True, False), (False, True)]:
        raise _fail(check, "the codebook loss moves the encoder and the commitment loss the codebook: the stop-"
                           "gradients (or the return order) are swapped.",
                    "the codebook loss detaches the encoder output; the commitment loss detaches the codes.")
    if any(m == (True, True) for m in moves):
        raise _fail(check, "a loss sends gradients to both the encoder and the codebook: a stop-gradient is missing.",
                    "sg[.] is .detach(): each loss must treat one side as a constant.")
    raise _fail(check, "a loss sends no gradient anywhere (both sides detached, or computed outside torch).",
                "detach exactly one side in each loss.")


def check_restart_dead_codes(fn: Callable[..., Tensor]) -> None:
    """``fn(codebook [K, D], counts [K], z [M, D], generator)``: codes with ``counts == 0`` replaced by *different*
    encoder outputs (rows of ``z``), live codes unchanged; returns the new codebook ``[K, D]``.

    Reference: the dead-code restarts of :class:`cvaelib.models.vqvae.VectorQuantizer` (which add a little noise
    to the chosen rows; the check accepts rows within 5 % of a batch vector's spread).
    """
    check = "check_restart_dead_codes"
    _require_callable(check, fn, "restart_dead_codes")
    g = torch.Generator().manual_seed(0)
    book = torch.randn(8, 4, generator=g) * 3.0
    counts = torch.tensor([5.0, 0, 3, 0, 0, 9, 1, 0])
    z = torch.randn(40, 4, generator=g) + 0.5
    original, z_copy = book.clone(), z.clone()
    out = _require_tensor(check, _call(check, fn, book, counts.clone(), z, torch.Generator().manual_seed(1)),
                          book.shape, "codebook").detach().float()
    if not torch.equal(z, z_copy):
        raise _fail(check, "your function changed the encoder outputs z.", "only the codebook changes.")
    live, dead = counts > 0, counts == 0
    if not torch.allclose(out[live], original[live]):
        raise _fail(check, "codes that are in use changed too: the encoder's current choices would jump.",
                    "replace only the rows where counts == 0 (a boolean mask or their indices).")
    if torch.allclose(out[dead], original[dead]):
        raise _fail(check, "the dead codes were not replaced.", "assign new vectors to the rows where counts == 0.")
    nearest = torch.cdist(out[dead], z).min(dim=1).values
    if float(nearest.max()) > 0.05 * float(z.std()) * math.sqrt(z.shape[1]):
        raise _fail(check, "a restarted code is not one of the encoder outputs z: far from the data, nobody picks "
                           "it, and it dies again.", "copy randomly chosen rows of z into the dead rows.")
    if torch.cdist(out[dead], out[dead]).add(torch.eye(int(dead.sum())) * 1e9).min() < 1e-6:
        raise _fail(check, "two dead codes got the same vector: they compete for the same inputs and all but one "
                           "die again.", "choose *different* rows of z (torch.randperm, not one index).")
    _ok(check, "dead codes restart on different encoder outputs, live codes keep their place")

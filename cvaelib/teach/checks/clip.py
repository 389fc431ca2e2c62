"""Exercise checks and predict-first questions for lesson 05: CLIP similarity and loss, condition perturbation,
bridges across the modality gap (lesson 06's checks are in ``faces``)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ._core import (Question, _call, _close, _fail, _ok, _require_callable, _require_tensor, _scalar,
                    register_questions)


__all__ = ["check_similarity_matrix", "check_perturb_condition", "check_clip_loss", "check_shift_bridge",
           "check_contrastive_ranking"]


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
    """``fn(c, xi)``: LAFITE's noise, ``normalise(c + xi * |c| * eps / |eps|)`` with eps ~ N(0, I) drawn per row.

    Reference: :func:`cvaelib.models.clip_cvae.perturb_condition` (compared by its geometry: it is random).  The
    rows given have different lengths (the noise must scale with each), and some rows are equal (each must get its
    own noise).
    """
    from ...models.clip_cvae import perturb_condition

    check = "check_perturb_condition"
    _require_callable(check, fn, "perturb")
    g = torch.Generator().manual_seed(12345)
    lengths = torch.linspace(0.2, 3.0, 2000)[torch.randperm(2000, generator=g)][:, None]
    c = F.normalize(torch.randn(2000, 32, generator=g), dim=-1) * lengths  # not unit length: |c| matters
    c[1000:] = c[1000]  # 1000 equal rows: independent noise must still move them apart
    xi = 0.5
    torch.manual_seed(0)
    out = _require_tensor(check, _call(check, fn, c.clone(), xi), c.shape, "perturbed condition").detach().float()
    if not torch.allclose(out.norm(dim=-1), torch.ones(len(c)), atol=1e-4):
        raise _fail(check, f"the perturbed rows have norms from {float(out.norm(dim=-1).min()):.2f} to "
                           f"{float(out.norm(dim=-1).max()):.2f}; a CLIP condition has length 1.",
                    "normalise the result: F.normalize(..., dim=-1).")
    unit = F.normalize(c, dim=-1)
    if _close(out, unit):
        raise _fail(check, "the result is c brought to unit length: no noise was added.",
                    "add noise of length xi * |c| in a random direction before normalising.")
    if float((out[1000:] - out[1000]).norm(dim=-1).max()) < 1e-6:
        raise _fail(check, "equal rows came out equal: every row got the same noise vector.",
                    "draw a separate noise vector for every row: torch.randn_like(c) has the shape of c.")
    cos = (out * unit).sum(-1)
    ref = (perturb_condition(c, xi, torch.Generator().manual_seed(1)) * unit).sum(-1)
    short, long = lengths[:, 0] < 0.6, lengths[:, 0] > 2.6
    spread = float(cos[short].mean() - cos[long].mean())
    if abs(spread) > 0.05:
        raise _fail(check, f"short rows move {'more' if spread < 0 else 'less'} than long ones (mean cosine to the "
                           f"original {float(cos[short].mean()):.2f} for |c| < 0.6, {float(cos[long].mean()):.2f} "
                           f"for |c| > 2.6); the angle must not depend on the length of c.",
                    "scale the noise by xi * |c| of each row: c.norm(dim=-1, keepdim=True).")
    if abs(float(cos.mean()) - float(ref.mean())) > 0.02:
        raise _fail(check, f"the mean cosine between c and its perturbed copy is {float(cos.mean()):.3f}, "
                           f"expected about {float(ref.mean()):.3f} for xi = {xi}.",
                    "the noise must have length xi * |c| exactly: bring eps to unit length per row first.")
    if float(cos.std()) > 3 * float(ref.std()) + 1e-3:
        raise _fail(check, "the amount of noise varies a lot between rows.",
                    "normalise eps per row (dim=-1), not over the whole matrix.")
    _ok(check, f"unit-length conditions at the angle LAFITE's xi = {xi} gives (mean cosine {float(cos.mean()):.3f}), "
               f"independent noise for every row")


def check_clip_loss(fn: Callable[[Tensor, Tensor, float], Tensor]) -> None:
    """``fn(text_emb [B, D], image_emb [B, D], tau)``: CLIP's symmetric contrastive loss of B matching pairs (rows
    not normalised yet): the mean of the text->image and image->text cross-entropies of the cosines divided by tau.

    Reference: :func:`cvaelib.clip.tiny.clip_loss` (which TinyCLIP trains with, there with soft targets).
    """
    from ...clip.tiny import clip_loss

    check = "check_clip_loss"
    _require_callable(check, fn, "clip_loss")
    g = torch.Generator().manual_seed(3)
    text = torch.randn(6, 8, generator=g) * torch.linspace(0.5, 3, 6)[:, None]
    image = (F.normalize(text, dim=-1) + 0.8 * torch.randn(6, 8, generator=g)) * 2.0
    image.requires_grad_(True)
    tau = 0.1
    out = _call(check, fn, text.clone(), image, tau)
    got = _scalar(check, out, "loss")
    t, i = F.normalize(text, dim=-1), F.normalize(image.detach(), dim=-1)
    logits = t @ i.T / tau
    want = float(clip_loss(logits))
    if math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6):
        if not (isinstance(out, Tensor) and out.requires_grad):
            raise _fail(check, "the value is right but no gradient flows back to the embeddings.",
                        "compute it with torch operations (no float(), .item() or .detach()).")
        _ok(check, f"both directions, cosines over tau (loss {got:.4f}; chance level log B = {math.log(6):.4f})")
        return
    labels = torch.arange(6)
    rows, cols = float(F.cross_entropy(logits, labels)), float(F.cross_entropy(logits.T, labels))
    raw = text @ image.detach().T
    wrong = [
        (rows, "only one direction (each text picks its image); CLIP also asks each image to pick its text.",
         "average the cross-entropy over the rows and over the columns (the transposed logits)."),
        (cols, "only one direction (each image picks its text); CLIP also asks each text to pick its image.",
         "average the cross-entropy over the rows and over the columns (the transposed logits)."),
        (rows + cols, "you added the two directions; CLIP averages them.", "0.5 * (text->image + image->text)."),
        (float(clip_loss(t @ i.T)), "the temperature is missing: cosines in [-1, 1] give a nearly flat softmax.",
         "divide the cosine matrix by tau."),
        (float(clip_loss(t @ i.T * tau)), "you multiplied by tau; the logits are cosines *divided* by tau.",
         "a small tau must make the softmax sharper."),
        (float(clip_loss(raw / tau)), "those are dot products of unnormalised embeddings.",
         "normalise every row to unit length first: the logits are cosines over tau."),
    ]
    for value, what, hint in wrong:
        if math.isclose(got, value, rel_tol=1e-4, abs_tol=1e-6):
            raise _fail(check, what, hint)
    raise _fail(check, f"your loss is {got:.4f}, expected {want:.4f}.",
                "logits = cosine matrix / tau; the right partner of row i is column i (labels = arange(B)).")


def _bridge_model(dim: int):
    """A tiny untrained CLIP-CVAE: only its bridge statistics matter to the checks."""
    from ...models.clip_cvae import ClipConditionalVAE

    return ClipConditionalVAE(condition_dim=dim, latent_dim=2, width=4, hidden=8, condition_hidden=4, bank_size=64,
                              num_refs=3).eval()


def check_shift_bridge(fn: Callable[[Tensor, Tensor, Tensor], Tensor]) -> None:
    """``fn(text_emb [N, D], image_center [D], text_center [D])``: move unit text embeddings by the mean gap
    vector (image centre minus text centre) and bring them back to unit length.

    Reference: :func:`cvaelib.conditioning.bridge.text_anchor` with ``bridge="shift"``.
    """
    from ...conditioning.bridge import text_anchor

    check = "check_shift_bridge"
    _require_callable(check, fn, "shift_bridge")
    g = torch.Generator().manual_seed(4)
    images = F.normalize(torch.randn(50, 10, generator=g) + 2.0, dim=-1)
    texts = F.normalize(torch.randn(50, 10, generator=g) - 1.0, dim=-1)
    model = _bridge_model(10)
    model.set_gap(images, texts)
    mi, mt = model.image_center.clone(), model.text_center.clone()
    queries = texts[:4]
    out = _require_tensor(check, _call(check, fn, queries.clone(), mi.clone(), mt.clone()), queries.shape,
                          "shifted embeddings").detach().float()
    want = torch.stack([text_anchor(model, None, q, "shift") for q in queries])
    if _close(out, want):
        _ok(check, "text embeddings moved by the mean gap vector, back on the unit sphere, as bridge='shift'")
        return
    if _close(out, F.normalize(queries - mi + mt, dim=-1)):
        raise _fail(check, "you moved the texts the wrong way (further from the images).",
                    "the gap vector points from the text centre to the image centre.")
    if _close(F.normalize(out, dim=-1), want):
        raise _fail(check, "the direction is right but the rows are not unit length; the CVAE saw unit-length "
                           "image embeddings only.", "normalise the result.")
    if _close(out, F.normalize(queries + F.normalize(mi, dim=-1) - F.normalize(mt, dim=-1), dim=-1)):
        raise _fail(check, "you normalised the two centres before taking their difference; the gap is the "
                           "difference of the plain means.", "use image_center - text_center as given.")
    raise _fail(check, "your shifted embeddings differ from the shift bridge's.",
                "add (image_center - text_center) to every text row, then normalise each row.")


def check_contrastive_ranking(fn: Callable[[Tensor, Tensor, Tensor, float], Tensor]) -> None:
    """``fn(bank [M, D], text [D], ref_texts [K, D], scale)``: for every bank image, ``log p(prompt | image)``
    among the prompt and the K reference texts: ``log_softmax(scale * [bank @ text, bank @ ref_texts.T], dim=1)[:, 0]``.

    Reference: the ranking of :func:`cvaelib.conditioning.bridge.retrieve` (a model with reference texts).
    """
    from ...conditioning.bridge import retrieve

    check = "check_contrastive_ranking"
    _require_callable(check, fn, "contrastive_scores")
    g = torch.Generator().manual_seed(5)
    refs = F.normalize(torch.randn(3, 12, generator=g), dim=-1)
    text = F.normalize(refs[0] + 0.5 * torch.randn(12, generator=g), dim=-1)
    bank = F.normalize(torch.randn(64, 12, generator=g) + 1.5 * text, dim=-1)  # images all a bit like the prompt
    scale = 14.0
    model = _bridge_model(12)
    model.fill_bank(bank)
    model.set_reference_texts(refs, scale)
    out = _require_tensor(check, _call(check, fn, bank.clone(), text.clone(), refs.clone(), scale), (64,),
                          "scores").detach().float()
    nearest = retrieve(model, text, k=8)[0]  # the bank's top 8 (the model keeps its bank in its own order)
    logits = scale * torch.cat([(bank @ text)[:, None], bank @ refs.T], dim=1)
    want = torch.log_softmax(logits, dim=1)[:, 0]
    if _close(out, want) and _close(bank[out.topk(8).indices], nearest):
        _ok(check, "bank images ranked by log p(prompt | image), as the retrieval bridge ranks them")
        return
    if _close(out, bank @ text):
        raise _fail(check, "that is the plain cosine: images close to *every* text rank high.",
                    "compare the prompt with the reference texts: a softmax over [prompt, references] per image.")
    if _close(out, torch.softmax(logits, dim=1)[:, 0]):
        raise _fail(check, "those are probabilities; the bridge ranks by log-probabilities (the same order, but a "
                           "sum of logs is what adds up over many prompts).", "use log_softmax.")
    if _close(out, torch.log_softmax(logits / scale, dim=1)[:, 0]):
        raise _fail(check, "the scale (CLIP's inverse temperature) is missing.", "multiply the cosines by scale.")
    if _close(out, torch.log_softmax(logits, dim=0)[:, 0]):
        raise _fail(check, "your softmax runs over the bank images; each image must compare the *texts*.",
                    "log_softmax over dim=1 of the [M, 1 + K] logits.")
    raise _fail(check, "your scores differ from log p(prompt | image).",
                "logits [M, 1 + K]: column 0 the prompt, then the references; log_softmax over the texts; column 0.")


register_questions({
    "05.gap": Question(
        {"a": "the text and the image: CLIP was trained to match exactly these",
         "b": "the two images",
         "c": "about the same"},
        "b", "the contrastive loss only asks a text to be *closer than the other texts* to its image, never to "
             "coincide with it: texts and images keep apart in different regions of the sphere, the modality gap.",
        "the loss compares a text with the other texts of the batch; does anything pull it all the way onto its "
        "image?"),
    "05.tau": Question(
        {"a": "yes, if the text and image embeddings match perfectly",
         "b": "no: with cosines in [-1, 1] the loss stays above log(1 + (B - 1) e^-2)",
         "c": "no: it stays above log B"},
        "b", "the best case is cosine 1 with the partner and -1 with all others: logits 1 and -1, so the softmax "
             "gives the partner at most 1 / (1 + (B - 1) e^-2). Dividing by a small tau stretches that gap.",
        "write the softmax for the best case: cosine 1 to the partner, -1 to every other row."),
    "05.copy": Question(
        {"a": "many more than with a fresh z: samples come out as near-copies of the retrieved training images",
         "b": "about as many as with a fresh z: the code only adds variety",
         "c": "none: the noise added to the code makes every sample new"},
        "a", "the decoder gets a training image's own embedding *and* its own latent code: it re-draws that image, "
             "and noise of 0.5 on a code does not move it far.",
        "what did the decoder learn to do with an image's embedding and that image's code?"),
})

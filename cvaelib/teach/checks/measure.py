"""Exercise checks for lesson 07: long captions sentence by sentence, measuring generated images (CLIP score,
Frechet distance), and the lesson's predict-first questions."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ._core import (ExerciseError, Question, _call, _close, _fail, _ok, _require_callable, _require_tensor, _scalar,
                    register_questions)


__all__ = ["check_long_caption", "check_clip_score", "check_frechet_distance"]

register_questions({
    "07.substring": Question(
        {"a": "most of them", "b": "about half", "c": "almost none"},
        "c", "the extra captions are keywords hiding inside other words - 'tree' in 'street', 'field' in "
             "'outfield' - so a substring filter mostly adds city streets and ball games to a countryside theme.",
        "look for the theme words inside longer, unrelated words."),
    "07.concat_vs_add": Question(
        {"a": "concatenation can do everything addition can, not the other way round",
         "b": "addition can do everything concatenation can, not the other way round",
         "c": "they are the same model"},
        "a", "a linear layer on [z; c] is W_z z + W_c c with its own weights for c; addition gives W (z + P c) = W z + "
             "(W P) c, so the condition must pass through z's width and z's weights - a special case of concatenation.",
        "write the first (linear) layer of the decoder applied to [z; c] with its weight matrix split in two."),
    "07.blur": Question(
        {"a": "the single most likely photo", "b": "the pixel-wise average of all of them",
         "c": "one of them, picked at random"},
        "b", "for each pixel the expected BCE, -E[x] log p - (1 - E[x]) log(1 - p), is smallest at p = E[x]: the "
             "decoder paints the mean of everything the code and caption leave open - a blur.",
        "minimise the expected binary cross-entropy of one pixel over p: set its derivative to zero."),
})


def _bag_of_tokens(dim: int = 16):
    """A deterministic stand-in CLIP text tower for checks: a fixed random vector per BPE token, position-weighted
    and summed (a :class:`~cvaelib.clip.encoder.ClipEncoder`, so its long-text mode is the library's)."""
    from ...clip.encoder import ClipEncoder

    class BagOfTokens(ClipEncoder):
        def __init__(self) -> None:
            super().__init__("bag-of-tokens", "cpu", dim)
            self.table = torch.randn(49408, dim, generator=torch.Generator().manual_seed(0))

        def _encode_text_tokens(self, tokens: Tensor) -> Tensor:
            weights = (tokens > 0).float() * torch.linspace(1.0, 2.0, tokens.shape[1])  # word order matters
            return (self.table[tokens] * weights[..., None]).sum(1)

    return BagOfTokens()


class _NoShortcut:
    """What the student's function gets: encode_text in truncate mode only (long_text="average" is the answer)."""

    def __init__(self, encoder) -> None:
        self._encoder, self.embed_dim, self.name = encoder, encoder.embed_dim, encoder.name
        self.context_length = encoder.context_length

    def encode_text(self, texts, batch_size: int = 256, long_text: str = "truncate") -> Tensor:
        if long_text != "truncate":
            raise ExerciseError("check_long_caption: encode_text(..., long_text=\"average\") is the library's "
                                "version of this exercise. Hint: split the text into sentences and average "
                                "their embeddings yourself.")
        return self._encoder.encode_text(texts, batch_size)

    def tokenize(self, texts) -> Tensor:
        return self._encoder.tokenize(texts)


LONG_TEXT = ("A brown cow stands in a green field next to an old wooden fence. Two white horses graze on the hill "
             "behind it, under a pale blue sky with a few clouds! Mr. Brown's red barn is half hidden by tall oak "
             "trees on the left. Is that a small pond near the gate? A dirt path leads from the gate past the pond "
             "and up the hill toward a line of dark pine trees.")


def check_long_caption(fn: Callable[..., Tensor]) -> None:
    """``fn(encoder, text)``: one unit-length embedding ``[D]`` for a text longer than CLIP's 77 tokens: the
    re-normalised mean of its sentences' embeddings (sentences from :func:`cvaelib.clip.text.split_sentences`).

    Reference: ``encoder.encode_text(text, long_text="average")`` (the long-text mode of the kit's sources).
    """
    from ...clip.text import split_sentences

    check = "check_long_caption"
    _require_callable(check, fn, "embed_long_caption")
    enc = _bag_of_tokens()
    want = enc.encode_text(LONG_TEXT, long_text="average")[0]
    out = _require_tensor(check, _call(check, fn, _NoShortcut(enc), LONG_TEXT), None, "embedding").detach().float()
    if tuple(out.shape) != tuple(want.shape):
        raise _fail(check, f"your embedding has shape {list(out.shape)}; return one vector [{len(want)}].",
                    "average over the sentence axis (dim=0) and return that row.")
    if _close(out, want):
        _ok(check, "every sentence embedded, averaged, back to unit length - like long_text='average'")
        return
    sentences = split_sentences(LONG_TEXT)
    mean = enc.encode_text(sentences).mean(0)
    if _close(out, mean):
        raise _fail(check, f"your vector has length {float(out.norm()):.3f}; a mean of unit vectors is shorter.",
                    "normalise the mean again (F.normalize(..., dim=-1)): conditions are unit length.")
    if _close(out, enc.encode_text(LONG_TEXT)[0]):
        raise _fail(check, "you embedded the whole text in one pass: CLIP cuts it after 77 tokens and the last "
                           "sentences are lost.", "split it into sentences first.")
    if _close(out, enc.encode_text(sentences[:1])[0]):
        raise _fail(check, "that is the embedding of the first sentence only.", "embed every sentence and average.")
    naive = [p.strip() for p in LONG_TEXT.split(".") if p.strip()]
    if _close(out, F.normalize(enc.encode_text(naive).mean(0), dim=-1)):
        raise _fail(check, "splitting at every '.' cuts 'Mr. Brown' in two and misses '!' and '?'.",
                    "use cvaelib.clip.text.split_sentences.")
    raise _fail(check, "your embedding differs from the normalised mean of the sentence embeddings.",
                "split_sentences(text) -> encoder.encode_text(sentences) -> mean over sentences -> F.normalize.")


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

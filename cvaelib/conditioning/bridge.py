"""Bridges from a text to a CLIP-CVAE condition: crossing the modality gap.

A CLIP-CVAE is trained on *image* embeddings.  Text embeddings of the same concept are close to them in angle but
sit in a different region of the sphere (the "modality gap", Liang et al. 2022, "Mind the Gap: Understanding the
Modality Gap in Multi-modal Contrastive Representation Learning", https://arxiv.org/abs/2203.02053).  Feeding a
text embedding straight to the decoder therefore asks it about a region it never saw.  Measured on MNIST /
Fashion-MNIST with TinyCLIP (FINDINGS.md): a plain text embedding gives the named class in 82 % / 47 % of samples.

Three bridges, one argument (``bridge=``) everywhere in :mod:`cvaelib.clip_generate` and the CLI:

* ``"retrieval"`` (default) - find the ``k`` training image embeddings the text describes best (the bank stored in
  the checkpoint; ranked like zero-shot classification against one reference text per class when the checkpoint
  has them, else by cosine similarity) and condition each sample on one of them.  Conditions are then real image
  embeddings, the decoder's home ground; it is a nearest-neighbour version of DALL-E 2's text-to-image-embedding
  prior (Ramesh et al. 2022, https://arxiv.org/abs/2204.06125) that needs no training.  The bank also holds each
  neighbour's latent code, so :func:`text_start` can start z from it (plus noise).
* ``"shift"`` - move the text embedding by the mean gap vector (image centre minus text centre), re-normalise.
* ``"direct"`` - the text embedding as is (the baseline that shows why a bridge is needed).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import KitError

BRIDGES = ("retrieval", "shift", "direct")


def _check_bridge(bridge: str) -> None:
    if bridge not in BRIDGES:
        raise KitError(f"unknown bridge {bridge!r}; choose one of: {', '.join(BRIDGES)}")


def _text_embedding(encoder, prompt: str | Tensor) -> Tensor:
    if isinstance(prompt, Tensor):
        t = prompt.float().reshape(-1, prompt.shape[-1])
        if t.shape[0] != 1:
            raise KitError(f"pass one text embedding [D] or [1, D], got {list(prompt.shape)}")
        return F.normalize(t[0], dim=-1)
    if not isinstance(prompt, str) or not prompt.strip():
        raise KitError("the prompt is empty; describe what to draw, e.g. 'a handwritten seven'")
    return encoder.encode_text([prompt])[0]


def retrieve(model, text: Tensor, k: int = 64, return_index: bool = False):
    """The ``k`` bank embeddings most similar to unit vector ``text``: ``(embeddings [k, D], similarities [k])``
    (plus their bank rows ``[k]`` with ``return_index=True``)."""
    bank = model.bank_embeddings()
    text = text.to(bank.device, bank.dtype)
    if text.shape[-1] != bank.shape[1]:
        raise KitError(f"the text embedding has {text.shape[-1]} dims, this model's CLIP has {bank.shape[1]}; "
                       f"use the CLIP the model was trained with ({model.config.get('clip')})")
    k = max(1, min(int(k), len(bank)))
    sims = bank @ text
    if model.references_are_set:
        # Contrastive retrieval: rank images by log p(prompt | image) among the prompt and the reference texts (one
        # per class), as zero-shot classification does.  Plain cosine ranking favours images that are close to
        # *every* text (e.g. "a shirt" retrieves T-shirts and pullovers); this favours images the prompt describes
        # better than any other class does.
        logits = model.ref_scale * torch.cat([sims[:, None], bank @ model.ref_text.T], dim=1)
        score = torch.log_softmax(logits, dim=1)[:, 0]
    else:
        score = sims
    idx = score.topk(k).indices
    return (bank[idx], sims[idx], idx) if return_index else (bank[idx], sims[idx])


@torch.no_grad()
def text_conditions(model, encoder, prompt: str | Tensor, n: int, bridge: str = "retrieval", k: int = 64,
                    generator: torch.Generator | None = None, return_rows: bool = False):
    """``n`` conditions ``[n, D]`` for a prompt (a string, or its text embedding) through ``bridge``.

    ``return_rows=True`` also returns the bank rows used (``LongTensor[n]``, retrieval only; else None), so the
    caller can take the matching latent codes from ``model.bank_z``.
    """
    _check_bridge(bridge)
    t = _text_embedding(encoder, prompt)
    device = model.bank.device
    if bridge == "retrieval":
        near, _, rows = retrieve(model, t, k, return_index=True)
        pick = torch.randint(0, len(near), (n,), generator=generator).to(device)
        return (near[pick], rows[pick]) if return_rows else near[pick]
    c = text_anchor(model, encoder, t, bridge, k).expand(n, -1).clone()
    return (c, None) if return_rows else c


@torch.no_grad()
def text_anchor(model, encoder, prompt: str | Tensor, bridge: str = "retrieval", k: int = 64) -> Tensor:
    """One deterministic condition ``[D]`` for a prompt: what manipulation and interpolation move toward.

    ``retrieval``: the re-normalised mean of the ``k`` nearest image embeddings; ``shift``: the text embedding
    moved by the mean modality gap; ``direct``: the text embedding.
    """
    _check_bridge(bridge)
    t = _text_embedding(encoder, prompt).to(model.bank.device)
    if bridge == "retrieval":
        near, _ = retrieve(model, t, k)
        return F.normalize(near.mean(0), dim=-1)
    if bridge == "shift":
        if not bool(model.gap_is_set):
            raise KitError("this model stores no modality-gap statistics; use bridge='retrieval'")
        return F.normalize(t + model.image_center - model.text_center, dim=-1)
    return t


@torch.no_grad()
def text_start(model, encoder, prompt: str | Tensor, n: int, bridge: str = "retrieval", k: int = 64,
               generator: torch.Generator | None = None, z_noise: float | None = 0.5) -> tuple[Tensor, Tensor]:
    """Conditions ``[n, D]`` and latent codes ``[n, latent]`` (CPU) to draw ``n`` images for a prompt.

    With the retrieval bridge and a bank that stores codes, each sample starts from the code of its retrieved
    neighbour plus ``z_noise`` * N(0, I) (``z_noise=None``: plain z ~ N(0, I)); otherwise z ~ N(0, I).  What
    :func:`cvaelib.clip_generate.generate_from_text` draws and :func:`cvaelib.guided.compare_with_sampling` refines.
    """
    c, rows = text_conditions(model, encoder, prompt, n, bridge=bridge, k=k, generator=generator, return_rows=True)
    z = torch.randn(n, model.latent_dim, generator=generator)
    if rows is not None and z_noise is not None and model.bank_codes_are_set:
        z = model.bank_z[rows].cpu() + float(z_noise) * z
    return c, z


__all__ = ["BRIDGES", "retrieve", "text_anchor", "text_conditions", "text_start"]

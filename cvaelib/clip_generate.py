"""CLIP-CVAE from end to end: train it, then generate from text, images, mixtures and paths between them.

Every function takes a trained :class:`~cvaelib.models.clip_cvae.ClipConditionalVAE` and a
:class:`~cvaelib.clip.ClipEncoder` (TinyCLIP or a real CLIP: the same interface), and returns float images
``[N, C, H, W]`` in [0, 1] on the CPU.  The generation modes follow the kit's sources:

* :func:`generate_from_text` - text -> image (``image_generation_clip(target_attr=...)``);
* :func:`generate_from_images` - image -> image: new samples conditioned on given images' embeddings;
* :func:`manipulate` - attribute manipulation: an image's embedding moved toward a text by a factor
  (``attribute_manipulation(target_attr, image_embed_factor)``), decoded with the image's own latent code;
* :func:`interpolate` - a path between two prompts or two images;
* :func:`reconstruct` - encode and decode with the image's own embedding.

:func:`train_clip_cvae` builds the whole pipeline (TinyCLIP trained or loaded, image embeddings, CVAE: the CLI's
``train --model clip-cvae``) and :func:`load_clip_cvae` gets model and encoder back from a run folder.  Which CLIP a
model needs, and how text becomes a condition, is :mod:`cvaelib.conditioning`'s business; these functions take the
encoder as an argument so a lesson can pass its own.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .conditioning.bridge import BRIDGES, text_anchor, text_start
from .conditioning.clip import logit_scale
from .data.images import as_images
from .errors import KitError


# ------------------------------------------------------------------------------------------------------ training
def gap_texts(dataset: str, n: int = 2000, seed: int = 0) -> list[str]:
    """Random training captions of ``dataset`` (for measuring the mean text embedding)."""
    import random

    from .clip import captions as cap

    rng = random.Random(seed)
    classes = len(cap.SYNONYMS[cap.check_captioned(dataset)])
    return [cap.caption(dataset, i % classes, rng=rng) for i in range(n)]


def train_clip_cvae(dataset: str, out: str | os.PathLike, root: str | os.PathLike | None = None,
                    clip: str = "tiny", tiny_seconds: float = 150.0, epochs: int = 10,
                    max_seconds: float | None = 60.0, latent_dim: int | None = None, injection: str | None = None,
                    beta: float | None = None, condition_noise: float | None = None, batch_size: int = 128,
                    lr: float = 1e-3, lr_schedule: str | None = None, seed: int = 0,
                    device: str | torch.device | None = None, progress: bool = True, resume: bool = False,
                    every: int = 1, limit: int | None = None) -> dict[str, Any]:
    """Train a CLIP-conditioned CVAE on ``dataset``; writes ``out/checkpoint.pt`` (+ ``tinyclip.pt``), as
    ``python -m cvaelib train --model clip-cvae`` does.  Options left None take the model's defaults.

    Returns ``{"model", "encoder", "history", "metrics"}``.  The CVAE sees image embeddings only; the bank of
    training embeddings (retrieval bridge) and the modality-gap statistics ("shift" bridge) go into the checkpoint.
    """
    from .runs.train import train_model

    run = train_model("clip-cvae", dataset, out, root, epochs=epochs, max_seconds=max_seconds, latent_dim=latent_dim,
                      injection=injection, beta=beta, condition_noise=condition_noise, clip=clip,
                      tiny_seconds=tiny_seconds, limit=limit, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule,
                      seed=seed, every=every,
                      resume=resume, device=device, quiet=not progress)
    encoder = run.prepared.encoder or run.conditioning.encoder  # a finished run resumed: its CLIP, loaded
    return {"model": run.model, "encoder": encoder, "history": run.history, "metrics": run.metrics}


def load_clip_cvae(path: str | os.PathLike, device: str | torch.device | None = None):
    """``(model, encoder)`` from a clip-cvae run folder (its TinyCLIP, or the real CLIP it names)."""
    from .checkpoint import load_model, resolve_checkpoint
    from .conditioning import clip_encoder_for
    from .device import pick_device

    device = pick_device(device)
    model = load_model(path, device=device, expect="clip-cvae")
    return model, clip_encoder_for(model, resolve_checkpoint(path).parent, device)


# ---------------------------------------------------------------------------------------------------- generation
def _device(model) -> torch.device:
    return next(model.parameters()).device


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise KitError(f"n must be a positive number of images, got {n!r}")


def _decode(model, z: Tensor, c: Tensor) -> Tensor:
    return torch.sigmoid(model.decode(z.to(_device(model)), c.to(_device(model)))).cpu()


@torch.no_grad()
def generate_from_text(model, encoder, prompt: str, n: int = 16, seed: int = 0, bridge: str = "retrieval",
                       k: int = 64, z_noise: float | None = 0.5) -> Tensor:
    """``n`` images for ``prompt`` (text -> image); ``bridge`` crosses the modality gap (see conditioning.bridge).

    With the retrieval bridge each sample starts from the latent code of its retrieved neighbour plus
    ``z_noise`` * N(0, I) (``z_noise=None``: plain z ~ N(0, I)); other bridges always draw z ~ N(0, I).
    """
    _check_n(n)
    c, z = text_start(model, encoder, prompt, n, bridge=bridge, k=k, generator=torch.Generator().manual_seed(seed),
                      z_noise=z_noise)
    return _decode(model, z, c)


@torch.no_grad()
def generate_from_images(model, encoder, images: Tensor, n_per_image: int = 1, seed: int = 0) -> Tensor:
    """New images conditioned on the CLIP embeddings of ``images`` (image -> image), ``n_per_image`` each,
    grouped by source image."""
    _check_n(n_per_image)
    x = as_images(images, model.image_shape)
    c = encoder.encode_images(x).repeat_interleave(n_per_image, 0)
    z = torch.randn(len(c), model.latent_dim, generator=torch.Generator().manual_seed(seed))
    return _decode(model, z, c)


@torch.no_grad()
def manipulate(model, encoder, images: Tensor, text: str, image_embed_factor: float = 0.5,
               bridge: str = "retrieval", k: int = 64) -> Tensor:
    """Attribute manipulation: condition = normalise(f * image embedding + (1 - f) * bridged text), z = the
    image's own posterior mean, so the style stays and the content moves toward ``text``.

    ``image_embed_factor`` f = 1 reproduces the reconstruction, f = 0 draws the text in the image's style.
    """
    if not 0.0 <= float(image_embed_factor) <= 1.0:
        raise KitError(f"image_embed_factor must be in [0, 1], got {image_embed_factor}")
    x = as_images(images, model.image_shape)
    c_img = encoder.encode_images(x).to(_device(model))
    c_txt = text_anchor(model, encoder, text, bridge, k).to(_device(model))
    z = model.encode(x.to(_device(model)), c_img)[0]
    c = F.normalize(image_embed_factor * c_img + (1 - image_embed_factor) * c_txt, dim=-1)
    return _decode(model, z, c)


def _endpoint(model, encoder, what: str | Tensor, bridge: str, k: int) -> tuple[Tensor, Tensor | None]:
    """(condition [D], latent code [latent] or None) for a prompt or one image."""
    if isinstance(what, str):
        return text_anchor(model, encoder, what, bridge, k), None
    x = as_images(what, model.image_shape)
    if len(x) != 1:
        raise KitError(f"interpolate takes one image per end, got {len(x)}")
    c = encoder.encode_images(x).to(_device(model))
    return c[0], model.encode(x.to(_device(model)), c)[0][0]


@torch.no_grad()
def interpolate(model, encoder, start: str | Tensor, end: str | Tensor, steps: int = 8, seed: int = 0,
                bridge: str = "retrieval", k: int = 64) -> Tensor:
    """``steps`` images on the way from ``start`` to ``end`` (each a prompt or one image ``[C, H, W]``).

    Conditions follow the great circle between the two unit embeddings (:func:`cvaelib.interpolate.slerp`); z is
    one shared random code for prompts and the linear path between the two posterior means for images.
    """
    from .interpolate import blend

    if steps < 2:
        raise KitError(f"steps must be >= 2, got {steps}")
    (ca, za), (cb, zb) = _endpoint(model, encoder, start, bridge, k), _endpoint(model, encoder, end, bridge, k)
    t = torch.linspace(0, 1, steps)
    c = F.normalize(blend(F.normalize(ca, dim=-1), F.normalize(cb.to(ca.device), dim=-1), t.to(ca.device)), dim=-1)
    shared = torch.randn(1, model.latent_dim, generator=torch.Generator().manual_seed(seed)).to(c.device)
    za = shared[0] if za is None else za
    zb = shared[0] if zb is None else zb
    z = blend(za, zb.to(za.device), t.to(za.device), "lerp")
    return _decode(model, z, c)


@torch.no_grad()
def reconstruct(model, encoder, images: Tensor, batch_size: int = 512) -> Tensor:
    """Reconstructions of ``images``, each conditioned on its own CLIP image embedding."""
    from .conditioning import ClipConditioning

    return ClipConditioning(model, encoder=encoder).reconstruct(as_images(images, model.image_shape),
                                                                batch_size=batch_size)


# ---------------------------------------------------------------------------------------------------- evaluation
@torch.no_grad()
def prompt_accuracy(model, encoder, prompts: dict[int, list[str]], classifier, n: int = 32, seed: int = 0,
                    bridge: str = "retrieval", k: int = 64, z_noise: float | None = 0.5) -> dict[str, Any]:
    """How often samples for each prompt are recognised as the prompt's class by ``classifier``.

    ``prompts`` maps class id -> prompts naming it.  Returns ``{"overall", "per_class": {id: acc},
    "per_prompt": {prompt: acc}}``.
    """
    from .classifier import predict

    per_prompt, per_class = {}, {}
    for label, texts in prompts.items():
        hits = []
        for j, text in enumerate(texts):
            images = generate_from_text(model, encoder, text, n, seed=seed + j, bridge=bridge, k=k, z_noise=z_noise)
            ok = (predict(classifier, images) == int(label)).float()
            per_prompt[text] = float(ok.mean())
            hits.append(ok)
        per_class[int(label)] = float(torch.cat(hits).mean())
    overall = sum(per_class.values()) / max(1, len(per_class))
    return {"overall": overall, "per_class": per_class, "per_prompt": per_prompt}


__all__ = ["BRIDGES", "gap_texts", "generate_from_images", "generate_from_text", "interpolate", "load_clip_cvae",
           "logit_scale", "manipulate", "prompt_accuracy", "reconstruct", "train_clip_cvae"]

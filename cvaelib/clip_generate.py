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

:func:`train_clip_cvae` builds the whole pipeline (TinyCLIP trained or loaded, image embeddings, CVAE) and
:func:`load_clip_cvae` gets model and encoder back from a run folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .clip.bridge import BRIDGES, text_anchor, text_conditions
from .errors import KitError


# ------------------------------------------------------------------------------------------------------ training
def clip_for_dataset(clip: str, dataset: str, root: str | os.PathLike | None = None,
                     out: str | os.PathLike | None = None, tiny_seconds: float = 150.0, seed: int = 0,
                     device: str | torch.device | None = None, progress: bool = True):
    """The CLIP a CLIP-CVAE run uses: ``"tiny"`` (loaded from ``out/tinyclip.pt``, else trained - cached in
    ``~/.cache/cvaelib`` - and copied there) or any :func:`cvaelib.clip.load_clip` name."""
    from .clip.tiny import TINY_FILE, get_tiny_clip, load_tiny_clip, save_tiny_clip

    if clip != "tiny":
        from .clip import load_clip

        return load_clip(clip, device=device)
    if out is not None and (Path(out) / TINY_FILE).is_file():
        return load_tiny_clip(Path(out) / TINY_FILE, device)
    enc = get_tiny_clip(dataset, root, seconds=tiny_seconds, seed=seed, device=device, progress=progress)
    if out is not None:
        save_tiny_clip(enc, Path(out) / TINY_FILE)
    return enc


@torch.no_grad()
def image_embeddings(encoder, images: Tensor, cache: str | os.PathLike | None = None,
                     batch_size: int = 512) -> Tensor:
    """Unit-length CLIP image embeddings of uint8/float images (through the embedding cache when given)."""
    if cache is not None:
        from .clip import cached_image_embeddings

        return cached_image_embeddings(encoder, images, cache, batch_size=batch_size, verbose=False)
    return encoder.encode_images(images, batch_size=batch_size)


def gap_texts(dataset: str, n: int = 2000, seed: int = 0) -> list[str]:
    """Random training captions of ``dataset`` (for measuring the mean text embedding)."""
    import random

    from .clip import captions as cap

    rng = random.Random(seed)
    classes = len(cap.SYNONYMS[cap.check_captioned(dataset)])
    return [cap.caption(dataset, i % classes, rng=rng) for i in range(n)]


def train_clip_cvae(dataset: str, out: str | os.PathLike, root: str | os.PathLike | None = None,
                    clip: str = "tiny", tiny_seconds: float = 150.0, epochs: int = 10,
                    max_seconds: float | None = 60.0, latent_dim: int = 16, inject: str = "features",
                    beta: float = 0.1, cond_noise: float = 0.1, batch_size: int = 128, lr: float = 1e-3,
                    seed: int = 0, device: str | torch.device | None = None, progress: bool = True,
                    resume: bool = False, every: int = 1, limit: int | None = None) -> dict[str, Any]:
    """Train a CLIP-conditioned CVAE on ``dataset``; writes ``out/checkpoint.pt`` (+ ``tinyclip.pt``).

    Returns ``{"model", "encoder", "history", "metrics"}``.  The CVAE sees image embeddings only; the bank of
    training embeddings (retrieval bridge) and the modality-gap statistics ("shift" bridge) go into the checkpoint.
    """
    from .clip.captions import SYNONYMS
    from .clip.tiny import class_text_embeddings
    from .data import ImageData, load_dataset, train_val_split
    from .models.clip_cvae import ClipConditionalVAE
    from .train import fit, last_terms, pick_device

    device = pick_device(device)
    out = Path(out)
    data = load_dataset(dataset, root, "train")
    if limit is not None:
        data = data.take(slice(0, int(limit)))
    encoder = clip_for_dataset(clip, data.name, root, out, tiny_seconds, seed, device, progress)
    cache = None if clip == "tiny" else out / "clip_cache" / "train"
    emb = image_embeddings(encoder, data.images, cache)
    cond = ImageData(data.images, emb, data.class_names, data.name)  # labels = CLIP image embeddings
    train, val = train_val_split(cond, 0.1, seed=seed)
    torch.manual_seed(seed)
    model = ClipConditionalVAE(data.shape, cond_dim=encoder.embed_dim, latent_dim=latent_dim, inject=inject,
                               beta=beta, cond_noise=cond_noise, clip="tiny" if clip == "tiny" else clip,
                               bank_size=10000 if encoder.embed_dim <= 128 else 4096,
                               num_refs=data.num_classes if data.name in SYNONYMS else 0)
    model.set_condition_stats(emb)
    if data.name in SYNONYMS:  # captioned datasets: gap statistics and one reference text per class
        model.set_gap(emb, encoder.encode_text(gap_texts(data.name)))
        model.set_reference_texts(class_text_embeddings(encoder, data.name, heldout=False), logit_scale(encoder))
    meta = {"dataset": data.name, "class_names": data.class_names, "clip": encoder.name,
            "clip_weights_id": getattr(encoder, "weights_id", None)}
    history = fit(model, train, val, epochs=epochs, lr=lr, batch_size=batch_size, max_seconds=max_seconds,
                  device=device, seed=seed, checkpoint=out / "checkpoint.pt", every=every, resume=resume,
                  progress=progress, meta=meta)
    metrics = {"model": model.name, "dataset": data.name, "clip": encoder.name, "config": model.config,
               "epochs": history.epochs, "seconds": round(history.seconds, 3),
               "images_per_second": round(history.images_per_second, 1), "device": str(device),
               "tinyclip": getattr(encoder, "meta", {}), **last_terms(history)}
    return {"model": model, "encoder": encoder, "history": history, "metrics": metrics}


def logit_scale(encoder) -> float:
    """CLIP's learned inverse temperature (100 for OpenAI's CLIP; TinyCLIP learns its own)."""
    scale = getattr(getattr(encoder, "model", None), "logit_scale", None)
    return float(scale.exp()) if isinstance(scale, torch.Tensor) else 100.0


def load_clip_cvae(path: str | os.PathLike, device: str | torch.device | None = None):
    """``(model, encoder)`` from a clip-cvae run folder (its TinyCLIP, or the real CLIP it names)."""
    from .checkpoint import load_model, resolve_checkpoint
    from .clip.tiny import TINY_FILE, load_tiny_clip
    from .train import pick_device

    device = pick_device(device)
    model = load_model(path, device=device, expect="clip-cvae")
    name = model.config.get("clip", "tiny")
    if name == "tiny":
        tiny = resolve_checkpoint(path).parent / TINY_FILE
        if not tiny.is_file():
            raise KitError(f"{tiny} is missing: a clip-cvae run folder keeps its TinyCLIP next to checkpoint.pt; "
                           f"copy the whole run folder (or train again)")
        encoder = load_tiny_clip(tiny, device)
    else:
        from .clip import load_clip

        encoder = load_clip(name, device=device)
    if encoder.embed_dim != model.cond_dim:
        raise KitError(f"CLIP {encoder.name} gives {encoder.embed_dim}-d embeddings but the model was trained "
                       f"on {model.cond_dim}-d ones; use the CLIP it was trained with")
    return model, encoder


# ---------------------------------------------------------------------------------------------------- generation
def _device(model) -> torch.device:
    return next(model.parameters()).device


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise KitError(f"n must be a positive number of images, got {n!r}")


def _as_images(model, images: Tensor) -> Tensor:
    if not isinstance(images, Tensor):
        raise KitError(f"images must be a tensor [N, C, H, W] in [0, 1], got {type(images).__name__}")
    x = images.unsqueeze(0) if images.dim() == 3 else images
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(model.image_shape):
        raise KitError(f"images have shape {list(images.shape)}; this model needs [N, "
                       f"{', '.join(map(str, model.image_shape))}]")
    if x.numel() and (not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1):
        raise KitError("images must be finite and in [0, 1] (or uint8 0..255)")
    return x


def _decode(model, z: Tensor, c: Tensor) -> Tensor:
    return torch.sigmoid(model.decode(z.to(_device(model)), c.to(_device(model)))).cpu()


@torch.no_grad()
def generate_from_text(model, encoder, prompt: str, n: int = 16, seed: int = 0, bridge: str = "retrieval",
                       k: int = 64, z_noise: float | None = 0.5) -> Tensor:
    """``n`` images for ``prompt`` (text -> image); ``bridge`` crosses the modality gap (see clip.bridge).

    With the retrieval bridge each sample starts from the latent code of its retrieved neighbour plus
    ``z_noise`` * N(0, I) (``z_noise=None``: plain z ~ N(0, I)); other bridges always draw z ~ N(0, I).
    """
    _check_n(n)
    g = torch.Generator().manual_seed(seed)
    c, rows = text_conditions(model, encoder, prompt, n, bridge=bridge, k=k, generator=g, return_rows=True)
    eps = torch.randn(n, model.latent_dim, generator=g)
    if rows is not None and z_noise is not None and bool(getattr(model, "bank_z_is_set", False)):
        z = model.bank_z[rows].cpu() + float(z_noise) * eps
    else:
        z = eps
    return _decode(model, z, c)


@torch.no_grad()
def generate_from_images(model, encoder, images: Tensor, n_per_image: int = 1, seed: int = 0) -> Tensor:
    """New images conditioned on the CLIP embeddings of ``images`` (image -> image), ``n_per_image`` each,
    grouped by source image."""
    _check_n(n_per_image)
    x = _as_images(model, images)
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
    x = _as_images(model, images)
    c_img = encoder.encode_images(x).to(_device(model))
    c_txt = text_anchor(model, encoder, text, bridge, k).to(_device(model))
    z = model.encode(x.to(_device(model)), c_img)[0]
    c = F.normalize(image_embed_factor * c_img + (1 - image_embed_factor) * c_txt, dim=-1)
    return _decode(model, z, c)


def _endpoint(model, encoder, what: str | Tensor, bridge: str, k: int) -> tuple[Tensor, Tensor | None]:
    """(condition [D], latent code [latent] or None) for a prompt or one image."""
    if isinstance(what, str):
        return text_anchor(model, encoder, what, bridge, k), None
    x = _as_images(model, what)
    if len(x) != 1:
        raise KitError(f"interpolate takes one image per end, got {len(x)}")
    c = encoder.encode_images(x).to(_device(model))
    return c[0], model.encode(x.to(_device(model)), c)[0][0]


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between unit vectors ``a`` and ``b`` at fractions ``t`` ``[S]`` -> ``[S, D]``."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    omega = torch.arccos((a * b).sum().clamp(-1 + 1e-6, 1 - 1e-6))
    if float(omega) < 1e-4:
        return a.expand(len(t), -1).clone()
    t = t.to(a.device)[:, None]
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


@torch.no_grad()
def interpolate(model, encoder, start: str | Tensor, end: str | Tensor, steps: int = 8, seed: int = 0,
                bridge: str = "retrieval", k: int = 64) -> Tensor:
    """``steps`` images on the way from ``start`` to ``end`` (each a prompt or one image ``[C, H, W]``).

    Conditions follow the great circle between the two embeddings (slerp); z is one shared random code for
    prompts and the linear path between the two posterior means for images.
    """
    if steps < 2:
        raise KitError(f"steps must be >= 2, got {steps}")
    (ca, za), (cb, zb) = _endpoint(model, encoder, start, bridge, k), _endpoint(model, encoder, end, bridge, k)
    t = torch.linspace(0, 1, steps)
    c = slerp(ca, cb, t)
    shared = torch.randn(1, model.latent_dim, generator=torch.Generator().manual_seed(seed)).to(c.device)
    za = shared[0] if za is None else za
    zb = shared[0] if zb is None else zb
    z = za[None] * (1 - t.to(c.device)[:, None]) + zb[None] * t.to(c.device)[:, None]
    return _decode(model, z, c)


@torch.no_grad()
def reconstruct(model, encoder, images: Tensor, batch_size: int = 512) -> Tensor:
    """Reconstructions of ``images``, each conditioned on its own CLIP image embedding."""
    x = _as_images(model, images)
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        out.append(model.reconstruct(xb.to(_device(model)), encoder.encode_images(xb).to(_device(model))).cpu())
    return torch.cat(out) if out else x.clone()


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


__all__ = ["BRIDGES", "clip_for_dataset", "gap_texts", "generate_from_images", "generate_from_text",
           "image_embeddings", "interpolate", "load_clip_cvae", "manipulate", "prompt_accuracy", "reconstruct",
           "slerp", "train_clip_cvae"]

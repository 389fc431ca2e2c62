"""The ``clip`` kind: a condition is a CLIP embedding.  Images become one directly, text through a bridge.

Models of this kind (``clip-cvae``, ``resvae``) train on CLIP *image* embeddings, language-free.  This module owns:

* which CLIP a run uses (:func:`clip_for_run`: the kit's TinyCLIP, trained once and cached, or any
  :func:`cvaelib.clip.load_clip` name or file) and which one a trained model needs (:func:`clip_encoder_for`);
* image -> condition (:func:`with_clip_condition` for whole splits, cached);
* generation: ``--prompt`` (text -> image through a bridge, :mod:`cvaelib.conditioning.bridge`), ``--image-npy``
  (image -> image), both (manipulation by ``--factor``), ``--prompt A --to B`` (interpolation);
* reconstruction (each image conditioned on its own embedding) and what evaluation needs (test conditions, prompt
  images, CLIP embeddings for the CLIP score).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import KitError
from .base import Conditioning, Drawn, Prepared, Request

if TYPE_CHECKING:
    from ..clip import ClipEncoder
    from ..data import ImageData


def clip_spec(clip: str) -> str:
    """A CLIP name as a checkpoint stores it: files (``PATH``, ``tiny:PATH``) made absolute, names unchanged."""
    prefix, sep, rest = clip.partition(":")
    if sep and prefix == "tiny" and rest:
        return f"tiny:{Path(rest).resolve()}"
    return str(Path(clip).resolve()) if os.path.exists(clip) else clip


def clip_for_run(clip: str, dataset: str, out: str | os.PathLike | None = None, root: str | os.PathLike | None = None,
                 tiny_seconds: float = 150.0, seed: int = 0, device: str | torch.device | None = None,
                 progress: bool = True) -> "ClipEncoder":
    """The CLIP a run uses: ``"tiny"`` (loaded from ``out/tinyclip.pt``, else trained - cached in
    ``~/.cache/cvaelib`` - and copied there) or any :func:`cvaelib.clip.load_clip` name, file or ``tiny:FILE``."""
    from ..clip.tiny import TINY_FILE, get_tiny_clip, load_tiny_clip, save_tiny_clip

    if clip != "tiny":
        from ..clip import load_clip

        return load_clip(clip, device=device)
    from ..clip.captions import SYNONYMS

    if out is not None and (Path(out) / TINY_FILE).is_file():
        return load_tiny_clip(Path(out) / TINY_FILE, device)
    if dataset not in SYNONYMS:
        raise KitError(f"TinyCLIP has captions for {', '.join(SYNONYMS)} only; for {dataset} use --clip ViT-B/32, "
                       f"a CLIP file or tiny:FILE")
    enc = get_tiny_clip(dataset, root, seconds=tiny_seconds, seed=seed, device=device, progress=progress)
    if out is not None:
        save_tiny_clip(enc, Path(out) / TINY_FILE)
    return enc


def clip_encoder_for(model: Any, source: str | os.PathLike | None = None,
                     device: str | torch.device | None = None) -> "ClipEncoder":
    """The CLIP a trained model's conditions come from: its run folder's TinyCLIP (``clip="tiny"``) or the CLIP its
    config names; one-line error when it cannot be had or gives embeddings of another size."""
    name = model.config.get("clip")
    if not name:
        raise KitError(f"this {model.name} does not record which CLIP made its conditions; rebuild it with clip=NAME")
    if name == "tiny":
        from ..clip.tiny import TINY_FILE, load_tiny_clip

        tiny = Path(source) / TINY_FILE if source is not None else None
        if tiny is None or not tiny.is_file():
            raise KitError(f"{tiny or TINY_FILE} is missing: a {model.name} run folder keeps its TinyCLIP next to "
                           f"checkpoint.pt; copy the whole run folder (or train again)")
        encoder = load_tiny_clip(tiny, device)
    else:
        from ..clip import load_clip

        encoder = load_clip(name, device=device)
    if encoder.embed_dim != model.condition_dim:
        raise KitError(f"CLIP {encoder.name} gives {encoder.embed_dim}-d embeddings but the model was trained on "
                       f"{model.condition_dim}-d ones; use the CLIP it was trained with")
    return encoder


def with_clip_condition(data: "ImageData", encoder: "ClipEncoder", cache_path: str | os.PathLike | None = None,
                        batch_size: int = 256, verbose: bool = True) -> "ImageData":
    """``data`` conditioned on L2-normalised CLIP image embeddings ``[N, D]`` (float32): its ``conditions``.

    ``labels`` stay what the dataset says (CelebA's attributes, COCO's caption index, class ids).  With
    ``cache_path`` the embeddings are computed once and re-read on later runs (the cache checks model and images).
    """
    from ..clip import cached_image_embeddings
    from ..data.prepared import image_ids

    if cache_path is None:
        emb = encoder.encode_images(data.images, batch_size=batch_size)
    else:
        emb = cached_image_embeddings(encoder, data.images, cache_path, image_ids=image_ids(data),
                                      batch_size=batch_size, verbose=verbose)
    return data.with_conditions(emb.float().cpu(), clip_model=encoder.name)


def logit_scale(encoder: "ClipEncoder") -> float:
    """CLIP's learned inverse temperature (100 for OpenAI's CLIP; TinyCLIP learns its own)."""
    scale = getattr(getattr(encoder, "model", None), "logit_scale", None)
    return float(scale.exp()) if isinstance(scale, torch.Tensor) else 100.0


class ClipConditioning(Conditioning):
    """CLIP embeddings: ``--prompt``, ``--to``, ``--image-npy``, ``--factor``, ``--bridge``."""

    kind = "clip"
    generate_options = ("prompt", "to", "images", "factor", "bridge")

    def __init__(self, model: Any, source: str | os.PathLike | None = None, encoder: Any = None) -> None:
        super().__init__(model, source)
        self._encoder = encoder

    @property
    def encoder(self) -> "ClipEncoder":
        """The model's CLIP, loaded on first use (:func:`clip_encoder_for`)."""
        if self._encoder is None:
            self._encoder = clip_encoder_for(self.model, self.source, self.device)
        return self._encoder

    def unavailable(self) -> str | None:
        """None when the model's CLIP can be loaded, else why not (one line)."""
        try:
            self.encoder
        except KitError as exc:
            return str(exc)
        return None

    def reads_text(self) -> bool:
        return self.unavailable() is None

    def _generate(self, request: Request) -> Drawn:
        from ..clip_generate import generate_from_images, generate_from_text, interpolate, manipulate

        model, prompt, images, n = self.model, request.prompt, request.images, request.n
        bridge = request.bridge or "retrieval"
        if prompt is None and images is None:
            raise KitError(f"{self.what()}: pass --prompt TEXT (text -> image) or --image-npy FILE (image -> image)")
        if request.factor is not None and (images is None or prompt is None):
            raise KitError("--factor weighs a face's own embedding against --prompt: pass --image-npy and --prompt")
        if request.to is not None:
            if prompt is None or images is not None:
                raise KitError("--to needs a start and no images: --prompt A --to B interpolates between two prompts")
            out = interpolate(model, self.encoder, prompt, request.to, steps=max(2, n), seed=request.seed,
                              bridge=bridge)
            return Drawn(out, f"{prompt} -> {request.to}")
        if images is not None and prompt is not None:
            factor = 0.5 if request.factor is None else float(request.factor)
            out = manipulate(model, self.encoder, images, prompt, image_embed_factor=factor, bridge=bridge)
            return Drawn(torch.cat([images, out]), f"toward '{prompt}' (image factor {factor:g})",
                         ["input", "changed"], ncols=len(images), results=out)
        if images is not None:
            per = -(-n // len(images)) if len(images) else 1
            out = generate_from_images(model, self.encoder, images, n_per_image=per, seed=request.seed)[:n]
            return Drawn(out, "conditioned on the given images")
        return Drawn(generate_from_text(model, self.encoder, prompt, n, seed=request.seed, bridge=bridge), prompt)

    def reconstruction_conditions(self, images: Tensor, labels: Any,
                                  decode_labels: Any) -> tuple[Tensor | None, Tensor | None]:
        given = [name for name, v in (("labels", labels), ("decode_labels", decode_labels)) if v is not None]
        if given:
            raise KitError(f"{self.what()} conditions each image on its own CLIP image embedding: drop "
                           f"{'--labels' if labels is not None else '--decode-labels'}")
        return self.encoder.encode_images(images).float(), None

    def test_conditions(self, data: "ImageData") -> Tensor | None:
        if self.unavailable():
            return None
        return self.encoder.encode_images(data.float_images()).float().cpu()

    def prompt_images(self, prompt: str, n: int, seed: int = 0) -> Tensor | None:
        from ..clip_generate import generate_from_text

        return None if self.unavailable() else generate_from_text(self.model, self.encoder, prompt, n, seed=seed)

    def image_embeddings(self, images: Tensor) -> Tensor | None:
        return None if self.unavailable() else self.encoder.encode_images(images.float().cpu())

    def text_embeddings(self, texts: list[str]) -> Tensor | None:
        return None if self.unavailable() else self.encoder.encode_text(list(texts))

    def preview(self, val: "ImageData", seed: int = 0) -> Drawn:
        from ..clip.captions import SYNONYMS, example_prompts
        from ..clip_generate import generate_from_text

        dataset = val.name
        if dataset in SYNONYMS and not self.unavailable():  # one example prompt per class, one row each
            prompts = [texts[0] for texts in example_prompts(dataset).values()]
            rows = [generate_from_text(self.model, self.encoder, text, 8, seed=seed + i)
                    for i, text in enumerate(prompts)]
            return Drawn(torch.cat(rows), "rows: " + "; ".join(prompts), ncols=8)
        c = val.conditions[torch.arange(16) % len(val)].float()
        return Drawn(self.sample(16, c, seed), "samples, conditioned like validation images", ncols=8)

    @classmethod
    def prepare_training(cls, train: "ImageData", val: "ImageData", **options: Any) -> Prepared:
        from ..clip.captions import SYNONYMS

        clip = options.get("clip") or "ViT-B/32"
        out = options.get("out")
        encoder = clip_for_run(clip, train.name, out, options.get("data_root"),
                               options.get("tiny_seconds") or 150.0, options.get("seed", 0), options.get("device"),
                               options.get("progress", True))
        cache = None if clip == "tiny" or out is None else Path(out) / "clip_cache"
        verbose = options.get("progress", True)
        train = with_clip_condition(train, encoder, cache / "train" if cache else None, verbose=verbose)
        val = with_clip_condition(val, encoder, cache / "val" if cache else None, verbose=verbose)
        facts = {"condition_dim": int(encoder.embed_dim), "clip": "tiny" if clip == "tiny" else clip_spec(clip),
                 "num_refs": train.num_classes if train.name in SYNONYMS else 0}
        meta = {"clip": encoder.name, "clip_weights_id": encoder.weights_id}
        return Prepared(train, val, facts, encoder, meta)

    def setup_model(self, prepared: Prepared) -> None:
        """Captioned data (MNIST, Fashion-MNIST): the modality gap and one reference text per class."""
        from ..clip.captions import SYNONYMS

        name = prepared.train.name
        if name not in SYNONYMS:
            return
        from ..clip.tiny import class_text_embeddings
        from ..clip_generate import gap_texts

        self.model.set_gap(prepared.train.conditions, self.encoder.encode_text(gap_texts(name)))
        if self.model.has_references and self.model.ref_text.shape[0] == prepared.train.num_classes > 0:
            self.model.set_reference_texts(class_text_embeddings(self.encoder, name, heldout=False),
                                           logit_scale(self.encoder))


__all__ = ["ClipConditioning", "clip_encoder_for", "clip_for_run", "clip_spec", "logit_scale",
           "with_clip_condition"]

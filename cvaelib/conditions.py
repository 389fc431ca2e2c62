"""Turn a prepared CelebA / COCO folder into training data with the condition a model needs.

The same images can be conditioned three ways (see ARCHITECTURE: one model family, three condition kinds):

* nothing (an unconditional VAE);
* CelebA's 40 attributes (already the ``labels`` of a prepared CelebA split);
* CLIP image embeddings (computed once and cached next to the run, :func:`cvaelib.clip.cached_image_embeddings`).

:func:`with_clip_condition` swaps an :class:`ImageData`'s labels for CLIP embeddings and keeps what they replaced in
``meta`` (``meta["attributes"]`` for CelebA; COCO's captions stay in ``meta["captions"]``), so ``TensorBatches`` and
:func:`cvaelib.train.fit` feed the embeddings as the condition without knowing where they came from.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .data import ImageData
from .errors import DataError

PREPARED_DATASETS = ("celeba", "coco")


def parse_prepared(spec: str) -> tuple[str, Path] | None:
    """``"celeba:prepared/celeba"`` -> ``("celeba", Path(...))``; None for a registry name such as ``"mnist"``."""
    name, sep, folder = spec.partition(":")
    if not sep:
        return None
    name = name.strip().lower()
    if name not in PREPARED_DATASETS:
        raise DataError(f"unknown prepared dataset {name!r} in {spec!r}; use celeba:FOLDER or coco:FOLDER "
                        f"(a folder written by python -m data_prep.{name if name else 'celeba'})")
    if not folder:
        raise DataError(f"{spec!r} names no folder; use {name}:FOLDER (the --out of python -m data_prep.{name})")
    return name, Path(folder)


def load_prepared_split(spec: str, split: str = "train", size: int = 64, limit: int | None = None) -> ImageData:
    """Load one split of a prepared folder given as ``celeba:FOLDER`` / ``coco:FOLDER``."""
    from .data.shards import load_prepared

    parsed = parse_prepared(spec)
    if parsed is None:
        raise DataError(f"{spec!r} is not a prepared dataset; use celeba:FOLDER or coco:FOLDER")
    return load_prepared(parsed[1], split, size=size, limit=limit)


def image_ids(data: ImageData) -> list[str]:
    """Stable ids of the items (file names of a prepared split, else the item index)."""
    names = data.meta.get("file_names") or []
    if len(names) == len(data) and all(names):
        return [f"{data.meta.get('split', '')}/{n}" for n in names]
    return [str(i) for i in range(len(data))]


def with_clip_condition(data: ImageData, encoder, cache_path: str | os.PathLike | None = None,
                        batch_size: int = 256, verbose: bool = True) -> ImageData:
    """``data`` with ``labels`` replaced by L2-normalised CLIP image embeddings ``[N, D]`` (float32).

    The old labels move to ``meta["attributes"]`` when they were CelebA's multi-hot vectors.  With ``cache_path``
    the embeddings are computed once and re-read on later runs (the cache checks model and images).
    """
    from .clip import cached_image_embeddings

    if cache_path is None:
        emb = encoder.encode_images(data.images, batch_size=batch_size)
    else:
        emb = cached_image_embeddings(encoder, data.images, cache_path, image_ids=image_ids(data),
                                      batch_size=batch_size, verbose=verbose)
    meta = dict(data.meta)
    if data.labels.is_floating_point() and data.labels.ndim == 2:
        meta["attributes"] = data.labels
        meta.setdefault("attribute_names", list(data.class_names))
    meta["clip_model"] = getattr(encoder, "name", "clip")
    return ImageData(data.images, emb.float().cpu(), [], data.name, meta)


def condition_rows(data: ImageData, n: int) -> torch.Tensor:
    """The first ``n`` conditions of ``data`` (to draw samples "like" real items), cycled if ``n > len(data)``."""
    if len(data) == 0:
        raise DataError("the dataset is empty; there are no conditions to sample with")
    idx = torch.arange(n) % len(data)
    return data.labels[idx]

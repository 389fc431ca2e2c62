"""Embedding cache: CLIP image embeddings computed once, stored as ``.npy`` + ``.json``, and never reused stale.

The kit's sources kept embeddings in a CSV file that said nothing about which model, preprocessing or images made
it, so a cache from another model or image set loaded silently.  Here the ``.json`` next to the ``.npy`` records

* the encoder (``name``, ``weights_id`` when the weights came from a file, ``embed_dim``),
* its preprocessing (resolution, resize mode, interpolation, mean/std),
* the images: sha256 of the image ids when given, else of the image bytes (plus shape and dtype),

and any difference triggers a rebuild with a printed note.  Files are written to temporaries and renamed; the
``.json`` is removed first and written last, so an interrupted write can only leave a cache that rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import KitError
from .encoder import ClipEncoder

CACHE_FORMAT = 1


def cache_files(cache_path: str | os.PathLike) -> tuple[Path, Path]:
    """``(embeddings.npy, metadata.json)`` for ``cache_path`` (with or without the ``.npy`` suffix)."""
    p = Path(cache_path)
    if p.suffix in (".npy", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".npy"), p.with_name(p.name + ".json")


def _ids_digest(image_ids: Sequence[str]) -> str:
    h = hashlib.sha256()
    for i in image_ids:
        h.update(str(i).encode("utf-8"))
        h.update(b"\0")  # separator: ["ab", "c"] and ["a", "bc"] differ
    return h.hexdigest()


def images_digest(images: torch.Tensor) -> str:
    """sha256 of the images' bytes, shape and dtype (the same pixels give the same digest on any device)."""
    t = images.detach().cpu().contiguous()
    h = hashlib.sha256(f"{tuple(t.shape)}|{t.dtype}".encode())
    h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def cache_metadata(encoder: ClipEncoder, n: int, images: torch.Tensor | None,
                   image_ids: Sequence[str] | None) -> dict[str, Any]:
    """The metadata a cache must match to be reused."""
    if image_ids is not None:
        source = {"images_key": "ids", "images_sha256": _ids_digest(image_ids)}
    elif images is not None:
        source = {"images_key": "bytes", "images_sha256": images_digest(images)}
    else:
        raise KitError("cached_image_embeddings needs images or image_ids")
    return {"format": CACHE_FORMAT, "model": encoder.name, "weights_id": getattr(encoder, "weights_id", None),
            "embed_dim": int(encoder.embed_dim), "preprocessing": encoder.preprocessing, "count": int(n),
            "normalised": True, "dtype": "float32", **source}


def _why_stale(stored: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    for key in ("format", "model", "weights_id", "embed_dim", "preprocessing", "count", "images_key",
                "images_sha256", "normalised", "dtype"):
        if stored.get(key) != wanted.get(key):
            a, b = stored.get(key), wanted.get(key)
            if key == "images_sha256":
                return "the images changed"
            return f"{key} changed: {a!r} -> {b!r}"
    return None


def read_cache(cache_path: str | os.PathLike, wanted: dict[str, Any]) -> tuple[torch.Tensor | None, str]:
    """``(embeddings, "")`` when a valid cache matches ``wanted``, else ``(None, reason)``."""
    npy, meta = cache_files(cache_path)
    if not npy.exists() and not meta.exists():
        return None, "no cache yet"
    try:
        stored = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None, f"{meta.name} is missing or unreadable"
    reason = _why_stale(stored, wanted)
    if reason:
        return None, reason
    try:
        arr = np.load(npy, allow_pickle=False)
    except (OSError, ValueError):
        return None, f"{npy.name} is missing or unreadable"
    if arr.shape != (wanted["count"], wanted["embed_dim"]) or arr.dtype != np.float32:
        return None, (f"{npy.name} has shape {arr.shape} {arr.dtype}, "
                      f"expected ({wanted['count']}, {wanted['embed_dim']}) float32")
    return torch.from_numpy(arr), ""


def write_cache(cache_path: str | os.PathLike, embeddings: torch.Tensor, metadata: dict[str, Any]) -> None:
    """Write ``.npy`` then ``.json`` atomically (the ``.json`` is the commit marker)."""
    npy, meta = cache_files(cache_path)
    npy.parent.mkdir(parents=True, exist_ok=True)
    meta.unlink(missing_ok=True)  # from here until the end the cache reads as invalid
    tmp_npy = npy.with_name(npy.name + ".tmp.npy")
    with open(tmp_npy, "wb") as f:
        np.save(f, embeddings.detach().cpu().float().numpy().astype(np.float32, copy=False))
    os.replace(tmp_npy, npy)
    tmp_meta = meta.with_name(meta.name + ".tmp")
    tmp_meta.write_text(json.dumps(metadata, indent=1, sort_keys=True))
    os.replace(tmp_meta, meta)


def cached_image_embeddings(encoder: ClipEncoder, images: torch.Tensor | None, cache_path: str | os.PathLike,
                            image_ids: Sequence[str] | None = None, batch_size: int = 256,
                            verbose: bool = True) -> torch.Tensor:
    """CLIP embeddings of ``images`` (``FloatTensor[N, D]``, L2-normalised), read from ``cache_path`` when valid.

    ``image_ids`` (one string per image, e.g. file names or dataset indices) identify the images cheaply; without
    them the image bytes are hashed.  With ``image_ids`` a valid cache is returned even for ``images=None``, so a
    notebook need not load the pixels again.  A cache made by another model, weights file, preprocessing or image
    set is rebuilt (and a note printed), never reused.
    """
    if not isinstance(encoder, ClipEncoder):
        raise KitError(f"encoder must be a ClipEncoder (from load_clip), got {type(encoder).__name__}")
    if image_ids is not None:
        image_ids = [str(i) for i in image_ids]
        if images is not None and len(image_ids) != len(images):
            raise KitError(f"image_ids has {len(image_ids)} entries but there are {len(images)} images; "
                           "give one id per image")
        n = len(image_ids)
    elif images is None:
        raise KitError("cached_image_embeddings needs images (or image_ids to look up an existing cache)")
    else:
        n = len(images)
    wanted = cache_metadata(encoder, n, images, image_ids)
    cached, reason = read_cache(cache_path, wanted)
    if cached is not None:
        return cached
    npy, _ = cache_files(cache_path)
    if images is None:
        raise KitError(f"no valid embedding cache at {npy} ({reason}); pass the images so it can be built")
    if verbose and reason != "no cache yet":
        print(f"note: CLIP embedding cache {npy} is stale ({reason}); rebuilding it")
    embeddings = encoder.encode_images(images, batch_size=batch_size)
    write_cache(cache_path, embeddings, wanted)
    return embeddings

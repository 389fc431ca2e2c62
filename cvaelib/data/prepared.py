"""Prepared folders named on the command line: ``celeba:FOLDER`` / ``coco:FOLDER`` (written by ``data_prep``).

``train`` stores the spec it trained on in the checkpoint (with the folder made absolute), so ``evaluate`` and
``generate`` find the same data later from any working directory.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .datasets import ImageData

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


def absolute_spec(spec: str) -> str:
    """``celeba:rel/dir`` -> ``celeba:/abs/rel/dir`` (registry names are returned unchanged)."""
    parsed = parse_prepared(spec)
    return spec if parsed is None else f"{parsed[0]}:{parsed[1].resolve()}"


def load_prepared_split(spec: str, split: str = "train", size: int = 64, limit: int | None = None) -> ImageData:
    """Load one split of a prepared folder given as ``celeba:FOLDER`` / ``coco:FOLDER``."""
    from .shards import load_prepared

    parsed = parse_prepared(spec)
    if parsed is None:
        raise DataError(f"{spec!r} is not a prepared dataset; use celeba:FOLDER or coco:FOLDER")
    return load_prepared(parsed[1], split, size=size, limit=limit)


def heldout_split(folder: str | Path) -> str:
    """The split of a prepared folder to evaluate on: ``test``, else ``val``."""
    from .shards import prepared_splits

    splits = prepared_splits(folder)
    split = next((s for s in ("test", "val", "valid") if s in splits), None)
    if split is None:
        raise DataError(f"{folder} has no held-out split (have {', '.join(splits) or 'none'}); evaluate needs "
                        f"test or val: re-run the prep with it")
    return split


def image_ids(data: ImageData) -> list[str]:
    """Stable ids of the items (file names of a prepared split, else the item index)."""
    names = data.meta.get("file_names") or []
    if len(names) == len(data) and all(names):
        return [f"{data.meta.get('split', '')}/{n}" for n in names]
    return [str(i) for i in range(len(data))]


__all__ = ["PREPARED_DATASETS", "absolute_spec", "heldout_split", "image_ids", "load_prepared_split",
           "parse_prepared"]

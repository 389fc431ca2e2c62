"""Files the run functions read and write: JSON metrics, ``.npy`` arrays and PNG grids, all written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from ..errors import KitError

#: the most images a grid shows (16 x 16); ``generate --n`` beyond it needs ``--npy`` for the rest
GRID_CAP = 256


def write_json(path: str | os.PathLike, obj: dict[str, Any]) -> None:
    """``obj`` as indented JSON at ``path`` (written to a temporary name, then renamed)."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    tmp.replace(path)


def read_npy(path: str | os.PathLike, what: str) -> np.ndarray:
    """A ``.npy`` array (never pickled objects), or a one-line error naming the option ``what``."""
    p = Path(path)
    if not p.is_file():
        raise KitError(f"{what} file {p} does not exist")
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise KitError(f"{p} is not a readable .npy array ({exc}); save it with numpy.save") from None


def save_npy(path: str | os.PathLike, array: np.ndarray | Tensor) -> None:
    """``array`` as float32 ``.npy`` at ``path`` (folders created; written to a temporary name, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = array.detach().cpu().numpy() if isinstance(array, Tensor) else np.asarray(array)
    tmp = path.with_name(path.name + ".tmp.npy")
    with open(tmp, "wb") as fh:
        np.save(fh, arr.astype(np.float32, copy=False))
    tmp.replace(path)


def save_image_grid(path: str | os.PathLike, images: Tensor, title: str = "", row_labels: list[str] | None = None,
                    ncols: int | None = None) -> None:
    """A PNG grid of (at most :data:`GRID_CAP`) images ``[N, C, H, W]`` in [0, 1]."""
    from ..viz import save_grid, show_grid

    images = images[:GRID_CAP]
    if ncols is not None and ncols > 16:  # a row per class would be too wide: plain rows of 16, unlabelled
        ncols, row_labels = 16, None
    ncols = ncols or min(len(images), 8 if len(images) <= 64 else 16)
    rows = -(-len(images) // ncols)
    save_grid(show_grid(images, ncols=ncols, row_labels=(row_labels or [])[:rows] or None, title=title or None),
              path)


def check_output_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a file to write (its folder created), or a one-line error when it is a folder."""
    p = Path(path)
    if p.is_dir():
        raise KitError(f"{what} {p} is a folder; give a file name such as {p / 'out'}")
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


__all__ = ["GRID_CAP", "check_output_file", "read_npy", "save_image_grid", "save_npy", "write_json"]

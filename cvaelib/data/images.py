"""Images handed to the kit from outside (a ``.npy`` file, a tensor from a notebook) checked in one place.

Everywhere images cross into a model they are float ``[N, C, H, W]`` in [0, 1]; :func:`as_images` turns what a user
may reasonably pass into that, or raises one line saying what was wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import KitError


def as_images(x: Any, image_shape: Sequence[int], what: str = "images") -> Tensor:
    """``x`` as float32 ``[N, C, H, W]`` in [0, 1] (CPU) for a model that makes ``image_shape`` images.

    Accepts a tensor or NumPy array, float in [0, 1] or uint8 0..255, a batch ``[N, C, H, W]``, one image
    ``[C, H, W]`` or a batch of grey images ``[N, H, W]``.

    Raises:
        KitError: another shape, non-finite values or values outside [0, 1] (``what`` names the input).
    """
    shape = tuple(int(s) for s in image_shape)
    if isinstance(x, np.ndarray):
        if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
            raise KitError(f"{what} must be numbers, got an array of {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, Tensor):
        raise KitError(f"{what} must be a tensor or array [N, {', '.join(map(str, shape))}] in [0, 1], "
                       f"got {type(x).__name__}")
    if x.dim() == 3 and tuple(x.shape) == shape:
        x = x[None]  # one image
    elif x.dim() == 3 and shape[0] == 1 and tuple(x.shape[1:]) == shape[1:]:
        x = x[:, None]  # grey images without their channel axis
    if x.dim() != 4 or tuple(x.shape[1:]) != shape:
        raise KitError(f"{what} has shape {list(x.shape)}, this model needs [N, {', '.join(map(str, shape))}]")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.detach().float().cpu()
    if x.numel() and (not torch.isfinite(x).all() or float(x.min()) < 0 or float(x.max()) > 1):
        raise KitError(f"{what} values must be finite and in [0, 1] (or uint8 0..255)")
    return x.cpu()


__all__ = ["as_images"]

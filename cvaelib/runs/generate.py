"""``generate`` and ``reconstruct``: a checkpoint, user input, and the model's conditioning in between.

Neither looks at the model's name: the checkpoint's model says its condition kind, and its
:mod:`cvaelib.conditioning` turns ``--label`` / ``--prompt`` / ``--attributes`` / ``--image-npy`` / ``--labels``
into conditions, or refuses options that do not apply with one line naming those that do.
"""

from __future__ import annotations

import math
import os
from typing import Any

from ..errors import KitError
from .outputs import GRID_CAP, check_output_file, read_npy, save_image_grid, save_npy

#: the most memory one ``generate`` call may fill with images
MAX_BYTES = 4 << 30


def _load(checkpoint: str | os.PathLike, device: str | None):
    from ..checkpoint import load_model, resolve_checkpoint
    from ..conditioning import conditioning_for
    from ..device import pick_device

    model = load_model(checkpoint, device=pick_device(device))
    return model, conditioning_for(model, source=resolve_checkpoint(checkpoint).parent)


def generate_run(checkpoint: str | os.PathLike, out: str | os.PathLike, *, n: int = 16, seed: int = 0,
                 npy: str | os.PathLike | None = None, device: str | None = None, label: str | None = None,
                 prompt: str | None = None, to: str | None = None, attributes: str | None = None,
                 image_npy: str | os.PathLike | None = None, factor: float | None = None,
                 bridge: str | None = None) -> dict[str, Any]:
    """Draw images from a trained model: a PNG grid at ``out`` (the first :data:`GRID_CAP`), all of them as float32
    ``[N, C, H, W]`` in [0, 1] at ``npy``.  Returns ``{"images", "out", "npy", "title", "rows"}`` (``rows``: what
    each row of the grid shows, e.g. the classes a prompt named, or None)."""
    from ..conditioning import Request
    from ..data.images import as_images

    if n < 1:
        raise KitError(f"--n must be a positive number of images, got {n}")
    if n > GRID_CAP and npy is None:
        raise KitError(f"--n {n} is more than a grid shows ({GRID_CAP}); pass --npy FILE to keep all {n} images "
                       f"(the grid shows the first {GRID_CAP}), or ask for --n {GRID_CAP} or fewer")
    out = check_output_file(out, "--out")
    if npy is not None:
        npy = check_output_file(npy, "--npy")
    images = read_npy(image_npy, "--image-npy") if image_npy is not None else None
    model, cond = _load(checkpoint, device)
    need = n * math.prod(model.image_shape) * 4
    if need > MAX_BYTES:
        raise KitError(f"--n {n} images of {'x'.join(map(str, model.image_shape))} need {need / 2**30:.1f} GB; "
                       f"ask for at most {MAX_BYTES // (math.prod(model.image_shape) * 4)} per call")
    if images is not None:
        images = as_images(images, model.image_shape, "--image-npy")
    drawn = cond.generate(Request(n=n, seed=seed, label=label, prompt=prompt, to=to, attributes=attributes,
                                  images=images, factor=factor, bridge=bridge))
    save_image_grid(out, drawn.images, drawn.title, drawn.row_labels, drawn.ncols)
    if npy is not None:
        save_npy(npy, drawn.results)
    return {"images": len(drawn.results), "out": str(out), "npy": None if npy is None else str(npy),
            "title": drawn.title, "rows": drawn.row_labels}


def reconstruct_run(checkpoint: str | os.PathLike, npy_in: str | os.PathLike, npy_out: str | os.PathLike, *,
                    labels: str | os.PathLike | None = None, decode_labels: str | os.PathLike | None = None,
                    device: str | None = None) -> dict[str, Any]:
    """Reconstruct the images of ``npy_in`` (float in [0, 1] or uint8), each encoded with its condition from
    ``labels`` where the model needs one and decoded with ``decode_labels`` when given (a label swap); writes
    float32 ``[N, C, H, W]`` to ``npy_out``.  Returns ``{"images", "npy_out"}``."""
    from ..data.images import as_images

    x = read_npy(npy_in, "--npy-in")
    lab = read_npy(labels, "--labels") if labels is not None else None
    swap = read_npy(decode_labels, "--decode-labels") if decode_labels is not None else None
    npy_out = check_output_file(npy_out, "--npy-out")
    model, cond = _load(checkpoint, device)
    recon = cond.reconstruct(as_images(x, model.image_shape, "--npy-in"), lab, swap)
    save_npy(npy_out, recon)
    return {"images": len(recon), "npy_out": str(npy_out)}


__all__ = ["MAX_BYTES", "generate_run", "reconstruct_run"]

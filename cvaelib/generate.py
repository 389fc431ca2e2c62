"""Generation entry points shared by widgets and notebooks: labels in, images in [0, 1] out.

For every condition kind (attributes, CLIP prompts, ...) see :mod:`cvaelib.conditioning`; these two cover the
unconditional and class-conditional models of the first lessons.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .conditioning import conditioning_for, resolve_label
from .errors import KitError


@torch.no_grad()
def generate_images(model, n: int, label: int | None = None, seed: int = 0) -> Tensor:
    """``n`` samples (float ``[n, C, H, W]`` in [0, 1], on CPU) of class ``label`` (None for unconditional)."""
    if n < 1:
        raise KitError(f"--n must be a positive number of images, got {n}")
    if model.condition not in (None, "label"):
        raise KitError(f"this {model.name} model is conditioned on {model.condition}, not on classes: use "
                       f"cvaelib.conditioning.conditioning_for(model).generate(...)")
    if model.condition == "label" and label is None:
        raise KitError("this model is class-conditional: pass --label (an id or a class name)")
    if model.condition is None and label is not None:
        raise KitError(f"this {model.name} model is unconditional: omit --label")
    c = None if label is None else torch.full((n,), int(label), dtype=torch.long)
    return conditioning_for(model).sample(n, c, seed)


@torch.no_grad()
def reconstruct_images(model, images: Tensor, labels: Tensor | None = None, decode_labels: Tensor | None = None,
                       batch_size: int = 512) -> Tensor:
    """Reconstructions (posterior mean decoded) of ``images`` in [0, 1], batched, on CPU.

    ``labels``: the images' conditions where the model needs them (class ids, attribute vectors);
    ``decode_labels``: other conditions to decode the codes with (a label swap).
    """
    return conditioning_for(model).reconstruct(images.float(), labels, decode_labels, batch_size)


__all__ = ["generate_images", "reconstruct_images", "resolve_label"]

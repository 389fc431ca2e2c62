"""The condition kinds a model can have, and the one check every condition passes before a network sees it.

=============  =====================================  ==========================================================
kind           a condition is                         user input that becomes one (:mod:`cvaelib.conditioning`)
=============  =====================================  ==========================================================
None           nothing (an unconditional model)       -
``label``      class ids, int64 ``[N]``               class ids and names ("7", "sneaker"), prompts naming classes
``attributes`` multi-hot vectors, float ``[N, D]``    attribute lists ("Smiling,-Male"), prompts ("a smiling woman")
``clip``       CLIP embeddings, float ``[N, D]``      any text (through a bridge), images (their own embedding)
=============  =====================================  ==========================================================

This module only validates; it imports nothing heavy, so :mod:`cvaelib.models` can use it.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..errors import KitError

KINDS = (None, "label", "attributes", "clip")
#: what each kind is called in messages
DESCRIPTIONS = {None: "unconditional", "label": "class-conditional", "attributes": "conditioned on attribute vectors",
                "clip": "conditioned on CLIP embeddings"}


def describe(kind: str | None) -> str:
    """``"class-conditional"``, ``"unconditional"``, ... for messages."""
    return DESCRIPTIONS.get(kind, f"conditioned on {kind}")


def check_condition(model: Any, c: Tensor | None, n: int | None = None) -> None:
    """Raise a one-line :class:`KitError` unless ``c`` is a condition ``model`` can use for ``n`` items."""
    kind, name = model.condition, model.name
    if kind is None:
        if c is not None:
            raise KitError(f"{name} is unconditional: call it without a label/condition")
        return
    if c is None:
        what = {"label": "class ids", "attributes": "attribute vectors", "clip": "CLIP embeddings"}.get(kind, kind)
        raise KitError(f"{name} needs a condition ({what}); pass one per image")
    if n is not None and (c.dim() == 0 or c.shape[0] != n):
        what = "classes" if kind == "label" else "conditions"
        raise KitError(f"got {c.numel() if c.dim() < 2 else c.shape[0]} {what} for {n} images; pass one per image")
    if kind == "label":
        if c.dim() != 1 or c.is_floating_point() or c.is_complex():
            raise KitError(f"{name} is class-conditional: pass class ids (int64 [N]), got {str(c.dtype)[6:]} "
                           f"{list(c.shape)}")
        k = model.num_classes
        # the range needs a reduction (a device sync on a GPU): checked where users call in, not every training step
        if k and len(c) and not model.training and (int(c.min()) < 0 or int(c.max()) >= k):
            raise KitError(f"class ids must be in 0..{k - 1}, got {int(c.min())}..{int(c.max())}")
        return
    d = model.condition_dim
    if c.dim() != 2 or (d and c.shape[1] != d):
        what = "attribute vectors" if kind == "attributes" else "CLIP embeddings"
        hint = (f"use the CLIP this model was trained with ({model.config.get('clip')})" if kind == "clip"
                else "one entry per attribute the model was trained with")
        raise KitError(f"{name} needs {what} of shape [N, {d}], got {list(c.shape)}; {hint}")


__all__ = ["KINDS", "check_condition", "describe"]

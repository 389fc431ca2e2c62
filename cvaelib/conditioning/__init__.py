"""Conditioning: what a model's condition is, and everything that turns user input into one.

>>> from cvaelib.conditioning import conditioning_for, Request
>>> cond = conditioning_for(model, source="runs/faces")          # by the model's condition kind, never its name
>>> drawn = cond.generate(Request(n=8, attributes="Smiling,-Male"))
>>> drawn.images.shape                                           # [8, 3, 64, 64] in [0, 1]

=============  ==========================  =================================================================
kind           class                        input it understands
=============  ==========================  =================================================================
None           :class:`Conditioning`        nothing
``label``      :class:`LabelConditioning`   class ids and names, prompts naming classes, label arrays
``attributes`` :class:`AttributeConditioning` attribute lists, prompts naming attributes, attribute arrays, faces
``clip``       :class:`ClipConditioning`    any text (bridged), images, text + image mixes, paths between texts
=============  ==========================  =================================================================

A new kind is one subclass of :class:`Conditioning` and its line in :data:`CONDITIONINGS`.
"""

from __future__ import annotations

import os
from typing import Any

from .attributes import (CELEBA_ATTRIBUTES, AttributeConditioning, attribute_index, attributes_from_prompt,
                         parse_attributes)
from .base import Conditioning, Drawn, Prepared, Request
from .clip import ClipConditioning, clip_encoder_for, clip_for_run, with_clip_condition
from .kinds import KINDS, check_condition, describe
from .labels import LabelConditioning, model_class_names, resolve_label

#: condition kind -> the conditioning that owns it
CONDITIONINGS: dict[str | None, type[Conditioning]] = {
    None: Conditioning, "label": LabelConditioning, "attributes": AttributeConditioning, "clip": ClipConditioning}


def conditioning_class(kind: str | None) -> type[Conditioning]:
    """The :class:`Conditioning` subclass of a condition kind."""
    if kind not in CONDITIONINGS:
        raise KeyError(f"no conditioning for condition kind {kind!r}; add it to CONDITIONINGS")
    return CONDITIONINGS[kind]


def conditioning_for(model: Any, source: str | os.PathLike | None = None, **kwargs: Any) -> Conditioning:
    """The conditioning of ``model`` (chosen by ``model.condition``); ``source``: the run folder it came from."""
    return conditioning_class(model.condition)(model, source, **kwargs)


__all__ = ["CELEBA_ATTRIBUTES", "CONDITIONINGS", "KINDS", "AttributeConditioning", "ClipConditioning", "Conditioning",
           "Drawn", "LabelConditioning", "Prepared", "Request", "attribute_index", "attributes_from_prompt",
           "check_condition", "clip_encoder_for", "clip_for_run", "conditioning_class", "conditioning_for",
           "describe", "model_class_names", "parse_attributes", "resolve_label", "with_clip_condition"]

"""The ``label`` kind: a condition is a class id.  Class names, their synonyms and prompts naming classes become ids.

* ``generate --label 7`` / ``--label sneaker`` (ids, names, plurals, parts of ``"T-shirt/top"``; a near miss gets
  "did you mean 'Sneaker'?"), ``generate --prompt "two sneakers and a bag"`` (every class the prompt names,
  :mod:`cvaelib.prompts`);
* ``reconstruct --labels y.npy [--decode-labels y2.npy]`` (class ids; decoding with other classes is a label swap);
* the test split's conditions are its labels; ``samples.png`` has one row per class.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError, KitError, PromptError
from .base import Conditioning, Drawn, Prepared, Request, label_array

if TYPE_CHECKING:
    from ..data import ImageData


def normalise_name(name: str) -> str:
    """Lower case, every run of non-alphanumerics becomes one space ("T-Shirt!" -> "t shirt")."""
    return re.sub(r"[^a-z0-9]+", " ", str(name).lower()).strip()


def resolve_label(label: str | int, class_names: Sequence[str]) -> int:
    """A class id from ``7``, ``"7"``, ``"sneaker"``, ``"Sneakers"``, ``"t-shirt"`` or ``"ankle boot"``.

    Raises:
        PromptError: the id is out of range or the name is unknown (the message lists the classes).
    """
    known = ", ".join(f"{i}={n}" for i, n in enumerate(class_names))
    text = str(label).strip()
    if re.fullmatch(r"-?\d+", text):
        k = int(text)
        if 0 <= k < len(class_names):
            return k
        raise PromptError(f"label {k} is out of range; this model knows {len(class_names)} classes: {known}")
    want = normalise_name(text)
    normed = [normalise_name(n) for n in class_names]
    for i, name in enumerate(class_names):
        parts = {normed[i], *(normalise_name(p) for p in name.split("/"))}
        if want in parts or want.rstrip("s") in parts:
            return i
    close = difflib.get_close_matches(want, normed, n=1, cutoff=0.6)
    hint = f"did you mean {class_names[normed.index(close[0])]!r}? " if close else ""
    raise PromptError(f"unknown class {text!r}; {hint}known classes: {known}")


def model_class_names(model: Any) -> list[str]:
    """Class names stored with a trained model (checkpoint meta, else its dataset's, else ``"0".."K-1"``)."""
    from ..data.datasets import DATASETS, class_names

    meta = model.checkpoint_meta
    if meta.get("class_names"):
        return [str(n) for n in meta["class_names"]]
    if meta.get("dataset") in DATASETS:
        return class_names(meta["dataset"])
    return [str(i) for i in range(model.num_classes)]


class LabelConditioning(Conditioning):
    """Class ids: ``--label``, ``--prompt`` naming classes, ``--labels`` / ``--decode-labels`` arrays."""

    kind = "label"
    generate_options = ("label", "prompt")
    labels_help = "int64 class ids [N]"

    def __init__(self, model: Any, source: Any = None, class_names: Sequence[str] | None = None) -> None:
        """``class_names``: what the classes are called (default: stored with the model, :func:`model_class_names`)."""
        super().__init__(model, source)
        self._names = list(class_names) if class_names is not None else None

    @property
    def class_names(self) -> list[str]:
        return self._names if self._names is not None else model_class_names(self.model)

    def class_id(self, label: str | int) -> int:
        """A class id from an id or a class name (see :func:`resolve_label`)."""
        return resolve_label(label, self.class_names)

    def class_ids(self, values: Any, n: int, what: str = "--labels") -> Tensor:
        """``values`` as int64 class ids ``[n]`` in range, or a one-line error naming ``what``."""
        arr = label_array(values, n, what)
        if arr.ndim != 1:
            raise KitError(f"{what} has shape {list(arr.shape)}, expected [{n}] (one class id per image)")
        if not np.array_equal(arr, np.round(arr)):
            raise KitError(f"{what} must be whole class ids, got fractions")
        k = self.model.num_classes
        if len(arr) and (arr.min() < 0 or arr.max() >= k):
            raise KitError(f"{what} must be class ids in 0..{k - 1}")
        return torch.from_numpy(arr.astype(np.int64))

    def _generate(self, request: Request) -> Drawn:
        names = self.class_names
        if request.label is not None and request.prompt is not None:
            raise KitError("give either --label or --prompt, not both")
        if request.prompt is not None:
            from ..prompts import samples_for_prompt

            images, ids = samples_for_prompt(self.model, request.prompt, request.n, request.seed, names)
            return Drawn(images, request.prompt, [names[k] for k in ids], ncols=request.n)
        if request.label is None:
            raise KitError(f"{self.what()}: pass --label (an id or a class name) or --prompt TEXT")
        k = self.class_id(request.label)
        images = self.sample(request.n, torch.full((request.n,), k), request.seed)
        return Drawn(images, f"{names[k]} (class {k})")

    def reconstruction_conditions(self, images: Tensor, labels: Any,
                                  decode_labels: Any) -> tuple[Tensor | None, Tensor | None]:
        needs = self.model.reconstruction_needs_condition
        if decode_labels is not None and not needs:
            raise KitError(f"{self.what()} decodes without its class (only its prior is class-conditional): "
                           f"--decode-labels does not apply")
        if labels is None:
            if needs:
                what = "decode with --decode-labels" if decode_labels is not None else "reconstruct"
                raise KitError(f"{self.what()}: to {what}, pass --labels L.npy (int64, one class id per image)")
            return None, None
        c = self.class_ids(labels, len(images), "--labels")
        if not needs:
            return None, None
        c2 = None if decode_labels is None else self.class_ids(decode_labels, len(images), "--decode-labels")
        return c, c2

    def test_conditions(self, data: "ImageData") -> Tensor | None:
        labels = data.labels
        return labels.long() if labels.dim() == 1 and not labels.is_floating_point() else None

    def preview(self, val: "ImageData", seed: int = 0) -> Drawn:
        k = self.model.num_classes
        c = torch.arange(k).repeat_interleave(8)
        return Drawn(self.sample(len(c), c, seed), "", self.class_names[:k], ncols=8)

    @classmethod
    def prepare_training(cls, train: "ImageData", val: "ImageData", **options: Any) -> Prepared:
        labels = train.conditions
        if labels.dim() != 1 or labels.is_floating_point() or not train.class_names:
            what = "attribute vectors" if labels.dim() == 2 else "no class labels"
            raise DataError(f"a class-conditional model needs class labels; {train.name or 'this data'} has {what} "
                            f"(attr-cvae takes attributes, resvae and clip-cvae CLIP embeddings)")
        return Prepared(train, val, {"num_classes": len(train.class_names)})


__all__ = ["LabelConditioning", "model_class_names", "normalise_name", "resolve_label"]

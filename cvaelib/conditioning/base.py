"""The conditioning contract: what a model's condition is, and every way user input becomes one.

One :class:`Conditioning` subclass per condition kind (:mod:`cvaelib.conditioning.kinds`) answers, for one model:

* **generation** - :meth:`Conditioning.generate` turns a :class:`Request` (the CLI's ``--label``, ``--prompt``,
  ``--attributes``, ``--image-npy``, ...) into images, and refuses options the kind does not take with one line
  naming those it does;
* **reconstruction** - :meth:`Conditioning.reconstruct` encodes images with their condition and decodes the code with
  the same one or another one (a label swap);
* **evaluation** - the conditions of a held-out split, and (CLIP kinds) images for a prompt and CLIP embeddings;
* **training** - :meth:`Conditioning.prepare_training` gives a split the conditions a model of the kind trains on
  and the facts its config needs (class count, attribute names, CLIP embedding size); :meth:`preview` draws what
  ``train`` saves as ``samples.png``.

The base class is the unconditional kind.  The CLI, :mod:`cvaelib.evaluation`, :mod:`cvaelib.guided`,
:mod:`cvaelib.interpolate` and the widgets ask :func:`cvaelib.conditioning.conditioning_for` for a model's
conditioning instead of looking at its name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ..errors import KitError
from .kinds import describe

if TYPE_CHECKING:
    from ..data import ImageData

#: the CLI flag of each request field (what one-line refusals name)
FLAGS = {"label": "--label", "prompt": "--prompt", "to": "--to", "attributes": "--attributes",
         "images": "--image-npy", "factor": "--factor", "bridge": "--bridge", "labels": "--labels",
         "decode_labels": "--decode-labels"}


@dataclass
class Request:
    """What a user asked ``generate`` for; None = not given."""

    n: int = 16
    seed: int = 0
    label: str | int | None = None
    prompt: str | None = None
    to: str | None = None
    attributes: str | None = None
    images: Tensor | None = None
    factor: float | None = None
    bridge: str | None = None

    def given(self) -> list[str]:
        """The condition options given (everything but ``n`` and ``seed``)."""
        return [f.name for f in fields(self) if f.name not in ("n", "seed") and getattr(self, f.name) is not None]


@dataclass
class Drawn:
    """Images a conditioning drew, and how to show them: a grid title, labels of its rows, columns per row.

    ``results`` are the new images alone when the grid also shows inputs (manipulation); else ``images``.
    """

    images: Tensor
    title: str
    row_labels: list[str] | None = None
    ncols: int | None = None
    results: Tensor | None = None

    def __post_init__(self) -> None:
        if self.results is None:
            self.results = self.images


@dataclass
class Prepared:
    """Training data with the conditions a model of the kind trains on, and what its config needs from them."""

    train: "ImageData"
    val: "ImageData"
    facts: dict[str, Any]
    encoder: Any = None
    meta: dict[str, Any] = field(default_factory=dict)


def flags(names: Iterable[str]) -> str:
    return ", ".join(FLAGS.get(n, f"--{n.replace('_', '-')}") for n in names)


class Conditioning:
    """The unconditional kind, and the interface every kind implements."""

    kind: ClassVar[str | None] = None
    #: request fields :meth:`generate` takes for this kind
    generate_options: ClassVar[tuple[str, ...]] = ()
    #: what a user passes to ``reconstruct --labels`` for this kind (None: the kind takes no labels)
    labels_help: ClassVar[str | None] = None

    def __init__(self, model: Any, source: str | os.PathLike | None = None) -> None:
        """``model``: a kit model; ``source``: the run folder it was loaded from (what it keeps beside it)."""
        self.model = model
        self.source = Path(source) if source is not None else None

    @property
    def meta(self) -> dict[str, Any]:
        """The checkpoint's meta dict (dataset, class names, ...)."""
        return self.model.checkpoint_meta

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def what(self) -> str:
        """``"this cvae model (class-conditional)"``, for messages."""
        return f"this {self.model.name} model ({describe(self.kind)})"

    def refuse(self, given: Iterable[str], allowed: Iterable[str]) -> None:
        """One line naming the first option of ``given`` that is not ``allowed``, and what is."""
        allowed = tuple(allowed)
        bad = [g for g in given if g not in allowed]
        if not bad:
            return
        takes = f"it takes {flags(allowed)}" if allowed else "it takes no condition"
        raise KitError(f"{flags(bad[:1])} does not apply to {self.what()}: {takes}")

    # --- generation ------------------------------------------------------------------------------------------------
    def generate(self, request: Request) -> Drawn:
        """Images for ``request`` (one-line error for options this kind does not take)."""
        self.refuse(request.given(), self.generate_options)
        if request.n < 1:
            raise KitError(f"--n must be a positive number of images, got {request.n}")
        return self._generate(request)

    def _generate(self, request: Request) -> Drawn:
        return Drawn(self.sample(request.n, None, request.seed), f"{self.model.name} samples")

    @torch.no_grad()
    def sample(self, n: int, c: Tensor | None, seed: int = 0, batch_size: int = 1000) -> Tensor:
        """``n`` samples for conditions ``c`` (``[n, ...]`` or None), in batches (with a progress bar when there are
        several), on the CPU."""
        from tqdm.auto import tqdm

        g = torch.Generator().manual_seed(seed)  # a CPU generator: the same samples on CPU and GPU
        parts = []
        for i in tqdm(range(0, n, batch_size), desc="sampling", unit="batch", disable=n <= batch_size, leave=False):
            m = min(batch_size, n - i)
            ci = None if c is None else c[i:i + m].to(self.device)
            parts.append(self.model.sample(m, ci, generator=g).float().cpu())
        return torch.cat(parts)

    # --- reconstruction --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def reconstruct(self, images: Tensor, labels: Any = None, decode_labels: Any = None,
                    batch_size: int = 512) -> Tensor:
        """Reconstructions of ``images`` (float ``[N, C, H, W]`` in [0, 1]); ``labels`` are their conditions where the
        kind needs them, ``decode_labels`` other conditions to decode their codes with (a label swap)."""
        return self.decode_codes_of(images, *self.reconstruction_conditions(images, labels, decode_labels), batch_size)

    @torch.no_grad()
    def decode_codes_of(self, images: Tensor, c: Tensor | None, c2: Tensor | None = None,
                        batch_size: int = 512) -> Tensor:
        """``images`` encoded with conditions ``c`` and decoded with ``c2`` (default ``c``), in batches, on the CPU."""
        out = []
        for i in range(0, len(images), batch_size):
            part = [None if t is None else t[i:i + batch_size].to(self.device) for t in (c, c2)]
            out.append(self.model.reconstruct(images[i:i + batch_size].to(self.device), *part).float().cpu())
        return torch.cat(out) if out else images.clone()

    def reconstruction_conditions(self, images: Tensor, labels: Any,
                                  decode_labels: Any) -> tuple[Tensor | None, Tensor | None]:
        """The conditions to encode ``images`` with and to decode their codes with (None: the model needs none)."""
        given = [name for name, v in (("labels", labels), ("decode_labels", decode_labels)) if v is not None]
        self.refuse(given, ())
        return None, None

    # --- evaluation ------------------------------------------------------------------------------------------------
    def unavailable(self) -> str | None:
        """None when everything this conditioning needs is at hand, else why not (one line)."""
        return None

    def reads_text(self) -> bool:
        """True when :meth:`prompt_images` can draw images for free text."""
        return False

    def test_conditions(self, data: "ImageData") -> Tensor | None:
        """The condition of each item of a held-out split (None: this conditioning cannot tell)."""
        return None

    def prompt_images(self, prompt: str, n: int, seed: int = 0) -> Tensor | None:
        """``n`` images for a free-text prompt (None: the kind cannot read free text)."""
        return None

    def image_embeddings(self, images: Tensor) -> Tensor | None:
        """CLIP image embeddings of ``images`` in the space of :meth:`text_embeddings` (None: no CLIP at hand)."""
        return None

    def text_embeddings(self, texts: list[str]) -> Tensor | None:
        """CLIP text embeddings (None: no CLIP at hand)."""
        return None

    # --- training --------------------------------------------------------------------------------------------------
    @classmethod
    def prepare_training(cls, train: "ImageData", val: "ImageData", **options: Any) -> Prepared:
        """``train``/``val`` as a model of this kind trains on them, and the config facts they give.

        ``options``: ``out`` (run folder), ``clip``, ``tiny_seconds``, ``data_root``, ``seed``, ``device``,
        ``progress`` - each kind uses what it needs.
        """
        return Prepared(train, val, {})

    def setup_model(self, prepared: Prepared) -> None:
        """Give a new model what it keeps from its training data besides weights (nothing by default)."""

    def preview(self, val: "ImageData", seed: int = 0) -> Drawn:
        """What ``train`` saves as ``samples.png``."""
        return Drawn(self.sample(16, None, seed), f"{self.model.name} samples", ncols=8)


def label_array(values: Any, n: int, what: str) -> np.ndarray:
    """``values`` (an array or tensor) as a NumPy array with one row per image, or a one-line error."""
    arr = values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)
    if arr.ndim == 0 or arr.shape[0] != n:
        raise KitError(f"{what} has shape {list(arr.shape)}, expected one entry per image ({n})")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise KitError(f"{what} must hold numbers, got {arr.dtype}")
    if not np.isfinite(arr.astype(np.float64)).all():
        raise KitError(f"{what} holds NaN or infinite values")
    return arr


__all__ = ["Conditioning", "Drawn", "FLAGS", "Prepared", "Request", "label_array"]

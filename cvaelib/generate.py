"""Generation entry points shared by the CLI, widgets and notebooks: labels in, images in [0, 1] out."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

import torch
from torch import Tensor

from .errors import KitError, PromptError


def _norm(name: str) -> str:
    """Lower case, every run of non-alphanumerics becomes one space ("T-Shirt!" -> "t shirt")."""
    return re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()


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
    want = _norm(text)
    normed = [_norm(n) for n in class_names]
    for i, name in enumerate(class_names):
        parts = {normed[i], *(_norm(p) for p in name.split("/"))}
        if want in parts or want.rstrip("s") in parts:
            return i
    close = difflib.get_close_matches(want, normed, n=1, cutoff=0.6)
    hint = f"did you mean {class_names[normed.index(close[0])]!r}? " if close else ""
    raise PromptError(f"unknown class {text!r}; {hint}known classes: {known}")


@torch.no_grad()
def generate_images(model, n: int, label: int | None = None, seed: int = 0) -> Tensor:
    """``n`` samples (float ``[n, C, H, W]`` in [0, 1], on CPU) of class ``label`` (None for unconditional)."""
    if n < 1:
        raise KitError(f"--n must be a positive number of images, got {n}")
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    if getattr(model, "condition", None) == "label":
        if label is None:
            raise KitError("this model is class-conditional: pass --label (an id or a class name)")
        c = torch.full((n,), int(label), dtype=torch.long, device=device)
        return model.sample(n, c, generator=g).cpu()
    if label is not None:
        raise KitError(f"this {model.name} model is unconditional: omit --label")
    return model.sample(n, generator=g).cpu()


@torch.no_grad()
def reconstruct_images(model, images: Tensor, labels: Tensor | None = None, batch_size: int = 512) -> Tensor:
    """Reconstructions (posterior mean decoded) of ``images`` in [0, 1], batched, on CPU."""
    device = next(model.parameters()).device
    needs_label = (getattr(model, "condition", None) == "label"
                   and getattr(model, "reconstruction_needs_condition", True))
    if needs_label and labels is None:
        raise KitError("this model is class-conditional: pass --labels L.npy (int64, one per image)")
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(device).float()
        c = labels[i:i + batch_size].to(device).long() if needs_label else None
        out.append(model.reconstruct(x, c).cpu())
    return torch.cat(out)

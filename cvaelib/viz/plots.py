"""Matplotlib figures that look right inline in a notebook and when saved to PNG.

Every function returns the ``Figure`` (so a caller can ``savefig`` it) and never calls ``plt.show()`` itself;
in a notebook the figure displays because it is the cell's value, and :func:`save_grid` writes it without a display.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..train import History


def _to_hwc(img: Tensor):
    img = img.detach().float().clamp(0, 1).cpu()
    return img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).numpy()


def show_grid(images: Tensor, titles: Sequence[str] | None = None, ncols: int | None = None,
              row_labels: Sequence[str] | None = None, title: str | None = None, cell: float = 1.1) -> "Figure":
    """Images ``[N, C, H, W]`` in [0, 1] as a grid, with optional per-image titles and per-row labels."""
    import matplotlib.pyplot as plt

    n = len(images)
    ncols = ncols or min(n, 10)
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols + (1.2 if row_labels else 0), cell * nrows + 0.4),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        if i < n:
            ax.imshow(_to_hwc(images[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    if row_labels is not None:
        for r, label in enumerate(row_labels[:nrows]):
            axes[r, 0].set_ylabel(str(label), rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def save_grid(fig: "Figure", path: str | os.PathLike) -> str:
    """Save ``fig`` as PNG (creating folders) and close it; returns the path."""
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def plot_reconstructions(model: Any, images: Tensor, condition: Tensor | None = None, n: int = 10) -> "Figure":
    """Top row: inputs; bottom row: the model's reconstructions."""
    x = images[:n]
    c = condition[:n] if condition is not None else None
    device = next(model.parameters()).device
    recon = model.reconstruct(x.to(device), c.to(device) if c is not None else None).cpu()
    return show_grid(torch.cat([x.cpu(), recon]), ncols=len(x), row_labels=["input", "output"])


def show_samples(model: Any, labels: Sequence[int] | None = None, n_per_class: int = 8,
                 class_names: Sequence[str] | None = None, n: int = 16, seed: int = 0) -> "Figure":
    """Prior samples: one row per class for conditional models, else ``n`` unconditional samples."""
    g = torch.Generator().manual_seed(seed)
    if model.condition == "label":
        labels = list(labels if labels is not None else range(model.config["num_classes"]))
        c = torch.tensor(labels).repeat_interleave(n_per_class).to(next(model.parameters()).device)
        imgs = model.sample(len(c), c, generator=g).cpu()
        names = [class_names[k] if class_names else str(k) for k in labels]
        return show_grid(imgs, ncols=n_per_class, row_labels=names)
    imgs = model.sample(n, generator=g).cpu()
    return show_grid(imgs, ncols=min(n, 8))


def plot_history(history: "History", terms: Sequence[str] | None = None) -> "Figure":
    """Per-epoch train (solid) and validation (dashed) curves, one panel per loss term."""
    import matplotlib.pyplot as plt

    rows = history.train
    if not rows:
        raise ValueError("history is empty: train for at least one epoch")
    terms = list(terms or rows[0].keys())
    fig, axes = plt.subplots(1, len(terms), figsize=(3.4 * len(terms), 2.8), squeeze=False)
    epochs = range(1, len(rows) + 1)
    for ax, term in zip(axes[0], terms):
        ax.plot(epochs, [r[term] for r in rows], "-o", ms=3, label="train")
        if history.val:
            ax.plot(range(1, len(history.val) + 1), [r[term] for r in history.val], "--s", ms=3, label="val")
        ax.set_title(term)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("nats per image")
    axes[0, -1].legend()
    fig.tight_layout()
    return fig

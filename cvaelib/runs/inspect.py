"""``evaluate`` and ``fetch``: run functions that measure or download, and train nothing."""

from __future__ import annotations

import os
from typing import Any

from .outputs import check_output_file, write_json


def evaluate_run(checkpoint: str | os.PathLike, *, data_root: str | os.PathLike | None = None, n: int = 1000,
                 dataset: str | None = None, seed: int = 0, device: str | None = None,
                 out: str | os.PathLike | None = None, inception: bool | None = None) -> dict[str, Any]:
    """Every metric that applies to a checkpoint's model (:func:`cvaelib.evaluation.evaluate_checkpoint`), on the
    data ``train`` stored in it unless ``dataset`` says otherwise; written as JSON to ``out`` when given."""
    from ..checkpoint import resolve_checkpoint
    from ..evaluation import evaluate_checkpoint

    resolve_checkpoint(checkpoint)  # a missing file fails here, before any data is loaded
    target = check_output_file(out, "--out") if out is not None else None
    metrics = evaluate_checkpoint(checkpoint, data_root=data_root, n=n, device=device, dataset=dataset, seed=seed,
                                  inception=inception)
    if target is not None:
        write_json(target, metrics)
    return metrics


def fetch_run(dataset: str, data_root: str | os.PathLike | None = None) -> str:
    """Download a dataset with torchvision; returns the folder it is in."""
    from ..data import fetch

    return str(fetch(dataset, data_root))


__all__ = ["evaluate_run", "fetch_run"]

"""FIDs of a model's samples, next to the level real data reaches at the same sample count.

Classifier-FID (features of the kit's judge, offline) for the datasets the judge knows; Inception FID on a GPU or when
asked for.  ``real_*`` entries compare ``n`` real training images with the same test images: the best a model can
reach at this ``n`` (FID is biased upward for small ``n``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import KitError

#: datasets the kit's classifier (the judge for conditional accuracy and classifier FID) knows
JUDGED = ("digits", "mnist", "fashion-mnist")


def _fid_entry(out: dict, key: str, result: Any) -> None:
    out[key] = round(float(result.value), 4)
    out[f"{key}_n"] = [result.n_a, result.n_b]


def _real_train(dataset: str, data_root: Any, folder: str | None, m: int, seed: int, size: int) -> Tensor:
    """``m`` real training images of the evaluated dataset (a registered one, or a prepared folder's train split)."""
    from ..data import load_dataset, subset
    from ..data.shards import load_prepared

    if dataset in JUDGED:
        return subset(load_dataset(dataset, data_root, "train"), m, seed=seed).float_images()
    if folder is None:
        raise KitError(f"no prepared folder recorded for {dataset}")
    return load_prepared(folder, "train", size=size, limit=m).float_images()


def fid_metrics(out: dict, notes: list[str], samples: Tensor, x: Tensor, dataset: str, data_root: Any,
                folder: str | None, judge: Any, m: int, seed: int, device: torch.device, inception: bool | None,
                size: int) -> None:
    """Add ``sample_cfid``/``real_cfid`` (judged datasets) and ``sample_fid``/``real_fid`` (Inception) to ``out``."""
    from ..metrics import classifier_features, fid_from_features, inception_features

    real_train = None
    try:  # the real-data level: n real training images vs the same test images
        real_train = _real_train(dataset, data_root, folder, m, seed, size)
    except Exception as exc:  # noqa: BLE001 - the reference is a nicety; the sample FID stands without it
        notes.append(f"real-data FID reference skipped ({type(exc).__name__}: {exc})")
    if judge is not None:
        f_test = classifier_features(x, judge)
        _fid_entry(out, "sample_cfid", fid_from_features(classifier_features(samples, judge), f_test,
                                                         f"classifier:{dataset}", warn=False))
        if real_train is not None:
            _fid_entry(out, "real_cfid", fid_from_features(classifier_features(real_train, judge), f_test,
                                                           f"classifier:{dataset}", warn=False))
    elif inception is False:
        notes.append(f"no FID: the kit has no classifier for {dataset} and Inception FID was turned off")
    use_inception = device.type == "cuda" if inception is None else inception
    if use_inception:
        try:
            i_test = inception_features(x, device=device)
            _fid_entry(out, "sample_fid", fid_from_features(inception_features(samples, device=device), i_test,
                                                            "inception", warn=False))
            if real_train is not None:
                _fid_entry(out, "real_fid", fid_from_features(inception_features(real_train, device=device),
                                                              i_test, "inception", warn=False))
        except KitError as exc:
            if inception:
                raise
            notes.append(f"Inception FID skipped: {exc}")
    elif inception is None:
        notes.append("Inception FID skipped on CPU (slow); pass inception=True (CLI: --inception) to add it")


__all__ = ["JUDGED", "fid_metrics"]

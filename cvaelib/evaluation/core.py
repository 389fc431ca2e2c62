"""Evaluate a trained checkpoint with every metric that applies to its model.

What is measured depends on the model's condition kind, asked of its :mod:`cvaelib.conditioning`:

======================  =========================================================================================
every model             reconstruction MSE, PSNR and SSIM on ``n`` held-out images (posterior mean decoded, each
                        image with its own condition)
unconditional           classifier-FID of ``n`` prior samples vs ``n`` test images
label (CVAE, VQ-VAE)    the same for class-balanced samples, plus conditional accuracy per class and its mean, and
                        the label-swap rate (test images re-decoded with another class, judged as the new one)
autoencoder             classifier-FID of decoded N(0, I) codes: an AE's codes are no distribution, so it is bad
clip on MNIST/Fashion   prompt accuracy per class for prompts naming a class, and CLIP score (the model's CLIP)
attributes, clip else   samples conditioned on the test images' own conditions (attributes, CLIP embeddings)
======================  =========================================================================================

Two reference numbers make the others readable: ``real_cfid`` (classifier-FID of ``n`` *real* training images vs the
same test images: the best a model can reach at this sample count) and ``judge_accuracy`` (the classifier's own test
accuracy: the ceiling of conditional accuracy).  Inception FID (``sample_fid``, ``real_fid``) is added on a GPU
(weights download on first use) or when asked for with ``inception=True``; it is the only FID for data the kit's
classifier does not know (CelebA, COCO).  What cannot be measured is listed in ``notes``, never raised.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..conditioning import Conditioning, conditioning_for
from ..errors import KitError
from .reference import JUDGED, fid_metrics

__all__ = ["evaluate_checkpoint", "evaluate_model", "load_eval_data"]


@torch.no_grad()
def _batched(fn: Callable[..., Tensor], *tensors: Tensor, batch_size: int = 500) -> Tensor:
    n = len(tensors[0])
    return torch.cat([fn(*(t[i:i + batch_size] for t in tensors)).float().cpu() for i in range(0, n, batch_size)])


def _finite(x: float) -> float | None:
    """JSON has no inf/NaN: store them as None."""
    return float(x) if math.isfinite(float(x)) else None


def load_eval_data(dataset: str, data_root: str | os.PathLike | None = None,
                   meta: dict[str, Any] | None = None, image_size: int | None = None) -> Any:
    """The held-out split a model is evaluated on: a registered dataset's test split, or a prepared folder's.

    Prepared data (CelebA / COCO from ``data_prep``) is named as ``train`` stored it, ``celeba:FOLDER`` (or its
    folder is passed as ``data_root``); its ``test`` split is used, else ``val``.
    """
    from ..data import DATASETS, check_dataset_name, load_dataset
    from ..data.prepared import heldout_split, parse_prepared
    from ..data.shards import load_prepared

    key = dataset.strip().lower().replace("_", "-")
    if key in DATASETS or key in ("fashion", "fashionmnist"):
        return load_dataset(check_dataset_name(key), data_root, "test")
    parsed = parse_prepared(dataset)
    folder = data_root if data_root is not None else (parsed[1] if parsed else None)
    if folder is None:
        raise KitError(f"{dataset!r} is a prepared dataset: pass its prep --out folder as --data-root")
    return load_prepared(folder, heldout_split(folder), size=image_size or int((meta or {}).get("image_size", 64)))


@torch.no_grad()
def evaluate_model(model: Any, dataset: str, data_root: str | os.PathLike | None = None, n: int = 1000,
                   seed: int = 0, inception: bool | None = None, class_names: Sequence[str] | None = None,
                   batch_size: int = 500, meta: dict[str, Any] | None = None,
                   conditioning: Conditioning | None = None) -> dict[str, Any]:
    """Every metric that applies to ``model`` (a kit model in eval mode, on its device), as a flat JSON-able dict.

    Args:
        model: a :class:`cvaelib.models.GenerativeModel`.
        dataset: what it was trained on (``mnist``, ``fashion-mnist``, ``digits``, or ``celeba:FOLDER`` /
            ``coco:FOLDER`` as ``train`` stores it).
        data_root: folder holding ``MNIST/`` and ``FashionMNIST/`` (default ``$CVAELIB_DATA`` or ``./data``), or the
            prepared folder of CelebA / COCO.
        n: test images to reconstruct and samples to generate (capped at the test split's size).
        seed: seeds the test subset and the samples, so two runs give the same numbers.
        inception: add Inception FID; ``None`` = only on a GPU (slow on a CPU), ``False`` = never, ``True`` = always
            (raises a clear error when the weights are missing offline).
        meta: the checkpoint's meta dict (prepared-data folder, class names).
        conditioning: how the model's conditions are made (default: :func:`cvaelib.conditioning.conditioning_for`).
    """
    from ..data import subset
    from ..metrics import mse, psnr, ssim, ssim_window
    from ..metrics.fid import MIN_FID_SAMPLES

    if n < 2:
        raise KitError(f"--n must be at least 2 images to evaluate, got {n}")
    meta = dict(meta or {})
    cond = conditioning or conditioning_for(model)
    kind = cond.kind
    device = next(model.parameters()).device
    test = load_eval_data(dataset, data_root, meta, image_size=int(model.image_shape[-1]))
    dataset = test.name or dataset
    if tuple(test.shape) != tuple(model.image_shape):
        raise KitError(f"the model makes {tuple(model.image_shape)} images but {dataset} has {test.shape}; "
                       f"evaluate it on the dataset it was trained on (--dataset)")
    names = list(class_names or test.class_names)
    m = min(n, len(test))
    if m < 2:
        raise KitError(f"the {dataset} evaluation split has {len(test)} images; at least 2 are needed")
    test = subset(test, m, seed=seed)
    x = test.float_images()
    notes: list[str] = []
    out: dict[str, Any] = {"model": model.name, "dataset": dataset, "condition": kind or "none", "n": m,
                           "device": str(device), "seed": seed}
    if m < n:
        notes.append(f"the {dataset} evaluation split has {m} images: n capped at {m}")

    # --- reconstructions, each test image with its own condition --------------------------------------------------
    cond_x = None if kind is None else cond.test_conditions(test)
    if kind is None or cond_x is not None:
        rec = _batched(lambda a, *c: model.reconstruct(a.to(device), *(t.to(device) for t in c)), x,
                       *([] if cond_x is None else [cond_x]), batch_size=batch_size)
        out["recon_mse"] = round(float(mse(rec, x)), 6)
        out["recon_psnr"] = _finite(round(float(psnr(rec, x)), 3))
        out["recon_ssim"] = round(float(ssim(rec, x)), 4)
        out["ssim_window"] = ssim_window(*x.shape[-2:])
    else:
        notes.append(f"reconstruction skipped: the {kind} conditioning cannot turn a test image into its condition")

    # --- samples, and how well they obey their condition -----------------------------------------------------------
    judge = None
    if dataset in JUDGED:
        from ..classifier import get_classifier, predict

        judge = get_classifier(dataset, data_root).to(device)
        out["judge_accuracy"] = round(float((predict(judge, x) == test.labels).float().mean()), 4)
        if kind == "label" and cond_x is not None and model.reconstruction_needs_condition:
            from ..metrics import conditional_accuracy, label_swap

            swapped, new = label_swap(model, x, test.labels, seed=seed, batch_size=batch_size)
            out["label_swap_acc"] = round(conditional_accuracy(predict(judge, swapped), new)["overall"], 4)
    samples: Tensor | None = None
    try:
        samples = _samples(cond, m, names, dataset, cond_x, judge, out, notes, seed)
    except KitError as exc:  # e.g. a VQ-VAE whose prior was never trained: report, do not crash the evaluation
        notes.append(f"sampling skipped: {exc}")
    if not model.meaningful_samples and samples is not None:
        notes.append("autoencoder: its 'samples' decode z ~ N(0, I), which is not where its codes live, so their "
                     "FID is expected to be poor (compare with a VAE)")

    # --- FID -------------------------------------------------------------------------------------------------------
    if samples is not None:
        fid_metrics(out, notes, samples, x, dataset, data_root, test.meta.get("folder"), judge, m, seed, device,
                    inception, int(model.image_shape[-1]))
        if m < MIN_FID_SAMPLES:
            notes.append(f"FID from {m} vs {m} samples is biased upward (use n >= {MIN_FID_SAMPLES} to publish); "
                         f"compare FIDs only at equal n, and against the real-data level at this n (real_*)")
    out["notes"] = notes
    return out


def _samples(cond: Conditioning, m: int, names: list[str], dataset: str, cond_x: Tensor | None, judge: Any,
             out: dict, notes: list[str], seed: int) -> Tensor | None:
    """``m`` samples of the kind that fits the conditioning, with the metrics of how well they obey it."""
    from ..metrics import balanced_labels, conditional_accuracy

    if cond.kind == "label":
        wanted = balanced_labels(m, len(names))
        samples = cond.sample(m, wanted, seed + 1)
        if judge is not None:
            from ..classifier import predict

            acc = conditional_accuracy(predict(judge, samples), wanted, len(names), names)
            out["cond_acc_mean"] = round(acc["mean"], 4)
            out["cond_acc_per_class"] = {k: round(v, 4) for k, v in acc["per_class"].items()}
        return samples
    if cond.kind is None:
        return cond.sample(m, None, seed + 1)
    if judge is not None and cond.reads_text():
        return _prompt_samples(cond, dataset, names, m, judge, out, notes, seed)
    if cond_x is None:
        notes.append(f"sampling skipped: no conditions for this {cond.kind}-conditioned model")
        return None
    # samples conditioned on the test images' own conditions (attributes, embeddings): comparable to the test set
    return cond.sample(m, cond_x, seed + 1)


def _prompt_samples(cond: Conditioning, dataset: str, names: list[str], m: int, judge: Any, out: dict,
                    notes: list[str], seed: int) -> Tensor:
    """Samples for prompts naming each class: prompt accuracy per class, and CLIP score when possible.

    ``m`` samples are spread evenly over the classes, and within a class over its prompts; each prompt's images come
    from the conditioning (a CLIP model's text bridge).
    """
    from ..classifier import predict
    from ..clip.captions import prompt_table
    from ..metrics import balanced_labels, clip_score, conditional_accuracy

    table = prompt_table(dataset, names)
    counts = torch.bincount(balanced_labels(m, len(names)), minlength=len(names)).tolist()
    jobs: list[tuple[int, str, int]] = []  # (class, prompt, how many)
    for k, count in enumerate(counts):
        texts = table[k]
        jobs += [(k, t, count // len(texts) + (j < count % len(texts))) for j, t in enumerate(texts)]
    jobs = [job for job in jobs if job[2] > 0]
    samples = torch.cat([cond.prompt_images(text, count, seed + 1 + i).float().cpu()
                         for i, (_, text, count) in enumerate(jobs)])
    wanted = torch.cat([torch.full((count,), k) for k, _, count in jobs])
    per_sample_prompt = [text for _, text, count in jobs for _ in range(count)]
    acc = conditional_accuracy(predict(judge, samples), wanted, len(names), names)
    out["prompt_acc_mean"] = round(acc["mean"], 4)
    out["prompt_acc_per_class"] = {k: round(v, 4) for k, v in acc["per_class"].items()}
    out["prompts"] = {names[k]: table[k] for k in range(len(names))}
    # the reference a CLIP score needs: the same samples against a prompt of the *next* class (a model that ignored
    # its prompt would score the same on both)
    other_prompt = [table[(k + 1) % len(names)][0] for k, _, count in jobs for _ in range(count)]
    distinct = sorted(set(per_sample_prompt) | set(other_prompt))
    txt = cond.text_embeddings(distinct)
    img = None if txt is None else _batched(lambda a: cond.image_embeddings(a), samples)
    if img is not None:  # CLIP score: image and text embeddings from the same CLIP
        row = {t: i for i, t in enumerate(distinct)}
        txt = txt.float().cpu()
        out["clip_score"] = round(float(clip_score(img, txt[[row[t] for t in per_sample_prompt]])), 4)
        out["clip_score_other_class"] = round(float(clip_score(img, txt[[row[t] for t in other_prompt]])), 4)
    else:
        notes.append("CLIP score skipped: no CLIP embeds both the samples and the prompts")
    return samples


def evaluate_checkpoint(path: str | os.PathLike, data_root: str | os.PathLike | None = None, n: int = 1000,
                        device: str | torch.device | None = None, *, dataset: str | None = None, seed: int = 0,
                        inception: bool | None = None) -> dict[str, Any]:
    """Load a checkpoint (run folder or ``checkpoint.pt``) and compute every metric that applies to its model.

    The dataset comes from the checkpoint's ``meta["dataset"]`` (``train`` writes it: ``mnist``, or
    ``celeba:/abs/FOLDER`` for prepared data) unless ``dataset`` is given.  See :func:`evaluate_model` for the other
    arguments and the module docstring for what is measured.  Returns a flat dict for ``json.dump`` and
    :func:`cvaelib.evaluation.format_table`.
    """
    from ..checkpoint import load_model, resolve_checkpoint
    from ..device import pick_device

    file = resolve_checkpoint(path)
    model = load_model(file, device=pick_device(device))
    meta = model.checkpoint_meta
    cond = conditioning_for(model, source=file.parent)
    missing = cond.unavailable()
    dataset = dataset or meta.get("dataset")
    if not dataset:
        if tuple(model.image_shape) != (1, 8, 8):
            raise KitError(f"{file} does not record its dataset; pass dataset= "
                           f"(CLI: --dataset mnist|fashion-mnist|digits|celeba:FOLDER)")
        dataset = "digits"
    result = evaluate_model(model, dataset, data_root, n=n, seed=seed, inception=inception,
                            class_names=meta.get("class_names"), meta=meta, conditioning=cond)
    if missing:
        result["notes"].insert(0, f"CLIP not available, prompt metrics skipped: {missing}")
    return {"checkpoint": str(file), **result}

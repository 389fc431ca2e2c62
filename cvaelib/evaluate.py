"""Evaluate a trained checkpoint with every metric that applies to its model; print the numbers as a table.

What is measured depends on the model (:func:`evaluate_checkpoint`):

=====================  ==========================================================================================
every model            reconstruction MSE, PSNR and SSIM on ``n`` test images (posterior mean decoded)
unconditional VAE      classifier-FID of ``n`` prior samples vs ``n`` test images
label CVAE             the same for class-balanced samples, plus conditional accuracy per class and its mean
autoencoder            classifier-FID of decoded N(0, I) codes: an AE's codes are no distribution, so it is bad
vector (CLIP) CVAE     prompt accuracy per class on MNIST / Fashion, CLIP score, when the model can embed prompts
=====================  ==========================================================================================

Two reference numbers make the others readable: ``real_cfid`` (classifier-FID of ``n`` *real* training images vs the
same test images: the best a model can reach at this sample count) and ``judge_accuracy`` (the classifier's own test
accuracy: the ceiling of conditional accuracy).  Inception FID is added on a GPU (weights download on first use) or
when asked for with ``inception=True``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .errors import KitError

__all__ = ["class_prompts", "evaluate_checkpoint", "evaluate_model", "format_table"]

#: prompt used for class ``name`` of a dataset when measuring prompt accuracy of text-conditioned models
PROMPT_TEMPLATES = {"mnist": "a handwritten digit {name}", "digits": "a handwritten digit {name}",
                    "fashion-mnist": "a photo of a {name}"}


def class_prompts(dataset: str, class_names: Sequence[str], template: str | None = None) -> list[str]:
    """One prompt per class, e.g. ``"a photo of a sneaker"`` (``T-shirt/top`` becomes ``t-shirt``)."""
    template = template or PROMPT_TEMPLATES.get(dataset, "a photo of a {name}")
    return [template.format(name=name.split("/")[0].lower()) for name in class_names]


# --- duck-typed hooks for vector-conditioned (CLIP) models ----------------------------------------------------------
def _hook(model: Any, names: Sequence[str], module: str | None = None) -> Callable | None:
    """The first callable found as a model method, else as a function of ``module`` (None when absent)."""
    for name in names:
        fn = getattr(model, name, None)
        if callable(fn):
            return fn
    if module is not None:
        try:
            mod = __import__(f"cvaelib.{module}", fromlist=["_"])
        except Exception:  # noqa: BLE001 - an optional part that is missing or broken just means "skip"
            return None
        for name in names:
            fn = getattr(mod, name, None)
            if callable(fn):
                return lambda *a, _fn=fn, **k: _fn(model, *a, **k)
    return None


def _prompt_encoder(model: Any) -> Callable[[list[str]], Tensor] | None:
    """``prompts -> conditions [N, D]`` in the model's condition space, if the model (or kit) offers one."""
    return _hook(model, ("encode_prompts", "prompt_conditions", "condition_from_prompts", "embed_prompts"),
                 "generate")


def _image_encoder(model: Any) -> Callable[[Tensor], Tensor] | None:
    """``images [N,C,H,W] -> conditions [N, D]`` (the language-free condition of an image), if offered."""
    return _hook(model, ("encode_condition_images", "image_conditions", "condition_from_images", "embed_images"),
                 "generate")


# --- helpers ---------------------------------------------------------------------------------------------------------
@torch.no_grad()
def _batched(fn: Callable[..., Tensor], *tensors: Tensor, batch_size: int = 500) -> Tensor:
    n = len(tensors[0])
    return torch.cat([fn(*(t[i:i + batch_size] for t in tensors)).float().cpu() for i in range(0, n, batch_size)])


def _finite(x: float) -> float | None:
    """JSON has no inf/NaN: store them as None."""
    return float(x) if math.isfinite(float(x)) else None


def _fid_entry(out: dict, key: str, result: Any) -> None:
    out[key] = round(float(result.value), 4)
    out[f"{key}_n"] = [result.n_a, result.n_b]


@torch.no_grad()
def evaluate_model(model: Any, dataset: str, data_root: str | os.PathLike | None = None, n: int = 1000,
                   seed: int = 0, inception: bool | None = None, class_names: Sequence[str] | None = None,
                   batch_size: int = 500) -> dict[str, Any]:
    """Every metric that applies to ``model`` (a kit model in eval mode, on its device), as a flat JSON-able dict.

    Args:
        model: a :class:`cvaelib.models.GenerativeModel`.
        dataset: the dataset it was trained on (``mnist``, ``fashion-mnist``, ``digits``).
        data_root: folder holding ``MNIST/`` and ``FashionMNIST/`` (default ``$CVAELIB_DATA`` or ``./data``).
        n: test images to reconstruct and samples to generate (capped at the test split's size).
        seed: seeds the test subset and the samples, so two runs give the same numbers.
        inception: add Inception FID; ``None`` = only on a GPU (slow on a CPU), ``False`` = never, ``True`` = always
            (raises a clear error when the weights are missing offline).
    """
    from .classifier import get_classifier, predict
    from .data import check_dataset_name, load_dataset, subset
    from .metrics import (classifier_features, conditional_accuracy, fid_from_features, inception_features, mse,
                          psnr, sample_per_class, ssim, ssim_window)
    from .metrics.fid import MIN_FID_SAMPLES

    dataset = check_dataset_name(dataset)
    if n < 2:
        raise KitError(f"--n must be at least 2 images to evaluate, got {n}")
    device = next(model.parameters()).device
    condition = getattr(model, "condition", None)
    test = load_dataset(dataset, data_root, "test")
    names = list(class_names or test.class_names)
    m = min(n, len(test))
    test = subset(test, m, seed=seed)
    x, y = test.float_images(), test.labels
    notes: list[str] = []
    out: dict[str, Any] = {"model": getattr(model, "name", type(model).__name__), "dataset": dataset,
                           "condition": condition or "none", "n": m, "device": str(device), "seed": seed}
    if m < n:
        notes.append(f"the {dataset} test split has {m} images: n capped at {m}")

    # --- reconstructions -------------------------------------------------------------------------------------------
    cond_x: Tensor | None = None
    if condition == "label":
        cond_x = y
    elif condition == "vector":
        image_enc, prompt_enc = _image_encoder(model), _prompt_encoder(model)
        if image_enc is not None:
            cond_x = _batched(lambda a: image_enc(a.to(device)), x, batch_size=batch_size)
        elif prompt_enc is not None:  # no image route: condition each test image on the prompt naming its class
            cond_x = prompt_enc(class_prompts(dataset, names))[y].float().cpu()
    if condition is None or cond_x is not None:
        if cond_x is None:
            rec = _batched(lambda a: model.reconstruct(a.to(device)), x, batch_size=batch_size)
        else:
            rec = _batched(lambda a, c: model.reconstruct(a.to(device), c.to(device)), x, cond_x,
                           batch_size=batch_size)
        out["recon_mse"] = round(float(mse(rec, x)), 6)
        out["recon_psnr"] = _finite(round(float(psnr(rec, x)), 3))
        out["recon_ssim"] = round(float(ssim(rec, x)), 4)
        out["ssim_window"] = ssim_window(*x.shape[-2:])
    else:
        notes.append("reconstruction skipped: the model offers no way to turn a test image into its condition")

    # --- samples ---------------------------------------------------------------------------------------------------
    judge = get_classifier(dataset, data_root).to(device)
    out["judge_accuracy"] = round(float((predict(judge, x) == y).float().mean()), 4)
    samples: Tensor | None = None
    gen = torch.Generator().manual_seed(seed + 1)  # CPU generator: identical samples on CPU and GPU
    if condition == "label":
        samples, wanted = sample_per_class(model, m, len(names), seed=seed + 1, batch_size=batch_size)
        acc = conditional_accuracy(predict(judge, samples), wanted, len(names), names)
        out["cond_acc_mean"] = round(acc["mean"], 4)
        out["cond_acc_per_class"] = {k: round(v, 4) for k, v in acc["per_class"].items()}
    elif condition is None:
        samples = torch.cat([model.sample(min(batch_size, m - i), generator=gen).float().cpu()
                             for i in range(0, m, batch_size)])
        if not getattr(model, "variational", True):
            notes.append("autoencoder: 'samples' decode z ~ N(0, I), which is not where its codes live, so their "
                         "FID is expected to be poor (compare with a VAE)")
    else:
        samples = _evaluate_vector(model, dataset, names, m, judge, out, notes, seed, batch_size)

    # --- FID -------------------------------------------------------------------------------------------------------
    if samples is not None:
        real_train = subset(load_dataset(dataset, data_root, "train"), m, seed=seed).float_images()
        f_test = classifier_features(x, judge)
        _fid_entry(out, "sample_cfid", fid_from_features(classifier_features(samples, judge), f_test,
                                                         f"classifier:{dataset}", warn=False))
        _fid_entry(out, "real_cfid", fid_from_features(classifier_features(real_train, judge), f_test,
                                                       f"classifier:{dataset}", warn=False))
        use_inception = device.type == "cuda" if inception is None else inception
        if use_inception:
            try:
                i_test = inception_features(x, device=device)
                _fid_entry(out, "sample_fid", fid_from_features(inception_features(samples, device=device), i_test,
                                                                "inception", warn=False))
                _fid_entry(out, "real_fid", fid_from_features(inception_features(real_train, device=device),
                                                              i_test, "inception", warn=False))
            except KitError as exc:
                if inception:
                    raise
                notes.append(f"Inception FID skipped: {exc}")
        elif inception is None:
            notes.append("Inception FID skipped on CPU (slow); pass inception=True (CLI: --inception) to add it")
        if m < MIN_FID_SAMPLES:
            notes.append(f"FID from {m} vs {m} samples is biased upward (use n >= {MIN_FID_SAMPLES} to publish); "
                         f"compare FIDs only at equal n, and against real_cfid, the real-data level at this n")
    out["notes"] = notes
    return out


def _evaluate_vector(model: Any, dataset: str, names: list[str], m: int, judge: Any, out: dict, notes: list[str],
                     seed: int, batch_size: int) -> Tensor | None:
    """Prompt accuracy and CLIP score for a model conditioned on text embeddings; returns its samples (or None)."""
    from .classifier import predict
    from .metrics import balanced_labels, clip_score, conditional_accuracy

    prompt_enc = _prompt_encoder(model)
    if prompt_enc is None:
        notes.append("prompt metrics skipped: the model has no prompt encoder (encode_prompts) to build conditions")
        return None
    device = next(model.parameters()).device
    prompts = class_prompts(dataset, names)
    text = prompt_enc(prompts).float()
    wanted = balanced_labels(m, len(names))
    gen = torch.Generator().manual_seed(seed + 1)
    samples = torch.cat([model.sample(len(k), text[k].to(device), generator=gen).float().cpu()
                         for k in wanted.split(batch_size)])
    acc = conditional_accuracy(predict(judge, samples), wanted, len(names), names)
    out["prompt_acc_mean"] = round(acc["mean"], 4)
    out["prompt_acc_per_class"] = {k: round(v, 4) for k, v in acc["per_class"].items()}
    out["prompts"] = prompts
    # CLIP score needs image embeddings in the *same* space as the prompt embeddings
    embed_images = _hook(model, ("clip_image_embeddings", "encode_clip_images"), "generate")
    if embed_images is not None:
        img = _batched(lambda a: embed_images(a.to(device)), samples, batch_size=batch_size)
        out["clip_score"] = round(float(clip_score(img, text[wanted].cpu())), 4)
    else:
        notes.append("CLIP score skipped: the model offers no CLIP image encoder (clip_image_embeddings)")
    return samples


def evaluate_checkpoint(path: str | os.PathLike, data_root: str | os.PathLike | None = None, n: int = 1000,
                        device: str | torch.device | None = None, *, dataset: str | None = None, seed: int = 0,
                        inception: bool | None = None) -> dict[str, Any]:
    """Load a checkpoint (run folder or ``checkpoint.pt``) and compute every metric that applies to its model.

    The dataset comes from the checkpoint's ``meta["dataset"]`` (written by ``python -m cvaelib train``) unless
    ``dataset`` is given.  See :func:`evaluate_model` for the other arguments and the module docstring for what is
    measured.  Returns a flat dict ready for ``json.dump`` and :func:`format_table`.
    """
    from .checkpoint import load_model, resolve_checkpoint
    from .train import pick_device

    model = load_model(path, device=pick_device(device))
    meta = getattr(model, "checkpoint_meta", {}) or {}
    dataset = dataset or meta.get("dataset")
    if not dataset:
        shape = tuple(model.image_shape)
        if shape == (1, 8, 8):
            dataset = "digits"
        else:
            raise KitError(f"{resolve_checkpoint(path)} does not record its dataset; pass dataset= "
                           f"(CLI: --dataset mnist|fashion-mnist|digits)")
    result = evaluate_model(model, dataset, data_root, n=n, seed=seed, inception=inception,
                            class_names=meta.get("class_names"))
    return {"checkpoint": str(resolve_checkpoint(path)), **result}


# --- table -----------------------------------------------------------------------------------------------------------
_ROWS = [  # key, label, format
    ("recon_mse", "reconstruction MSE", "{:.5f}"),
    ("recon_psnr", "reconstruction PSNR (dB)", "{:.2f}"),
    ("recon_ssim", "reconstruction SSIM", "{:.4f}"),
    ("sample_cfid", "classifier-FID samples vs test", "{:.3f}"),
    ("real_cfid", "classifier-FID real train vs test", "{:.3f}"),
    ("sample_fid", "Inception FID samples vs test", "{:.2f}"),
    ("real_fid", "Inception FID real train vs test", "{:.2f}"),
    ("cond_acc_mean", "conditional accuracy (mean)", "{:.1%}"),
    ("prompt_acc_mean", "prompt accuracy (mean)", "{:.1%}"),
    ("clip_score", "CLIP score (cosine)", "{:.4f}"),
    ("judge_accuracy", "judge's own test accuracy", "{:.1%}"),
]


def format_table(metrics: dict[str, Any]) -> str:
    """A plain-text table of :func:`evaluate_checkpoint`'s result (per-class accuracies indented, notes below)."""
    head = (f"{metrics.get('model', '?')} on {metrics.get('dataset', '?')} "
            f"(condition: {metrics.get('condition', 'none')}, n={metrics.get('n', '?')})")
    rows: list[tuple[str, str]] = []
    for key, label, fmt in _ROWS:
        if key not in metrics:
            continue
        value = metrics[key]
        text = "n/a" if value is None else fmt.format(value)
        if key == "recon_ssim" and metrics.get("ssim_window", 11) != 11:
            text += f"  ({metrics['ssim_window']}x{metrics['ssim_window']} window: images are small)"
        if f"{key}_n" in metrics:
            text += f"  (n={metrics[f'{key}_n'][0]}/{metrics[f'{key}_n'][1]})"
        rows.append((label, text))
        for per in ("cond_acc_per_class", "prompt_acc_per_class"):
            if key == per.replace("_per_class", "_mean") and isinstance(metrics.get(per), dict):
                rows.extend((f"  {name}", f"{acc:.1%}") for name, acc in metrics[per].items())
    width = max([len(label) for label, _ in rows] + [len("metric")])
    lines = [head, f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    lines += [f"{label:<{width}}  {text}" for label, text in rows]
    lines += [f"note: {note}" for note in metrics.get("notes", [])]
    return "\n".join(lines)

"""Evaluate a trained checkpoint with every metric that applies to its model; print the numbers as a table.

What is measured depends on the model (:func:`evaluate_checkpoint`):

======================  =========================================================================================
every model             reconstruction MSE, PSNR and SSIM on ``n`` held-out images (posterior mean decoded)
unconditional VAE       classifier-FID of ``n`` prior samples vs ``n`` test images
label CVAE, VQ-VAE      the same for class-balanced samples, plus conditional accuracy per class and its mean
autoencoder             classifier-FID of decoded N(0, I) codes: an AE's codes are no distribution, so it is bad
vector CVAE (CLIP)      on MNIST / Fashion: prompt accuracy per class for prompts naming a class, and CLIP score,
                        when the model can embed prompts (``encode_prompts``) and images (``clip_image_embeddings``)
vector CVAE (CelebA)    reconstructions and samples conditioned on the test images' own attribute vectors
======================  =========================================================================================

Two reference numbers make the others readable: ``real_cfid`` (classifier-FID of ``n`` *real* training images vs the
same test images: the best a model can reach at this sample count) and ``judge_accuracy`` (the classifier's own test
accuracy: the ceiling of conditional accuracy).  Inception FID (``sample_fid``, ``real_fid``) is added on a GPU
(weights download on first use) or when asked for with ``inception=True``; it is the only FID for data the kit's
classifier does not know (CelebA, COCO).

Vector-conditioned models are handled by duck typing, so a new model needs no change here: a method (or a function
of :mod:`cvaelib.generate` taking the model first) named ``encode_prompts(prompts) -> [N, D]`` gives conditions for
text, ``image_conditions(images) -> [N, D]`` conditions for images, ``clip_image_embeddings(images) -> [N, D]`` CLIP
image embeddings for CLIP score.  What cannot be measured is listed in ``notes``, never raised.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .errors import KitError

__all__ = ["ClipModelHooks", "class_prompts", "evaluate_checkpoint", "evaluate_model", "format_table", "load_eval_data"]

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
    return _hook(model, ("image_conditions", "condition_from_images", "encode_condition_images"), "generate")


def _clip_image_encoder(model: Any) -> Callable[[Tensor], Tensor] | None:
    """``images -> CLIP image embeddings`` in the space of the prompt embeddings (for CLIP score), if offered."""
    return _hook(model, ("clip_image_embeddings", "encode_clip_images"), "generate")


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


#: datasets the kit's classifier (the judge for conditional accuracy and classifier FID) knows
JUDGED = ("digits", "mnist", "fashion-mnist")


def load_eval_data(dataset: str, data_root: str | os.PathLike | None = None,
                   meta: dict[str, Any] | None = None, image_size: int | None = None) -> Any:
    """The held-out split a model is evaluated on: a registered dataset's test split, or a prepared folder's.

    For prepared data (CelebA / COCO from ``data_prep``) ``data_root`` (or the checkpoint's ``meta["data_dir"]``)
    is the prep's ``--out`` folder; its ``test`` split is used, else ``val``.
    """
    from .data import DATASETS, check_dataset_name, load_dataset

    key = dataset.strip().lower().replace("_", "-")
    if key in DATASETS or key in ("fashion", "fashionmnist"):
        return load_dataset(check_dataset_name(key), data_root, "test")
    from .data.shards import load_prepared, prepared_splits

    meta = meta or {}
    folder = data_root or meta.get("data_dir") or meta.get("data_root") or meta.get("folder")
    if folder is None:
        raise KitError(f"{dataset!r} is a prepared dataset: pass its prep --out folder as --data-root")
    splits = prepared_splits(folder)
    split = next((s for s in ("test", "val", "valid") if s in splits), None)
    if split is None:
        raise KitError(f"{folder} has no held-out split (have {', '.join(splits) or 'none'}); evaluate needs "
                       f"test or val: re-run the prep with it")
    return load_prepared(folder, split, size=image_size or int(meta.get("image_size", 64)))


@torch.no_grad()
def evaluate_model(model: Any, dataset: str, data_root: str | os.PathLike | None = None, n: int = 1000,
                   seed: int = 0, inception: bool | None = None, class_names: Sequence[str] | None = None,
                   batch_size: int = 500, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every metric that applies to ``model`` (a kit model in eval mode, on its device), as a flat JSON-able dict.

    Args:
        model: a :class:`cvaelib.models.GenerativeModel`.
        dataset: what it was trained on (``mnist``, ``fashion-mnist``, ``digits``, or a prepared ``celeba``/``coco``).
        data_root: folder holding ``MNIST/`` and ``FashionMNIST/`` (default ``$CVAELIB_DATA`` or ``./data``), or the
            prepared folder of CelebA / COCO.
        n: test images to reconstruct and samples to generate (capped at the test split's size).
        seed: seeds the test subset and the samples, so two runs give the same numbers.
        inception: add Inception FID; ``None`` = only on a GPU (slow on a CPU), ``False`` = never, ``True`` = always
            (raises a clear error when the weights are missing offline).
        meta: the checkpoint's meta dict (prepared-data folder, class names).
    """
    from .data import subset
    from .metrics import mse, psnr, ssim, ssim_window
    from .metrics.fid import MIN_FID_SAMPLES

    if n < 2:
        raise KitError(f"--n must be at least 2 images to evaluate, got {n}")
    meta = dict(meta or {})
    device = next(model.parameters()).device
    condition = getattr(model, "condition", None)
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
    out: dict[str, Any] = {"model": getattr(model, "name", type(model).__name__), "dataset": dataset,
                           "condition": condition or "none", "n": m, "device": str(device), "seed": seed}
    if m < n:
        notes.append(f"the {dataset} evaluation split has {m} images: n capped at {m}")

    # --- the condition of each test image (for reconstructions, and for samples of vector models) ------------------
    cond_x: Tensor | None = None
    if condition == "label":
        cond_x = test.labels
    elif condition == "vector":
        cond_x = _test_conditions(model, test, names, dataset, batch_size, notes)

    # --- reconstructions -------------------------------------------------------------------------------------------
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
        notes.append("reconstruction skipped: the model offers no way to turn a test image into its condition "
                     "(give it encode_prompts / image_conditions, or evaluate on data with vector labels)")

    # --- samples, and how well they obey their condition -----------------------------------------------------------
    judge = None
    if dataset in JUDGED:
        from .classifier import get_classifier, predict

        judge = get_classifier(dataset, data_root).to(device)
        out["judge_accuracy"] = round(float((predict(judge, x) == test.labels).float().mean()), 4)
    samples: Tensor | None = None
    try:
        samples = _samples(model, condition, m, names, dataset, cond_x, judge, out, notes, seed, batch_size)
    except KitError as exc:  # e.g. a VQ-VAE whose prior was never trained: report, do not crash the evaluation
        notes.append(f"sampling skipped: {exc}")
    if isinstance(model, _autoencoder_class()) and samples is not None:
        notes.append("autoencoder: its 'samples' decode z ~ N(0, I), which is not where its codes live, so their "
                     "FID is expected to be poor (compare with a VAE)")

    # --- FID -------------------------------------------------------------------------------------------------------
    if samples is not None:
        _fids(out, notes, samples, x, dataset, data_root, meta, judge, m, seed, device, inception,
              int(model.image_shape[-1]))
        if m < MIN_FID_SAMPLES:
            notes.append(f"FID from {m} vs {m} samples is biased upward (use n >= {MIN_FID_SAMPLES} to publish); "
                         f"compare FIDs only at equal n, and against the real-data level at this n (real_*)")
    out["notes"] = notes
    return out


def _autoencoder_class() -> type:
    from .models import ConvAutoencoder

    return ConvAutoencoder


def _test_conditions(model: Any, test: Any, names: list[str], dataset: str, batch_size: int,
                     notes: list[str]) -> Tensor | None:
    """Condition vectors for the test images of a vector-conditioned model (None when there is no way to get them)."""
    device = next(model.parameters()).device
    labels = test.labels
    cond_dim = getattr(model, "cond_dim", None) or model.config.get("cond_dim")
    if labels.is_floating_point() and labels.dim() == 2 and (cond_dim is None or labels.shape[1] == int(cond_dim)):
        return labels.float()  # e.g. CelebA attribute vectors: the data carries the condition itself
    image_enc = _image_encoder(model)
    if image_enc is not None:  # language-free: the condition of an image is (a function of) its own embedding
        return _batched(lambda a: image_enc(a.to(device)), test.float_images(), batch_size=batch_size)
    prompt_enc = _prompt_encoder(model)
    if prompt_enc is None:
        return None
    captions = test.meta.get("captions")
    if captions:  # COCO: each image's first caption
        prompts = [caps[0] if caps else "" for caps in (captions[int(i)] for i in labels)]
    elif dataset in JUDGED:
        prompts = [class_prompts(dataset, names)[int(k)] for k in labels]
    else:
        notes.append(f"no captions or class names to turn {dataset} test images into prompts")
        return None
    return prompt_enc(prompts).float().cpu()


def _samples(model: Any, condition: str | None, m: int, names: list[str], dataset: str, cond_x: Tensor | None,
             judge: Any, out: dict, notes: list[str], seed: int, batch_size: int) -> Tensor | None:
    from .metrics import conditional_accuracy, sample_per_class

    gen = torch.Generator().manual_seed(seed + 1)  # CPU generator: identical samples on CPU and GPU
    device = next(model.parameters()).device
    if condition == "label":
        samples, wanted = sample_per_class(model, m, len(names), seed=seed + 1, batch_size=batch_size)
        if judge is not None:
            from .classifier import predict

            acc = conditional_accuracy(predict(judge, samples), wanted, len(names), names)
            out["cond_acc_mean"] = round(acc["mean"], 4)
            out["cond_acc_per_class"] = {k: round(v, 4) for k, v in acc["per_class"].items()}
        return samples
    if condition is None:
        return torch.cat([model.sample(min(batch_size, m - i), generator=gen).float().cpu()
                          for i in range(0, m, batch_size)])
    if judge is not None and (_prompt_encoder(model) is not None or _hook(model, ("prompt_images",))):
        return _prompt_samples(model, dataset, names, m, judge, out, notes, seed, batch_size)
    if cond_x is None:
        notes.append("sampling skipped: no conditions for this vector-conditioned model")
        return None
    # samples conditioned on the test images' own conditions (attributes, captions): comparable to the test set
    return torch.cat([model.sample(len(c), c.to(device), generator=gen).float().cpu()
                      for c in cond_x.split(batch_size)])


def _fids(out: dict, notes: list[str], samples: Tensor, x: Tensor, dataset: str, data_root: Any, meta: dict,
          judge: Any, m: int, seed: int, device: torch.device, inception: bool | None, size: int) -> None:
    from .data import subset
    from .metrics import classifier_features, fid_from_features, inception_features

    real_train = None
    try:  # the real-data level: n real training images vs the same test images
        if dataset in JUDGED:
            from .data import load_dataset

            real_train = subset(load_dataset(dataset, data_root, "train"), m, seed=seed).float_images()
        else:
            from .data.shards import load_prepared

            folder = data_root or meta.get("data_dir") or meta.get("data_root") or meta.get("folder")
            real_train = load_prepared(folder, "train", size=size, limit=m).float_images()
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


def _class_prompt_table(dataset: str, names: list[str]) -> dict[int, list[str]]:
    """Prompts naming each class: the kit's "what a student might type" list where it has one, else one template."""
    try:
        from .clip.captions import example_prompts

        table = {int(k): list(v) for k, v in example_prompts(dataset).items()}
        if sorted(table) == list(range(len(names))):
            return table
    except Exception:  # noqa: BLE001 - no caption module, or a dataset it does not caption
        pass
    return {k: [p] for k, p in enumerate(class_prompts(dataset, names))}


def _prompt_samples(model: Any, dataset: str, names: list[str], m: int, judge: Any, out: dict, notes: list[str],
                    seed: int, batch_size: int) -> Tensor:
    """Samples for prompts naming each class: prompt accuracy per class, and CLIP score when possible.

    ``m`` samples are spread evenly over the classes, and within a class over its prompts.  A model that turns a
    prompt into images itself (``prompt_images``, e.g. a CLIP-CVAE through its modality-gap bridge) is asked
    directly; otherwise the prompt's condition (``encode_prompts``) is decoded with z ~ N(0, I).
    """
    from .classifier import predict
    from .metrics import balanced_labels, clip_score, conditional_accuracy

    device = next(model.parameters()).device
    table = _class_prompt_table(dataset, names)
    counts = torch.bincount(balanced_labels(m, len(names)), minlength=len(names)).tolist()
    jobs: list[tuple[int, str, int]] = []  # (class, prompt, how many)
    for k, count in enumerate(counts):
        texts = table[k]
        jobs += [(k, t, count // len(texts) + (j < count % len(texts))) for j, t in enumerate(texts)]
    jobs = [job for job in jobs if job[2] > 0]
    prompt_images = _hook(model, ("prompt_images",))
    gen = torch.Generator().manual_seed(seed + 1)
    parts = []
    if prompt_images is not None:
        for i, (_, text, count) in enumerate(jobs):
            parts.append(prompt_images(text, count, seed + 1 + i).float().cpu())
    else:
        cond = _prompt_encoder(model)([text for _, text, _ in jobs]).float()
        for (_, _, count), c in zip(jobs, cond):
            for start in range(0, count, batch_size):
                b = min(batch_size, count - start)
                parts.append(model.sample(b, c.to(device).expand(b, -1), generator=gen).float().cpu())
    samples = torch.cat(parts)
    wanted = torch.cat([torch.full((count,), k) for k, _, count in jobs])
    per_sample_prompt = [text for _, text, count in jobs for _ in range(count)]
    acc = conditional_accuracy(predict(judge, samples), wanted, len(names), names)
    out["prompt_acc_mean"] = round(acc["mean"], 4)
    out["prompt_acc_per_class"] = {k: round(v, 4) for k, v in acc["per_class"].items()}
    out["prompts"] = {names[k]: table[k] for k in range(len(names))}
    # CLIP score: image and text embeddings from the same CLIP
    embed_images = _clip_image_encoder(model)
    embed_texts = _hook(model, ("clip_text_embeddings",)) or _prompt_encoder(model)
    if embed_images is not None and embed_texts is not None:
        img = _batched(lambda a: embed_images(a.to(device)), samples, batch_size=batch_size)
        distinct = sorted(set(per_sample_prompt))
        txt = embed_texts(distinct).float().cpu()
        row = {t: i for i, t in enumerate(distinct)}
        out["clip_score"] = round(float(clip_score(img, txt[[row[t] for t in per_sample_prompt]])), 4)
    else:
        notes.append("CLIP score skipped: the model offers no CLIP image encoder (clip_image_embeddings)")
    return samples


class ClipModelHooks:
    """A clip-cvae seen together with its CLIP encoder, exposing the hooks :func:`evaluate_model` looks for.

    Everything else (``sample``, ``reconstruct``, ``parameters``, ``config``...) is the model's own.
    """

    def __init__(self, model: Any, encoder: Any) -> None:
        self._model, self._encoder = model, encoder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def image_conditions(self, images: Tensor) -> Tensor:
        """Language-free condition of an image: its own CLIP image embedding (as in training)."""
        return self._encoder.encode_images(images.float().cpu())

    def clip_image_embeddings(self, images: Tensor) -> Tensor:
        return self._encoder.encode_images(images.float().cpu())

    def clip_text_embeddings(self, prompts: list[str]) -> Tensor:
        return self._encoder.encode_text(list(prompts))

    def prompt_images(self, prompt: str, n: int, seed: int) -> Tensor:
        """Text -> image through the model's modality-gap bridge (:func:`cvaelib.clip_generate.generate_from_text`)."""
        from .clip_generate import generate_from_text

        return generate_from_text(self._model, self._encoder, prompt, n, seed=seed)


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
    if getattr(model, "name", "") == "clip-cvae":
        try:  # its CLIP (TinyCLIP saved next to the checkpoint, or a named real CLIP) gives the prompt metrics
            from .clip_generate import load_clip_cvae

            clip_model, encoder = load_clip_cvae(path, device=pick_device(device))
            clip_model.checkpoint_meta = meta
            model = ClipModelHooks(clip_model, encoder)
        except KitError as exc:
            meta = {**meta, "_note": f"CLIP not available, prompt metrics skipped: {exc}"}
    dataset = dataset or meta.get("dataset")
    if not dataset:
        shape = tuple(model.image_shape)
        if shape == (1, 8, 8):
            dataset = "digits"
        else:
            raise KitError(f"{resolve_checkpoint(path)} does not record its dataset; pass dataset= "
                           f"(CLI: --dataset mnist|fashion-mnist|digits)")
    result = evaluate_model(model, dataset, data_root, n=n, seed=seed, inception=inception,
                            class_names=meta.get("class_names"), meta=meta)
    if "_note" in meta:
        result["notes"].insert(0, meta["_note"])
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

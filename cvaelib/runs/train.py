"""``train``: data -> the conditions the model's kind needs -> model -> :func:`cvaelib.train.fit` -> run folder.

One path for every model: the model class (``--model``) says which condition kind it has, the conditioning layer
prepares the data for that kind (class ids, attribute vectors, CLIP embeddings) and tells the config what it learnt
from the data (class count, attribute names, embedding size), and options the user gives must be parameters of the
model's constructor - anything else is refused with the options that do apply.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..conditioning import Conditioning, Prepared, conditioning_class
from ..errors import KitError

#: CLI flag of each model option ``train`` passes on (the model's constructor decides whether it takes it)
MODEL_FLAGS = {"latent_dim": "--latent-dim", "beta": "--beta", "injection": "--injection", "width": "--width",
               "perceptual": "--perceptual", "condition_noise": "--condition-noise", "clip": "--clip",
               "swap_weight": "--swap-weight", "prior": "--prior"}


@dataclass
class TrainRun:
    """What :func:`train_model` made: the model, its history and metrics, and its prepared data."""

    model: Any
    history: Any
    metrics: dict[str, Any]
    prepared: Prepared
    conditioning: Conditioning


def _load_data(dataset: str, data_root: str | os.PathLike | None, image_size: int | None, limit: int | None,
               seed: int, download: bool) -> tuple[Any, Any, str]:
    """Train/val splits and the dataset spec to store (prepared folders as ``celeba:/absolute/folder``)."""
    from ..data import check_dataset_name, load_dataset, subset, train_val_split
    from ..data.prepared import absolute_spec, load_prepared_split, parse_prepared
    from ..data.shards import prepared_splits

    prepared = parse_prepared(dataset)
    if prepared is None:
        if image_size is not None:
            raise KitError("--image-size applies to prepared data (--dataset celeba:DIR or coco:DIR)")
        name = check_dataset_name(dataset)
        data = load_dataset(name, data_root, "train", download=download)
        if limit is not None:  # a quick run on a seeded subset
            data = subset(data, limit, seed=seed)
        train, val = train_val_split(data, 0.1, seed=seed)
        return train, val, name
    spec, size = absolute_spec(dataset), image_size or 64
    splits = prepared_splits(prepared[1])
    first = "train" if "train" in splits else next(iter(splits), "train")  # e.g. the COCO sample has only val
    data = load_prepared_split(spec, first, size=size, limit=limit)
    if len(data) < 2:
        raise KitError(f"{prepared[1]} has {len(data)} training images; prepare more (or raise --limit)")
    if "val" in splits and first != "val" and limit is None:
        return data, load_prepared_split(spec, "val", size=size), spec
    train, val = train_val_split(data, 0.1, seed=seed)
    return train, val, spec


def _check_options(name: str, cls: Any, given: dict[str, Any]) -> None:
    from ..models import model_options

    takes = model_options(cls)
    for key in given:
        if key not in takes:
            flags = ", ".join(f for k, f in MODEL_FLAGS.items() if k in takes)
            raise KitError(f"{MODEL_FLAGS[key]} does not apply to --model {name}; its options: {flags or 'none'}")


def _finished_run(ckpt: Path, name: str, given: dict[str, Any], data_id: dict, settings: dict[str, Any],
                  epochs: int, max_seconds: float | None) -> dict | None:
    """The checkpoint of a run that already did what is asked with these options and data (None otherwise)."""
    from ..checkpoint import load_checkpoint
    from ..conditioning.clip import clip_spec
    from ..train import run_is_finished

    try:
        state = load_checkpoint(ckpt)
    except KitError:
        return None
    config = state["config"]
    same = config.get("model") == name and state.get("data") == data_id and all(
        state.get("settings", {}).get(k) == v for k, v in settings.items()) and all(
        config.get(k) == (clip_spec(v) if k == "clip" and v != "tiny" else v) for k, v in given.items())
    return state if same and run_is_finished(state, epochs, max_seconds) else None


def train_model(model: str, dataset: str, out: str | os.PathLike, data_root: str | os.PathLike | None = None, *,
                epochs: int = 10, max_seconds: float | None = None, latent_dim: int | None = None,
                beta: float | None = None, injection: str | None = None, width: int | None = None,
                perceptual: float | None = None, condition_noise: float | None = None, clip: str | None = None,
                swap_weight: float | None = None, prior: str | None = None, tiny_seconds: float | None = None, image_size: int | None = None, limit: int | None = None,
                batch_size: int | None = None, lr: float | None = None, lr_schedule: str | None = None,
                precision: str = "auto", seed: int = 0, every: int = 1, resume: bool = False,
                device: str | None = None, download: bool = False, quiet: bool = False) -> TrainRun:
    """Train ``model`` on ``dataset`` into the run folder ``out`` (``checkpoint.pt``, ``metrics.json``,
    ``samples.png``).  Options left None take the model class's defaults; see ``python -m cvaelib train --help``."""
    from ..checkpoint import check_writable, load_model
    from ..device import pick_device
    from ..distributed import is_main_process
    from ..models import build_model, model_class
    from ..train import History, fit, last_terms
    from .outputs import save_image_grid, write_json

    cls = model_class(model)
    given = {k: v for k, v in dict(latent_dim=latent_dim, beta=beta, injection=injection, width=width,
                                   perceptual=perceptual, condition_noise=condition_noise, clip=clip,
                                   swap_weight=swap_weight, prior=prior).items()
             if v is not None}
    _check_options(model, cls, given)
    cls.check_choices(given)
    kind = cls.kind_for({**_defaults(cls), **given})
    if tiny_seconds is not None and (kind != "clip" or (clip or "tiny") != "tiny"):
        raise KitError("--tiny-seconds applies to runs that train TinyCLIP (--model clip-cvae --clip tiny)")
    out = Path(out)
    check_writable(out)
    device = pick_device(device)
    train, val, spec = _load_data(dataset, data_root, image_size, limit, seed, download)
    cls.check_image_shape(train.shape)
    ckpt = out / "checkpoint.pt"
    cond_cls = conditioning_class(kind)
    settings = {"batch_size": batch_size or cls.recommended_batch_size,
                "lr": lr if lr is not None else cls.recommended_lr,
                "lr_schedule": lr_schedule or cls.recommended_lr_schedule}
    if resume and ckpt.is_file():
        state = _finished_run(ckpt, model, given, train.fingerprint(), settings, epochs, max_seconds)
        if state is not None:  # nothing to do: load, and leave the checkpoint as it is
            net = load_model(ckpt, device=device)
            metrics_file = out / "metrics.json"
            history = History.from_dict(state["history"])
            metrics = _metrics(model, spec, net, history, settings, device, max_seconds, last_terms,
                               state.get("meta", {}))
            if not metrics_file.is_file() and is_main_process():
                write_json(metrics_file, metrics)
            metrics["unchanged"] = True  # nothing trained: the run folder is as it was
            return TrainRun(net, history, metrics, Prepared(train, val, {}), cond_cls(net, out))
    prepared = cond_cls.prepare_training(train, val, out=out, clip=clip or _defaults(cls).get("clip"),
                                         tiny_seconds=tiny_seconds, data_root=data_root, seed=seed, device=device,
                                         progress=not quiet)
    config = {"model": model, "image_shape": list(prepared.train.shape), **_taken(cls, prepared.facts), **given}
    if "clip" in prepared.facts:
        config["clip"] = prepared.facts["clip"]
    torch.manual_seed(seed)
    net = build_model(config)
    conditioning = conditioning_class(net.condition)(
        net, out, **({"encoder": prepared.encoder} if prepared.encoder is not None else {}))
    conditioning.setup_model(prepared)
    meta = {"dataset": spec, "class_names": prepared.train.class_names, **prepared.meta}
    if spec != train.name:
        meta["image_size"] = int(prepared.train.shape[-1])
    history = fit(net, prepared.train, prepared.val, epochs=epochs, lr=settings["lr"],
                  lr_schedule=settings["lr_schedule"], batch_size=settings["batch_size"], precision=precision,
                  max_seconds=max_seconds, device=device, seed=seed, checkpoint=ckpt, every=every, resume=resume,
                  progress=not quiet, meta=meta)
    metrics = _metrics(model, spec, net, history, settings, device, max_seconds, last_terms, prepared.meta)
    if is_main_process():  # under torchrun only rank 0 writes files
        write_json(out / "metrics.json", metrics)
        if not history.interrupted:
            drawn = conditioning.preview(prepared.val, seed)
            save_image_grid(out / "samples.png", drawn.images, drawn.title, drawn.row_labels, drawn.ncols)
    if history.interrupted:
        raise KeyboardInterrupt
    return TrainRun(net, history, metrics, prepared, conditioning)


def _defaults(cls: Any) -> dict[str, Any]:
    from ..models import model_options

    return model_options(cls)


def _taken(cls: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """The facts a model class's constructor takes (e.g. ``num_refs`` is only clip-cvae's)."""
    from ..models import model_options

    takes = model_options(cls)
    return {k: v for k, v in facts.items() if k in takes}


def _metrics(name: str, spec: str, model: Any, history: Any, settings: dict, device: Any,
             max_seconds: float | None, last_terms: Any, extra: dict) -> dict[str, Any]:
    budget = {"max_seconds": max_seconds, **history.budget} if max_seconds is not None else {}
    return {"model": name, "dataset": spec, "config": model.config, "epochs": history.epochs,
            "seconds": round(history.seconds, 3), "images_per_second": round(history.images_per_second, 1),
            **settings, "stopped_by_time": history.stopped_by_time, "interrupted": history.interrupted,
            "device": str(device), "world_size": int(os.environ.get("WORLD_SIZE", 1)), "phases": history.phases,
            "budget": budget, **{k: v for k, v in extra.items() if v is not None}, **last_terms(history)}


def train_run(model: str, dataset: str, out: str | os.PathLike, data_root: str | os.PathLike | None = None,
              epochs: int = 10, **options: Any) -> dict[str, Any]:
    """Library form of ``python -m cvaelib train``: returns the metrics dict (options as :func:`train_model`)."""
    return train_model(model, dataset, out, data_root, epochs=epochs, **options).metrics


__all__ = ["MODEL_FLAGS", "TrainRun", "train_model", "train_run"]

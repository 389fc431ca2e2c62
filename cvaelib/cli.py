"""Command line: ``python -m cvaelib <command> ...`` (run with ``--help`` for each command).

The commands and their options are a stable contract used by other tools. Every command validates its arguments
before heavy work and reports mistakes as one ``error: ...`` line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .errors import KitError

#: per-model defaults for options left unset on the command line
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "ae": {"latent_dim": 16},
    "vae": {"latent_dim": 16},
    "vae-mlp": {"latent_dim": 20},
    "cvae": {"latent_dim": 96, "width": 16, "hidden": 0, "decoder": "mlp", "decoder_hidden": 1024, "decoder_layers": 1,
             "beta": 0.02, "prior": "fitted", "prior_components": 30},
    "resvae": {"latent_dim": 128},
    "attr-cvae": {"latent_dim": 128},
    "clip-cvae": {"latent_dim": 16},
    "vqvae": {"latent_dim": 16},
}
TRAIN_MODELS = ["ae", "vae", "vae-mlp", "cvae", "resvae", "attr-cvae", "clip-cvae", "vqvae"]
#: models for 64x64 colour data from a prepared folder (--dataset celeba:DIR / coco:DIR)
PREPARED_MODELS = ("resvae", "attr-cvae")


def _positive(kind: type, name: str, allow_zero: bool = False):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {text}")
        return value
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"error: {message} (see: python -m cvaelib {self.prog.split()[-1]} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full ``python -m cvaelib`` parser (subcommands register here)."""
    p = _Parser(prog="cvaelib", description="cvae-course-kit: train, sample and inspect (conditional) VAEs.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a model and write checkpoint.pt, metrics.json, samples.png")
    t.add_argument("--model", required=True,
                   help="ae, vae, vae-mlp, cvae, clip-cvae, vqvae; resvae, attr-cvae (prepared CelebA/COCO)")
    t.add_argument("--cond", default="concat", help="CVAE condition: concat, additive or onehot")
    t.add_argument("--dataset", required=True, help="digits (bundled), mnist, fashion-mnist, or a prepared folder: "
                   "celeba:DIR / coco:DIR (written by python -m data_prep.celeba / data_prep.coco)")
    t.add_argument("--injection", default="down3",
                   help="resvae condition injection: none, input, down3, down4, latent; "
                   "clip-cvae: features (default), hidden, input")
    t.add_argument("--clip", default=None, help="CLIP for resvae / clip-cvae conditions (a name, file, or tiny:PATH; "
                   "default ViT-B/32 for resvae; clip-cvae: tiny = train or reuse TinyCLIP in the output folder)")
    t.add_argument("--tiny-seconds", type=_positive(float, "--tiny-seconds"), default=150.0,
                   help="clip-cvae: TinyCLIP training budget (cached in ~/.cache/cvaelib)")
    t.add_argument("--cond-noise", type=_positive(float, "--cond-noise", True), default=0.1,
                   help="clip-cvae: LAFITE perturbation of the image embeddings while training")
    t.add_argument("--image-size", type=_positive(int, "--image-size"), default=64, help="prepared size (64 or 128)")
    t.add_argument("--perceptual", type=_positive(float, "--perceptual", True), default=0.0,
                   help="weight of the VGG19 perceptual loss for resvae/attr-cvae (0 = off; needs VGG19 weights)")
    t.add_argument("--limit", type=_positive(int, "--limit"), default=None, help="use only the first N items")
    t.add_argument("--width", type=_positive(int, "--width"), default=None,
                   help="resvae/attr-cvae channels of the first block (default 32)")
    t.add_argument("--data-root", default=None, help="folder with MNIST/ FashionMNIST/ ($CVAELIB_DATA or ./data)")
    t.add_argument("--epochs", type=_positive(int, "--epochs", True), default=10)
    t.add_argument("--max-seconds", type=_positive(float, "--max-seconds"), default=None)
    t.add_argument("--latent-dim", type=_positive(int, "--latent-dim"), default=None,
                   help="size of z (cvae default: 96, at most a quarter of the pixels)")
    t.add_argument("--batch-size", type=_positive(int, "--batch-size"), default=None,
                   help="images per step (default 256 for cvae, 128 otherwise)")
    t.add_argument("--lr", type=_positive(float, "--lr"), default=None,
                   help="Adam learning rate (default 4e-3 for cvae, 1e-3 otherwise)")
    t.add_argument("--lr-schedule", default="cosine", choices=["constant", "cosine"],
                   help="cosine: decay the learning rate to 0 over --epochs (default)")
    t.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="mixed precision: auto = fp16 on CUDA, bf16 on CPUs with native bf16 units, else fp32")
    t.add_argument("--beta", type=_positive(float, "--beta", True), default=None,
                   help="KL weight (default: 0.02 for cvae, with its fitted sampling prior; 1 otherwise)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--every", type=_positive(int, "--every"), default=1, help="checkpoint every N epochs")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    t.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    t.add_argument("--download", action="store_true", help="let torchvision download missing data")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("--out", required=True, help="output folder")
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("generate", help="sample images from a trained model")
    g.add_argument("--checkpoint", required=True, help="run folder or checkpoint.pt")
    g.add_argument("--label", default=None, help="class id or name (conditional models)")
    g.add_argument("--n", type=_positive(int, "--n"), default=16)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out", required=True, help="PNG file for the grid")
    g.add_argument("--npy", default=None, help="also write float32 [N, C, H, W] in [0, 1]")
    g.add_argument("--device", default=None)
    g.add_argument("--prompt", default=None, help="text to draw (clip-cvae: any text, e.g. 'a handwritten seven'; "
                   "cvae: class names and synonyms, e.g. 'sneakers and a bag': --n images per class)")
    g.add_argument("--to", default=None, help="clip-cvae: interpolate from --prompt to this text in --n steps")
    g.add_argument("--image-npy", default=None, help="clip-cvae: images [N, C, H, W] in [0, 1]: image -> image, or "
                   "with --prompt attribute manipulation by --factor")
    g.add_argument("--factor", type=float, default=0.5, help="clip-cvae manipulation: weight of the image embedding")
    g.add_argument("--bridge", default="retrieval", help="clip-cvae text bridge: retrieval, shift or direct")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("reconstruct", help="reconstruct images given as .npy")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--npy-in", required=True, help="float32 [N, C, H, W] in [0, 1] (uint8 0..255 also accepted)")
    r.add_argument("--npy-out", required=True)
    r.add_argument("--labels", default=None, help="int64 [N] class ids (for CVAEs)")
    r.add_argument("--device", default=None)
    r.set_defaults(func=cmd_reconstruct)

    q = sub.add_parser("quickstart", help="train a small CVAE on the bundled digits and save a sample grid")
    q.add_argument("--out", default="runs/quickstart")
    q.add_argument("--max-seconds", type=_positive(float, "--max-seconds"), default=60.0)
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_quickstart)

    pp = sub.add_parser("parse-prompt", help="turn short text into class ids (one JSON object per prompt)")
    pp.add_argument("--dataset", required=True, help="mnist, fashion-mnist or digits")
    pp.add_argument("text", nargs="+", metavar="TEXT", help="e.g. 'a pair of sneakers' 'the digit 7'")
    pp.set_defaults(func=cmd_parse_prompt)

    e = sub.add_parser("evaluate", help="compute every metric that applies to a trained model, print a table")
    e.add_argument("--checkpoint", required=True, help="run folder or checkpoint.pt")
    e.add_argument("--data-root", default=None, help="folder with MNIST/ FashionMNIST/ ($CVAELIB_DATA or ./data)")
    e.add_argument("--n", type=_positive(int, "--n"), default=1000, help="test images / samples per metric")
    e.add_argument("--dataset", default=None, help="override the dataset stored in the checkpoint")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default=None)
    e.add_argument("--out", default=None, help="write the metrics as JSON here (e.g. metrics.json)")
    e.set_defaults(func=cmd_evaluate)

    f = sub.add_parser("fetch", help="download MNIST / Fashion-MNIST with torchvision (internet needed)")
    f.add_argument("dataset")
    f.add_argument("--data-root", default=None)
    f.set_defaults(func=cmd_fetch)
    return p


# --- helpers -------------------------------------------------------------------------------------------------------
def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    tmp.replace(path)


def _check_injection(args: argparse.Namespace) -> None:
    from .models import INJECTIONS

    if args.injection not in INJECTIONS:
        raise KitError(f"unknown --injection {args.injection!r}; choose one of: {', '.join(INJECTIONS)}")
    if args.model == "attr-cvae" and args.injection == "none":
        raise KitError("attr-cvae is conditioned on the attributes: choose an --injection other than none")


def _model_config(args: argparse.Namespace, shape: tuple[int, int, int], num_classes: int) -> dict[str, Any]:
    from .models import COND_MODES

    if args.model not in TRAIN_MODELS:
        raise KitError(f"unknown model {args.model!r}; choose one of: {', '.join(TRAIN_MODELS)}")
    config: dict[str, Any] = {"model": args.model, "image_shape": list(shape), **MODEL_DEFAULTS[args.model]}
    if args.latent_dim is not None:
        config["latent_dim"] = args.latent_dim
    if args.beta is not None:
        if args.model == "ae":
            raise KitError("--beta applies to VAEs only; drop it for --model ae")
        config["beta"] = args.beta
    if args.model in PREPARED_MODELS:
        _check_injection(args)
        config.update(injection=args.injection, perceptual=args.perceptual)
        if args.width is not None:
            config["width"] = args.width
    if args.model == "cvae":
        if args.cond not in COND_MODES:
            raise KitError(f"unknown --cond {args.cond!r}; choose one of: {', '.join(COND_MODES)}")
        config.update(cond=args.cond, num_classes=num_classes)
        if args.latent_dim is None:  # at most a quarter of the pixels: 96 for 28x28, 16 for the 8x8 digits
            # (digits, 400 epochs: 99.2 % class-correct samples with z 16, 96.7 % with 64, 92.8 % with 96)
            config["latent_dim"] = min(config["latent_dim"], shape[1] * shape[2] // 4)
    if args.model == "vqvae":  # --beta is the commitment weight; the code prior is class-conditional
        config.update(num_classes=num_classes)
    return config


def train_run(model_name: str, dataset: str, out: str | Path, data_root: str | None = None, epochs: int = 10,
              **options: Any) -> dict[str, Any]:
    """Library form of ``train``: returns the metrics dict (used by the CLI and notebooks)."""
    args = build_parser().parse_args(["train", "--model", model_name, "--dataset", dataset, "--out", str(out),
                                      "--epochs", str(epochs)] + (["--data-root", str(data_root)] if data_root else []))
    for k, v in options.items():
        setattr(args, k, v)
    return _train(args)


def _train(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    if args.model == "clip-cvae":
        return _train_clip_cvae(args)

    from .checkpoint import check_writable
    from .data import check_dataset_name, load_dataset, subset, train_val_split
    from .models import build_model
    from .train import fit, last_terms, pick_device
    from .viz import save_grid, show_samples

    from .conditions import parse_prepared
    from .distributed import is_main_process

    prepared = parse_prepared(args.dataset)
    dataset = args.dataset if prepared else check_dataset_name(args.dataset)
    if args.model not in TRAIN_MODELS:
        raise KitError(f"unknown model {args.model!r}; choose one of: {', '.join(TRAIN_MODELS)}")
    if (args.model in PREPARED_MODELS) != (prepared is not None):
        raise KitError(f"--model {args.model} needs " + ("--dataset celeba:DIR or coco:DIR (a prepared folder)"
                       if prepared is None else "--model resvae or attr-cvae for prepared colour data"))
    if prepared:
        _check_injection(args)  # before loading data or CLIP
    out = Path(args.out)
    check_writable(out)
    device = pick_device(args.device)
    if prepared:
        train, val, conditions = _prepared_data(args, prepared, out, device)
        data = train
    else:
        data = load_dataset(dataset, args.data_root, "train", download=args.download)
        if args.limit is not None:  # a quick run on a seeded subset
            data = subset(data, args.limit, seed=args.seed)
        train, val = train_val_split(data, 0.1, seed=args.seed)
    config = _model_config(args, data.shape, data.num_classes)
    if args.model == "attr-cvae":
        config["attribute_names"] = list(train.class_names)
    elif args.model == "resvae" and args.injection != "none":
        config["cond_dim"] = int(train.labels.shape[1])  # the CLIP embedding size
        config["clip"] = args.clip or "ViT-B/32"  # generation loads the same CLIP with load_clip(config["clip"])
    torch.manual_seed(args.seed)
    model = build_model(config)
    meta = {"dataset": dataset, "class_names": data.class_names}
    world = int(os.environ.get("WORLD_SIZE", 1))  # > 1 under torchrun: fit runs DDP (cvaelib.distributed)
    lr = args.lr if args.lr is not None else getattr(type(model), "recommended_lr", 1e-3)
    batch_size = args.batch_size or getattr(type(model), "recommended_batch_size", 128)
    history = fit(model, train, val, epochs=args.epochs, lr=lr, lr_schedule=args.lr_schedule,
                  batch_size=batch_size, precision=args.precision,
                  max_seconds=args.max_seconds, device=device, seed=args.seed, checkpoint=out / "checkpoint.pt",
                  every=args.every, resume=args.resume, progress=not args.quiet, meta=meta)
    metrics = {"model": args.model, "dataset": dataset, "config": config, "epochs": history.epochs,
               "seconds": round(history.seconds, 3), "images_per_second": round(history.images_per_second, 1),
               "batch_size": batch_size, "lr": lr,
               "stopped_by_time": history.stopped_by_time, "interrupted": history.interrupted,
               "device": str(device), "world_size": world, **last_terms(history)}
    if not is_main_process():  # under torchrun only rank 0 writes files
        return metrics
    _write_json(out / "metrics.json", metrics)
    if prepared and model.condition is not None:
        from .viz import show_grid

        g = torch.Generator().manual_seed(args.seed)
        samples = model.sample(len(conditions), conditions.to(next(model.parameters()).device), generator=g)
        save_grid(show_grid(samples.cpu(), ncols=8, title="samples, conditioned like validation images"),
                  out / "samples.png")
    else:
        save_grid(show_samples(model, class_names=data.class_names), out / "samples.png")
    if history.interrupted:
        raise KeyboardInterrupt
    return metrics


def _prepared_data(args: argparse.Namespace, prepared: tuple[str, Path], out: Path, device):
    """Train/val splits of a prepared folder with the condition ``--model`` needs, and 16 sample conditions."""
    from .conditions import condition_rows, load_prepared_split, with_clip_condition
    from .data import train_val_split
    from .data.shards import prepared_splits

    name, folder = prepared
    splits = prepared_splits(folder)
    first = "train" if "train" in splits else next(iter(splits), "train")  # e.g. the COCO sample has only val
    data = load_prepared_split(args.dataset, first, size=args.image_size, limit=args.limit)
    if len(data) < 2:
        raise KitError(f"{folder} has {len(data)} training images; prepare more (or raise --limit)")
    if "val" in splits and first != "val" and args.limit is None:
        train, val = data, load_prepared_split(args.dataset, "val", size=args.image_size)
    else:
        train, val = train_val_split(data, 0.1, seed=args.seed)
    if args.model == "attr-cvae" and not (train.labels.is_floating_point() and train.labels.ndim == 2):
        raise KitError(f"attr-cvae needs CelebA attributes; {name} has none: use --model resvae (CLIP condition)")
    if args.model == "resvae" and args.injection != "none":
        from .clip import load_clip

        encoder = load_clip(args.clip or "ViT-B/32", device=device)
        cache = out / "clip_cache"
        train = with_clip_condition(train, encoder, cache / "train")
        val = with_clip_condition(val, encoder, cache / "val")
    return train, val, condition_rows(val, 16)


def cmd_train(args: argparse.Namespace) -> int:
    metrics = _train(args)
    from .distributed import is_main_process

    if not is_main_process():
        return 0
    out = Path(args.out)
    print(f"trained {metrics['model']} on {metrics['dataset']}: {metrics['epochs']} epochs in "
          f"{metrics['seconds']:.1f} s ({metrics['images_per_second']:.0f} images/s); "
          f"val loss {metrics.get('val_loss', float('nan')):.2f}")
    print(f"wrote {out / 'checkpoint.pt'}, {out / 'metrics.json'}, {out / 'samples.png'}")
    return 0


def _load(args: argparse.Namespace):
    from .checkpoint import load_model
    from .train import pick_device

    return load_model(args.checkpoint, device=pick_device(args.device))


def _class_names(model) -> list[str]:
    meta = getattr(model, "checkpoint_meta", {}) or {}
    if meta.get("class_names"):
        return list(meta["class_names"])
    return [str(i) for i in range(int(model.config.get("num_classes", 0)))]


def _save_npy(path: str | Path, array) -> None:
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".tmp.npy"), "wb") as fh:
        np.save(fh, array)
    path.with_suffix(".tmp.npy").replace(path)


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import generate_images, resolve_label
    from .viz import save_grid, show_grid

    if _is_clip_cvae(args.checkpoint):
        return _generate_clip(args)

    model = _load(args)
    names = _class_names(model)
    if args.prompt is not None:
        return _generate_prompt(args, model, names)
    label = None
    if args.label is not None:
        if model.condition != "label":
            raise KitError(f"this {model.name} model is unconditional: omit --label")
        label = resolve_label(args.label, names)
    images = generate_images(model, args.n, label, seed=args.seed)
    title = f"{names[label]} (class {label})" if label is not None else f"{model.name} samples"
    save_grid(show_grid(images, ncols=min(args.n, 8), title=title), args.out)
    if args.npy:
        _save_npy(args.npy, images.numpy().astype("float32"))
    print(f"wrote {args.n} images to {args.out}" + (f" and {args.npy}" if args.npy else ""))
    return 0


def _generate_prompt(args: argparse.Namespace, model, names: list[str]) -> int:
    """``generate --prompt TEXT`` for a label CVAE: the classes named in TEXT, --n samples each, one row per class."""
    from .prompts import samples_for_prompt
    from .viz import save_grid, show_grid

    if args.label is not None:
        raise KitError("give either --label or --prompt, not both")
    for opt in ("to", "image_npy"):
        if getattr(args, opt, None) is not None:
            raise KitError(f"--{opt.replace('_', '-')} is for clip-cvae checkpoints; this is a {model.name} model")
    images, ids = samples_for_prompt(model, args.prompt, n=args.n, seed=args.seed, class_names=names)
    save_grid(show_grid(images, ncols=args.n, row_labels=[names[k] for k in ids], title=args.prompt), args.out)
    if args.npy:
        _save_npy(args.npy, images.numpy().astype("float32"))
    print(f"wrote {len(images)} images ({', '.join(names[k] for k in ids)}) to {args.out}"
          + (f" and {args.npy}" if args.npy else ""))
    return 0


def cmd_parse_prompt(args: argparse.Namespace) -> int:
    """Print one JSON object per prompt; the first prompt without a class is an error (exit status 2)."""
    from .data import check_dataset_name
    from .prompts import describe_prompt

    dataset = check_dataset_name(args.dataset)
    for text in args.text:
        print(json.dumps(describe_prompt(text, dataset)), flush=True)
    return 0


def _read_npy(path: str, what: str):
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise KitError(f"{what} file {p} does not exist")
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise KitError(f"{p} is not a readable .npy array ({exc}); save it with numpy.save") from None


def cmd_reconstruct(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .generate import reconstruct_images

    x = _read_npy(args.npy_in, "--npy-in")
    labels = _read_npy(args.labels, "--labels") if args.labels else None
    model = _load(args)
    shape = tuple(model.image_shape)
    if x.ndim == 3 and shape[0] == 1:
        x = x[:, None]
    if x.ndim != 4 or tuple(x.shape[1:]) != shape:
        raise KitError(f"--npy-in has shape {list(x.shape)}, this model needs [N, {', '.join(map(str, shape))}]")
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    x = x.astype(np.float32)
    if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise KitError("--npy-in values must be finite and in [0, 1] (or uint8 0..255)")
    if model.name == "clip-cvae":
        return _reconstruct_clip(args, x)
    lab = None
    if labels is not None:
        if labels.shape != (len(x),):
            raise KitError(f"--labels has shape {list(labels.shape)}, expected [{len(x)}]")
        n_cls = int(model.config.get("num_classes", 0))
        if n_cls and (labels.min() < 0 or labels.max() >= n_cls):
            raise KitError(f"--labels must be class ids in 0..{n_cls - 1}")
        lab = torch.from_numpy(labels.astype(np.int64))
    elif model.condition == "label" and getattr(model, "reconstruction_needs_condition", True):
        raise KitError("this model is class-conditional: pass --labels L.npy (int64, one per image)")
    recon = reconstruct_images(model, torch.from_numpy(x), lab)
    _save_npy(args.npy_out, recon.numpy().astype(np.float32))
    print(f"wrote {len(recon)} reconstructions to {args.npy_out}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    out = Path(args.out)
    print("Training a class-conditional VAE on scikit-learn's bundled 8x8 digits (no download needed)...")
    t0 = time.perf_counter()
    metrics = train_run("cvae", "digits", out, epochs=400, max_seconds=args.max_seconds, seed=args.seed)
    print(f"done in {time.perf_counter() - t0:.0f} s ({metrics['epochs']} epochs, "
          f"{metrics['images_per_second']:.0f} images/s).")
    print(f"Per-class samples (one row per digit): {(out / 'samples.png').resolve()}")
    print(f"Next: python -m cvaelib generate --checkpoint {out} --label seven --out seven.png")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .checkpoint import resolve_checkpoint
    from .evaluate import evaluate_checkpoint, format_table

    resolve_checkpoint(args.checkpoint)  # a missing file fails here, before any data is loaded
    if args.out:
        out = Path(args.out)
        if out.is_dir():
            raise KitError(f"--out {out} is a folder; give a file name such as {out / 'metrics.json'}")
        out.parent.mkdir(parents=True, exist_ok=True)
    metrics = evaluate_checkpoint(args.checkpoint, data_root=args.data_root, n=args.n, device=args.device,
                                  dataset=args.dataset, seed=args.seed)
    print(format_table(metrics))
    if args.out:
        _write_json(Path(args.out), metrics)
        print(f"wrote {args.out}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from .data import fetch

    print(f"{args.dataset} is in {fetch(args.dataset, args.data_root)}")
    return 0


# --- CLIP-conditioned CVAE (clip-cvae): train / generate / reconstruct ------------------------------------------------
def _is_clip_cvae(checkpoint: str) -> bool:
    from .checkpoint import load_checkpoint

    return load_checkpoint(checkpoint).get("config", {}).get("model") == "clip-cvae"


def _train_clip_cvae(args: argparse.Namespace) -> dict[str, Any]:
    """``train --model clip-cvae``: TinyCLIP (trained, or loaded from OUT/tinyclip.pt) or a real CLIP, then the CVAE."""
    from .checkpoint import check_writable
    from .clip.captions import SYNONYMS, example_prompts
    from .clip_generate import generate_from_text, train_clip_cvae
    from .data import check_dataset_name
    from .models.clip_cvae import INJECT_POINTS
    from .viz import save_grid, show_grid

    dataset = check_dataset_name(args.dataset)
    clip = args.clip or "tiny"
    if clip == "tiny" and dataset not in SYNONYMS:
        raise KitError(f"TinyCLIP has captions for {', '.join(SYNONYMS)} only; use --clip ViT-B/32 for {dataset}")
    inject = "features" if args.injection in (None, "down3") else args.injection
    if inject not in INJECT_POINTS:
        raise KitError(f"unknown --injection {inject!r} for clip-cvae; choose one of: {', '.join(INJECT_POINTS)}")
    out = Path(args.out)
    check_writable(out)
    run = train_clip_cvae(dataset, out, args.data_root, clip=clip, tiny_seconds=args.tiny_seconds,
                          epochs=args.epochs, max_seconds=args.max_seconds, latent_dim=args.latent_dim or 16,
                          inject=inject, beta=0.1 if args.beta is None else args.beta, cond_noise=args.cond_noise,
                          batch_size=args.batch_size or 128, lr=args.lr if args.lr is not None else 1e-3,
                          seed=args.seed, device=args.device,
                          progress=not args.quiet, resume=args.resume, every=args.every, limit=args.limit)
    metrics = run["metrics"]
    _write_json(out / "metrics.json", metrics)
    model, encoder = run["model"], run["encoder"]
    if dataset in SYNONYMS:  # samples.png: one example prompt per class, one row each
        import torch

        prompts = [texts[0] for texts in example_prompts(dataset).values()]
        rows = [generate_from_text(model, encoder, text, 8, seed=args.seed + i) for i, text in enumerate(prompts)]
        save_grid(show_grid(torch.cat(rows), ncols=8, title="rows: " + "; ".join(prompts)), out / "samples.png")
    if run["history"].interrupted:
        raise KeyboardInterrupt
    return metrics


def _generate_clip(args: argparse.Namespace) -> int:
    """``generate`` for a clip-cvae checkpoint: --prompt (text->image), --image-npy (image->image),
    both (attribute manipulation by --factor), --prompt A --to B (interpolation), same outputs as labels."""
    import numpy as np
    import torch

    from .clip_generate import (generate_from_images, generate_from_text, interpolate, load_clip_cvae,
                                manipulate)
    from .viz import save_grid, show_grid

    if args.label is not None:
        raise KitError("this clip-cvae model is conditioned on CLIP embeddings: use --prompt TEXT instead of --label")
    if args.prompt is None and args.image_npy is None:
        raise KitError("clip-cvae needs --prompt TEXT (text -> image) or --image-npy FILE (image -> image)")
    model, encoder = load_clip_cvae(args.checkpoint, args.device)
    images = None
    if args.image_npy is not None:
        arr = _read_npy(args.image_npy, "--image-npy")
        if arr.ndim == 3 and model.image_shape[0] == 1:
            arr = arr[:, None]
        if arr.dtype == np.uint8:
            arr = arr.astype(np.float32) / 255.0
        images = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if args.to is not None:
        if args.prompt is None:
            raise KitError("--to needs a start: --prompt A --to B interpolates between two prompts")
        out = interpolate(model, encoder, args.prompt, args.to, steps=max(2, args.n), seed=args.seed,
                          bridge=args.bridge)
        title = f"{args.prompt} -> {args.to}"
    elif images is not None and args.prompt is not None:
        out = manipulate(model, encoder, images, args.prompt, image_embed_factor=args.factor, bridge=args.bridge)
        title = f"toward '{args.prompt}' (image factor {args.factor})"
    elif images is not None:
        per = -(-args.n // len(images)) if len(images) else 1
        out = generate_from_images(model, encoder, images, n_per_image=per, seed=args.seed)[:args.n]
        title = "conditioned on the given images"
    else:
        out = generate_from_text(model, encoder, args.prompt, args.n, seed=args.seed, bridge=args.bridge)
        title = args.prompt
    save_grid(show_grid(out, ncols=min(len(out), 8), title=title), args.out)
    if args.npy:
        _save_npy(args.npy, out.numpy().astype("float32"))
    print(f"wrote {len(out)} images to {args.out}" + (f" and {args.npy}" if args.npy else ""))
    return 0


def _reconstruct_clip(args: argparse.Namespace, x) -> int:
    import numpy as np
    import torch

    from .clip_generate import load_clip_cvae, reconstruct

    model, encoder = load_clip_cvae(args.checkpoint, args.device)
    recon = reconstruct(model, encoder, torch.from_numpy(x))
    _save_npy(args.npy_out, recon.numpy().astype(np.float32))
    print(f"wrote {len(recon)} reconstructions to {args.npy_out}")
    return 0



def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, and turn kit errors into one-line messages."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (the last checkpoint was kept; rerun with --resume to continue)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

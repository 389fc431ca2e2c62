"""Command line: ``python -m cvaelib <command> ...`` (run with ``--help`` for each command).

The commands and their options are a stable contract used by other tools.  This module only parses: each command
is one typed run function of :mod:`cvaelib.runs`, called with the parsed options as keywords.  Every command
validates its arguments before heavy work and reports mistakes as one ``error: ...`` line with exit status 2;
Ctrl-C exits with status 130 and keeps the last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cliparse import OneLineParser, positive
from .errors import KitError
from .runs import train_run  # noqa: F401 - the library form of `train`, importable from here as before

def _train_parser(sub: Any) -> None:
    from .models import MODELS

    t = sub.add_parser("train", help="train a model and write checkpoint.pt, metrics.json, samples.png")
    t.add_argument("--model", required=True, help=f"one of: {', '.join(MODELS)} (resvae and attr-cvae: 64x64 "
                   f"prepared CelebA / COCO)")
    t.add_argument("--dataset", required=True, help="digits (bundled), mnist, fashion-mnist, or a prepared folder: "
                   "celeba:DIR / coco:DIR (written by python -m data_prep.celeba / data_prep.coco)")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--epochs", type=positive(int, "--epochs"), default=10)
    t.add_argument("--max-seconds", type=positive(float, "--max-seconds"), default=None,
                   help="cap on the whole run, phases after training included (e.g. a VQ-VAE's code prior)")
    g = t.add_argument_group("model options (each model takes those its constructor has; others are refused)")
    g.add_argument("--latent-dim", type=positive(int, "--latent-dim"), default=None, help="size of z")
    g.add_argument("--beta", type=positive(float, "--beta", True), default=None,
                   help="KL weight (VQ-VAE: commitment weight); ae has none")
    g.add_argument("--injection", "--cond", dest="injection", default=None,
                   help="where/how the condition enters: cvae concat|additive|onehot; clip-cvae input|down2|"
                   "hidden; resvae none|input|down3|down4|decoder; attr-cvae the same but none")
    g.add_argument("--swap-weight", type=positive(float, "--swap-weight", True), default=None,
                   help="cvae: weight of the label-swap term that trains the decoder to obey its label (default "
                   "10; 0 = a plain CVAE without the label critic)")
    g.add_argument("--prior", default=None, help="cvae: what samples are drawn from: pooled (one mixture fitted to "
                   "all codes; default), fitted (one per class) or standard (N(0, I))")
    g.add_argument("--width", type=positive(int, "--width"), default=None, help="channels of the first block")
    g.add_argument("--perceptual", type=positive(float, "--perceptual", True), default=None,
                   help="resvae/attr-cvae: weight of the VGG19 perceptual loss (needs VGG19 weights)")
    g.add_argument("--condition-noise", "--cond-noise", dest="condition_noise",
                   type=positive(float, "--condition-noise", True), default=None,
                   help="clip-cvae/resvae: LAFITE perturbation of the image embeddings while training")
    g.add_argument("--clip", default=None, help="clip-cvae/resvae: the CLIP of the conditions: tiny (TinyCLIP, "
                   "trained once and cached; clip-cvae's default), ViT-B/32 (resvae's default), a CLIP file, "
                   "or tiny:FILE")
    d = t.add_argument_group("data and training")
    d.add_argument("--data-root", default=None, help="folder with MNIST/ FashionMNIST/ ($CVAELIB_DATA or ./data)")
    d.add_argument("--limit", type=positive(int, "--limit"), default=None, help="use only N items (seeded)")
    d.add_argument("--image-size", type=positive(int, "--image-size"), default=None,
                   help="prepared data: image side (64 or 128; default 64)")
    d.add_argument("--tiny-seconds", type=positive(float, "--tiny-seconds"), default=None,
                   help="clip-cvae --clip tiny: TinyCLIP training budget (default 150; cached in ~/.cache/cvaelib)")
    d.add_argument("--batch-size", type=positive(int, "--batch-size"), default=None,
                   help="images per step (default: the model's recommended size)")
    d.add_argument("--lr", type=positive(float, "--lr"), default=None,
                   help="Adam learning rate (default: the model's recommended rate)")
    d.add_argument("--lr-schedule", default=None, choices=["constant", "cosine"],
                   help="cosine: decay the learning rate to 0 over --epochs (default: the model's; clip-cvae constant)")
    d.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="mixed precision: auto = fp16 on CUDA, bf16 on CPUs with native bf16 units, else fp32")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--every", type=positive(int, "--every"), default=1, help="checkpoint every N epochs")
    d.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt (a finished run is loaded and left as it is)")
    d.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    d.add_argument("--download", action="store_true", help="let torchvision download missing data")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(run=_train)


def _use_parsers(sub: Any) -> None:
    g = sub.add_parser("generate", help="draw images from a trained model (a PNG grid, optionally all as .npy)")
    g.add_argument("--checkpoint", required=True, help="run folder or checkpoint.pt")
    g.add_argument("--out", required=True, help="PNG file for the grid (the first 256 images)")
    g.add_argument("--n", type=positive(int, "--n"), default=16, help="images (more than 256 need --npy)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--npy", default=None, help="also write all images as float32 [N, C, H, W] in [0, 1]")
    g.add_argument("--device", default=None)
    c = g.add_argument_group("the condition (which of these a model takes depends on its kind)")
    c.add_argument("--label", default=None, help="class-conditional models: a class id or name ('7', 'sneaker')")
    c.add_argument("--prompt", default=None, help="text: class names and synonyms for class-conditional models "
                   "(--n images per class), attribute words for attr-cvae, any text for CLIP-conditioned models")
    c.add_argument("--attributes", default=None, help="attr-cvae: e.g. \"Smiling,Eyeglasses,-Male\" (a leading - "
                   "switches one off, NAME=0.5 sets a value; the rest keep the training mean)")
    c.add_argument("--image-npy", default=None, help="images [N, C, H, W] in [0, 1] to change (attr-cvae with "
                   "--attributes; CLIP models: image -> image, or with --prompt toward the text)")
    c.add_argument("--factor", type=float, default=None, help="manipulation strength: attr-cvae how far the "
                   "named attributes move (1 = set them, default); CLIP models the image's own weight (default 0.5)")
    c.add_argument("--to", default=None, help="CLIP models: interpolate from --prompt to this text in --n steps")
    c.add_argument("--bridge", default=None, help="CLIP models' text bridge: retrieval (default), shift or direct")
    g.set_defaults(run=_generate)

    r = sub.add_parser("reconstruct", help="reconstruct images given as .npy (optionally decoded with other labels)")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--npy-in", required=True, help="float32 [N, C, H, W] in [0, 1] (uint8 0..255 also accepted)")
    r.add_argument("--npy-out", required=True)
    r.add_argument("--labels", default=None, help="each image's condition: int64 class ids [N] (class-conditional "
                   "models), float attribute vectors [N, D] (attr-cvae)")
    r.add_argument("--decode-labels", default=None, help="decode each code with these instead (same shape and "
                   "checks as --labels): a label swap")
    r.add_argument("--device", default=None)
    r.set_defaults(run=_reconstruct)

    e = sub.add_parser("evaluate", help="compute every metric that applies to a trained model, print a table")
    e.add_argument("--checkpoint", required=True, help="run folder or checkpoint.pt")
    e.add_argument("--data-root", default=None, help="folder with MNIST/ FashionMNIST/ ($CVAELIB_DATA or ./data)")
    e.add_argument("--n", type=positive(int, "--n"), default=1000, help="test images / samples per metric")
    e.add_argument("--dataset", default=None, help="override the dataset stored in the checkpoint")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default=None)
    e.add_argument("--inception", action="store_const", const=True, default=None,
                   help="add Inception FID on a CPU too (weights download once)")
    e.add_argument("--out", default=None, help="write the metrics as JSON here (e.g. metrics.json)")
    e.set_defaults(run=_evaluate)


def build_parser() -> argparse.ArgumentParser:
    """The full ``python -m cvaelib`` parser."""
    p = OneLineParser(prog="cvaelib", description="cvae-course-kit: train, sample and inspect (conditional) VAEs.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    _train_parser(sub)
    _use_parsers(sub)
    q = sub.add_parser("quickstart", help="train a small CVAE on the bundled digits and save a sample grid")
    q.add_argument("--out", default="runs/quickstart")
    q.add_argument("--max-seconds", type=positive(float, "--max-seconds"), default=60.0)
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(run=_quickstart)
    pp = sub.add_parser("parse-prompt", help="turn short text into class ids (one JSON object per prompt)")
    pp.add_argument("--dataset", required=True, help="mnist, fashion-mnist or digits")
    pp.add_argument("text", nargs="+", metavar="TEXT", help="e.g. 'a pair of sneakers' 'the digit 7'")
    pp.set_defaults(run=_parse_prompt)
    f = sub.add_parser("fetch", help="download MNIST / Fashion-MNIST with torchvision (internet needed)")
    f.add_argument("dataset")
    f.add_argument("--data-root", default=None)
    f.set_defaults(run=_fetch)
    return p


# --- commands: the run function with the parsed options, then what to print ---------------------------------------
def _train(**options: Any) -> int:
    from .distributed import is_main_process

    out = Path(options.pop("out"))
    metrics = train_run(options.pop("model"), options.pop("dataset"), out, **options)
    if metrics.get("unchanged"):
        print(f"{out} already finished this run ({metrics['epochs']} epochs); its checkpoint is left as it is")
        return 0
    if is_main_process():
        budget = metrics.get("budget") or {}
        split = ", ".join(f"{k} {v:.0f} s" for k, v in budget.items() if k != "max_seconds")
        print(f"trained {metrics['model']} on {metrics['dataset']}: {metrics['epochs']} epochs in "
              f"{metrics['seconds']:.1f} s ({metrics['images_per_second']:.0f} images/s); "
              f"val loss {metrics.get('val_loss', float('nan')):.2f}"
              + (f"; budget {budget['max_seconds']:.0f} s split: {split}" if split else ""))
        print(f"wrote {out / 'checkpoint.pt'}, {out / 'metrics.json'}, {out / 'samples.png'}")
    return 0


def _generate(**options: Any) -> int:
    from .runs import generate_run

    result = generate_run(options.pop("checkpoint"), options.pop("out"), **options)
    rows = f" ({', '.join(result['rows'])})" if result["rows"] else ""
    also = f" and {result['npy']}" if result["npy"] else ""
    print(f"wrote {result['images']} images{rows} to {result['out']}{also}")
    return 0


def _reconstruct(**options: Any) -> int:
    from .runs import reconstruct_run

    result = reconstruct_run(options.pop("checkpoint"), options.pop("npy_in"), options.pop("npy_out"), **options)
    print(f"wrote {result['images']} reconstructions to {result['npy_out']}")
    return 0


def _evaluate(**options: Any) -> int:
    from .evaluation import format_table
    from .runs import evaluate_run

    metrics = evaluate_run(options.pop("checkpoint"), **options)
    print(format_table(metrics))
    if options.get("out"):
        print(f"wrote {options['out']}")
    return 0


def _quickstart(out: str, max_seconds: float, seed: int) -> int:
    print("Training a class-conditional VAE on scikit-learn's bundled 8x8 digits (no download needed)...")
    t0 = time.perf_counter()
    metrics = train_run("cvae", "digits", out, epochs=400, max_seconds=max_seconds, seed=seed)
    print(f"done in {time.perf_counter() - t0:.0f} s ({metrics['epochs']} epochs, "
          f"{metrics['images_per_second']:.0f} images/s).")
    print(f"Per-class samples (one row per digit): {(Path(out) / 'samples.png').resolve()}")
    print(f"Next: python -m cvaelib generate --checkpoint {out} --label seven --out seven.png")
    return 0


def _parse_prompt(dataset: str, text: list[str]) -> int:
    """Print one JSON object per prompt; the first prompt without a class is an error (exit status 2)."""
    from .data import check_dataset_name
    from .prompts import describe_prompt

    key = check_dataset_name(dataset)
    for t in text:
        print(json.dumps(describe_prompt(t, key)), flush=True)
    return 0


def _fetch(dataset: str, data_root: str | None) -> int:
    from .runs import fetch_run

    print(f"{dataset} is in {fetch_run(dataset, data_root)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run, and turn kit errors into one-line messages."""
    args = vars(build_parser().parse_args(argv))
    args.pop("command")
    run: Callable[..., int] = args.pop("run")
    try:
        return int(run(**args) or 0)
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (the last checkpoint was kept; rerun with --resume to continue)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

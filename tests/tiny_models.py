"""Models several test files share, trained once on real data and cached on disk.

* small AE/VAE/CVAEs on (Fashion-)MNIST subsets for the lesson-04 tests (seconds each; kept in
  ``.pytest_cache/cvaelib-tiny``, keyed by every setting);
* the one TinyCLIP every CLIP test uses, and the kit's MNIST and digits judges (about a minute and a few seconds on
  one core; kept in ``$CVAELIB_CACHE`` by the library itself).

Every build runs behind a file lock (:func:`cvaelib.cache.load_or_build`), so two test workers never train the same
model side by side: one trains, the other waits.  ``python tests/tiny_models.py --jobs 2`` trains them all up
front, one process per core (``scripts/test.sh`` starts it next to the tests).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from cvaelib.clip.tiny import STANDARD_TINY_CLIP

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".pytest_cache" / "cvaelib-tiny"

#: small widths keep CPU training to seconds; latent_dim 8 gives t-SNE/kNN something to work with.  Every setting
#: the tests rely on is spelled out (beta = 1 for both VAEs, so the VAE/CVAE comparison is like for like; the N(0, I)
#: prior), so a change of the library's defaults does not silently change what is tested.
SETTINGS = {
    "ae": {"model": "ae", "latent_dim": 8, "width": 16, "hidden": 128},
    "vae": {"model": "vae", "latent_dim": 8, "width": 16, "hidden": 128, "beta": 1.0},
    # a strong KL weight and more dimensions than 4 epochs of MNIST need: some dimensions reliably switch off
    # (at z 8 and beta 1 all eight stay in use)
    "vae-beta4": {"model": "vae", "latent_dim": 16, "width": 16, "hidden": 128, "beta": 4.0},
    "cvae": {"model": "cvae", "latent_dim": 8, "width": 16, "hidden": 128, "num_classes": 10, "injection": "concat",
             "embed_dim": 16, "decoder": "conv", "beta": 1.0, "prior": "standard", "swap_weight": 0.0},
}
#: the TinyCLIP of every CLIP test and of lessons 05 and 08 (SMOKE runs load it from the cache): the kit's standard
#: 300 steps (~85 s of one CPU core when the cache is cold; zero-shot ~98 % on MNIST)
TINY_CLIP = {**STANDARD_TINY_CLIP, "progress": False}


def tiny_clip(data_root: Path):
    """The tests' shared TinyCLIP on MNIST (trained once, then loaded from the cache)."""
    from cvaelib.clip.tiny import get_tiny_clip

    return get_tiny_clip("mnist", data_root, **TINY_CLIP)


def tiny_model(kind: str, dataset: str, data_root: Path, n_train: int = 6000, epochs: int = 4, seed: int = 0):
    """A trained ``kind`` (a key of ``SETTINGS``) model on ``n_train`` real training images, in eval mode on CPU."""
    from cvaelib import load_model

    return load_model(tiny_checkpoint(kind, dataset, data_root, n_train, epochs, seed)).eval()


def tiny_checkpoint(kind: str, dataset: str, data_root: Path, n_train: int = 6000, epochs: int = 4,
                    seed: int = 0) -> Path:
    """Path of the cached checkpoint of :func:`tiny_model` (trained now if missing)."""
    from cvaelib import build_model, fit, load_dataset, subset
    from cvaelib.cache import load_or_build
    from cvaelib.checkpoint import FORMAT_VERSION

    config = {**SETTINGS[kind], "image_shape": [1, 28, 28]}
    key = hashlib.sha1(json.dumps([config, dataset, n_train, epochs, seed, FORMAT_VERSION],
                                  sort_keys=True).encode()).hexdigest()[:12]
    path = CACHE / f"{kind}-{dataset}-{key}.pt"

    def build(out: Path) -> Path:
        train = subset(load_dataset(dataset, data_root, "train"), n_train, seed=seed)
        torch.manual_seed(seed)
        model = build_model(config)
        partial = out.with_name(out.stem + ".partial.pt")  # fit saves every epoch; publish only the final one
        fit(model, train, epochs=epochs, batch_size=128, lr=2e-3, device="cpu", seed=seed, checkpoint=partial,
            resume=True, progress=False, meta={"dataset": dataset, "class_names": train.class_names})
        partial.replace(out)
        return out

    return load_or_build(path, lambda p: p, build, what=f"the tiny {kind} for {dataset}")


def eval_images(dataset: str, data_root: Path, n: int, seed: int = 0):
    """``n`` real test images (float [0, 1]) and labels, a seeded class-mixed subset."""
    from cvaelib import load_dataset, subset

    data = subset(load_dataset(dataset, data_root, "test"), n, seed=seed)
    return data.float_images(), data.labels, data.class_names


def _build(job: tuple[str, str], data_root: str) -> str:
    """Build one shared model in this (worker) process, with one torch thread; returns a report line."""
    import time

    from cvaelib.classifier import get_classifier

    torch.set_num_threads(1)
    kind, dataset = job
    t = time.perf_counter()
    if kind == "tinyclip":
        tiny_clip(Path(data_root))
    elif kind == "judge":
        get_classifier(dataset, data_root)
    else:
        tiny_checkpoint(kind, dataset, Path(data_root))
    return f"{kind} {dataset}: {time.perf_counter() - t:.1f} s"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os
    from concurrent.futures import ProcessPoolExecutor

    p = argparse.ArgumentParser(description="Train (or find in the caches) every model the tests share.")
    p.add_argument("--data-root", default=os.environ.get("CVAELIB_DATA", str(REPO.parent / "shared" / "data")))
    p.add_argument("--jobs", type=int, default=1, help="processes, one torch thread each (default 1)")
    args = p.parse_args(argv)
    # the slowest first, so the processes finish together
    jobs = [("tinyclip", "mnist"), ("judge", "mnist"), ("judge", "digits")]
    jobs += [(kind, "mnist") for kind in SETTINGS] + [(kind, "fashion-mnist") for kind in ("ae", "vae", "cvae")]
    with ProcessPoolExecutor(max(1, args.jobs)) as pool:
        for line in pool.map(_build, jobs, [args.data_root] * len(jobs)):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

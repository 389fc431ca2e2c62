"""Small models trained on real (Fashion-)MNIST subsets for the lesson-04 tests, cached on disk.

Training each takes seconds; the checkpoint is kept in ``.pytest_cache/cvaelib-tiny`` (keyed by every setting),
so test files and repeated runs share one training.  ``python tests/tiny_models.py`` trains them all up front.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

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
    "cvae": {"model": "cvae", "latent_dim": 8, "width": 16, "hidden": 128, "num_classes": 10, "cond": "concat",
             "embed_dim": 16, "decoder": "conv", "beta": 1.0, "prior": "standard"},
}


def tiny_model(kind: str, dataset: str, data_root: Path, n_train: int = 6000, epochs: int = 4, seed: int = 0):
    """A trained ``kind`` (a key of ``SETTINGS``) model on ``n_train`` real training images, in eval mode on CPU."""
    from cvaelib import load_model

    return load_model(tiny_checkpoint(kind, dataset, data_root, n_train, epochs, seed)).eval()


def tiny_checkpoint(kind: str, dataset: str, data_root: Path, n_train: int = 6000, epochs: int = 4,
                    seed: int = 0) -> Path:
    """Path of the cached checkpoint of :func:`tiny_model` (trained now if missing)."""
    from cvaelib import build_model, fit, load_dataset, subset

    from cvaelib.checkpoint import FORMAT_VERSION

    config = {**SETTINGS[kind], "image_shape": [1, 28, 28]}
    key = hashlib.sha1(json.dumps([config, dataset, n_train, epochs, seed, FORMAT_VERSION],
                                  sort_keys=True).encode()).hexdigest()[:12]
    path = CACHE / f"{kind}-{dataset}-{key}.pt"
    if not path.exists():
        train = subset(load_dataset(dataset, data_root, "train"), n_train, seed=seed)
        torch.manual_seed(seed)
        model = build_model(config)
        partial = path.with_name(path.stem + ".partial.pt")  # fit saves every epoch; publish only the final one
        fit(model, train, epochs=epochs, batch_size=128, lr=2e-3, device="cpu", seed=seed, checkpoint=partial,
            resume=True, progress=False, meta={"dataset": dataset, "class_names": train.class_names})
        partial.replace(path)
    return path


def eval_images(dataset: str, data_root: Path, n: int, seed: int = 0):
    """``n`` real test images (float [0, 1]) and labels, a seeded class-mixed subset."""
    from cvaelib import load_dataset, subset

    data = subset(load_dataset(dataset, data_root, "test"), n, seed=seed)
    return data.float_images(), data.labels, data.class_names


if __name__ == "__main__":
    import os
    import time

    root = Path(os.environ.get("CVAELIB_DATA", REPO.parent / "shared" / "data"))
    for ds in ("mnist", "fashion-mnist"):
        for kind in SETTINGS:
            t = time.perf_counter()
            tiny_model(kind, ds, root)
            print(f"{kind} {ds}: {time.perf_counter() - t:.1f} s")

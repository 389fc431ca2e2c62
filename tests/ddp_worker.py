"""One rank of the gradient-synchronisation test (``tests/test_ddp.py``), started by ``torchrun``.

Trains a small deterministic autoencoder (no sampling noise, no batch norm: every rank computes exactly what a single
process would) with :func:`cvaelib.train.fit` on a fixed subset of real MNIST, then saves this rank's parameters to
``OUT/rank<R>.pt``.  Usage: ``torchrun --nproc_per_node 2 tests/ddp_worker.py OUT DATA_ROOT``.
"""

from __future__ import annotations

import os
import sys

import torch

from cvaelib.data import load_dataset, subset
from cvaelib.models import build_model
from cvaelib.train import fit

#: the run both sides of the comparison share (the test rebuilds the same model and batches in one process)
CONFIG = {"model": "ae", "image_shape": [1, 28, 28], "latent_dim": 4, "width": 4, "hidden": 16}
N_IMAGES, BATCH, LR, SEED = 96, 8, 1e-3, 0


def train_data(root: str):
    return subset(load_dataset("mnist", root, "train"), N_IMAGES, seed=0)


def new_model():
    torch.manual_seed(SEED)
    return build_model(CONFIG)


def main(out: str, root: str) -> None:
    model = new_model()
    fit(model, train_data(root), epochs=1, batch_size=BATCH, lr=LR, precision="fp32", progress=False, seed=SEED)
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()},
               os.path.join(out, f"rank{os.environ['RANK']}.pt"))


if __name__ == "__main__":
    main(*sys.argv[1:3])

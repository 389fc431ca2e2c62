"""Data loading: ``DataLoader(torchvision MNIST, ToTensor())`` vs the kit's in-memory ``TensorBatches``.

The baseline is the recipe of the kit's sources: ``torchvision.datasets.MNIST(transform=ToTensor())`` behind a
``torch.utils.data.DataLoader(batch_size=128, shuffle=True)``: one PIL image decoded and converted per item, then a
Python-level collate per batch.  The kit holds the whole split as one uint8 tensor and slices it with a random
permutation (:class:`cvaelib.data.TensorBatches`), yielding the same float ``[128, 1, 28, 28]`` batches in [0, 1]
with int64 labels.  No model runs: this isolates the input pipeline that :mod:`train_throughput` measures as part
of a whole training step.

Both sides are timed over the same number of batches in alternating rounds (so load from other processes hits both
alike); the kit side includes neither the one-time load (reported separately) nor anything the baseline skips.
Prints images/s of each and ``RESULT data_loading <kit/baseline>``.

    python benchmarks/data_loading.py --data-root ../shared/data            # full: 3 rounds x 200 batches
    python benchmarks/data_loading.py --data-root ../shared/data --quick    # CI: a few batches
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cvaelib.data import TensorBatches, load_dataset  # noqa: E402
from train_throughput import _torchvision_root  # noqa: E402  (read-only data folder -> linked cache folder)

BATCH = 128


def _rate(iterator_factory, batches: int, state: dict) -> float:
    """Pull ``batches`` batches (restarting the epoch when it ends) and return images per second."""
    start, images = time.perf_counter(), 0
    for _ in range(batches):
        try:
            x, y = next(state["it"])
        except (StopIteration, KeyError):
            state["it"] = iter(iterator_factory())
            x, y = next(state["it"])
        images += len(x)
    return images / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=200, help="timed batches per round and side")
    p.add_argument("--workers", type=int, default=0, help="DataLoader num_workers of the baseline (sources: 0)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="2 rounds x 30 batches (CI smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.batches = 2, 30
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    root = Path(args.data_root)

    from torchvision import datasets, transforms

    tv = datasets.MNIST(str(_torchvision_root(root)), train=True, download=True, transform=transforms.ToTensor())
    loader = torch.utils.data.DataLoader(tv, batch_size=BATCH, shuffle=True, num_workers=args.workers)
    t0 = time.perf_counter()
    data = load_dataset("mnist", root, "train")
    load_seconds = time.perf_counter() - t0
    kit = TensorBatches(data, BATCH, shuffle=True, seed=0)

    # same batches on both sides: shape, dtype, range
    xb, yb = next(iter(loader))
    xk, yk = next(iter(kit))
    assert xb.shape == xk.shape and xb.dtype == xk.dtype and yb.dtype == yk.dtype, (xb.shape, xk.shape)
    assert float(xk.max()) <= 1.0 and float(xb.max()) <= 1.0

    states: dict[str, dict] = {"baseline": {}, "kit": {}}
    _rate(lambda: loader, 2, states["baseline"])  # warm-up
    _rate(lambda: kit, 2, states["kit"])
    rates: dict[str, list[float]] = {"baseline": [], "kit": []}
    for _ in range(args.rounds):
        rates["baseline"].append(_rate(lambda: loader, args.batches, states["baseline"]))
        rates["kit"].append(_rate(lambda: kit, args.batches, states["kit"]))
    b, k = statistics.median(rates["baseline"]), statistics.median(rates["kit"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds x {args.batches} "
          f"batches of {BATCH}")
    print(f"DataLoader(MNIST, ToTensor(), num_workers={args.workers}): {b:10.0f} images/s  "
          f"(rounds: {', '.join(f'{r:.0f}' for r in rates['baseline'])})")
    print(f"cvaelib TensorBatches (in memory):        {k:10.0f} images/s  "
          f"(rounds: {', '.join(f'{r:.0f}' for r in rates['kit'])}; one-time load {load_seconds:.2f} s)")
    print(f"RESULT data_loading {k / b:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

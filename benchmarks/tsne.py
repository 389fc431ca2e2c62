"""t-SNE of latent codes: scikit-learn's defaults vs the kit's :func:`cvaelib.viz.latent.tsne_2d`.

Input: ``--n`` real MNIST test images reduced to 16 numbers each by PCA (the size of the lessons' latent codes;
no model training needed, so the script starts in seconds).  Baseline: ``sklearn.manifold.TSNE(random_state=0)``
with every other setting at its default (Barnes-Hut, 1,000 iterations, all cores).  Kit: ``tsne_2d`` (openTSNE
when installed: Barnes-Hut below 10,000 codes, exact neighbours, PCA initialisation, 100 + 250 iterations, one
thread).

Both sides see the same codes and run in alternating rounds (load from other processes hits both alike); each
side's best wall time counts.  Faithfulness: scikit-learn's ``trustworthiness`` (5 neighbours) of each embedding
must agree within ``--tolerance`` (default 0.01), and the k-NN class accuracy of the 2-D points is printed too.
Prints both times, CPU seconds, the scores and ``RESULT tsne <baseline_seconds / kit_seconds>``; exits 1 when the
kit's embedding is less faithful than the tolerance allows.

    python benchmarks/tsne.py --data-root ../shared/data            # 5,000 codes, the README's number
    python benchmarks/tsne.py --data-root ../shared/data --quick    # CI: 1,000 codes, one round
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cvaelib.data import load_dataset  # noqa: E402
from cvaelib.viz.latent import knn_accuracy, tsne_2d  # noqa: E402


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--n", type=int, default=5000, help="number of codes (MNIST test images)")
    p.add_argument("--dims", type=int, default=16, help="code size (PCA components)")
    p.add_argument("--rounds", type=int, default=1, help="alternating rounds per side (best time counts)")
    p.add_argument("--tolerance", type=float, default=0.01, help="allowed trustworthiness gap")
    p.add_argument("--backend", default="auto", help="kit side: auto, opentsne or sklearn")
    p.add_argument("--quick", action="store_true", help="1,000 codes (CI smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.n = min(args.n, 1000)

    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE, trustworthiness

    data = load_dataset("mnist", args.data_root, "test")
    x = data.images[:args.n].reshape(args.n, -1).float().numpy() / 255.0
    z = PCA(args.dims, random_state=0).fit_transform(x).astype(np.float32)
    y = data.labels[:args.n].numpy()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"t-SNE of {args.n} MNIST codes ({args.dims}-d), {cores} cores")

    sides = {"sklearn defaults": lambda: TSNE(random_state=0).fit_transform(z),
             "kit tsne_2d": lambda: tsne_2d(z, seed=0, backend=args.backend)}
    best: dict[str, tuple[float, float]] = {}
    emb: dict[str, np.ndarray] = {}
    for r in range(max(1, args.rounds)):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in order:
            out, wall, cpu = _timed(sides[name])
            emb[name] = out
            if name not in best or wall < best[name][0]:
                best[name] = (wall, cpu)
            print(f"  round {r + 1}: {name:17s} {wall:6.2f} s wall, {cpu:6.2f} s CPU", flush=True)

    tw = {k: trustworthiness(z, v, n_neighbors=5) for k, v in emb.items()}
    knn = {k: knn_accuracy(v, y) for k, v in emb.items()}
    base, kit = best["sklearn defaults"], best["kit tsne_2d"]
    for k in sides:
        print(f"{k:17s} best {best[k][0]:6.2f} s ({best[k][1]:.1f} s CPU)  trustworthiness {tw[k]:.4f}  "
              f"2-D k-NN accuracy {100 * knn[k]:.1f}%")
    gap = tw["sklearn defaults"] - tw["kit tsne_2d"]
    ok = gap <= args.tolerance
    print(f"speed-up {base[0] / kit[0]:.2f}x wall ({base[1] / max(kit[1], 1e-9):.2f}x CPU); trustworthiness gap "
          f"{gap:+.4f} ({'within' if ok else 'OUTSIDE'} {args.tolerance})")
    print(f"RESULT tsne {base[0] / kit[0]:.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

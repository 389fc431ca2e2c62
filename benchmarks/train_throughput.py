"""Training throughput: the kit's default MNIST CVAE vs the recipe of the Fashion-MNIST CVAE article.

The baseline is the article's set-up as described in the kit's sources: a ``ConcatConditionalVAE`` (three 3x3
stride-2 convolutions 1->32->64->128, a 32-d label embedding concatenated to the encoder features and to z,
latent 128, three transposed convolutions, sigmoid output, BCE-sum + KL loss) fed by
``torch.utils.data.DataLoader(torchvision MNIST with ToTensor(), batch_size=128, shuffle=True)``.

The kit side is ``build_model`` with the ``ConditionalVAE`` class's own defaults, trained by :func:`cvaelib.train.fit`
from the in-memory :class:`~cvaelib.data.ImageData` path with the model's ``recommended_batch_size`` (256) and
learning rate, exactly as ``python -m cvaelib train --model cvae`` does.

Both train on the same number of images per round (``--batches`` batches of 128) after a warm-up, in alternating
rounds in one process (other load on a shared machine then hits both alike).  Prints images/s of each and
``RESULT train_throughput <kit/baseline>``.

    python benchmarks/train_throughput.py --data-root ../shared/data            # full: 4 rounds x 100 batches
    python benchmarks/train_throughput.py --data-root ../shared/data --quick    # CI: a few batches
    python benchmarks/train_throughput.py --data-root ../shared/data --precision fp32  # as on CPUs without bf16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cvaelib.data import load_dataset  # noqa: E402
from cvaelib.models import build_model  # noqa: E402
from cvaelib.train import fit  # noqa: E402

BATCH = 128


class ArticleCVAE(nn.Module):
    """The article's concatenating CVAE (baseline only; the kit's own model is ``cvaelib.models.ConditionalVAE``)."""

    def __init__(self, latent_dim: int = 128, num_classes: int = 10, embed: int = 32) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                                     nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU(), nn.Flatten())
        self.label_embedding = nn.Embedding(num_classes, embed)
        self.fc_mu = nn.Linear(128 * 4 * 4 + embed, latent_dim)
        self.fc_var = nn.Linear(128 * 4 * 4 + embed, latent_dim)
        self.decoder_input = nn.Linear(latent_dim + embed, 128 * 4 * 4)
        self.decoder = nn.Sequential(nn.ConvTranspose2d(128, 64, 2, 2, 1, output_padding=1), nn.ReLU(),
                                     nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1), nn.ReLU(),
                                     nn.ConvTranspose2d(32, 1, 3, 2, 1, output_padding=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e = self.label_embedding(c)
        h = torch.cat([self.encoder(x), e], dim=1)
        mu, logvar = self.fc_mu(h), self.fc_var(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        out = self.decoder(self.decoder_input(torch.cat([z, e], dim=1)).view(-1, 128, 4, 4))
        return out, mu, logvar


def article_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy(recon, x, reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def _torchvision_root(root: Path) -> Path:
    """A writable torchvision root for MNIST: the shared folder holds only the .gz files, which torchvision
    must unpack next to them, so link them into a cache folder (``download=True`` then finds them, checks
    their MD5 and only extracts: nothing is fetched)."""
    cache = Path(tempfile.gettempdir()) / "cvaelib-bench-torchvision"
    raw = cache / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in (root / "MNIST" / "raw").glob("*.gz"):
        if not (raw / gz.name).exists():
            (raw / gz.name).symlink_to(gz.resolve())
    return cache


class ArticleRunner:
    """The article's training loop, resumable batch by batch so rounds can alternate with the kit's."""

    def __init__(self, root: Path) -> None:
        from torchvision import datasets, transforms

        dataset = datasets.MNIST(str(_torchvision_root(root)), train=True, download=True,
                                 transform=transforms.ToTensor())
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True)
        self.model = ArticleCVAE()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.iterator = iter(self.loader)

    def run(self, batches: int) -> float:
        """Train ``batches`` batches (data loading included) and return images per second."""
        start, images = time.perf_counter(), 0
        for _ in range(batches):
            try:
                x, c = next(self.iterator)
            except StopIteration:
                self.iterator = iter(self.loader)
                x, c = next(self.iterator)
            recon, mu, logvar = self.model(x, c)
            loss = article_loss(recon, x, mu, logvar)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            images += len(x)
        return images / (time.perf_counter() - start)


class KitRunner:
    """The kit default: ``fit`` on the in-memory MNIST split, timed by its own History (loop time only)."""

    def __init__(self, root: Path, precision: str = "auto") -> None:
        self.precision = precision
        self.data = load_dataset("mnist", root, "train")
        # the data facts only: every other setting is the model class's own default
        self.model = build_model({"model": "cvae", "image_shape": list(self.data.shape),
                                  "num_classes": self.data.num_classes})
        self.round = 0

    def run(self, batches: int) -> float:
        """Train on as many images as ``batches`` batches of the recipe (128 each) and return images per second."""
        part = self.data.take(slice((self.round * batches * BATCH) % 50_000, None)).take(slice(0, batches * BATCH))
        self.round += 1
        history = fit(self.model, part, epochs=1, batch_size=self.model.recommended_batch_size,
                      lr=self.model.recommended_lr, progress=False, device="cpu", seed=self.round,
                      precision=self.precision)
        return history.images_per_second


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--batches", type=int, default=100, help="timed batches per round and side")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="the kit side's precision (auto = bf16 on CPUs with native bf16 units, as `train` does)")
    p.add_argument("--quick", action="store_true", help="2 rounds x 5 batches (CI smoke run)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.batches, args.warmup = 2, 5, 2
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    root = Path(args.data_root)
    article, kit = ArticleRunner(root), KitRunner(root, args.precision)
    article.run(args.warmup)
    kit.run(args.warmup)
    rates: dict[str, list[float]] = {"article": [], "kit": []}
    for _ in range(args.rounds):  # alternate so load from other processes hits both sides alike
        rates["article"].append(article.run(args.batches))
        rates["kit"].append(kit.run(args.batches))
    a, k = statistics.median(rates["article"]), statistics.median(rates["kit"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds x "
          f"{args.batches * BATCH} images (recipe: batches of {BATCH}; kit: batches of "
          f"{kit.model.recommended_batch_size})")
    print(f"article recipe (ConcatConditionalVAE + DataLoader/ToTensor): {a:8.0f} images/s  "
          f"(rounds: {', '.join(f'{r:.0f}' for r in rates['article'])})")
    defaults = {k: v for k, v in kit.model.config.items() if k not in ("model", "image_shape", "condition")}
    print(f"kit default cvae {defaults} ({args.precision}): {k:8.0f} images/s  "
          f"(rounds: {', '.join(f'{r:.0f}' for r in rates['kit'])})")
    print(f"RESULT train_throughput {k / a:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

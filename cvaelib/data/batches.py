"""Mini-batches by indexing one in-memory tensor: the main speed lever on a CPU.

A ``DataLoader(ToTensor())`` decodes a PIL image per item and collates in Python; for 28x28 data that costs more
than the model.  Holding the split as one uint8 tensor on the target device and slicing it with a random
permutation gives the same batches at a fraction of the cost.  For data that does not fit in memory use a normal
``torch.utils.data.DataLoader`` over a ``Dataset``: :func:`cvaelib.train.fit` accepts any iterable of
``(images, labels)`` batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .datasets import ImageData


class TensorBatches:
    """Iterate ``(x, c)`` batches: x float32 in [0, 1] ``[B, C, H, W]``, c the items' ``conditions`` (class ids
    ``[B]``, or vectors ``[B, D]``).

    Args:
        data: the split, held as uint8.
        batch_size: items per batch.
        shuffle: reshuffle at every pass (seeded, so runs are reproducible).
        device: where batches live; the uint8 split is moved there once.
        seed: seed of the shuffling generator.
        drop_last: skip a final short batch (keeps batch statistics stable while training).
    """

    def __init__(self, data: ImageData, batch_size: int = 128, shuffle: bool = True,
                 device: torch.device | str = "cpu", seed: int = 0, drop_last: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.data = data.to(device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0

    def __len__(self) -> int:
        n = self._count()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _count(self) -> int:
        """How many items one pass yields."""
        return len(self.data)

    def _order(self) -> torch.Tensor:
        """The items of one pass, in order (a fresh seeded permutation when shuffling)."""
        n = len(self.data)
        return torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)

    def state_dict(self) -> dict:
        """Shuffling state, saved in checkpoints so a resumed run sees the same batch order."""
        return {"generator": self.generator.get_state(), "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order().to(self.data.images.device)
        self.epoch += 1
        n = len(order)
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.data.images[idx].float().div_(255.0), self.data.conditions[idx]

"""Training on more than one GPU (or CPU process) with PyTorch DistributedDataParallel.

Nothing here launches processes: PyTorch's own launcher does, and the kit's ``train`` command is unchanged::

    torchrun --nproc_per_node 4 -m cvaelib train --model resvae --dataset celeba:prepared/celeba --out runs/x

``torchrun`` starts one process per GPU and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``.  :func:`cvaelib.train.fit` sees those variables and then

* joins the process group (NCCL on GPUs, gloo on CPU) and uses GPU ``LOCAL_RANK``;
* wraps the model in ``DistributedDataParallel``, which averages gradients across processes after every backward;
* gives each process its own slice of every epoch's shuffled order (:class:`ShardedBatches`, the in-memory
  equivalent of ``DistributedSampler``), so ``batch_size`` is *per process* and one step sees
  ``batch_size * WORLD_SIZE`` images;
* logs, validates and writes checkpoints on rank 0 only, and sums the epoch's loss terms over all ranks;
* agrees across ranks on stopping (time budget, NaN loss), so no process waits forever for the others.

With one process (``torchrun --nproc_per_node 1``) the result is bit-identical to a plain run.
Li et al. (2020), "PyTorch Distributed: Experiences on Accelerating Data Parallel Training",
https://arxiv.org/abs/2006.15704.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .data import ImageData, TensorBatches
from .errors import KitError

if TYPE_CHECKING:
    from .models.base import GenerativeModel

ENV_VARS = ("RANK", "WORLD_SIZE")


def launched() -> bool:
    """True inside a process started by ``torchrun`` (its environment variables are set)."""
    return all(v in os.environ for v in ENV_VARS)


def rank() -> int:
    """This process's rank (0 outside ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    """Number of processes (1 outside ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """True on rank 0 (and in a plain single-process run): the one process that writes files and prints."""
    return rank() == 0


@dataclass
class DistContext:
    """The process group a :func:`~cvaelib.train.fit` call runs in."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    owns_group: bool  # fit created the group, so fit also destroys it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on at least one (e.g. "stop now")."""
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def sum_terms(self, sums: dict[str, float], seen: int, device: torch.device) -> tuple[dict[str, float], int]:
        """Add up per-rank sums of loss terms (weighted by images) and image counts over all ranks."""
        if self.world_size == 1:
            return sums, seen
        keys = sorted(sums)
        t = torch.tensor([sums[k] for k in keys] + [float(seen)], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return {k: float(v) for k, v in zip(keys, t[:-1].tolist())}, int(t[-1].item())

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def setup(device: torch.device) -> tuple[DistContext | None, torch.device]:
    """Join the ``torchrun`` process group if launched by it; returns ``(None, device)`` otherwise.

    On CUDA each process takes GPU ``LOCAL_RANK`` and NCCL; on CPU gloo.
    """
    if not launched():
        return None, device
    if not dist.is_available():
        raise KitError("this PyTorch build has no torch.distributed; run without torchrun")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise KitError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs; use "
                           f"--nproc_per_node <= {torch.cuda.device_count()}")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend(), owns), device


class _LossModule(nn.Module):
    """``forward(x, c) = model.loss(x, c)``: DDP only synchronises gradients of work done in ``forward``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, c: Tensor | None) -> dict[str, Tensor]:
        return self.model.loss(x, c)


def wrap(model: "GenerativeModel", ctx: DistContext, device: torch.device) -> nn.Module:
    """A DDP module whose call returns ``model.loss(x, c)`` (parameters are shared with ``model``)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    wrapper = _LossModule(model)
    # DDP re-sends every buffer from rank 0 before each step (batch-norm statistics need that); what a model declares
    # static (a retrieval bank: megabytes, filled only after training) does not need it: it stays out of that traffic.
    static = [f"model.{name}" for name, _ in model.named_buffers() if name.split(".")[-1] in model.static_buffers]
    if static and hasattr(DDP, "_set_params_and_buffers_to_ignore_for_model"):
        DDP._set_params_and_buffers_to_ignore_for_model(wrapper, static)
    return DDP(wrapper, device_ids=ids, output_device=device.index if ids else None)


class ShardedBatches(TensorBatches):
    """:class:`TensorBatches` that yields only this rank's share of each epoch.

    Every rank draws the same shuffled order (same seed), keeps every ``world_size``-th item starting at its rank
    (as ``DistributedSampler`` does) after cutting the order to a multiple of ``world_size``, and batches that.
    All ranks therefore run the same number of steps.  With ``world_size == 1`` it yields exactly the batches of
    :class:`TensorBatches`.
    """

    def __init__(self, data: ImageData, batch_size: int = 128, shuffle: bool = True,
                 device: torch.device | str = "cpu", seed: int = 0, drop_last: bool = False, rank: int = 0,
                 world_size: int = 1) -> None:
        super().__init__(data, batch_size, shuffle, device, seed, drop_last)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.rank, self.world_size = rank, world_size

    def _count(self) -> int:
        return len(self.data) // self.world_size

    def _order(self) -> Tensor:
        order = super()._order()  # the same permutation on every rank (same seed)
        return order[: self._count() * self.world_size][self.rank::self.world_size]


def distributed_loader(dataset: torch.utils.data.Dataset, batch_size: int, shuffle: bool = True, seed: int = 0,
                       **loader_kwargs: Any) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` over this rank's share of ``dataset`` (for data too big to hold in memory).

    Pass it to :func:`~cvaelib.train.fit` as ``train``.  Call ``loader.sampler.set_epoch(e)`` for a new shuffle per
    epoch when you write your own loop; ``fit`` treats it as any iterable of ``(x, c)`` batches.
    """
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(dataset, num_replicas=world_size(), rank=rank(), shuffle=shuffle, seed=seed,
                                 drop_last=True)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **loader_kwargs)

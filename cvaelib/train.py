"""``fit``: one training loop for every model in the kit.

It picks the device (CUDA when present, e.g. on Colab, else CPU), uses mixed precision on CUDA, shows a
``tqdm.auto`` bar with the live loss terms, validates every epoch, and checkpoints atomically every ``every``
epochs and at the end.  ``resume=True`` continues a run from its checkpoint, including the optimiser state and the
shuffling order; a NaN loss stops training and keeps the last good checkpoint; Ctrl-C saves and returns.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import check_model_format, check_writable, load_checkpoint, save_checkpoint
from .data import ImageData, TensorBatches
from .distributed import ShardedBatches
from .distributed import setup as _dist_setup
from .distributed import wrap as _dist_wrap
from .errors import KitError
from .models.base import GenerativeModel


LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bfloat16 matrix units (Intel AMX / AVX512-BF16), where bf16 convolutions and matrix
    products run faster than float32; elsewhere (older x86, Apple silicon) bf16 on the CPU is emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and torch.backends.cpu.get_cpu_capability() in (
            "AVX512", "AVX512_BF16", "AMX")
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The mixed-precision dtype ``fit`` trains with (``None`` = plain float32).

    ``"auto"``: float16 on CUDA (Colab's T4), bfloat16 on CPUs with native bf16 units, else float32.  Weights and
    loss terms stay float32 either way; only convolutions and matrix products run in the lower precision.
    """
    if precision not in PRECISIONS:
        raise KitError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
    if precision == "fp32" or device.type not in ("cuda", "cpu"):
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_fast_bf16() else None
    return torch.float16 if precision == "fp16" else torch.bfloat16


def _torch_at_least(major: int, minor: int) -> bool:
    return tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) >= (major, minor)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so runs and figures are reproducible."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available (Colab), else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class History:
    """What happened during training: per-epoch mean loss terms and timing."""

    train: list[dict[str, float]] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)
    epochs: int = 0
    seconds: float = 0.0
    images: int = 0
    interrupted: bool = False
    stopped_by_time: bool = False

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_second": self.images_per_second}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "History":
        keys = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in keys})


def _condition(model: GenerativeModel, c: torch.Tensor) -> torch.Tensor | None:
    return c if model.condition is not None else None


@torch.no_grad()
def evaluate(model: GenerativeModel, data: ImageData | Iterable, batch_size: int = 512,
             device: torch.device | str | None = None) -> dict[str, float]:
    """Mean loss terms of ``model`` over ``data`` (no gradient, eval mode)."""
    device = pick_device(device) if device is not None else next(model.parameters()).device
    batches = TensorBatches(data, batch_size, shuffle=False, device=device) if isinstance(data, ImageData) else data
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    n = 0
    for x, c in batches:
        terms = model.loss(x.to(device), _condition(model, c.to(device)))
        for k, v in terms.items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(x)
        n += len(x)
    model.train(was_training)
    return {k: v / max(n, 1) for k, v in totals.items()}


@torch.enable_grad()  # trains even when called under torch.no_grad() (e.g. from an evaluation)
def fit(model: GenerativeModel, train: ImageData | Iterable, val: ImageData | None = None, *, epochs: int = 10,
        lr: float = 1e-3, batch_size: int = 128, max_seconds: float | None = None,
        device: str | torch.device | None = None, seed: int = 0, checkpoint: str | os.PathLike | None = None,
        every: int = 1, resume: bool = False, progress: bool = True, meta: dict[str, Any] | None = None,
        lr_schedule: str = "constant", precision: str = "auto") -> History:
    """Train ``model`` with Adam and return its :class:`History`.

    Args:
        model: any kit model (its ``loss`` gives the terms).
        train: an :class:`ImageData` (batched in memory, the fast path) or any iterable of ``(x, c)`` batches.
        val: optional validation split, evaluated after every epoch.
        epochs: total epochs (when resuming, the run continues up to this number).
        max_seconds: stop early once this many seconds of training have passed (checked every batch).
        checkpoint: file path (``.../checkpoint.pt``) to save to every ``every`` epochs and at the end.
        resume: continue from ``checkpoint`` if it exists (weights, optimiser, epoch, shuffling, history).
        meta: extra plain values stored in the checkpoint (e.g. dataset name, class names).
        lr_schedule: ``"constant"`` or ``"cosine"`` (decay ``lr`` to 0 over ``epochs`` batch by batch, or over
            ``max_seconds`` when that budget runs out first: a short run ends at a lower loss than with a constant
            rate).
        precision: ``"auto"`` (float16 on CUDA, bfloat16 on CPUs with native bf16 units, else float32), or force
            ``"fp32"``, ``"bf16"``, ``"fp16"`` (see :func:`autocast_dtype`).
    """
    if epochs < 0:
        raise KitError(f"epochs must be >= 0, got {epochs}")
    if lr_schedule not in LR_SCHEDULES:
        raise KitError(f"unknown lr_schedule {lr_schedule!r}; choose one of: {', '.join(LR_SCHEDULES)}")
    device = pick_device(device)
    ctx, device = _dist_setup(device)  # under torchrun: join the process group (see cvaelib.distributed), else None
    seed_everything(seed + (ctx.rank if ctx is not None else 0))  # each rank its own noise; rank 0 = a plain run
    amp_dtype = autocast_dtype(device, precision)
    # channels-last feature maps let oneDNN (CPU) and cuDNN (GPU) pick their fastest convolution kernels
    model.to(device, memory_format=torch.channels_last).train()
    # the fused Adam runs one kernel for all parameters (CPU support arrived in torch 2.4)
    fused = device.type == "cuda" or (device.type == "cpu" and _torch_at_least(2, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=fused or None)
    batches = (TensorBatches(train, batch_size, shuffle=True, device=device, seed=seed, drop_last=len(train) > batch_size)
               if isinstance(train, ImageData) else train)
    if ctx is not None and isinstance(train, ImageData):  # this rank's share of each epoch
        batches = ShardedBatches(train, batch_size, device=device, seed=seed, rank=ctx.rank, world_size=ctx.world_size,
                                 drop_last=len(train) // ctx.world_size > batch_size)
    loss_fn = _dist_wrap(model, ctx, device) if ctx is not None else model.loss  # DDP syncs gradients in forward
    steps_per_epoch = len(batches) if hasattr(batches, "__len__") else None
    scheduler = None
    clock = {"t_start": time.perf_counter()}  # set again below, once a resumed run's elapsed time is known
    if lr_schedule == "cosine" and steps_per_epoch:
        total_steps = max(steps_per_epoch * epochs, 1)

        def fraction_done(step: int) -> float:
            # with a time budget the rate reaches 0 when the budget runs out, if that comes before the last epoch
            done = min(step, total_steps) / total_steps
            if max_seconds:
                done = max(done, min((time.perf_counter() - clock["t_start"]) / max_seconds, 1.0))
            return done

        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * fraction_done(step))))
    history = History()
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None:
        if ckpt.suffix != ".pt":
            ckpt = ckpt / "checkpoint.pt"
        check_writable(ckpt.parent)
        if resume and ckpt.exists():
            state = load_checkpoint(ckpt, map_location=device)
            check_model_format(state, ckpt)
            if state["config"] != model.config:
                raise KitError(f"{ckpt} was trained with another config ({state['config'].get('model')}); "
                               f"use a new output folder or the same settings to resume")
            model.load_state_dict(state["state_dict"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and "scheduler" in state:
                scheduler.load_state_dict(state["scheduler"])
            history = History.from_dict(state["history"])
            if "batches" in state and hasattr(batches, "load_state_dict"):
                batches.load_state_dict(state["batches"])
            if "rng" in state:
                torch.set_rng_state(state["rng"])

    use_amp = amp_dtype is not None
    # float16 gradients can underflow, so scale the loss; bfloat16 has float32's range and needs no scaler
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16 and device.type == "cuda")

    def save() -> None:
        if ckpt is None or (ctx is not None and not ctx.is_main):
            return
        save_checkpoint(ckpt, {"config": model.config, "state_dict": model.state_dict(),
                               "optimizer": optimizer.state_dict(), "epoch": history.epochs,
                               "history": history.to_dict(), "meta": dict(meta or {}),
                               "batches": batches.state_dict() if hasattr(batches, "state_dict") else {},
                               "rng": torch.get_rng_state(),
                               **({"scheduler": scheduler.state_dict()} if scheduler is not None else {})})

    from tqdm.auto import tqdm

    start_epoch = history.epochs
    total = steps_per_epoch * max(epochs - start_epoch, 0) if steps_per_epoch else None
    # In a log file (CI, `> out.txt`) a bar redrawn 10x a second floods the output: redraw rarely there.
    interactive = sys.stderr.isatty() or "ipykernel" in sys.modules
    quiet = not progress or (ctx is not None and not ctx.is_main)  # one bar, rank 0's
    bar = tqdm(total=total, disable=quiet, desc=f"{model.name}", unit="batch", leave=True,
               mininterval=0.1 if interactive else 10.0)
    t_start = time.perf_counter() - history.seconds
    clock["t_start"] = t_start
    try:
        for epoch in range(start_epoch, epochs):
            sums: dict[str, float] = {}
            seen = 0
            for x, c in batches:
                x = x.to(device, non_blocking=True)
                if x.dim() == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                c = _condition(model, c.to(device, non_blocking=True))
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=use_amp):
                    terms = loss_fn(x, c)
                loss = terms["loss"]
                bad = not torch.isfinite(loss)
                if ctx is not None:
                    bad = ctx.any(bad, device)  # all ranks stop together, or the others would wait forever
                if bad:
                    where = f"; the last good checkpoint is kept at {ckpt}" if ckpt is not None else ""
                    raise KitError(f"loss became {loss.item()} in epoch {epoch + 1}{where}; lower the learning "
                                   f"rate (--lr) or check the input data for NaNs")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if scheduler is not None:
                    scheduler.step()
                seen += len(x)
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) * len(x)
                bar.update(1)
                bar.set_postfix({k: f"{v / seen:.2f}" for k, v in sums.items()}, refresh=False)
                out_of_time = max_seconds is not None and time.perf_counter() - t_start >= max_seconds
                if max_seconds is not None and ctx is not None:
                    out_of_time = ctx.any(out_of_time, device)
                if out_of_time:
                    history.stopped_by_time = True
                    break
            if ctx is not None:  # epoch means over all ranks' images
                sums, seen = ctx.sum_terms(sums, seen, device)
            history.images += seen
            history.train.append({k: v / max(seen, 1) for k, v in sums.items()})
            if val is not None and (ctx is None or ctx.is_main):
                history.val.append(evaluate(model, val, device=device))
            history.epochs = epoch + 1
            history.seconds = time.perf_counter() - t_start
            if (epoch + 1) % max(every, 1) == 0 or history.stopped_by_time or epoch + 1 == epochs:
                save()
            if history.stopped_by_time:
                break
    except KeyboardInterrupt:
        history.seconds = time.perf_counter() - t_start
        history.interrupted = True
        save()
        print(f"\ninterrupted: checkpoint saved to {ckpt}; run again with resume=True to continue"
              if ckpt is not None else "\ninterrupted")
    finally:
        bar.close()
    history.seconds = time.perf_counter() - t_start
    if hasattr(model, "after_fit") and isinstance(train, ImageData) and not history.interrupted:
        # e.g. fit a sampling prior to the trained codes; models that only need the conditions say so, which
        # spares a float copy of the whole split (8 GB for CelebA at 64x64)
        images = train.float_images() if getattr(model, "after_fit_uses_images", True) else None
        model.after_fit(images, train.labels)
        save()
    if ctx is not None:
        ctx.close()
    model.eval()
    return history


def last_terms(history: History) -> dict[str, float]:
    """Final train/val loss terms as flat keys (``train_loss``, ``val_kl``, ...) for metrics files."""
    out: dict[str, float] = {}
    for split in ("train", "val"):
        rows = getattr(history, split)
        if rows:
            out.update({f"{split}_{k}": float(v) for k, v in rows[-1].items() if math.isfinite(v)})
    return out

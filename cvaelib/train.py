"""``fit``: one training loop for every model in the kit.

It picks the device (CUDA when present, e.g. on Colab, else CPU), uses mixed precision on CUDA (and bf16 on CPUs
that have it), shows a ``tqdm.auto`` bar with the live loss terms, validates every epoch, and checkpoints
atomically every ``every`` epochs and at the end.  Then the model's ``after_fit`` hook runs (e.g. a VQ-VAE trains
its code prior): ``max_seconds`` caps both phases, split by the model's ``after_fit_share``, and every phase shows
its progress.

``resume=True`` continues a run from its checkpoint (optimiser state, shuffling order, history included) - and a
run that already finished what was asked loads and returns at once, without rewriting its checkpoint.  A checkpoint
made on other data (another subset, another dataset) or with other settings is refused.  A NaN loss stops training
and keeps the last good checkpoint; Ctrl-C saves and returns.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoint import check_model_format, check_writable, load_checkpoint, save_checkpoint
from .data import ImageData, TensorBatches
from .device import PRECISIONS, autocast_dtype, cpu_has_fast_bf16, pick_device, seed_everything, torch_at_least
from .distributed import ShardedBatches
from .distributed import setup as _dist_setup
from .distributed import wrap as _dist_wrap
from .errors import KitError
from .models.base import GenerativeModel, renamed_options

LR_SCHEDULES = ("constant", "cosine")


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
    #: seconds each phase took (``"train"``, then the model's ``after_fit_phase``), and what a time budget gave it
    phases: dict[str, float] = field(default_factory=dict)
    budget: dict[str, float] = field(default_factory=dict)

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
    """What a batch's conditions become for ``model``: nothing for an unconditional one."""
    return c if model.condition is not None else None


@torch.no_grad()
def evaluate(model: GenerativeModel, data: ImageData | Iterable, batch_size: int = 512,
             device: torch.device | str | None = None, max_seconds: float | None = None) -> dict[str, float]:
    """Mean loss terms of ``model`` over ``data`` (no gradient, eval mode); with ``max_seconds``, over the batches
    done by then (at least one)."""
    device = pick_device(device) if device is not None else next(model.parameters()).device
    batches = TensorBatches(data, batch_size, shuffle=False, device=device) if isinstance(data, ImageData) else data
    was_training = model.training
    model.eval()
    totals: dict[str, float] = {}
    n = 0
    t0 = time.perf_counter()
    for x, c in batches:
        terms = model.loss(x.to(device), _condition(model, c.to(device)))
        for k, v in terms.items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(x)
        n += len(x)
        if max_seconds is not None and time.perf_counter() - t0 >= max_seconds:
            break
    model.train(was_training)
    return {k: v / max(n, 1) for k, v in totals.items()}


def _same_config(a: dict[str, Any], b: dict[str, Any], values: dict[str, dict[str, str]] | None = None) -> bool:
    """Configs equal up to option names (and ``values``' choices) of earlier kit versions and the derived
    condition kind."""
    def norm(c: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in renamed_options(c, "config", values).items() if k != "condition"}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return norm(a) == norm(b)


def _check_resumable(state: dict[str, Any], ckpt: Path, model: GenerativeModel, data: dict | None,
                     settings: dict[str, Any]) -> None:
    """Refuse a checkpoint of another model config, other training data or other settings (one line each)."""
    fix = "use another checkpoint path (a new --out folder) or start over without resume (--resume)"
    if not _same_config(state["config"], model.config, type(model).renamed_values):
        raise KitError(f"{ckpt} was trained with another config ({state['config'].get('model')}); {fix}")
    old = state.get("data")
    if old is not None and data is not None and old != data:
        def what(d: dict) -> str:
            return f"{d.get('name') or 'unnamed'}, {d.get('size')} images, hash {str(d.get('hash'))[:8]}"

        raise KitError(f"{ckpt} was trained on other data ({what(old)}) than this run ({what(data)}); {fix}")
    changed = [k for k, v in (state.get("settings") or {}).items() if k in settings and settings[k] != v]
    if changed:
        k = changed[0]
        raise KitError(f"{ckpt} was trained with {k} {state['settings'][k]}, this run asks for {settings[k]}; {fix}")


def run_is_finished(state: dict[str, Any], epochs: int, max_seconds: float | None) -> bool:
    """True when a checkpoint's run already did what this call asks (so resuming changes nothing)."""
    if not state.get("finished"):
        return False
    h = state["history"]
    if int(h.get("epochs", 0)) >= epochs:
        return True
    asked_before = state.get("max_seconds")
    return bool(h.get("stopped_by_time")) and max_seconds is not None and asked_before is not None \
        and max_seconds <= asked_before


@torch.enable_grad()  # trains even when called under torch.no_grad() (e.g. from an evaluation)
def fit(model: GenerativeModel, train: ImageData | Iterable, val: ImageData | None = None, *, epochs: int = 10,
        lr: float = 1e-3, batch_size: int = 128, max_seconds: float | None = None,
        device: str | torch.device | None = None, seed: int = 0, checkpoint: str | os.PathLike | None = None,
        every: int = 1, resume: bool = False, progress: bool = True, meta: dict[str, Any] | None = None,
        lr_schedule: str = "constant", precision: str = "auto") -> History:
    """Train ``model`` with Adam, then run its ``after_fit`` hook; return the :class:`History`.

    Args:
        model: any kit model (its ``loss`` gives the terms).
        train: an :class:`ImageData` (batched in memory, the fast path; its ``conditions`` are what the model is
            conditioned on) or any iterable of ``(x, c)`` batches.
        val: optional validation split, evaluated after every epoch.
        epochs: total epochs (when resuming, the run continues up to this number).
        max_seconds: a cap on everything ``fit`` does: the training loop gets ``1 - model.after_fit_share`` of it
            (checked every batch), ``after_fit`` what is left (how it was split: ``history.budget``).
        checkpoint: file path (``.../checkpoint.pt``) to save to every ``every`` epochs and at the end.
        resume: continue from ``checkpoint`` if it exists (weights, optimiser, epoch, shuffling, history); a run that
            already finished what is asked is loaded and returned as it is, its checkpoint untouched.  A checkpoint
            of another model config, other training data (name, size, a hash of the items) or another batch size,
            learning rate or schedule is refused.
        meta: extra plain values stored in the checkpoint (e.g. dataset name, class names).
        lr_schedule: ``"constant"`` or ``"cosine"`` (decay ``lr`` to 0 over ``epochs`` batch by batch, or over
            the time budget when that runs out first: a short run ends at a lower loss than with a constant rate).
        precision: ``"auto"`` (float16 on CUDA, bfloat16 on CPUs with native bf16 units, else float32), or force
            ``"fp32"``, ``"bf16"``, ``"fp16"`` (see :func:`cvaelib.device.autocast_dtype`).
    """
    t_call = time.perf_counter()
    if epochs < 1:
        raise KitError(f"epochs must be at least 1, got {epochs}; nothing would be trained")
    if lr_schedule not in LR_SCHEDULES:
        raise KitError(f"unknown lr_schedule {lr_schedule!r}; choose one of: {', '.join(LR_SCHEDULES)}")
    if max_seconds is not None and max_seconds <= 0:
        raise KitError(f"max_seconds must be > 0, got {max_seconds}")
    in_memory = isinstance(train, ImageData)
    share = min(max(float(model.after_fit_share), 0.0), 0.9) if in_memory else 0.0
    train_budget = max_seconds * (1.0 - share) if max_seconds is not None else None
    data_id = train.fingerprint() if in_memory else None
    settings = {"batch_size": batch_size, "lr": lr, "lr_schedule": lr_schedule}
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.suffix != ".pt":
        ckpt = ckpt / "checkpoint.pt"
    device = pick_device(device)
    state = None
    if ckpt is not None and resume and ckpt.exists():
        state = load_checkpoint(ckpt, map_location=device)
        check_model_format(state, ckpt)
        _check_resumable(state, ckpt, model, data_id, settings)
        if run_is_finished(state, epochs, max_seconds):  # nothing left to do: load, never rewrite
            model.load_state_dict(state["state_dict"])
            model.to(device).eval()
            if progress:
                print(f"{ckpt} already finished this run ({state['history'].get('epochs')} epochs); loaded it")
            return History.from_dict(state["history"])
    ctx, device = _dist_setup(device)  # under torchrun: join the process group (see cvaelib.distributed), else None
    seed_everything(seed + (ctx.rank if ctx is not None else 0))  # each rank its own noise; rank 0 = a plain run
    amp_dtype = autocast_dtype(device, precision)
    # channels-last feature maps let oneDNN (CPU) and cuDNN (GPU) pick their fastest convolution kernels
    model.to(device, memory_format=torch.channels_last).train()
    # the fused Adam runs one kernel for all parameters (CPU support arrived in torch 2.4)
    fused = device.type == "cuda" or (device.type == "cpu" and torch_at_least(2, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=fused or None)
    batches = (TensorBatches(train, batch_size, shuffle=True, device=device, seed=seed, drop_last=len(train) > batch_size)
               if in_memory else train)
    if ctx is not None and in_memory:  # this rank's share of each epoch
        batches = ShardedBatches(train, batch_size, device=device, seed=seed, rank=ctx.rank, world_size=ctx.world_size,
                                 drop_last=len(train) // ctx.world_size > batch_size)
    loss_fn = _dist_wrap(model, ctx, device) if ctx is not None else model.loss  # DDP syncs gradients in forward
    steps_per_epoch = len(batches) if isinstance(batches, TensorBatches) else None
    scheduler = None
    clock = {"t_start": time.perf_counter()}  # set again below, once a resumed run's elapsed time is known
    if lr_schedule == "cosine" and steps_per_epoch:
        total_steps = max(steps_per_epoch * epochs, 1)

        def fraction_done(step: int) -> float:
            # with a time budget the rate reaches 0 when the budget runs out, if that comes before the last epoch
            done = min(step, total_steps) / total_steps
            if train_budget:
                done = max(done, min((time.perf_counter() - clock["t_start"]) / train_budget, 1.0))
            return done

        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * fraction_done(step))))
    history = History()
    if ckpt is not None:
        check_writable(ckpt.parent)
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and "scheduler" in state:
            scheduler.load_state_dict(state["scheduler"])
        history = History.from_dict(state["history"])
        if "batches" in state and isinstance(batches, TensorBatches):
            batches.load_state_dict(state["batches"])
        if "rng" in state:
            torch.set_rng_state(state["rng"])
    elif in_memory:
        model.prepare_conditions(train.conditions)

    use_amp = amp_dtype is not None
    # float16 gradients can underflow, so scale the loss; bfloat16 has float32's range and needs no scaler
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16 and device.type == "cuda")

    def save(finished: bool = False) -> None:
        if ckpt is None or (ctx is not None and not ctx.is_main):
            return
        save_checkpoint(ckpt, {"config": model.config, "state_dict": model.state_dict(),
                               "optimizer": optimizer.state_dict(), "epoch": history.epochs,
                               "history": history.to_dict(), "meta": dict(meta or {}), "data": data_id,
                               "settings": settings, "max_seconds": max_seconds, "finished": finished,
                               "batches": batches.state_dict() if isinstance(batches, TensorBatches) else {},
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
    t_call -= history.seconds  # a resumed run's budget counts the time it already trained
    loop_done = False
    try:
        for epoch in range(start_epoch, epochs):
            if history.stopped_by_time and train_budget is not None and time.perf_counter() - t_call >= train_budget:
                break
            history.stopped_by_time = False
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
                out_of_time = train_budget is not None and time.perf_counter() - t_call >= train_budget
                if train_budget is not None and ctx is not None:
                    out_of_time = ctx.any(out_of_time, device)
                if out_of_time:
                    history.stopped_by_time = True
                    break
            if ctx is not None:  # epoch means over all ranks' images
                sums, seen = ctx.sum_terms(sums, seen, device)
            history.images += seen
            history.train.append({k: v / max(seen, 1) for k, v in sums.items()})
            if val is not None and (ctx is None or ctx.is_main):  # within the budget, when there is one
                left = None if train_budget is None else max(train_budget - (time.perf_counter() - t_call), 0.0)
                history.val.append(evaluate(model, val, device=device, max_seconds=left))
            history.epochs = epoch + 1
            history.seconds = time.perf_counter() - t_start
            if (epoch + 1) % max(every, 1) == 0 or history.stopped_by_time or epoch + 1 == epochs:
                save()
            if history.stopped_by_time:
                break
        history.seconds = time.perf_counter() - t_start
        loop_done = True
        history.phases["train"] = round(history.seconds, 3)
        if train_budget is not None:
            history.budget["train"] = round(train_budget, 3)
        bar.close()
        if in_memory:
            _after_fit(model, train, history, max_seconds, share, t_call, quiet)
        save(finished=True)
    except KeyboardInterrupt:
        if not loop_done:
            history.seconds = time.perf_counter() - t_start
        history.interrupted = True
        save()
        print(f"\ninterrupted: checkpoint saved to {ckpt}; run again with resume=True to continue"
              if ckpt is not None else "\ninterrupted")
    finally:
        bar.close()
        if ctx is not None:
            ctx.close()
    model.eval()
    return history


def _after_fit(model: GenerativeModel, train: ImageData, history: History, max_seconds: float | None,
               share: float, t_call: float, quiet: bool) -> None:
    """Run ``model.after_fit`` within what is left of the budget (at least half its share), timing it."""
    budget = None
    if max_seconds is not None:
        budget = max(max_seconds - (time.perf_counter() - t_call), 0.5 * share * max_seconds)
        history.budget[model.after_fit_phase] = round(budget, 3)
        if share > 0 and not quiet:
            print(f"{model.after_fit_phase}: up to {budget:.0f} s left of the {max_seconds:.0f} s budget",
                  file=sys.stderr)
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    model.after_fit(train, max_seconds=budget, progress=not quiet)
    model.train(was_training)
    history.phases[model.after_fit_phase] = round(time.perf_counter() - t0, 3)


def last_terms(history: History) -> dict[str, float]:
    """Final train/val loss terms as flat keys (``train_loss``, ``val_kl``, ...) for metrics files."""
    out: dict[str, float] = {}
    for split in ("train", "val"):
        rows = getattr(history, split)
        if rows:
            out.update({f"{split}_{k}": float(v) for k, v in rows[-1].items() if math.isfinite(v)})
    return out


__all__ = ["History", "LR_SCHEDULES", "PRECISIONS", "autocast_dtype", "cpu_has_fast_bf16", "evaluate", "fit",
           "last_terms", "pick_device", "run_is_finished", "seed_everything"]

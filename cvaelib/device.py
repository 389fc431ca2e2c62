"""Where and in what precision tensors live: device choice, seeding, and the mixed-precision dtype.

Kept apart from the training loop so that everything that only *runs* a network (CLIP encoders, the judge
classifier, evaluation) can pick a device without importing :mod:`cvaelib.train`.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from .errors import KitError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available (Colab), else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so runs and figures are reproducible."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


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


def torch_at_least(major: int, minor: int) -> bool:
    """True when the installed torch is at least ``major.minor``."""
    return tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) >= (major, minor)


__all__ = ["PRECISIONS", "autocast_dtype", "cpu_has_fast_bf16", "pick_device", "seed_everything", "torch_at_least"]

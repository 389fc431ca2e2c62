"""Checkpoints: one file holding the state dict, the model config, optimiser, epoch and history.

Files are written to a temporary name in the same folder and then renamed, so a crash (or ``kill -9``) never
leaves a half-written checkpoint behind.  Loading uses ``torch.load(weights_only=True)``: a checkpoint can hold
tensors and plain Python values only, never code, so a checkpoint shared by someone else cannot run anything.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, KitError

KIT_NAME = "cvaelib"
#: 2: convolutional encoders flatten their feature maps pixel by pixel (format 1: channel by channel), so the
#: weights of a format-1 model would load but read their features in the wrong order
FORMAT_VERSION = 2
MIN_MODEL_FORMAT = 2
CHECKPOINT_FILE = "checkpoint.pt"


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """Accept a run folder (``runs/x``) or the file itself (``runs/x/checkpoint.pt``)."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_FILE
    if not p.is_file():
        raise CheckpointError(f"no checkpoint at {p}; pass the --out folder of a finished `train` run "
                              f"(it contains {CHECKPOINT_FILE})")
    return p


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus kit name and format version) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"kit": KIT_NAME, "format": FORMAT_VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_writable(folder: str | os.PathLike, need_bytes: int = 1 << 20) -> None:
    """Fail before training (not after an hour of it) when ``folder`` cannot take a checkpoint."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-") as fh:
            fh.write(b"\0" * min(need_bytes, 1 << 20))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise KitError(f"cannot write to output folder {folder} ({exc.strerror or exc}); "
                       f"choose another --out folder or free disk space") from None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a kit checkpoint (never executes code from the file)."""
    p = resolve_checkpoint(path)
    if not zipfile.is_zipfile(p):  # torch.save writes a zip archive; anything else is cut short or not ours
        raise CheckpointError(f"{p} is corrupt or truncated (not a complete torch archive); delete it and train "
                              f"again, or resume from an earlier copy")
    try:
        payload = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(f"{p} contains pickled Python objects (e.g. a whole model saved with "
                                  f"torch.save(model)); it was refused because loading could run code. Re-save "
                                  f"it as a state dict, or train with `python -m cvaelib train`") from None
        raise CheckpointError(f"{p} is corrupt or truncated ({exc}); delete it and train again") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(f"{p} is corrupt or truncated ({type(exc).__name__}); delete it and train again, "
                              f"or resume from an earlier copy") from None
    if not isinstance(payload, dict) or payload.get("kit") != KIT_NAME:
        raise CheckpointError(f"{p} is not a cvaelib checkpoint (no kit marker); train one with "
                              f"`python -m cvaelib train` or load foreign weights yourself")
    if int(payload.get("format", -1)) > FORMAT_VERSION:
        raise CheckpointError(f"{p} was written by a newer cvaelib (format {payload.get('format')}, this kit "
                              f"reads <= {FORMAT_VERSION}); upgrade cvaelib")
    for key in ("config", "state_dict"):
        if key not in payload:
            raise CheckpointError(f"{p} has no {key!r}; it is incomplete, train again")
    return payload


def check_model_format(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """Refuse model weights from a format older than :data:`MIN_MODEL_FORMAT` (they would load but be wrong)."""
    found = int(payload.get("format", 1))
    if found < MIN_MODEL_FORMAT:
        raise CheckpointError(f"{resolve_checkpoint(path)} was written by an earlier cvaelib (format {found}), whose "
                              f"encoders order their features differently; train it again with this version")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", expect: str | None = None):
    """Rebuild a model from a checkpoint's config alone and load its weights (eval mode).

    Args:
        path: run folder or checkpoint file.
        device: where to put the model.
        expect: optional model name (``"cvae"``, ...); another model raises a clear error.
    """
    from .models import build_model

    payload = load_checkpoint(path, map_location=device)
    check_model_format(payload, path)
    name = payload["config"].get("model")
    if expect is not None and name != expect:
        raise CheckpointError(f"{resolve_checkpoint(path)} holds a {name!r} model, not {expect!r}; "
                              f"pass a checkpoint trained with --model {expect}")
    model = build_model(payload["config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        detail = " ".join(line.strip() for line in str(exc).strip().splitlines()[1:3])[:240]
        raise CheckpointError(f"{resolve_checkpoint(path)}: weights do not fit the {name!r} config ({detail}); "
                              f"the file was written by another kit version or edited") from None
    model.checkpoint_meta = payload.get("meta", {})
    return model.to(device).eval()

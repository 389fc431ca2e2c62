"""``load_clip``: one call that finds a CLIP however the student installed it, and says clearly when it cannot.

Sources, tried in this order for a model name such as ``"ViT-B/32"``:

1. OpenAI's ``clip`` package, from ``git+https://github.com/openai/CLIP`` (what Colab notebooks install) or PyPI's
   ``openai-clip``.  PyPI's 1.0.1 does ``from pkg_resources import packaging``, and setuptools >= 81 no longer ships
   ``pkg_resources``: :func:`import_clip_module` then imports it through a stand-in module that exposes only
   ``packaging`` (all ``clip`` uses), and removes the stand-in again afterwards.
2. ``open_clip`` with ``pretrained="openai"`` (the same weights, mirrored on the Hugging Face Hub) when OpenAI's
   download URLs fail; they have been reported dead (openai/CLIP issue 516).

Other names: a local checkpoint file (OpenAI TorchScript archive or a state dict; loaded here rather than through
``clip.load``, whose file-path branch reads the handle a second time without rewinding it and so cannot load a state
dict), ``"open_clip:ARCH/PRETRAINED"`` (PRETRAINED may be a tag or a local file), and ``"tiny:PATH"`` (the kit's
offline TinyCLIP, :mod:`cvaelib.clip.tiny`).

Nothing here runs at ``import cvaelib``: a broken ``clip`` install only matters when CLIP is asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import socket
import warnings
from pathlib import Path
from typing import Iterator

import torch

from ..errors import CheckpointError, KitError
from .encoder import CLIP_MEAN, CLIP_STD, ClipEncoder, OpenAIClipEncoder, OpenClipEncoder
from .packages import import_clip_module, import_open_clip


#: OpenAI model name -> (open_clip architecture, pretrained tag) used when OpenAI's own download fails.
OPENAI_TO_OPEN_CLIP: dict[str, tuple[str, str]] = {
    "RN50": ("RN50", "openai"),
    "RN101": ("RN101", "openai"),
    "RN50x4": ("RN50x4", "openai"),
    "RN50x16": ("RN50x16", "openai"),
    "RN50x64": ("RN50x64", "openai"),
    "ViT-B/32": ("ViT-B-32", "openai"),
    "ViT-B/16": ("ViT-B-16", "openai"),
    "ViT-L/14": ("ViT-L-14", "openai"),
    "ViT-L/14@336px": ("ViT-L-14-336", "openai"),
}

#: Seconds a single download connection may stall before we give up on that source.
NETWORK_TIMEOUT_S = 30.0


# ---------------------------------------------------------------------- files
def file_fingerprint(path: str | os.PathLike) -> str:
    """Cheap identity of a weights file: sha256 of its size, first and last MiB (a retrained file differs)."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(p, "rb") as f:
        h.update(f.read(1 << 20))
        if size > 1 << 20:
            f.seek(max(1 << 20, size - (1 << 20)))
            h.update(f.read())
    return f"sha256-ends:{h.hexdigest()[:24]}"


def read_clip_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict of an OpenAI-format CLIP file: a TorchScript archive (OpenAI's downloads) or a state dict.

    Each format is read by path, from the start (``clip.load`` tries TorchScript on an open handle and then
    ``torch.load``s the same, already consumed handle).  Wrapped training checkpoints (``{"state_dict": ...}``,
    ``module.`` prefixes) are unwrapped.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"CLIP checkpoint not found: {path}; pass an existing .pt file or a model name")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch >= 2.10 flags TorchScript as deprecated; OpenAI ships it
            return dict(torch.jit.load(path, map_location="cpu").state_dict())
    except Exception:  # noqa: BLE001 - not TorchScript: try a plain state dict next
        pass
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path} is neither a TorchScript CLIP nor a state dict ({type(exc).__name__}); "
                              "pass an OpenAI CLIP .pt file") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or "text_projection" not in {k.removeprefix("module.") for k in obj}:
        raise CheckpointError(f"{path} does not hold CLIP weights (no text_projection); pass an OpenAI CLIP .pt file")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _build_openai_model(state_dict: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.nn.Module, str]:
    """Rebuild the network from a state dict with ``clip.model.build_model`` (else open_clip's twin).

    Both builders round the weights to fp16 (OpenAI's release format).  On CPU the model runs in fp32, so the
    original values are loaded again afterwards: an fp32 checkpoint then gives exactly its own embeddings.
    """
    original = {k: v for k, v in state_dict.items() if k not in ("input_resolution", "context_length", "vocab_size")}
    try:
        clip = import_clip_module()
        build, kind = clip.model.build_model, "clip"
    except KitError:
        build, kind = import_open_clip().model.build_model_from_openai_state_dict, "open_clip"
    try:
        model = build(state_dict).to(device)
        if device.type == "cpu":
            model.float()  # OpenAI's weights are fp16; CPU kernels want fp32
            model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in original.items()})
    except (KeyError, RuntimeError, ValueError, AssertionError, ZeroDivisionError) as exc:
        raise CheckpointError(f"the weights do not fit OpenAI's CLIP layout ({_short(exc, 100)}); pass an OpenAI "
                              "CLIP checkpoint, or an open_clip one as 'open_clip:ARCH//path/to/file.pt'") from None
    return model.eval(), kind


def _encoder_from_file(path: str, device: torch.device, name: str | None = None) -> ClipEncoder:
    model, kind = _build_openai_model(read_clip_state_dict(path), device)
    name = name or str(Path(path).resolve())
    fingerprint = file_fingerprint(path)
    if kind == "clip":
        return OpenAIClipEncoder(model, name, device, weights_id=fingerprint)
    open_clip = import_open_clip()
    # OpenAI's preprocessing (open_clip sets it only when it downloads the weights itself)
    model.visual.preprocess_cfg = {"size": model.visual.image_size, "mode": "RGB", "mean": CLIP_MEAN, "std": CLIP_STD,
                                   "interpolation": "bicubic", "resize_mode": "shortest"}
    return OpenClipEncoder(model, name, device, open_clip.tokenizer.SimpleTokenizer(), weights_id=fingerprint)


# ---------------------------------------------------------------------- network helpers
@contextlib.contextmanager
def _network_timeout(seconds: float) -> Iterator[None]:
    """`clip` downloads with ``urlopen`` and no timeout: a dead network would hang forever."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _host_reachable(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hf_offline_unless_reachable() -> Iterator[None]:
    """Without a network, huggingface_hub retries for ~30 s before failing; offline mode answers from the cache."""
    if _host_reachable("huggingface.co"):
        yield
        return
    try:
        constants = importlib.import_module("huggingface_hub.constants")
    except ImportError:
        yield
        return
    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def _short(exc: BaseException, limit: int = 140) -> str:
    if isinstance(exc, KitError):
        limit = max(limit, 300)  # our own messages carry the fix (install hints): keep them whole
    msg = " ".join(f"{type(exc).__name__}: {exc}".split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


# ---------------------------------------------------------------------- loaders per source
def _load_with_clip(name: str, device: torch.device, download_root: str | None) -> ClipEncoder:
    clip = import_clip_module()
    with _network_timeout(NETWORK_TIMEOUT_S):
        model, _ = clip.load(name, device=str(device), jit=False, download_root=download_root)
    if device.type == "cpu":
        model.float()
    return OpenAIClipEncoder(model, name, device)


def load_open_clip(arch: str, pretrained: str | None, device: torch.device | str,
                   cache_dir: str | None = None, name: str | None = None) -> OpenClipEncoder:
    """An open_clip model wrapped as a :class:`ClipEncoder` (``pretrained``: a tag such as ``"openai"`` or a file)."""
    open_clip = import_open_clip()
    device = torch.device(device)
    quick_gelu = False
    if pretrained and not os.path.isfile(pretrained):
        # OpenAI's weights were trained with QuickGELU; open_clip's plain configs use nn.GELU
        with contextlib.suppress(Exception):
            quick_gelu = bool(open_clip.get_pretrained_cfg(arch, pretrained).get("quick_gelu", False))
    with _hf_offline_unless_reachable(), _network_timeout(NETWORK_TIMEOUT_S):
        model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=pretrained, device=device,
                                                            cache_dir=cache_dir, force_quick_gelu=quick_gelu)
    weights_id = file_fingerprint(pretrained) if pretrained and os.path.isfile(pretrained) else None
    return OpenClipEncoder(model, name or f"open_clip:{arch}/{pretrained}", device, open_clip.get_tokenizer(arch),
                           weights_id=weights_id)


def _load_tiny(path: str, device: torch.device) -> ClipEncoder:
    from .tiny import load_tiny_clip  # written alongside; imported only when asked for

    encoder = load_tiny_clip(path, device)
    if getattr(encoder, "weights_id", None) is None and os.path.isfile(path):
        encoder.weights_id = file_fingerprint(path)
    return encoder


# ---------------------------------------------------------------------- the entry point
def load_clip(name: str = "ViT-B/32", device: str | torch.device | None = None,
              download_root: str | os.PathLike | None = None) -> ClipEncoder:
    """Load a CLIP as a :class:`ClipEncoder`.

    ``name``:
      * an OpenAI model name (``"ViT-B/32"``, ``"RN50"``, ...): OpenAI's ``clip`` package (weights cached in
        ``download_root``, default ``~/.cache/clip``), falling back to ``open_clip`` (``pretrained="openai"``) when
        ``clip`` is missing or its download fails;
      * a path to a local OpenAI-format checkpoint (TorchScript archive or state dict);
      * ``"open_clip:ARCH/PRETRAINED"``, e.g. ``"open_clip:ViT-B-32/openai"`` or ``"open_clip:ViT-B-32//path/w.pt"``;
      * ``"tiny:PATH"``: the kit's offline TinyCLIP checkpoint.

    ``device``: default CUDA when present, else CPU.  Raises one :class:`KitError` naming the options when no source
    works (e.g. offline with no cached weights).
    """
    from ..device import pick_device

    if not isinstance(name, (str, os.PathLike)):
        raise KitError(f"load_clip name must be a str, got {type(name).__name__}")
    name = os.fspath(name)
    device = pick_device(device)
    root = os.fspath(download_root) if download_root is not None else None

    if name.startswith("tiny:"):
        return _load_tiny(name[len("tiny:"):], device)
    if name.startswith("open_clip:"):
        spec = name[len("open_clip:"):]
        if spec.startswith(("hf-hub:", "local-dir:")):
            arch, pretrained = spec, None
        else:
            arch, _, pretrained = spec.partition("/")
        if not arch:
            raise KitError(f"bad open_clip name {name!r}; use 'open_clip:ARCH/PRETRAINED', "
                           "e.g. 'open_clip:ViT-B-32/openai'")
        try:
            return load_open_clip(arch, pretrained or None, device, cache_dir=root, name=name)
        except KitError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise KitError(f"open_clip could not load {arch!r} with pretrained={pretrained!r} ({_short(exc)}); "
                           "if offline, pass a local weights file as PRETRAINED; else check the names with "
                           "open_clip.list_pretrained()") from None
    if name not in OPENAI_TO_OPEN_CLIP or os.path.isfile(name):
        looks_like_file = name.endswith((".pt", ".pth", ".bin", ".ckpt")) or name.startswith(("/", ".", "~"))
        if os.path.exists(name) or looks_like_file:
            return _encoder_from_file(os.path.expanduser(name), device)
        raise KitError(f"unknown CLIP model {name!r}; use one of {sorted(OPENAI_TO_OPEN_CLIP)}, a local .pt file, "
                       "'open_clip:ARCH/PRETRAINED' or 'tiny:PATH'")

    reasons: list[str] = []
    try:
        return _load_with_clip(name, device, root)
    except Exception as exc:  # noqa: BLE001 - any failure: record it and try the next source
        reasons.append(f"clip: {_short(exc)}")
    arch, tag = OPENAI_TO_OPEN_CLIP[name]
    try:
        return load_open_clip(arch, tag, device, cache_dir=root, name=name)
    except Exception as exc:  # noqa: BLE001
        reasons.append(f"open_clip: {_short(exc)}")
    cache = root or os.path.expanduser("~/.cache/clip")
    raise KitError(f"could not load CLIP {name!r} ({'; '.join(reasons)}). Options: connect to the internet once "
                   f"(weights are then cached in {cache}); or copy the OpenAI checkpoint {name.replace('/', '-')}.pt "
                   "there (download_root=...); or pass a local file, load_clip('/path/to/model.pt'); or train the "
                   "offline TinyCLIP and use load_clip('tiny:/path/to/tinyclip.pt')")

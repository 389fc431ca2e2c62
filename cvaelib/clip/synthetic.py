"""Randomly initialised CLIP networks of OpenAI's exact class, for tests and benchmarks that must run offline.

They have the real architecture (``clip.model.CLIP``), the real 49,408-token vocabulary and 77-token context, and
load through every path :func:`cvaelib.clip.load_clip` supports; only the weights are random, so their embeddings
are meaningless.  Head counts follow ``clip.model.build_model``'s rule (``width // 64``), so a saved state dict
rebuilds to the same network.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

from ..errors import KitError

#: name -> keyword arguments of ``clip.model.CLIP``
SHAPES: dict[str, dict[str, Any]] = {
    "tiny": dict(embed_dim=32, image_resolution=32, vision_layers=1, vision_width=64, vision_patch_size=8,
                 context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1, transformer_layers=1),
    "small": dict(embed_dim=256, image_resolution=64, vision_layers=2, vision_width=256, vision_patch_size=16,
                  context_length=77, vocab_size=49408, transformer_width=256, transformer_heads=4,
                  transformer_layers=4),
    "base": dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=32,
                 context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                 transformer_layers=12),  # ViT-B/32's shape
}


def random_clip_model(shape: str = "tiny", seed: int = 0) -> torch.nn.Module:
    """A ``clip.model.CLIP`` of the given shape (``"tiny"``, ``"small"``, ``"base"`` = ViT-B/32) with random weights."""
    from .packages import import_clip_module

    if shape not in SHAPES:
        raise KitError(f"unknown CLIP shape {shape!r}; use one of {sorted(SHAPES)}")
    clip = import_clip_module()
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = clip.model.CLIP(**SHAPES[shape])
    finally:
        torch.random.set_rng_state(gen_state)  # do not disturb the caller's random stream
    return model.float().eval()


def save_random_clip(path: str | os.PathLike, shape: str = "tiny", seed: int = 0, torchscript: bool = False,
                     model: torch.nn.Module | None = None) -> torch.nn.Module:
    """Save a random CLIP as a state dict (``torchscript=False``) or as a TorchScript archive like OpenAI's files.

    Returns the model that was saved.
    """
    model = model if model is not None else random_clip_model(shape, seed)
    if not torchscript:
        torch.save(model.state_dict(), path)
        return model
    res = model.visual.input_resolution
    tokens = torch.zeros(2, model.context_length, dtype=torch.long)
    tokens[:, 0], tokens[:, 1] = 49406, 49407  # start + end of text
    example = {"encode_text": tokens, "encode_image": torch.rand(2, 3, res, res)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated in torch >= 2.10, yet it is OpenAI's format
        traced = torch.jit.trace_module(model, example)
        traced.save(str(path))
    return model

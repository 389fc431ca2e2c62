"""Model registry: the CLI's ``--model`` names and ``build_model(config)`` for checkpoints.

Other modules add themselves with :func:`register` (e.g. the CLIP-conditioned CVAE) so that a checkpoint's config
dict alone rebuilds any model.
"""

from __future__ import annotations

from typing import Any

from ..errors import KitError
from .ae import ConvAutoencoder
from .base import GenerativeModel
from .clip_cvae import INJECT_POINTS, ClipConditionalVAE
from .cvae import COND_MODES, ConditionalVAE
from .multilabel_cvae import CELEBA_ATTRIBUTES, AttributeCVAE
from .resvae import INJECTIONS, ResidualVAE
from .vae import ConvVAE, MLPVAE
from .vqvae import VQVAE

MODELS: dict[str, type[GenerativeModel]] = {}


def register(cls: type[GenerativeModel]) -> type[GenerativeModel]:
    """Class decorator: make ``cls`` buildable by its ``name``."""
    MODELS[cls.name] = cls
    return cls


for _cls in (ConvAutoencoder, MLPVAE, ConvVAE, ConditionalVAE, VQVAE):
    register(_cls)
register(ClipConditionalVAE)
register(ResidualVAE)
register(AttributeCVAE)


def build_model(config: dict[str, Any]) -> GenerativeModel:
    """Rebuild a model from its config dict (``config["model"]`` names the class)."""
    config = dict(config)
    name = config.pop("model", None)
    if name not in MODELS:
        raise KitError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](**config)


__all__ = ["COND_MODES", "MODELS", "ConditionalVAE",
           "ClipConditionalVAE", "INJECT_POINTS",
           "ConvAutoencoder", "ConvVAE", "GenerativeModel", "MLPVAE",
           "VQVAE", "build_model", "register"]
__all__ += ["AttributeCVAE", "CELEBA_ATTRIBUTES", "INJECTIONS", "ResidualVAE"]

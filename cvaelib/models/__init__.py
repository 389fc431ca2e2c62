"""Model registry: the CLI's ``--model`` names and ``build_model(config)`` for checkpoints.

Adding a model is one file (a :class:`~cvaelib.models.base.GenerativeModel` subclass with its ``name``, its
``condition_kind`` and its defaults as constructor defaults) plus one :func:`register` line below: the CLI's options
are the constructor's parameters (:func:`model_options`), its condition is handled by :mod:`cvaelib.conditioning`.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import KitError
from .ae import ConvAutoencoder
from .base import RENAMED_OPTIONS, GenerativeModel, renamed_options
from .clip_cvae import ClipConditionalVAE
from .cvae import ConditionalVAE
from .multilabel_cvae import CELEBA_ATTRIBUTES, AttributeCVAE
from .resvae import INJECTIONS, ResidualVAE
from .vae import ConvVAE, MLPVAE
from .vqvae import VQVAE

MODELS: dict[str, type[GenerativeModel]] = {}


def register(cls: type[GenerativeModel]) -> type[GenerativeModel]:
    """Class decorator: make ``cls`` buildable by its ``name``."""
    MODELS[cls.name] = cls
    return cls


for _cls in (ConvAutoencoder, MLPVAE, ConvVAE, ConditionalVAE, ResidualVAE, AttributeCVAE, ClipConditionalVAE,
             VQVAE):
    register(_cls)


def model_class(name: str) -> type[GenerativeModel]:
    """The registered class called ``name`` (one-line error listing the names otherwise)."""
    if name not in MODELS:
        raise KitError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name]


def model_options(cls: type[GenerativeModel]) -> dict[str, Any]:
    """The options a model class is built with: its constructor's named parameters and their defaults."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                                                 p.KEYWORD_ONLY)}


def build_model(config: dict[str, Any]) -> GenerativeModel:
    """Rebuild a model from its config dict (``config["model"]`` names the class).

    ``config["condition"]`` is derived by the class, and option names of earlier kit versions are translated, so
    configs of older checkpoints load too.
    """
    config = dict(config)
    cls = model_class(config.pop("model", None))
    config.pop("condition", None)
    return cls(**renamed_options(config, cls.__name__, cls.renamed_values))


__all__ = ["CELEBA_ATTRIBUTES", "INJECTIONS", "MODELS", "RENAMED_OPTIONS", "AttributeCVAE",
           "ClipConditionalVAE", "ConditionalVAE", "ConvAutoencoder", "ConvVAE", "GenerativeModel", "MLPVAE",
           "ResidualVAE", "VQVAE", "build_model", "model_class", "model_options", "register"]

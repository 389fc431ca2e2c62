"""The contract every model in the kit follows, so one training loop, CLI, plot and metric serve them all.

* ``encode(x, c=None)`` -> ``(mu, logvar)`` (an autoencoder returns ``(z, None)``)
* ``decode(z, c=None)`` -> logits ``[B, C, H, W]`` (apply ``sigmoid`` for images in [0, 1])
* ``sample(n, c=None, generator=None)`` -> ``n`` new images in [0, 1]: ``sample_latent`` decoded
* ``reconstruct(x, c=None, decode_c=None)`` -> images in [0, 1] decoded from the posterior mean
* ``loss(x, c=None)`` -> dict of named terms; ``"loss"`` is what the optimiser minimises
* ``config`` -> a plain dict that rebuilds the model: ``build_model(model.config)``; ``config["condition"]`` is the
  model's condition kind (None, ``"label"``, ``"attributes"`` or ``"clip"``, :mod:`cvaelib.conditioning`)

``c`` is the condition: class ids ``[B]`` (int64), or vectors ``[B, D]`` (attributes, CLIP embeddings).  Every hook
the training loop (:func:`cvaelib.train.fit`), the CLI, guided optimisation and DDP call is declared here with a
default, so none of them has to probe a model for what it offers.
"""

from __future__ import annotations

import functools
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from ..conditioning.kinds import check_condition
from ..errors import KitError
from ..losses import bernoulli_nll, gaussian_kl, reparameterize

if TYPE_CHECKING:
    from ..data import ImageData

#: option names of earlier kit versions -> today's (checkpoints and lessons written before the rename still load)
RENAMED_OPTIONS = {"cond": "injection", "inject": "injection", "cond_dim": "condition_dim",
                   "cond_noise": "condition_noise", "cond_hidden": "condition_hidden"}


def renamed_options(options: dict[str, Any], owner: str,
                    values: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """``options`` with names (and, per ``values``, choices) of earlier kit versions replaced by today's; a warning
    names each one."""
    out = dict(options)
    for old, new in RENAMED_OPTIONS.items():
        if old in out:
            if new in out:
                raise KitError(f"{owner}: pass {new}= only ({old}= is its old name)")
            warnings.warn(f"{owner}({old}=...) is now {new}=...", DeprecationWarning, stacklevel=3)
            out[new] = out.pop(old)
    for key, renames in (values or {}).items():
        if out.get(key) in renames:
            warnings.warn(f"{owner}({key}={out[key]!r}) is now {key}={renames[out[key]]!r}", DeprecationWarning,
                          stacklevel=3)
            out[key] = renames[out[key]]
    return out


class GenerativeModel(nn.Module):
    """Base class: subclasses implement ``encode`` and ``decode``, set ``name`` and ``condition_kind``."""

    name: ClassVar[str] = "base"
    #: the condition kind of this class (an instance may derive another one from its config: ``kind_for``)
    condition_kind: ClassVar[str | None] = None
    variational: ClassVar[bool] = True
    #: False when ``sample`` decodes codes from a distribution the model never fitted (a plain autoencoder)
    meaningful_samples: ClassVar[bool] = True
    #: False when only sampling needs the condition (e.g. a VQ-VAE whose prior is class-conditional)
    reconstruction_needs_condition: ClassVar[bool] = True
    #: Adam learning rate, its schedule and images per step that ``train`` uses unless told otherwise
    recommended_lr: ClassVar[float] = 1e-3
    recommended_lr_schedule: ClassVar[str] = "cosine"
    recommended_batch_size: ClassVar[int] = 128
    #: the share of ``fit``'s time budget that :meth:`after_fit` gets, and what that phase is called
    after_fit_share: ClassVar[float] = 0.0
    after_fit_phase: ClassVar[str] = "after fit"
    #: buffers changed only outside training steps (e.g. a retrieval bank): DDP does not re-send them every step
    static_buffers: ClassVar[tuple[str, ...]] = ()
    #: allowed values of options that are a choice (e.g. ``{"injection": (...)}``): checked before any data is loaded
    option_choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    #: choices of earlier kit versions -> today's (``{"injection": {"latent": "decoder"}}``): old checkpoints load
    renamed_values: ClassVar[dict[str, dict[str, str]]] = {}
    #: defaults of CLIP-guided optimisation (:func:`cvaelib.guided.guide_model`) for this kind of latent
    guidance_lr: ClassVar[float] = 0.05
    guidance_prior_weight: ClassVar[float] = 0.1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Constructors accept the option names of earlier kit versions (``cond=``, ``cond_dim=``, ...)."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def __init__(self, *args: Any, **options: Any) -> None:
            init(self, *args, **renamed_options(options, cls.__name__, type(self).renamed_values))

        cls.__init__ = __init__  # type: ignore[method-assign]

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        config = {"model": self.name, **config}
        config["condition"] = self.kind_for(config)
        self.config = config
        self.image_shape = tuple(int(s) for s in self.config["image_shape"])
        self.latent_dim = int(self.config["latent_dim"])
        self.beta = float(self.config.get("beta", 1.0))
        #: the ``meta`` dict of the checkpoint this model was loaded from (dataset, class names, ...)
        self.checkpoint_meta: dict[str, Any] = {}

    @classmethod
    def check_image_shape(cls, image_shape: tuple[int, int, int]) -> None:
        """One-line error when this class cannot be built for images of ``image_shape`` (checked before the
        data is conditioned, e.g. before a CLIP is loaded); any shape by default."""

    @classmethod
    def check_choices(cls, options: dict[str, Any]) -> None:
        """One-line error for an option outside its :attr:`option_choices`."""
        for key, value in options.items():
            allowed = cls.option_choices.get(key)
            if allowed is not None and value not in allowed:
                raise KitError(f"unknown {key} {value!r} for {cls.name}; choose one of: {', '.join(map(str, allowed))}")

    @classmethod
    def kind_for(cls, config: dict[str, Any]) -> str | None:
        """The condition kind a model of this class built from ``config`` has (default: ``condition_kind``)."""
        return cls.condition_kind

    @property
    def condition(self) -> str | None:
        """The condition kind: None (unconditional), ``"label"``, ``"attributes"`` or ``"clip"``."""
        return self.config["condition"]

    @property
    def num_classes(self) -> int:
        """Classes of a label-conditioned model (0 otherwise)."""
        return int(self.config.get("num_classes", 0) or 0) if self.condition == "label" else 0

    @property
    def condition_dim(self) -> int:
        """Length of a condition vector (attributes, CLIP embeddings); 0 for other kinds."""
        return int(self.config.get("condition_dim", 0) or 0) if self.condition in ("attributes", "clip") else 0

    @property
    def cond_dim(self) -> int:
        """Earlier name of :attr:`condition_dim` (kept for code written before the rename)."""
        return self.condition_dim

    # --- the contract -------------------------------------------------------------------------------------------
    def encode(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """Logits of the reconstruction of ``x`` (a stochastic z while training, the mean otherwise)."""
        mu, logvar = self.encode(x, c)
        z = reparameterize(mu, logvar) if (self.training and logvar is not None) else mu
        return self.decode(z, c)

    def loss(self, x: Tensor, c: Tensor | None = None) -> dict[str, Tensor]:
        """Negative ELBO with a beta-weighted KL: ``{"loss", "recon", "kl"}`` per image, in nats."""
        return self.elbo(x, c)[0]

    def elbo(self, x: Tensor, c: Tensor | None = None) -> tuple[dict[str, Tensor], Tensor]:
        """The loss terms of :meth:`loss` and the reconstruction logits (for subclasses that add terms)."""
        if self.training:
            c = self.noisy_condition(c)
        mu, logvar = self.encode(x, c)
        if logvar is None:  # deterministic autoencoder
            logits = self.decode(mu, c)
            recon = bernoulli_nll(logits, x)
            return {"loss": recon, "recon": recon}, logits
        logits = self.decode(reparameterize(mu, logvar), c)
        recon = bernoulli_nll(logits, x)
        kl = gaussian_kl(mu, logvar)
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}, logits

    def noisy_condition(self, c: Tensor | None) -> Tensor | None:
        """The condition a training step sees (CLIP-conditioned models perturb it, as LAFITE does)."""
        return c

    @torch.no_grad()
    def embed(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """Deterministic latent code of ``x`` (the posterior mean for VAEs): what latent plots show."""
        return self.encode(x, c)[0]

    @torch.no_grad()
    def reconstruct(self, x: Tensor, c: Tensor | None = None, decode_c: Tensor | None = None) -> Tensor:
        """Images in [0, 1] decoded from the posterior mean of ``x`` encoded with ``c``; with ``decode_c`` the code
        is decoded with that other condition instead (a label swap: the style of ``x``, the content of
        ``decode_c``)."""
        return self.decode_images(self.encode(x, c)[0], c if decode_c is None else decode_c)

    @torch.no_grad()
    def sample(self, n: int, c: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` new images in [0, 1]: codes from :meth:`sample_latent`, decoded with condition ``c`` (``n`` rows)."""
        self.check_condition(c, n)
        return self.decode_images(self.sample_latent(n, c, generator), c)

    # --- latents: sampling, guidance ---------------------------------------------------------------------------
    def sample_latent(self, n: int, c: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` codes from the model's sampling prior (N(0, I) here), on the model's device."""
        return self.random_latent(n, generator)

    def random_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` codes that ignore what training learnt (N(0, I)): a neutral start for guided optimisation."""
        device = self._device()
        gdev = generator.device if generator is not None else device
        return torch.randn(n, self.latent_dim, generator=generator, device=gdev).to(device)

    def latent_penalty(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """How far codes ``z`` stray from where the decoder was trained, as one number (guided optimisation adds it):
        the negative log-density of N(0, I) per dimension, up to a constant."""
        return 0.5 * z.pow(2).mean()

    def decode_images(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """Images in [0, 1] for codes ``z`` (differentiable: guided optimisation climbs through it)."""
        return torch.sigmoid(self.decode(z, c))

    # --- label models: the condition as a vector -----------------------------------------------------------------
    def condition_vector(self, c: Tensor) -> Tensor:
        """The vector the decoder sees for class ids ``c`` (label models that embed their classes)."""
        raise KitError(f"class interpolation needs a class-conditional model that embeds its classes (cvae); "
                       f"this one is {self.name!r}")

    def decode_vector(self, z: Tensor, v: Tensor) -> Tensor:
        """Logits for codes ``z`` and condition vectors ``v`` (blends of two classes' :meth:`condition_vector`)."""
        raise KitError(f"class interpolation needs a class-conditional model that embeds its classes (cvae); "
                       f"this one is {self.name!r}")

    # --- hooks of the training loop ------------------------------------------------------------------------------
    @property
    def uses_fitted_prior(self) -> bool:
        """True when samples come from a prior fitted after training rather than N(0, I)."""
        return False

    def prepare_conditions(self, conditions: Tensor) -> None:
        """Called by :func:`cvaelib.train.fit` before a new run with all training conditions (e.g. to standardise
        them); nothing by default."""

    def after_fit(self, train: "ImageData", *, max_seconds: float | None = None, progress: bool = False) -> None:
        """Called by :func:`cvaelib.train.fit` when training ends (e.g. to fit a sampling prior to the trained codes),
        within ``max_seconds`` when given; nothing by default."""

    # --- helpers ------------------------------------------------------------------------------------------------
    def check_condition(self, c: Tensor | None, n: int | None = None) -> None:
        """Raise a one-line error when a condition is missing, superfluous, of the wrong shape or out of range."""
        check_condition(self, c, n)

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

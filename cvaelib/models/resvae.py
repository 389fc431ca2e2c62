"""Residual (conditional) VAE for 64x64 colour images (lessons 06 and 07).

The encoder halves the resolution with residual down-sampling blocks until 2x2 is left (64 -> 32 -> 16 -> 8 -> 4 -> 2:
five blocks at 64x64), then a 2x2 convolution gives the mean and log-variance of a ``latent_dim`` code (128 by
default).  The decoder mirrors it with residual up-sampling blocks from 1x1 back to the image size.  Each block adds
a cheap path (pool or upsample, then one convolution) to a deeper path (convolution, batch-norm, activation, resample,
convolution, batch-norm): the residual shape of He et al. (2016), "Deep Residual Learning for Image Recognition",
https://arxiv.org/abs/1512.03385, as used in the CelebA CLIP-CVAE project among the kit's sources.

Where the condition ``c`` (a vector: a CLIP embedding, or CelebA's 40 attributes) enters is one parameter,
``injection``, covering the five variants that project compared (named by place, the same words as lesson 05's
CLIP-CVAE uses):

=========  ======================================================================  ============
injection  encoder sees the condition...                                           sources' name
=========  ======================================================================  ============
none       never: an unconditional VAE (and the decoder gets z only)               RES_VAE0
input      as extra input channels (a learned projection, broadcast over pixels)   RES_VAE1
down3      added to the feature maps after down-block 3 (their best variant)       RES_VAE2
down4      added to the feature maps after down-block 4                            RES_VAE3
decoder    not at all; only the decoder gets it                                    RES_VAE4
=========  ======================================================================  ============

In every conditional variant the decoder receives ``[z, c]`` (``decoder_condition="concat"``), or ``z + P c`` with a
learned projection ``P`` (``"add"``: the additive decoder of the concat-vs-additive comparison in the kit's sources;
lesson 07).  Sampling draws z ~ N(0, I).  A CLIP-conditioned
``ResidualVAE`` keeps a retrieval bank (:class:`~cvaelib.conditioning.bank.RetrievalBank`), so text prompts reach it
through the same bridges as ``clip-cvae``; :class:`~cvaelib.models.AttributeCVAE` is the same network conditioned on
attribute vectors.

Loss: the kit's per-image ELBO terms (Bernoulli NLL summed over pixels + ``beta`` * KL summed over latent
dimensions) plus an optional VGG19 perceptual term (:mod:`cvaelib.perceptual`).  The sources used
``mean BCE + 0.01 * mean KL``; in the kit's per-image sums that is ``beta = 0.01 * 3*64*64 / latent_dim``: 0.96 for
a 128-d latent at 64x64 (close to the default ``beta = 1``), 0.24 for their suggested 512 (lesson 06 derives it).
Likewise ``perceptual = 1`` weighs the VGG feature error as the sources did (mean BCE + mean feature error),
scaled to per-image sums.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..conditioning.bank import RetrievalBank
from ..errors import KitError
from .base import GenerativeModel

if TYPE_CHECKING:
    from ..data import ImageData

INJECTIONS = ("none", "input", "down3", "down4", "decoder")
DECODER_CONDITIONS = ("concat", "add")


def _act() -> nn.Module:
    return nn.SiLU()


class ResDown(nn.Module):
    """Residual down-sampling block: ``[B, cin, H, W]`` -> ``[B, cout, H/2, W/2]``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = max(cout // 2, 1)
        self.skip = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(cin, cout, 3, padding=1))
        self.main = nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1), nn.BatchNorm2d(mid), _act(), nn.AvgPool2d(2),
                                  nn.Conv2d(mid, cout, 3, padding=1), nn.BatchNorm2d(cout))
        self.act = _act()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.skip(x) + self.main(x))


class ResUp(nn.Module):
    """Residual up-sampling block: ``[B, cin, H, W]`` -> ``[B, cout, 2H, 2W]`` (nearest-neighbour upsampling)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = max(cin // 2, 1)
        self.skip = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1))
        self.main = nn.Sequential(nn.Conv2d(cin, mid, 3, padding=1), nn.BatchNorm2d(mid), _act(),
                                  nn.Upsample(scale_factor=2, mode="nearest"),
                                  nn.Conv2d(mid, cout, 3, padding=1), nn.BatchNorm2d(cout))
        self.act = _act()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.skip(x) + self.main(x))


def _levels(image_shape: tuple[int, int, int], name: str = "resvae") -> int:
    _, h, w = image_shape
    if h != w or h < 32 or h & (h - 1):
        raise KitError(f"{name} needs square images whose side is a power of two >= 32 (prepared data: --dataset "
                       f"celeba:DIR or coco:DIR), got {h}x{w}")
    return int(math.log2(h)) - 1  # down-blocks until 2x2 is left


class ResidualVAE(RetrievalBank, GenerativeModel):
    """Residual VAE with a configurable condition injection point (see the module docstring).

    Args:
        image_shape: ``(C, H, W)`` with ``H == W`` a power of two >= 32 (64 for CelebA/COCO, 128 as an option).
        latent_dim: size of z (128 as in the sources; they suggest 512 for long runs).
        injection: ``"none"``, ``"input"``, ``"down3"``, ``"down4"`` or ``"decoder"``.
        condition_dim: length of the condition vector (512 for CLIP ViT-B/32, 40 for CelebA attributes).
        width: channels of the first block; block ``i`` has ``min(width * 2**i, 8 * width)``.
        input_channels: channels the condition becomes at the input (``injection="input"`` only).
        beta: KL weight (per-image sums; see the module docstring for the sources' 0.01).
        perceptual: weight of the VGG19 feature loss (0 = off, 1 = the sources' balance).
        perceptual_weights: ``"imagenet"`` (pretrained VGG19, downloaded once) or ``None`` (random, tests).
        condition_noise: LAFITE perturbation of (unit-length CLIP) conditions while training, as in ``clip-cvae``
            (0 = off, the sources' setting); it makes bridged text embeddings and mixtures land on known ground.
        bank_size: how many training conditions ``after_fit`` keeps for the retrieval text bridge
            (:mod:`cvaelib.conditioning.bridge`), so :mod:`cvaelib.clip_generate` works with this model as with
            ``clip-cvae``.
        clip: name (or file) of the CLIP that made the conditions (stored so generation can load the same one).
        decoder_condition: ``"concat"`` (the decoder reads ``[z, c]``) or ``"add"`` (it reads ``z + P c``).
    """

    name = "resvae"
    condition_kind = "clip"
    option_choices = {"injection": INJECTIONS, "decoder_condition": DECODER_CONDITIONS}
    renamed_values = {"injection": {"latent": "decoder"}}
    after_fit_phase = "retrieval bank"

    @classmethod
    def check_image_shape(cls, image_shape: tuple[int, int, int]) -> None:
        _levels(image_shape, cls.name)

    @classmethod
    def kind_for(cls, config: dict[str, Any]) -> str | None:
        """``"clip"`` (the class's kind), or None for the unconditional ``injection="none"``."""
        return None if config.get("injection") == "none" else cls.condition_kind

    def __init__(self, image_shape: tuple[int, int, int] = (3, 64, 64), latent_dim: int = 128,
                 injection: str = "down3", condition_dim: int = 512, width: int = 32, input_channels: int = 8,
                 beta: float = 1.0, perceptual: float = 0.0, perceptual_weights: str | None = "imagenet",
                 condition_noise: float = 0.0, bank_size: int = 4096, clip: str | None = "ViT-B/32",
                 decoder_condition: str = "concat", **extra: Any) -> None:
        self.check_choices({"injection": injection, "decoder_condition": decoder_condition})
        super().__init__({"image_shape": list(image_shape), "latent_dim": latent_dim, "injection": injection,
                          "condition_dim": condition_dim, "width": width, "input_channels": input_channels,
                          "beta": beta, "perceptual": perceptual, "perceptual_weights": perceptual_weights,
                          "condition_noise": condition_noise, "bank_size": bank_size, "clip": clip,
                          **({"decoder_condition": decoder_condition} if decoder_condition != "concat" else {}),
                          **extra})
        self.injection = injection
        cdim = self.condition_dim
        ch, h, _ = self.image_shape
        levels = _levels(self.image_shape, self.name)
        if injection in ("down3", "down4") and levels < int(injection[-1]):
            raise KitError(f"injection {injection!r} needs at least {injection[-1]} down-blocks; use larger images")
        widths = [min(width * 2**i, 8 * width) for i in range(levels)]
        self._widths = widths

        in_ch = ch + (input_channels if injection == "input" else 0)
        self.down = nn.ModuleList(ResDown(cin, cout) for cin, cout in zip([in_ch] + widths[:-1], widths))
        if injection == "input":
            self.cond_in = nn.Linear(cdim, input_channels)
        elif injection in ("down3", "down4"):
            self.cond_in = nn.Linear(cdim, widths[int(injection[-1]) - 1])
        self.mu = nn.Conv2d(widths[-1], latent_dim, 2)
        self.logvar = nn.Conv2d(widths[-1], latent_dim, 2)

        # decoder: 1x1 -> image size in levels + 1 up-blocks, mirroring the encoder's widths
        up_widths = [widths[-1]] + widths[::-1] + [max(width // 2, 1)]
        up_widths = up_widths[: levels + 2]
        self.decoder_condition = decoder_condition if cdim else "concat"
        if self.decoder_condition == "add":
            self.cond_to_z = nn.Linear(cdim, latent_dim)
        dec_in = latent_dim + (cdim if self.decoder_condition == "concat" else 0)
        self.up = nn.ModuleList(ResUp(cin, cout) for cin, cout in zip([dec_in] + up_widths[1:-1], up_widths[1:]))
        self.out = nn.Conv2d(up_widths[-1], ch, 3, padding=1)
        self._perceptual: list[nn.Module] = []  # a plain list: VGG stays out of state_dict and DDP
        # Retrieval bank and modality-gap centres (an empty bank for attribute or unconditional models)
        self.init_bank(bank_size if self.condition == "clip" else 0, max(cdim, 1))

    def after_fit(self, train: "ImageData", *, max_seconds: float | None = None, progress: bool = False) -> None:
        """Called by :func:`cvaelib.train.fit` at the end: keep training conditions for the retrieval bridge."""
        if self.bank.shape[0]:
            self.fill_bank(train.conditions)

    # --- the contract -------------------------------------------------------------------------------------------
    def encode(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_condition(c, x.shape[0])
        h = x
        if self.injection == "input":
            proj = self.cond_in(c.to(x.dtype))[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
            h = torch.cat([x, proj.to(x.dtype)], dim=1)
        for i, block in enumerate(self.down, start=1):
            h = block(h)
            if self.injection == f"down{i}":
                h = h + self.cond_in(c.to(h.dtype))[:, :, None, None].to(h.dtype)
        return self.mu(h).flatten(1), self.logvar(h).flatten(1)

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        self.check_condition(c, z.shape[0])
        if c is None:
            h = z
        elif self.decoder_condition == "add":
            h = z + self.cond_to_z(c.to(z.dtype)).to(z.dtype)
        else:
            h = torch.cat([z, c.to(z.dtype)], dim=1)
        h = h[:, :, None, None]
        for block in self.up:
            h = block(h)
        return self.out(h)

    def loss(self, x: Tensor, c: Tensor | None = None) -> dict[str, Tensor]:
        """``{"loss", "recon", "kl"}`` (+ ``"perceptual"`` when its weight is > 0), per image."""
        terms, logits = self.elbo(x, c)
        weight = float(self.config["perceptual"])
        if weight > 0:
            # per-element mean feature error x pixel values: on the scale of the per-image summed BCE
            perc = self.perceptual_loss()(torch.sigmoid(logits), x) * x[0].numel()
            terms["perceptual"] = perc
            terms["loss"] = terms["loss"] + weight * perc
        return terms

    def perceptual_loss(self) -> nn.Module:
        """The frozen VGG19 feature loss (built on first use, on the model's device)."""
        from ..perceptual import VGGPerceptualLoss

        device = next(self.parameters()).device
        if not self._perceptual:
            self._perceptual.append(VGGPerceptualLoss(weights=self.config["perceptual_weights"]))
        net = self._perceptual[0]
        if net.mean.device != device:
            net.to(device)
        return net


__all__ = ["DECODER_CONDITIONS", "INJECTIONS", "ResDown", "ResUp", "ResidualVAE"]

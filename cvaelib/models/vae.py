"""Variational autoencoders (lesson 02): the classic MLP VAE and a convolutional one.

The encoder outputs the mean and log-variance of q(z|x); training maximises the ELBO
``E_q[log p(x|z)] - beta * KL(q(z|x) || N(0, I))``; new images come from z ~ N(0, I).
Kingma & Welling (2014), https://arxiv.org/abs/1312.6114; beta-VAE: Higgins et al. (2017).
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from .base import GenerativeModel
from .blocks import ConvDecoder, ConvEncoder


class MLPVAE(GenerativeModel):
    """The original fully connected VAE: 784 -> 400 -> (mu, logvar) of 20 dims -> 400 -> 784."""

    name = "vae-mlp"

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), latent_dim: int = 20, hidden: int = 400,
                 beta: float = 1.0, **extra: Any) -> None:
        super().__init__({"image_shape": list(image_shape), "latent_dim": latent_dim, "hidden": hidden,
                          "beta": beta, **extra})
        n_pixels = math.prod(self.image_shape)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(n_pixels, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_pixels))

    def encode(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        return self.decoder(z).view(-1, *self.image_shape)


class ConvVAE(GenerativeModel):
    """Convolutional VAE: same trunk as the autoencoder, but the bottleneck is a Gaussian."""

    name = "vae"

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), latent_dim: int = 16, width: int = 32,
                 hidden: int = 256, beta: float = 1.0, **extra: Any) -> None:
        super().__init__({"image_shape": list(image_shape), "latent_dim": latent_dim, "width": width,
                          "hidden": hidden, "beta": beta, **extra})
        c, h, w = self.image_shape
        self.encoder = ConvEncoder(c, (h, w), width, hidden)
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)
        self.decoder = ConvDecoder(latent_dim, c, (h, w), width, hidden)

    def encode(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        return self.decoder(z)

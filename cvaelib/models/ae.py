"""Convolutional autoencoder: a deterministic bottleneck (lesson 01)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .base import GenerativeModel
from .blocks import ConvDecoder, ConvEncoder


class ConvAutoencoder(GenerativeModel):
    """x -> z (``latent_dim`` numbers) -> x.  Trained on reconstruction only, so its codes are not a
    distribution one can sample from: ``sample`` decodes N(0, I) codes to show exactly that failure."""

    name = "ae"
    variational = False
    meaningful_samples = False

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), latent_dim: int = 16, width: int = 32,
                 hidden: int = 256, **extra: Any) -> None:
        super().__init__({"image_shape": list(image_shape), "latent_dim": latent_dim, "width": width,
                          "hidden": hidden, **extra})
        c, h, w = self.image_shape
        self.encoder = ConvEncoder(c, (h, w), width, hidden)
        self.to_z = nn.Linear(hidden, latent_dim)
        self.decoder = ConvDecoder(latent_dim, c, (h, w), width, hidden)

    def encode(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, None]:
        return self.to_z(self.encoder(x)), None

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        return self.decoder(z)

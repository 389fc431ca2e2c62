"""Class-conditional VAE (lesson 03): the class id enters both the encoder and the decoder.

Three ways to feed the condition, chosen by ``cond``:

* ``"concat"``  - a learned label embedding is concatenated to the encoder features and to z
  (the Fashion-MNIST article in the kit's sources);
* ``"additive"`` - a learned embedding is *added* to the encoder's hidden layer and to z;
* ``"onehot"``  - the one-hot vector is concatenated (Sohn et al. 2015, "Learning Structured Output
  Representation using Deep Conditional Generative Models").

Since the decoder sees the class, z only has to hold what the class does not say: the *style*.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import GenerativeModel
from .blocks import ConvDecoder, ConvEncoder

COND_MODES = ("concat", "additive", "onehot")


class ConditionalVAE(GenerativeModel):
    """Convolutional CVAE conditioned on a class id ``c`` (int64 ``[B]``)."""

    name = "cvae"
    condition = "label"

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
                 latent_dim: int = 16, cond: str = "concat", embed_dim: int = 16, width: int = 32,
                 hidden: int = 256, beta: float = 1.0, **extra: Any) -> None:
        if cond not in COND_MODES:
            raise ValueError(f"unknown cond {cond!r}; choose one of {', '.join(COND_MODES)}")
        super().__init__({"image_shape": list(image_shape), "num_classes": num_classes, "latent_dim": latent_dim,
                          "cond": cond, "embed_dim": embed_dim, "width": width, "hidden": hidden, "beta": beta,
                          **extra})
        self.num_classes, self.cond = num_classes, cond
        ch, h, w = self.image_shape
        if cond == "concat":
            cdim = embed_dim
            self.enc_embed = self.dec_embed = nn.Embedding(num_classes, embed_dim)
        elif cond == "onehot":
            cdim = num_classes
        else:  # additive: one embedding the size of the encoder's hidden layer, one the size of z
            cdim = 0
            self.enc_embed = nn.Embedding(num_classes, hidden)
            self.dec_embed = nn.Embedding(num_classes, latent_dim)
        self.encoder = ConvEncoder(ch, (h, w), width, hidden, extra=cdim)
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)
        self.decoder = ConvDecoder(latent_dim + cdim, ch, (h, w), width, hidden)

    def _label_vector(self, c: Tensor) -> Tensor:
        if self.cond == "onehot":
            return F.one_hot(c.long(), self.num_classes).float()
        return self.enc_embed(c.long())

    def encode(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_condition(c, x.shape[0])
        if self.cond == "additive":
            h = self.encoder(x, bias=self.enc_embed(c.long()))
        else:
            h = self.encoder(x, extra=self._label_vector(c).to(x.dtype))
        return self.mu(h), self.logvar(h)

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        self.check_condition(c, z.shape[0])
        if self.cond == "additive":
            return self.decoder(z + self.dec_embed(c.long()))
        return self.decoder(torch.cat([z, self._label_vector(c).to(z.dtype)], dim=1))

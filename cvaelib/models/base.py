"""The contract every model in the kit follows, so one training loop, plot and metric serve them all.

* ``encode(x, c=None)`` -> ``(mu, logvar)`` (an autoencoder returns ``(z, None)``)
* ``decode(z, c=None)`` -> logits ``[B, C, H, W]`` (apply ``sigmoid`` for images in [0, 1])
* ``sample(n, c=None, generator=None)`` -> ``n`` new images in [0, 1], with z ~ N(0, I)
* ``reconstruct(x, c=None)`` -> images in [0, 1] decoded from the posterior mean
* ``loss(x, c=None)`` -> dict of named terms; ``"loss"`` is what the optimiser minimises
* ``config`` -> a plain dict that rebuilds the model: ``build_model(model.config)``

``c`` is the condition: class ids ``[B]`` (int64), or vectors ``[B, D]`` (attributes, CLIP embeddings).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..losses import bernoulli_nll, gaussian_kl, reparameterize


class GenerativeModel(nn.Module):
    """Base class: subclasses implement ``encode`` and ``decode`` and set ``name``."""

    name: str = "base"
    #: "label" (class ids), "vector" (attributes / embeddings) or None (unconditional)
    condition: str | None = None
    variational: bool = True
    #: False when only sampling needs the condition (e.g. a VQ-VAE whose prior is class-conditional)
    reconstruction_needs_condition: bool = True

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = {"model": self.name, **config}
        self.image_shape = tuple(int(s) for s in self.config["image_shape"])
        self.latent_dim = int(self.config["latent_dim"])
        self.beta = float(self.config.get("beta", 1.0))

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
        mu, logvar = self.encode(x, c)
        if logvar is None:  # deterministic autoencoder
            recon = bernoulli_nll(self.decode(mu, c), x)
            return {"loss": recon, "recon": recon}
        z = reparameterize(mu, logvar)
        recon = bernoulli_nll(self.decode(z, c), x)
        kl = gaussian_kl(mu, logvar)
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}

    @torch.no_grad()
    def embed(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """Deterministic latent code of ``x`` (the posterior mean for VAEs): what latent plots show."""
        return self.encode(x, c)[0]

    @torch.no_grad()
    def reconstruct(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """Images in [0, 1] decoded from the posterior mean of ``x``."""
        return torch.sigmoid(self.decode(self.encode(x, c)[0], c))

    @torch.no_grad()
    def sample(self, n: int, c: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` new images in [0, 1]: z ~ N(0, I), decoded with condition ``c`` (``n`` rows)."""
        self.check_condition(c, n)
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator, device=generator.device if generator else device)
        return torch.sigmoid(self.decode(z.to(device), c))

    # --- helpers ------------------------------------------------------------------------------------------------
    def check_condition(self, c: Tensor | None, n: int | None = None) -> None:
        """Raise a clear error when a condition is missing, superfluous or of the wrong length."""
        from ..errors import KitError

        if self.condition is None and c is not None:
            raise KitError(f"{self.name} is unconditional: call it without a label/condition")
        if self.condition is not None and c is None:
            raise KitError(f"{self.name} needs a condition ({self.condition}); pass class ids or a prompt")
        if c is not None and n is not None and c.shape[0] != n:
            raise KitError(f"got {c.shape[0]} conditions for {n} samples; pass one per sample")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

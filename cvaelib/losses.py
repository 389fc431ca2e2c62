"""Loss terms shared by every model, each returning one number per batch (averaged over images).

* ``bernoulli_nll``: the reconstruction term of the ELBO, -log p(x|z) for pixels in [0, 1] treated as Bernoulli
  probabilities, summed over pixels.  Computed from *logits* with ``binary_cross_entropy_with_logits``: stable,
  and safe under mixed precision (a sigmoid followed by ``binary_cross_entropy`` is neither).
* ``gaussian_kl``: KL(N(mu, sigma^2) || N(0, I)) in closed form, summed over latent dimensions.

Kingma & Welling (2014), "Auto-Encoding Variational Bayes", https://arxiv.org/abs/1312.6114.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """Per-image negative Bernoulli log-likelihood (nats), averaged over the batch."""
    return F.binary_cross_entropy_with_logits(logits.float(), x.float(), reduction="sum") / x.shape[0]


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """Per-image KL(q(z|x) || N(0, I)) (nats), averaged over the batch."""
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * torch.sum(mu.pow(2) + logvar.exp() - 1.0 - logvar) / mu.shape[0]


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): the sample stays differentiable in mu and sigma."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps

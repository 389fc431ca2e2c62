"""Class-conditional VAE (lesson 03): the class id enters both the encoder and the decoder.

Three ways to feed the condition, chosen by ``cond``:

* ``"concat"``  - a learned label embedding is concatenated to the encoder features and to z
  (the Fashion-MNIST article in the kit's sources);
* ``"additive"`` - a learned embedding is *added* to the encoder's hidden layer and to z;
* ``"onehot"``  - the one-hot vector is concatenated (Sohn et al. 2015, "Learning Structured Output
  Representation using Deep Conditional Generative Models").

Since the decoder sees the class, z only has to hold what the class does not say: the *style*.

Sampling uses the prior N(0, I) by default.  With ``prior="fitted"`` the model instead samples from a per-class
full-covariance Gaussian fitted to the posterior means of the training images after training ("ex-post density
estimation", Ghosh et al. 2020, "From Variational to Deterministic Autoencoders", https://arxiv.org/abs/1903.12436):
this lets a lower beta buy sharper reconstructions without sending samples into regions the decoder never saw.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import GenerativeModel
from .blocks import ConvDecoder, ConvEncoder

COND_MODES = ("concat", "additive", "onehot")
PRIORS = ("standard", "fitted")


class ConditionalVAE(GenerativeModel):
    """Convolutional CVAE conditioned on a class id ``c`` (int64 ``[B]``).

    Defaults (measured on Fashion-MNIST, 10 epochs, 2-core CPU): width 16 keeps training > 3x faster than the
    article's recipe; a low ``beta`` (0.02) with a 64-d ``z`` buys sharp reconstructions (test SSIM ~0.76 vs 0.67),
    and the fitted per-class prior keeps samples recognisable (~82 % class-correct vs ~54 % with N(0, I)).
    """

    name = "cvae"
    condition = "label"

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
                 latent_dim: int = 64, cond: str = "concat", embed_dim: int = 16, width: int = 16,
                 hidden: int = 256, beta: float = 0.02, prior: str = "fitted", **extra: Any) -> None:
        if cond not in COND_MODES:
            raise ValueError(f"unknown cond {cond!r}; choose one of {', '.join(COND_MODES)}")
        if prior not in PRIORS:
            raise ValueError(f"unknown prior {prior!r}; choose one of {', '.join(PRIORS)}")
        super().__init__({"image_shape": list(image_shape), "num_classes": num_classes, "latent_dim": latent_dim,
                          "cond": cond, "embed_dim": embed_dim, "width": width, "hidden": hidden, "beta": beta,
                          "prior": prior, **extra})
        # Per-class Gaussian over z (used when prior == "fitted"); buffers, so checkpoints carry them.
        self.register_buffer("prior_mean", torch.zeros(num_classes, latent_dim))
        self.register_buffer("prior_scale_tril", torch.eye(latent_dim).repeat(num_classes, 1, 1))
        self.register_buffer("prior_is_fitted", torch.zeros((), dtype=torch.bool))
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

    @torch.no_grad()
    def fit_prior(self, images: Tensor, labels: Tensor, batch_size: int = 1024) -> None:
        """Fit the per-class Gaussian of posterior means used by ``prior="fitted"`` sampling."""
        device = self.prior_mean.device
        was_training = self.training
        self.eval()
        mus = torch.cat([self.encode(images[i:i + batch_size].to(device).float(),
                                     labels[i:i + batch_size].to(device))[0].float()
                         for i in range(0, len(images), batch_size)])
        labels = labels.to(device)
        eye = torch.eye(self.latent_dim, device=device)
        for k in range(self.num_classes):
            zk = mus[labels == k]
            if len(zk) < 2:
                continue  # a class absent from the data keeps N(0, I)
            mean = zk.mean(0)
            cov = torch.cov(zk.T) + 1e-4 * eye
            self.prior_mean[k] = mean
            self.prior_scale_tril[k] = torch.linalg.cholesky(cov)
        self.prior_is_fitted.fill_(True)
        self.train(was_training)

    def after_fit(self, images: Tensor, labels: Tensor) -> None:
        """Called by :func:`cvaelib.train.fit` when training ends: fit the sampling prior if asked for."""
        if self.config["prior"] == "fitted":
            self.fit_prior(images, labels)

    @torch.no_grad()
    def sample(self, n: int, c: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images of classes ``c`` in [0, 1]: z ~ N(0, I), or the fitted per-class Gaussian."""
        if self.config["prior"] != "fitted" or not bool(self.prior_is_fitted):
            return super().sample(n, c, generator)
        self.check_condition(c, n)
        device = self.prior_mean.device
        eps = torch.randn(n, self.latent_dim, generator=generator,
                          device=generator.device if generator else device).to(device)
        c = c.to(device).long()
        z = self.prior_mean[c] + torch.einsum("nij,nj->ni", self.prior_scale_tril[c], eps)
        return torch.sigmoid(self.decode(z, c))

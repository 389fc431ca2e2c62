"""Class-conditional VAE (lesson 03): the class id enters both the encoder and the decoder.

Three ways to feed the condition, chosen by ``cond``:

* ``"concat"``  - a learned label embedding is concatenated to the encoder features and to z
  (the Fashion-MNIST article in the kit's sources);
* ``"additive"`` - a learned embedding is *added* to the encoder's output features and to z;
* ``"onehot"``  - the one-hot vector is concatenated (Sohn et al. 2015, "Learning Structured Output
  Representation using Deep Conditional Generative Models").

Since the decoder sees the class, z only has to hold what the class does not say: the *style*.

With ``prior="standard"`` samples decode z ~ N(0, I).  With ``prior="fitted"`` (the default) the model instead samples
from a per-class Gaussian mixture (``prior_components`` full-covariance components per class) fitted to the
posterior means of the training images after training: "ex-post density estimation" (Ghosh et al. 2020, "From
Variational to Deterministic Autoencoders", https://arxiv.org/abs/1903.12436, who also use a 10-component mixture).
This lets a low beta buy sharp reconstructions without sending samples into regions the decoder never saw.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import GenerativeModel
from .blocks import ConvDecoder, ConvEncoder, MLPDecoder

COND_MODES = ("concat", "additive", "onehot")
PRIORS = ("standard", "fitted")
DECODERS = ("mlp", "conv")
#: codes per class the fitted prior is estimated from (a random subset beyond that)
MAX_PRIOR_POINTS = 2000


class ConditionalVAE(GenerativeModel):
    """Convolutional-encoder CVAE conditioned on a class id ``c`` (int64 ``[B]``).

    Defaults, measured on Fashion-MNIST (10 epochs, 2-core CPU, kit judge): a 16-wide conv encoder whose features
    feed mu and log-variance directly (``hidden=0``), a 2 x 1024 MLP decoder, z of 64 with a low ``beta`` (0.02)
    give test SSIM ~0.83 (the article's recipe: 0.67) while training > 3x faster than that recipe; sampling from the
    fitted per-class mixture keeps ~87 % of samples class-correct (~45 % with N(0, I) at this beta).

    Args:
        cond: how the label enters encoder and decoder (see the module docstring).
        embed_dim: size of the learned label embedding (``concat``).
        width: channels of the first encoder convolution (the second has twice as many).
        hidden: units of a fully connected layer after the encoder's convolutions (0 = none).
        decoder: ``"mlp"`` (``decoder_hidden`` units x 2 layers -> pixels) or ``"conv"`` (transposed convolutions
            mirroring the encoder, the article's design).
        prior: ``"fitted"`` (per-class mixture fitted after training) or ``"standard"`` (N(0, I)).
        prior_components: mixture components per class (fewer when a class has few images).
    """

    name = "cvae"
    condition = "label"
    #: Adam learning rate for :func:`cvaelib.train.fit` with ``lr_schedule="cosine"`` (best of 2e-3 / 3e-3 / 4e-3 /
    #: 6e-3 on Fashion-MNIST, 10 epochs, batch 128)
    recommended_lr = 4e-3

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
                 latent_dim: int = 64, cond: str = "concat", embed_dim: int = 16, width: int = 16,
                 hidden: int = 0, decoder: str = "mlp", decoder_hidden: int = 1024, beta: float = 0.02,
                 prior: str = "fitted", prior_components: int = 10, **extra: Any) -> None:
        if cond not in COND_MODES:
            raise ValueError(f"unknown cond {cond!r}; choose one of {', '.join(COND_MODES)}")
        if prior not in PRIORS:
            raise ValueError(f"unknown prior {prior!r}; choose one of {', '.join(PRIORS)}")
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        if prior_components < 1:
            raise ValueError(f"prior_components must be >= 1, got {prior_components}")
        super().__init__({"image_shape": list(image_shape), "num_classes": num_classes, "latent_dim": latent_dim,
                          "cond": cond, "embed_dim": embed_dim, "width": width, "hidden": hidden,
                          "decoder": decoder, "decoder_hidden": decoder_hidden, "beta": beta, "prior": prior,
                          "prior_components": prior_components, **extra})
        # The fitted prior, per class k and component m (buffers, so checkpoints carry them); unused components
        # keep a log-weight of -inf.
        k, m, d = num_classes, prior_components, latent_dim
        self.register_buffer("prior_logits", torch.full((k, m), float("-inf")).index_fill_(1, torch.tensor([0]), 0.0))
        self.register_buffer("prior_mean", torch.zeros(k, m, d))
        self.register_buffer("prior_scale_tril", torch.eye(d).repeat(k, m, 1, 1))
        self.register_buffer("prior_is_fitted", torch.zeros((), dtype=torch.bool))
        self.num_classes, self.cond = num_classes, cond
        ch, h, w = self.image_shape
        if cond == "concat":
            cdim = embed_dim
            self.enc_embed = self.dec_embed = nn.Embedding(num_classes, embed_dim)
        elif cond == "onehot":
            cdim = num_classes
        else:  # additive: one embedding the size of the encoder's output, one the size of z
            cdim = 0
        self.encoder = ConvEncoder(ch, (h, w), width, hidden, extra=cdim)
        if cond == "additive":
            self.enc_embed = nn.Embedding(num_classes, self.encoder.out_features)
            self.dec_embed = nn.Embedding(num_classes, latent_dim)
        self.mu = nn.Linear(self.encoder.out_features, latent_dim)
        self.logvar = nn.Linear(self.encoder.out_features, latent_dim)
        if decoder == "mlp":
            self.decoder = MLPDecoder(latent_dim + cdim, ch, (h, w), decoder_hidden)
        else:
            self.decoder = ConvDecoder(latent_dim + cdim, ch, (h, w), width, hidden or 256)

    def encode(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_condition(c, x.shape[0])
        if self.cond == "additive":
            h = self.encoder(x, bias=self.enc_embed(c.long()))
        else:
            h = self.encoder(x, extra=self.condition_vector(c).to(x.dtype))
        return self.mu(h), self.logvar(h)

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        self.check_condition(c, z.shape[0])
        return self.decode_vector(z, self.condition_vector(c))

    def condition_vector(self, c: Tensor) -> Tensor:
        """The vector the decoder sees for class ids ``c``: the label embedding (``concat``, shared with the encoder;
        ``additive``, the decoder's own) or the one-hot vector (``onehot``, which the encoder sees too)."""
        if self.cond == "onehot":
            return F.one_hot(c.long(), self.num_classes).float()
        return self.dec_embed(c.long())

    def decode_vector(self, z: Tensor, v: Tensor) -> Tensor:
        """Logits for codes ``z`` and condition *vectors* ``v``: blends of two classes' vectors morph one class into
        another (:func:`cvaelib.interpolate.interpolate_classes`)."""
        if self.cond == "additive":
            return self.decoder(z + v.to(z.dtype))
        return self.decoder(torch.cat([z, v.to(z.dtype)], dim=1))

    # --- the fitted prior -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def fit_prior(self, images: Tensor, labels: Tensor, batch_size: int = 1024, seed: int = 0) -> None:
        """Fit the per-class Gaussian mixture over posterior means used by ``prior="fitted"`` sampling.

        A class gets ``prior_components`` full-covariance components, or fewer when it has under ``128`` images
        per component for a 64-d z (a covariance needs a few times more points than dimensions); a class absent
        from the data keeps N(0, I).  Uses scikit-learn's ``GaussianMixture`` (k-means++ start, EM) on at most
        ``MAX_PRIOR_POINTS`` codes per class: on Fashion-MNIST that fits in ~12 s instead of ~60 s with all 6,000,
        and samples are as class-correct (86.6 % vs 86.8 %, kit judge).
        """
        from sklearn.mixture import GaussianMixture

        device = self.prior_mean.device
        was_training = self.training
        self.eval()
        mus = torch.cat([self.encode(images[i:i + batch_size].to(device).float(),
                                     labels[i:i + batch_size].to(device))[0].float().cpu()
                         for i in range(0, len(images), batch_size)]).double().numpy()
        labels = labels.cpu().numpy()
        max_m, d = self.config["prior_components"], self.latent_dim
        rng = np.random.default_rng(seed)
        for k in range(self.num_classes):
            zk = mus[labels == k]
            if len(zk) > MAX_PRIOR_POINTS:
                zk = zk[rng.choice(len(zk), MAX_PRIOR_POINTS, replace=False)]
            m = min(max_m, len(zk) // (2 * d))
            if len(zk) < 2:
                continue
            if m < 1:  # too few points for a full-covariance mixture: one Gaussian, shrunk towards a diagonal
                m, cov = 1, np.cov(zk.T).reshape(d, d)
                cov = 0.5 * cov + 0.5 * np.diag(np.diag(cov)) + 1e-4 * np.eye(d)
                means, covs, weights = zk.mean(0, keepdims=True), cov[None], np.ones(1)
            else:
                gm = GaussianMixture(m, covariance_type="full", reg_covar=1e-4, init_params="k-means++",
                                     random_state=seed, tol=1e-2).fit(zk)
                means, covs, weights = gm.means_, gm.covariances_, gm.weights_
            self.prior_logits[k].fill_(float("-inf"))
            self.prior_logits[k, :m] = torch.as_tensor(np.log(weights), dtype=torch.float32)
            self.prior_mean[k, :m] = torch.as_tensor(means, dtype=torch.float32)
            self.prior_scale_tril[k, :m] = torch.linalg.cholesky(torch.as_tensor(covs)).float()
        self.prior_is_fitted.fill_(True)
        self.train(was_training)

    def after_fit(self, images: Tensor, labels: Tensor) -> None:
        """Called by :func:`cvaelib.train.fit` when training ends: fit the sampling prior if asked for."""
        if self.config["prior"] == "fitted":
            self.fit_prior(images, labels)

    @property
    def uses_fitted_prior(self) -> bool:
        """True when samples come from the fitted per-class mixture (``prior="fitted"`` and fitted)."""
        return self.config["prior"] == "fitted" and bool(self.prior_is_fitted)

    @torch.no_grad()
    def prior_z(self, c: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Latent codes for classes ``c`` drawn from the sampling prior (the fitted mixture, or N(0, I))."""
        device = self.prior_mean.device
        gdev = generator.device if generator is not None else device
        eps = torch.randn(len(c), self.latent_dim, generator=generator, device=gdev).to(device)
        if not self.uses_fitted_prior:
            return eps
        c = c.to(device).long()
        weights = torch.softmax(self.prior_logits[c], dim=1).to(gdev)
        comp = torch.multinomial(weights, 1, generator=generator).squeeze(1).to(device)
        return self.prior_mean[c, comp] + torch.einsum("nij,nj->ni", self.prior_scale_tril[c, comp], eps)

    def prior_log_prob(self, z: Tensor, c: Tensor) -> Tensor:
        """log p(z | c) under the sampling prior, per row (differentiable in ``z``; used by guided sampling)."""
        if not self.uses_fitted_prior:
            return -0.5 * z.pow(2).sum(1) - 0.5 * self.latent_dim * math.log(2 * math.pi)
        c = c.to(z.device).long()
        mean, tril = self.prior_mean[c].to(z.dtype), self.prior_scale_tril[c].to(z.dtype)  # [n, M, D], [n, M, D, D]
        diff = (z[:, None, :] - mean).unsqueeze(-1)
        w = torch.linalg.solve_triangular(tril, diff, upper=False).squeeze(-1)
        log_det = torch.diagonal(tril, dim1=-2, dim2=-1).log().sum(-1)
        log_n = -0.5 * w.pow(2).sum(-1) - log_det - 0.5 * self.latent_dim * math.log(2 * math.pi)
        return torch.logsumexp(torch.log_softmax(self.prior_logits[c], dim=1) + log_n, dim=1)

    @torch.no_grad()
    def sample(self, n: int, c: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images of classes ``c`` in [0, 1]: z from the fitted per-class mixture, or N(0, I)."""
        if not self.uses_fitted_prior:
            return super().sample(n, c, generator)
        self.check_condition(c, n)
        c = c.to(self.prior_mean.device).long()
        return torch.sigmoid(self.decode(self.prior_z(c, generator), c))

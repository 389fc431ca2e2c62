"""Class-conditional VAE (lesson 03): the class id enters both the encoder and the decoder.

Three ways to inject the condition, chosen by ``injection``:

* ``"concat"``  - a learned label embedding is concatenated to the encoder features and to z
  (the Fashion-MNIST article in the kit's sources);
* ``"additive"`` - a learned embedding is *added* to the encoder's output features and to z;
* ``"onehot"``  - the one-hot vector is concatenated (Sohn et al. 2015, "Learning Structured Output
  Representation using Deep Conditional Generative Models").

Since the decoder sees the class, z only *has* to hold what the class does not say: the style.  Nothing stops it from
holding the class as well, and with a small ``beta`` (sharp reconstructions) it does: the decoder then reads the
class from z and ignores its label (encode a shirt, decode it as "sneaker": out comes a shirt).  So the default model
is trained to obey its label (``swap_weight > 0``): training codes (an eighth of each batch) are also decoded with a
random other label, and a small label critic, trained next to it on real images only, must recognise the new label in
the result (:mod:`cvaelib.models.label_critic`; lesson 03, section 6, builds it and shows why the naive fixes fail).

Samples decode codes from a sampling prior, chosen by ``prior``:

* ``"pooled"`` (the default) - one Gaussian mixture fitted to the posterior means of *all* training images after
  training, the same for every class: the class of a sample comes from its label alone.  "Ex-post density
  estimation" (Ghosh et al. 2020, "From Variational to Deterministic Autoencoders", https://arxiv.org/abs/1903.12436):
  with a low beta the codes do not fill N(0, I), and decoding codes from where codes really are keeps samples sharp.
* ``"fitted"`` - one such mixture per class, fitted to that class's codes.  Samples are then class-correct even when
  the decoder ignores its label (the prior picks the class), which is what lesson 03 warns about.
* ``"standard"`` - z ~ N(0, I), the classic CVAE (use with ``beta`` near 1).

Each mixture splits the codes by k-means into up to ``prior_components`` clusters and gives each a full-covariance
Gaussian.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..losses import bernoulli_nll, gaussian_kl, reparameterize
from .base import GenerativeModel
from .blocks import ConvDecoder, ConvEncoder, MLPDecoder
from .label_critic import LabelCritic

if TYPE_CHECKING:
    from ..data import ImageData

INJECTIONS = ("concat", "additive", "onehot")
PRIORS = ("standard", "pooled", "fitted")
DECODERS = ("mlp", "conv")
#: codes per class the fitted prior is estimated from (a random subset beyond that)
MAX_PRIOR_POINTS = 20_000


def _cluster_gaussians(z: np.ndarray, m: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means ``[m', d]``, covariances ``[m', d, d]`` and weights ``[m']`` of the k-means clusters of ``z``
    (``m' <= m``: clusters with no more points than dimensions are merged into their nearest neighbour)."""
    from sklearn.cluster import KMeans

    d = z.shape[1]
    km = KMeans(m, n_init=1, random_state=seed).fit(z)
    centres, assign = km.cluster_centers_, km.labels_
    big = np.bincount(assign, minlength=m) > d
    if not big.all():  # re-assign every code to the nearest of the big clusters
        centres = centres[big]
        assign = ((z[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
    groups = [g for g in (z[assign == j] for j in range(len(centres))) if len(g)]
    means = np.stack([g.mean(0) for g in groups])
    covs = np.stack([np.cov(g.T, bias=True) for g in groups])
    weights = np.array([len(g) for g in groups], dtype=np.float64) / len(z)
    return means, covs, weights


class ConditionalVAE(GenerativeModel):
    """Convolutional-encoder CVAE conditioned on a class id ``c`` (int64 ``[B]``).

    Defaults, measured on a 2-core CPU (``python -m cvaelib train``, batch 256): a 16-wide conv encoder whose
    features feed mu and log-variance directly (``hidden=0``), one hidden decoder layer of 1,024 units, z of 96 with
    a low ``beta`` (0.02), a label critic with ``swap_weight`` 10 and the pooled prior.  See README's measured
    tables for what it reaches (Fashion-MNIST, 10 epochs: test SSIM ~0.82, ~95 % of label swaps and of samples
    judged as the asked class by an independent CNN; ~4x the article's training throughput).

    Args:
        latent_dim: size of z (default: 96, or a quarter of the pixels for small images: 16 for 8x8 digits).
        injection: how the label enters encoder and decoder (see the module docstring).
        embed_dim: size of the learned label embedding (``concat``).
        width: channels of the first encoder convolution (the second has twice as many).
        hidden: units of a fully connected layer after the encoder's convolutions (0 = none).
        decoder: ``"mlp"`` (``decoder_layers`` hidden layers of ``decoder_hidden`` units -> pixels) or ``"conv"``
            (transposed convolutions mirroring the encoder, the article's design).
        prior: ``"pooled"`` (one mixture fitted to all codes after training), ``"fitted"`` (one per class) or
            ``"standard"`` (N(0, I)).
        prior_components: mixture components (k-means clusters) per mixture, fewer when there are few images.
        swap_weight: weight of the label-swap term (0 = a plain CVAE with no critic).
        critic_width, critic_shift, critic_noise, critic_realism: the label critic's first-layer channels, the
            largest random shift (pixels; default: a 14th of the image side, 2 on 28x28) and the pixel-noise level
            of its training views, and whether it also learns to spot decoded images (:class:`LabelCritic`).
        swap_fraction: share of each batch that is swapped and shown to the critic (the critic's passes cost more
            than the CVAE's own; an eighth of the batch keeps training ~3x faster than the article's recipe).
    """

    name = "cvae"
    condition_kind = "label"
    option_choices = {"injection": INJECTIONS, "prior": PRIORS, "decoder": DECODERS}
    #: Adam learning rate for :func:`cvaelib.train.fit` with ``lr_schedule="cosine"`` (Fashion-MNIST, 10 epochs:
    #: 4e-3 and 6e-3 tie, 8e-3 is worse)
    recommended_lr = 4e-3
    #: images per step (what ``train`` uses): on a 2-core CPU 256 trains ~30 % more images per second than 128, for
    #: test SSIM 0.846 vs 0.855 and the same sample accuracy after 10 Fashion-MNIST epochs
    recommended_batch_size = 256
    #: what ``fit`` runs after training (fitting the mixture samples are drawn from)
    after_fit_phase = "sampling prior"

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
                 latent_dim: int | None = None, injection: str = "concat", embed_dim: int = 16, width: int = 16,
                 hidden: int = 0, decoder: str = "mlp", decoder_hidden: int = 1024, decoder_layers: int = 1,
                 beta: float = 0.02, prior: str = "pooled", prior_components: int = 30, swap_weight: float = 10.0,
                 critic_width: int = 16, critic_shift: int | None = None, critic_noise: float = 0.2,
                 critic_realism: bool = True, swap_fraction: float = 0.125, **extra: Any) -> None:
        self.check_choices({"injection": injection})
        if latent_dim is None:  # at most a quarter of the pixels (digits, 400 epochs: 99.2 % class-correct samples
            latent_dim = min(96, image_shape[1] * image_shape[2] // 4)  # with z 16, 96.7 % with 64, 92.8 % with 96)
        if prior not in PRIORS:
            raise ValueError(f"unknown prior {prior!r}; choose one of {', '.join(PRIORS)}")
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")
        if prior_components < 1:
            raise ValueError(f"prior_components must be >= 1, got {prior_components}")
        if critic_shift is None:  # 2 pixels on 28x28; none on 8x8 digits, where 2 pixels would be a quarter of the
            critic_shift = min(image_shape[1:]) // 14  # image (measured there: sample cFID 13 with no shift, 35 with 1)
        if swap_weight < 0:
            raise ValueError(f"swap_weight must be >= 0, got {swap_weight}")
        if not 0 < swap_fraction <= 1:
            raise ValueError(f"swap_fraction must be in (0, 1], got {swap_fraction}")
        super().__init__({"image_shape": list(image_shape), "num_classes": num_classes, "latent_dim": latent_dim,
                          "injection": injection, "embed_dim": embed_dim, "width": width, "hidden": hidden,
                          "decoder": decoder, "decoder_hidden": decoder_hidden, "decoder_layers": decoder_layers,
                          "beta": beta, "prior": prior, "prior_components": prior_components,
                          "swap_weight": swap_weight, "critic_width": critic_width, "critic_shift": critic_shift,
                          "critic_noise": critic_noise, "critic_realism": critic_realism,
                          "swap_fraction": swap_fraction, **extra})
        # The fitted prior, per class (k rows) or one for all classes ("pooled": one row), and component m (buffers,
        # so checkpoints carry them); unused components keep a log-weight of -inf.
        k, m, d = (1 if prior == "pooled" else num_classes), prior_components, latent_dim
        self.register_buffer("prior_logits", torch.full((k, m), float("-inf")).index_fill_(1, torch.tensor([0]), 0.0))
        self.register_buffer("prior_mean", torch.zeros(k, m, d))
        self.register_buffer("prior_scale_tril", torch.eye(d).repeat(k, m, 1, 1))
        self.register_buffer("prior_is_fitted", torch.zeros((), dtype=torch.bool))
        self.injection = injection
        ch, h, w = self.image_shape
        if injection == "concat":
            cdim = embed_dim
            self.enc_embed = self.dec_embed = nn.Embedding(num_classes, embed_dim)
        elif injection == "onehot":
            cdim = num_classes
        else:  # additive: one embedding the size of the encoder's output, one the size of z
            cdim = 0
        self.encoder = ConvEncoder(ch, (h, w), width, hidden, extra=cdim)
        if injection == "additive":
            self.enc_embed = nn.Embedding(num_classes, self.encoder.out_features)
            self.dec_embed = nn.Embedding(num_classes, latent_dim)
        self.mu = nn.Linear(self.encoder.out_features, latent_dim)
        self.logvar = nn.Linear(self.encoder.out_features, latent_dim)
        if decoder == "mlp":
            self.decoder = MLPDecoder(latent_dim + cdim, ch, (h, w), decoder_hidden, decoder_layers)
        else:
            self.decoder = ConvDecoder(latent_dim + cdim, ch, (h, w), width, hidden or 256)
        self.swap_weight = float(swap_weight)
        self.critic = (LabelCritic(ch, num_classes, (h, w), critic_width, critic_shift, critic_noise,
                                   critic_realism)
                       if swap_weight > 0 else None)
        self._register_load_state_dict_pre_hook(self._keep_fresh_critic)

    def _keep_fresh_critic(self, state_dict: dict[str, Tensor], prefix: str, *args: Any) -> None:
        """A checkpoint written without critic weights loads with this model's untrained critic: the critic only
        matters while training, and nothing the model generates depends on it."""
        if self.critic is not None and not any(key.startswith(prefix + "critic.") for key in state_dict):
            for name, value in self.critic.state_dict().items():
                state_dict[f"{prefix}critic.{name}"] = value

    def loss(self, x: Tensor, c: Tensor | None = None) -> dict[str, Tensor]:
        """Negative ELBO (``recon + beta * kl``) plus, with ``swap_weight > 0``, the label-swap terms.

        ``swap``: the codes of the first ``swap_fraction`` of the batch (batches are shuffled) are decoded once more
        with a random *other* label, and the label critic's cross-entropy for the asked label is added with weight
        ``swap_weight`` (the decoder must follow its label); ``critic``: the critic's own cross-entropy on real
        images (and, with ``critic_realism``, on the swapped and reconstructed ones: :class:`LabelCritic`).
        Gradients keep the two apart (:meth:`LabelCritic.terms`), so one optimiser step trains both.
        """
        self.check_condition(c, x.shape[0])
        mu, logvar = self.encode(x, c)
        z = reparameterize(mu, logvar)
        if self.critic is None:
            logits = self.decode(z, c)
        else:  # the first part of each (shuffled) batch, decoded once more with another label, in the same pass
            n = max(1, round(self.config["swap_fraction"] * len(c)))
            own = c[:n].long()
            other = (own + torch.randint(1, self.num_classes, own.shape, device=c.device)) % self.num_classes
            logits, swapped = self.decode(torch.cat([z, z[:n]]), torch.cat([c.long(), other])).split([len(c), n])
        recon = bernoulli_nll(logits, x)
        kl = gaussian_kl(mu, logvar)
        terms = {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}
        if self.critic is not None:
            critic, swap = self.critic.terms(x[:n], own, torch.sigmoid(swapped), other, torch.sigmoid(logits[:n]))
            terms["loss"] = terms["loss"] + critic + self.swap_weight * swap
            terms.update(critic=critic, swap=swap)
        return terms

    def encode(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_condition(c, x.shape[0])
        if self.injection == "additive":
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
        if self.injection == "onehot":
            return F.one_hot(c.long(), self.num_classes).float()
        return self.dec_embed(c.long())

    def decode_vector(self, z: Tensor, v: Tensor) -> Tensor:
        """Logits for codes ``z`` and condition *vectors* ``v``: blends of two classes' vectors morph one class into
        another (:func:`cvaelib.interpolate.interpolate_classes`)."""
        if self.injection == "additive":
            return self.decoder(z + v.to(z.dtype))
        return self.decoder(torch.cat([z, v.to(z.dtype)], dim=1))

    # --- the fitted prior -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def fit_prior(self, images: Tensor, labels: Tensor, batch_size: int = 1024, seed: int = 0) -> None:
        """Fit the Gaussian mixture over posterior means that ``prior="pooled"`` (one for all classes) or
        ``prior="fitted"`` (one per class) samples from.

        Each class's codes (or all codes, pooled) are split into clusters by k-means (scikit-learn's ``KMeans``), and
        each cluster gets a full-covariance Gaussian with a weight proportional to its size: a mixture fitted by hard
        assignments. A class gets ``prior_components`` clusters, or fewer so that clusters hold ``2 * latent_dim``
        codes on average (a covariance needs more points than dimensions); a cluster left with no more codes than
        dimensions is merged into its nearest neighbour; a class with too few codes for clusters gets one Gaussian
        (shrunk towards its diagonal), a class absent from the data keeps N(0, I).

        Measured on MNIST (z 96, 17 epochs): 28 k-means clusters per class fit in ~2 s and ~98.5 % of samples are
        recognised by an independent CNN; 15 components fitted by EM (``GaussianMixture``) on 3,000 codes per class
        took ~30 s for 96.5 % (EM's soft components overlap and spread into the gaps between a class's codes).
        """
        device = self.prior_mean.device
        was_training = self.training
        self.eval()
        mus = torch.cat([self.encode(images[i:i + batch_size].to(device).float(),
                                     labels[i:i + batch_size].to(device))[0].float().cpu()
                         for i in range(0, len(images), batch_size)]).double().numpy()
        labels = labels.cpu().numpy()
        max_m, d = self.config["prior_components"], self.latent_dim
        rng = np.random.default_rng(seed)
        pooled = self.config["prior"] == "pooled"
        for k in range(len(self.prior_logits)):  # one row per class, or one row for all codes ("pooled")
            zk = mus if pooled else mus[labels == k]
            if len(zk) > MAX_PRIOR_POINTS:
                zk = zk[rng.choice(len(zk), MAX_PRIOR_POINTS, replace=False)]
            if len(zk) < 2:
                continue
            m = min(max_m, len(zk) // (2 * d))
            if m < 1:  # too few points for clusters: one Gaussian, shrunk towards a diagonal
                cov = np.cov(zk.T).reshape(d, d)
                means, covs = zk.mean(0, keepdims=True), (0.5 * cov + 0.5 * np.diag(np.diag(cov)))[None]
                weights = np.ones(1)
            else:
                means, covs, weights = _cluster_gaussians(zk, m, seed)
            covs = covs + 1e-4 * np.eye(d)
            m = len(weights)
            self.prior_logits[k].fill_(float("-inf"))
            self.prior_logits[k, :m] = torch.as_tensor(np.log(weights), dtype=torch.float32)
            self.prior_mean[k, :m] = torch.as_tensor(means, dtype=torch.float32)
            self.prior_scale_tril[k, :m] = torch.linalg.cholesky(torch.as_tensor(covs)).float()
        self.prior_is_fitted.fill_(True)
        self.train(was_training)

    def after_fit(self, train: "ImageData", *, max_seconds: float | None = None, progress: bool = False) -> None:
        """Called by :func:`cvaelib.train.fit` when training ends: fit the sampling prior if asked for."""
        if self.config["prior"] in ("fitted", "pooled"):
            self.fit_prior(train.float_images(), train.conditions)

    @property
    def after_fit_share(self) -> float:  # type: ignore[override]
        """Share of a ``max_seconds`` budget kept for fitting the sampling prior (k-means: ~3 s on MNIST)."""
        return 0.0 if self.config["prior"] == "standard" else 0.05

    def _prior_row(self, c: Tensor) -> Tensor:
        """Which row of the prior buffers serves class ``c``: its own, or the single pooled one."""
        c = c.long()
        return torch.zeros_like(c) if len(self.prior_logits) == 1 else c

    @property
    def uses_fitted_prior(self) -> bool:
        """True when samples come from a fitted mixture (``prior`` "pooled" or "fitted", and fitted)."""
        return self.config["prior"] in ("fitted", "pooled") and bool(self.prior_is_fitted)

    def sample_latent(self, n: int, c: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Codes for classes ``c`` from the sampling prior (:meth:`prior_z`)."""
        return self.prior_z(c, generator)

    def latent_penalty(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """Negative log-density of the sampling prior per latent dimension (what guided optimisation adds)."""
        return -self.prior_log_prob(z, c).mean() / self.latent_dim

    @torch.no_grad()
    def prior_z(self, c: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Latent codes for classes ``c`` drawn from the sampling prior (the fitted mixture, or N(0, I))."""
        device = self.prior_mean.device
        gdev = generator.device if generator is not None else device
        eps = torch.randn(len(c), self.latent_dim, generator=generator, device=gdev).to(device)
        if not self.uses_fitted_prior:
            return eps
        c = self._prior_row(c.to(device))
        weights = torch.softmax(self.prior_logits[c], dim=1).to(gdev)
        comp = torch.multinomial(weights, 1, generator=generator).squeeze(1).to(device)
        return self.prior_mean[c, comp] + torch.einsum("nij,nj->ni", self.prior_scale_tril[c, comp], eps)

    def prior_log_prob(self, z: Tensor, c: Tensor) -> Tensor:
        """log p(z | c) under the sampling prior, per row (differentiable in ``z``; used by guided sampling)."""
        if not self.uses_fitted_prior:
            return -0.5 * z.pow(2).sum(1) - 0.5 * self.latent_dim * math.log(2 * math.pi)
        c = self._prior_row(c.to(z.device))
        mean, tril = self.prior_mean[c].to(z.dtype), self.prior_scale_tril[c].to(z.dtype)  # [n, M, D], [n, M, D, D]
        diff = (z[:, None, :] - mean).unsqueeze(-1)
        w = torch.linalg.solve_triangular(tril, diff, upper=False).squeeze(-1)
        log_det = torch.diagonal(tril, dim1=-2, dim2=-1).log().sum(-1)
        log_n = -0.5 * w.pow(2).sum(-1) - log_det - 0.5 * self.latent_dim * math.log(2 * math.pi)
        return torch.logsumexp(torch.log_softmax(self.prior_logits[c], dim=1) + log_n, dim=1)

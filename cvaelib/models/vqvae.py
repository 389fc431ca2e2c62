"""VQ-VAE (lesson 09): a discrete grid of codes instead of one Gaussian vector.

The encoder keeps the image's layout: a 28x28 image becomes a 7x7 grid of ``latent_dim``-d vectors ``z_e``.  Each
vector is replaced by its nearest entry of a learned codebook of ``num_codes`` vectors (``z_q``); the decoder
rebuilds the image from ``z_q``.  Three pieces make that trainable (van den Oord et al. 2017, "Neural Discrete
Representation Learning", https://arxiv.org/abs/1711.00937):

* **straight-through estimator**: "nearest code" has no gradient, so the decoder's gradient w.r.t. ``z_q`` is
  copied onto ``z_e`` (``z_q = z_e + (z_q - z_e).detach()``);
* **codebook loss** ``||sg[z_e] - e||^2`` pulls the chosen codes towards the encoder outputs (or, with
  ``ema=True``, the codes are moving averages of the vectors assigned to them - Razavi et al. 2019, VQ-VAE-2);
* **commitment loss** ``beta * ||z_e - sg[e]||^2`` keeps the encoder from drifting away from the codebook
  (``beta`` = 0.25 as in the paper; the CLI's ``--beta`` sets it).

Codes that no encoder output picks ("dead codes") are restarted on random encoder outputs of the current batch,
and the codebook starts from encoder outputs rather than noise; both keep codebook *perplexity* (the effective
number of codes in use, ``exp(entropy)``) high.

There is no KL term and no N(0, I) to sample from: new images need a prior over code grids.  The model owns an
optional :class:`~cvaelib.models.code_prior.CodePrior` (a tiny class-conditional transformer) that
:meth:`VQVAE.after_fit` trains on the codes of the training set when :func:`cvaelib.train.fit` ends, so one
checkpoint holds both and ``generate --label K`` works.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..errors import KitError
from ..losses import bernoulli_nll
from .base import GenerativeModel
from .code_prior import CodePrior, fit_code_prior

if TYPE_CHECKING:
    from ..data import ImageData


class _Residual(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1), nn.SiLU(), nn.Conv2d(ch, ch, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class VectorQuantizer(nn.Module):
    """Nearest-neighbour lookup in a codebook, with straight-through gradients, optional EMA updates and
    dead-code restarts.

    Args:
        num_codes: K, the codebook size.
        dim: D, the size of each code vector.
        ema: update the codebook as exponential moving averages instead of by gradient.
        decay: EMA decay (codebook and usage statistics).
        restart_every: check for dead codes every this many training steps (0 = never restart).
        dead_threshold: a code whose average use per batch falls below this is dead.
    """

    def __init__(self, num_codes: int, dim: int, ema: bool = False, decay: float = 0.99,
                 restart_every: int = 10, dead_threshold: float = 1.0) -> None:
        super().__init__()
        self.num_codes, self.dim, self.ema, self.decay = int(num_codes), int(dim), bool(ema), float(decay)
        self.restart_every, self.dead_threshold = int(restart_every), float(dead_threshold)
        init = torch.empty(num_codes, dim).uniform_(-1.0 / num_codes, 1.0 / num_codes)
        if self.ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_count", torch.ones(num_codes))
            self.register_buffer("ema_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("usage", torch.ones(num_codes))  # moving average of picks per batch
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))  # total dead codes restarted
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def nearest(self, flat: Tensor) -> Tensor:
        """Index of the nearest code for each row of ``flat`` ``[M, D]``."""
        book = self.codebook.float()
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ book.T + book.pow(2).sum(1)[None]
        return d.argmin(1)

    def lookup(self, indices: Tensor) -> Tensor:
        """Code vectors for a grid of indices ``[B, h, w]`` -> ``[B, D, h, w]``."""
        return self.codebook[indices.long()].permute(0, 3, 1, 2).contiguous()

    @torch.no_grad()
    def _random_rows(self, flat: Tensor, n: int) -> Tensor:
        idx = torch.randint(0, flat.shape[0], (n,), device=flat.device)
        return flat[idx] + 0.01 * flat.std() * torch.randn(n, flat.shape[1], device=flat.device)

    @torch.no_grad()
    def _set_codes(self, which: Tensor, values: Tensor) -> None:
        self.codebook.data[which] = values.to(self.codebook.dtype)
        if self.ema:
            self.ema_sum[which] = values
            self.ema_count[which] = 1.0

    @torch.no_grad()
    def _train_step(self, flat: Tensor, indices: Tensor) -> None:
        """Statistics, EMA codebook update and dead-code restarts (training mode only)."""
        if not bool(self.initialised):
            # start the codebook on real encoder outputs: no code begins far from the data
            self._set_codes(torch.arange(self.num_codes, device=flat.device), self._random_rows(flat, self.num_codes))
            self.initialised.fill_(True)
            indices = self.nearest(flat)
        counts = torch.bincount(indices, minlength=self.num_codes).float()
        # a short memory (about 10 batches) so that short runs restart dead codes early
        self.usage.mul_(0.9).add_(counts, alpha=0.1)
        if self.ema:
            sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, flat)
            self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + 1e-5) / (n + self.num_codes * 1e-5) * n  # Laplace: no division by 0
            self.codebook.copy_(self.ema_sum / smoothed[:, None])
        self.steps += 1
        if self.restart_every and int(self.steps) % self.restart_every == 0:
            dead = (self.usage < self.dead_threshold).nonzero().flatten()
            if len(dead):
                self._set_codes(dead, self._random_rows(flat, len(dead)))
                # give a restarted code a fair chance before it can be declared dead again
                self.usage[dead] = max(self.dead_threshold, float(counts.mean()))
                self.restarts += len(dead)

    def forward(self, z_e: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Quantise ``z_e`` ``[B, D, h, w]``.

        Returns:
            ``z_q`` with straight-through gradients, the code indices ``[B, h, w]``, and the terms ``vq``
            (codebook loss), ``commit`` (commitment loss, before ``beta``) per image and ``perplexity``.
        """
        b, d, h, w = z_e.shape
        z = z_e.float()
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        indices = self.nearest(flat.detach())
        if self.training:
            self._train_step(flat.detach(), indices)
            if self.steps == 1 or (self.restart_every and int(self.steps) % self.restart_every == 0):
                indices = self.nearest(flat.detach())  # the codebook just changed
        z_q = self.lookup(indices.view(b, h, w)).float()
        vq = (z.detach() - z_q).pow(2).sum() / b
        commit = (z - z_q.detach()).pow(2).sum() / b
        z_st = z + (z_q - z).detach()  # straight-through: forward is z_q, gradient goes to z_e
        p = torch.bincount(indices, minlength=self.num_codes).float() / indices.numel()
        perplexity = torch.exp(-(p * torch.log(p + 1e-10)).sum())
        return z_st, indices.view(b, h, w), {"vq": vq, "commit": commit, "perplexity": perplexity}


class VQVAE(GenerativeModel):
    """Convolutional VQ-VAE with a 4x smaller grid of discrete codes and an optional class-conditional prior.

    Contract notes: ``encode(x)`` returns ``(z_q, None)`` (the quantised grid ``[B, D, h, w]``; the condition is
    ignored), ``decode(z)`` takes such a grid (quantised or not) and returns logits, ``sample(n, c)`` draws code grids
    from the trained prior.  With ``num_classes > 0`` the model is class-conditional (``condition = "label"``) only
    through its prior: reconstruction never needs the label.

    Args:
        image_shape: ``(C, H, W)``, H and W divisible by 4.
        num_classes: classes of the prior's condition (0: unconditional prior).
        latent_dim: D, size of each code vector.
        num_codes: K, codebook size.
        width: channels of the first conv layer (the second has ``2 * width``).
        beta: commitment weight.
        ema: EMA codebook updates instead of the codebook loss.
        restart_every: dead-code check interval in steps (0 = off).
        prior_dim, prior_layers, prior_heads: size of the code prior (a tiny transformer).
        prior_epochs: epochs of prior training in :meth:`after_fit` (0: train no prior automatically).
        prior_lr, prior_batch_size, prior_max_seconds: prior training settings.
    """

    name = "vqvae"
    condition_kind = "label"
    variational = False
    reconstruction_needs_condition = False  # the quantiser ignores the class; only the prior uses it
    #: the code prior trains after the VQ-VAE: with a time budget it gets this share of it
    after_fit_share = 0.3
    after_fit_phase = "code prior"
    #: code grids take bigger steps and a lighter pull back to the codebook than Gaussian latents
    guidance_lr = 0.1
    guidance_prior_weight = 0.02

    @classmethod
    def kind_for(cls, config: dict[str, Any]) -> str | None:
        """Class-conditional (through its prior) when it has classes, else unconditional."""
        return cls.condition_kind if int(config.get("num_classes", 0) or 0) > 0 else None

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10, latent_dim: int = 16,
                 num_codes: int = 128, width: int = 32, beta: float = 0.25, ema: bool = False, decay: float = 0.99,
                 restart_every: int = 10, prior_dim: int = 64, prior_layers: int = 2, prior_heads: int = 4,
                 prior_epochs: int = 5, prior_lr: float = 2e-3, prior_batch_size: int = 128,
                 prior_max_seconds: float | None = None, **extra: Any) -> None:
        super().__init__({"image_shape": list(image_shape), "num_classes": num_classes, "latent_dim": latent_dim,
                          "num_codes": num_codes, "width": width, "beta": beta, "ema": ema, "decay": decay,
                          "restart_every": restart_every, "prior_dim": prior_dim, "prior_layers": prior_layers,
                          "prior_heads": prior_heads, "prior_epochs": prior_epochs, "prior_lr": prior_lr,
                          "prior_batch_size": prior_batch_size, "prior_max_seconds": prior_max_seconds, **extra})
        c, h, w = self.image_shape
        if h % 4 or w % 4:
            raise KitError(f"VQ-VAE needs image sizes divisible by 4, got {h}x{w}")
        self.grid = (h // 4, w // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(c, width, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            _Residual(2 * width), nn.SiLU(),
            nn.Conv2d(2 * width, latent_dim, 1),
        )
        self.quantizer = VectorQuantizer(num_codes, latent_dim, ema=ema, decay=decay, restart_every=restart_every)
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_dim, 2 * width, 3, padding=1),
            _Residual(2 * width), nn.SiLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(width, c, 4, stride=2, padding=1),
        )
        self.prior = CodePrior(num_codes, self.grid[0] * self.grid[1], int(num_classes), prior_dim, prior_layers,
                               prior_heads)
        self.register_buffer("prior_is_fitted", torch.zeros((), dtype=torch.bool))

    # --- the contract -------------------------------------------------------------------------------------------
    def encode_continuous(self, x: Tensor) -> Tensor:
        """The encoder's output ``z_e`` ``[B, D, h, w]`` before quantisation."""
        return self.encoder(x)

    def encode(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, None]:
        """``(z_q, None)``: the quantised code grid ``[B, D, h, w]`` (``c`` is ignored: the codes need no label)."""
        z_q, _, _ = self.quantizer(self.encoder(x))
        return z_q, None

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """Logits ``[B, C, H, W]`` from a grid of code vectors ``[B, D, h, w]`` (``c`` is ignored)."""
        if z.dim() != 4 or z.shape[1] != self.latent_dim:
            raise KitError(f"VQ-VAE decodes grids [B, {self.latent_dim}, {self.grid[0]}, {self.grid[1]}], got "
                           f"{list(z.shape)}; use decode_codes() for integer code grids")
        return self.decoder(z)

    def codes(self, x: Tensor) -> Tensor:
        """Integer code grid ``[B, h, w]`` of images ``x`` (no gradient, the model's current mode)."""
        with torch.no_grad():
            return self.quantizer(self.encoder(x))[1]

    def decode_codes(self, codes: Tensor) -> Tensor:
        """Logits from an integer code grid ``[B, h, w]`` (or ``[B, h*w]``)."""
        codes = codes.reshape(-1, *self.grid).long()
        if codes.min() < 0 or codes.max() >= self.quantizer.num_codes:
            raise KitError(f"code ids must be in 0..{self.quantizer.num_codes - 1}")
        return self.decoder(self.quantizer.lookup(codes).float())

    def quantize(self, z: Tensor) -> Tensor:
        """Snap a continuous grid to its nearest codes, with straight-through gradients (for latent optimisation)."""
        was = self.quantizer.training
        self.quantizer.eval()  # never update codebook statistics from an optimiser's probe
        z_q = self.quantizer(z)[0]
        self.quantizer.train(was)
        return z_q

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        return self.decode(self.encode(x)[0])

    def loss(self, x: Tensor, c: Tensor | None = None) -> dict[str, Tensor]:
        """``{"loss", "recon", "vq", "commit", "perplexity"}``; loss = recon + vq + beta * commit (per image)."""
        z_q, _, terms = self.quantizer(self.encoder(x))
        recon = bernoulli_nll(self.decoder(z_q), x)
        loss = recon + self.beta * terms["commit"]
        if not self.quantizer.ema:  # with EMA updates the codebook learns without a gradient
            loss = loss + terms["vq"]
        return {"loss": loss, "recon": recon, "vq": terms["vq"], "commit": terms["commit"],
                "perplexity": terms["perplexity"].detach()}

    @torch.no_grad()
    def embed(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        """The flattened quantised grid ``[B, D*h*w]`` (what latent plots show)."""
        return self.encode(x)[0].flatten(1)

    # --- the prior ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def all_codes(self, images: Tensor, batch_size: int = 1024, deadline: float | None = None,
                  min_images: int = 2048) -> Tensor:
        """Code grids ``[N, h, w]`` of many images (uint8, or float in [0, 1]), batched, in eval mode.

        With a ``deadline`` (a ``time.perf_counter()`` value) coding stops at the first batch past it, once at
        least ``min_images`` are coded: the codes of the first images (a random sample of a shuffled split).
        """
        device = self.quantizer.codebook.device
        scale = 1 / 255.0 if images.dtype == torch.uint8 else 1.0
        was = self.training
        self.eval()
        out: list[Tensor] = []
        for i in range(0, len(images), batch_size):
            out.append(self.codes(images[i:i + batch_size].to(device).float() * scale))
            if deadline is not None and i + batch_size >= min_images and time.perf_counter() >= deadline:
                break
        self.train(was)
        return torch.cat(out)

    def fit_prior(self, images: Tensor, labels: Tensor | None = None, epochs: int | None = None,
                  max_seconds: float | None = None, seed: int = 0, progress: bool = False) -> list[float]:
        """Train the code prior on the codes of ``images`` (uint8, or float in [0, 1], ``[N, C, H, W]``) and their
        labels, within ``max_seconds`` when given (coding the images included).

        With a time limit, coding the images takes at most half of it (the prior then learns from the codes of the
        first images) and training the rest.  Returns the per-epoch prior NLL (nats per code).
        """
        cfg = self.config
        epochs = int(cfg["prior_epochs"] if epochs is None else epochs)
        limits = [t for t in (cfg.get("prior_max_seconds"), max_seconds) if t is not None]
        t0 = time.perf_counter()
        deadline = t0 + min(limits) if limits else None
        if self.num_classes and labels is None:
            raise KitError("this VQ-VAE has a class-conditional prior: pass the labels of the images")
        if labels is not None and labels.dim() != 1:
            raise KitError("the VQ-VAE prior is conditioned on class ids [N]; pass int64 labels")
        codes = self.all_codes(images, deadline=None if deadline is None else t0 + (deadline - t0) / 2)
        labels = labels[:len(codes)] if labels is not None else None
        left = None if deadline is None else max(deadline - time.perf_counter(), 0.0)
        history = fit_code_prior(self.prior, codes, labels if self.num_classes else None, epochs=epochs,
                                 batch_size=int(cfg["prior_batch_size"]), lr=float(cfg["prior_lr"]), seed=seed,
                                 max_seconds=left, progress=progress)
        self.prior_is_fitted.fill_(True)
        return history

    def after_fit(self, train: "ImageData", *, max_seconds: float | None = None, progress: bool = False) -> None:
        """Called by :func:`cvaelib.train.fit` when training ends: train the code prior (``prior_epochs`` > 0)."""
        if int(self.config["prior_epochs"]) > 0:
            self.fit_prior(train.images, train.conditions if self.num_classes else None, max_seconds=max_seconds,
                           progress=progress)

    # --- latents for sampling and guidance: continuous grids [B, D, h, w] -----------------------------------------
    @property
    def uses_fitted_prior(self) -> bool:
        """Always: new images come from the code prior trained after the VQ-VAE (never from N(0, I))."""
        return True

    def sample_latent(self, n: int, c: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Code grids from the prior (of classes ``c``), as code vectors ``[n, D, h, w]``."""
        return self.quantizer.lookup(self.sample_codes(n, c, generator)).float()

    def random_latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Grids of uniformly random codes ``[n, D, h, w]``."""
        codes = torch.randint(0, self.quantizer.num_codes, (n, *self.grid), generator=generator)
        return self.quantizer.lookup(codes.to(self.quantizer.codebook.device)).float()

    def latent_penalty(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """Squared distance of each grid vector to its nearest code, per element: stay on the codebook."""
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        return torch.cdist(flat, self.quantizer.codebook.detach().float()).min(1).values.pow(2).mean()

    def decode_images(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """Images for continuous grids ``z``, snapped to the codebook with straight-through gradients."""
        return torch.sigmoid(self.decode(self.quantize(z)))

    @torch.no_grad()
    def sample_codes(self, n: int, c: Tensor | None = None, generator: torch.Generator | None = None,
                     temperature: float = 1.0, top_k: int | None = None) -> Tensor:
        """``n`` code grids ``[n, h, w]`` from the prior."""
        self.check_condition(c, n)
        if not bool(self.prior_is_fitted):
            raise KitError("this VQ-VAE has no trained prior yet: call model.fit_prior(images, labels), or train "
                           "with `python -m cvaelib train --model vqvae` (it trains the prior after the VQ-VAE)")
        return self.prior.sample(n, c, generator, temperature, top_k).view(n, *self.grid)

    @torch.no_grad()
    def sample(self, n: int, c: Tensor | None = None, generator: torch.Generator | None = None,
               temperature: float = 1.0, top_k: int | None = None) -> Tensor:
        """``n`` new images in [0, 1]: code grids from the prior (of classes ``c``), decoded."""
        return torch.sigmoid(self.decode_codes(self.sample_codes(n, c, generator, temperature, top_k)))

    def codebook_usage(self, images: Tensor) -> tuple[Tensor, float]:
        """How often each code is used on ``images`` (counts ``[K]``) and the perplexity ``exp(entropy)``."""
        codes = self.all_codes(images).flatten()
        counts = torch.bincount(codes.cpu(), minlength=self.quantizer.num_codes).float()
        p = counts / counts.sum()
        return counts, float(torch.exp(-(p * torch.log(p + 1e-10)).sum()))

    @property
    def bits_per_image(self) -> float:
        """Information in one code grid: ``h * w * log2(K)`` bits."""
        return self.grid[0] * self.grid[1] * math.log2(self.quantizer.num_codes)

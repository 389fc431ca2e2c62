"""CLIP-conditioned CVAE (lesson 05): the condition is a CLIP embedding instead of a class id.

The model is trained on *image* embeddings only (no captions needed: "language-free", as in LAFITE, Zhou et al.
2022, "Towards Language-Free Training for Text-to-Image Generation", https://arxiv.org/abs/2111.13792).  Because CLIP
puts a text and the images it describes near each other, a text embedding can stand in for an image embedding at
generation time - after a *bridge* (:mod:`cvaelib.clip.bridge`) has moved it across the modality gap.

Where the condition enters the encoder is a parameter, ``inject``:

* ``"features"`` - a projection of the embedding is concatenated to the flattened convolution features;
* ``"hidden"``   - a projection is added to the encoder's hidden layer (FiLM-like bias);
* ``"input"``    - a projection is reshaped to an extra image channel, so even the first convolution sees it.

The decoder always receives ``[z, projection(c)]`` concatenated.

Training perturbs the (unit-length) condition as LAFITE does, ``c' = normalise(c + xi * |c| * eps / |eps|)`` with
``xi = cond_noise``: the decoder learns to accept a neighbourhood of each image embedding, which is where bridged
text embeddings, image/text mixtures (attribute manipulation) and interpolations land.

After training, ``after_fit`` keeps a bank of ``bank_size`` training image embeddings in the checkpoint: the
retrieval bridge looks up the image embeddings nearest to a text there, so generation needs no training data.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import KitError
from ..losses import bernoulli_nll, gaussian_kl, reparameterize
from .base import GenerativeModel
from .blocks import ConvDecoder, ConvEncoder

INJECT_POINTS = ("features", "hidden", "input")


def perturb_condition(c: Tensor, xi: float, generator: torch.Generator | None = None) -> Tensor:
    """LAFITE's perturbation: add noise of relative size ``xi`` in a random direction, re-normalise."""
    if xi <= 0:
        return c
    eps = torch.randn(c.shape, generator=generator, device=c.device if generator is None else generator.device)
    eps = F.normalize(eps.to(c.device, c.dtype), dim=-1)
    return F.normalize(c + xi * c.norm(dim=-1, keepdim=True) * eps, dim=-1)


class ClipConditionalVAE(GenerativeModel):
    """Convolutional CVAE conditioned on a CLIP embedding ``c`` (float ``[B, cond_dim]``, unit length)."""

    name = "clip-cvae"
    condition = "vector"

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), cond_dim: int = 64, latent_dim: int = 16,
                 inject: str = "features", cond_hidden: int = 64, width: int = 32, hidden: int = 256,
                 beta: float = 1.0, cond_noise: float = 0.1, bank_size: int = 10000, clip: str = "tiny",
                 num_refs: int = 10, **extra: Any) -> None:
        if inject not in INJECT_POINTS:
            raise KitError(f"unknown inject point {inject!r}; choose one of {', '.join(INJECT_POINTS)}")
        super().__init__({"image_shape": list(image_shape), "cond_dim": cond_dim, "latent_dim": latent_dim,
                          "inject": inject, "cond_hidden": cond_hidden, "width": width, "hidden": hidden,
                          "beta": beta, "cond_noise": cond_noise, "bank_size": bank_size, "clip": clip,
                          "num_refs": num_refs, **extra})
        ch, h, w = self.image_shape
        self.cond_dim, self.inject, self.cond_noise = cond_dim, inject, float(cond_noise)
        if inject == "features":
            self.enc_cond = nn.Sequential(nn.Linear(cond_dim, cond_hidden), nn.SiLU())
            self.encoder = ConvEncoder(ch, (h, w), width, hidden, extra=cond_hidden)
        elif inject == "hidden":
            self.enc_cond = nn.Linear(cond_dim, hidden)
            self.encoder = ConvEncoder(ch, (h, w), width, hidden)
        else:  # input: one extra channel
            self.enc_cond = nn.Linear(cond_dim, h * w)
            self.encoder = ConvEncoder(ch + 1, (h, w), width, hidden)
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)
        self.dec_cond = nn.Sequential(nn.Linear(cond_dim, cond_hidden), nn.SiLU())
        self.decoder = ConvDecoder(latent_dim + cond_hidden, ch, (h, w), width, hidden)
        # Per-dimension mean/std of the training conditions: the networks read standardised embeddings.  Unit CLIP
        # vectors differ by a few hundredths per dimension; without this the decoder learns to lean on z instead.
        self.register_buffer("cond_mean", torch.zeros(cond_dim))
        self.register_buffer("cond_std", torch.ones(cond_dim))
        # Retrieval bank of training image embeddings (filled by after_fit); stored in the checkpoint.
        self.register_buffer("bank", torch.zeros(bank_size, cond_dim))
        self.register_buffer("bank_count", torch.zeros((), dtype=torch.long))
        # ... and the posterior mean of each bank image: a latent code that fits the retrieved condition
        self.register_buffer("bank_z", torch.zeros(bank_size, latent_dim))
        self.register_buffer("bank_z_is_set", torch.zeros((), dtype=torch.bool))
        # Mean image / text embedding (the modality gap vector is their difference), for the "shift" bridge.
        self.register_buffer("image_center", torch.zeros(cond_dim))
        self.register_buffer("text_center", torch.zeros(cond_dim))
        self.register_buffer("gap_is_set", torch.zeros((), dtype=torch.bool))
        # Reference texts (one per class of the training data) and CLIP's logit scale: retrieval ranks bank images
        # by how clearly the prompt, rather than any reference, describes them (see clip.bridge.retrieve).
        self.register_buffer("ref_text", torch.zeros(num_refs, cond_dim))
        self.register_buffer("ref_scale", torch.tensor(100.0))
        self.register_buffer("ref_is_set", torch.zeros((), dtype=torch.bool))

    def check_condition(self, c: Tensor | None, n: int | None = None) -> None:
        super().check_condition(c, n)
        if c is not None and (c.dim() != 2 or c.shape[1] != self.cond_dim):
            raise KitError(f"{self.name} needs CLIP embeddings of shape [N, {self.cond_dim}], got {list(c.shape)}; "
                           f"use the CLIP this model was trained with ({self.config['clip']})")

    @torch.no_grad()
    def set_condition_stats(self, embeddings: Tensor) -> None:
        """Store the per-dimension mean and std of the training conditions (call before training)."""
        e = F.normalize(embeddings.float(), dim=-1)
        self.cond_mean.copy_(e.mean(0).to(self.cond_mean.device))
        self.cond_std.copy_(e.std(0).clamp_min(1e-3).to(self.cond_std.device))

    def _standardise(self, c: Tensor, dtype: torch.dtype) -> Tensor:
        return ((c.float() - self.cond_mean) / self.cond_std).to(dtype)

    # --- the contract ---------------------------------------------------------------------------------------------
    def encode(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_condition(c, x.shape[0])
        c = self._standardise(c, x.dtype)
        if self.inject == "features":
            h = self.encoder(x, extra=self.enc_cond(c))
        elif self.inject == "hidden":
            h = self.encoder(x, bias=self.enc_cond(c))
        else:
            plane = self.enc_cond(c).view(-1, 1, *self.image_shape[1:])
            h = self.encoder(torch.cat([x, plane], dim=1))
        return self.mu(h), self.logvar(h)

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        self.check_condition(c, z.shape[0])
        return self.decoder(torch.cat([z, self.dec_cond(self._standardise(c, z.dtype))], dim=1))

    def loss(self, x: Tensor, c: Tensor | None = None) -> dict[str, Tensor]:
        """Negative ELBO; while training the condition is perturbed (LAFITE) so nearby embeddings also work."""
        self.check_condition(c, x.shape[0])
        if self.training:
            c = perturb_condition(F.normalize(c.float(), dim=-1), self.cond_noise)
        mu, logvar = self.encode(x, c)
        z = reparameterize(mu, logvar)
        recon = bernoulli_nll(self.decode(z, c), x)
        kl = gaussian_kl(mu, logvar)
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}

    # --- the retrieval bank ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def fill_bank(self, embeddings: Tensor, images: Tensor | None = None, seed: int = 0,
                  batch_size: int = 1024) -> None:
        """Keep (a random subset of) ``embeddings`` as the bank the retrieval bridge searches.

        With ``images`` (the images the embeddings belong to) the posterior mean of each kept image is stored too,
        so generation can start from a latent code that suits the retrieved condition (an ex-post, per-neighbour
        prior in the spirit of Ghosh et al. 2020) instead of z ~ N(0, I).
        """
        embeddings = F.normalize(embeddings.float(), dim=-1)
        n = min(len(embeddings), self.bank.shape[0])
        idx = torch.randperm(len(embeddings), generator=torch.Generator().manual_seed(seed))[:n]
        self.bank.zero_()
        self.bank[:n] = embeddings[idx.to(embeddings.device)].to(self.bank.device)
        self.bank_count.fill_(n)
        if not hasattr(self, "bank_z"):  # models that borrow this method (resvae) keep conditions only
            return
        self.bank_z.zero_()
        self.bank_z_is_set.fill_(images is not None)
        if images is not None:
            was_training = self.training
            self.eval()
            device = self.bank.device
            for i in range(0, n, batch_size):
                sel = idx[i:i + batch_size].to(images.device)
                x = images[sel].to(device).float()
                x = x / 255.0 if images.dtype == torch.uint8 else x
                self.bank_z[i:i + len(sel)] = self.encode(x, self.bank[i:i + len(sel)])[0]
            self.train(was_training)

    def bank_embeddings(self) -> Tensor:
        """The filled part of the bank ``[M, cond_dim]`` (raises if the model was never fitted)."""
        m = int(self.bank_count)
        if m == 0:
            raise KitError("this clip-cvae has an empty embedding bank (it was not trained with cvaelib.train.fit); "
                           "call model.fill_bank(train_image_embeddings) first")
        return self.bank[:m]

    @torch.no_grad()
    def set_gap(self, image_embeddings: Tensor, text_embeddings: Tensor) -> None:
        """Store the mean image and text embeddings (the "shift" bridge moves texts by their difference)."""
        self.image_center.copy_(F.normalize(image_embeddings.float(), dim=-1).mean(0).to(self.image_center.device))
        self.text_center.copy_(F.normalize(text_embeddings.float(), dim=-1).mean(0).to(self.text_center.device))
        self.gap_is_set.fill_(True)

    @torch.no_grad()
    def set_reference_texts(self, text_embeddings: Tensor, logit_scale: float = 100.0) -> None:
        """Store reference text embeddings (e.g. one prompt per class) for contrastive retrieval."""
        if len(text_embeddings) != self.ref_text.shape[0]:
            raise KitError(f"expected {self.ref_text.shape[0]} reference texts, got {len(text_embeddings)}")
        self.ref_text.copy_(F.normalize(text_embeddings.float(), dim=-1).to(self.ref_text.device))
        self.ref_scale.fill_(float(logit_scale))
        self.ref_is_set.fill_(True)

    def after_fit(self, images: Tensor, conditions: Tensor) -> None:
        """Called by :func:`cvaelib.train.fit` at the end: store the training image embeddings' bank."""
        self.fill_bank(conditions, images)


__all__ = ["INJECT_POINTS", "ClipConditionalVAE", "perturb_condition"]

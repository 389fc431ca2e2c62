"""CLIP-conditioned CVAE (lesson 05): the condition is a CLIP embedding instead of a class id.

The model is trained on *image* embeddings only (no captions needed: "language-free", as in LAFITE, Zhou et al.
2022, "Towards Language-Free Training for Text-to-Image Generation", https://arxiv.org/abs/2111.13792).  Because CLIP
puts a text and the images it describes near each other, a text embedding can stand in for an image embedding at
generation time - after a *bridge* (:mod:`cvaelib.conditioning.bridge`) has moved it across the modality gap.

Where the condition enters the encoder is a parameter, ``injection``, named by place as in every kit model (lesson
06's residual VAE uses the same words):

* ``"input"``  - a projection is reshaped to an extra image channel, so even the first convolution sees it;
* ``"down2"``  - a projection is concatenated to the features after the encoder's second (last) down-sampling block;
* ``"hidden"`` - a projection is added to the encoder's hidden layer (FiLM-like bias).

The decoder always receives ``[z, projection(c)]`` concatenated.

Training perturbs the (unit-length) condition as LAFITE does, ``c' = normalise(c + xi * |c| * eps / |eps|)`` with
``xi = condition_noise``: the decoder learns to accept a neighbourhood of each image embedding, which is where bridged
text embeddings, image/text mixtures (attribute manipulation) and interpolations land.

After training, ``after_fit`` keeps a bank of ``bank_size`` training image embeddings in the checkpoint
(:class:`~cvaelib.conditioning.bank.RetrievalBank`): the retrieval bridge looks up the image embeddings nearest to a
text there, so generation needs no training data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..conditioning.bank import RetrievalBank, perturb_condition
from .base import GenerativeModel
from .blocks import ConvDecoder, ConvEncoder

if TYPE_CHECKING:
    from ..data import ImageData

INJECTIONS = ("input", "down2", "hidden")


class ClipConditionalVAE(RetrievalBank, GenerativeModel):
    """Convolutional CVAE conditioned on a CLIP embedding ``c`` (float ``[B, condition_dim]``, unit length).

    Args:
        condition_dim: length of the CLIP embeddings (64 for TinyCLIP, 512 for ViT-B/32).
        injection: where the condition enters the encoder (``input``, ``down2`` or ``hidden``).
        condition_hidden: size of the condition's projection.
        beta: KL weight (0.1: sharper reconstructions; the text bridges keep samples on the prompt).
        condition_noise: LAFITE perturbation of the training conditions.
        bank_size: training embeddings kept for the retrieval bridge (default 10,000 for embeddings of <= 128
            numbers, else 4,096: about 8 MB either way).
        clip: the CLIP the conditions come from (``"tiny"``: the TinyCLIP saved next to the checkpoint).
        num_refs: reference texts (one per class of a captioned dataset; 0 = none).
    """

    name = "clip-cvae"
    condition_kind = "clip"
    #: a constant rate: with cosine decay over 4 MNIST epochs image -> image samples kept their digit 73 % of the
    #: time instead of 85 % (tests/test_clip_cvae.py)
    recommended_lr_schedule = "constant"
    option_choices = {"injection": INJECTIONS}
    renamed_values = {"injection": {"features": "down2"}}
    after_fit_phase = "retrieval bank"

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), condition_dim: int = 64,
                 latent_dim: int = 16, injection: str = "down2", condition_hidden: int = 64, width: int = 32,
                 hidden: int = 256, beta: float = 0.1, condition_noise: float = 0.1, bank_size: int | None = None,
                 clip: str = "tiny", num_refs: int = 10, **extra: Any) -> None:
        self.check_choices({"injection": injection})
        if bank_size is None:
            bank_size = 10000 if condition_dim <= 128 else 4096
        super().__init__({"image_shape": list(image_shape), "condition_dim": condition_dim, "latent_dim": latent_dim,
                          "injection": injection, "condition_hidden": condition_hidden, "width": width,
                          "hidden": hidden, "beta": beta, "condition_noise": condition_noise,
                          "bank_size": bank_size, "clip": clip, "num_refs": num_refs, **extra})
        ch, h, w = self.image_shape
        self.injection = injection
        if injection == "down2":
            self.enc_cond = nn.Sequential(nn.Linear(condition_dim, condition_hidden), nn.SiLU())
            self.encoder = ConvEncoder(ch, (h, w), width, hidden, extra=condition_hidden)
        elif injection == "hidden":
            self.enc_cond = nn.Linear(condition_dim, hidden)
            self.encoder = ConvEncoder(ch, (h, w), width, hidden)
        else:  # input: one extra channel
            self.enc_cond = nn.Linear(condition_dim, h * w)
            self.encoder = ConvEncoder(ch + 1, (h, w), width, hidden)
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)
        self.dec_cond = nn.Sequential(nn.Linear(condition_dim, condition_hidden), nn.SiLU())
        self.decoder = ConvDecoder(latent_dim + condition_hidden, ch, (h, w), width, hidden)
        # Per-dimension mean/std of the training conditions: the networks read standardised embeddings.  Unit CLIP
        # vectors differ by a few hundredths per dimension; without this the decoder learns to lean on z instead.
        self.register_buffer("cond_mean", torch.zeros(condition_dim))
        self.register_buffer("cond_std", torch.ones(condition_dim))
        # Retrieval bank of training image embeddings and their codes, gap centres, one reference text per class
        self.init_bank(bank_size, condition_dim, latent_dim=latent_dim, num_refs=num_refs)

    @torch.no_grad()
    def set_condition_stats(self, embeddings: Tensor) -> None:
        """Store the per-dimension mean and std of the training conditions (``fit`` does it before training)."""
        e = F.normalize(embeddings.float(), dim=-1)
        self.cond_mean.copy_(e.mean(0).to(self.cond_mean.device))
        self.cond_std.copy_(e.std(0).clamp_min(1e-3).to(self.cond_std.device))

    def prepare_conditions(self, conditions: Tensor) -> None:
        """Before training: standardise the conditions with their own statistics."""
        self.set_condition_stats(conditions)

    def _standardise(self, c: Tensor, dtype: torch.dtype) -> Tensor:
        return ((c.float() - self.cond_mean) / self.cond_std).to(dtype)

    # --- the contract ---------------------------------------------------------------------------------------------
    def encode(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self.check_condition(c, x.shape[0])
        c = self._standardise(c, x.dtype)
        if self.injection == "down2":
            h = self.encoder(x, extra=self.enc_cond(c))
        elif self.injection == "hidden":
            h = self.encoder(x, bias=self.enc_cond(c))
        else:
            plane = self.enc_cond(c).view(-1, 1, *self.image_shape[1:])
            h = self.encoder(torch.cat([x, plane], dim=1))
        return self.mu(h), self.logvar(h)

    def decode(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        self.check_condition(c, z.shape[0])
        return self.decoder(torch.cat([z, self.dec_cond(self._standardise(c, z.dtype))], dim=1))

    def after_fit(self, train: "ImageData", *, max_seconds: float | None = None, progress: bool = False) -> None:
        """Called by :func:`cvaelib.train.fit` at the end: store the training image embeddings' bank (and codes)."""
        self.fill_bank(train.conditions, train.images)


__all__ = ["INJECTIONS", "ClipConditionalVAE", "perturb_condition"]

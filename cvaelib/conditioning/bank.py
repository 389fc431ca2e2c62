"""What a CLIP-conditioned model keeps for turning text into conditions: a retrieval bank and modality-gap centres.

A model conditioned on CLIP *image* embeddings meets *text* embeddings only at generation time.  The bridges of
:mod:`cvaelib.conditioning.bridge` need a few things from training, stored as buffers so a checkpoint carries them:

* a **bank** of training image embeddings (and, optionally, each one's latent code) for the retrieval bridge;
* the mean image and text embedding (the **modality gap** vector is their difference) for the shift bridge;
* optionally one **reference text** per class, so retrieval ranks images the prompt describes better than any other
  class does.

:class:`RetrievalBank` adds those buffers and methods to a model; both CLIP-conditioned models of the kit
(``clip-cvae`` and ``resvae``) use it, and it also perturbs their training conditions as LAFITE does
(:func:`perturb_condition`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import KitError

#: buffers that change only outside training steps (DDP need not re-send them)
BANK_BUFFERS = ("bank", "bank_count", "bank_z", "bank_z_is_set", "image_center", "text_center", "gap_is_set",
                "ref_text", "ref_scale", "ref_is_set")


def perturb_condition(c: Tensor, xi: float, generator: torch.Generator | None = None) -> Tensor:
    """LAFITE's perturbation: add noise of relative size ``xi`` in a random direction, re-normalise."""
    if xi <= 0:
        return c
    eps = torch.randn(c.shape, generator=generator, device=c.device if generator is None else generator.device)
    eps = F.normalize(eps.to(c.device, c.dtype), dim=-1)
    return F.normalize(c + xi * c.norm(dim=-1, keepdim=True) * eps, dim=-1)


class RetrievalBank:
    """Mixin for a :class:`~cvaelib.models.base.GenerativeModel` conditioned on CLIP embeddings.

    The model calls :meth:`init_bank` in its constructor and sets ``condition_noise`` in its config.
    """

    static_buffers = BANK_BUFFERS
    #: True when the bank also stores each entry's latent code (``bank_z``), and when it has reference texts
    has_bank_codes: bool = False
    has_references: bool = False

    def init_bank(self, size: int, dim: int, latent_dim: int | None = None, num_refs: int | None = None) -> None:
        """Register the buffers: ``size`` embeddings of ``dim`` numbers, their codes when ``latent_dim`` is given,
        ``num_refs`` reference texts when given."""
        self.register_buffer("bank", torch.zeros(size, dim))
        self.register_buffer("bank_count", torch.zeros((), dtype=torch.long))
        self.has_bank_codes = latent_dim is not None
        if latent_dim is not None:  # ... and the posterior mean of each bank image: a code that fits its condition
            self.register_buffer("bank_z", torch.zeros(size, latent_dim))
            self.register_buffer("bank_z_is_set", torch.zeros((), dtype=torch.bool))
        self.register_buffer("image_center", torch.zeros(dim))
        self.register_buffer("text_center", torch.zeros(dim))
        self.register_buffer("gap_is_set", torch.zeros((), dtype=torch.bool))
        self.has_references = num_refs is not None
        if num_refs is not None:
            self.register_buffer("ref_text", torch.zeros(num_refs, dim))
            self.register_buffer("ref_scale", torch.tensor(100.0))
            self.register_buffer("ref_is_set", torch.zeros((), dtype=torch.bool))

    @property
    def bank_codes_are_set(self) -> bool:
        """True when :meth:`fill_bank` stored a latent code for every bank entry."""
        return self.has_bank_codes and bool(self.bank_z_is_set)

    @property
    def references_are_set(self) -> bool:
        """True when reference texts were stored (:meth:`set_reference_texts`)."""
        return self.has_references and bool(self.ref_is_set)

    def noisy_condition(self, c: Tensor | None) -> Tensor | None:
        """LAFITE: while training, the (unit-length) condition moves by ``condition_noise`` in a random direction,
        so the decoder learns a neighbourhood of each image embedding (where bridged texts and mixtures land)."""
        xi = float(self.config.get("condition_noise", 0.0) or 0.0)
        if c is None or xi <= 0:
            return c
        return perturb_condition(F.normalize(c.float(), dim=-1), xi)

    @torch.no_grad()
    def fill_bank(self, embeddings: Tensor, images: Tensor | None = None, seed: int = 0,
                  batch_size: int = 1024) -> None:
        """Keep (a random subset of) ``embeddings`` as the bank the retrieval bridge searches.

        With ``images`` (the images the embeddings belong to; uint8 or float) and a model that stores codes, the
        posterior mean of each kept image is stored too, so generation can start from a latent code that suits the
        retrieved condition (an ex-post, per-neighbour prior in the spirit of Ghosh et al. 2020) instead of N(0, I).
        """
        embeddings = F.normalize(embeddings.float(), dim=-1)
        n = min(len(embeddings), self.bank.shape[0])
        idx = torch.randperm(len(embeddings), generator=torch.Generator().manual_seed(seed))[:n]
        self.bank.zero_()
        self.bank[:n] = embeddings[idx.to(embeddings.device)].to(self.bank.device)
        self.bank_count.fill_(n)
        if not self.has_bank_codes:
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
        """The filled part of the bank ``[M, D]`` (raises if the model was never fitted)."""
        m = int(self.bank_count)
        if m == 0:
            raise KitError(f"this {self.name} has an empty embedding bank (it was not trained with cvaelib.train.fit); "
                           f"call model.fill_bank(train_image_embeddings) first")
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
        have = self.ref_text.shape[0] if self.has_references else 0
        if len(text_embeddings) != have:
            raise KitError(f"expected {have} reference texts, got {len(text_embeddings)}")
        self.ref_text.copy_(F.normalize(text_embeddings.float(), dim=-1).to(self.ref_text.device))
        self.ref_scale.fill_(float(logit_scale))
        self.ref_is_set.fill_(True)


__all__ = ["BANK_BUFFERS", "RetrievalBank", "perturb_condition"]

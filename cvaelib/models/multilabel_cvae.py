"""Multi-label CVAE: faces conditioned on CelebA's 40 binary attributes (lesson 06).

A class-conditional VAE (lesson 03) answers "which one of ten"; a face has many independent yes/no facts at once
("Smiling", "Eyeglasses", "Male", ...).  Here the condition is the 40-d multi-hot attribute vector that ships with
CelebA (Liu et al. 2015, "Deep Learning Face Attributes in the Wild", https://arxiv.org/abs/1411.7766), as in the
cVAE report among the kit's sources.  Because z only has to hold what the attributes do not say, switching one entry
of the vector and decoding the *same* z changes that attribute and (ideally) nothing else.

The network is the residual VAE of :mod:`cvaelib.models.resvae` with a 40-d condition, so a lesson can put it side by
side with the CLIP-conditioned one and compare only the condition: human-made labels vs CLIP embeddings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..conditioning.attributes import CELEBA_ATTRIBUTES, attribute_index
from ..errors import KitError
from .resvae import INJECTIONS, ResidualVAE


class AttributeCVAE(ResidualVAE):
    """Residual CVAE whose condition is a float multi-hot attribute vector ``[B, len(attribute_names)]``.

    Args:
        attribute_names: the meaning of each condition entry (CelebA's 40 by default); stored in the checkpoint so
            ``toggle(c, "Smiling")`` works after ``load_model``.
        injection: where the attributes enter the encoder (see :class:`ResidualVAE`; not ``"none"``).
        other arguments: as :class:`ResidualVAE`.

    The mean attribute vector of the training data is kept (``attribute_mean``): attributes a user does not name
    take their typical value.
    """

    name = "attr-cvae"
    condition_kind = "attributes"
    option_choices = {"injection": tuple(i for i in INJECTIONS if i != "none")}  # attributes must enter somewhere

    @classmethod
    def kind_for(cls, config: dict[str, Any]) -> str | None:
        return cls.condition_kind

    def __init__(self, image_shape: tuple[int, int, int] = (3, 64, 64), latent_dim: int = 128,
                 attribute_names: Sequence[str] | None = None, injection: str = "down3", width: int = 32,
                 input_channels: int = 8, beta: float = 1.0, perceptual: float = 0.0,
                 perceptual_weights: str | None = "imagenet", **stored: Any) -> None:
        names = list(attribute_names) if attribute_names is not None else list(CELEBA_ATTRIBUTES)
        self.check_choices({"injection": injection})
        # a checkpoint's config repeats what ResidualVAE stores; attributes need no CLIP bridge
        for key in ("condition_dim", "bank_size", "condition_noise", "clip"):
            stored.pop(key, None)
        super().__init__(image_shape=image_shape, latent_dim=latent_dim, injection=injection,
                         condition_dim=len(names), width=width, input_channels=input_channels, beta=beta,
                         perceptual=perceptual, perceptual_weights=perceptual_weights, bank_size=0,
                         condition_noise=0.0, clip=None, attribute_names=names, **stored)
        self.attribute_names = names
        self.register_buffer("attribute_mean", torch.full((len(names),), 0.5))

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """As ``nn.Module.load_state_dict``; checkpoints written before the attribute mean was kept load too."""
        if "attribute_mean" not in state_dict:
            state_dict = {**state_dict, "attribute_mean": self.attribute_mean.detach().clone()}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def prepare_conditions(self, conditions: Tensor) -> None:
        """Before training: keep the mean attribute vector (what unnamed attributes default to)."""
        self.attribute_mean.copy_(conditions.float().mean(0).to(self.attribute_mean.device))

    # --- building conditions by name ----------------------------------------------------------------------------
    def attribute_index(self, name: str) -> int:
        """Column of attribute ``name`` (case and spaces/underscores do not matter: "eyeglasses" works)."""
        return attribute_index(self.attribute_names, name)

    def attributes_to_condition(self, on: Iterable[str] | Mapping[str, bool | float] = (),
                                base: Tensor | None = None, n: int = 1) -> Tensor:
        """A float condition ``[n, D]``: ``base`` (or all zeros) with the named attributes set.

        ``on`` is a list of names to switch on, or a mapping name -> value (True/False or a float, e.g. 0.5 for
        "a bit").  ``base`` may be one vector ``[D]`` or a batch ``[n, D]`` (e.g. the attributes of real faces).
        """
        d = len(self.attribute_names)
        if base is None:
            c = torch.zeros(n, d)
        else:
            c = base.detach().float().clone().cpu()
            if c.ndim == 1:
                c = c.unsqueeze(0).repeat(n, 1)
            if c.ndim != 2 or c.shape[1] != d:
                raise KitError(f"base attributes must have {d} entries per row, got shape {list(base.shape)}")
        items = on.items() if isinstance(on, Mapping) else ((name, 1.0) for name in on)
        for name, value in items:
            c[:, self.attribute_index(name)] = float(value)
        return c

    def toggle(self, c: Tensor, name: str, value: bool | float | None = None) -> Tensor:
        """Copy of conditions ``c`` with attribute ``name`` set to ``value`` (flipped when ``value`` is None)."""
        c = c.detach().float().clone()
        i = self.attribute_index(name)
        c[..., i] = (1.0 - (c[..., i] > 0.5).float()) if value is None else float(value)
        return c


__all__ = ["AttributeCVAE", "CELEBA_ATTRIBUTES"]

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

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import KitError
from .resvae import ResidualVAE

#: CelebA's attribute names, in the column order of ``list_attr_celeba.txt``
CELEBA_ATTRIBUTES = [
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
]


class AttributeCVAE(ResidualVAE):
    """Residual CVAE whose condition is a float multi-hot attribute vector ``[B, len(attribute_names)]``.

    Args:
        attribute_names: the meaning of each condition entry (CelebA's 40 by default); stored in the checkpoint so
            ``toggle(c, "Smiling")`` works after ``load_model``.
        injection: where the attributes enter the encoder (see :class:`ResidualVAE`; not ``"none"``).
        other arguments: as :class:`ResidualVAE`.
    """

    name = "attr-cvae"

    def __init__(self, image_shape: tuple[int, int, int] = (3, 64, 64), latent_dim: int = 128,
                 attribute_names: Sequence[str] | None = None, injection: str = "down3", **extra: Any) -> None:
        names = list(attribute_names) if attribute_names is not None else list(CELEBA_ATTRIBUTES)
        if injection == "none":
            raise ValueError("an attribute-conditioned VAE needs the attributes: choose an injection other than none")
        extra.pop("cond_dim", None)  # always len(attribute_names)
        extra.update(bank_size=0, cond_noise=0.0, clip=None)  # attributes need no CLIP bridge
        super().__init__(image_shape=image_shape, latent_dim=latent_dim, injection=injection, cond_dim=len(names),
                         attribute_names=names, **extra)
        self.attribute_names = names

    # --- building conditions by name ----------------------------------------------------------------------------
    def attribute_index(self, name: str) -> int:
        """Column of attribute ``name`` (case and spaces/underscores do not matter: "eyeglasses" works)."""
        key = name.strip().lower().replace(" ", "_")
        for i, n in enumerate(self.attribute_names):
            if n.lower() == key:
                return i
        close = difflib.get_close_matches(name, self.attribute_names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(self.attribute_names)}"
        raise KitError(f"unknown attribute {name!r}; {hint}")

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

"""The ``attributes`` kind: a condition is a multi-hot vector of named yes/no facts (CelebA's 40 attributes).

* ``generate --attributes "Smiling,Eyeglasses,-Male"``: names are case-insensitive (spaces or underscores), a
  leading ``-`` switches one off, ``NAME=0.7`` sets a value; attributes not named keep the training data's mean.
  An unknown name gets "unknown attribute 'Smilling'; did you mean 'Smiling'?".
* ``generate --prompt "a smiling woman with glasses"``: words and phrases that name attributes (with a few
  synonyms and negations: "woman" is not Male, "without glasses" is not Eyeglasses).
* ``generate --attributes Smiling --factor 1.5 --image-npy faces.npy``: each face encoded with the mean attributes,
  its code decoded with the named attributes pushed ``factor`` times as far as setting them would.
* ``reconstruct --labels A.npy [--decode-labels B.npy]``: attribute vectors ``[N, D]`` (decode with others: a swap).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError, KitError, PromptError
from .base import Conditioning, Drawn, Prepared, Request, label_array

if TYPE_CHECKING:
    from ..data import ImageData

#: CelebA's attribute names, in the column order of ``list_attr_celeba.txt``
CELEBA_ATTRIBUTES = [
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
]

#: words of a prompt -> (attribute, value); an attribute's own name (spaces for underscores) always counts too
PROMPT_WORDS: dict[str, tuple[str, float]] = {
    "smile": ("Smiling", 1.0), "smiles": ("Smiling", 1.0), "smiling": ("Smiling", 1.0),
    "glasses": ("Eyeglasses", 1.0), "spectacles": ("Eyeglasses", 1.0),
    "woman": ("Male", 0.0), "women": ("Male", 0.0), "female": ("Male", 0.0), "girl": ("Male", 0.0),
    "lady": ("Male", 0.0), "man": ("Male", 1.0), "men": ("Male", 1.0), "male": ("Male", 1.0), "boy": ("Male", 1.0),
    "guy": ("Male", 1.0), "young": ("Young", 1.0), "old": ("Young", 0.0), "elderly": ("Young", 0.0),
    "beard": ("No_Beard", 0.0), "bearded": ("No_Beard", 0.0), "blond": ("Blond_Hair", 1.0),
    "blonde": ("Blond_Hair", 1.0), "hat": ("Wearing_Hat", 1.0), "lipstick": ("Wearing_Lipstick", 1.0),
    "makeup": ("Heavy_Makeup", 1.0), "earrings": ("Wearing_Earrings", 1.0), "necklace": ("Wearing_Necklace", 1.0),
    "tie": ("Wearing_Necktie", 1.0), "necktie": ("Wearing_Necktie", 1.0), "moustache": ("Mustache", 1.0),
    "grey hair": ("Gray_Hair", 1.0), "open mouth": ("Mouth_Slightly_Open", 1.0), "pale": ("Pale_Skin", 1.0),
}
_NEGATIONS = ("no", "not", "without", "non")


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", "_", name.strip().lower())


def attribute_index(names: Sequence[str], name: str) -> int:
    """Column of attribute ``name`` in ``names`` (case, spaces and underscores do not matter).

    Raises:
        KitError: "unknown attribute 'Smilling'; did you mean 'Smiling'?" (or the known names).
    """
    key = _key(name)
    for i, n in enumerate(names):
        if _key(n) == key:
            return i
    close = difflib.get_close_matches(key, [_key(n) for n in names], n=1, cutoff=0.7)
    if close:
        hint = f"did you mean {names[[_key(n) for n in names].index(close[0])]!r}?"
    else:
        hint = f"known attributes: {', '.join(names)}"
    raise KitError(f"unknown attribute {name.strip()!r}; {hint}")


def parse_attributes(spec: str, names: Sequence[str]) -> dict[str, float]:
    """``"Smiling,Eyeglasses,-Male,Young=0.7"`` -> ``{"Smiling": 1, "Eyeglasses": 1, "Male": 0, "Young": 0.7}``."""
    out: dict[str, float] = {}
    items = [item.strip() for item in str(spec).split(",")]
    if not any(items):
        raise KitError(f"--attributes names no attribute; e.g. \"Smiling,-Male\" (known: {', '.join(names)})")
    for item in filter(None, items):
        value = 1.0
        if "=" in item:
            item, _, text = item.partition("=")
            try:
                value = float(text)
            except ValueError:
                raise KitError(f"attribute value {text.strip()!r} is not a number; write NAME=0.5") from None
        elif item.startswith(("-", "!")):
            item, value = item[1:], 0.0
        out[names[attribute_index(names, item)]] = value
    return out


def attributes_from_prompt(text: str, names: Sequence[str]) -> dict[str, float]:
    """Attributes a short prompt names: ``"a smiling woman without glasses"`` -> Smiling on, Male off, Eyeglasses off.

    Raises:
        PromptError: the prompt names no attribute (the message lists a few words that work).
    """
    words = dict(PROMPT_WORDS)
    words.update({n.replace("_", " ").lower(): (n, 1.0) for n in names})
    norm = " " + re.sub(r"[^a-z0-9]+", " ", str(text).lower()).strip() + " "
    found: dict[str, float] = {}
    for phrase in sorted(words, key=len, reverse=True):
        attr, value = words[phrase]
        m = re.search(rf"(\b(?:{'|'.join(_NEGATIONS)}) )?\b{re.escape(phrase)}\b", norm)
        if m is None or attr not in names or attr in found:
            continue
        found[attr] = 1.0 - value if m.group(1) else value
        norm = norm[:m.start()] + " " + norm[m.end():]  # "grey hair" is not also "hair"
    if not found:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise PromptError(f"no attribute found in {shown!r}; try words such as smiling, glasses, woman, young, "
                          f"blond, beard, or pass --attributes \"Smiling,-Male\"")
    return found


class AttributeConditioning(Conditioning):
    """Attribute vectors: ``--attributes``, ``--prompt``, ``--image-npy`` with ``--factor``, ``--labels`` arrays."""

    kind = "attributes"
    generate_options = ("attributes", "prompt", "images", "factor")
    labels_help = "float attribute vectors [N, D]"

    @property
    def names(self) -> list[str]:
        return list(self.model.config.get("attribute_names") or [])

    @property
    def mean(self) -> Tensor:
        """The training data's mean attribute vector (what an attribute nobody names defaults to)."""
        return self.model.attribute_mean.detach().float().cpu()

    def target(self, request: Request) -> tuple[dict[str, float], str]:
        """The attributes a request sets, and a title for them."""
        if request.attributes is not None and request.prompt is not None:
            raise KitError("give either --attributes or --prompt, not both")
        if request.prompt is not None:
            return attributes_from_prompt(request.prompt, self.names), request.prompt
        if request.attributes is not None:
            chosen = parse_attributes(request.attributes, self.names)
            return chosen, ", ".join(f"{'' if v else '-'}{k}" if v in (0.0, 1.0) else f"{k}={v:g}"
                                     for k, v in chosen.items())
        return {}, "attributes: the training mean"

    def vector(self, chosen: dict[str, float]) -> Tensor:
        """The mean attribute vector with the ``chosen`` attributes set ``[D]``."""
        c = self.mean.clone()
        for name, value in chosen.items():
            c[attribute_index(self.names, name)] = float(value)
        return c

    def _generate(self, request: Request) -> Drawn:
        chosen, title = self.target(request)
        if request.images is None:
            if request.factor is not None:
                raise KitError("--factor scales how far --image-npy faces move; pass --image-npy FILE with it")
            c = self.vector(chosen).expand(request.n, -1)
            return Drawn(self.sample(request.n, c, request.seed), title)
        if not chosen:
            raise KitError("--image-npy needs --attributes (what to change in the faces), e.g. --attributes Smiling")
        factor = 1.0 if request.factor is None else float(request.factor)
        x = request.images
        base = self.mean.expand(len(x), -1)
        moved = base + factor * (self.vector(chosen) - self.mean)
        out = self.decode_codes_of(x, base, moved)
        return Drawn(torch.cat([x, out]), f"toward {title} (factor {factor:g})", ["input", "changed"],
                     ncols=len(x), results=out)

    def vectors(self, values: Any, n: int, what: str = "--labels") -> Tensor:
        """``values`` as float attribute vectors ``[n, D]``, or a one-line error naming ``what``."""
        arr = label_array(values, n, what)
        d = len(self.names)
        if arr.ndim != 2 or arr.shape[1] != d:
            raise KitError(f"{what} has shape {list(arr.shape)}, expected [{n}, {d}] (one attribute vector per image)")
        return torch.from_numpy(arr.astype(np.float32))

    def reconstruction_conditions(self, images: Tensor, labels: Any,
                                  decode_labels: Any) -> tuple[Tensor | None, Tensor | None]:
        if labels is None:
            raise KitError(f"{self.what()}: pass --labels A.npy ({self.labels_help}, values in 0..1, one row "
                           f"per image)")
        c = self.vectors(labels, len(images), "--labels")
        return c, None if decode_labels is None else self.vectors(decode_labels, len(images), "--decode-labels")

    def test_conditions(self, data: "ImageData") -> Tensor | None:
        c = data.conditions
        ok = c.is_floating_point() and c.dim() == 2 and c.shape[1] == len(self.names)
        return c.float() if ok else None

    def preview(self, val: "ImageData", seed: int = 0) -> Drawn:
        c = val.conditions[torch.arange(16) % len(val)].float()
        return Drawn(self.sample(16, c, seed), "samples, conditioned like validation images", ncols=8)

    @classmethod
    def prepare_training(cls, train: "ImageData", val: "ImageData", **options: Any) -> Prepared:
        c = train.conditions
        if not (c.is_floating_point() and c.dim() == 2):
            raise DataError(f"an attribute-conditioned model needs attribute vectors; {train.name or 'this data'} has "
                            f"none (CelebA prepared by data_prep.celeba has them; for COCO use --model resvae)")
        return Prepared(train, val, {"attribute_names": list(train.class_names)})


__all__ = ["AttributeConditioning", "CELEBA_ATTRIBUTES", "PROMPT_WORDS", "attribute_index", "attributes_from_prompt",
           "parse_attributes"]

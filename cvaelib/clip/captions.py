"""Generated captions for MNIST / Fashion-MNIST: what TinyCLIP learns language from.

The datasets come with a class id per image and no text, so the kit writes the text itself: a caption is a
*template* ("a photo of {}") around a *noun phrase* built from a class *synonym* ("a pair of running shoes"), an
optional class-typical adjective ("a warm coat") and an optional *visual descriptor* measured on the image itself
(stroke thickness and slant for digits, brightness for clothes: "a thick seven slanted to the right").  Descriptors
make the text say something about the particular image, not only its class.

Two disjoint template sets exist: :data:`TRAIN_TEMPLATES` (TinyCLIP trains on them) and :data:`HELDOUT_TEMPLATES`
(zero-shot evaluation and tests only), so reported accuracies measure generalisation to unseen wording.

The synonym table :data:`SYNONYMS` is the single place the kit lists how people name each class; other modules (e.g.
label prompts) import it from here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..data.datasets import MNIST_CLASSES
from ..errors import KitError

# --------------------------------------------------------------------------------------------------- class names
DIGIT_WORDS = MNIST_CLASSES  # the digits' class names are their words


@dataclass(frozen=True)
class Noun:
    """One way to name a class: singular form (None if only plural), plural form, and whether "a pair of" fits."""

    singular: str | None
    plural: str | None = None
    pair: bool = False


def _n(singular: str | None, plural: str | None = None, pair: bool = False) -> Noun:
    return Noun(singular, plural if plural is not None else (singular + "s" if singular else None), pair)


#: dataset -> one list of :class:`Noun` per class id (the first noun is the canonical name)
SYNONYMS: dict[str, list[list[Noun]]] = {
    "mnist": [[_n(w), _n(str(i), f"{i}s")] for i, w in enumerate(DIGIT_WORDS)],
    "fashion-mnist": [
        [_n("t-shirt"), _n("tee"), _n("tee shirt"), _n("top"), _n("tshirt"), _n("tank top"), _n("t shirt"),
         _n("short-sleeved top"), _n("crop top")],
        [_n(None, "trousers", True), _n(None, "pants", True), _n(None, "jeans", True), _n(None, "slacks", True),
         _n(None, "leggings", True), _n(None, "chinos", True), _n(None, "sweatpants", True),
         _n(None, "denim jeans", True)],
        [_n("pullover"), _n("sweater"), _n("jumper"), _n("sweatshirt"), _n("hoodie"), _n("knit sweater"),
         _n("turtleneck"), _n("jersey")],
        [_n("dress"), _n("gown", "gowns"), _n("frock"), _n("sundress"), _n("evening dress"), _n("summer dress"),
         _n("maxi dress"), _n("cocktail dress")],
        [_n("coat"), _n("jacket"), _n("parka"), _n("overcoat"), _n("raincoat"), _n("anorak"), _n("blazer"),
         _n("trench coat"), _n("winter jacket")],
        [_n("sandal", pair=True), _n("flip-flop", pair=True), _n("flip flop", pair=True), _n("slipper", pair=True),
         _n("open-toe shoe", pair=True), _n("strappy sandal", pair=True), _n("beach sandal", pair=True),
         _n("slide", pair=True)],
        [_n("shirt"), _n("blouse"), _n("button-up shirt"), _n("dress shirt"), _n("flannel shirt"),
         _n("long-sleeved shirt"), _n("button-down shirt"), _n("polo shirt")],
        [_n("sneaker", pair=True), _n("running shoe", pair=True), _n("trainer", pair=True),
         _n("tennis shoe", pair=True), _n("sports shoe", pair=True), _n("athletic shoe", pair=True),
         _n("gym shoe", pair=True), _n("shoe", pair=True), _n("kick", pair=True)],
        [_n("bag"), _n("handbag"), _n("purse"), _n("tote"), _n("backpack"), _n("satchel"), _n("shoulder bag"),
         _n("briefcase"), _n("tote bag"), _n("clutch", "clutches")],
        [_n("ankle boot", pair=True), _n("boot", pair=True), _n("bootie", pair=True), _n("chelsea boot", pair=True),
         _n("winter boot", pair=True), _n("heeled boot", pair=True), _n("leather boot", pair=True),
         _n("short boot", pair=True)],
    ],
}

#: dataset -> per-class adjectives that describe the class, not a particular image ("a warm coat")
CLASS_ADJECTIVES: dict[str, list[list[str]]] = {
    "mnist": [["handwritten", "hand-drawn", "scribbled", "written", "sketched", "pencil", "messy", "neat"]] * 10,
    "fashion-mnist": [
        ["plain", "cotton", "casual", "short-sleeved", "basic", "summer"],
        ["long", "slim", "denim", "casual", "straight", "baggy"],
        ["knitted", "warm", "wool", "cozy", "woolly", "winter", "long-sleeved"],
        ["elegant", "long", "short", "summer", "party", "pretty", "flowing"],
        ["warm", "winter", "heavy", "wool", "long", "padded", "waterproof", "thick"],
        ["summer", "open", "strappy", "beach", "flat", "light"],
        ["formal", "plaid", "checked", "button-up", "long-sleeved", "collared", "office"],
        ["sporty", "comfortable", "running", "casual", "low-top", "lace-up", "athletic"],
        ["leather", "large", "small", "shopping", "travel", "designer"],
        ["leather", "winter", "heeled", "suede", "warm", "chunky"],
    ],
}

#: dataset -> descriptor name -> words for its (low, high) tertile; the middle tertile gets no word
DESCRIPTORS: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "mnist": {"ink": (["thin", "light", "skinny", "delicate", "fine"], ["thick", "bold", "heavy", "fat", "chunky"]),
              "slant": (["slanted to the left", "leaning left", "tilted left"],
                        ["slanted to the right", "leaning right", "tilted right", "italic"])},
    "fashion-mnist": {"ink": (["dark", "black", "dark-coloured", "navy"], ["light", "white", "pale", "bright"])},
}

# ----------------------------------------------------------------------------------------------------- templates
#: templates TinyCLIP trains on ("{}" is the noun phrase)
TRAIN_TEMPLATES: dict[str, list[str]] = {
    "common": ["{}", "a photo of {}", "an image of {}", "a picture of {}", "a black and white photo of {}",
               "a low resolution photo of {}", "a close-up of {}", "this is {}", "a small image showing {}",
               "here is {}", "a sketch of {}", "a grey picture of {}", "{} on a black background",
               "a 28 by 28 image of {}", "an example of {}", "i want {}", "show me {}", "generate {}",
               "draw {}", "make {}", "a nice {}", "it is {}", "a simple image of {}"],
    "mnist": ["a drawing of {}", "{} written by hand", "a handwritten digit: {}", "someone wrote {}",
              "a scan of {}", "the digit is {}", "a number that looks like {}", "{} from a postal code"],
    "fashion-mnist": ["a product photo of {}", "{} for sale", "a fashion photo of {}", "an online shop photo of {}",
                      "{} on a white background", "clothing: {}", "someone is wearing {}", "a catalogue image of {}",
                      "i am looking for {}"],
}

#: templates never seen in training: zero-shot evaluation and tests
HELDOUT_TEMPLATES: dict[str, list[str]] = {
    "common": ["a blurry photo of {}", "a cropped picture of {}", "an illustration of {}", "a tiny rendering of {}",
               "a grayscale snapshot of {}", "look at {}", "{}, centered", "a quick doodle of {}"],
    "mnist": ["a scanned image of {}", "a bank check showing {}"],
    "fashion-mnist": ["a magazine photo of {}", "a shop window with {}"],
}


def templates(dataset: str, heldout: bool = False) -> list[str]:
    """The training (or held-out) templates for ``dataset``."""
    table = HELDOUT_TEMPLATES if heldout else TRAIN_TEMPLATES
    check_captioned(dataset)
    return table["common"] + table[dataset]


def check_captioned(dataset: str) -> str:
    """Raise a clear error for a dataset the kit has no caption vocabulary for."""
    if dataset not in SYNONYMS:
        raise KitError(f"no caption vocabulary for dataset {dataset!r}; TinyCLIP supports: {', '.join(SYNONYMS)}")
    return dataset


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou8" or word.startswith("11") or word == "18" else "a"


def noun_phrase(noun: Noun, adjective: str = "", rng: random.Random | None = None,
                digit_style: bool = False) -> str:
    """A noun phrase for ``noun``: ``"a warm coat"``, ``"a pair of sneakers"``, ``"the number 3"``, ``"jeans"``."""
    rng = rng or random.Random()
    adj = f"{adjective} " if adjective else ""
    if digit_style:  # digits: "seven", "a seven", "the number 7", "a thick 7", "the digit seven"
        w = noun.singular
        forms = [f"{adj}{w}", f"{_article(adj or w)} {adj}{w}", f"the {adj}{w}", f"the number {w}",
                 f"the digit {w}", f"number {w}", f"digit {w}", f"a {adj}digit {w}", f"the {adj}numeral {w}",
                 f"{_article(adj or w)} {adj}{w}"]
        return rng.choice(forms)
    forms = []
    if noun.singular:
        forms += [f"{_article(adj or noun.singular)} {adj}{noun.singular}", f"the {adj}{noun.singular}",
                  f"{adj}{noun.singular}", f"one {adj}{noun.singular}"]
    if noun.plural:
        forms += [f"{adj}{noun.plural}", f"some {adj}{noun.plural}"]
        if noun.pair:
            forms += [f"a pair of {adj}{noun.plural}"] * 3
    return rng.choice(forms)


def caption(dataset: str, label: int, descriptors: dict[str, int] | None = None, heldout: bool = False,
            rng: random.Random | None = None, p_adjective: float = 0.35, p_descriptor: float = 0.5) -> str:
    """One random caption for an image of class ``label``.

    ``descriptors`` maps descriptor name -> tertile (0 low, 1 middle, 2 high) measured on the image; a low/high
    tertile may put its word into the caption ("a thick seven"), the middle one never does.
    """
    rng = rng or random.Random()
    syn = SYNONYMS[check_captioned(dataset)]
    if not 0 <= label < len(syn):
        raise KitError(f"label {label} out of range for {dataset} (0..{len(syn) - 1})")
    noun = rng.choice(syn[label])
    words = []
    if rng.random() < p_adjective:
        words.append(rng.choice(CLASS_ADJECTIVES[dataset][label]))
    suffix = ""
    for name, tertile in (descriptors or {}).items():
        if tertile == 1 or rng.random() >= p_descriptor:
            continue
        word = rng.choice(DESCRIPTORS[dataset][name][tertile // 2])
        if " " in word:  # phrases go after the noun ("a seven slanted to the left")
            suffix += f" {word}"
        else:
            words.insert(0, word)
    np_ = noun_phrase(noun, " ".join(words), rng, digit_style=(dataset == "mnist"))
    return rng.choice(templates(dataset, heldout)).format(np_ + suffix)


def class_prompts(dataset: str, label: int, heldout: bool = True, synonyms: bool = True) -> list[str]:
    """Deterministic prompt list for class ``label`` (every template x every synonym): zero-shot prototypes."""
    syn = SYNONYMS[check_captioned(dataset)][label]
    nouns = syn if synonyms else syn[:1]
    out = []
    for t in templates(dataset, heldout):
        for noun in nouns:
            if dataset == "mnist":
                out.append(t.format(f"the number {noun.singular}"))
                out.append(t.format(f"{_article(noun.singular)} {noun.singular}"))
            elif noun.singular:
                out.append(t.format(f"{_article(noun.singular)} {noun.singular}"))
            else:
                out.append(t.format(f"a pair of {noun.plural}"))
    return out


def example_prompts(dataset: str) -> dict[int, list[str]]:
    """Prompts a student might type, per class id (used by notebooks, tests and the prompt-accuracy report)."""
    check_captioned(dataset)
    if dataset == "mnist":
        return {k: [f"a handwritten {w}", f"the number {k}", w, f"a drawing of the digit {w}"]
                for k, w in enumerate(DIGIT_WORDS)}
    return {0: ["a t-shirt", "a plain tee"], 1: ["trousers", "a pair of pants", "jeans"],
            2: ["a sweater", "a warm pullover"], 3: ["a dress", "an evening gown"],
            4: ["a warm coat", "a jacket", "a parka"], 5: ["a pair of sandals", "flip-flops", "a sandal"],
            6: ["a shirt", "a button-up shirt"], 7: ["a pair of sneakers", "running shoes", "trainers"],
            8: ["a handbag", "a bag"], 9: ["an ankle boot", "boots"]}


def prompt_table(dataset: str, class_names: list[str]) -> dict[int, list[str]]:
    """Prompts naming each class: :func:`example_prompts` for a captioned dataset, else one ``"a photo of a NAME"``
    per class (``"T-shirt/top"`` becomes ``"t-shirt"``).  What prompt accuracy is measured on."""
    key = {"digits": "mnist"}.get(dataset, dataset)
    if key in SYNONYMS and len(SYNONYMS[key]) == len(class_names):
        return {int(k): list(v) for k, v in example_prompts(key).items()}
    return {k: [f"a photo of a {name.split('/')[0].lower()}"] for k, name in enumerate(class_names)}


# ----------------------------------------------------------------------------------------------------- descriptors
def _tertiles(values: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-class tertile (0, 1, 2) of ``values``: "thick" means thick *for a seven*."""
    out = torch.ones_like(labels)
    for k in range(num_classes):
        idx = (labels == k).nonzero().flatten()
        if len(idx) < 3:
            continue
        v = values[idx]
        lo, hi = torch.quantile(v, torch.tensor([1 / 3, 2 / 3]))
        out[idx] = (v > lo).long() + (v > hi).long()
    return out


def image_descriptors(dataset: str, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Visual descriptor tertiles per image (``{"ink": LongTensor[N], "slant": ...}``), from uint8/float images.

    ``ink`` is the mean pixel value (stroke thickness for digits, brightness for clothes); ``slant`` the shear of
    the ink's second moments (positive = leaning right).  Tertiles are taken within each class.
    """
    x = images.float()
    x = x / 255.0 if images.dtype == torch.uint8 else x
    x = x.mean(1)  # [N, H, W]
    n = len(x)
    num_classes = len(SYNONYMS[check_captioned(dataset)])
    out = {"ink": _tertiles(x.reshape(n, -1).mean(1), labels, num_classes)}
    if "slant" in DESCRIPTORS[dataset]:
        h, w = x.shape[1:]
        ys = torch.arange(h, dtype=torch.float32).view(1, h, 1)
        xs = torch.arange(w, dtype=torch.float32).view(1, 1, w)
        mass = x.sum((1, 2)).clamp_min(1e-6)
        my = (x * ys).sum((1, 2)) / mass
        mx = (x * xs).sum((1, 2)) / mass
        cov_xy = (x * (xs - mx.view(-1, 1, 1)) * (ys - my.view(-1, 1, 1))).sum((1, 2)) / mass
        var_y = (x * (ys - my.view(-1, 1, 1)) ** 2).sum((1, 2)) / mass
        # image y grows downwards: a stroke leaning right has x decreasing as y grows -> negative covariance
        out["slant"] = _tertiles(-cov_xy / var_y.clamp_min(1e-6), labels, num_classes)
    return out


__all__ = ["CLASS_ADJECTIVES", "DESCRIPTORS", "DIGIT_WORDS", "HELDOUT_TEMPLATES", "Noun", "SYNONYMS",
           "TRAIN_TEMPLATES", "caption", "check_captioned", "class_prompts", "example_prompts", "image_descriptors",
           "noun_phrase", "prompt_table", "templates"]

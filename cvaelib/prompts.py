"""Short text -> class ids for label-conditioned models ("a pair of sneakers", "the digit 7", "seven and 3").

The Fashion-MNIST article in the kit's sources turns a short prompt into a class with a regular expression per
class name plus a few synonyms (coat/jacket, ...).  This module does the same for every dataset of the kit, and
fixes what a plain first-match loop gets wrong:

* longer phrases win over the words inside them ("T-shirt" is class 0, not "shirt"; "dress shirt" is a shirt,
  "ankle boots" is one class, not "boot" plus something), because one alternation is tried longest first;
* case, punctuation, hyphens and plurals do not matter ("T-Shirts", "tshirt", "tee", "sneakers", "7s");
* digits and number words both name MNIST classes ("7", "seven", "the digit 7", "sevens");
* several classes in one prompt come back in the order they appear (each once);
* no class found -> :class:`~cvaelib.errors.PromptError` that lists the known classes and suggests the nearest
  known word by edit distance ("sneekers" -> did you mean "sneaker"?).

Fashion-MNIST: Xiao, Rasul & Vollgraf (2017), https://arxiv.org/abs/1708.07747.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from .conditioning.labels import model_class_names, resolve_label
from .conditioning.labels import normalise_name as _norm
from .data.datasets import FASHION_CLASSES, MNIST_CLASSES, check_dataset_name
from .errors import KitError, PromptError

#: extra words for each Fashion-MNIST class (the class names themselves are always included)
FASHION_SYNONYMS: dict[int, tuple[str, ...]] = {
    0: ("t-shirt", "t shirt", "tshirt", "tee", "tee shirt", "top", "tank top", "crop top", "vest top",
        "singlet", "camisole"),
    1: ("trouser", "trousers", "pants", "jeans", "denim", "slacks", "chinos", "leggings", "sweatpants", "joggers",
        "khakis", "cargo pants"),
    2: ("pullover", "sweater", "jumper", "hoodie", "hooded sweatshirt", "sweatshirt", "cardigan", "knit",
        "knitwear", "turtleneck", "fleece"),
    3: ("dress", "gown", "frock", "sundress", "evening dress", "maxi dress", "mini dress"),
    4: ("coat", "jacket", "parka", "overcoat", "raincoat", "trench coat", "trench", "blazer", "anorak", "windbreaker",
        "puffer", "bomber"),
    5: ("sandal", "flip-flop", "flip flop", "flipflop", "slide", "slipper", "espadrille", "open shoe", "thong sandal"),
    6: ("shirt", "dress shirt", "button-down", "button down", "button-up", "button up", "blouse", "polo",
        "polo shirt", "flannel", "flannel shirt", "oxford shirt"),
    7: ("sneaker", "running shoe", "trainer", "tennis shoe", "sports shoe", "athletic shoe", "gym shoe", "shoe",
        "kicks", "plimsoll"),
    8: ("bag", "handbag", "hand bag", "purse", "backpack", "rucksack", "tote", "tote bag", "satchel", "clutch",
        "shoulder bag", "pouch", "briefcase"),
    9: ("ankle boot", "boot", "bootie", "chelsea boot", "ankle-boot", "short boot", "combat boot"),
}

#: extra words for each digit (the digit itself, its word and "nought" for 0)
DIGIT_SYNONYMS: dict[int, tuple[str, ...]] = {
    k: (str(k), word) + (("nought", "naught") if k == 0 else ()) for k, word in enumerate(MNIST_CLASSES)}

_PLURAL = r"(?:e?s)?"  # sneakers, dresses, 7s; "pants"/"jeans" are listed as they are


def _synonyms_for(names: Sequence[str]) -> dict[int, tuple[str, ...]]:
    """The synonym table that fits these class names (Fashion-MNIST, the ten digits, or just the names)."""
    table: dict[int, tuple[str, ...]] = {}
    if [_norm(n) for n in names] == [_norm(n) for n in FASHION_CLASSES]:
        table = dict(FASHION_SYNONYMS)
    elif [_norm(n) for n in names] == [_norm(n) for n in MNIST_CLASSES] or list(names) == [str(i) for i in range(10)]:
        table = dict(DIGIT_SYNONYMS)
    out = {}
    for i, name in enumerate(names):
        own = {name, *name.split("/")}
        out[i] = tuple(dict.fromkeys(_norm(w) for w in (*own, *table.get(i, ())) if _norm(w)))
    return out


@lru_cache(maxsize=16)
def _matcher(names: tuple[str, ...]) -> tuple[re.Pattern, dict[str, int]]:
    """One regex over all synonyms, longest first, and the word -> class id map."""
    word_to_id: dict[str, int] = {}
    for k, words in _synonyms_for(names).items():
        for w in words:
            word_to_id.setdefault(w, k)
    alternatives = sorted(word_to_id, key=len, reverse=True)
    # A space inside a phrase matches any run of separators in the normalised text (already single spaces).
    body = "|".join(re.escape(w) for w in alternatives)
    return re.compile(rf"(?<![a-z0-9])({body}){_PLURAL}(?![a-z0-9])"), word_to_id


def _names_of(dataset: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(dataset, str):
        key = check_dataset_name(dataset)
        return tuple(FASHION_CLASSES if key == "fashion-mnist" else MNIST_CLASSES)
    return tuple(str(n) for n in dataset)


def known_words(dataset: str | Sequence[str]) -> dict[str, int]:
    """Every word or phrase :func:`parse_prompt` understands for ``dataset``, mapped to its class id."""
    return dict(_matcher(_names_of(dataset))[1])


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


#: words that carry no class and would otherwise be "near" short synonyms ("the" ~ "tee")
_STOP_WORDS = frozenset("a an the of and or with some pair pairs please draw make generate show me give picture "
                        "image photo digit digits number numbers handwritten written class kind".split())


def suggest(text: str, dataset: str | Sequence[str]) -> tuple[str, int] | None:
    """The known word nearest (by edit distance) to a word or word pair of ``text``, with its class id.

    Distances are relative to word length, so a one-letter slip in a long word beats a short unrelated word.
    Returns None only when ``text`` has no content words.
    """
    words = known_words(dataset)
    tokens = [t for t in _norm(text).split() if t not in _STOP_WORDS]
    candidates = tokens + [" ".join(p) for p in zip(tokens, tokens[1:])]
    best: tuple[float, int, str] | None = None
    for tok in candidates:
        for w in words:
            if tok.isdigit() != w.isdigit():
                continue  # "17" is not a near miss of "seven", nor "one" of "1"
            d = edit_distance(tok, w)
            key = (d / max(len(w), len(tok)), d, w)
            if best is None or key < best:
                best = key
    return None if best is None else (best[2], words[best[2]])


def parse_prompt(text: str, dataset: str | Sequence[str]) -> list[int]:
    """Class ids named in a short prompt, in the order they appear (each once).

    Args:
        text: e.g. ``"a pair of running shoes"``, ``"Jackets!"``, ``"the digit 7"``, ``"seven and 3"``, ``"8"``.
        dataset: ``"mnist"``, ``"digits"``, ``"fashion-mnist"``, or the model's list of class names.

    A prompt that is just a number is a class id for any dataset (``"7"`` is Sneaker on Fashion-MNIST); inside
    longer Fashion prompts numbers are counts, not classes ("3 dresses" -> Dress).

    Raises:
        PromptError: no class was found (the message lists the classes and the nearest known word).
    """
    names = _names_of(dataset)
    if not isinstance(text, str) or not text.strip():
        raise PromptError(f"empty prompt; name a class, e.g. {names[0]!r} ({_known(names)})")
    if re.fullmatch(r"\s*-?\d+\s*", text):
        return [resolve_label(text, names)]
    pattern, word_to_id = _matcher(names)
    found: list[int] = []
    for m in pattern.finditer(_norm(text)):
        k = word_to_id[m.group(1)]
        if k not in found:
            found.append(k)
    if not found:
        hint = suggest(text, names)
        did = f"the nearest known word is {hint[0]!r} ({names[hint[1]]}, class {hint[1]}); " if hint else ""
        shown = text if len(text) <= 60 else text[:57] + "..."  # never echo a 10 kB paste back
        raise PromptError(f"no class found in {shown!r}; {did}known classes: {_known(names)}")
    return found


def describe_prompt(text: str, dataset: str | Sequence[str]) -> dict:
    """``{"prompt": text, "classes": [ids], "names": [class names]}`` (what the CLI prints as JSON)."""
    names = _names_of(dataset)
    ids = parse_prompt(text, names)
    return {"prompt": text, "classes": ids, "names": [names[k] for k in ids]}


def _known(names: Sequence[str]) -> str:
    return ", ".join(f"{i}={n}" for i, n in enumerate(names))


def samples_for_prompt(model, text: str, n: int = 8, seed: int = 0,
                       class_names: Sequence[str] | None = None):
    """``n`` samples per class named in ``text`` from a label-conditioned model.

    Returns ``(images, class_ids)``: images ``[len(class_ids) * n, C, H, W]`` in [0, 1], one block of ``n`` per
    class in prompt order.  The same ``seed`` gives the same z for every class, so rows differ only by class.

    Raises:
        KitError: the model is not label-conditioned, or ``n`` < 1; PromptError: no class in ``text``.
    """
    import torch

    from .conditioning import conditioning_for

    if model.condition != "label":
        raise KitError(f"samples_for_prompt draws the classes a prompt names, and this {model.name} model has no "
                       f"classes: use cvaelib.conditioning.conditioning_for(model).generate(Request(prompt=...))")
    if n < 1:
        raise KitError(f"n must be a positive number of images, got {n}")
    names = list(class_names) if class_names is not None else model_class_names(model)
    ids = parse_prompt(text, names)
    cond = conditioning_for(model)
    return torch.cat([cond.sample(n, torch.full((n,), k), seed) for k in ids]), ids


__all__ = ["DIGIT_SYNONYMS", "FASHION_SYNONYMS", "describe_prompt", "edit_distance", "known_words",
           "model_class_names", "parse_prompt", "samples_for_prompt", "suggest"]

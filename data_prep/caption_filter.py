"""Whole-word vs substring caption filters, compared on real captions (lesson 07).

The COCO project among the kit's sources kept a photo when a theme word occurred *anywhere* in a caption
(``"tree" in caption``).  :mod:`data_prep.coco` matches whole words and regular plurals instead
(:func:`data_prep.coco.keyword_regex`).  :func:`compare_filters` runs both on the same captions and lists where they
disagree, with the word that contained the keyword, so the difference can be read off real data::

    result = compare_filters(captions, DEFAULT_KEYWORDS)
    result.word_kept, result.substring_kept      # captions each filter keeps
    result.substring_only[:3]                    # e.g. Hit("A car on a city street.", "tree", "street")
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .coco import DEFAULT_KEYWORDS, keyword_regex

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Hit:
    """A caption kept by one filter only: the keyword that fired and the caption word it fired in."""

    caption: str
    keyword: str
    word: str


@dataclass
class FilterComparison:
    """How two caption filters treat the same captions (``captions`` counts every caption given)."""

    captions: int
    word_kept: int
    substring_kept: int
    substring_only: list[Hit] = field(default_factory=list)
    word_only: list[Hit] = field(default_factory=list)

    def by_keyword(self) -> dict[tuple[str, str], int]:
        """``(keyword, containing word) -> captions`` among the substring-only hits, most frequent first."""
        counts: dict[tuple[str, str], int] = {}
        for hit in self.substring_only:
            counts[(hit.keyword, hit.word)] = counts.get((hit.keyword, hit.word), 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def substring_hits(caption: str, keywords: Iterable[str]) -> list[tuple[str, str]]:
    """``(keyword, word)`` pairs where a keyword occurs inside a word of ``caption`` (case-insensitive): what a
    substring filter sees.  ``("tree", "street")`` for "a city street"."""
    words = _WORD.findall(caption.lower())
    return [(k, w) for k in (k.strip().lower() for k in keywords) if k for w in words if k in w]


def compare_filters(captions: Sequence[str], keywords: Iterable[str] = DEFAULT_KEYWORDS) -> FilterComparison:
    """Run the whole-word filter of :mod:`data_prep.coco` and a substring filter over ``captions``.

    Single-word keywords only enter the substring side word by word; a multi-word keyword ("hay bale") is looked
    for in the whole lower-cased caption, as a substring filter would.
    """
    keywords = [k for k in keywords if k.strip()]
    pattern = keyword_regex(keywords)
    result = FilterComparison(len(captions), 0, 0)
    for caption in captions:
        by_word = bool(pattern is not None and pattern.search(caption))
        hits = substring_hits(caption, [k for k in keywords if " " not in k.strip()])
        hits += [(k.lower(), k.lower()) for k in keywords if " " in k.strip() and k.lower() in caption.lower()]
        result.word_kept += by_word
        result.substring_kept += bool(hits)
        if hits and not by_word:
            result.substring_only.append(Hit(caption, *hits[0]))
        elif by_word and not hits:
            found = pattern.search(caption).group(0).lower()
            result.word_only.append(Hit(caption, found, found))
    return result

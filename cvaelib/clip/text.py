"""Text side of CLIP: the BPE tokenizer and sentence splitting for long text.

CLIP reads at most 77 tokens (start and end markers included).  Two ways past that limit live here:

* ``tokenize(..., truncate=True)`` keeps the first 75 word pieces and closes the sequence with the end marker, so a
  long caption never crashes the encoder;
* :func:`split_sentences` + :func:`chunk_token_rows` give the "long text" mode of the kit's sources: split a text into
  sentences, encode each (a sentence longer than the context is cut into consecutive windows, never dropped), and
  average the sentence embeddings (done in :mod:`cvaelib.clip.encoder`).

The tokenizer is the real CLIP byte-pair encoder: ``clip.simple_tokenizer`` when OpenAI's ``clip`` module imports,
else ``open_clip``'s copy of the same vocabulary.  Both give identical ids.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from ..errors import KitError
from .packages import import_clip_module

CONTEXT_LENGTH = 77
SOT = "<|startoftext|>"
EOT = "<|endoftext|>"

# Abbreviations whose full stop does not end a sentence (lower-case, without the dot).
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc", "e.g", "i.e", "no", "fig", "approx", "jr", "sr"}
# A sentence ends at ., ! or ? (possibly repeated, possibly followed by closing quotes/brackets), then white space.
_SENTENCE_END = re.compile(r"""([.!?]+["'\u201d\u2019)\]]*)\s+""")


@lru_cache(maxsize=1)
def bpe_tokenizer() -> Any:
    """The CLIP byte-pair tokenizer object (has ``.encode(text) -> list[int]`` and ``.encoder`` dict).

    Prefers OpenAI's ``clip.simple_tokenizer``; falls back to ``open_clip.tokenizer``.  Raises :class:`KitError` when
    neither package is installed.
    """
    errors = []
    try:
        return _clip_simple_tokenizer().SimpleTokenizer()
    except Exception as exc:  # noqa: BLE001 - any failure here just means "try open_clip"
        errors.append(f"clip: {exc}")
    try:
        from open_clip.tokenizer import SimpleTokenizer as OpenClipTokenizer  # type: ignore[import-not-found]

        return OpenClipTokenizer()
    except Exception as exc:  # noqa: BLE001
        errors.append(f"open_clip: {exc}")
    raise KitError("the CLIP tokenizer needs the `clip` or `open_clip` package: "
                   "pip install openai-clip (or pip install open_clip_torch); " + "; ".join(errors))


def _clip_simple_tokenizer() -> types.ModuleType:
    """OpenAI's ``clip/simple_tokenizer.py``, loaded on its own.

    ``import clip.simple_tokenizer`` would first run ``clip/__init__``, which imports the model code, torchvision and
    PIL: two seconds per process, for a tokenizer that needs none of them (only ``ftfy``, ``regex`` and the
    vocabulary file beside it).  Once ``clip`` itself is imported, its own submodule is used.
    """
    if "clip" in sys.modules:
        import_clip_module()
        from clip import simple_tokenizer  # type: ignore[import-not-found]

        return simple_tokenizer
    spec = importlib.util.find_spec("clip")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the `clip` package is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "simple_tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("_cvaelib_clip_simple_tokenizer", path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def encode_ids(text: str) -> list[int]:
    """BPE ids of ``text`` without the start/end markers (CLIP lower-cases and cleans white space first)."""
    return list(_encode_ids_cached(text))


# Printable ASCII without "&", plus tab and newline: text that ftfy.fix_text and html.unescape leave unchanged.
_PLAIN_ASCII = re.compile(r"[\x20-\x25\x27-\x7e\t\n]*")


@lru_cache(maxsize=200_000)
def _encode_ids_cached(text: str) -> tuple[int, ...]:
    # Prompt lists repeat themselves (one class prompt per image, the same captions every epoch): BPE-encoding
    # costs ~50 us per text, as much as a small text tower's forward pass, so remember the answers.
    tok = bpe_tokenizer()
    if not _PLAIN_ASCII.fullmatch(text):
        return tuple(tok.encode(text))
    # Fast path with the same result as tok.encode: for plain ASCII, ftfy + html.unescape are no-ops (they only act
    # on "&", control characters and non-ASCII), and CLIP's byte-to-unicode table maps "!".."~" to themselves
    # (the pattern never yields a token containing a space), so only cleaning white space, lower-casing, the
    # pattern and the (cached) BPE merges remain.
    ids: list[int] = []
    encoder = tok.encoder
    for token in tok.pat.findall(" ".join(text.split()).lower()):
        ids.extend(encoder[piece] for piece in tok.bpe(token).split(" "))
    return tuple(ids)


def _markers() -> tuple[int, int]:
    enc = bpe_tokenizer().encoder
    return enc[SOT], enc[EOT]


def _as_list(texts: str | list[str] | tuple[str, ...]) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    texts = list(texts)
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise KitError(f"texts must be strings, got {bad[0]}; pass a str or a list of str")
    return texts


def tokenize(texts: str | list[str], context_length: int = CONTEXT_LENGTH, truncate: bool = True) -> torch.Tensor:
    """CLIP token ids, ``LongTensor[N, context_length]``, zero-padded.

    ``truncate=True`` (the default, unlike ``clip.tokenize``) cuts texts longer than the context and ends them with
    the end-of-text marker, which is where CLIP reads the text embedding.  ``truncate=False`` raises a
    :class:`KitError` naming the text instead.
    """
    texts = _as_list(texts)
    sot, eot = _markers()
    rows = []
    for text in texts:
        ids = [sot, *_encode_ids_cached(text), eot]
        if len(ids) > context_length:
            if not truncate:
                raise KitError(f"text is {len(ids)} tokens, longer than CLIP's {context_length}: "
                               f"{text[:40]!r}...; use truncate=True or long_text='average'")
            ids = ids[:context_length]
            ids[-1] = eot
        rows.append(ids + [0] * (context_length - len(ids)))
    if not rows:
        return torch.zeros(0, context_length, dtype=torch.long)
    return torch.tensor(rows, dtype=torch.long)  # one conversion for the whole batch


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences at ``.``, ``!``, ``?`` and line breaks (common abbreviations are kept whole).

    Empty pieces are dropped; a text without any sentence end comes back as one sentence; an empty text as ``[""]``
    so that every text has at least one piece to encode.
    """
    pieces: list[str] = []
    for block in re.split(r"\n\s*", text):
        start = 0
        for m in _SENTENCE_END.finditer(block):
            words = block[start:m.start()].split()
            last = words[-1].lower().rstrip(".") if words else ""
            if m.group(1) == "." and last in _ABBREVIATIONS:
                continue  # "Dr. Smith" or "e.g. a cat": not a sentence end
            pieces.append(block[start:m.end()].strip())
            start = m.end()
        pieces.append(block[start:].strip())
    pieces = [p for p in pieces if p]
    return pieces or [""]


def chunk_token_rows(text: str, context_length: int = CONTEXT_LENGTH) -> torch.Tensor:
    """Token rows for one sentence, ``LongTensor[K, context_length]``: K > 1 only if it exceeds the context.

    A sentence of more than ``context_length - 2`` word pieces is cut into consecutive windows, each with its own
    start/end markers, so long-text mode loses no words.
    """
    sot, eot = _markers()
    ids = encode_ids(text)
    width = context_length - 2
    windows = [ids[i:i + width] for i in range(0, len(ids), width)] or [[]]
    out = torch.zeros(len(windows), context_length, dtype=torch.long)
    for k, window in enumerate(windows):
        row = [sot, *window, eot]
        out[k, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def long_text_rows(texts: str | list[str], context_length: int = CONTEXT_LENGTH) -> tuple[torch.Tensor, torch.Tensor]:
    """All sentence/window token rows of ``texts`` and, for each row, the index of the text it belongs to.

    Returns ``(tokens LongTensor[M, context_length], owner LongTensor[M])`` with every text owning ≥ 1 row, so the
    caller can encode all M rows in batches and average per owner.
    """
    texts = _as_list(texts)
    rows, owner = [], []
    for i, text in enumerate(texts):
        for sentence in split_sentences(text):
            r = chunk_token_rows(sentence, context_length)
            rows.append(r)
            owner.extend([i] * r.shape[0])
    if not rows:
        return torch.zeros(0, context_length, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.cat(rows), torch.tensor(owner, dtype=torch.long)

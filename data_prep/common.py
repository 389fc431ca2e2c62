"""Pieces both prep scripts share: image decoding that never crashes the run, square resizing, CLI plumbing."""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from cvaelib.cliparse import OneLineParser as Parser  # noqa: F401 - the scripts' parser
from cvaelib.errors import DataError, KitError

#: errors that mean "this one image is bad" (reported and skipped), never "stop the run"
IMAGE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError)
RESAMPLE = Image.Resampling.BICUBIC  # PIL scales its kernel with the reduction factor, so this is antialiased


class BadImage(Exception):
    """One image cannot be used; the message says why (it ends up in the manifest's ``skipped`` list).

    ``retry=True`` marks a cause that may go away (file not there yet, network failure): a re-run redoes the
    shard holding such an item instead of treating it as finished.  A corrupt file or an HTTP 404 stays skipped.
    """

    def __init__(self, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


def decode(data: bytes, draft_to: tuple[int, int] | None = None) -> Image.Image:
    """Fully decode JPEG/PNG bytes to RGB, or raise :class:`BadImage` (truncated, not an image, ...).

    ``draft_to`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale while keeping both sides >= the given size: large
    COCO photos shrunk to 64 or 128 pixels decode several times faster and look the same.
    """
    try:
        img = Image.open(io.BytesIO(data))
        full_size = img.size
        if draft_to is not None and img.format == "JPEG":
            img.draft("RGB", draft_to)
        img.load()  # decoding happens here: a truncated file fails now, not later
        img = img.convert("RGB")
    except IMAGE_ERRORS as exc:
        raise BadImage(f"{type(exc).__name__}: {exc}") from None
    img.info["full_size"] = full_size
    return img


def to_chw(img: Image.Image) -> np.ndarray:
    """PIL RGB -> uint8 ``[3, H, W]``."""
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def center_square(img: Image.Image, size: int) -> Image.Image:
    """Scale the shorter side to ``size`` and cut the centre square (keeps the aspect, loses the edges)."""
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return img.resize((size, size), RESAMPLE, box=(left, top, left + side, top + side))


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the hand-wrapped description/epilog; shows a default only where there is a meaningful one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "default" not in text \
                and action.option_strings:
            shown = " ".join(map(str, action.default)) if isinstance(action.default, list) else action.default
            text += f" (default: {shown})"
        return text


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text}")
    return value


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None,
        on_error: Callable[[KitError], None] | None = None) -> int:
    """Run a prep ``main``: KitError -> ``error: ...`` on stderr and status 2; Ctrl-C -> status 130 (resumable)."""
    try:
        return main(argv)
    except KitError as exc:
        if on_error is not None:
            on_error(exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished shards are kept, run the same command again to resume", file=sys.stderr)
        return 130


class Log:
    """Progress lines on stderr (Colab shows them live); ``quiet`` keeps only warnings."""

    def __init__(self, quiet: bool = False, sink: Callable[[str], None] | None = None) -> None:
        self.quiet = quiet
        self.sink = sink
        self.start = time.perf_counter()
        self.lines: list[str] = []  # kept so tests and notebooks can look at what happened

    @classmethod
    def of(cls, log) -> "Log":
        """A :class:`Log` from ``None`` (stderr), an existing Log, or any ``callable(str)`` such as ``print``."""
        return log if isinstance(log, Log) else cls(sink=log)

    def __call__(self, msg: str, force: bool = False) -> None:
        self.lines.append(msg)
        if force or not self.quiet:
            line = f"[{time.perf_counter() - self.start:7.1f}s] {msg}"
            if self.sink is not None:
                self.sink(line)
            else:
                print(line, file=sys.stderr, flush=True)


def build_split(writer, pool, split: str, items: Sequence, shard_size: int,
                work: Callable[[object], tuple[dict[str, np.ndarray] | None, str | None, dict]],
                shapes: dict[str, tuple[tuple[int, ...], type]], log: Log, name_of: Callable[[object], dict],
                shown: list[int]) -> dict:
    """Prepare one split shard by shard: skip finished shards, run ``work`` on the rest in ``pool``, write.

    ``work(item)`` returns ``(arrays, record)`` for a usable item (``arrays``: key -> one item's array, with the
    per-item shape and dtype of ``shapes``) or raises :class:`BadImage` (any other exception counts too) for a bad
    one, which is reported (the first 20 on the console, all in the manifest) and left out.  ``name_of(item)``
    identifies a skipped item.
    Returns the split's manifest entry.
    """
    planned = max(1, -(-len(items) // shard_size))
    for index in range(planned):
        lo, hi = index * shard_size, min(len(items), (index + 1) * shard_size)
        if writer.is_done(split, index, lo, hi - lo):
            log(f"{split} shard {index + 1}/{planned}: already done, skipped")
            continue
        t0 = time.perf_counter()
        chunk = items[lo:hi]
        # preallocated: a shard never exists twice in memory (list of rows + stacked copy)
        arrays = {key: np.empty((len(chunk),) + shape, dtype) for key, (shape, dtype) in shapes.items()}
        records, skipped = [], []
        for item, (result, record, error) in zip(chunk, pool.map(_guarded(work), chunk)):
            if result is None:
                reason = str(error)
                skipped.append({**name_of(item), "reason": reason, "retry": bool(getattr(error, "retry", False))})
                if shown[0] < 20:
                    log(f"skipped {next(iter(name_of(item).values()))}: {reason}", force=True)
                    shown[0] += 1
                continue
            for key, value in result.items():
                arrays[key][len(records)] = value
            records.append(record)
        writer.write(split, index, lo, hi - lo, {k: v[:len(records)] for k, v in arrays.items()}, records, skipped)
        dt = time.perf_counter() - t0
        log(f"{split} shard {index + 1}/{planned}: {len(records)} images, {len(skipped)} skipped, {dt:.1f} s "
            f"({len(chunk) / max(dt, 1e-9):.0f} items/s)")
    return writer.finish_split(split, planned, len(items))


def _guarded(work):
    """Wrap ``work`` so that even an unforeseen error on one item skips that item instead of ending the run."""
    def safe(item):
        try:
            arrays, record = work(item)
            return arrays, record, None
        except BadImage as exc:
            return None, None, exc
        except Exception as exc:  # noqa: BLE001 - reported per item in the manifest, never silent
            return None, None, BadImage(f"unexpected {type(exc).__name__}: {exc}")
    return safe


def make_pool(workers: int):
    """A thread pool whose shutdown (also on Ctrl-C) drops queued work instead of finishing a whole shard."""
    from concurrent.futures import ThreadPoolExecutor

    class _Pool(ThreadPoolExecutor):
        def __exit__(self, *exc):
            self.shutdown(wait=True, cancel_futures=True)
            return False

    return _Pool(max_workers=max(1, workers))


def require_images(entry: dict, split: str, hint: str = "") -> None:
    """A split whose every item was skipped is an error (naming the first reason), never an empty shard set."""
    if entry["count"] == 0 and entry.get("skipped"):
        first = next(s["skipped"][0]["reason"] for s in entry["shards"] if s["skipped"])
        raise DataError(f"no usable image in the {split} split ({entry['skipped']} skipped, e.g. {first}){hint}")


def finish(writer, log) -> dict:
    """Log the per-split counts and skips of a finished run and return its manifest."""
    manifest = writer.manifest
    total_skipped = sum(s["skipped"] for s in manifest["splits"].values())
    log("done: " + ", ".join(f"{k} {v['count']}" for k, v in manifest["splits"].items())
        + f"; {total_skipped} skipped (listed in {writer.path})", force=True)
    return manifest

"""Files the kit builds once and reuses: the judge classifiers and the TinyCLIPs it trains itself.

They live in ``$CVAELIB_CACHE`` (default ``~/.cache/cvaelib``), one file per dataset and settings.  Building one
takes a minute or more on a CPU, and several processes may want the same file at once (two notebooks, a test
run with two workers), so :func:`load_or_build` lets one process build it while the others wait for it behind a
file lock, instead of all training the same model side by side.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from filelock import FileLock, Timeout

T = TypeVar("T")


def default_cache_dir() -> Path:
    """``$CVAELIB_CACHE`` or ``~/.cache/cvaelib``."""
    return Path(os.environ.get("CVAELIB_CACHE", Path.home() / ".cache" / "cvaelib"))


def load_or_build(path: str | os.PathLike, load: Callable[[Path], T], build: Callable[[Path], T],
                  what: str = "it") -> T:
    """``load(path)`` when the file is there and readable, else ``build(path)``, which must write it.

    Only one process at a time builds a given ``path``: the others wait, then load what it wrote.  A file that
    fails to load (stale format, cut short) is rebuilt, never trusted.  ``what`` names the file in the message a
    waiting process prints.  Where no lock can be made (a read-only cache folder) it builds without one.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock: FileLock | None = FileLock(str(path) + ".lock")
        lock.acquire(timeout=0)
    except Timeout:
        print(f"waiting for another process that is training {what} ({path.name})", file=sys.stderr, flush=True)
        lock.acquire()
    except OSError:
        lock = None
    try:
        if path.exists():
            try:
                return load(path)
            except Exception:  # noqa: BLE001 - any unreadable file is rebuilt
                path.unlink(missing_ok=True)
        return build(path)
    finally:
        if lock is not None:
            lock.release()

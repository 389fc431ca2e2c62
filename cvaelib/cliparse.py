"""argparse with the kit's error contract: a usage mistake is one ``error: ...`` line and exit status 2.

Shared by ``python -m cvaelib`` and the ``data_prep`` scripts.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line naming where help is (``python -m PROG --help``), status 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"error: {message} (see: python -m {self.prog} --help)\n")


def positive(kind: type, name: str, allow_zero: bool = False) -> Callable[[str], Any]:
    """An argparse ``type`` that accepts numbers of ``kind`` > 0 (or >= 0) and names the option when not."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if value < 0 or (value == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {text}")
        return value
    return parse


__all__ = ["OneLineParser", "positive"]

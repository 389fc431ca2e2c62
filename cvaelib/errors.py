"""One exception type for mistakes a student can fix.

Everything the kit raises on bad input is a :class:`KitError` whose message is a single line that says what was
wrong and how to fix it.  The CLI prints it as ``error: ...`` and exits with status 2; notebooks show it as a
normal exception without a deep traceback into torch.
"""

from __future__ import annotations


class KitError(Exception):
    """A user-facing error with a one-line, actionable message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))  # always one line


class DataError(KitError):
    """Data is missing, in the wrong layout, or corrupt."""


class CheckpointError(KitError):
    """A checkpoint is missing, truncated, foreign or of another model."""


class PromptError(KitError):
    """A text prompt could not be turned into a condition."""

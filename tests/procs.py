"""Child processes in tests: they can receive Ctrl-C, and they never outlive the test that started them.

A suite started in the background (``nohup cmd &``) runs with SIGINT ignored, and a child inherits that: a test that
sends SIGINT would then wait in vain while its child trains on.  :func:`child` resets SIGINT (and SIGTERM) to the
default in the child before it starts Python, which then installs its usual KeyboardInterrupt handler, and puts the
child in its own process group, which is killed on every way out of the ``with`` block (pass, fail, timeout), so
grandchildren (``torchrun``'s workers) go too.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def popen(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen`` in a new process group, with SIGINT/SIGTERM at their defaults in the child."""
    return subprocess.Popen(cmd, preexec_fn=_default_signals, start_new_session=True, **kwargs)


def kill_group(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and everything it started (its process group); reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - a zombie we cannot reap
        pass
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@contextmanager
def child(cmd: list[str], **kwargs: Any) -> Iterator[subprocess.Popen]:
    """``with child([...]) as proc:`` - a :func:`popen` process, killed with its group when the block ends."""
    proc = popen(cmd, **kwargs)
    try:
        yield proc
    finally:
        kill_group(proc)

"""Shared helpers of the exercise checks: failure messages with hints, calling the student's code safely,
shape/finite checks, and :func:`check_value` for predict-first answers."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ...errors import KitError


class ExerciseError(KitError):
    """An exercise's answer is wrong; the message says what is wrong and how to fix it."""


def _fail(check: str, what: str, hint: str) -> ExerciseError:
    return ExerciseError(f"{check}: {what} Hint: {hint}")


def _ok(check: str, message: str) -> None:
    print(f"correct: {check}: {message}")


def _require_callable(check: str, fn: Any, name: str) -> None:
    if not callable(fn):
        raise _fail(check, f"expected your function {name}, got a {type(fn).__name__}.",
                    f"pass the function itself, without calling it: {check}({name})")


def _call(check: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the student's function; keep NotImplementedError (an unfinished stub), explain anything else."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except ExerciseError:
        raise
    except Exception as exc:  # the student's code failed: say where it failed, not a deep traceback
        raise _fail(check, f"your function raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]}",
                    "run it on the small example in the cell above and read the error; check shapes "
                    "(print(x.shape)) and dtypes.") from exc


def _require_tensor(check: str, out: Any, shape: Sequence[int] | None = None, what: str = "result") -> Tensor:
    if not isinstance(out, Tensor):
        raise _fail(check, f"your {what} is a {type(out).__name__}, not a torch.Tensor.",
                    "build it from torch operations on the inputs (and return it).")
    if shape is not None and tuple(out.shape) != tuple(shape):
        raise _fail(check, f"your {what} has shape {list(out.shape)}, expected {list(shape)}.",
                    "check which dimension you summed, concatenated or indexed over.")
    if out.is_floating_point() and not torch.isfinite(out).all():
        raise _fail(check, f"your {what} contains NaN or inf.",
                    "look for log(0), division by a zero norm, or exp of a huge number.")
    return out


def _fmt(t: Tensor) -> str:
    """A short tensor for a message: ``[0.75, 0.69]``."""
    return "[" + ", ".join(f"{float(v):.2f}" for v in t.flatten()[:8]) + (", ..." if t.numel() > 8 else "") + "]"


def _close(a: Tensor, b: Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), rtol=rtol, atol=atol)


def _scalar(check: str, out: Any, what: str) -> float:
    if isinstance(out, Tensor):
        if out.numel() != 1:
            raise _fail(check, f"your {what} has shape {list(out.shape)}; it should be one number per batch.",
                        "sum over pixels/dimensions and average over the images in the batch.")
        return float(out.detach())
    if isinstance(out, (int, float)):
        return float(out)
    raise _fail(check, f"your {what} is a {type(out).__name__}, not a number.", "return a tensor (or a float).")


def check_value(value: Any, low: float, high: float, name: str = "value", hint: str = "") -> None:
    """A number the student computed lies in ``[low, high]`` (for open-ended exercises that produce a measurement)."""
    check = "check_value"
    if value is None:
        raise _fail(check, f"{name} is None.", hint or "assign your result to the variable.")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise _fail(check, f"{name} should be a number, got a {type(value).__name__}.",
                    hint or "convert with float(...).") from None
    if not (low <= v <= high) or math.isnan(v):
        raise _fail(check, f"{name} = {v:.4g} is outside the plausible range [{low}, {high}].",
                    hint or "re-read the exercise: which quantity, and in which units?")
    _ok(check, f"{name} = {v:.4g}")

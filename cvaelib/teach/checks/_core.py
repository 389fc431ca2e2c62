"""Shared helpers of the exercise checks: failure messages with hints, calling the student's code safely,
shape/finite checks, :func:`check_value` for measured answers and :func:`check_prediction` for predict-first
questions."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ...errors import KitError


__all__ = ["ExerciseError", "Question", "check_prediction", "check_value", "register_questions"]


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


def _describe(value: Any) -> str:
    """What the check passed, as a student can rebuild it: ``float32 [4, 1, 6, 6]``, ``3``, ``a Generator``."""
    if isinstance(value, Tensor):
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {list(value.shape)}"
    if isinstance(value, (bool, int, float, str)):
        return repr(value)
    return f"a {type(value).__name__}"


def _call(check: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the student's function; keep NotImplementedError (an unfinished stub), explain anything else.

    A crash is reported with the error and the inputs the check passed (dtype and shape of each tensor), so the
    student can rebuild such inputs in a new cell and read the whole traceback there.
    """
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except ExerciseError:
        raise
    except Exception as exc:  # the student's code failed: say where it failed, not a deep traceback
        given = ", ".join([_describe(a) for a in args] + [f"{k}={_describe(v)}" for k, v in kwargs.items()])
        raise _fail(check, f"your function raised {type(exc).__name__}: {' '.join(str(exc).split())[:200]} "
                           f"(the check called it with {given}).",
                    "call your function yourself in a new cell on inputs like these (e.g. torch.randn of those "
                    "shapes) and read the full traceback; print the shape and dtype of each intermediate "
                    "result.") from exc


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


# --- predict first: multiple-choice questions answered before the experiment that settles them ---------------------
@dataclass(frozen=True)
class Question:
    """A predict-first question: the lesson asks it *before* the cell that shows the answer.

    ``choices`` maps a letter to an option; ``hint`` nudges a wrong answer without naming the right one; ``why``
    explains the right one (shown only once it is chosen).
    """

    choices: dict[str, str]
    answer: str
    why: str
    hint: str


#: every lesson's questions, ``"02.kl_vs_beta"`` -> :class:`Question`; each checks module registers its own
QUESTIONS: dict[str, Question] = {}


def register_questions(questions: dict[str, Question]) -> None:
    """Add a lesson's questions (ids are ``"NN.name"``, unique across the course)."""
    for qid, q in questions.items():
        if qid in QUESTIONS or q.answer not in q.choices:
            raise ValueError(f"question {qid!r} is registered twice or its answer is not one of its choices")
        QUESTIONS[qid] = q


def check_prediction(question: str, answer: Any) -> None:
    """Check a predict-first answer: ``answer`` is a choice letter (``"b"``, ``"(B)"``) of question ``question``.

    Wrong answers get a hint, not the answer; the experiment in the next cells shows who was right.
    """
    check = "check_prediction"
    if question not in QUESTIONS:
        raise KitError(f"unknown question {question!r}; known: {', '.join(sorted(QUESTIONS))}")
    q = QUESTIONS[question]
    options = "; ".join(f"({k}) {v}" for k, v in q.choices.items())
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise NotImplementedError(f"answer the question first: set your prediction to one of {options}")
    letter = str(answer).strip().strip("()").strip().lower()
    if letter not in q.choices:
        raise _fail(check, f"{answer!r} is not one of the choices.", f"answer with a letter: {options}.")
    if letter != q.answer:
        raise _fail(check, f"({letter}) {q.choices[letter]} - not quite.", q.hint)
    _ok(check, f"({letter}) {q.choices[letter]}. {q.why}")

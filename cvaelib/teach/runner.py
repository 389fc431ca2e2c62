"""Execute a notebook cell by cell and account for every exercise: used to verify student versions and to grade.

* :func:`verify` runs a *student* notebook next to its instructor notebook: every ordinary cell must run; every
  exercise (its cell and its check cells) must stop with ``NotImplementedError("Exercise N: ...")``; then the
  instructor's solution is run in its place and its checks must pass, so the next exercises are tested too.
* :func:`grade` runs a *submission*: one point per exercise whose check cells all pass.  With the instructor
  notebook as ``key``, a failed exercise is replaced by its solution before going on, so one mistake does not
  cost the exercises after it.

Cells run in one namespace in this process, as a kernel would run them, from the notebook's folder.  The
command line runs each notebook in a fresh subprocess.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exercises import find_exercises, is_check_cell, read_notebook, to_student


@dataclass
class CellError:
    cell: int
    error: str  # "TypeName: message"

    @classmethod
    def of(cls, cell: int, exc: BaseException) -> "CellError":
        return cls(cell, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")


@dataclass
class Report:
    """What happened when a notebook ran: per-exercise results and any problems."""

    notebook: str
    exercises: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def score(self) -> tuple[int, int]:
        return sum(1 for e in self.exercises if e.get("passed")), len(self.exercises)

    def as_dict(self) -> dict:
        passed, total = self.score
        return {"notebook": self.notebook, "ok": self.ok, "passed": passed, "total": total,
                "exercises": self.exercises, "problems": self.problems}


def _python_source(cell: Any) -> str:
    """Cell source as Python; IPython magics (``%time``, ``!pip``) become ``get_ipython()`` calls."""
    src = cell.source
    if re.search(r"^\s*[%!]", src, re.MULTILINE):
        try:
            from IPython.core.inputtransformer2 import TransformerManager

            src = TransformerManager().transform_cell(src)
        except ImportError:
            pass
    return src


class _NoShell:
    """Stands in for ``get_ipython()`` outside a kernel: magics and ``!commands`` (``!pip install``) are skipped."""

    def _skip(self, *args: Any, **kwargs: Any) -> None:
        return None

    run_line_magic = run_cell_magic = system = getoutput = _skip


class CellRunner:
    """Runs cells of one notebook in one namespace, from the notebook's folder."""

    def __init__(self, path: Path, quiet: bool = True) -> None:
        self.path = Path(path).resolve()
        shell = _NoShell()
        self.ns: dict[str, Any] = {"__name__": "__main__", "__file__": str(self.path), "get_ipython": lambda: shell}
        self.quiet = quiet

    def run(self, cell: Any, index: int) -> BaseException | None:
        """Execute one cell; return the exception it raised (None when it ran)."""
        if cell.cell_type != "code" or not cell.source.strip():
            return None
        code = compile(_python_source(cell), f"<{self.path.name} cell {index}>", "exec")
        sink = io.StringIO()
        redirect = contextlib.redirect_stdout(sink) if self.quiet else contextlib.nullcontext()
        old = os.getcwd()
        try:
            os.chdir(self.path.parent)
            with redirect:
                exec(code, self.ns)  # noqa: S102 - running the notebook is the point
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a cell may raise anything, SystemExit included
            if not self.quiet and not isinstance(exc, NotImplementedError):
                traceback.print_exc()
            return exc
        finally:
            os.chdir(old)
            import matplotlib.pyplot as plt

            plt.close("all")
        return None


def _prepare_env(smoke: bool) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    if smoke:
        os.environ["SMOKE"] = "1"


def verify(student: str | Path, instructor: str | Path, smoke: bool = True, quiet: bool = True) -> Report:
    """Check that ``student`` fails exactly at its exercises and that ``instructor``'s solutions pass the checks."""
    _prepare_env(smoke)
    snb, inb = read_notebook(student), read_notebook(instructor)
    report = Report(Path(student).name)
    exercises = find_exercises(inb)
    if len(snb.cells) != len(inb.cells):
        report.problems.append(f"the student notebook has {len(snb.cells)} cells, the instructor's "
                               f"{len(inb.cells)}: regenerate it with `python -m cvaelib.teach student`")
        return report
    by_cell = {e.cell: e for e in exercises}
    expected_cells = to_student(inb).cells  # what every non-exercise cell of the student version should be
    runner = CellRunner(Path(student), quiet=quiet)
    i = 0
    while i < len(snb.cells):
        ex = by_cell.get(i)
        if ex is None:
            if snb.cells[i].source != expected_cells[i].source:
                report.problems.append(f"cell {i} differs from the instructor's although it is no exercise")
            exc = runner.run(snb.cells[i], i)
            if exc is not None:
                report.problems.append(f"cell {i} (not an exercise) failed: {CellError.of(i, exc).error}")
                return report  # the rest would fail for the same reason
            i += 1
            continue
        group = [ex.cell, *ex.checks]
        stub_error = None
        for j in group:
            stub_error = runner.run(snb.cells[j], j)
            if stub_error is not None:
                break
        entry = {"number": ex.number, "title": ex.title, "checks": ex.check_names,
                 "student": CellError.of(j, stub_error).error if stub_error else "ran without error"}
        expected = f"Exercise {ex.number}:"
        if not isinstance(stub_error, NotImplementedError) or expected not in str(stub_error):
            report.problems.append(f"exercise {ex.number}: the student version should stop with "
                                   f"NotImplementedError('{expected} ...'), got {entry['student']}")
        if not ex.checks:
            report.problems.append(f"exercise {ex.number} has no check cell after it")
        for j in group:
            exc = runner.run(inb.cells[j], j)
            if exc is not None:
                entry["solution"] = CellError.of(j, exc).error
                report.problems.append(f"exercise {ex.number}: the instructor's solution fails in cell {j}: "
                                       f"{entry['solution']}")
                report.exercises.append(entry)
                return report
        entry["solution"] = "passes its checks"
        entry["passed"] = True
        report.exercises.append(entry)
        i = group[-1] + 1
    return report


def _check_groups(nb: Any) -> list[list[int]]:
    """Runs of consecutive check cells: one group per exercise, in order."""
    groups: list[list[int]] = []
    previous = -2
    for i, cell in enumerate(nb.cells):
        if is_check_cell(cell):
            if i == previous + 1 and groups:
                groups[-1].append(i)
            else:
                groups.append([i])
            previous = i
    return groups


def grade(submission: str | Path, key: str | Path | None = None, smoke: bool = True, quiet: bool = True) -> Report:
    """Run a student's notebook and score it: one point per exercise whose check cells all pass."""
    _prepare_env(smoke)
    nb = read_notebook(submission)
    report = Report(Path(submission).name)
    key_nb = read_notebook(key) if key else None
    key_ex = find_exercises(key_nb) if key_nb is not None else []
    groups = _check_groups(nb)
    if key_ex and len(groups) != len(key_ex):
        report.problems.append(f"found {len(groups)} check groups, the key has {len(key_ex)} exercises: "
                               f"were check cells deleted or duplicated?")
    group_of = {j: k for k, g in enumerate(groups) for j in g}
    # the code cell right before a check group is that exercise's cell: when it fails, so does the exercise
    for k, g in enumerate(groups):
        e = g[0] - 1
        if e >= 0 and e not in group_of and nb.cells[e].cell_type == "code":
            group_of[e] = k
    results: dict[int, dict] = {k: {"number": k + 1, "passed": True, "message": "ok"} for k in range(len(groups))}
    runner = CellRunner(Path(submission), quiet=quiet)
    for i, cell in enumerate(nb.cells):
        k = group_of.get(i)
        if k is not None and not results[k]["passed"]:
            continue  # this exercise already failed; its remaining checks would repeat the failure
        exc = runner.run(cell, i)
        if exc is None:
            continue
        if k is None:
            report.problems.append(f"cell {i} failed: {CellError.of(i, exc).error}")
            continue
        status = "not attempted" if isinstance(exc, NotImplementedError) else "wrong"
        results[k].update(passed=False, message=f"{status}: {CellError.of(i, exc).error}")
        if k < len(key_ex):  # put the instructor's solution in place so later exercises are graded fairly
            ex = key_ex[k]
            for j in [ex.cell, *ex.checks]:
                if runner.run(key_nb.cells[j], j) is not None:
                    report.problems.append(f"the key's solution of exercise {k + 1} failed too")
                    break
    for k, g in enumerate(groups):
        names = re.findall(r"\b(check_\w+)\s*\(", "\n".join(nb.cells[j].source for j in g))
        results[k]["checks"] = names
        if k < len(key_ex):
            results[k]["title"] = key_ex[k].title
    report.exercises = [results[k] for k in range(len(groups))]
    return report

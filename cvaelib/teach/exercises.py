"""Exercises inside instructor notebooks, and the student / answer-key / nbgrader versions made from them.

The convention is nbgrader's: an *exercise cell* is a code cell holding a solution between the marker lines
``### BEGIN SOLUTION`` and ``### END SOLUTION``; it is followed by one or more *check cells*, code cells that call a
``check_*`` function from :mod:`cvaelib.teach` (or start with ``# check``).  Exercises are numbered in notebook
order.  An exercise's title comes from a ``# Exercise: ...`` comment in the cell, else from the markdown cell
before it (``### Exercise 2 · Write the KL term`` gives "Write the KL term").

The student version replaces each solution block by ``raise NotImplementedError("Exercise N: title")`` at the
block's indentation, so a student who runs the notebook stops exactly at the first unfinished exercise.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import KitError

#: the line under each instructor notebook's badge, and what the student version says instead
INSTRUCTOR_NOTE = ("> **Instructor version: solutions included.** Students work in the student version (the Colab "
                   "badge opens it; `python -m cvaelib.teach student` regenerates it).")
STUDENT_NOTE = ("> **Student version.** Write your code where it says `# YOUR CODE HERE`; the check cell after each "
                "exercise tells you what is wrong and gives a hint.")
BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
_CHECK_CALL = re.compile(r"\bcheck_\w+\s*\(")
_TITLE_COMMENT = re.compile(r"^\s*#\s*Exercise\s*\d*\s*[:·.\-]\s*(?P<title>.+?)\s*$", re.MULTILINE)
_TITLE_HEADING = re.compile(r"Exercise\s*\d*\s*[:·.\-–—]\s*(?P<title>[^\n]+)", re.IGNORECASE)


@dataclass
class Exercise:
    """One exercise of a notebook: where it is, what it asks, how it is checked."""

    number: int
    title: str
    cell: int  # index of the exercise cell in the notebook's cells
    checks: list[int] = field(default_factory=list)  # indices of its check cells
    solution: str = ""  # the exercise cell with the markers removed
    prompt: str = ""  # the markdown cell that introduces it (may be empty)
    check_names: list[str] = field(default_factory=list)  # check_* functions its check cells call


def read_notebook(path: str | Path) -> Any:
    """Read a jupytext ``.py`` or an ``.ipynb`` notebook (an nbformat notebook node)."""
    import jupytext

    path = Path(path)
    if not path.exists():
        raise KitError(f"{path} does not exist; pass a notebook (.py or .ipynb) or a folder of them")
    return jupytext.read(path)


def is_check_cell(cell: Any) -> bool:
    """A code cell that calls a ``check_*`` function (or starts with a ``# check`` comment)."""
    if cell.cell_type != "code":
        return False
    src = cell.source.lstrip()
    return bool(_CHECK_CALL.search(cell.source)) or src.lower().startswith("# check")


def has_solution(source: str) -> bool:
    return BEGIN in source


def _title(nb: Any, index: int) -> tuple[str, str]:
    cell = nb.cells[index]
    prompt = ""
    for j in range(index - 1, -1, -1):
        if nb.cells[j].cell_type == "markdown":
            prompt = nb.cells[j].source
            break
        if has_solution(nb.cells[j].source) or is_check_cell(nb.cells[j]):
            break
    m = _TITLE_COMMENT.search(cell.source)
    if m:
        return m.group("title"), prompt
    m = _TITLE_HEADING.search(prompt)
    if m:
        return m.group("title").strip(" *#"), prompt
    body = "\n".join(line for line in prompt.split("\n") if not line.lstrip().startswith("#"))
    text = re.sub(r"\*\*\d+\.\*\*|^\s*\d+\.\s|[*`>]", "", body, flags=re.MULTILINE).strip()
    first = re.split(r"(?<=[.!?])\s", " ".join(text.split()), maxsplit=1)[0] if text else ""
    return (first[:90].rstrip(" .") or "complete the solution"), prompt


def strip_markers(source: str) -> str:
    """The solution as an instructor reads it: the marker lines removed, the code kept."""
    return "\n".join(line for line in source.split("\n") if line.strip() not in (BEGIN, END))


def find_exercises(nb: Any) -> list[Exercise]:
    """Every exercise of ``nb`` in order, with its check cells; malformed markers raise :class:`KitError`."""
    exercises: list[Exercise] = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not has_solution(cell.source):
            continue
        _blocks(cell.source)  # validates the markers
        title, prompt = _title(nb, i)
        ex = Exercise(number=len(exercises) + 1, title=title, cell=i, solution=strip_markers(cell.source),
                      prompt=prompt)
        j = i + 1
        while j < len(nb.cells) and is_check_cell(nb.cells[j]) and not has_solution(nb.cells[j].source):
            ex.checks.append(j)
            ex.check_names += re.findall(r"\b(check_\w+)\s*\(", nb.cells[j].source)
            j += 1
        exercises.append(ex)
    return exercises


def _blocks(source: str) -> list[tuple[int, int]]:
    """Line ranges (begin, end) of the solution blocks; unbalanced markers are an error."""
    lines, blocks, start = source.split("\n"), [], None
    for k, line in enumerate(lines):
        if line.strip() == BEGIN:
            if start is not None:
                raise KitError(f"'{BEGIN}' twice without '{END}' in between (line {k + 1} of a cell)")
            start = k
        elif line.strip() == END:
            if start is None:
                raise KitError(f"'{END}' without a '{BEGIN}' before it (line {k + 1} of a cell)")
            blocks.append((start, k))
            start = None
    if start is not None:
        raise KitError(f"'{BEGIN}' on line {start + 1} of a cell has no '{END}'")
    return blocks


def stub_source(source: str, number: int, title: str) -> str:
    """The student's version of an exercise cell: each solution block becomes a ``NotImplementedError`` stub."""
    lines = source.split("\n")
    out: list[str] = []
    last = 0
    message = f"Exercise {number}: {title}".replace("\\", "\\\\").replace('"', '\\"')
    for begin, end in _blocks(source):
        out += lines[last:begin]
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        out += [f"{indent}# YOUR CODE HERE", f'{indent}raise NotImplementedError("{message}")']
        last = end + 1
    out += lines[last:]
    return "\n".join(out)


def _clean(nb: Any) -> Any:
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def to_student(nb: Any) -> Any:
    """A copy of the instructor notebook with every solution replaced by a stub (same cells, same metadata)."""
    student = _clean(nb)
    for cell in student.cells:
        if cell.cell_type == "markdown" and INSTRUCTOR_NOTE in cell.source:
            cell.source = cell.source.replace(INSTRUCTOR_NOTE, STUDENT_NOTE)
    for ex in find_exercises(nb):
        student.cells[ex.cell].source = stub_source(nb.cells[ex.cell].source, ex.number, ex.title)
    return student


def to_nbgrader(nb: Any, prefix: str = "") -> Any:
    """A copy with nbgrader cell metadata: exercise cells are solution cells, check cells autograded tests.

    ``nbgrader generate_assignment`` then makes the same student version as :func:`to_student` (nbgrader's own
    stub text), and ``nbgrader autograde`` scores one point per passing check cell.
    """
    out = _clean(nb)
    for ex in find_exercises(nb):
        out.cells[ex.cell].metadata["nbgrader"] = {
            "grade": False, "grade_id": f"{prefix}exercise_{ex.number}", "locked": False, "schema_version": 3,
            "solution": True, "task": False}
        for k, j in enumerate(ex.checks):
            out.cells[j].metadata["nbgrader"] = {
                "grade": True, "grade_id": f"{prefix}check_{ex.number}" + (f"_{k + 1}" if k else ""),
                "locked": True, "points": 1, "schema_version": 3, "solution": False, "task": False}
    return out


def write_pair(nb: Any, py_path: str | Path) -> tuple[Path, Path]:
    """Write ``nb`` as a jupytext pair: ``NAME.py`` (py:percent) and ``NAME.ipynb``, outputs stripped."""
    import jupytext

    py_path = Path(py_path)
    py_path.parent.mkdir(parents=True, exist_ok=True)
    nb = _clean(nb)
    for i, cell in enumerate(nb.cells):  # stable cell ids: regenerating an unchanged notebook changes no file
        cell["id"] = hashlib.sha1(f"{py_path.stem}:{i}".encode()).hexdigest()[:8]
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    jupytext.write(nb, py_path, fmt="py:percent")
    ipynb = py_path.with_suffix(".ipynb")
    jupytext.write(nb, ipynb, fmt="ipynb")
    return py_path, ipynb


def notebook_sources(src: str | Path) -> list[Path]:
    """The lesson notebooks under ``src``: ``NN_*.py`` (or ``NN_*.ipynb`` without a ``.py`` twin), or one file."""
    src = Path(src)
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise KitError(f"{src} is neither a notebook nor a folder; pass e.g. notebooks/")
    pys = sorted(src.glob("[0-9][0-9]_*.py"))
    ipynbs = [p for p in sorted(src.glob("[0-9][0-9]_*.ipynb")) if not p.with_suffix(".py").exists()]
    found = sorted(pys + ipynbs)
    if not found:
        raise KitError(f"no lesson notebooks (NN_name.py / NN_name.ipynb) in {src}")
    return found


def answer_key(paths: list[Path]) -> str:
    """A Markdown answer key: every exercise of every notebook with its solution and the check that grades it."""
    parts = ["# Answer key", "", "Generated by `python -m cvaelib.teach solutions`; do not hand this to students.",
             ""]
    for path in paths:
        nb = read_notebook(path)
        exercises = find_exercises(nb)
        title = next((c.source.split("\n")[0].lstrip("# ").strip() for c in nb.cells if c.cell_type == "markdown"),
                     path.stem)
        parts += [f"## {path.stem}: {title}", ""]
        if not exercises:
            parts += ["(no exercises)", ""]
        for ex in exercises:
            checks = ", ".join(f"`{c}`" for c in dict.fromkeys(ex.check_names)) or "the check cell"
            parts += [f"### Exercise {ex.number}: {ex.title}", "", f"Checked by {checks}.", "",
                      "```python", ex.solution.strip(), "```", ""]
    return "\n".join(parts)

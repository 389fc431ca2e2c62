"""Every lesson notebook has the anatomy students and instructors rely on: a title, learning goals, a Colab badge
that points at the configured repository, a runtime statement for a Colab T4 and a CPU, one setup cell that installs
only on Colab and never torch, at least two exercises each followed by a ``cvaelib.teach`` check cell, a
"What's next" link that resolves, no committed outputs, and a .py/.ipynb pair in sync.  Static: no execution."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import cvaelib.teach
from cvaelib.teach import config
from cvaelib.teach.exercises import INSTRUCTOR_NOTE, find_exercises, read_notebook

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.py"))
IDS = [p.stem for p in NOTEBOOKS]


@pytest.fixture(params=NOTEBOOKS, ids=IDS)
def nb(request):
    return request.param, read_notebook(request.param)


def _markdown(notebook) -> str:
    return "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")


def test_title_goals_badge_runtime(nb):
    path, notebook = nb
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and re.match(r"# \d\d · \S", first.source), \
        f"{path.name}: the first cell should start with a title '# {path.stem[:2]} · ...'"
    goals = re.search(r"\*\*You will learn\*\*\n((?:- .+\n?(?:  .+\n?)*)+)", first.source)
    assert goals and goals.group(1).count("\n- ") + 1 >= 2, f"{path.name}: list learning goals under **You will learn**"
    assert config.badge(path.stem + ".ipynb") in first.source, \
        f"{path.name}: the Colab badge is missing or stale; run python -m cvaelib.teach badges"
    runtime = re.search(r"\*\*Runtime:\*\*(.+?)(?:\n\n|\n\*\*|$)", first.source, re.S)
    assert runtime, f"{path.name}: state the expected runtime ('**Runtime:** ... Colab T4 ..., ... CPU ...')"
    text = " ".join(runtime.group(1).split())
    assert "T4" in text and "CPU" in text and re.search(r"\d+\s*min", text), \
        f"{path.name}: the runtime statement should give minutes on a Colab T4 and on a CPU, got: {text}"


def test_one_setup_cell_installs_only_on_colab_and_never_torch(nb):
    path, notebook = nb
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    installs = [s for s in code if re.search(r"pip\b.*install|\"install\"", s)]
    assert len(installs) == 1 and installs[0] == code[0], f"{path.name}: the first code cell (only) installs"
    setup = code[0]
    assert '"google.colab" in sys.modules' in setup or "env.in_colab" in setup, f"{path.name}: install on Colab only"
    assert re.search(r"\bsetup\(", setup), f"{path.name}: the setup cell calls cvaelib.notebook.setup()"
    pip_args = re.findall(r"\"([^\"]+)\"", setup[setup.index("install"):].split("check=True")[0])
    assert not any(re.match(r"torch(vision)?\b", a) for a in pip_args), f"{path.name}: never pip install torch"
    assert config.install_spec() in setup, f"{path.name}: install line is stale; run python -m cvaelib.teach badges"


def test_at_least_two_checked_exercises(nb):
    path, notebook = nb
    exercises = find_exercises(notebook)
    assert len(exercises) >= 2, f"{path.name}: has {len(exercises)} exercises, needs at least 2"
    titles = [e.title for e in exercises]
    assert len(set(titles)) == len(titles) and all(t != "complete the solution" for t in titles), titles
    for e in exercises:
        assert e.checks, f"{path.name}: exercise {e.number} ({e.title}) needs a check cell right after it"
        unknown = [n for n in e.check_names if n not in cvaelib.teach.__all__]
        assert e.check_names and not unknown, \
            f"{path.name}: exercise {e.number} should be checked by a cvaelib.teach check function, got {unknown}"


def test_whats_next_link_resolves(nb):
    path, notebook = nb
    md = _markdown(notebook)
    m = re.search(r"## What's next\s*\n(.+)", md, re.S)
    assert m, f"{path.name}: end with a '## What's next' section"
    links = re.findall(r"\]\(([^)\s]+)\)", m.group(1))
    assert links, f"{path.name}: 'What's next' should link to the next notebook (or back to the README)"
    local = [link for link in links if not link.startswith("http")]
    assert all((path.parent / link.split("#")[0]).exists() for link in local), f"{path.name}: broken link {local}"


def test_pair_in_sync_without_outputs(nb):
    path, notebook = nb
    ipynb = path.with_suffix(".ipynb")
    assert ipynb.exists(), f"{ipynb.name} missing: run jupytext --sync {path.name}"
    raw = json.loads(ipynb.read_text())
    assert [(c["cell_type"], "".join(c["source"]).strip()) for c in raw["cells"]] == \
        [(c.cell_type, c.source.strip()) for c in notebook.cells], f"out of sync: run jupytext --sync {path.name}"
    assert all(not c.get("outputs") and c.get("execution_count") is None
               for c in raw["cells"] if c["cell_type"] == "code"), f"{ipynb.name} has committed outputs"
    assert raw["metadata"].get("jupytext", {}).get("formats") == "ipynb,py:percent"


def test_readme_badges_point_at_the_configured_repository():
    from cvaelib.teach.badges import files_to_update, stale_files

    stale = stale_files(files_to_update(REPO / "notebooks", REPO / "README.md"))
    assert not stale, f"stale Colab links in {[p.name for p in stale]}: run python -m cvaelib.teach badges"


# --- student versions: what every badge opens ------------------------------------------------------------------------
STUDENT = REPO / config.STUDENT_DIR


def test_student_versions_are_committed_and_in_sync(nb):
    """``student/NN_name`` is exactly what ``python -m cvaelib.teach student`` makes of ``notebooks/NN_name``."""
    from cvaelib.teach.exercises import STUDENT_NOTE, to_student

    path, notebook = nb
    want = [(c.cell_type, c.source.strip()) for c in to_student(notebook).cells]
    for suffix in (".py", ".ipynb"):
        student = STUDENT / (path.stem + suffix)
        assert student.exists(), f"{student} missing: run python -m cvaelib.teach student"
        got = [(c.cell_type, c.source.strip()) for c in read_notebook(student).cells]
        assert got == want, f"{student.name} is stale: run python -m cvaelib.teach student"
    assert STUDENT_NOTE in notebook.cells[0].source.replace(INSTRUCTOR_NOTE, STUDENT_NOTE)
    assert INSTRUCTOR_NOTE in notebook.cells[0].source, f"{path.name}: the first cell should say it holds solutions"


def test_every_colab_badge_opens_a_student_version_without_solutions():
    from cvaelib.teach.exercises import BEGIN

    files = [REPO / "README.md", *NOTEBOOKS, *(p.with_suffix(".ipynb") for p in NOTEBOOKS),
             *sorted(STUDENT.glob("[0-9][0-9]_*"))]
    prefix = f"https://colab.research.google.com/github/{config.repo_path()}/blob/{config.BRANCH}/"
    opened = set()
    for f in files:
        for url in re.findall(r"https://colab\.research\.google\.com/github/[^\s)\"'\\]+", f.read_text()):
            assert url.startswith(prefix), f"{f.name}: {url} is not in the configured repository"
            target = REPO / url[len(prefix):]
            assert target.parent == STUDENT and target.exists(), f"{f.name}: badge opens {target}, not a student version"
            text = target.read_text()
            assert BEGIN not in text and "NotImplementedError(\\\"Exercise 1:" in text, target.name
            opened.add(target.name)
    assert opened == {p.stem + ".ipynb" for p in NOTEBOOKS}, "every lesson has a badge that opens it"

"""``python -m cvaelib.teach``: student versions, answer key, nbgrader source, verification, grading, badges.

    python -m cvaelib.teach student                          # notebooks/ -> student/ (solutions -> stubs; .py + .ipynb)
    python -m cvaelib.teach solutions notebooks/ OUT/        # OUT/SOLUTIONS.md, the answer key
    python -m cvaelib.teach nbgrader notebooks/ COURSE/      # COURSE/source/NN_name/NN_name.ipynb for nbgrader
    python -m cvaelib.teach verify notebooks/                # students stop only at exercises, solutions pass
    python -m cvaelib.teach grade SUBMISSIONS... --key notebooks/ --csv grades.csv
    python -m cvaelib.teach badges [--check]                 # Colab badges + install lines from config.py
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import KitError
from . import badges, config
from .exercises import answer_key, find_exercises, notebook_sources, read_notebook, to_nbgrader, to_student, write_pair


def _student(args: argparse.Namespace) -> int:
    out = Path(args.out)
    for path in notebook_sources(args.src):
        nb = read_notebook(path)
        n = len(find_exercises(nb))
        student = to_student(nb)
        if args.repo or args.branch or args.folder is not None:  # badges open the student versions, not the key
            for cell in student.cells:
                cell.source = badges.rewrite_colab(cell.source, args.repo, args.branch, args.folder)
        py, ipynb = write_pair(student, out / (path.stem + ".py"))
        print(f"{path.name}: {n} exercise{'s' * (n != 1)} -> {py} + {ipynb.name}")
    return 0


def _solutions(args: argparse.Namespace) -> int:
    out = Path(args.out)
    target = out if out.suffix == ".md" else out / "SOLUTIONS.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(answer_key(notebook_sources(args.src)), encoding="utf-8")
    print(f"answer key -> {target}")
    return 0


def _nbgrader(args: argparse.Namespace) -> int:
    import jupytext

    for path in notebook_sources(args.src):
        target = Path(args.out) / "source" / path.stem / (path.stem + ".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        nb = to_nbgrader(read_notebook(path))
        nb.metadata.pop("jupytext", None)  # nbgrader works on the .ipynb alone
        jupytext.write(nb, target, fmt="ipynb")
        print(f"{path.name} -> {target}")
    print(f"next: cd {args.out} && nbgrader generate_assignment <NN_name>  (one assignment per notebook)")
    return 0


def _child(mode: str, files: list[str], smoke: bool, timeout: float) -> dict:
    """Run one notebook in a fresh interpreter (cells share state; notebooks must not share it)."""
    cmd = [sys.executable, "-m", "cvaelib.teach", "_one", mode, *files] + ([] if smoke else ["--full"])
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"notebook": Path(files[0]).name, "ok": False, "passed": 0, "total": 0, "exercises": [],
                "problems": [f"did not finish within {timeout:.0f} s"]}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"notebook": Path(files[0]).name, "ok": False, "passed": 0, "total": 0, "exercises": [],
            "problems": [f"the runner crashed: {proc.stderr.strip()[-800:]}"]}


def _verify(args: argparse.Namespace) -> int:
    sources = notebook_sources(args.src)
    with tempfile.TemporaryDirectory() as tmp:
        student_dir = Path(args.student) if args.student else Path(tmp)
        if not args.student:
            for path in sources:
                write_pair(to_student(read_notebook(path)), student_dir / (path.stem + ".py"))
        failed = 0
        for path in sources:
            student = student_dir / (path.stem + ".py")
            if not student.exists():
                student = student.with_suffix(".ipynb")
            result = _child("verify", [str(student), str(path)], not args.full, args.timeout)
            print(f"{path.stem}: {'ok' if result['ok'] else 'FAILED'} ({len(result['exercises'])} exercises)")
            for e in result["exercises"]:
                print(f"  exercise {e['number']} ({e['title']}): student -> {e['student']}; "
                      f"solution -> {e.get('solution', '?')}")
            for p in result["problems"]:
                print(f"  problem: {p}")
            failed += not result["ok"]
    print(f"{len(sources) - failed}/{len(sources)} notebooks verified")
    return 1 if failed else 0


def _key_for(submission: Path, key: str | None) -> str | None:
    if not key:
        return None
    key_path = Path(key)
    if key_path.is_file():
        return str(key_path)
    stem = submission.stem
    for candidate in sorted(key_path.glob("[0-9][0-9]_*.py")) + sorted(key_path.glob("[0-9][0-9]_*.ipynb")):
        if stem.startswith(candidate.stem) or stem.startswith(candidate.stem[:2] + "_"):
            return str(candidate)
    raise KitError(f"no key notebook in {key} for {submission.name}; name submissions like the lesson (NN_...)")


def _grade(args: argparse.Namespace) -> int:
    submissions: list[Path] = []
    for s in args.submissions:
        p = Path(s)
        submissions += sorted(p.rglob("[0-9][0-9]_*.ipynb")) + sorted(p.rglob("[0-9][0-9]_*.py")) if p.is_dir() \
            else [p]
    if not submissions:
        raise KitError("no submissions found; pass notebooks or folders of notebooks")
    rows = []
    for sub in submissions:
        key = _key_for(sub, args.key)
        result = _child("grade", [str(sub)] + ([key] if key else []), not args.full, args.timeout)
        result["path"] = str(sub)
        rows.append(result)
        print(f"{sub}: {result['passed']}/{result['total']}")
        for e in result["exercises"]:
            mark = "pass" if e.get("passed") else "FAIL"
            print(f"  {mark} exercise {e['number']}{' (' + e['title'] + ')' if e.get('title') else ''}"
                  f"{'' if e.get('passed') else ': ' + e.get('message', '')}")
        for p in result["problems"]:
            print(f"  note: {p}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2), encoding="utf-8")
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["submission", "notebook", "exercise", "passed", "message"])
            for r in rows:
                for e in r["exercises"]:
                    w.writerow([r["path"], r["notebook"], e["number"], int(bool(e.get("passed"))),
                                e.get("message", "")])
    return 0


def _badges(args: argparse.Namespace) -> int:
    readme = Path(args.readme) if args.readme else None
    files = badges.files_to_update(Path(args.src), readme)
    if args.check:
        stale = badges.stale_files(files)
        for p in stale:
            print(f"stale: {p} (run python -m cvaelib.teach badges)")
        if not stale:
            print(f"{len(files)} files point at {config.REPO_URL} ({config.BRANCH})")
        return 1 if stale else 0
    for p in badges.rewrite_files(files):
        print(f"updated {p}")
    if args.table:
        print("| notebook | Colab | topic |\n|---|---|---|")
        for py in sorted(Path(args.src).glob("[0-9][0-9]_*.py")):
            print(badges.notebook_row(py))
    return 0


def _one(args: argparse.Namespace) -> int:
    from .runner import grade, verify

    if args.mode == "verify":
        report = verify(args.files[0], args.files[1], smoke=not args.full)
    else:
        report = grade(args.files[0], args.files[1] if len(args.files) > 1 else None, smoke=not args.full)
    print(json.dumps(report.as_dict()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cvaelib.teach", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True,
                          metavar="{student,solutions,nbgrader,verify,grade,badges}")
    s = sub.add_parser("student", help="write student notebooks (solutions replaced by NotImplementedError stubs)")
    s.add_argument("src", nargs="?", default=config.NOTEBOOK_DIR,
                   help=f"instructor notebook or folder (default: {config.NOTEBOOK_DIR}/)")
    s.add_argument("out", nargs="?", default=config.STUDENT_DIR,
                   help=f"output folder; gets NN_name.py + NN_name.ipynb pairs (default: {config.STUDENT_DIR}/, "
                        "the versions the Colab badges open)")
    s.add_argument("--repo", help="GitHub URL where you publish the student versions: their Colab badges open "
                                  "them there (default: the repository in cvaelib/teach/config.py)")
    s.add_argument("--branch", help="branch of --repo (default: config.BRANCH)")
    s.add_argument("--folder", help="folder of the notebooks inside --repo (default: config.STUDENT_DIR)")
    s.set_defaults(func=_student)
    s = sub.add_parser("solutions", help="write the answer key (Markdown)")
    s.add_argument("src")
    s.add_argument("out", help="output folder (gets SOLUTIONS.md) or a .md file")
    s.set_defaults(func=_solutions)
    s = sub.add_parser("nbgrader", help="write nbgrader source notebooks (solution/check cell metadata)")
    s.add_argument("src")
    s.add_argument("out", help="the nbgrader course folder")
    s.set_defaults(func=_nbgrader)
    for name, helptext in (("verify", "check that student versions stop only at exercises and solutions pass"),):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("src", nargs="?", default=config.NOTEBOOK_DIR)
        s.add_argument("--student", help="folder of already generated student notebooks (default: generate)")
        s.add_argument("--full", action="store_true", help="run at full size instead of SMOKE=1")
        s.add_argument("--timeout", type=float, default=900, help="seconds per notebook (default 900)")
        s.set_defaults(func=_verify)
    s = sub.add_parser("grade", help="run submissions and score one point per exercise whose checks pass")
    s.add_argument("submissions", nargs="+", help="submitted notebooks, or folders searched for NN_*.ipynb/.py")
    s.add_argument("--key", help="instructor notebook or folder: failed exercises are replaced by the solution "
                                 "so later exercises are graded fairly")
    s.add_argument("--csv", help="write one row per submission and exercise")
    s.add_argument("--json", help="write the full results")
    s.add_argument("--full", action="store_true", help="run at full size instead of SMOKE=1")
    s.add_argument("--timeout", type=float, default=900, help="seconds per submission (default 900)")
    s.set_defaults(func=_grade)
    s = sub.add_parser("badges", help="point Colab badges and install lines at the repository in config.py")
    s.add_argument("src", nargs="?", default=config.NOTEBOOK_DIR)
    s.add_argument("--readme", default="README.md")
    s.add_argument("--check", action="store_true", help="only report stale files (exit 1 if any)")
    s.add_argument("--table", action="store_true", help="also print README table rows with badges")
    s.set_defaults(func=_badges)
    s = sub.add_parser("_one", help=argparse.SUPPRESS)
    s.add_argument("mode", choices=("verify", "grade"))
    s.add_argument("files", nargs="+")
    s.add_argument("--full", action="store_true")
    s.set_defaults(func=_one)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

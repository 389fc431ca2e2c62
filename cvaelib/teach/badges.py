"""Keep every Colab badge and Colab install line pointing at the repository named in :mod:`cvaelib.teach.config`."""

from __future__ import annotations

import re
from pathlib import Path

from . import config

_COLAB_PREFIX = re.compile(r"https://colab\.research\.google\.com/github/[^/\s)\"']+/[^/\s)\"']+/blob/[^/\s)\"']+/"
                           r"(?:[^/\s)\"']+/)*?(?=[0-9][0-9]_[^/\s)\"']+\.ipynb)")
_INSTALL = re.compile(r"cvaelib @ git\+https://[^\s\"'\\]+?\.git(?:@[^\s\"'\\]+)?")
# a clone of the kit itself: `git clone URL` in prose/shell, or ["git", "clone", ..., "URL", ...] in a setup cell
_CLONE = re.compile(r"(git clone (?:-{1,2}[\w-]+(?: \d+)? )*|clone\\?[\"'],[^\]]*?[\"'])"
                    r"https://github\.com/[^\s\"'\\)]+?(?:\.git)?(?=[\s\"'\\)]|$)")


def rewrite_colab(text: str, repo: str | None = None, branch: str | None = None, folder: str | None = None) -> str:
    """``text`` with every Colab notebook link pointing at the configured repository (or ``repo``/``branch``/
    ``folder``)."""
    prefix = config.colab_url("X.ipynb", repo=repo, branch=branch, folder=folder)[: -len("X.ipynb")]
    return _COLAB_PREFIX.sub(prefix, text)


def rewrite_text(text: str) -> str:
    """``text`` with every Colab notebook link and kit install spec replaced by the configured ones."""
    text = rewrite_colab(text)
    text = _INSTALL.sub(config.install_spec(), text)
    return _CLONE.sub(lambda m: m.group(1) + config.REPO_URL.rstrip("/") + ".git", text)


def stale_files(paths: list[Path]) -> list[Path]:
    """The files among ``paths`` whose badges or install lines differ from the configuration."""
    stale = []
    for p in paths:
        if p.exists():
            text = p.read_text(encoding="utf-8")
            if rewrite_text(text) != text:
                stale.append(p)
    return stale


def rewrite_files(paths: list[Path]) -> list[Path]:
    """Rewrite stale files in place (a notebook's .py and .ipynb change identically, so the pair stays in sync)."""
    changed = []
    for p in stale_files(paths):
        p.write_text(rewrite_text(p.read_text(encoding="utf-8")), encoding="utf-8")
        changed.append(p)
    return changed


def files_to_update(notebooks: Path, readme: Path | None, student: Path | None = None) -> list[Path]:
    """The lesson pairs in ``notebooks`` (and in ``student``, default: its sibling ``config.STUDENT_DIR``) and the
    README: every file that carries a badge or an install line."""
    student = notebooks.parent / config.STUDENT_DIR if student is None else student
    files = []
    for folder in dict.fromkeys([notebooks, student]):
        files += sorted(folder.glob("[0-9][0-9]_*.py")) + sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    return files + ([readme] if readme is not None and readme.exists() else [])


def notebook_row(py: Path) -> str:
    """A README table row: link, Colab badge, the notebook's title."""
    from .exercises import read_notebook

    nb = read_notebook(py)
    title = next((c.source.split("\n")[0].lstrip("# ").strip() for c in nb.cells if c.cell_type == "markdown"),
                 py.stem)
    title = title.split("·", 1)[-1].strip()
    return f"| [{py.stem}]({config.STUDENT_DIR}/{py.stem}.ipynb) | {config.badge(py.stem + '.ipynb')} | {title} |"

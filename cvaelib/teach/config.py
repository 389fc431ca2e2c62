"""Where the course lives: the one place to change when you fork the kit.

Every "Open in Colab" badge (README and the top of each notebook) and every notebook's Colab install line are
derived from these values; after editing them run ``python -m cvaelib.teach badges`` to rewrite all of them, and
``python -m cvaelib.teach badges --check`` (run by the tests) to see that nothing is stale.
"""

from __future__ import annotations

#: the public GitHub repository that holds the notebooks (no trailing slash, no ``.git``)
REPO_URL = "https://github.com/cvae-course-kit/cvae-course-kit"
#: the branch Colab opens the notebooks from
BRANCH = "main"
#: the notebooks' folder inside the repository
NOTEBOOK_DIR = "notebooks"

BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def repo_path() -> str:
    """``owner/name`` of :data:`REPO_URL`."""
    return REPO_URL.rstrip("/").split("github.com/", 1)[-1].removesuffix(".git")


def colab_url(notebook: str, repo: str | None = None, branch: str | None = None, folder: str | None = None) -> str:
    """Colab link that opens ``notebook`` (a file name such as ``02_vae.ipynb``) from the configured repository
    (or from ``repo``/``branch``/``folder``, e.g. where an instructor publishes the student versions)."""
    name = notebook.rsplit("/", 1)[-1]
    if name.endswith(".py"):
        name = name[:-3] + ".ipynb"
    path = repo_path() if repo is None else repo.rstrip("/").split("github.com/", 1)[-1].removesuffix(".git")
    folder = NOTEBOOK_DIR if folder is None else folder.strip("/")
    return (f"https://colab.research.google.com/github/{path}/blob/{BRANCH if branch is None else branch}/"
            + (f"{folder}/" if folder else "") + name)


def badge(notebook: str, **where: str | None) -> str:
    """The Markdown "Open in Colab" badge for ``notebook`` (``where``: see :func:`colab_url`)."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook, **where)})"


def install_spec() -> str:
    """The pip requirement a notebook's setup cell installs on Colab (torch is never reinstalled)."""
    return f"cvaelib @ git+{REPO_URL.rstrip('/')}.git"

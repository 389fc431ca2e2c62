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


def colab_url(notebook: str) -> str:
    """Colab link that opens ``notebook`` (a file name such as ``02_vae.ipynb``) from the configured repository."""
    name = notebook.rsplit("/", 1)[-1]
    if name.endswith(".py"):
        name = name[:-3] + ".ipynb"
    return f"https://colab.research.google.com/github/{repo_path()}/blob/{BRANCH}/{NOTEBOOK_DIR}/{name}"


def badge(notebook: str) -> str:
    """The Markdown "Open in Colab" badge for ``notebook``."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(notebook)})"


def install_spec() -> str:
    """The pip requirement a notebook's setup cell installs on Colab (torch is never reinstalled)."""
    return f"cvaelib @ git+{REPO_URL.rstrip('/')}.git"

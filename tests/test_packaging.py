"""The three install routes (pip/pyproject, Colab's requirements.txt, conda's environment.yml) ask for the same
packages, and never pin torch: Colab's preinstalled torch must be kept."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: conda-forge names of PyPI packages where they differ
CONDA_NAMES = {"torch": "pytorch", "opentsne": "opentsne"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


@pytest.fixture(scope="module")
def runtime() -> list[str]:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
    return project["dependencies"]


def test_requirements_use_lower_bounds_only(runtime):
    lines = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    for line in lines:
        if line.startswith("git+"):
            continue
        assert not re.search(r"==|<|~=|!=", line), f"requirements.txt must not pin or cap: {line}"
        assert ">=" in line, f"give a lower bound: {line}"
    assert "git+https://github.com/openai/CLIP.git" in lines  # Colab's CLIP source
    assert {_name(r) for r in runtime} <= {_name(line) for line in lines if not line.startswith("git+")}


def test_conda_environment_has_every_runtime_dependency(runtime):
    yaml = pytest.importorskip("yaml")
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    conda = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    pip = {_name(d) for d in next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))}
    for requirement in runtime:
        name = _name(requirement)
        assert CONDA_NAMES.get(name, name) in conda | pip, f"environment.yml lacks {name}"
    assert not any(re.search(r"pytorch\s*(==|<)", d) for d in env["dependencies"] if isinstance(d, str))

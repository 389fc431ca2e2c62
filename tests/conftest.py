"""Shared fixtures: where the real data lives, and cached judges (classifiers) trained once per machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _data_root() -> Path:
    return Path(os.environ.get("CVAELIB_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_root() -> Path:
    """Folder holding MNIST/, FashionMNIST/ and coco_sample/ (``$CVAELIB_DATA`` or ``../shared/data``)."""
    root = _data_root()
    if not (root / "MNIST" / "raw").is_dir():
        pytest.fail(f"real data not found at {root}; set CVAELIB_DATA to the folder holding MNIST/ and FashionMNIST/")
    return root


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests run two at a time (pytest -n 2) on 2 cores: more threads than cores makes OpenMP spin-wait and
    slows training by 10x or more, so each test process uses one intra-op thread."""
    torch.set_num_threads(max(1, int(os.environ.get("CVAELIB_TEST_THREADS", "1"))))
    yield

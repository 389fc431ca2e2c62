"""Notebook conveniences: one ``setup()`` call per lesson and a way to show library source inline."""

from __future__ import annotations

import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .device import pick_device, seed_everything

if TYPE_CHECKING:
    from .classifier import SmallCNN
    from .clip.tiny import TinyClipEncoder
    from .data import ImageData


@dataclass
class NotebookEnv:
    """What a lesson needs to know about where it runs."""

    device: torch.device
    smoke: bool
    in_colab: bool
    data_root: Path
    work_dir: Path
    download: bool

    def judge(self, dataset: str, train: "ImageData | None" = None) -> "SmallCNN":
        """The independent classifier that judges a lesson's samples ("is this really a sneaker?").

        The kit's judge for ``dataset`` (:func:`cvaelib.classifier.get_classifier`: trained once on the full
        training split, about a minute on a CPU, then loaded from the cache in a second).  In SMOKE mode a cached
        judge is loaded when there is one; otherwise, when the lesson passes its small ``train`` subset, a one-epoch
        classifier on that subset is trained in seconds - a rough judge, which the lesson says next to its numbers.
        """
        from .classifier import get_classifier, train_classifier

        if self.smoke and train is not None:
            cached = get_classifier(dataset, self.data_root, build=False)
            if cached is not None:
                return cached
            print("SMOKE: no cached judge yet, so a one-epoch judge on the small subset decides - a rough one")
            return train_classifier(train, epochs=1)
        return get_classifier(dataset, self.data_root)

    def tiny_clip(self, dataset: str, train: "ImageData | None" = None) -> "TinyClipEncoder":
        """The lessons' TinyCLIP for ``dataset``: the kit's standard one (``STANDARD_TINY_CLIP``: 300 steps, trained
        once and cached, like the judge).  In SMOKE mode the cached one is loaded when there is one; otherwise, when
        the lesson passes its small ``train`` subset, a 30-step stand-in is trained on it - numbers near chance."""
        from .clip.tiny import STANDARD_TINY_CLIP, get_tiny_clip, train_tiny_clip

        if self.smoke and train is not None:
            cached = get_tiny_clip(dataset, self.data_root, **STANDARD_TINY_CLIP, build=False)
            if cached is not None:
                return cached
            print("SMOKE: no cached TinyCLIP, so a 30-step one on the small subset stands in - numbers near chance")
            return train_tiny_clip(dataset, data=train, seconds=30, max_steps=30)
        return get_tiny_clip(dataset, self.data_root, **STANDARD_TINY_CLIP)

    def checkpoint(self, name: str) -> Path:
        """Where a lesson keeps its checkpoint ``name``: ``work_dir/name.pt``, or ``name_smoke.pt`` in SMOKE mode,
        so a full run never resumes a tiny SMOKE model and a SMOKE run never overwrites a full one."""
        return self.work_dir / f"{name}{'_smoke' if self.smoke else ''}.pt"

    def smoke_banner(self, full_run: str) -> None:
        """In SMOKE mode, say plainly that the numbers that follow come from a tiny subset and mean little, and
        what a full run gives (``full_run``: measured numbers, with the machine they were measured on)."""
        if self.smoke:
            print("=" * 100 + "\nSMOKE run: a tiny subset and a few training steps, so the numbers below show that the "
                  "code runs, not what the model can do.\nA full run (SMOKE unset) gives: " + full_run + "\n" + "=" * 100)


def _find_data_root() -> Path:
    if os.environ.get("CVAELIB_DATA"):
        return Path(os.environ["CVAELIB_DATA"])
    for candidate in (Path("../shared/data"), Path("../../shared/data"), Path("shared/data")):
        if (candidate / "MNIST").is_dir():
            return candidate.resolve()
    return Path("data")


def setup(seed: int = 0, drive: bool = False, quiet: bool = False) -> NotebookEnv:
    """Seed everything, pick the device and report it, decide SMOKE mode and where data/checkpoints live.

    Args:
        seed: the one seed for every figure in the lesson.
        drive: on Colab, mount Google Drive and keep checkpoints in ``MyDrive/cvae-course-kit`` so a
            disconnected runtime loses nothing (asks for permission, so it is off by default).
        quiet: print nothing.
    """
    in_colab = "google.colab" in sys.modules
    smoke = os.environ.get("SMOKE", "0").lower() not in ("", "0", "false", "no")
    seed_everything(seed)
    device = pick_device()
    work = Path(os.environ.get("CVAELIB_WORK", "cvae-work"))
    if in_colab and drive:
        from google.colab import drive as gdrive  # type: ignore[import-not-found]

        gdrive.mount("/content/drive")
        work = Path("/content/drive/MyDrive/cvae-course-kit")
    work.mkdir(parents=True, exist_ok=True)
    env = NotebookEnv(device, smoke, in_colab, _find_data_root(), work, download=not (Path("..") / "shared").is_dir())
    if not quiet:
        if device.type == "cuda":
            where = f"GPU: {torch.cuda.get_device_name(0)}"
        else:
            where = f"CPU ({torch.get_num_threads()} threads) - fine for these lessons, a GPU is faster"
        print(f"device: {where} | SMOKE={smoke} | data: {env.data_root} | checkpoints: {work}")
    return env


def show_source(obj: object) -> None:
    """Display the source of a library class or function (syntax-highlighted in Jupyter, plain elsewhere)."""
    source = inspect.getsource(obj)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(f"```python\n{source}```"))
            return
    except ImportError:
        pass
    print(source)


def show(fig) -> None:
    """Display a figure in a notebook; in a script (CI) just close it."""
    import matplotlib.pyplot as plt

    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(fig)
    except ImportError:
        pass
    plt.close(fig)

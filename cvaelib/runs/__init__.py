"""The run functions behind ``python -m cvaelib``: one per command, typed keyword arguments, no argparse.

``cvaelib.cli`` parses the command line and calls these; notebooks and scripts can call them directly::

    from cvaelib.runs import train_run, generate_run
    metrics = train_run("attr-cvae", "celeba:prepared/celeba", "runs/faces", epochs=1)
    generate_run("runs/faces", "smiling.png", attributes="Smiling,-Male", n=8, npy="smiling.npy")

A misspelt keyword is a ``TypeError``, never silently ignored.
"""

from .generate import generate_run, reconstruct_run
from .inspect import evaluate_run, fetch_run
from .train import TrainRun, train_model, train_run

__all__ = ["TrainRun", "evaluate_run", "fetch_run", "generate_run", "reconstruct_run",
           "train_model", "train_run"]

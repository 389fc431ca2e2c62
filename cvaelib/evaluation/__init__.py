"""Evaluate trained checkpoints: every metric that applies to a model, and a table of them.

(Was ``cvaelib.evaluate``; that name is the library's loss-term evaluation function, :func:`cvaelib.evaluate`.)
"""

from .core import evaluate_checkpoint, evaluate_model, load_eval_data
from .reference import JUDGED
from .table import format_table

__all__ = ["JUDGED", "evaluate_checkpoint", "evaluate_model", "format_table", "load_eval_data"]

"""Teaching tools: exercise checks for the notebooks, and student / answer-key / nbgrader versions of them.

In a notebook::

    from cvaelib.teach import check_kl
    check_kl(my_kl)          # prints "correct: ..." or raises ExerciseError("what is wrong ... Hint: ...")

On the command line (``python -m cvaelib.teach --help``): ``student``, ``solutions``, ``nbgrader``, ``verify``,
``grade``, ``badges``.
"""

from . import checks
from .checks import *  # noqa: F403 - every check, e.g. `from cvaelib.teach import check_kl`

__all__ = list(checks.__all__)

"""Check functions for the notebooks' exercises: immediate, specific feedback for students.

One module per part of the course (``basics`` for lessons 01-02, ``conditional`` for 03-04, ``clip`` for 05,
``faces`` for 06, ``measure`` for 07, ``guided`` for 08, ``vq`` for 09); shared helpers live in ``_core``.  Each
``check_*`` takes what the student wrote (a function or a value), runs it on small inputs and compares it with the
library's own implementation, so there is one reference for every idea.  A wrong answer raises
:class:`ExerciseError` with a one-line message that says *what* is wrong and gives a *hint* that diagnoses without
handing over the answer.

A stub that still raises ``NotImplementedError("Exercise N: ...")`` is passed through unchanged, so an unfinished
exercise reads as "not done yet", not as a wrong answer.  A right answer prints one line starting with ``correct:``.
"""

from ._core import *  # noqa: F403
from .basics import *  # noqa: F403
from .conditional import *  # noqa: F403
from .clip import *  # noqa: F403
from .faces import *  # noqa: F403
from .measure import *  # noqa: F403
from .guided import *  # noqa: F403
from .vq import *  # noqa: F403
from . import _core, basics, clip, conditional, faces, guided, measure, vq

__all__ = [*_core.__all__, *basics.__all__, *conditional.__all__, *clip.__all__, *faces.__all__, *measure.__all__,
           *guided.__all__, *vq.__all__]

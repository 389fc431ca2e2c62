"""Check functions for the notebooks' exercises: immediate, specific feedback for students.

One module per part of the course (``basics`` for lessons 01-02, ``conditional`` for 03-04, ``clip`` for 05-06,
``measure`` for 07, ``guided`` for 08, ``vq`` for 09); shared helpers live in ``_core``.  Each ``check_*`` takes what
the student wrote (a function or a value), runs it on small inputs and compares it with the library's own
implementation, so there is one reference for every idea.  A wrong answer raises :class:`ExerciseError` with a
one-line message that says *what* is wrong and gives a *hint* that diagnoses without handing over the answer.

A stub that still raises ``NotImplementedError("Exercise N: ...")`` is passed through unchanged, so an unfinished
exercise reads as "not done yet", not as a wrong answer.  A right answer prints one line starting with ``correct:``.
"""

from ._core import ExerciseError, check_value
from .basics import check_kl, check_recon_loss, check_reconstruct, check_reparameterize
from .clip import check_condition_mix, check_perturb_condition, check_similarity_matrix, check_toggle
from .conditional import (check_class_samples, check_condition_concat, check_midpoint_norms, check_prompt_rule,
                          check_slerp)
from .guided import check_guidance_loss, check_guided_result
from .measure import check_clip_score, check_frechet_distance
from .vq import check_nearest_code, check_perplexity

__all__ = ["ExerciseError", "check_class_samples", "check_clip_score", "check_condition_concat",
           "check_condition_mix", "check_frechet_distance", "check_guidance_loss", "check_guided_result", "check_kl",
           "check_midpoint_norms", "check_nearest_code", "check_perplexity", "check_perturb_condition",
           "check_prompt_rule", "check_recon_loss", "check_reconstruct", "check_reparameterize",
           "check_similarity_matrix", "check_slerp", "check_toggle", "check_value"]

"""Teaching tools: exercise checks for the notebooks, and student / answer-key / nbgrader versions of them.

In a notebook::

    from cvaelib.teach import check_kl
    check_kl(my_kl)          # prints "correct: ..." or raises ExerciseError("what is wrong ... Hint: ...")

On the command line (``python -m cvaelib.teach --help``): ``student``, ``solutions``, ``nbgrader``, ``verify``,
``grade``, ``badges``.
"""

from .checks import (ExerciseError, check_class_samples, check_clip_score, check_condition_concat,
                     check_condition_mix, check_frechet_distance, check_guidance_loss, check_guided_result, check_kl,
                     check_midpoint_norms, check_nearest_code, check_perplexity, check_perturb_condition,
                     check_prompt_rule, check_recon_loss, check_reconstruct, check_reparameterize,
                     check_similarity_matrix, check_slerp, check_toggle, check_value)

__all__ = ["ExerciseError", "check_class_samples", "check_clip_score", "check_condition_concat",
           "check_condition_mix", "check_frechet_distance", "check_guidance_loss", "check_guided_result", "check_kl",
           "check_midpoint_norms", "check_nearest_code", "check_perplexity", "check_perturb_condition",
           "check_prompt_rule", "check_recon_loss", "check_reconstruct", "check_reparameterize",
           "check_similarity_matrix", "check_slerp", "check_toggle", "check_value"]

"""cvaelib: the library behind cvae-course-kit.

Notebooks import what they teach from here::

    from cvaelib import load_dataset, ConditionalVAE, fit, show_samples

Nothing heavy (CLIP, matplotlib, scikit-learn's t-SNE, browsers) is imported at ``import cvaelib`` time.
"""

import sys as _sys

from .checkpoint import load_model, save_checkpoint
from .data import ImageData, TensorBatches, class_names, load_dataset, subset, train_val_split
from .device import pick_device, seed_everything
from .errors import CheckpointError, DataError, KitError, PromptError
from .generate import generate_images, reconstruct_images, resolve_label
from .models import ConditionalVAE, ConvAutoencoder, ConvVAE, MLPVAE, build_model
from .train import History, evaluate, fit
from .viz import plot_history, plot_reconstructions, save_grid, show_grid, show_samples

# ``cvaelib.evaluate`` is the function above (mean loss terms of a model on data).  The checkpoint evaluation lives in
# ``cvaelib.evaluation``; registering the function under the module name keeps ``import cvaelib.evaluate`` from
# replacing the attribute with a module (it used to be both, and whichever was imported last won).
_sys.modules[__name__ + ".evaluate"] = evaluate  # type: ignore[assignment]

__version__ = "0.1.0"

__all__ = ["CheckpointError", "ConditionalVAE", "ConvAutoencoder", "ConvVAE", "DataError", "History", "ImageData",
           "KitError", "MLPVAE", "PromptError", "TensorBatches", "build_model", "class_names", "evaluate", "fit",
           "generate_images", "load_dataset", "load_model", "pick_device", "plot_history", "plot_reconstructions",
           "reconstruct_images", "resolve_label", "save_checkpoint", "save_grid", "seed_everything", "show_grid",
           "show_samples", "subset", "train_val_split"]

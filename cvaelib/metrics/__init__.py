"""Metrics for reconstructions and samples: MSE/PSNR/SSIM, FID (Inception or the kit's classifier), conditional
accuracy and CLIP score.  :func:`cvaelib.evaluation.evaluate_checkpoint` picks the ones that apply to a model."""

from .conditional import balanced_labels, clip_score, conditional_accuracy, label_swap, sample_per_class
from .fid import (MIN_FID_SAMPLES, FIDResult, classifier_features, classifier_fid, feature_statistics,
                  fid_from_features, frechet_distance, inception_features, inception_fid, inception_weights_path,
                  load_inception)
from .image import mse, psnr, ssim, ssim_window

__all__ = ["FIDResult", "MIN_FID_SAMPLES", "balanced_labels", "classifier_features", "classifier_fid", "clip_score",
           "conditional_accuracy", "feature_statistics", "fid_from_features", "frechet_distance",
           "inception_features", "inception_fid", "inception_weights_path", "label_swap", "load_inception", "mse",
           "psnr",
           "sample_per_class", "ssim", "ssim_window"]

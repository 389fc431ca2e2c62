"""Fréchet distances between two image sets: Inception FID and the kit's offline "classifier FID".

FID (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium") fits a
Gaussian to the features of each set and measures the Fréchet distance between the two Gaussians
``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``.  Lower is better; 0 means the same feature statistics.
The formula is pytorch-fid's own ``calculate_frechet_distance`` (the reference PyTorch port), so kit numbers and
pytorch-fid numbers agree.

Two feature spaces:

* **Inception FID** (:func:`inception_fid`): pytorch-fid's InceptionV3 pool features (2,048-d), the number papers
  report.  Its weights (``pt_inception-2015-12-05-6726825d.pth``, ~92 MB) download once on first use (fine on
  Colab); offline, the kit raises one clear error instead of a network traceback.
* **Classifier FID** (:func:`classifier_fid`): the 128-d penultimate features of the kit's own small CNN for
  MNIST / Fashion-MNIST / digits (:func:`cvaelib.classifier.get_classifier`, trained once and cached).  Works
  offline and on a CPU in seconds.  Its values are on another scale than Inception FID: compare classifier-FIDs
  only with classifier-FIDs of the same dataset and sample count.

FID is biased upward at small sample counts, and with fewer samples than feature dimensions the covariance is
singular; every result therefore carries its sample counts, and fewer than :data:`MIN_FID_SAMPLES` per set
triggers a warning.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import KitError

__all__ = ["FIDResult", "MIN_FID_SAMPLES", "INCEPTION_WEIGHTS", "classifier_features", "classifier_fid",
           "feature_statistics", "fid_from_features", "frechet_distance", "inception_features", "inception_fid",
           "inception_weights_path", "load_inception"]

#: below this many samples per set FID is noticeably biased upward (and Inception's 2,048-d covariance is singular)
MIN_FID_SAMPLES = 2048
#: file name pytorch-fid downloads into ``torch.hub.get_dir()/checkpoints``
INCEPTION_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"


@dataclass
class FIDResult:
    """One FID value with what it was computed from (so a table can show the sample counts)."""

    value: float
    n_a: int
    n_b: int
    features: str  # "inception" or "classifier:<dataset>"
    dims: int

    @property
    def reliable(self) -> bool:
        """Both sets have at least :data:`MIN_FID_SAMPLES` samples."""
        return min(self.n_a, self.n_b) >= MIN_FID_SAMPLES

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        flag = "" if self.reliable else f", below {MIN_FID_SAMPLES}: biased upward"
        return f"{self.value:.3f} ({self.features}, n={self.n_a}/{self.n_b}{flag})"

    def to_dict(self) -> dict:
        return {**asdict(self), "reliable": self.reliable}


def _pytorch_fid():
    try:
        from pytorch_fid import fid_score, inception
    except ImportError:
        raise KitError("FID needs the pytorch-fid package; install it with: pip install pytorch-fid") from None
    return fid_score, inception


def feature_statistics(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64, unbiased like pytorch-fid's ``np.cov``) of ``[N, D]`` features."""
    f = features.detach().double().cpu().numpy() if isinstance(features, Tensor) else np.asarray(features, np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise KitError(f"FID needs at least 2 feature rows [N, D], got shape {f.shape}; generate more samples")
    if not np.isfinite(f).all():
        raise KitError("FID features contain NaN/inf; the images fed in are not finite (check the model output)")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(features_a: Tensor | np.ndarray, features_b: Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two ``[N, D]`` feature sets (pytorch-fid's formula)."""
    fid_score, _ = _pytorch_fid()
    mu_a, s_a = feature_statistics(features_a)
    mu_b, s_b = feature_statistics(features_b)
    if mu_a.shape != mu_b.shape:
        raise KitError(f"FID feature sets differ in width ({mu_a.shape[0]} vs {mu_b.shape[0]}); "
                       f"extract both with the same network")
    try:
        with warnings.catch_warnings():
            # scipy warns "matrix is singular" whenever N < D or the sets coincide; the result is still exact
            # enough (identical sets give 0), and the real failure (a large imaginary part) is handled below
            warnings.simplefilter("ignore")
            value = fid_score.calculate_frechet_distance(mu_a, s_a, mu_b, s_b)
    except ValueError:
        # a large imaginary part of the matrix square root: singular covariances from too few samples; a small ridge
        # makes the product well-conditioned (the same remedy pytorch-fid applies to non-finite results)
        ridge = np.eye(len(mu_a)) * 1e-6 * max(np.trace(s_a), np.trace(s_b), 1e-12) / len(mu_a)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                value = fid_score.calculate_frechet_distance(mu_a, s_a + ridge, mu_b, s_b + ridge)
        except ValueError:
            raise KitError(f"FID is numerically undefined with {len(np.atleast_1d(mu_a))}-d features from "
                           f"so few samples; use more samples (>= {MIN_FID_SAMPLES} per set)") from None
    # tiny negative values are rounding error of the square root; FID is a squared distance
    return max(float(value), 0.0)


def fid_from_features(features_a: Tensor, features_b: Tensor, features: str = "custom",
                      warn: bool = True) -> FIDResult:
    """FID between two feature sets, wrapped with the sample counts; warns below :data:`MIN_FID_SAMPLES`."""
    n_a, n_b = int(features_a.shape[0]), int(features_b.shape[0])
    if warn and min(n_a, n_b) < MIN_FID_SAMPLES:
        warnings.warn(f"FID from {n_a} vs {n_b} samples ({features} features) is biased upward; use >= "
                      f"{MIN_FID_SAMPLES} per set for numbers to publish, and compare only at equal sample counts",
                      UserWarning, stacklevel=3)
    return FIDResult(frechet_distance(features_a, features_b), n_a, n_b, features, int(features_a.shape[1]))


# --- feature extractors ---------------------------------------------------------------------------------------------
def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _batched(fn, images: Tensor, batch_size: int, device: torch.device) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise KitError(f"FID expects images as a tensor [N, C, H, W] in [0, 1], got "
                       f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}")
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    out = [fn(images[i:i + batch_size].to(device, non_blocking=True).float()).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def inception_weights_path() -> Path:
    """Where pytorch-fid keeps (or will download) its Inception weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS


_INCEPTION: dict[str, nn.Module] = {}


def load_inception(device: str | torch.device | None = None, allow_download: bool = True) -> nn.Module:
    """pytorch-fid's FID InceptionV3 (pool3, 2,048-d), in eval mode; cached per device for the session.

    Raises:
        KitError: weights are not cached and cannot be downloaded (offline); the message names the file and the
            offline alternative.
    """
    from ..device import pick_device

    device = pick_device(device)
    if str(device) in _INCEPTION:
        return _INCEPTION[str(device)]
    _, inception = _pytorch_fid()
    path = inception_weights_path()
    offline = os.environ.get("CVAELIB_OFFLINE", "") not in ("", "0")
    if not path.is_file() and (not allow_download or offline):
        raise KitError(f"Inception FID needs pytorch-fid's weights {path.name} (~92 MB), not found in "
                       f"{path.parent}; run once with internet (e.g. on Colab) or copy the file there, "
                       f"or use the offline classifier FID")
    try:
        net = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
    except Exception as exc:  # urllib, http, ssl and socket errors all mean the same thing here
        raise KitError(f"could not download pytorch-fid's Inception weights {path.name} to {path.parent} "
                       f"({type(exc).__name__}: {exc}); connect to the internet (or copy the file there by hand), "
                       f"or use the offline classifier FID") from None
    net = net.to(device).eval()
    _INCEPTION[str(device)] = net
    return net


def inception_features(images: Tensor, batch_size: int = 100, device: str | torch.device | None = None,
                       allow_download: bool = True) -> Tensor:
    """2,048-d Inception pool features of float images in [0, 1] (grey images are repeated to RGB)."""
    net = load_inception(device, allow_download)

    def run(x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise KitError(f"Inception FID needs 1- or 3-channel images, got {x.shape[1]} channels")
        return net(x)[0].flatten(1)  # pytorch-fid resizes to 299x299 and maps [0, 1] -> [-1, 1] itself

    return _batched(run, images, batch_size, _device_of(net))


def inception_fid(images_a: Tensor, images_b: Tensor, batch_size: int = 100, device: str | torch.device | None = None,
                  allow_download: bool = True, warn: bool = True) -> FIDResult:
    """Standard FID between two image sets (float ``[N, C, H, W]`` in [0, 1])."""
    fa = inception_features(images_a, batch_size, device, allow_download)
    fb = inception_features(images_b, batch_size, device, allow_download)
    return fid_from_features(fa, fb, "inception", warn)


def classifier_features(images: Tensor, classifier: nn.Module | None = None, dataset: str | None = None,
                        root: str | os.PathLike | None = None, batch_size: int = 1000) -> Tensor:
    """128-d penultimate features of the kit's classifier (``SmallCNN.embed``) for images in [0, 1].

    Pass a trained ``classifier``, or a ``dataset`` name (and data ``root``) to use the cached one.
    """
    if classifier is None:
        if dataset is None:
            raise KitError("classifier FID needs a classifier or a dataset name (mnist, fashion-mnist, digits)")
        from ..classifier import get_classifier

        classifier = get_classifier(dataset, root)
    classifier.eval()
    embed = getattr(classifier, "embed", None)
    if embed is None:
        raise KitError(f"{type(classifier).__name__} has no .embed(); use cvaelib.classifier.SmallCNN")
    return _batched(embed, images, batch_size, _device_of(classifier))


def classifier_fid(images_a: Tensor, images_b: Tensor, classifier: nn.Module | None = None,
                   dataset: str | None = None, root: str | os.PathLike | None = None, warn: bool = True) -> FIDResult:
    """FID in the feature space of the kit's own classifier: offline, CPU-fast, MNIST / Fashion / digits only."""
    fa = classifier_features(images_a, classifier, dataset, root)
    fb = classifier_features(images_b, classifier, dataset, root)
    name = dataset or getattr(classifier, "dataset_name", "") or "custom"
    return fid_from_features(fa, fb, f"classifier:{name}", warn)

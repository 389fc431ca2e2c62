"""Pixel-level reconstruction metrics: MSE, PSNR and SSIM for float images in [0, 1].

SSIM follows Wang et al. (2004), "Image Quality Assessment: From Error Visibility to Structural Similarity", with the
usual settings: an 11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, population (not sample) statistics,
and the mean taken over the "valid" part of the map (no padded borders).  With these settings it equals
scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1)`` (the tests check this on real MNIST images), but runs batched in torch, so on a GPU it costs nothing.

Images smaller than the window (scikit-learn's 8x8 ``digits``) use the largest odd window that fits, with the same
sigma; :func:`ssim_window` says which size is used, so a table can report it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import KitError

__all__ = ["mse", "psnr", "ssim", "ssim_window"]


def _pair(a: Tensor, b: Tensor, what: str) -> tuple[Tensor, Tensor]:
    """Check and bring two image batches to float ``[N, C, H, W]`` on one device."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise KitError(f"{what} takes two torch tensors of images in [0, 1]; convert arrays with torch.as_tensor")
    if a.shape != b.shape:
        raise KitError(f"{what}: image batches differ in shape ({tuple(a.shape)} vs {tuple(b.shape)}); "
                       f"compare each image with its own reconstruction")
    if a.dim() == 2:
        a, b = a[None, None], b[None, None]
    elif a.dim() == 3:
        a, b = a[None], b[None]
    if a.dim() != 4 or a.numel() == 0:
        raise KitError(f"{what} expects images [N, C, H, W] (or [C, H, W]), got shape {tuple(a.shape)}")
    if not a.is_floating_point() or not b.is_floating_point():
        raise KitError(f"{what} expects float images in [0, 1], got {a.dtype}/{b.dtype}; "
                       f"use ImageData.float_images() or x.float() / 255")
    # uint8-range data passed as float is the classic slip; it would make every number meaningless
    if float(a.max()) > 1.5 or float(b.max()) > 1.5:
        raise KitError(f"{what} expects images in [0, 1] but got values up to "
                       f"{max(float(a.max()), float(b.max())):.0f}; divide by 255 first")
    return a.float(), b.to(a.device).float()


def _reduce(per_image: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return per_image.mean()
    if reduction == "none":
        return per_image
    raise KitError(f"unknown reduction {reduction!r}; use 'mean' or 'none'")


def mse(a: Tensor, b: Tensor, reduction: str = "mean") -> Tensor:
    """Mean squared error per pixel (images in [0, 1]); ``reduction="none"`` gives one value per image."""
    a, b = _pair(a, b, "mse")
    return _reduce((a - b).pow(2).flatten(1).mean(1), reduction)


def psnr(a: Tensor, b: Tensor, data_range: float = 1.0, reduction: str = "mean") -> Tensor:
    """Peak signal-to-noise ratio in dB, per image then averaged (identical images give ``inf``)."""
    per_image = mse(a, b, reduction="none")
    return _reduce(10.0 * torch.log10(data_range ** 2 / per_image), reduction)


def ssim_window(height: int, width: int, size: int = 11) -> int:
    """Window size used for ``height x width`` images: ``size``, or the largest odd size that fits."""
    fit = min(size, height, width)
    fit -= 1 - fit % 2  # largest odd number <= fit
    if fit < 3:
        raise KitError(f"SSIM needs images of at least 3x3 pixels, got {height}x{width}")
    return fit


def _gaussian(size: int, sigma: float, device: torch.device) -> Tensor:
    # the same taps as scipy.ndimage.gaussian_filter(truncate=3.5) that scikit-image uses: exp(-x^2 / 2s^2), normalised
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-x.pow(2) / (2 * sigma ** 2))
    return (g / g.sum()).float()


def ssim(a: Tensor, b: Tensor, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5,
         reduction: str = "mean", k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Structural similarity of paired images (1 = identical); averaged over the valid map and the channels.

    Args:
        a, b: float images ``[N, C, H, W]`` in [0, 1] (``[C, H, W]`` is taken as one image).
        data_range: the value range of the pixels (1 for the kit's images).
        window_size, sigma: the Gaussian window (11x11, sigma 1.5 as in Wang et al. 2004).
        reduction: ``"mean"`` over images, or ``"none"`` for one value per image.
    """
    a, b = _pair(a, b, "ssim")
    n, c, h, w = a.shape
    size = ssim_window(h, w, window_size)
    g = _gaussian(size, sigma, a.device)
    # separable filter: a [1, k] pass then a [k, 1] pass, one group per channel; "valid" output like skimage's crop
    gx = g.view(1, 1, 1, size).repeat(c, 1, 1, 1)
    gy = g.view(1, 1, size, 1).repeat(c, 1, 1, 1)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(t, gx, groups=c), gy, groups=c)

    # one conv over the five stacked maps is faster than five convs
    stacked = blur(torch.cat([a, b, a * a, b * b, a * b], dim=0))
    mu_a, mu_b, aa, bb, ab = stacked.split(n, dim=0)
    var_a = aa - mu_a.pow(2)
    var_b = bb - mu_b.pow(2)
    cov = ab - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a.pow(2) + mu_b.pow(2) + c1) * (var_a + var_b + c2))
    return _reduce(ssim_map.flatten(1).mean(1), reduction)


"""Perceptual loss: compare images by the features a VGG19 network sees, not only pixel by pixel.

A pixel loss (BCE, MSE) is happy with a blurry average of all plausible faces; differences between the activations
of an ImageNet-trained VGG19 penalise lost edges and textures, which makes VAE reconstructions visibly sharper
(Johnson et al. 2016, "Perceptual Losses for Real-Time Style Transfer and Super-Resolution",
https://arxiv.org/abs/1603.08155; Hou et al. 2017, "Deep Feature Consistent Variational Autoencoder",
https://arxiv.org/abs/1610.00291).  The CelebA project among the kit's sources trained its residual VAE with
BCE + 0.01 KL + a VGG19 feature loss.

The ImageNet weights (548 MB for all of VGG19, ~80 MB are the convolutions used here) are an optional download:

* ``weights="imagenet"`` loads torchvision's ``VGG19_Weights.IMAGENET1K_V1`` from the torch hub cache, downloading
  it when allowed (Colab).  Offline without the file it raises one :class:`~cvaelib.errors.KitError` saying where to
  put the file.
* ``weights=None`` builds the same network with random weights: no download, used by the tests (a random
  convolutional network is still a usable, if weaker, feature extractor).

The VGG network is frozen and is *not* part of a model's ``state_dict``, so checkpoints stay small.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from .errors import KitError

#: indices of ``torchvision.models.vgg19().features`` after which features are compared (relu1_2 ... relu4_2)
VGG19_LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_2": 13, "relu3_4": 17, "relu4_2": 22, "relu4_4": 26}
DEFAULT_LAYERS = ("relu1_2", "relu2_2", "relu3_2")
WEIGHT_CHOICES = ("imagenet", None)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg19_weights_file() -> Path:
    """Where torchvision keeps (or would download) the VGG19 ImageNet weights."""
    from torchvision.models import VGG19_Weights

    url = VGG19_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _vgg19_features(weights: str | None, download: bool) -> nn.Sequential:
    from torchvision.models import VGG19_Weights, vgg19

    if weights is None:
        return vgg19(weights=None).features
    if weights != "imagenet":
        raise KitError(f"unknown VGG19 weights {weights!r}; use 'imagenet' or None (random, for tests)")
    file = vgg19_weights_file()
    if not file.is_file() and not download:
        raise KitError(f"VGG19 ImageNet weights are not in {file}; run once with internet (download=True, e.g. on "
                       f"Colab), copy vgg19-dcbb9e9d.pth there, or use weights=None / perceptual weight 0")
    try:
        return vgg19(weights=VGG19_Weights.IMAGENET1K_V1).features
    except Exception as exc:  # urllib/http/ssl errors differ by platform; all mean "could not get the file"
        raise KitError(f"could not load the VGG19 ImageNet weights ({type(exc).__name__}); without internet copy "
                       f"vgg19-dcbb9e9d.pth into {file.parent}, or use weights=None / perceptual weight 0") from None


class VGGPerceptualLoss(nn.Module):
    """Mean squared difference of frozen VGG19 features, summed over layers, averaged over the batch.

    Args:
        weights: ``"imagenet"`` (pretrained, the useful choice) or ``None`` (random weights, no download).
        layers: names from :data:`VGG19_LAYERS`; deeper layers weigh shape over texture.
        download: allow torchvision to download missing ImageNet weights.

    Call ``loss(x_hat, x)`` with images in [0, 1], ``[B, 3, H, W]`` (grey images are repeated to 3 channels).
    """

    def __init__(self, weights: str | None = "imagenet", layers: Sequence[str] = DEFAULT_LAYERS,
                 download: bool = True) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown or not layers:
            raise KitError(f"unknown VGG19 layers {unknown or '[]'}; choose from: {', '.join(VGG19_LAYERS)}")
        self.cuts = sorted(VGG19_LAYERS[name] for name in layers)
        self.features = _vgg19_features(weights, download)[: self.cuts[-1] + 1].eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> "VGGPerceptualLoss":
        return super().train(False)  # always frozen: no dropout/batch-norm behaviour to switch

    def _feature_maps(self, x: Tensor) -> list[Tensor]:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.cuts:
                out.append(h)
        return out

    def forward(self, x_hat: Tensor, x: Tensor) -> Tensor:
        if x_hat.shape != x.shape or x.ndim != 4 or x.shape[1] not in (1, 3):
            raise KitError(f"perceptual loss needs two image batches of the same shape [B, 1 or 3, H, W], got "
                           f"{list(x_hat.shape)} and {list(x.shape)}")
        with torch.no_grad():
            target = self._feature_maps(x)
        feats = self._feature_maps(x_hat)
        return sum(torch.mean((f.float() - t.float()) ** 2) for f, t in zip(feats, target))

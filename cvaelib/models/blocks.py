"""Convolutional encoder/decoder trunks shared by the AE, VAE and CVAE.

Two stride-2 convolutions take an ``H x W`` image to ``H/4 x W/4`` feature maps (28 -> 7, 8 -> 2), one hidden
fully connected layer follows.  The decoder mirrors it with transposed convolutions.  Keeping the trunk small is
deliberate: on a 2-core CPU it trains at many thousand images per second, and on 28x28 data a wider net buys little.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _act() -> nn.Module:
    return nn.SiLU()


class ConvEncoder(nn.Module):
    """image ``[B, C, H, W]`` -> features ``[B, hidden]`` (H and W divisible by 4)."""

    def __init__(self, channels: int, size: tuple[int, int], width: int = 32, hidden: int = 256,
                 extra: int = 0) -> None:
        super().__init__()
        h, w = size
        if h % 4 or w % 4:
            raise ValueError(f"image size {h}x{w} must be divisible by 4")
        self.conv = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1), _act(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), _act(),
            nn.Flatten(),
        )
        self.fc = nn.Linear(2 * width * (h // 4) * (w // 4) + extra, hidden)
        self.act = _act()

    def forward(self, x: Tensor, extra: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
        """``extra`` is concatenated to the conv features, ``bias`` added to the hidden layer (conditioning)."""
        h = self.conv(x)
        if extra is not None:
            h = torch.cat([h, extra], dim=1)
        h = self.fc(h)
        if bias is not None:
            h = h + bias
        return self.act(h)


class ConvDecoder(nn.Module):
    """code ``[B, in_dim]`` -> logits ``[B, C, H, W]``."""

    def __init__(self, in_dim: int, channels: int, size: tuple[int, int], width: int = 32,
                 hidden: int = 256) -> None:
        super().__init__()
        h, w = size
        self.start = (2 * width, h // 4, w // 4)
        self.fc = nn.Sequential(nn.Linear(in_dim, hidden), _act(),
                                nn.Linear(hidden, 2 * width * (h // 4) * (w // 4)), _act())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), _act(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.deconv(self.fc(z).view(-1, *self.start))

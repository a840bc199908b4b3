"""SRResNet, the generator of SRGAN (Ledig et al. 2017), for single-channel (luminance) frames.

Only the network lives here: no I/O, no astropy.

I/O contract: input ``(N, C, H, W)`` float in ``[0, 1]`` (C = ``in_channels``, 1 for luminance);
output ``(N, C, scale*H, scale*W)``.  The network predicts a residual over a bicubic upsample, and its
last layer starts near zero, so an untrained network is bicubic interpolation — a known, honest start.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    """conv3x3 - BN - PReLU - conv3x3 - BN, plus the identity."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_features, num_features, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(num_features)
        self.act = nn.PReLU(num_features)
        self.conv2 = nn.Conv2d(num_features, num_features, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))


class SRResNet(nn.Module):
    """The SRGAN generator: 9x9 head, residual body with a long skip, sub-pixel x2 stages, 9x9 tail.

    Parameters
    ----------
    in_channels : int
        Channels in and out (1 for luminance).
    num_blocks : int
        Residual blocks in the body (16 in the paper).
    num_features : int
        Feature channels (64 in the paper).
    scale : int
        Upscaling factor, a power of two (4 in the paper).
    """

    def __init__(self, *, in_channels: int = 1, num_blocks: int = 16, num_features: int = 64,
                 scale: int = 4) -> None:
        super().__init__()
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"scale must be a power of two >= 2 (got {scale})")
        self.scale = scale
        self.in_channels = in_channels
        self.head = nn.Sequential(nn.Conv2d(in_channels, num_features, 9, padding=4), nn.PReLU(num_features))
        self.body = nn.Sequential(*[ResidualBlock(num_features) for _ in range(num_blocks)])
        self.body_tail = nn.Sequential(nn.Conv2d(num_features, num_features, 3, padding=1),
                                       nn.BatchNorm2d(num_features))
        up: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            up += [nn.Conv2d(num_features, num_features * 4, 3, padding=1), nn.PixelShuffle(2),
                   nn.PReLU(num_features)]
        self.upsample = nn.Sequential(*up)
        self.tail = nn.Conv2d(num_features, in_channels, 9, padding=4)
        # start as bicubic interpolation: the residual branch begins near zero
        nn.init.normal_(self.tail.weight, std=1e-4)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        feat = self.head(x)  # (N, F, H, W)
        feat = feat + self.body_tail(self.body(feat))
        return base + self.tail(self.upsample(feat))  # (N, C, sH, sW)


def flux_project(sr: torch.Tensor, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """Make every ``scale x scale`` block mean of ``sr`` equal the matching pixel of ``lr``.

    Adds to each block the difference between the input pixel and the block's mean, so the
    correction is the smallest (least-squares) change that makes the output flux-consistent.
    """
    block_mean = F.avg_pool2d(sr, scale)
    return sr + F.interpolate(lr - block_mean, scale_factor=scale, mode="nearest")

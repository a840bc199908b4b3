"""The SRGAN discriminator (Ledig et al. 2017, fig. 4), for luminance crops.

Eight 3x3 convolutions (64, 64, 128, 128, 256, 256, 512, 512 channels; stride 2 on every second one),
batch norm after all but the first, LeakyReLU(0.2), then dense 1024, LeakyReLU, dense 1.  The paper's
dense layer sees a fixed 6x6 map of a 96x96 crop; an adaptive average pool to 6x6 keeps that for other
crop sizes.  The output is a logit (trained with ``-log D`` / BCE on logits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SRGANDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 1, base: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, base, 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        cin = base
        for i, cout in enumerate([base, 2 * base, 2 * base, 4 * base, 4 * base, 8 * base, 8 * base]):
            stride = 2 if i % 2 == 0 else 1
            layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout),
                       nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(6), nn.Flatten(), nn.Linear(cin * 36, 1024),
                                  nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` in [0, 1] -> logits ``(N,)``: high for real high-resolution crops."""
        return self.head(self.features(x * 2 - 1))[:, 0]


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's BCE on logits: real crops labelled 1, generated ones 0."""
    bce = F.binary_cross_entropy_with_logits
    return bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))


def adversarial_loss(g_fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss, SRGAN's ``-log D(G(x))`` form: BCE of its logits against 1."""
    return F.binary_cross_entropy_with_logits(g_fake, torch.ones_like(g_fake))

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

from ..errors import SettingsError


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
            raise SettingsError(f"scale must be a power of two >= 2 (got {scale})")
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
        self.fused_tail: nn.Module | None = None  # set by `fuse_subpixel_tail` for inference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        feat = self.head(x)  # (N, F, H, W)
        feat = feat + self.body_tail(self.body(feat))
        if self.fused_tail is not None:
            return base + self._fused_upsample(feat)
        return base + self.tail(self.upsample(feat))  # (N, C, sH, sW)

    def _fused_upsample(self, feat: torch.Tensor) -> torch.Tensor:
        """Upsampling stages and the fused tail in strips of 64 input rows with a 3-row halo (3x3 conv at 1x;
        3x3 then 5x5 at 2x): the 4F-channel activations at 1x and 2x, the largest of the network, exist for a
        strip at a time instead of the whole tile.  The result is identical."""
        return in_row_strips(lambda x: self.fused_tail(self.upsample[:-3](x)), feat, 64, 3, self.scale)


def in_row_strips(fn, x: torch.Tensor, rows: int, halo: int, scale: int = 1) -> torch.Tensor:
    """``fn(x)`` computed on strips of ``rows`` rows of ``x`` (each with ``halo`` extra rows either side), the
    strips' outputs (``scale`` x taller than their inputs) cut to their own rows and stacked.  Identical to
    ``fn(x)`` when ``fn``'s vertical reach is at most ``halo`` rows; only one strip's temporaries exist at once."""
    h = x.shape[-2]
    if h <= rows:
        return fn(x)
    out = []
    for a in range(0, h, rows):
        b = min(h, a + rows)
        lo, hi = max(0, a - halo), min(h, b + halo)
        out.append(fn(x[..., lo:hi, :])[..., (a - lo) * scale:(b - lo) * scale, :])
    return torch.cat(out, dim=-2)


def require_luminance(model: nn.Module, what: str) -> None:
    """Refuse a super-resolution network that is not single-channel (luminance): ``what`` names the consumer."""
    if getattr(model, "in_channels", 1) != 1:
        raise SettingsError(f"{what} upscales luminance only and takes luminance SR networks; this one "
                         f"({model.in_channels} channels) upscales luminance and chroma together (a training experiment)")


class _SubpixelTail(nn.Module):
    """The last x2 stage and the 9x9 tail, computed at half the output resolution (same function)."""

    def __init__(self, conv: nn.Conv2d, prelu: nn.PReLU, tail: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv  # (F -> 4F) at 2x
        self.act = nn.PReLU(conv.out_channels)
        self.act.weight.data.copy_(prelu.weight.data.repeat_interleave(4))
        cout, cin, k, _ = tail.weight.shape  # (C, F, 9, 9)
        half = k // 2  # 4
        taps = half // 2 + 1  # offsets -2..2 at half resolution
        w = torch.zeros(cout * 4, cin * 4, 2 * taps - 1, 2 * taps - 1, dtype=tail.weight.dtype)
        for o in range(cout):
            for a in range(2):
                for b in range(2):
                    for c in range(2):
                        for d in range(2):
                            for p in range(-taps + 1, taps):
                                for q in range(-taps + 1, taps):
                                    u, v = 2 * p + c - a, 2 * q + d - b
                                    if abs(u) <= half and abs(v) <= half:
                                        w[o * 4 + a * 2 + b, c * 2 + d::4, p + taps - 1, q + taps - 1] = \
                                            tail.weight.data[o, :, u + half, v + half]
        self.tail = nn.Conv2d(cin * 4, cout * 4, 2 * taps - 1, padding=taps - 1)
        self.tail.weight.data.copy_(w)
        self.tail.bias.data.copy_(tail.bias.data.repeat_interleave(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in strips of 64 rows with a 3-row halo (3x3 then 5x5 convolution): the 4F-channel activations, the
        # largest tensors of the network, never exist for the whole tile at once; the result is identical
        return F.pixel_shuffle(in_row_strips(lambda t: self.tail(self.act(self.conv(t))), x, 64, 3), 2)


@torch.no_grad()
def fuse_subpixel_tail(model: SRResNet) -> SRResNet:
    """Compute the 9x9 tail on the last stage's un-shuffled features: a 5x5 conv with 4 phases at half the
    output resolution instead of a 1-output-channel 9x9 conv at full output resolution (about 4x faster on
    CPU, the same numbers).  For inference only: call after loading weights."""
    conv, prelu = model.upsample[-3], model.upsample[-1]
    model.fused_tail = _SubpixelTail(conv, prelu, model.tail).to(model.tail.weight.device)
    return model

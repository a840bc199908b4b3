"""Residual encoder colorization network (after Dahl's "Automatic Colorization" and Guo et al.).

An encoder reduces the luminance to 1/16 resolution; a decoder climbs back, and at every scale the
encoder's features are merged into the decoder by addition (Dahl's residual connections).  A cheap
global pass over a thumbnail of the *whole frame* modulates the bottleneck, so that tiles of one frame
share the same notion of what the object is and agree on colour.

I/O contract: ``forward(lum, thumb)`` with ``lum`` ``(N, 1, H, W)`` in ``[0, 1]`` (any H, W) and
``thumb`` ``(N, 1, T, T)`` in ``[0, 1]``; returns chroma ``(N, 2, H, W)`` — BT.709 (Cb, Cr), each in
``[-0.5, 0.5]``.  Only chroma is predicted: luminance passes through untouched by construction.

Two output heads: a regression head (``chroma_bins=0``: chroma = 0.5 tanh(head)), or a distribution head
(``chroma_bins=K``): for Cb and for Cr a probability over K evenly spaced values in ``[-chroma_range,
chroma_range]``, and the chroma shown is its expected value.  Trained with cross-entropy against each
pixel's true value split between its two neighbouring bins (`bin_targets`), the expected value estimates the
conditional mean; where the evidence is weak the distribution is broad and its mean lies near grey.  The
distribution is softened by ``temperature`` (> 1: closer to uniform, whose mean is grey) as calibrated on
images the network never saw.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .features import MobileNetV2, feature_network, imagenet_input


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _ResBlock(nn.Module):
    def __init__(self, ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv(ch, ch, dilation=dilation)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn2(self.conv2(self.conv1(x))))


class ResidualEncoderColorizer(nn.Module):
    """Residual encoder + decoder with a global thumbnail branch.

    Parameters
    ----------
    widths : tuple of int
        Channels at full, 1/2, 1/4, 1/8 and 1/16 resolution.
    thumb_size : int
        Side of the whole-frame thumbnail fed to the global branch.
    prior_bins : int
        Knots of the learned luminance -> chroma curve.
    global_branch : str
        ``"conv"``: four small strided convolutions trained from scratch; ``"mobilenet_v2"``: a MobileNetV2
        (torchvision layout), started from ImageNet weights in training (`load_global_backbone`) — the
        paper's idea of a pretrained classifier's features telling *what* the object is, applied to the
        whole-frame thumbnail only, so it costs one small pass per frame.
    """

    def __init__(self, *, widths: tuple[int, ...] = (16, 32, 64, 96, 128), thumb_size: int = 128,
                 prior_bins: int = 32, global_branch: str = "conv", chroma_bins: int = 0,
                 chroma_range: float = 0.4) -> None:
        super().__init__()
        self.widths = widths
        self.thumb_size = thumb_size
        # how much of its predicted chroma `run` shows: calibrated per weights on images the network never saw
        # (manifest ``chroma_scale``; set by `models.weights.load_network`); not a tensor, not trained
        self.chroma_scale = 1.0
        # distribution head only: softmax temperature of the expected value (manifest ``chroma_temperature``)
        self.temperature = 1.0
        self.chroma_bins = chroma_bins
        self.chroma_range = chroma_range
        outputs = 2 * chroma_bins if chroma_bins else 2
        if chroma_bins:
            if chroma_bins < 3 or chroma_bins % 2 == 0:
                raise ValueError("chroma_bins must be odd and >= 3 (a bin at grey, symmetric around it)")
            self.register_buffer("centres", torch.linspace(-chroma_range, chroma_range, chroma_bins), persistent=False)
        self.multiple = 2 ** (len(widths) - 1)
        self.stem = _conv(1, widths[0])
        self.down = nn.ModuleList()
        for cin, cout in zip(widths[:-1], widths[1:]):
            self.down.append(nn.Sequential(_conv(cin, cout, stride=2), _ResBlock(cout)))
        bottleneck = widths[-1]
        self.context = nn.Sequential(_ResBlock(bottleneck, dilation=2), _ResBlock(bottleneck, dilation=4))
        # global branch: thumbnail -> vector -> per-channel scale and shift of the bottleneck (FiLM)
        self.global_branch = global_branch
        if global_branch == "conv":
            g: list[nn.Module] = [_conv(1, 32, stride=2), _conv(32, 64, stride=2), _conv(64, 96, stride=2),
                                  _conv(96, 128, stride=2)]
            g_channels = 128
        elif global_branch == "mobilenet_v2":
            backbone = MobileNetV2()
            g, g_channels = [backbone.features], backbone.out_channels
        else:
            raise ValueError(f"unknown global branch {global_branch!r} (conv, mobilenet_v2)")
        self.global_encoder = nn.Sequential(*g, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                            nn.Linear(g_channels, 2 * bottleneck))
        nn.init.zeros_(self.global_encoder[-1].weight)
        nn.init.zeros_(self.global_encoder[-1].bias)
        self.up = nn.ModuleList()
        for cin, cout in zip(widths[::-1][:-1], widths[::-1][1:]):
            self.up.append(_conv(cin, cout))
        # a learned luminance -> chroma curve (piecewise linear, `prior_bins` knots) added before the output
        # non-linearity: the network starts from what brightness alone says and adds what context says
        self.prior_bins = prior_bins
        self.prior = nn.Parameter(torch.zeros(outputs, prior_bins))
        self.head = nn.Conv2d(widths[0], outputs, 3, padding=1)
        # start grey: an untrained colorizer adds no colour (zero, or a uniform distribution over values
        # symmetric around grey), and training can only move it where it helps
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def global_features(self, thumb: torch.Tensor) -> torch.Tensor:
        """Whole-frame context vector ``(N, 2*C)`` from a thumbnail ``(N, 1, T, T)``."""
        if self.global_branch == "mobilenet_v2":
            thumb = imagenet_input(thumb)
        return self.global_encoder(thumb)

    def load_global_backbone(self, spec: str = "mobilenet_v2") -> None:
        """Start the global branch from pretrained ImageNet weights (see `models.features`)."""
        if self.global_branch != "mobilenet_v2":
            raise ValueError("only the mobilenet_v2 global branch takes pretrained weights")
        self.global_encoder[0].load_state_dict(feature_network(spec).features.state_dict())

    def forward(self, lum: torch.Tensor, thumb: torch.Tensor | None = None,
                context: torch.Tensor | None = None, *, raw: bool = False) -> torch.Tensor:
        """Chroma ``(N, 2, H, W)``: the regression head's value, or the distribution's expected value
        (``raw``: the head's logits, see `logits`)."""
        logits = self.logits(lum, thumb, context)
        if raw:
            return logits
        if not self.chroma_bins:
            return 0.5 * torch.tanh(logits)
        n, _, h, w = logits.shape
        p = torch.softmax(logits.view(n, 2, self.chroma_bins, h, w) / self.temperature, dim=2)
        return torch.einsum("nckhw,k->nchw", p, self.centres.to(p.dtype))

    def logits(self, lum: torch.Tensor, thumb: torch.Tensor | None = None,
               context: torch.Tensor | None = None) -> torch.Tensor:
        """The head's output before the non-linearity: ``(N, 2, H, W)``, or ``(N, 2K, H, W)`` (Cb's K logits,
        then Cr's) for the distribution head."""
        n, _, h, w = lum.shape
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        x = F.pad(lum, (0, pw, 0, ph), mode="replicate") if (ph or pw) else lum
        if context is None:
            if thumb is None:
                thumb = F.interpolate(lum, size=(self.thumb_size, self.thumb_size), mode="area")
            context = self.global_features(thumb)
        skips = [self.stem(x)]  # (N, w0, H, W)
        for layer in self.down:
            skips.append(layer(skips[-1]))
        y = self.context(skips.pop())  # (N, C, H/16, W/16)
        gamma, beta = context[:, :, None, None].chunk(2, dim=1)
        y = y * (1 + gamma) + beta
        for layer in self.up:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = layer(y) + skip  # residual merge of encoder features into the decoder
        return self.head(y)[:, :, :h, :w] + self.luminance_prior(lum)

    def bin_targets(self, chroma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each true value as weights on its two neighbouring bins (linear split, so their weighted mean is the
        value itself, clipped to the range): lower bin index ``(N, 2, H, W)`` and the upper bin's weight."""
        step = 2 * self.chroma_range / (self.chroma_bins - 1)
        pos = ((chroma.clamp(-self.chroma_range, self.chroma_range) + self.chroma_range) / step)
        lo = pos.floor().clamp(max=self.chroma_bins - 2)
        return lo.long(), pos - lo

    def distribution_loss(self, logits: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the distribution head's logits against the true chroma (see `bin_targets`)."""
        n, _, h, w = logits.shape
        logp = torch.log_softmax(logits.float().view(n, 2, self.chroma_bins, h, w), dim=2)
        lo, upper = self.bin_targets(chroma.float())
        p_lo = logp.gather(2, lo[:, :, None]).squeeze(2)
        p_hi = logp.gather(2, lo[:, :, None] + 1).squeeze(2)
        return -((1 - upper) * p_lo + upper * p_hi).mean()

    def luminance_prior(self, lum: torch.Tensor) -> torch.Tensor:
        """The learned brightness -> colour curve at every pixel, added to the head's output: ``(N, 2, H, W)``
        before the tanh, or ``(N, 2K, H, W)`` logits for the distribution head."""
        pos = lum.clamp(0, 1)[:, 0] * (self.prior_bins - 1)  # (N, H, W)
        if torch.is_grad_enabled():
            # training: the same linear interpolation as hat-function weights times the knots. Gathering from
            # 32 knots has a backward that scatters millions of pixels into 64 numbers (atomic adds that
            # serialise on a GPU); this form's backward is a plain reduction
            knots = torch.arange(self.prior_bins, dtype=pos.dtype, device=pos.device)
            hat = (1 - (pos[:, None] - knots[None, :, None, None]).abs()).clamp(min=0)  # (N, bins, H, W)
            return torch.einsum("ck,nkhw->nchw", self.prior, hat)
        i0 = pos.floor().long().clamp(max=self.prior_bins - 2)
        t = (pos - i0)[:, None]
        p0 = self.prior[:, i0].permute(1, 0, 2, 3)  # (N, 2, H, W)
        p1 = self.prior[:, i0 + 1].permute(1, 0, 2, 3)
        return p0 * (1 - t) + p1 * t

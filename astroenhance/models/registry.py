"""An explicit registry of architectures: a name maps to a class, its keyword arguments and its I/O contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..errors import SettingsError
from .colorizer import ResidualEncoderColorizer
from .srresnet import SRResNet


@dataclass(frozen=True)
class ArchSpec:
    """What an architecture is and what it expects.

    ``task`` is ``"sr"`` (luminance in, luminance ``scale`` x larger out; with ``in_channels=3``
    BT.709 luminance and chroma, Y Cb Cr, in and out) or ``"colorize"``
    (luminance in, BT.709 chroma out).  Inputs are ``(N, C, H, W)`` float in ``[0, 1]``.
    """

    name: str
    task: str
    cls: type[nn.Module]
    kwargs: dict[str, Any] = field(default_factory=dict)
    scale: int = 1
    description: str = ""


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in [
        ArchSpec("srresnet-16x64", "sr", SRResNet, {"num_blocks": 16, "num_features": 64, "scale": 4}, 4,
                 "SRGAN generator as in Ledig et al. 2017: 16 residual blocks, 64 features."),
        ArchSpec("srresnet-8x32", "sr", SRResNet, {"num_blocks": 8, "num_features": 32, "scale": 4}, 4,
                 "Same design, 8 blocks of 32 features: 3x faster on CPU, the default."),
        ArchSpec("srresnet-12x48", "sr", SRResNet, {"num_blocks": 12, "num_features": 48, "scale": 4}, 4,
                 "Between the two: 12 blocks of 48 features, for telescope frames (`train sr-hst`): 1.9x the "
                 "8x32's network cost on a CPU, 16x64 3.2x (`benchmarks/bench_speed.py`, bare networks)."),
        ArchSpec("srresnet-8x32-ycc", "sr", SRResNet, {"in_channels": 3, "num_blocks": 8, "num_features": 32,
                                                      "scale": 4}, 4,
                 "Experiment (`train` only; `run` and `evaluate` use luminance networks): 8x32 upscaling "
                 "luminance and chroma together (Y, Cb, Cr in and out)."),
        ArchSpec("resenc-colorizer", "colorize", ResidualEncoderColorizer,
                 {"widths": (16, 32, 64, 96, 128), "thumb_size": 128, "prior_bins": 32}, 1,
                 "Residual encoder colorizer with a whole-frame global branch."),
        ArchSpec("resenc-colorizer-mnv2", "colorize", ResidualEncoderColorizer,
                 {"widths": (16, 32, 64, 96, 128), "thumb_size": 128, "prior_bins": 32,
                  "global_branch": "mobilenet_v2"}, 1,
                 "Same, with a MobileNetV2 global branch started from ImageNet weights."),
        ArchSpec("resenc-colorizer-mnv2-bins", "colorize", ResidualEncoderColorizer,
                 {"widths": (16, 32, 64, 96, 128), "thumb_size": 128, "prior_bins": 32,
                  "global_branch": "mobilenet_v2", "chroma_bins": 33, "chroma_range": 0.4}, 1,
                 "Same, predicting a distribution over 33 values of Cb and of Cr (-0.4..0.4) and showing its "
                 "expected value: it says less where it is unsure."),
    ]
}


def architecture(name: str) -> ArchSpec:
    """The registered architecture ``name`` (an unknown name is a usage error that lists the known ones)."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise SettingsError(f"unknown architecture {name!r}; known: {', '.join(sorted(ARCHITECTURES))}") from None


def build_model(name: str) -> nn.Module:
    """Instantiate the registered architecture ``name`` with random weights."""
    spec = architecture(name)
    return spec.cls(**spec.kwargs)

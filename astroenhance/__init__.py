"""astroenhance: colour and 4x detail for Hubble frames, with exact WCS, honest luminance and provenance.

Generated detail is not measurement: colour and sub-pixel structure are predicted by neural networks.

The public API (imported lazily, so ``astroenhance.io`` and ``astroenhance.imaging`` never import torch)::

    from astroenhance import enhance, Enhancer, EnhanceConfig, read_frame
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["EnhanceConfig", "Enhancer", "__version__", "enhance", "open_frames", "read_frame"]


def __getattr__(name: str):
    if name in ("enhance", "Enhancer"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "EnhanceConfig":
        from .config import EnhanceConfig

        return EnhanceConfig
    if name in ("open_frames", "read_frame"):
        from .io import readers

        return readers.open_frames if name == "open_frames" else readers.read_frame
    raise AttributeError(f"module 'astroenhance' has no attribute {name!r}")

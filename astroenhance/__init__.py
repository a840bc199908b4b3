"""astroenhance: colour and 4x detail for Hubble frames, with exact WCS, honest luminance and provenance.

Generated detail is not measurement: colour and sub-pixel structure are predicted by neural networks.

The public API (imported lazily, so ``astroenhance.io`` and ``astroenhance.imaging`` never import torch)::

    from astroenhance import enhance, Enhancer, EnhanceConfig, read_frame
    from astroenhance import make_composite, make_mosaic    # `compose` and `mosaic`: frames in, files out
"""

from __future__ import annotations

import os as _os

# GNU OpenMP's threads spin for a long while after each parallel region (300,000 turns) before they sleep; on a 2-core
# machine that spinning costs the many small tensor operations of the finishing around the networks, and a whole-frame
# run is 1.2-1.3x faster with a short spin (3,000), while a single tile keeps its speed (fully passive waiting, 0,
# loses 1.4x there).  `benchmarks/bench_speed.py`, docs/experiments.md 2026-12-04.  Only where torch has not loaded
# OpenMP yet, and never over the user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT.
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "3000")

__version__ = "0.1.0"

__all__ = ["EnhanceConfig", "Enhancer", "__version__", "enhance", "make_composite", "make_mosaic", "open_frames",
           "read_frame"]


def __getattr__(name: str):
    if name in ("enhance", "Enhancer"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "EnhanceConfig":
        from .config import EnhanceConfig

        return EnhanceConfig
    if name in ("make_composite", "make_mosaic"):
        from . import combining

        return getattr(combining, name)
    if name in ("open_frames", "read_frame"):
        from .io import readers

        return readers.open_frames if name == "open_frames" else readers.read_frame
    raise AttributeError(f"module 'astroenhance' has no attribute {name!r}")

"""Reading and writing frames: FITS (any HDU, multi-chip) and PNG/TIFF/JPEG, with WCS and AVM (no torch)."""

from .readers import FrameSource, open_frames, output_stem
from .writers import FITSRGBWriter, ImageWriter

__all__ = ["FITSRGBWriter", "FrameSource", "ImageWriter", "open_frames", "output_stem"]

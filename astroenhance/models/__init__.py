"""Networks, the registry that names them, and weight loading (torch only; no astropy, no I/O of frames)."""

from .registry import ARCHITECTURES, ArchSpec, build_model

__all__ = ["ARCHITECTURES", "ArchSpec", "build_model"]

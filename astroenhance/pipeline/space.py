"""The noise-normalised space the telescope-trained SR networks work in, and back.

``n = asinh((x - sky) / (beta * sigma))``: linear in units of the input's noise near the sky (so a network sees noise
at the same amplitude on every frame), logarithmic for bright cores (never clipped), exactly invertible:
``x = sky + beta * sigma * sinh(n)``.  ``sky`` and ``sigma`` are the frame's (median and `estimate_noise` of its
pixels); the same functions serve training and `run` (numpy arrays or torch tensors alike).
"""

from __future__ import annotations

import numpy as np

BETA = 3.0


def _scale(sigma, beta: float):
    """``beta * sigma``, kept above 0 (its type's smallest normal number: data in erg/s/cm²/Hz have a sigma near
    1e-33, which a fixed floor of 1e-30 replaced): ``sigma`` a number, or per pixel (an array or tensor like the
    values)."""
    if hasattr(sigma, "clamp"):
        import torch

        return beta * sigma.clamp(min=torch.finfo(sigma.dtype).tiny)
    if isinstance(sigma, np.ndarray):
        return beta * np.maximum(sigma, np.finfo(sigma.dtype if sigma.dtype.kind == "f" else np.float64).tiny)
    return beta * max(float(sigma), np.finfo(np.float64).tiny)


def to_noise_space(x, sky: float, sigma, beta: float = BETA):
    """Linear values -> noise-normalised asinh values (numpy or torch); ``sigma`` one number or one per pixel (a
    frame whose depth varies: `io.noise.NoiseMap`)."""
    scale = _scale(sigma, beta)
    if hasattr(x, "asinh"):
        return ((x - sky) / scale).asinh()
    return np.arcsinh((x - sky) / scale)


def from_noise_space(n, sky: float, sigma, beta: float = BETA):
    """Noise-normalised asinh values -> linear values; the exact inverse of `to_noise_space` (the same ``sigma``)."""
    scale = _scale(sigma, beta)
    if hasattr(n, "sinh"):
        return sky + scale * n.sinh()
    return sky + scale * np.sinh(n)

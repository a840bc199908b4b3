"""Luminance/chroma conversion used everywhere in astroenhance: ITU-R BT.709 luma and (Cb, Cr).

Luminance here is BT.709 luma ``Y = 0.2126 R + 0.7152 G + 0.0722 B`` computed on the *display*
(stretched) values, and chroma is ``Cb = (B - Y) / 1.8556``, ``Cr = (R - Y) / 1.5748``.  The transform is
linear and exactly invertible, so an image rebuilt from ``(Y, Cb, Cr)`` has luminance ``Y`` exactly.
"""

from __future__ import annotations

import numpy as np

LUMA_WEIGHTS = np.array([0.2126, 0.7152, 0.0722])
KB = 1.8556  # 2 * (1 - 0.0722)
KR = 1.5748  # 2 * (1 - 0.2126)


def rgb_to_ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split ``(..., 3)`` RGB into luminance ``(...)`` and chroma ``(..., 2)`` (Cb, Cr)."""
    rgb = np.asarray(rgb)
    y = rgb @ LUMA_WEIGHTS.astype(rgb.dtype) if rgb.dtype.kind == "f" else rgb @ LUMA_WEIGHTS
    cb = (rgb[..., 2] - y) / KB
    cr = (rgb[..., 0] - y) / KR
    return y, np.stack([cb, cr], axis=-1)


def ycbcr_to_rgb(y: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """Rebuild ``(..., 3)`` RGB from luminance ``(...)`` and chroma ``(..., 2)``; inverse of `rgb_to_ycbcr`."""
    r = y + KR * chroma[..., 1]
    b = y + KB * chroma[..., 0]
    g = (y - LUMA_WEIGHTS[0] * r - LUMA_WEIGHTS[2] * b) / LUMA_WEIGHTS[1]
    return np.stack([r, g, b], axis=-1)


def fit_chroma_to_gamut(y: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """Shrink chroma towards grey, per pixel, just enough that ``ycbcr_to_rgb(y, chroma)`` lies in [0, 1].

    Luminance is left exactly as it is (``y`` must already be in [0, 1]); only saturation gives way.
    This is why clipping is never needed and the output luminance stays the input luminance.
    """
    y = np.clip(y, 0.0, 1.0)
    # RGB offsets from grey per unit chroma: R - Y, G - Y, B - Y
    d = ycbcr_to_rgb(np.zeros_like(y), chroma)  # (..., 3)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        up = np.where(d > 0, (1.0 - y)[..., None] / d, np.inf)
        down = np.where(d < 0, -y[..., None] / d, np.inf)
    t = np.minimum(1.0, np.minimum(up, down).min(axis=-1))
    t = np.where(np.isfinite(t), np.maximum(t, 0.0), 1.0)
    return chroma * t[..., None]


def conserve_block_means(hr: np.ndarray, lr: np.ndarray, scale: int) -> np.ndarray:
    """Shift each ``scale x scale`` block of ``hr`` ``(H*s, W*s, ...)`` so its mean equals ``lr`` ``(H, W, ...)``.

    The least-squares correction (the same shift for every pixel of a block).  `run --flux-conserving` applies
    it to the upscaled chroma of a colour input, so that — with the luminance projected the same way — each
    block of the output averages to the input's colour, not only to its brightness.
    """
    h, w = lr.shape[:2]
    blocks = hr.reshape(h, scale, w, scale, *hr.shape[2:]).mean(axis=(1, 3))
    return hr + np.repeat(np.repeat(lr - blocks, scale, axis=0), scale, axis=1)

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
#: BT.601 luma weights: the grey of JPEG's YCbCr, Pillow's "L", OpenCV's RGB2GRAY (and issue 18's protocol)
BT601_WEIGHTS = np.array([0.299, 0.587, 0.114])
#: with the BT.709 luma held, how far the BT.601 luma of ``ycbcr_to_rgb_planes(y, cb, cr)`` lies from ``y``, per
#: unit of Cb and of Cr: 0.102 Cb + 0.196 Cr (the magenta-green direction of chroma moves the two lumas apart)
BT601_SHIFT = (KB * (BT601_WEIGHTS[2] - BT601_WEIGHTS[1] * LUMA_WEIGHTS[2] / LUMA_WEIGHTS[1]),
               KR * (BT601_WEIGHTS[0] - BT601_WEIGHTS[1] * LUMA_WEIGHTS[0] / LUMA_WEIGHTS[1]))


def rgb_to_ycbcr_planes(r, g, b):
    """``(Y, Cb, Cr)`` of the R, G, B planes: plain arithmetic, so numpy arrays and torch tensors alike."""
    y = LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b
    return y, (b - y) / KB, (r - y) / KR


def ycbcr_to_rgb_planes(y, cb, cr):
    """``(R, G, B)`` planes of ``(Y, Cb, Cr)``; the exact inverse of `rgb_to_ycbcr_planes` (numpy or torch)."""
    r = y + KR * cr
    b = y + KB * cb
    g = (y - LUMA_WEIGHTS[0] * r - LUMA_WEIGHTS[2] * b) / LUMA_WEIGHTS[1]
    return r, g, b


def hold_bt601_luma(chroma, limit: float):
    """``chroma`` (a tensor ``(2, ...)``: Cb, Cr) changed as little as possible (its component along `BT601_SHIFT`
    clipped, the rest of the colour kept) so that a picture rebuilt with it has a BT.601 luma within ``limit`` of its
    BT.709 luma, which the rebuild keeps exactly: its brightness is the grey input's by either convention."""
    a, b = BT601_SHIFT
    shift = a * chroma[0] + b * chroma[1]
    excess = (shift - shift.clamp(-limit, limit)) / (a * a + b * b)
    return chroma - excess[None] * chroma.new_tensor([a, b]).view(2, *([1] * (chroma.dim() - 1)))


def rgb_to_ycbcr(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split ``(..., 3)`` RGB into luminance ``(...)`` and chroma ``(..., 2)`` (Cb, Cr)."""
    rgb = np.asarray(rgb)
    if rgb.dtype.kind != "f":
        rgb = rgb.astype(np.float64)
    y, cb, cr = rgb_to_ycbcr_planes(rgb[..., 0], rgb[..., 1], rgb[..., 2])
    return y, np.stack([cb, cr], axis=-1)


def ycbcr_to_rgb(y: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """Rebuild ``(..., 3)`` RGB from luminance ``(...)`` and chroma ``(..., 2)``; inverse of `rgb_to_ycbcr`."""
    return np.stack(ycbcr_to_rgb_planes(y, chroma[..., 0], chroma[..., 1]), axis=-1)

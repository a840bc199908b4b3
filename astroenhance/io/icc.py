"""ICC matrix/TRC profiles read and applied in numpy: a colour picture of any bit depth brought to sRGB.

Pillow's LittleCMS bindings convert 8-bit pictures only (Pillow has no 16-bit RGB mode), so a 16-bit PNG or a TIFF
in Adobe RGB, ProPhoto or L*-RGB was read as if it were sRGB.  Most RGB profiles are *matrix/TRC* ("matrix-shaper"):
three tone curves (``rTRC``, ``gTRC``, ``bTRC``: ``curv`` tables or gammas, ``para`` functions) take the stored values
to linear light, three colorants (``rXYZ``, ``gXYZ``, ``bXYZ``) to the profile connection space (CIE XYZ, D50).
That is all a relative-colorimetric conversion between two such profiles does (LittleCMS too), so it is done here
in float64, exactly, and rounded once to the picture's own integer type.  Profiles built from lookup tables
(``A2B0``) or for other colour spaces (CMYK, Lab) are not read here: `matrix_shaper` returns None for them.

ICC.1:2010 (v4) section 10, and ICC.1:2001-04 (v2): the tag layouts used below.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

#: sRGB's colorants adapted to D50 (Bradford), as the ICC sRGB profiles and LittleCMS's built-in one carry them:
#: columns R, G, B of linear sRGB -> PCS XYZ
SRGB_TO_PCS = np.array([[0.4360747, 0.3850649, 0.1430804],
                        [0.2225045, 0.7168786, 0.0606169],
                        [0.0139322, 0.0971045, 0.7141733]])
PCS_TO_SRGB = np.linalg.inv(SRGB_TO_PCS)
#: the PCS white, D50, as LittleCMS takes it
D50 = np.array([0.9642, 1.0, 0.8249])

#: pixels converted at a time (float64 temporaries of a few tens of MB)
CHUNK_PIXELS = 1 << 20


class MatrixShaper:
    """A matrix/TRC RGB profile: ``curves`` (stored value in [0, 1] -> linear light, per channel) and ``matrix``
    (linear RGB -> PCS XYZ, D50; columns are the colorants)."""

    def __init__(self, curves: list[Callable[[np.ndarray], np.ndarray]], matrix: np.ndarray):
        self.curves = curves
        self.matrix = matrix
        # black point compensation, as LittleCMS applies it towards its (version 4) sRGB in Pillow's default
        # perceptual intent: the profile's black, made neutral at its own luminance, is taken to sRGB's (zero) and
        # D50 white kept, per PCS component: x' = D50 (x - black) / (D50 - black).  Identity where the tone curves
        # start at 0, as nearly all do.
        black = D50 * float(self.matrix[1] @ [curve(np.zeros(1))[0] for curve in curves])
        scale = D50 / (D50 - black)
        self.to_srgb_linear = PCS_TO_SRGB @ np.diag(scale) @ self.matrix
        self.offset = PCS_TO_SRGB @ (-scale * black)

    def srgb_of_linear(self, linear: np.ndarray) -> np.ndarray:
        """``(..., 3)`` linear light of the profile's primaries (its tone curves applied) -> sRGB values in [0, 1]
        (colours outside sRGB's gamut clipped, as an integer conversion by LittleCMS clips them)."""
        out = np.clip(linear @ self.to_srgb_linear.T + self.offset, 0.0, 1.0)
        low = out <= 0.0031308
        encoded = 1.055 * np.power(out, 1 / 2.4) - 0.055
        encoded[low] = 12.92 * out[low]
        return encoded


def _tags(icc: bytes) -> dict[bytes, bytes]:
    (count,) = struct.unpack_from(">I", icc, 128)
    tags = {}
    for i in range(count):
        sig, offset, size = struct.unpack_from(">4sII", icc, 132 + 12 * i)
        tags[sig] = icc[offset:offset + size]
    return tags


def _s15(data: bytes, offset: int, n: int) -> np.ndarray:
    """``n`` s15Fixed16Number values."""
    return np.array(struct.unpack_from(f">{n}i", data, offset), dtype=np.float64) / 65536.0


def _curve(tag: bytes) -> Callable[[np.ndarray], np.ndarray]:
    """A ``curv`` or ``para`` tone curve as a function of stored values in [0, 1]."""
    kind = tag[:4]
    if kind == b"curv":
        (n,) = struct.unpack_from(">I", tag, 8)
        if n == 0:
            return lambda x: x
        if n == 1:
            gamma = struct.unpack_from(">H", tag, 12)[0] / 256.0  # u8Fixed8Number
            return lambda x: np.power(x, gamma)
        table = np.array(struct.unpack_from(f">{n}H", tag, 12), dtype=np.float64) / 65535.0
        grid = np.linspace(0.0, 1.0, n)
        return lambda x: np.interp(x, grid, table)
    if kind == b"para":
        (function,) = struct.unpack_from(">H", tag, 8)
        n = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}[function]
        g, a, b, c, d, e, f = (*_s15(tag, 12, n), *([0.0] * (7 - n)))
        if function == 0:
            return lambda x: np.power(x, g)
        if function in (1, 2):  # (a x + b)^g (+ c) above -b/a, else (c)
            cut = -b / a
            offset = c if function == 2 else 0.0
            return lambda x: np.where(x >= cut, np.power(np.maximum(a * x + b, 0.0), g) + offset, offset)
        # 3: (a x + b)^g above d, else c x;  4: the same plus e, and c x + f
        return lambda x: np.where(x >= d, np.power(np.maximum(a * x + b, 0.0), g) + e, c * x + f)
    raise ValueError(f"tone curve of type {kind!r}")


def matrix_shaper(icc: bytes) -> MatrixShaper | None:
    """The matrix/TRC model of an RGB ICC profile, or None where it is not one (LUT-based, CMYK, grey, Lab) or cannot
    be read."""
    try:
        if icc[16:20] != b"RGB " or icc[20:24] != b"XYZ ":  # data colour space, connection space
            return None
        tags = _tags(icc)
        if b"A2B0" in tags:  # a lookup-table profile: its tables, not the matrix, define the perceptual conversion
            return None
        matrix = np.stack([_s15(tags[sig], 8, 3) for sig in (b"rXYZ", b"gXYZ", b"bXYZ")], 1)
        curves = [_curve(tags[sig]) for sig in (b"rTRC", b"gTRC", b"bTRC")]
    except (KeyError, ValueError, struct.error, IndexError):
        return None
    return MatrixShaper(curves, matrix)


def convert_to_srgb(arr: np.ndarray, profile: MatrixShaper) -> np.ndarray:
    """``(H, W, 3)`` (or 4: alpha kept) unsigned-integer picture values in ``profile``'s space -> the same picture in
    sRGB, same dtype, rounded once; converted in row chunks so that the float64 temporaries stay small."""
    full = np.iinfo(arr.dtype).max
    tables = [curve(np.arange(full + 1) / full) for curve in profile.curves]  # (each stored value's linear light)
    out = arr.copy()
    rows = max(1, CHUNK_PIXELS // max(1, arr.shape[1]))
    for y in range(0, arr.shape[0], rows):
        linear = np.stack([t[arr[y:y + rows, :, c]] for c, t in enumerate(tables)], -1)
        out[y:y + rows, :, :3] = np.rint(profile.srgb_of_linear(linear) * full).astype(arr.dtype)
    return out

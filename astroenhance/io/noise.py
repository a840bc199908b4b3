"""What an HST file says about its own noise and bad pixels: ERR, WHT and DQ extensions, or an rms map by path.

A science extension ``SCI,v`` is paired with the ``ERR,v``, ``WHT,v`` and ``DQ,v`` extensions of the same file
(same EXTVER, same shape):

* the frame's noise sigma (`FrameSource.noise`, input units) is the median of ``ERR`` (flt/flc files), else of
  ``1/sqrt(WHT)`` where ``WHT > 0`` (drz/drc files drizzled with inverse-variance weights; the engine checks that
  it agrees with the frame's own pixel-to-pixel noise within 3x, since ``WHT`` is an exposure-time map when
  drizzled with ``final_wht_type=EXP``), else of an rms map given by path (``run --noise FILE``); otherwise
  the engine estimates it from the pixels.  Where it came from is recorded (``AE_SIGSR``).
* ``DQ`` flags listed in the mask make a pixel no-data (NaN, like a NaN in the file).  The default,
  `DQ_NO_DATA`, flags what has no usable signal in ACS and WFC3 files: Reed-Solomon errors (1), replaced/fill
  data (2), bad detector pixels (4), hot pixels (16), bad columns (128) and cosmic rays (4096 AstroDrizzle,
  8192 calwf3/acsrej).  Saturated pixels (256, 2048) stay: their values are lower limits, and dropping them
  would punch holes in every bright star.  (The default mask lives with the settings: `config.DQ_NO_DATA`.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import InputError

SAMPLE_ROWS = 512  # rows read to take a companion's median: bounded memory for any frame size


def companion(hdul: fits.HDUList, name: str, extver: int, shape: tuple[int, int]) -> fits.ImageHDU | None:
    """The ``name`` extension paired with a science extension of EXTVER ``extver`` and ``shape``, if it holds
    data of that shape (HST writes constant ERR/DQ as empty extensions: those are skipped)."""
    for h in hdul[1:]:
        if (h.name == name and int(h.header.get("EXTVER", 1)) == extver and h.header.get("NAXIS") == 2
                and (h.header.get("NAXIS2"), h.header.get("NAXIS1")) == shape):
            return h
    return None


def sampled_median(read: Callable[[int, int], np.ndarray], rows: int, keep=np.isfinite) -> float | None:
    """Median of the values ``keep`` accepts over evenly strided rows (None if none)."""
    step = max(1, rows // SAMPLE_ROWS)
    vals = np.concatenate([np.asarray(read(y, y + 1), np.float64).ravel() for y in range(0, rows, step)])
    vals = vals[keep(vals)]
    return float(np.median(vals)) if vals.size else None


def file_noise(hdul: fits.HDUList, extver: int, shape: tuple[int, int]) -> tuple[float | None, str]:
    """The frame's noise sigma from its ERR or WHT extension, and which one (``""`` if neither)."""
    err = companion(hdul, "ERR", extver, shape)
    if err is not None:
        sigma = sampled_median(lambda a, b: err.section[a:b], shape[0], lambda v: np.isfinite(v) & (v > 0))
        if sigma:
            return sigma, "ERR"
    wht = companion(hdul, "WHT", extver, shape)
    if wht is not None:
        def inv_sqrt(a: int, b: int) -> np.ndarray:
            w = np.asarray(wht.section[a:b], np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(w > 0, 1.0 / np.sqrt(w), np.nan)
        sigma = sampled_median(inv_sqrt, shape[0])
        if sigma:
            return sigma, "WHT"
    return None, ""


def dq_reader(hdul: fits.HDUList, extver: int, shape: tuple[int, int], mask: int):
    """``rows(y0, y1) -> bool array`` of the pixels the DQ extension's ``mask`` flags, or None."""
    if mask == 0:
        return None
    dq = companion(hdul, "DQ", extver, shape)
    if dq is None:
        return None

    def flagged(y0: int, y1: int) -> np.ndarray:
        return (np.asarray(dq.section[y0:y1]).astype(np.int64) & mask) != 0

    return flagged


def map_noise(path: Path, shape: tuple[int, int]) -> float:
    """The median of an rms (sigma) map given by path (``run --noise FILE``): its first 2-D image, the frame's
    shape, values > 0 counted."""
    try:
        with fits.open(path, memmap=True) as hdul:
            data = next((h.data for h in hdul if h.header.get("NAXIS") == 2 and h.data is not None), None)
            if data is None:
                raise InputError(f"{path}: no 2-D image in the noise map")
            if data.shape != tuple(shape):
                raise InputError(f"{path}: noise map is {data.shape[0]}x{data.shape[1]}, the frame "
                                 f"{shape[0]}x{shape[1]}")
            sigma = sampled_median(lambda a, b: data[a:b], shape[0], lambda v: np.isfinite(v) & (v > 0))
    except InputError:
        raise
    except Exception as exc:  # unreadable, not FITS
        raise InputError(f"{path}: noise map could not be read ({type(exc).__name__}: {exc})") from None
    if not sigma:
        raise InputError(f"{path}: noise map has no finite value > 0")
    return sigma

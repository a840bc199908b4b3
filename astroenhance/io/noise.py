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
* ``run --clean-cosmic-rays`` (`mask_cosmic_rays`) finds cosmic-ray hits that a single exposure's DQ does not flag:
  pixels sharper than the diffraction limit at the filter's pivot wavelength (PHOTPLAM) allows a star to be
  (`imaging.cosmics`), read as no-data like DQ-flagged ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..errors import InputError
from ..imaging.cosmics import MARGIN, find_cosmic_rays, star_sharpness
from ..metrics import difference_sigma

DQ_SATURATED = 256 | 2048  # full well, A/D converter: not the PSF's shape, never searched for cosmic rays
DQ_COSMIC_RAYS = 4096 | 8192  # set by AstroDrizzle / calwf3, acsrej when a frame's hits were found
SINGLE_EXPOSURES = ("_flt", "_flc", "_c0m", "_c0f")  # calibrated single exposures: ACS/WFC3/STIS, WFPC2
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


def frame_star_sharpness(frame) -> tuple[float, float]:
    """How sharp a star can be on ``frame`` (a `readers.FrameSource`; `imaging.cosmics.star_sharpness`): HST's
    diffraction limit at the header's PHOTPLAM (pivot wavelength, Angstrom) on the WCS's smallest pixel scale."""
    header = frame.header
    try:
        wavelength = float(header["PHOTPLAM"]) * 1e-10 if header is not None and "PHOTPLAM" in header else 0.0
    except (TypeError, ValueError):
        wavelength = 0.0
    if not wavelength > 0:
        raise InputError(f"{frame.name}: --clean-cosmic-rays needs the filter's pivot wavelength (PHOTPLAM) to know "
                         "how sharp a star can be; this header has none")
    if frame.wcs is None:
        raise InputError(f"{frame.name}: --clean-cosmic-rays needs a celestial WCS (the pixel scale) to know how "
                         "sharp a star can be; this frame has none")
    from astropy.wcs.utils import proj_plane_pixel_scales

    scale = float(np.min(proj_plane_pixel_scales(frame.wcs.celestial))) * 3600.0
    return star_sharpness(wavelength, scale)


def mask_cosmic_rays(frame) -> int:
    """Find ``frame``'s cosmic-ray hits (`imaging.cosmics.find_cosmic_rays`, with the ERR extension's per-pixel
    sigma where the file has one, else the frame's noise) and make its ``read_rows`` return them as NaN, like
    DQ-flagged pixels; saturated pixels (DQ 256, 2048) and their neighbours are never flagged.  Sets
    ``frame.cosmic_rays`` (pixels flagged) and ``cosmic_ray_limit``, adds a note; returns the count.  The whole
    frame is read once (single exposures: a few tens of MB)."""
    from scipy.ndimage import binary_dilation, label

    if frame.channels != 1:
        raise InputError(f"{frame.name}: --clean-cosmic-rays needs a grey frame (one band)")
    ratio, curvature = frame_star_sharpness(frame)
    h = frame.shape[0]
    data = np.asarray(frame.read_rows(0, h), np.float64)
    if frame.pixel_noise_rows is not None:
        sigma = np.asarray(frame.pixel_noise_rows(0, h), np.float64)
        source = "ERR per pixel"
    else:
        sigma = frame.noise or difference_sigma(data) or np.inf
        source = "one sigma for the frame"
    if frame.dq_rows is not None:
        sat = binary_dilation((np.asarray(frame.dq_rows(0, h)).astype(np.int64) & DQ_SATURATED) != 0, iterations=2)
        data = np.where(sat, np.nan, data)
    # as many strips at once as this process may use threads (`runner.set_threads` sets OMP_NUM_THREADS for
    # each of --jobs N workers), else every core
    budget = os.environ.get("OMP_NUM_THREADS", "").strip()
    mask = find_cosmic_rays(data, sigma, ratio, curvature, workers=int(budget) if budget.isdigit() else None)
    del data
    n = int(mask.sum())
    frame.cosmic_rays, frame.cosmic_ray_limit = n, ratio
    hits = label(mask, np.ones((3, 3), bool))[1] if n else 0
    frame.notes.append(f"cosmic rays: {n} pixels in {hits} groups sharper than a star can be (peak > "
                       f"{MARGIN:g} x {ratio:.2f} times its neighbours' mean, {source}) read as no data (AE_NCR)")
    if n:
        read = frame.read_rows

        def read_rows(y0: int, y1: int) -> np.ndarray:
            rows = read(y0, y1)
            return np.where(mask[y0:y1], np.float32(np.nan), rows).astype(rows.dtype, copy=False)

        frame.read_rows = read_rows
    return n


def unflagged_single_exposure(frame) -> bool:
    """Whether ``frame`` looks like a calibrated single exposure (named ``*_flt``, ``*_flc``, ``*_c0m``, ``*_c0f``)
    whose DQ (if any) flags no cosmic rays: its hits are still in the pixels."""
    if frame.path is None:
        return False
    stem = frame.path.name.lower().split(".")[0]
    if not stem.endswith(SINGLE_EXPOSURES):
        return False
    if frame.dq_rows is None:
        return True
    h = frame.shape[0]
    return not any(((np.asarray(frame.dq_rows(y, min(h, y + SAMPLE_ROWS))).astype(np.int64) & DQ_COSMIC_RAYS) != 0).any()
                   for y in range(0, h, SAMPLE_ROWS))

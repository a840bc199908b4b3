"""Cosmic-ray hits in a single exposure, found by being sharper than any star can be.

A star's image is the telescope's point-spread function: however it falls on the detector, its brightest pixel
holds at most a fixed multiple of the mean of its 8 neighbours, set by diffraction.  A cosmic ray deposits its
charge in one pixel or a short track, with almost nothing in the neighbours.  So a seed is a pixel that stands
``nsigma`` times its noise above its local background (a 7x7 median), above ``limit`` times its neighbours' mean
by as much, and whose excess over its 8 neighbours exceeds ``climit`` times theirs over the 16 around them (free
of any smooth background: a galaxy's steep core can fool the median).  ``limit`` and ``climit`` are the sharpest
star's two ratios (`star_sharpness`: the diffraction pattern of HST's obstructed 2.4 m aperture at the filter's
pivot wavelength, integrated over pixels of the frame's scale, the most over where in its pixel the star falls)
times a safety margin.  Real PSFs are broader than the diffraction limit (aberrations, charge diffusion, jitter),
so no star, however bright, passes the test.  Then, a few times over, flagged pixels are replaced by the local
background and their neighbours tested again at ``grow`` sigma, which takes the rest of a track.

Unlike L.A.Cosmic (astroscrappy), whose fine-structure test does not know the PSF and flags the cores of
well-sampled stars on crowded frames (hundreds on the ACS/HRC 47 Tuc frame, see docs/experiments.md), this
test cannot flag a star that is as sharp as physics allows.  What it gives up: hits on top of a star's core
that are fainter than the core, and (on undersampled detectors, where the limit is high) faint single-pixel
hits.  numpy/scipy only; the frame is worked on in strips of rows, several at once on a thread pool (numpy and
scipy's filters release the GIL), each independent of the others: the mask is the same for any number of workers.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.ndimage import binary_dilation, uniform_filter
from scipy.special import j1

from ..cores import host_threads, in_order

HST_APERTURE_M = 2.4
HST_OBSCURATION = 0.33  # secondary mirror diameter / primary
MARGIN = 1.25  # `limit` = MARGIN x the sharpest star's ratios (chosen on injected hits: docs/experiments.md)
BACKGROUND_BOX = 7  # pixels: the local background is the median of this box
LOCAL_BOX = 9  # pixels: the local noise is the median scatter over this box
CANDIDATE = 3.0  # sigmas above its neighbours' mean a pixel must stand before the rest is looked at
STRIP = 256  # rows per strip (plus `HALO` above and below)
HALO = 8


def annular_airy(r_rad: np.ndarray, wavelength_m: float, aperture_m: float, obscuration: float) -> np.ndarray:
    """Intensity of an annular aperture's diffraction pattern at angle ``r_rad`` (peak 1)."""
    x = np.pi * aperture_m * np.asarray(r_rad, np.float64) / wavelength_m
    x = np.where(x == 0, 1e-12, x)
    e = obscuration
    amp = (2 * j1(x) / x - e * e * 2 * j1(e * x) / (e * x)) / (1 - e * e)
    return amp * amp


def _stars(wavelength_m: float, pixel_scale_arcsec: float, aperture_m: float, obscuration: float, n: int,
           oversample: int, positions: int):
    """The diffraction-limited star integrated over n x n pixels (``n`` odd), its centre at each of a grid of
    ``positions`` x ``positions`` places over a quarter of the middle pixel (x <= y: the pixel's symmetry gives
    the rest)."""
    if wavelength_m <= 0 or pixel_scale_arcsec <= 0:
        raise ValueError("wavelength and pixel scale must be positive")
    c = (np.arange(n * oversample) + 0.5) / oversample - n / 2  # sub-pixel centres, from the middle pixel's middle
    xx, yy = np.meshgrid(c, c)
    to_rad = pixel_scale_arcsec * math.pi / (180 * 3600)
    shifts = np.linspace(0.0, 0.5, positions)
    for i, dy in enumerate(shifts):
        for dx in shifts[:i + 1]:
            fine = annular_airy(np.hypot(xx - dx, yy - dy) * to_rad, wavelength_m, aperture_m, obscuration)
            yield fine.reshape(n, oversample, n, oversample).sum(axis=(1, 3))


@functools.lru_cache(maxsize=64)
def star_sharpness(wavelength_m: float, pixel_scale_arcsec: float, aperture_m: float = HST_APERTURE_M,
                   obscuration: float = HST_OBSCURATION, oversample: int = 25, positions: int = 11) -> tuple[float, float]:
    """How sharp a star can be: the diffraction-limited PSF at ``wavelength_m`` integrated over square pixels of
    ``pixel_scale_arcsec``, as two ratios of the pixel that holds its centre: that pixel over the mean of the 8
    around it (``ratio``), and its excess over those 8 over their excess over the 16 around them (``curvature``;
    free of any smooth or sloping background), each the most over the star's centre placed anywhere in the pixel
    (a grid of ``positions`` x ``positions`` over a quarter of it: the pixel's symmetry gives the rest).  Centred
    is the most where pixels sample the core; on pixels much coarser than it (WFPC2's WF chips) a centre a
    little off the middle puts less of the first ring on the neighbours, and its pixel is up to 15% sharper.
    Upper bounds for any real PSF at that wavelength (which is broader), so a pixel sharper than this (by a
    margin, for noise) is not a star."""
    ratio = curvature = 0.0
    for pix in _stars(wavelength_m, pixel_scale_arcsec, aperture_m, obscuration, 5, oversample, positions):
        c = pix[2, 2]
        ring1 = (pix[1:4, 1:4].sum() - c) / 8
        ring2 = (pix.sum() - pix[1:4, 1:4].sum()) / 16
        ratio, curvature = max(ratio, c / ring1), max(curvature, (c - ring1) / (ring1 - ring2))
    return float(ratio), float(curvature)


def _ring_means(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each pixel's 8 neighbours and of the 16 pixels around those."""
    box3 = uniform_filter(y, 3, mode="nearest") * 9.0
    box5 = uniform_filter(y, 5, mode="nearest") * 25.0
    return (box3 - y) / 8.0, (box5 - box3) / 16.0


class _LocalMedians:
    """Medians over a ``box`` x ``box`` window (edges replicated, as ``median_filter(mode="nearest")``), worked
    out only at the pixels asked for and kept: hits are rare, and a full median filter is most of the cost."""

    def __init__(self, img: np.ndarray, box: int) -> None:
        r = box // 2
        self.windows = np.lib.stride_tricks.sliding_window_view(np.pad(img, r, mode="edge"), (box, box))
        self.value = np.full(img.shape, np.nan)

    def at(self, where: np.ndarray) -> np.ndarray:
        todo = where & np.isnan(self.value)
        if todo.any():
            ys, xs = np.nonzero(todo)
            win = self.windows[ys, xs]
            self.value[ys, xs] = np.median(win.reshape(len(ys), -1), axis=1)
        return self.value


def _strip_flags(x: np.ndarray, sig: np.ndarray, limit: float, curvature: float | None, nsigma: float,
                 grow: float, iterations: int) -> np.ndarray:
    bad = ~np.isfinite(x)
    fill = np.nanmedian(x) if (~bad).any() else 0.0
    x = np.where(bad, fill, x)
    # only pixels whose 5x5 surroundings all hold data are tested: next to a masked star core or hot pixel the
    # filled-in values would make the wings look sharp
    testable = ~binary_dilation(bad, structure=np.ones((5, 5), bool))
    ring1, ring2 = _ring_means(x)
    # the local background (a 7x7 median) and noise floor (the 9x9 median scatter of the pixels about their
    # neighbours' mean: bright sources' Poisson noise when the file gives one sigma for the frame; a hit or two in
    # the box does not move a median) are needed only where a pixel stands out from its neighbours
    bkg = _LocalMedians(x, BACKGROUND_BOX)
    scatter = _LocalMedians(np.abs(x - ring1), LOCAL_BOX)
    flags = np.zeros(x.shape, bool)
    for it in range(iterations):
        if it == 0:
            y = x
            look = testable & (x - ring1 > CANDIDATE * sig)
        else:
            y = np.where(flags, bkg.value, x)
            ring1, ring2 = _ring_means(y)
            look = testable & ~flags & binary_dilation(flags, structure=np.ones((3, 3), bool))
        if not look.any():
            break
        b = bkg.at(look)
        s = np.maximum(sig, scatter.at(look) * (1.4826 / math.sqrt(1.0 + 1.0 / 8.0)))
        thr = nsigma if it == 0 else grow
        with np.errstate(invalid="ignore"):
            # sharper than a star above the local background ...
            new = look & (x - b > thr * s) & ((x - b) - limit * (ring1 - b) > thr * s * math.sqrt(1 + limit**2 / 8))
            if it == 0 and curvature is not None:
                # ... and than a star's core is curved, whatever smooth light lies below (a galaxy's steep inner
                # profile can fool the median); seeds only: a track's other pixels follow from them
                c = curvature
                spread2 = s * math.sqrt(1.0 + (1.0 + c) ** 2 / 8.0 + c * c / 16.0)
                new &= (x - ring1) - c * (ring1 - ring2) > thr * spread2
        if not new.any():
            break
        flags |= new
    return flags


def find_cosmic_rays(data: np.ndarray, sigma, ratio: float, curvature: float | None = None, nsigma: float = 5.0,
                     grow: float = 3.0, iterations: int = 5, margin: float | None = None,
                     workers: int | None = None) -> np.ndarray:
    """Boolean mask of the pixels of ``data`` (2-D, NaN = no data) hit by cosmic rays.

    ``sigma`` is the noise per pixel (a number, or an array like ``data``: an HST ``ERR`` extension, which
    includes the sources' Poisson noise); ``ratio`` and ``curvature`` how sharp the sharpest star can be
    (`star_sharpness`).  A pixel is flagged when it stands ``nsigma`` above its local background and above
    ``margin * ratio`` (`MARGIN` if not given) times its neighbours' mean by as much, and (if ``curvature`` is
    given) its excess over its 8 neighbours exceeds ``margin * curvature`` times theirs over the next 16 by as
    much; then, ``iterations`` rounds, its neighbours at ``grow`` sigma with the flagged pixels removed.
    ``workers``: strips searched at once (default: `cores.host_threads`)."""
    data = np.asarray(data)
    if data.ndim != 2:
        raise ValueError(f"a 2-D frame is needed, got shape {data.shape}")
    margin = MARGIN if margin is None else margin
    limit = margin * ratio
    climit = None if curvature is None else margin * curvature
    h = data.shape[0]
    sig_full = np.broadcast_to(np.asarray(sigma, np.float64), data.shape)
    out = np.zeros(data.shape, bool)

    def strip(y0: int) -> None:
        y1 = min(h, y0 + STRIP)
        a, b = max(0, y0 - HALO), min(h, y1 + HALO)
        x = np.asarray(data[a:b], np.float64)
        sig = np.asarray(sig_full[a:b], np.float64)
        sig = np.where(np.isfinite(sig) & (sig > 0), sig, np.inf)
        out[y0:y1] = _strip_flags(x, sig, limit, climit, nsigma, grow, iterations)[y0 - a:y0 - a + (y1 - y0)]

    starts = range(0, h, STRIP)
    for _ in in_order(((strip, (y0,)) for y0 in starts), min(len(starts), workers or host_threads()) or 1):
        pass  # (a strip's error is raised here)
    return out

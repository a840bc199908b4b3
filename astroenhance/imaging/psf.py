"""How wide a frame's point-spread function is, and how much a noise-space SR network's output is smoothed for it.

The telescope networks (`hst`) learned from deep frames binned 4x4: inputs whose PSF is narrower than a pixel,
where a one-pixel bump can be a star and the network draws it as one.  A frame that samples its PSF well (a
drizzled frame at its own pixels: FWHM 2-3 pixels) holds no such star: there the network draws noise peaks and
galaxies' texture as dots sharper than the optics can deliver.  Smoothing its output for the display planes by a
Gaussian of `SMOOTH` times the PSF's own sigma removes that and nothing the optics could have delivered (chosen on
simulated fields, docs/experiments.md: +0.3 / +0.7 dB at k = 0.5 / 2 where the input's FWHM is 1.4-2.2 pixels, and a
little gain even where it is 0.3-0.7) — where the output is faint (`KEEP`): on a field full of well-sampled stars,
smoothed everywhere, the stars' cores lost 0.04 / 0.13 dB.  FLUX is made from the network's own output: smoothed, the light of faint
compact sources spreads beyond their apertures and below the detection threshold (aperture-flux error 0.025 ->
0.037 at k = 0.5 on those fields, bicubic 0.028).

The FWHM is given (`run --psf-fwhm`) or, for an HST frame, a lower bound from its header (`fwhm_arcsec`): the
diffraction core at the filter's pivot wavelength (PHOTPLAM) in quadrature with `DETECTOR_SHARE` of the detector's
own pixel (INSTRUME, DETECTOR), in the frame's pixels (its WCS).  A lower bound smooths less than the PSF allows,
never more.  Where the header cannot say (ground-based or another telescope's frames, a cut-out without PHOTPLAM), or
asked to (`run --psf-fwhm stars`), it is measured on the frame's own sources (`star_widths`, `fwhm_from_stars`): the
isolated compact peaks, each fitted with a circular Moffat profile integrated over the pixels (its index, from a
Gaussian's wings to HST's broad ones, shared by the frame's peaks), and the narrowest of them — the PSF's width where
they are stars, more where the frame holds none, nothing where it holds fewer than `MIN_SOURCES` (on validation fields
against no smoothing: -0.02 / +0.01 dB at k = 0.5 / 2 on star fields, +0.05 / +0.11 dB at k = 0.5 on sparse
simulated fields undersampled / well sampled, the rest within 0.02; docs/experiments.md, thirty-fifth session).
"""

from __future__ import annotations

import math

import numpy as np

from .cosmics import HST_APERTURE_M

#: the pixel (arcsec) of each HST detector, by (INSTRUME, DETECTOR): a drizzled frame's PSF keeps it, whatever the
#: pixel it was drizzled onto (WFPC2: DETECTOR 1 is the PC, 2-4 the WF chips)
DETECTOR_PIXEL = {("ACS", "WFC"): 0.05, ("ACS", "HRC"): 0.025, ("ACS", "SBC"): 0.032, ("WFC3", "UVIS"): 0.0396,
                  ("WFC3", "IR"): 0.13, ("STIS", "CCD"): 0.0507, ("WFPC2", "1"): 0.0455, ("WFPC2", "2"): 0.0996,
                  ("WFPC2", "3"): 0.0996, ("WFPC2", "4"): 0.0996}
#: the detector pixel's share of the FWHM, in quadrature with the diffraction core's (WFC3/IR F105W: 0.122", about
#: the 0.124" measured; a lower bound elsewhere, where charge diffusion and jitter widen the PSF more)
DETECTOR_SHARE = 0.6
#: a Gaussian's FWHM in its sigmas
FWHM_PER_SIGMA = 2 * math.sqrt(2 * math.log(2))
#: the SR output is smoothed by a Gaussian of this many times the PSF's own sigma (FWHM / `FWHM_PER_SIGMA`)
SMOOTH = 0.6
#: ... where it is faint: the smoothing fades out as the smoothed output rises from `KEEP_FROM` to `KEEP` in the
#: network's noise space (asinh(x / 3 sigma): 1 is about 3.5 sigma, 2.5 about 18), above which the network's own
#: output is kept whole — stars' cores stay as sharp as the network draws them, noise and faint texture are smoothed
#: everywhere as before (KEEP 0: smoothed everywhere)
KEEP_FROM = 1.0
KEEP = 2.5


def fwhm_arcsec(wavelength_m: float, detector_pixel: float) -> float:
    """A lower bound on HST's PSF FWHM (arcsec) at ``wavelength_m`` on a detector of ``detector_pixel`` arcsec."""
    core = 1.03 * wavelength_m / HST_APERTURE_M * 180 / math.pi * 3600
    return math.hypot(core, DETECTOR_SHARE * detector_pixel)


def detector_pixel(header, scale: float) -> float:
    """The pixel (arcsec) of the detector that took a frame (`DETECTOR_PIXEL`); its own pixel ``scale`` where the
    header does not say (a single exposure's pixels are the detector's)."""
    if header is None:
        return scale
    key = (str(header.get("INSTRUME", "")).strip().upper(), str(header.get("DETECTOR", "")).strip().upper())
    return DETECTOR_PIXEL.get(key, scale)


def smoothing_sigma(fwhm: float, scale: int) -> float:
    """The Gaussian sigma (output pixels) a ``scale`` x output of an input whose PSF is ``fwhm`` input pixels wide is
    smoothed by (0: not known, no smoothing)."""
    return SMOOTH * fwhm * scale / FWHM_PER_SIGMA if fwhm > 0 else 0.0


#: a star the PSF is measured on: a peak at least this many sigma above the sky, the brightest pixel within `STAMP`
#: pixels, fitted on the (2 `STAMP` + 1)^2 pixels around it, none of them no-data
STAR_SNR = 20.0
STAMP = 7
#: at most this many peaks are fitted (evenly spread over their brightness: the brightest may be saturated)
MAX_STARS = 120
#: a width from the frame's sources needs at least this many compact ones
MIN_SOURCES = 3
#: each star's model is averaged over this many points per pixel side (its FWHM within 2% from 0.7 pixels up)
OVERSAMPLE = 5
#: the Moffat index beta a star's fit may take: from wings as broad as HST's (WFC3/IR: ~1.2) to a Gaussian's
MOFFAT_BETA = (1.2, 100.0)
#: ... its median over this many of the brightest peaks' own fits is every peak's (one PSF: its wings constrain it)
BETA_STARS = 24


def _integrated_moffat(p: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """A circular Moffat profile (total ``p[0]``, centre ``p[1:3]`` (x, y), FWHM ``p[3]``, index beta ``p[4]``)
    averaged over `OVERSAMPLE`² points of each unit pixel at ``axis`` x ``axis``, plus a constant ``p[5]``: the
    stamp it predicts, flattened."""
    total, x0, y0, fwhm, beta, sky = p
    alpha2 = (fwhm / 2) ** 2 / (2 ** (1 / beta) - 1)
    fine = (axis[:, None] + (np.arange(OVERSAMPLE) + 0.5) / OVERSAMPLE - 0.5).ravel()
    r2 = (fine[:, None] - y0) ** 2 + (fine[None, :] - x0) ** 2
    light = (beta - 1) / (math.pi * alpha2) * (1 + r2 / alpha2) ** -beta
    n = axis.size
    return (total * light.reshape(n, OVERSAMPLE, n, OVERSAMPLE).mean(axis=(1, 3)) + sky).ravel()


def _fit_moffat(stamp: np.ndarray, start: np.ndarray, beta: float | None = None) -> np.ndarray | None:
    """`_integrated_moffat`'s parameters fitted to a (2 `STAMP` + 1)² ``stamp`` from ``start``, its index fixed at
    ``beta`` where given; None where the fit fails (no centre within a pixel, a width at the stamp's limits)."""
    from scipy.optimize import least_squares

    axis = np.arange(-STAMP, STAMP + 1, dtype=np.float64)
    free = np.array([True, True, True, True, beta is None, True])
    p = np.array(start, np.float64)
    if beta is not None:
        p[4] = beta
    lo = np.array([0.0, -1.0, -1.0, 0.1, MOFFAT_BETA[0], -np.inf])
    hi = np.array([np.inf, 1.0, 1.0, STAMP, MOFFAT_BETA[1], np.inf])
    p[free] = np.clip(p[free], lo[free], hi[free])

    def residual(q: np.ndarray) -> np.ndarray:
        p[free] = q
        return _integrated_moffat(p, axis) - stamp.ravel()

    fit = least_squares(residual, p[free], bounds=(lo[free], hi[free]), x_scale="jac")
    p[free] = fit.x
    total, x0, y0, fwhm = p[:4]
    if not fit.success or max(abs(x0), abs(y0)) > 0.99 or not 0.11 < fwhm < STAMP - 0.01 or total <= 0:
        return None
    return p


def star_widths(data: np.ndarray, sky: float, sigma: float, *, interior: tuple[int, int] | None = None,
                limit: int = MAX_STARS) -> tuple[np.ndarray, np.ndarray]:
    """The isolated compact peaks of ``data`` (a grey frame or strip of it, NaN where no data) at least `STAR_SNR`
    ``sigma`` above ``sky``, and their FWHMs (pixels, before the pixel: each peak's (2 `STAMP` + 1)² stamp fitted with
    a circular Moffat profile integrated over the pixels plus a constant; its index beta, shared by one PSF, the
    median of the `BETA_STARS` brightest peaks' own — a Gaussian fitted to a Moffat star reads it 10-20% wide, its
    wings taken for core, and a free index per peak lets the narrowest fits wander): ``(peaks' S/N, fwhms)``; peaks
    whose fit fails are left out.  ``interior`` (rows ``y0, y1``) keeps the peaks of those rows only (a strip read
    with margins); at most ``limit`` peaks are fitted, evenly spread over their brightness."""
    from scipy.ndimage import maximum_filter

    if not sigma > 0 or data.ndim != 2 or min(data.shape) < 2 * STAMP + 1:
        return np.zeros(0), np.zeros(0)
    filled = np.where(np.isfinite(data), data, -np.inf)
    peak = (filled == maximum_filter(filled, size=2 * STAMP + 1, mode="constant", cval=-np.inf))
    peak &= filled > sky + STAR_SNR * sigma
    peak[:STAMP], peak[-STAMP:], peak[:, :STAMP], peak[:, -STAMP:] = False, False, False, False
    if interior is not None:
        peak[:interior[0]], peak[interior[1]:] = False, False
    ys, xs = np.nonzero(peak)
    if ys.size > limit:
        order = np.argsort(filled[ys, xs])
        pick = order[np.linspace(0, ys.size - 1, limit).round().astype(int)]
        ys, xs = ys[pick], xs[pick]
    stamps, snr, starts = [], [], []
    for y, x in zip(ys, xs):
        stamp = np.asarray(data[y - STAMP:y + STAMP + 1, x - STAMP:x + STAMP + 1], np.float64)
        if not np.isfinite(stamp).all():
            continue
        base = float(np.median(np.concatenate([stamp[0], stamp[-1], stamp[:, 0], stamp[:, -1]])))
        height = stamp[STAMP, STAMP] - base
        if not height >= STAR_SNR * sigma:  # above the sky, but not above its own surroundings (a flat top, a halo)
            continue
        stamp = (stamp - base) / height  # in units of its peak: the fit's tolerances hold in any units (1e-36 too)
        light = np.clip(stamp, 0, None).sum()
        s0 = max(0.5, math.sqrt(light / (2 * math.pi)))
        stamps.append(stamp)
        snr.append(height / sigma)
        starts.append([max(light, 1.0), 0.0, 0.0, min(FWHM_PER_SIGMA * s0, STAMP - 0.1), 3.0, 0.0])
    brightest = np.argsort(snr)[::-1][:BETA_STARS]
    betas = [p[4] for p in (_fit_moffat(stamps[i], starts[i]) for i in brightest) if p is not None]
    if not betas:
        return np.zeros(0), np.zeros(0)
    beta = float(np.median(betas))
    fits_ = [_fit_moffat(stamp, start, beta) for stamp, start in zip(stamps, starts)]
    kept = [i for i, p in enumerate(fits_) if p is not None]
    return np.asarray(snr)[kept], np.asarray([fits_[i][3] for i in kept])


def fwhm_from_stars(widths: np.ndarray) -> tuple[float, str]:
    """The PSF FWHM (pixels) the compact sources' fitted ``widths`` bound, and how it was found: the median of the
    `MIN_SOURCES` narrowest — every source is the PSF widened by its own shape, so the narrowest bound it, and are the
    PSF's own where they are stars (the median: one faint star's fit, a cosmic ray or a hot pixel does not decide
    it); 0 and why where there are fewer."""
    widths = np.sort(np.asarray(widths, np.float64))
    n = widths.size
    if n < MIN_SOURCES:
        return 0.0, f"{n} compact source{'s' * (n != 1)} to measure it on (fewer than {MIN_SOURCES})"
    return float(np.median(widths[:MIN_SOURCES])), f"stars (the {MIN_SOURCES} narrowest of {n} compact sources)"

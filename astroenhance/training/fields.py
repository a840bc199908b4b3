"""Simulated deep fields with a known, noise-free truth, for `evaluate --task hst --simulated`.

A real deep frame is itself noisy, so scored against it no method can gain much where the added noise is small
(`training.hst`'s truth-noise ceiling).  A simulated field has no noise of its own: it measures what the telescope
model's networks do where the truth is known exactly.  These fields are drawn *unlike* the training fields
(`training.telescope.synthetic_field`, which the `hst` networks were trained on): HST's diffraction-limited PSF
(an Airy pattern of the obscured 2.4 m aperture, with pointing jitter and four diffraction spikes) instead of a
Moffat, sources rendered twice finer and integrated over each pixel, galaxy counts and sizes from power laws, pure
ellipticals, clumpy irregulars, and stars (never saturated).  They are still a model, and a test a model of the
sky can pass is not a real frame: their numbers are reported apart from the real frames'.

Units are those of `training.telescope`: fluxes in units of the noise a 4x-binned input pixel gets at k = 1, so a
field's "pixel rms" is 1 and ``k`` sets its depth.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.signal import fftconvolve

from ..imaging.cosmics import HST_OBSCURATION, annular_airy
from ..metrics import area_downsample
from .telescope import half_max_fwhm, sersic

FINE = 2  # sources are rendered on a grid this many times finer than the truth's, then integrated over its pixels
SPIKES = 0.015  # share of a star's light in the four diffraction spikes
SEED = 20261206  # simulated field ``i`` is drawn from ``default_rng([SEED, i])`` (training draws ``[seed, step]``)


def hst_psf(fwhm: float, jitter: float, size: int = 33) -> np.ndarray:
    """A normalised PSF on a ``size * FINE + 1`` grid of fine pixels (centred on its middle one): the Airy pattern of HST's obscured aperture whose
    core is ``fwhm`` truth pixels wide (lambda/D = fwhm / 1.03), four diffraction spikes at 45 degrees (the secondary's
    spider) holding `SPIKES` of the light, blurred by Gaussian pointing jitter of ``jitter`` truth pixels."""
    n = size * FINE + 1
    y, x = (np.mgrid[:n, :n] - (n - 1) / 2) / FINE  # truth pixels from the centre
    r = np.hypot(x, y)
    core = annular_airy(r, fwhm / 1.03, 1.0, HST_OBSCURATION)
    core /= core.sum()
    on_spike = (np.abs(x - y) < 0.5 / FINE) | (np.abs(x + y) < 0.5 / FINE)
    spikes = np.where(on_spike, 1.0 / (1.0 + (r / fwhm) ** 2), 0.0)
    psf = (1 - SPIKES) * core + SPIKES * spikes / spikes.sum()
    psf = gaussian_filter(psf, jitter * FINE, mode="constant")
    return psf / psf.sum()


def _galaxy(rng: np.random.Generator, shape: tuple[int, int], x0: float, y0: float, flux: float, r_e: float
            ) -> np.ndarray:
    """One galaxy on the fine grid (positions and sizes in fine pixels): a disk, a bulge and a disk, an
    elliptical, or a clumpy irregular."""
    q, theta = rng.uniform(0.25, 1.0), rng.uniform(0, math.pi)
    kind = rng.choice(4, p=[0.35, 0.3, 0.2, 0.15])
    if kind == 0:  # pure exponential disk
        return flux * sersic(shape, x0, y0, r_e, 1.0, q, theta)
    if kind == 1:  # bulge + disk
        bt = rng.uniform(0.1, 0.6)
        return flux * (bt * sersic(shape, x0, y0, r_e * 0.3, 4.0, min(1.0, q + 0.3), theta)
                       + (1 - bt) * sersic(shape, x0, y0, r_e, 1.0, q, theta))
    if kind == 2:  # elliptical: de Vaucouleurs, rounder and more compact
        return flux * sersic(shape, x0, y0, r_e * 0.6, rng.uniform(3.5, 5.0), rng.uniform(0.6, 1.0), theta)
    clumps = int(rng.integers(3, 9))  # irregular: clumps along a random walk
    out = 0.3 * flux * sersic(shape, x0, y0, r_e, 0.8, q, theta)
    cx, cy = x0, y0
    for share in rng.dirichlet(np.ones(clumps)):
        cx, cy = cx + rng.normal(0, r_e * 0.5), cy + rng.normal(0, r_e * 0.5)
        out += 0.7 * flux * share * sersic(shape, cx, cy, rng.uniform(0.6, 2.0) * FINE, 1.0, 1.0, 0.0)
    return out


def _power_law(rng: np.random.Generator, lo: float, hi: float, slope: float, n: int) -> np.ndarray:
    """``n`` draws of ``dN/dS ~ S**-slope`` between ``lo`` and ``hi`` (slope > 1)."""
    a = 1 - slope
    u = rng.uniform(size=n)
    return (lo**a + u * (hi**a - lo**a)) ** (1 / a)


def numbered_field(i: int, size: int = 384, psf_scale: float = 1.0) -> tuple[np.ndarray, float]:
    """Simulated field number ``i`` (`simulated_field` drawn from ``default_rng([SEED, i])``; the report's are 0 on,
    the validation bench's 100 on) and its PSF's FWHM (truth pixels)."""
    return _simulated_field(np.random.default_rng([SEED, i]), size, psf_scale)


def simulated_field(rng: np.random.Generator, size: int = 384, psf_scale: float = 1.0) -> np.ndarray:
    """A noise-free deep field of ``size``² truth pixels (see the module): galaxies whose number is Poisson (60 per
    384², most of them too faint to detect: 2-18 sources above 5 units in the first eight fields), fluxes
    ``dN/dS ~ S**-1.6`` from 10 to 300,000, half-light radii growing as ``S**0.3`` (1-40 pixels), a few stars of
    30-100,000, all through one `hst_psf` of FWHM 1.2-3 pixels and jitter 0.2-0.5 pixels, integrated over each
    truth pixel.  ``psf_scale`` widens the PSF (FWHM, jitter and extent; the same draws): 4 gives the protocol's 4x
    binned input the sampling of a drizzled frame at its own pixels (FWHM 1.2-3 input pixels) — `run`'s usual input,
    where the default (0.3-0.75 input pixels) is an undersampled detector's."""
    return _simulated_field(rng, size, psf_scale)[0]


def _simulated_field(rng: np.random.Generator, size: int, psf_scale: float) -> tuple[np.ndarray, float]:
    """`simulated_field` and its PSF's FWHM (truth pixels; `half_max_fwhm` of its fine pixels)."""
    n = size * FINE
    fine = np.zeros((n, n))
    galaxies = rng.poisson(60 * (size / 384) ** 2)
    for flux in _power_law(rng, 10.0, 3e5, 1.6, galaxies):
        x0, y0 = rng.uniform(-10 * FINE, n + 10 * FINE, 2)
        r_e = float(np.clip(10 ** rng.normal(0.25, 0.2) * (flux / 10) ** 0.3, 1.0, 40.0)) * FINE
        fine += _galaxy(rng, (n, n), x0, y0, flux, r_e)
    for flux in _power_law(rng, 30.0, 1e5, 1.5, rng.poisson(3 * (size / 384) ** 2)):
        fine[rng.integers(0, n), rng.integers(0, n)] += flux
    psf = hst_psf(rng.uniform(1.2, 3.0) * psf_scale, rng.uniform(0.2, 0.5) * psf_scale,
                  size=int(round(33 * psf_scale)) | 1)
    return area_downsample(fftconvolve(fine, psf, mode="same"), FINE) * FINE**2, half_max_fwhm(psf) / FINE

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
never more.
"""

from __future__ import annotations

import math

from .cosmics import HST_APERTURE_M

#: the pixel (arcsec) of each HST detector, by (INSTRUME, DETECTOR): a drizzled frame's PSF keeps it, whatever the
#: pixel it was drizzled onto (WFPC2: DETECTOR 1 is the PC, 2-4 the WF chips)
DETECTOR_PIXEL = {("ACS", "WFC"): 0.05, ("ACS", "HRC"): 0.025, ("ACS", "SBC"): 0.032, ("WFC3", "UVIS"): 0.0396,
                  ("WFC3", "IR"): 0.13, ("STIS", "CCD"): 0.0507, ("WFPC2", "1"): 0.0455, ("WFPC2", "2"): 0.0996,
                  ("WFPC2", "3"): 0.0996, ("WFPC2", "4"): 0.0996}
#: the detector pixel's share of the FWHM, in quadrature with the diffraction core's (WFC3/IR F105W: 0.122", about
#: the 0.124" measured; a lower bound elsewhere, where charge diffusion and jitter widen the PSF more)
DETECTOR_SHARE = 0.6
#: the SR output is smoothed by a Gaussian of this many times the PSF's own sigma (FWHM / 2.3548)
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
    return SMOOTH * fwhm * scale / (2 * math.sqrt(2 * math.log(2))) if fwhm > 0 else 0.0

"""WCS for a frame resampled onto a grid ``scale`` times finer.

Output pixel ``p'`` (1-based) sits at input pixel ``p = (p' - 0.5) / scale + 0.5``, so the sky of every
output pixel centre equals the input WCS at the matching input position:

* ``CRPIX' = (CRPIX - 0.5) * scale + 0.5``
* ``CD' = CD / scale`` (or ``CDELT' = CDELT / scale`` with PC)
* SIP ``A_p_q``, ``B_p_q``, ``AP_p_q``, ``BP_p_q`` times ``scale ** (1 - p - q)``

Lookup-table distortions (D2IM, NPOL) are dropped with a warning and a HISTORY note: they are tables of
sub-pixel corrections in detector pixels that cannot be rescaled by a formula.  (astropy's
``WCS.slice`` with a fractional step is not used: it gets CD and SIP frames wrong.)
"""

from __future__ import annotations

import warnings

import numpy as np
from astropy.wcs import WCS, Sip

from ..errors import SettingsError


class WCSWarning(UserWarning):
    """A WCS could only be carried over approximately."""


def _scale_sip_matrix(m: np.ndarray | None, scale: float) -> np.ndarray | None:
    if m is None:
        return None
    p, q = np.indices(m.shape)
    return m * scale ** (1.0 - p - q)


def scale_wcs(wcs: WCS, scale: float) -> tuple[WCS, list[str]]:
    """Return the WCS of the same sky on a pixel grid ``scale`` times finer, and HISTORY notes.

    Parameters
    ----------
    wcs : astropy.wcs.WCS
        A celestial 2-D WCS of the input frame.
    scale : float
        Output pixels per input pixel along each axis.
    """
    if wcs.pixel_n_dim != 2:
        raise SettingsError(f"expected a 2-D WCS (got {wcs.pixel_n_dim} pixel axes)")
    notes: list[str] = []
    out = wcs.deepcopy()
    w = out.wcs
    w.crpix = (np.asarray(w.crpix) - 0.5) * scale + 0.5
    if w.has_cd():
        w.cd = np.asarray(w.cd) / scale
    else:
        w.cdelt = np.asarray(w.cdelt) / scale
    if wcs.sip is not None:
        s = wcs.sip
        out.sip = Sip(_scale_sip_matrix(s.a, scale), _scale_sip_matrix(s.b, scale),
                      _scale_sip_matrix(s.ap, scale), _scale_sip_matrix(s.bp, scale), w.crpix)
    if wcs.cpdis1 is not None or wcs.cpdis2 is not None or wcs.det2im1 is not None or wcs.det2im2 is not None:
        out.cpdis1 = out.cpdis2 = out.det2im1 = out.det2im2 = None
        msg = ("lookup-table distortions (NPOL/D2IM) dropped: they are sub-pixel corrections on the "
               "detector grid; positions agree with the input's SIP+linear WCS")
        notes.append(msg)
        warnings.warn(msg, WCSWarning, stacklevel=2)
    w.set()
    return out, notes


def flip_rows(wcs: WCS, height: int) -> WCS:
    """The WCS of the same pixels with their rows in the other order (row ``y`` becomes ``height - 1 - y``): a
    picture's AVM WCS (rows counted bottom-up, as FITS does) for its rows as stored, top-down.  Linear WCS only (AVM
    holds no distortion)."""
    if wcs.sip is not None or wcs.cpdis1 is not None or wcs.cpdis2 is not None:
        raise SettingsError("flip_rows: a linear WCS only")
    out = wcs.deepcopy()
    w = out.wcs
    crpix = np.array(w.crpix, float)
    crpix[1] = height + 1 - crpix[1]
    if w.has_cd():
        cd = np.array(w.cd, float)
        cd[:, 1] *= -1
        w.crpix, w.cd = crpix, cd
    else:
        pc = np.array(w.get_pc(), float)
        pc[:, 1] *= -1
        w.crpix, w.pc = crpix, pc
    w.set()
    return out


def wcs_header(wcs: WCS):
    """The FITS header cards of ``wcs`` (SIP included, lookup tables never)."""
    hdr = wcs.to_header(relax=True)
    # to_header records DATE-OBS/MJD-OBS it derived; the caller carries the original keywords itself
    for key in ("MJDREF", "DATEREF"):
        hdr.remove(key, ignore_missing=True)
    return hdr


def output_to_input_pixels(xp: np.ndarray, yp: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """0-based output pixel coordinates to the matching 0-based input coordinates."""
    return (xp + 0.5) / scale - 0.5, (yp + 0.5) / scale - 0.5

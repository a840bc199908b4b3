"""WCS for a frame resampled onto a grid ``scale`` times finer.

Output pixel ``p'`` (1-based) sits at input pixel ``p = (p' - 0.5) / scale + 0.5``, so the sky of every
output pixel centre equals the input WCS at the matching input position:

* ``CRPIX' = (CRPIX - 0.5) * scale + 0.5``
* ``CD' = CD / scale`` (or ``CDELT' = CDELT / scale`` with PC)
* SIP ``A_p_q``, ``B_p_q``, ``AP_p_q``, ``BP_p_q`` times ``scale ** (1 - p - q)``

* lookup-table distortions (D2IM, NPOL: tables of sub-pixel corrections in detector pixels, HST's ACS/WFC and
  WFC3/UVIS frames carry them) are tables of the same corrections on the finer grid: ``CRVAL' = (CRVAL - 0.5) *
  scale + 0.5``, ``CDELT' = CDELT * scale``, values times ``scale``.  The FITS output carries them as
  ``WCSDVARR``/``D2IMARR`` extensions (`wcs_tables`), as HST's own files do: read its WCS with the file,
  ``WCS(hdul["RED"].header, hdul)``.

(astropy's ``WCS.slice`` with a fractional step is not used: it gets CD and SIP frames wrong.)
"""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, DistortionLookupTable, Sip

from ..errors import SettingsError


def _scale_sip_matrix(m: np.ndarray | None, scale: float) -> np.ndarray | None:
    if m is None:
        return None
    p, q = np.indices(m.shape)
    return m * scale ** (1.0 - p - q)


def _moved_lookup(table: DistortionLookupTable | None, scale: float, offset: tuple[float, float]
                  ) -> DistortionLookupTable | None:
    """A lookup-table distortion on a grid ``scale`` times finer whose pixels are counted from its 0-based pixel
    ``offset`` on: the same corrections, in those pixels (its CRVAL is a pixel position, its values pixels)."""
    if table is None:
        return None
    crval = (np.asarray(table.crval, float) - 0.5) * scale + 0.5 - np.asarray(offset, float)
    return DistortionLookupTable(np.asarray(table.data, np.float32) * np.float32(scale), tuple(table.crpix),
                                 tuple(crval), tuple(np.asarray(table.cdelt, float) * scale))


def _move_lookups(out: WCS, wcs: WCS, scale: float = 1.0, offset: tuple[float, float] = (0.0, 0.0)) -> bool:
    """Set ``out``'s lookup-table distortions to ``wcs``'s moved (`_moved_lookup`); whether it has any."""
    if not has_lookup_tables(wcs):
        return False
    for name in ("cpdis1", "cpdis2", "det2im1", "det2im2"):
        setattr(out, name, _moved_lookup(getattr(wcs, name), scale, offset))
    return True


def has_lookup_tables(wcs: WCS) -> bool:
    """Whether ``wcs`` has lookup-table distortions (NPOL ``cpdis``, D2IM ``det2im``)."""
    return any(t is not None for t in (wcs.cpdis1, wcs.cpdis2, wcs.det2im1, wcs.det2im2))


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
    if _move_lookups(out, wcs, scale):
        notes.append("lookup-table distortions (NPOL/D2IM) carried onto the finer grid as WCSDVARR/D2IMARR "
                     "extensions: read the FITS output's WCS with its file, WCS(hdul['RED'].header, hdul)")
    w.set()
    return out, notes


def crop_wcs(wcs: WCS, x0: int, y0: int, width: int, height: int) -> WCS:
    """The WCS of the ``width`` x ``height`` pixels of a frame that start at its 0-based pixel ``(x0, y0)`` (a
    cut-out): every pixel keeps its sky position.  CRPIX, SIP's reference pixel and the lookup tables' CRVAL (pixel
    positions) move by the offset; nothing else changes, so SIP and NPOL/D2IM distortions stay exact.  (Done here,
    not by ``WCS.slice``: astropy before 6.1 left the lookup tables where they were.)"""
    out = wcs.deepcopy()
    w = out.wcs
    w.crpix = np.asarray(w.crpix, float) - (x0, y0)
    if wcs.sip is not None:
        s = wcs.sip
        out.sip = Sip(s.a, s.b, s.ap, s.bp, w.crpix)
    _move_lookups(out, wcs, offset=(x0, y0))
    out.pixel_shape = (width, height)
    w.set()
    return out


def flip_rows(wcs: WCS, height: int) -> WCS:
    """The WCS of the same pixels with their rows in the other order (row ``y`` becomes ``height - 1 - y``): a
    picture's AVM WCS (rows counted bottom-up, as FITS does) for its rows as stored, top-down.  Linear WCS only (AVM
    holds no distortion)."""
    if wcs.sip is not None or has_lookup_tables(wcs):
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


def wcs_header(wcs: WCS) -> fits.Header:
    """The FITS header cards of ``wcs``: SIP included, and lookup-table distortions' keywords (CPDIS, DP, D2IMDIS,
    D2IM) naming the extensions `wcs_tables` gives, which must be in the same file."""
    if has_lookup_tables(wcs):
        hdr = wcs.to_fits(relax=True)[0].header
        for key in ("SIMPLE", "BITPIX", "NAXIS", "EXTEND"):
            hdr.remove(key, ignore_missing=True)
    else:
        hdr = wcs.to_header(relax=True)
    # to_header records DATE-OBS/MJD-OBS it derived; the caller carries the original keywords itself
    for key in ("MJDREF", "DATEREF"):
        hdr.remove(key, ignore_missing=True)
    return hdr


def wcs_tables(wcs: WCS | None) -> list[fits.ImageHDU]:
    """The ``WCSDVARR``/``D2IMARR`` extensions of ``wcs``'s lookup-table distortions (none without them), to be
    written in the file whose headers hold `wcs_header`."""
    if wcs is None or not has_lookup_tables(wcs):
        return []
    return [fits.ImageHDU(np.asarray(h.data, np.float32), h.header) for h in wcs.to_fits(relax=True)[1:]]


def output_to_input_pixels(xp: np.ndarray, yp: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """0-based output pixel coordinates to the matching 0-based input coordinates."""
    return (xp + 0.5) / scale - 0.5, (yp + 0.5) / scale - 0.5

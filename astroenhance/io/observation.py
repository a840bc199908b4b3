"""What a frame observed, from its header: the filter and its wavelength, and the Astronomy Visualization Metadata
(AVM) a picture of it carries — telescope, instrument, band, time, and whether its colours are the filters' own,
predicted, or none (`avm_observation`)."""

from __future__ import annotations

import math
import re

from astropy.io import fits

#: effective wavelengths (nm) of broad-band letters, for headers without PHOTPLAM
BAND_NM = {"u": 365, "g": 475, "r": 625, "i": 770, "z": 900, "y": 1000, "U": 365, "B": 445, "V": 551, "R": 658,
           "I": 806, "J": 1220, "H": 1630, "K": 2190}


def wavelength_nm(header: fits.Header) -> tuple[str, float | None]:
    """The filter name and effective wavelength in nm from PHOTPLAM (Angstrom) or the filter's name.

    HST names give it directly (F606W: 606 nm; WFC3/IR F105W: 1050 nm); JWST's in tens of nm (NIRCam F200W: 2000
    nm, F444W: 4440, MIRI F770W: 7700 — read the HST way they sorted before HST's F814W); broad-band letters (CFHT
    ``g.MP9401``, Johnson ``V``) use standard effective wavelengths.
    """
    name = ""
    for key in ("FILTER", "FILTER1", "FILTER2", "FILTNAM1"):
        value = str(header.get(key, "")).strip()
        # (WFPC2's FILTER1/FILTER2 are filter-wheel numbers; its names are FILTNAM1/FILTNAM2)
        if value and not value.upper().startswith("CLEAR") and not value.isdigit():
            name = value
            break
    if header.get("PHOTPLAM"):
        try:
            return name, float(header["PHOTPLAM"]) / 10.0
        except (TypeError, ValueError):
            pass
    m = re.match(r"^F(\d{3,4})[WMNLXPC]", name.upper())
    if m:
        n = int(m.group(1))
        jwst = str(header.get("TELESCOP", "")).strip().upper() == "JWST"
        return name, float(n * 10 if n < 200 or jwst else n)
    if name and name[0] in BAND_NM:
        return name, float(BAND_NM[name[0]])
    return name, None


#: AVM's ``Spectral.Band`` of a central wavelength (nm): the upper bound of each, as HST's channels split them (its UV
#: filters lie under 400 nm, its IR channel from 1 micron)
AVM_BANDS = ((0.01, "Gamma-ray"), (10.0, "X-ray"), (400.0, "Ultraviolet"), (1000.0, "Optical"), (1e6, "Infrared"),
             (1e7, "Millimeter"), (math.inf, "Radio"))


def avm_band(nm: float) -> str:
    """AVM's ``Spectral.Band`` of a central wavelength ``nm`` (`AVM_BANDS`)."""
    return next(band for top, band in AVM_BANDS if nm < top)


ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")
ISO_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


def avm_observation(primary: fits.Header, image: fits.Header, grey: bool) -> dict[str, object]:
    """The AVM fields (dotted names, as `pyavm.AVM` has them) a picture output carries besides its sky position, from
    its FITS output's ``primary`` header (the provenance) and ``image`` header (the frame's kept keywords); ``grey``:
    the frame had one channel.

    A frame: ``Facility`` (TELESCOP), ``Instrument`` (INSTRUME), ``Spectral.Bandpass``, ``.CentralWavelength`` and
    ``.Band`` (`wavelength_nm`), ``Temporal.StartTime`` (DATE-OBS, with TIME-OBS) and ``.IntegrationTime`` (EXPTIME),
    and ``Spectral.ColorAssignment``: ``Pseudocolor`` where the colorizer coloured it (its colour is predicted from
    one band's brightness, said in ``Spectral.Notes``), ``Grayscale`` where it stays grey; a colour picture's own
    colours are not described.  A composite (`compose`): each channel's filter and colour (its colours are the
    filters'), or, for four bands or more, a note.  A mosaic: what its frames agree on (its header keeps only
    that: `compose.drop_differing`)."""
    if "AE_CMETH" in primary:
        if "AE_NBAND" in primary:
            return {"Spectral.Notes": f"{primary['AE_NBAND']} bands, each shown as a hue by its rank in wavelength "
                                      "(the FITS HISTORY lists them): the colours are the filters', not predicted"}
        channels = [(str(primary[f"AE_{c[0]}FLT"]), c) for c in ("Blue", "Green", "Red")
                    if f"AE_{c[0]}FLT" in primary and not str(primary.get(f"AE_{c[0]}SRC", "")).startswith("mean")]
        return {"Spectral.Bandpass": [f for f, _ in channels], "Spectral.ColorAssignment": [c for _, c in channels],
                "Spectral.Notes": "a composite of filters: the colours are the filters', not predicted"}
    out: dict[str, object] = {}
    for key, field in (("TELESCOP", "Facility"), ("INSTRUME", "Instrument")):
        if str(image.get(key, "")).strip():
            out[field] = [str(image[key]).strip()]
    name, nm = wavelength_nm(image)
    if name:
        out["Spectral.Bandpass"] = [name]
    if nm and math.isfinite(nm) and nm > 0:
        out["Spectral.CentralWavelength"] = [round(nm, 3)]
        out["Spectral.Band"] = [avm_band(nm)]
    date = str(image.get("DATE-OBS", "")).strip()
    if ISO_DATE.match(date):  # (an old header's "20/01/94" is not the ISO 8601 AVM asks for: left out)
        time = str(image.get("TIME-OBS", "")).strip()
        out["Temporal.StartTime"] = [f"{date}T{time}" if ISO_TIME.match(time) and "T" not in date else date]
    try:
        if float(image.get("EXPTIME", 0)) > 0:
            out["Temporal.IntegrationTime"] = [float(image["EXPTIME"])]
    except (TypeError, ValueError):
        pass
    if primary.get("AE_COLOR"):  # (True, or a mosaic's "mixed": some of its frames coloured)
        try:
            shown = f"{float(primary.get('AE_COSTR', 1.0)):g} of its strength"
        except ValueError:  # (a mosaic's "mixed")
            shown = "strengths that differ between its frames"
        out["Spectral.ColorAssignment"] = ["Pseudocolor"]
        out["Spectral.Notes"] = (f"colour predicted by a neural network from one band's brightness (shown at {shown}): "
                                 "not measured")
    elif grey:
        out["Spectral.ColorAssignment"] = ["Grayscale"]
    return out

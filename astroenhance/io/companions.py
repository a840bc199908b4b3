"""Companion files: the noise or weight map that a mosaic's frame comes with, beside it in its folder.

High-level science products ship a frame's noise in a separate file next to it: Frontier Fields and CANDELS mosaics
``..._drz.fits`` with ``..._wht.fits``, 3D-HST ``..._sci.fits`` with ``..._wht.fits``, cut-outs ``x.fits`` with
``x_rms.fits`` or ``x_image.fits`` with ``x_noise_map.fits``.  A frame's name with its last part dropped when that
names a frame (``drz``, ``drc``, ``sci``, ``image``, ``img``, ``data``) — or as it is — followed by ``_rms``,
``_err``, ``_noise``, ``_noise_map`` or ``_sigma`` names its rms map (read as ``run --noise`` reads one), by ``_wht``,
``_weight`` or ``_ivm`` its inverse-variance weight map (as ``--weight``).  Names compare without case; any FITS
suffix (``.fits``, ``.fits.gz``, ...) on either.  `run` uses a frame's map as its noise and does not enhance the
map itself as a frame (`batch.pair_companions`).  PSFs, masks and catalogues (``_psf``, ``_mask``, ``_catalog``) are
recognised as companions too (`evaluate --task hst` leaves them out of its truths) but carry no noise.
"""

from __future__ import annotations

from pathlib import Path

from .readers import FITS_SUFFIXES

FRAME_TOKENS = ("drz", "drc", "sci", "image", "img", "data")  # a frame's own last name part, dropped to find its maps
RMS_TOKENS = ("rms", "err", "noise", "noise_map", "sigma")  # an rms (sigma) map, as --noise
WEIGHT_TOKENS = ("wht", "weight", "ivm")  # an inverse-variance weight map, as --weight
OTHER_TOKENS = ("psf", "mask", "catalog", "map")  # companions that carry no noise
KINDS = {**{t: "noise" for t in RMS_TOKENS}, **{t: "weight" for t in WEIGHT_TOKENS}}


def fits_stem(path: Path) -> str | None:
    """The lower-case name of a FITS file without its FITS suffix (None for any other file)."""
    name = path.name.lower()
    for suffix in sorted(FITS_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def fits_names(folder: Path) -> dict[str, Path]:
    """The FITS files of ``folder`` by lower-case stem (`fits_stem`; empty when it cannot be listed)."""
    try:
        return {s: p for p in folder.iterdir() if (s := fits_stem(p)) is not None and p.is_file()}
    except OSError:
        return {}


def companion_token(path: Path) -> str | None:
    """The companion part of a FITS file's name (``rms``, ``noise_map``, ``wht``, ``psf``...), or None for a frame:
    the last one or two ``_``/``-``-separated parts of its name, where the name holds no ``sci`` part (a science
    frame, whatever it ends with)."""
    stem = fits_stem(path)
    if stem is None:
        return None
    parts = stem.replace("-", "_").split("_")
    if "sci" in parts:
        return None
    last_two = "_".join(parts[-2:])
    if last_two in KINDS and len(parts) > 2:
        return last_two
    return parts[-1] if parts[-1] in (*KINDS, *OTHER_TOKENS) else None


def find_companion(frame: Path, names: dict[str, Path] | None = None) -> tuple[str, Path] | None:
    """``("noise" | "weight", path)`` for the rms or weight map beside the FITS ``frame`` (module docstring), or None.
    An rms map is preferred to a weight map.  ``names``: the folder's FITS files by lower-case stem (read from the
    folder when not given)."""
    stem = fits_stem(frame)
    if stem is None or companion_token(frame) is not None:
        return None
    names = fits_names(frame.parent) if names is None else names
    bases = [stem]
    for token in FRAME_TOKENS:
        for sep in ("_", "-"):
            if stem.endswith(sep + token):
                bases.append(stem[: -len(token) - 1])
    for tokens in (RMS_TOKENS, WEIGHT_TOKENS):
        for base in bases:
            for token in tokens:
                for sep in ("_", "-"):
                    hit = names.get(f"{base}{sep}{token}")
                    if hit is not None and hit != frame:
                        return KINDS[token], hit
    return None

"""Companion files: the noise or weight map that a mosaic's frame comes with, beside it in its folder.

High-level science products ship a frame's noise in a separate file next to it: Frontier Fields and CANDELS mosaics
``..._drz.fits`` with ``..._wht.fits``, 3D-HST ``..._sci.fits`` with ``..._wht.fits``, cut-outs ``x.fits`` with
``x_rms.fits`` or ``x_image.fits`` with ``x_noise_map.fits``.  A frame's name with its last part dropped when that
names a frame (``drz``, ``drc``, ``sci``, ``image``, ``img``, ``data``) — or as it is — followed by ``_rms``,
``_err``, ``_noise``, ``_noise_map`` or ``_sigma`` names its rms map (read as ``run --noise`` reads one), by ``_wht``,
``_weight`` or ``_ivm`` its inverse-variance weight map (as ``--weight``).  Names compare without case; any FITS
suffix (``.fits``, ``.fits.gz``, ...) on either.  `run` uses a frame's map as its noise and does not enhance the
map itself as a frame (`batch.pair_companions`).  The frame's other companions named the same way — a PSF
(``_psf``), a segmentation map (``_seg``), an exposure-time map (``_exp``), a background (``_bkg``), a context image
(``_ctx``), a mask or flag map (``_mask``, ``_flag``) — carry no noise and are not frames either: `run` leaves them
alone when their frame is in the run; `evaluate --task hst` leaves every such file out of its truths.
A WFPC2 exposure's data-quality file is named after it by the archive's suffixes, ``x_c1m`` for ``x_c0m`` and
``x_c1f`` for ``x_c0f`` (`find_dq_companion`): `run` reads it as ``--dq`` reads one.
"""

from __future__ import annotations

from pathlib import Path

from .readers import FITS_SUFFIXES

FRAME_TOKENS = ("drz", "drc", "sci", "image", "img", "data")  # a frame's own last name part, dropped to find its maps
RMS_TOKENS = ("rms", "err", "noise", "noise_map", "sigma")  # an rms (sigma) map, as --noise
WEIGHT_TOKENS = ("wht", "weight", "ivm")  # an inverse-variance weight map, as --weight
OTHER_TOKENS = {"psf": "PSF", "seg": "segmentation map", "exp": "exposure-time map", "bkg": "background map",
                "ctx": "context image", "mask": "mask", "flag": "flag map"}  # companions that carry no noise
KINDS = {**{t: "noise" for t in RMS_TOKENS}, **{t: "weight" for t in WEIGHT_TOKENS}}
DQ_SUFFIXES = {"c0m": "c1m", "c0f": "c1f"}  # a WFPC2 exposure's name part -> its data-quality file's


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
    return parts[-1] if parts[-1] in (*KINDS, *OTHER_TOKENS, *DQ_SUFFIXES.values(), "catalog", "map") else None


def find_companion(frame: Path, names: dict[str, Path] | None = None) -> tuple[str, Path] | None:
    """``("noise" | "weight", path)`` for the rms or weight map beside the FITS ``frame`` (module docstring), or None.
    An rms map is preferred to a weight map.  ``names``: the folder's FITS files by lower-case stem (read from the
    folder when not given)."""
    stem = fits_stem(frame)
    if stem is None or companion_token(frame) is not None:
        return None
    names = fits_names(frame.parent) if names is None else names
    for tokens in (RMS_TOKENS, WEIGHT_TOKENS):
        for token, hit in _named(frame, stem, tokens, names):
            return KINDS[token], hit
    return None


def find_dq_companion(frame: Path, names: dict[str, Path] | None = None) -> Path | None:
    """The data-quality file beside the WFPC2 exposure ``frame`` (``x_c1m`` for ``x_c0m``, ``x_c1f`` for ``x_c0f``;
    any FITS suffix), or None.  ``names``: the folder's FITS files by lower-case stem (read when not given)."""
    stem = fits_stem(frame)
    if stem is None or len(stem) < 5 or stem[-4] not in "_-" or stem[-3:] not in DQ_SUFFIXES:
        return None
    names = fits_names(frame.parent) if names is None else names
    hit = names.get(stem[:-3] + DQ_SUFFIXES[stem[-3:]])
    return hit if hit is not None and hit != frame else None


def other_companions(frame: Path, names: dict[str, Path] | None = None) -> list[tuple[str, Path]]:
    """``(what, path)`` of the FITS ``frame``'s companions that carry no noise (PSF, segmentation map, ...: module
    docstring), named after it in its folder."""
    stem = fits_stem(frame)
    if stem is None or companion_token(frame) is not None:
        return []
    names = fits_names(frame.parent) if names is None else names
    return [(OTHER_TOKENS[token], hit) for token, hit in _named(frame, stem, tuple(OTHER_TOKENS), names)]


def _named(frame: Path, stem: str, tokens: tuple[str, ...], names: dict[str, Path]) -> list[tuple[str, Path]]:
    """The files of ``names`` called ``base + _token`` (or ``-token``) for the frame's name ``stem`` and the bases it
    gives (its last part dropped where that names a frame), in the order of ``tokens``."""
    bases = [stem] + [stem[: -len(t) - 1] for t in FRAME_TOKENS for sep in ("_", "-") if stem.endswith(sep + t)]
    found = []
    for token in tokens:
        for base in bases:
            for sep in ("_", "-"):
                hit = names.get(f"{base}{sep}{token}")
                if hit is not None and hit != frame and all(hit != h for _, h in found):
                    found.append((token, hit))
    return found

"""One boundary for every input form: a path (FITS or display image) or an in-memory array (+ WCS).

`open_frames` yields `FrameSource` objects that read rows on demand (FITS data is memory-mapped or read
by sections), so a frame never has to be in memory whole.  Every failure is an `InputError` whose
message names the file and the problem.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy import __version__ as astropy_version
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from ..errors import (
    DQFileError,
    EnhancedOutputError,
    InputError,
    NoImageError,
    NoiseMapError,
    OutputError,
    SettingsError,
    no_such,
    short_reason,
)
from .compression import XZ_MAGIC, compressed_whole, decompressed_copy, first_bytes, open_whole
from .cutout import Cutout, cut_frames
from .noise import (
    ACS_WFC3_FLAGS,
    DQFlags,
    NoiseMap,
    archive_product,
    companion,
    dq_flags,
    dq_planes,
    dq_reader,
    file_noise,
    flagged_as_no_data,
    map_noise,
    mask_cosmic_rays,
    misfit_companions,
    sampled_median,
    unflagged_single_exposure,
    unmeasured,
    unweighted_reader,
)

# An HST exposure's files by processing level, per family of products (the archive's suffixes): raw -> ima (IR
# ramps) -> flt (calibrated) -> flc (also CTE-corrected); WFPC2 d0m/d0f (raw) -> c0m/c0f; crj -> crc; drz -> drc
PRODUCT_LEVELS = {"raw": ("exposure", 0), "ima": ("exposure", 1), "flt": ("exposure", 2), "flc": ("exposure", 3),
                  "d0m": ("wfpc2", 0), "d0f": ("wfpc2", 0), "c0m": ("wfpc2", 2), "c0f": ("wfpc2", 2),
                  "crj": ("combined", 2), "crc": ("combined", 3), "drz": ("drizzled", 2), "drc": ("drizzled", 3)}
#: HST archive names of uncalibrated exposures (ACS/WFC3/STIS, WFPC2): the level-0 products
RAW_PRODUCTS = tuple(f"_{suffix}" for suffix, (_, level) in PRODUCT_LEVELS.items() if level == 0)
GEIS_RAW = ("d0h", "d0d")  # WFPC2's uncalibrated exposure in GEIS, the name its FITS files' FILENAME may keep
FITS_SUFFIXES = (".fits.gz", ".fits.fz", ".fit.gz", ".fit.fz", ".fts.gz", ".fts.fz", ".fits.bz2", ".fit.bz2", ".fts.bz2",
                 ".fits.xz", ".fit.xz", ".fts.xz", ".fits", ".fit", ".fts")
IMAGE_SUFFIXES = (".png", ".tiff", ".tif", ".jpeg", ".jpg")
#: a pixel's solid angle (JWST: steradians, square arcseconds), which turns surface brightness (MJy/sr) into flux
#: per pixel: true of the frame's grid only, so rescaled on any other (`rescale_pixel_area`)
PIXEL_AREA = ("PIXAR_SR", "PIXAR_A2")
#: header keywords an astronomer wants carried into the enhanced frame
KEEP_KEYWORDS = ("TELESCOP", "INSTRUME", "DETECTOR", "FILTER", "FILTER1", "FILTER2", "FILTNAM1", "DATE-OBS", "TIME-OBS",
                 "MJD-OBS", "TARGNAME", "OBJECT", "EXPTIME", "PROPOSID", "ROOTNAME", "PHOTPLAM", "EQUINOX",
                 "RADESYS", "BUNIT", "PHOTFLAM", "PHOTFNU", "PHOTZPT", *PIXEL_AREA)


#: IRAF's logical = physical (LTM the unit matrix, LTV zero): `FrameSource.physical` where the header says nothing
IDENTITY_PHYSICAL = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
_PHYSICAL_KEYS = ("LTM1_1", "LTM1_2", "LTM2_1", "LTM2_2", "LTV1", "LTV2")


def physical_of(header: fits.Header) -> tuple[float, float, float, float, float, float]:
    """A frame header's IRAF physical coordinates (`FrameSource.physical`): its LTM/LTV cards, each missing one
    from the identity; the identity where a card is not a finite number or the matrix is singular."""
    try:
        found = tuple(float(header.get(k, d)) for k, d in zip(_PHYSICAL_KEYS, IDENTITY_PHYSICAL))
    except (TypeError, ValueError):
        return IDENTITY_PHYSICAL
    if not all(np.isfinite(found)) or found[0] * found[3] - found[1] * found[2] == 0:
        return IDENTITY_PHYSICAL
    return found


def physical_cards(physical: tuple[float, ...], scale: int) -> list[tuple[str, float, str]]:
    """FITS cards giving each pixel of an output ``scale`` times finer than its frame the frame's physical
    coordinates (`FrameSource.physical`): output pixel = scale x (frame pixel - 0.5) + 0.5, so LTM is ``scale``
    times the frame's and LTV ``scale`` x LTV - (scale - 1) / 2.  DS9 and IRAF show them as "physical": the
    input pixel (on its detector) an output pixel lies in.  Off-diagonal terms only where the frame has them."""
    m11, m12, m21, m22, v1, v2 = physical
    cards = [("LTV1", scale * v1 - (scale - 1) / 2, "output pixel = LTM . physical + LTV"),
             ("LTV2", scale * v2 - (scale - 1) / 2, ""),
             ("LTM1_1", scale * m11, "physical: the input pixels (DS9, IRAF)"),
             ("LTM1_2", scale * m12, ""), ("LTM2_1", scale * m21, ""), ("LTM2_2", scale * m22, "")]
    return [c for c in cards if c[0] not in ("LTM1_2", "LTM2_1") or c[1] != 0]


def display_range(arr: np.ndarray) -> tuple[float, float]:
    """The value range a display image's pixels are drawn from: its integer type's (0-255, 0-65535, ...), or
    [0, 1] for floats within it (else the floats' own finite range).  ``TypeError`` for other pixel types."""
    if arr.dtype == np.uint8:
        rng: tuple[float, float] = (0.0, 255.0)
    elif arr.dtype == np.uint16:
        rng = (0.0, 65535.0)
    elif arr.dtype.kind == "f":
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        rng = (0.0, 1.0) if lo >= 0 and hi <= 1 else (lo, hi)
    elif arr.dtype.kind in "iu" or arr.dtype == bool:
        info = np.iinfo(arr.dtype) if arr.dtype != bool else None
        rng = (0.0, 1.0) if info is None else (float(max(info.min, 0)), float(info.max))
    else:
        raise TypeError(f"unsupported pixel type {arr.dtype}")
    return rng


def output_stem(path: str | Path) -> str:
    """The input's name without its image suffix (``j8bt06nyq_flt.fits.gz`` -> ``j8bt06nyq_flt``)."""
    name = Path(path).name
    lower = name.lower()
    for suffix in FITS_SUFFIXES + IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def is_fits(path: str | Path) -> bool:
    return str(path).lower().endswith(FITS_SUFFIXES)


@dataclass
class FrameSource:
    """One 2-D frame (grey or colour) to enhance, read by rows.

    ``origin`` is ``"lower"`` when row 0 is the bottom of the picture (FITS) and ``"upper"`` when it is
    the top (PNG/TIFF/JPEG).  ``read_rows`` returns float32 ``(rows, W)`` or ``(rows, W, 3)`` in the
    input's units, with every non-finite value as NaN.
    """

    name: str
    shape: tuple[int, int]
    channels: int
    origin: str
    read_rows: Callable[[int, int], np.ndarray]
    wcs: WCS | None = None
    header: fits.Header | None = None
    label: str = ""
    dtype: str = "float32"
    dtype_range: tuple[float, float] | None = None
    path: Path | None = None
    # the archive's name for the file where its header gives one (FILENAME: 'j8bt06nyq_flt.fits', WFPC2's
    # 'u5780205r_cvt.c0h'): what kind of product a renamed file is
    archive_name: str = ""
    notes: list[str] = field(default_factory=list)
    noise: float | None = None  # the frame's noise sigma in input units, from the file (`noise`); None: estimate it
    noise_from: str = ""  # ERR, WHT, "WHT <name>" (a weight map by path) or the rms map's name
    noise_file: Path | None = None  # the rms or weight map's file, where the noise came from one by path
    noise_rows: Callable[[int, int], np.ndarray] | None = None  # its per-pixel sigma rows (ERR, 1/sqrt(WHT), rms map)
    noise_map: NoiseMap | None = None  # the sky's sigma across the frame where it varies (`noise.sky_noise_map`,
    # made by the engine when it fits the frame); None: one sigma for the frame
    dq_mask: int = 0  # the DQ flags read as no-data (0: none, or no DQ extension)
    dq_flags: DQFlags = ACS_WFC3_FLAGS  # its instrument's DQ conventions (`noise.dq_flags`)
    dq_file: Path | None = None  # the data-quality file its DQ came from, where one by path (WFPC2's _c1m)
    weight_mask: bool = False  # pixels of zero weight in its WHT extension are read as no data
    # how many pixels were read whose value lies beyond float32's range (read as no data), counted as rows are read
    # (a row read twice counts twice: whether any were is what it tells); one list, shared by the frame's cut-outs
    beyond_float32: list[int] = field(default_factory=lambda: [0])
    cube_planes: int = 0  # a plane of a cube of this many under one WCS (not WFPC2's stack: its chips have their own)
    # per-pixel companions for the cosmic-ray search (`noise.mask_cosmic_rays`): ERR rows, DQ rows (integers)
    pixel_noise_rows: Callable[[int, int], np.ndarray] | None = None
    dq_rows: Callable[[int, int], np.ndarray] | None = None
    cosmic_rays: int = -1  # pixels flagged as cosmic-ray hits and read as no-data (-1: not searched)
    hot_pixels: int = -1  # isolated pixels no PSF makes, read as no-data (`noise.mask_isolated_pixels`; -1: not searched)
    star_fwhm: tuple[float, str] | None = None  # its PSF FWHM (pixels) from its sources and how (`noise.frame_star_fwhm`)
    cosmic_ray_limit: float = 0.0  # the peak / neighbours ratio above which a pixel is not a star
    holes_filled: int = 0  # no-data pixels the last enhancement showed interpolated (`pipeline.holes`)
    fill_holes: int | None = None  # the longest no-data run already shown filled in its pixels (a composite's
    # bands: `compose.filled_holes`); None: the enhancement's own (--fill-holes, grey frames)
    section: str = ""  # a cut-out's pixels of the frame, FITS section '[x0:x1,y0:y1]' (1-based; `io.cutout`); "": all
    cutout: str = ""  # that cut-out as asked for, in words (`io.cutout.Cutout.describe`)
    cut_tag: str = ""  # a cut-out's part of ``label``: its target's name (if any) and its section, x1-x2y1-y2
    # where its pixels lie on the detector, IRAF's physical coordinates (LTM1_1, LTM1_2, LTM2_1, LTM2_2, LTV1, LTV2:
    # pixel = LTM . physical + LTV, 1-based, x first): the header's (an HST subarray's place on its chip), identity
    # where it has none; a cut-out's moves by its offset.  The outputs map their finer pixels onto it (`physical_cards`)
    physical: tuple[float, float, float, float, float, float] = IDENTITY_PHYSICAL

    @property
    def chip(self) -> str:
        """Its chip's label (what --hdu takes: sci2, chip3), without a cut-out's part (`io.cutout`)."""
        return self.label.removesuffix(self.cut_tag).removesuffix(".") if self.cut_tag else self.label

    @property
    def is_display_image(self) -> bool:
        return self.dtype_range is not None

    def sample(self, max_pixels: int = 1_000_000) -> np.ndarray:
        """An evenly strided subset of rows, for interval statistics with bounded memory.  Where those rows hold no
        finite pixel (data in a strip between them), the rows that do, up to ``max_pixels``: "all NaN" is then true."""
        h, w = self.shape
        step = max(1, int(np.ceil(h * w / max_pixels)))
        rows = np.concatenate([self.read_rows(y, y + 1) for y in range(0, h, step)], axis=0)
        if step == 1 or np.isfinite(rows).any():
            return rows
        found, block = [], max(1, max_pixels // w)
        for y in range(0, h, block):
            part = self.read_rows(y, min(h, y + block))
            found.extend(r for r in part if np.isfinite(r).any())
            if len(found) * w >= max_pixels:
                break
        return np.stack(found[: max(1, max_pixels // w)]) if found else rows


def from_array(data: np.ndarray, wcs: WCS | None = None, *, name: str = "array", origin: str = "lower",
               header: fits.Header | None = None, dtype_range: tuple[float, float] | None = None,
               sigma: np.ndarray | None = None) -> FrameSource:
    """Wrap an in-memory ``(H, W)`` or ``(H, W, 3)`` array (and optional WCS) as a `FrameSource`.

    A masked array's masked pixels are no data (NaN); ``wcs`` may be a `~astropy.io.fits.Header` (its WCS is read).
    ``sigma``: a grey frame's per-pixel noise (an ERR plane, in its units), as ``run --noise`` reads an rms map:
    where it has no finite value > 0 the pixel is no data; a number is one sigma for every pixel."""
    if isinstance(data, np.ma.MaskedArray):  # np.asarray would keep the values under the mask
        data = np.ma.filled(data.astype(np.float64 if data.dtype.itemsize > 4 else np.float32), np.nan)
    arr = np.asarray(data)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise InputError(f"{name}: expected a (H, W) or (H, W, 3) array (got shape {arr.shape}){_shape_hint(arr.shape)}")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name}: expected real numbers (got a {arr.dtype} array)")
    if isinstance(wcs, fits.Header):
        full = WCS(wcs)
        wcs = full.celestial if full.has_celestial else None
    elif wcs is not None and not isinstance(wcs, WCS):
        raise InputError(f"{name}: wcs must be an astropy WCS or FITS header (got {type(wcs).__name__})")
    _check_size(name, arr.shape[:2])
    check_linear_units(name, header)

    beyond = [0]

    def read_rows(y0: int, y1: int) -> np.ndarray:
        return _finite_float32(arr[y0:y1], beyond)

    src = FrameSource(name=name, shape=arr.shape[:2], channels=1 if arr.ndim == 2 else 3, origin=origin,
                      read_rows=read_rows, wcs=wcs, header=header, dtype=str(arr.dtype), dtype_range=dtype_range,
                      beyond_float32=beyond)
    if sigma is not None:
        noise = np.asarray(sigma)
        if noise.ndim == 0 and arr.ndim == 2:  # one sigma for the whole frame
            noise = np.broadcast_to(noise, arr.shape)
        if arr.ndim != 2 or noise.shape != arr.shape or noise.dtype.kind not in "biuf":
            raise InputError(f"{name}: sigma must be real numbers of the grey frame's shape {arr.shape[:2]} "
                             f"(got {noise.dtype} of shape {noise.shape}{' for a colour image' * (arr.ndim == 3)})")
        src.noise_rows = lambda y0, y1: noise[y0:y1]
        src.noise = sampled_median(src.noise_rows, arr.shape[0], lambda v: np.isfinite(v) & (v > 0))
        if not src.noise:
            raise InputError(f"{name}: sigma has no finite value > 0")
        src.noise_from, src.read_rows = "sigma array", unmeasured(read_rows, src.noise_rows)
    return src


def is_nddata(data) -> bool:
    """Whether ``data`` is an astropy `~astropy.nddata.NDData` (CCDData, NDDataArray...): read by `from_nddata`."""
    from astropy.nddata import NDData

    return isinstance(data, NDData)


def from_nddata(nd, *, name: str = "nddata", wcs=None, header: fits.Header | None = None,
                sigma: np.ndarray | None = None) -> FrameSource:
    """`from_array` of an astropy `~astropy.nddata.NDData` (a `~astropy.nddata.CCDData`, as ccdproc makes): its
    ``mask`` (True: bad) is no data, its ``uncertainty`` the per-pixel sigma (standard deviation, variance or inverse
    variance, in its data's units), its ``wcs`` the WCS (an astropy WCS, or a high-level wrapper of one), its ``unit``
    BUNIT and its ``meta`` (a FITS header or a dict) the keywords `run` reads from a header (TELESCOP, FILTER,
    PHOTFLAM...; LTV/LTM).  ``wcs``, ``header`` and ``sigma`` given here are taken instead of the NDData's own."""
    from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty

    data = np.asarray(nd.data)
    if nd.mask is not None and np.any(nd.mask):
        data = np.where(np.broadcast_to(np.asarray(nd.mask, bool), data.shape), np.nan,
                        data.astype(np.float64 if data.dtype.itemsize > 4 else np.float32))
    if wcs is None and nd.wcs is not None:
        wcs = nd.wcs if isinstance(nd.wcs, WCS) else getattr(nd.wcs, "low_level_wcs", None)
        if not isinstance(wcs, WCS):
            raise InputError(f"{name}: its WCS is a {type(nd.wcs).__name__}, not an astropy FITS WCS: give wcs= "
                             "(an astropy WCS or a FITS header) or None")
    if header is None:
        header = fits.Header()
        meta = nd.meta if isinstance(nd.meta, fits.Header) else {
            k: v for k, v in dict(nd.meta or {}).items() if isinstance(k, str) and isinstance(v, (str, int, float, bool))}
        for key, value in meta.items():
            with contextlib.suppress(ValueError, KeyError):  # (a key no FITS card can hold is not one run reads)
                header[key] = value
        if nd.unit is not None:
            header["BUNIT"] = _fits_unit(nd.unit)
    if sigma is None and (u := nd.uncertainty) is not None:
        values = np.asarray(u.array, np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            if isinstance(u, StdDevUncertainty):
                sigma, power = values, 1  # (power: of sigma's unit the uncertainty's unit is)
            elif isinstance(u, VarianceUncertainty):
                sigma, power = np.sqrt(values), 2
            elif isinstance(u, InverseVariance):
                sigma, power = 1 / np.sqrt(values), -2
            else:
                raise InputError(f"{name}: its uncertainty is a {type(u).__name__}; a standard deviation, variance or "
                                 "inverse variance is read as the per-pixel noise (or give sigma=)")
        if u.unit is not None and nd.unit is not None:  # (in the data's units)
            sigma = sigma * float((u.unit ** (1 / power)).to(nd.unit))
    src = from_array(data, wcs, name=name, header=kept_keywords(header), sigma=sigma)
    src.physical = physical_of(header)
    return src


def _fits_unit(unit) -> str:
    """An astropy unit as BUNIT: in the FITS standard's spelling where it has one ('MJy sr-1', 'count s-1'), else
    astropy's own ('electron / s': the standard has no electron)."""
    try:
        return unit.to_string("fits")
    except (ValueError, TypeError):
        return unit.to_string()


def _shape_hint(shape: tuple[int, ...]) -> str:
    """What an array of a shape `from_array` does not take most likely is, and how to give it."""
    if len(shape) == 3 and shape[0] == 3:
        return ": channels first? np.moveaxis(data, 0, -1) makes it (H, W, 3)"
    if len(shape) == 3 and shape[2] == 4:
        return (": RGBA? give data[..., :3], and its transparent pixels as a masked array's mask "
                "(np.ma.masked_array(data[..., :3], np.repeat(data[..., 3:] == 0, 3, axis=-1)))")
    if len(shape) > 2 and sorted(shape)[:-2] == [1] * (len(shape) - 2):
        return ": one plane with axes of length 1: np.squeeze(data) gives it"
    return ""


def _finite_float32(a: np.ndarray, beyond: list[int]) -> np.ndarray:
    """``a`` as float32, NaN (no data) where it is not finite; values beyond float32's range (float64 sentinels such
    as 1e300) too, counted in ``beyond[0]`` (`FrameSource.beyond_float32`)."""
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, then no-data like inf
        out = np.array(a, dtype=np.float32, copy=True)
    bad = ~np.isfinite(out)
    if a.dtype.itemsize > 4 and a.dtype.kind == "f" and bad.any():
        beyond[0] += int(np.count_nonzero(bad & np.isfinite(a)))
    out[bad] = np.nan
    return out


#: the note a frame gets where values beyond float32's range were read (`FrameSource.beyond_float32`)
BEYOND_FLOAT32 = "values beyond float32's range (|x| > 3.4e38: sentinels for bad pixels?) are read as no data"


#: BUNIT of a logarithmic quantity: magnitudes (mag, ABmag, mag/arcsec2, mag arcsec-2) or dex / log10(...). Not
#: SDSS's (nano)maggies, which are linear.
LOGARITHMIC_UNITS = re.compile(r"(?<![a-z])(ab|st|vega)?(mags?|magnitudes?|dex|log|log10|ln)(?![a-z])")


def check_linear_units(name: str, header: fits.Header | None) -> None:
    """Refuse a frame whose BUNIT is logarithmic (magnitudes, dex): the stretch, the noise estimate, the SR network
    and FLUX's flux conservation all need values proportional to flux (in magnitudes a galaxy's core would show
    darkest and FLUX would average magnitudes)."""
    unit = str(header.get("BUNIT", "") if header is not None else "").strip()
    if LOGARITHMIC_UNITS.search(unit.lower()):
        raise InputError(f"{name}: BUNIT = {unit!r} is a logarithmic unit: enhancing needs values proportional to "
                         "flux (convert the frame first, e.g. 10**(-0.4 * (m - zeropoint)) for magnitudes, and set "
                         "BUNIT to the linear unit)")


def _check_size(name: str, shape: tuple[int, ...]) -> None:
    if shape[0] * shape[1] < 2:
        raise InputError(f"{name}: image is {shape[0]}x{shape[1]} pixels; there is nothing to enhance")


#: astropy's image HDUs: one given alone is read as a file of it alone (`open_frames`)
IMAGE_HDUS = (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)


def _in_memory(path) -> fits.HDUList | None:
    """``path`` as an HDUList where it is FITS in memory: an HDUList, or one image HDU as a file of it alone."""
    if isinstance(path, IMAGE_HDUS):
        return fits.HDUList([path] if isinstance(path, fits.PrimaryHDU) else [fits.PrimaryHDU(), path])
    return path if isinstance(path, fits.HDUList) else None


def frame_name(path: str | Path | fits.HDUList | fits.ImageHDU) -> Path:
    """What messages and the provenance call an input: its path, or for FITS in memory (`open_frames`) the name of
    the file it was opened from (or "HDUList") with "(in memory)" after it."""
    if (hdul := _in_memory(path)) is not None:
        return Path(f"{(_file_of(hdul) or Path('HDUList')).name} (in memory)")
    return Path(path)


def _file_of(hdul: fits.HDUList) -> Path | None:
    """The file ``hdul`` was opened from, where it is one (not for an HDUList built in memory or opened from a
    file object, whose ``filename()`` is None or its type's name)."""
    name = hdul.filename()
    return Path(name) if name and Path(name).is_file() else None


@contextlib.contextmanager
def open_frames(path: str | Path | fits.HDUList | fits.ImageHDU, hdu: str | int | None = None, *, dq_mask: int | None = None,
                noise: str | Path | None = None, cosmic_rays: bool | None = False,
                weight: str | Path | None = None, dq: str | Path | None = None,
                dq_beside: bool = False, cutout: Cutout | list[Cutout] | None = None) -> Iterator[list[FrameSource]]:
    """Open ``path`` and yield its frames (one per chip for multi-chip FITS); files close on exit.

    ``path`` may be an astropy `~astropy.io.fits.HDUList` in memory (opened, perhaps changed, not written): it is
    read as the FITS file it would write is (a copy in memory; its values are not changed, though astropy loads
    its data — scaled, BITPIX -32 where BSCALE/BZERO said so — as reading ``.data`` would), its frames named by
    `frame_name` and tied to no file (no input checksum); one image HDU is read as a file of it alone (no ERR or DQ
    beside it: give its HDUList and ``hdu`` for those).

    FITS science extensions take their noise from ERR/WHT and mask the ``dq_mask`` flags of DQ (`noise`; None:
    the instrument's default, `noise.dq_flags`); ``dq`` is a data-quality file (path) of the file's own
    (`noise.dq_planes`: WFPC2's ``_c1m``/``_c1f``), its flags masked likewise — found beside the file
    (``dq_beside``: `batch.pair_companions`), one that cannot serve is noted and left out, else it is an error;
    ``noise`` is an rms map (path) for a single frame instead, ``weight`` an inverse-variance weight map (path: a
    drizzled frame's separate ``_wht`` file, read as a WHT extension would be); where either gives no finite sigma
    > 0 (no weight; an rms of 0, infinity or none), the pixel is no data.
    With ``cosmic_rays`` each frame's pixels sharper than the telescope's PSF allows are found and read as no-data
    too (`noise.mask_cosmic_rays`); with None, only in single exposures whose DQ flags no cosmic rays
    (`noise.unflagged_single_exposure`), where the header allows.  ``cutout``: each frame cut to it or to each of them
    (`io.cutout.cut_frames`; chips that do not hold a centre left out) before the cosmic-ray search, which then reads the cut-out only."""
    args = (hdu, dq_mask, noise, weight, dq, dq_beside, cutout, cosmic_rays)
    if (hdul := _in_memory(path)) is not None:
        with contextlib.ExitStack() as files:
            yield _fits_sources(frame_name(hdul), files.enter_context(_written_in_memory(hdul)), *args, files,
                                in_memory=True)
        return
    path = Path(path)
    if not path.exists():
        raise InputError(no_such(path))
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a frame")
    if not path.is_file():  # a FIFO, socket or device: opening it could block for ever
        kind = next((k for k, test in (("a FIFO", "is_fifo"), ("a socket", "is_socket"),
                                       ("a device", "is_block_device"), ("a device", "is_char_device"))
                     if getattr(path, test)()), "not a regular file")
        raise InputError(f"{path}: {kind}, not a regular file; give a FITS or image file")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")
    if is_fits(path):
        _check_kind(path)
        with contextlib.ExitStack() as files:
            unpacking: list[str] = []  # (notes on how the file's bytes were read: in memory, bytes ignored)
            hdul = files.enter_context(open_fits(path, notes=unpacking))
            yield _fits_sources(path, hdul, *args, files, unpacking)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        if hdu is not None and not every_hdu(hdu):  # a picture is one image: every one of them is it
            raise InputError(f"{path}: --hdu applies to FITS files only")
        if cosmic_rays:  # asked for by name; auto (None) does nothing here
            raise InputError(f"{path}: --clean-cosmic-rays applies to FITS frames (a raw exposure in its "
                             "detector's units), not to pictures")
        yield cut_frames([read_picture(path)], cutout)
    elif GEIS.fullmatch(path.suffix.lower()):
        raise InputError(f"{path}: a GEIS file (HST's old format: a .??h header and a .??d data file); "
                         + GEIS_HINT.format("it"))
    else:
        raise InputError(f"{path}: unknown file type {path.suffix!r}; expected FITS ({', '.join(FITS_SUFFIXES)}) "
                         f"or an image ({', '.join(IMAGE_SUFFIXES)})")


def _fits_sources(path: Path, hdul: fits.HDUList, hdu: str | int | None, dq_mask: int | None,
                  noise: str | Path | None, weight: str | Path | None, dq: str | Path | None, dq_beside: bool,
                  cutout: Cutout | list[Cutout] | None, cosmic_rays: bool | None, files: contextlib.ExitStack,
                  notes: list[str] = (), in_memory: bool = False) -> list[FrameSource]:
    """`open_frames` of a FITS file opened as ``hdul`` (``in_memory``: an HDUList's, `_written_in_memory`): its
    frames with their noise and DQ files, cut out, searched for cosmic rays; ``notes`` (how its bytes were read)
    go to the first."""
    try:
        found = _fits_frames(path, hdul, hdu, dq_mask)
    except InputError:
        raise
    except Exception as exc:  # a malformed header astropy let through: say so, name the file
        raise InputError(f"{path}: malformed FITS ({type(exc).__name__}: {short_reason(exc)})") from None
    if in_memory:  # no file: nothing to checksum, the header's FILENAME says what product it is
        for f in found:
            f.path = None
    for given, weights in ((noise, False), (weight, True)):
        if given is not None:
            _use_noise_file(path, found, Path(given), weights, files)
    if dq is not None:
        _use_dq_file(path, hdul, hdu, found, Path(dq), dq_mask, files, dq_beside)
    found = cut_frames(found, cutout)
    if found:
        found[0].notes.extend(notes)
    for f in found:
        if raw_exposure(f):
            f.notes.append("an uncalibrated (raw) exposure: no bias, dark or flat-field correction and in "
                           "counts as read out; its calibrated frame (_flt, _flc, WFPC2 _c0m) is what to enhance")
        _clean_cosmic_rays(f, cosmic_rays)
    return found


@contextlib.contextmanager
def _written_in_memory(hdul: fits.HDUList) -> Iterator[fits.HDUList]:
    """``hdul`` as the FITS file it writes, read back from memory as `open_fits` reads a file (image scaling left
    to the reader): what its data and headers are now, however it was opened and changed since."""
    import io

    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (astropy's notes on the cards it fixes: the file would hold the fix)
            hdul.writeto(buf, output_verify="silentfix")
    except Exception as exc:
        raise InputError(f"{frame_name(hdul)}: cannot be written as FITS ({short_reason(exc)})") from None
    buf.seek(0)
    copy = fits.open(buf, lazy_load_hdus=False, do_not_scale_image_data=True)
    try:
        yield copy
    finally:
        copy.close()


#: the suffixes of HST's old GEIS format (WFPC2, FOC, FOS archives): a ``.c0h`` header with its ``.c0d`` data, ``.shh``
GEIS = re.compile(r"\.[a-z]\d[hd]|\.[a-z]h[hd]")
GEIS_HINT = "convert {} to FITS (stsci.tools' readgeis, or the archive's FITS products: _c0m, _c0f)"


#: what a file's first bytes say it is (a picture named .fits, a FITS frame named .png: a download saved under another
#: name; Pillow reads a simple FITS file as a picture, without its scaling, DQ, noise or WCS)
MAGIC = ((b"SIMPLE  =", "a FITS file"), (b"\x89PNG\r\n\x1a\n", "a PNG picture"), (b"\xff\xd8\xff", "a JPEG picture"),
         (b"II*\x00", "a TIFF picture"), (b"MM\x00*", "a TIFF picture"))


def _check_kind(path: Path) -> None:
    """An `InputError` where a file's first bytes say it is a FITS file but its name a picture, or the other way."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    kind = next((what for magic, what in MAGIC if head.startswith(magic)), None)
    if kind is None or (kind == "a FITS file") == is_fits(path):
        return
    named = "a FITS name" if is_fits(path) else f"a {path.suffix} name"
    right = ".fits" if kind == "a FITS file" else {"a PNG picture": ".png", "a JPEG picture": ".jpg"}.get(kind, ".tif")
    raise InputError(f"{path}: {kind} under {named} (its first bytes say so): rename it {right} to read it as one")


def _use_noise_file(path: Path, found: list[FrameSource], given: Path, weights: bool,
                    files: contextlib.ExitStack) -> None:
    """The rms map (``weights`` False: ``--noise``) or inverse-variance weight map (``--weight``) ``given`` as the
    noise of the one frame in ``found`` (`noise.map_noise`); where it gives no sigma the pixel is no data."""
    if given.resolve() == path.resolve():
        raise NoiseMapError(f"{path}: {'--weight' if weights else '--noise'} names the frame itself, not its "
                            f"{'weight' if weights else 'rms'} map")
    if len(found) > 1:
        raise NoiseMapError(f"{path}: {'--weight' if weights else '--noise'} {given.name} is one "
                            f"{'weight' if weights else 'rms'} map but the file has {len(found)} chips "
                            f"({', '.join(f.label for f in found)}); choose one with --hdu")
    for f in found:
        f.noise, f.noise_rows = map_noise(given, f.shape, files, weights)
        f.noise_from = f"WHT {given.name}" if weights else given.name
        f.noise_file = given
        f.read_rows = unmeasured(f.read_rows, f.noise_rows)  # no sigma there: nothing measured


def _clean_cosmic_rays(f: FrameSource, cosmic_rays: bool | None) -> None:
    """Read ``f``'s cosmic-ray hits as no data (`noise.mask_cosmic_rays`) where ``cosmic_rays`` asks, or (None: auto)
    where it is a single exposure whose DQ flags none; note a single exposure left as it is."""
    if cosmic_rays:
        mask_cosmic_rays(f)
    elif unflagged_single_exposure(f):
        if cosmic_rays is None:  # auto: clean where it can
            try:
                mask_cosmic_rays(f)
                f.notes[-1] += "; a single exposure whose DQ flags none (--no-clean-cosmic-rays keeps them)"
            except InputError as exc:
                f.notes.append(f"a single exposure whose DQ flags no cosmic rays, not searched: "
                               f"{str(exc).removeprefix(f.name + ': ')}")
        else:
            f.notes.append("a single exposure whose DQ flags no cosmic rays: its hits are kept, as light (the "
                           "networks enhance them like faint stars); --clean-cosmic-rays reads them as no data")


def _use_dq_file(path: Path, hdul: fits.HDUList, hdu: str | int | None, found: list[FrameSource], dq: Path,
                 dq_mask: int | None, files: contextlib.ExitStack, beside: bool) -> None:
    """Mask each of ``found``'s frames by its chip's plane of the data-quality file ``dq`` (`noise.dq_planes`: one
    plane per chip of the file, each the chip's shape; the chip counted among all of the file's frames, also when
    ``hdu`` chose one); a file that cannot serve raises `DQFileError`, or with ``beside`` (found next to the frame,
    not asked for) is noted and left out."""
    labels = [f.label for f in (found if hdu is None else _fits_frames(path, hdul, None, dq_mask, max_planes=None))]
    try:
        planes = dq_planes(dq, files)
        if len(planes) != len(labels):
            raise DQFileError(f"{dq}: {len(planes)} DQ image plane(s) for a file of {len(labels)} chip(s)")
        readers = []
        for f in found:
            chip = labels.index(f.label) if f.label in labels else 0
            shape, rows = planes[chip]
            if tuple(shape) != tuple(f.shape):
                raise DQFileError(f"{dq}: DQ plane {chip + 1} is {shape[0]}x{shape[1]}, the frame "
                                  f"{f.shape[0]}x{f.shape[1]}")
            readers.append(rows)
    except DQFileError as exc:
        if not beside:
            raise
        for f in found:
            f.notes.append(f"{dq.name} beside it not used as its DQ: {str(exc).removeprefix(f'{dq}: ')}")
        return
    for f, rows in zip(found, readers):
        mask = f.dq_flags.no_data if dq_mask is None else dq_mask
        own = f.dq_rows is not None
        f.read_rows = flagged_as_no_data(f.read_rows, rows, mask) if mask else f.read_rows
        f.dq_rows, f.dq_mask, f.dq_file = rows, mask | f.dq_mask, dq
        which = f"{f.dq_flags.instrument}'s default" if dq_mask is None else "--dq-mask"
        f.notes.append(f"DQ from {dq.name}" + (" beside it" if beside else "") + f": flags {mask} ({which}) read as "
                       "no data" + (", with the file's own DQ" if own else "") + " (AE_DQFIL, AE_DQMSK)")


@contextlib.contextmanager
def open_fits(path: Path, scaled: bool = False, notes: list[str] | None = None) -> Iterator[fits.HDUList]:
    """``path`` opened lazily (memory-mapped, image scaling left to the caller; with ``scaled``, read with BSCALE,
    BZERO and BLANK applied by astropy, which cannot memory-map them); one `InputError` naming it if astropy
    cannot.  A file compressed whole is read from its decompressed copy (`compression.decompressed_copy`: its
    stream checked to the end, deleted on leaving); a file whose HDUs are whole but followed by bytes that begin
    no HDU is read without them (`compression.open_whole`); ``notes`` gets what either has to say."""

    def opened(name: Path) -> fits.HDUList:
        with warnings.catch_warnings():  # (a truncated file is said, naming it, where its data cannot be read)
            warnings.filterwarnings("ignore", message="File may have been truncated")
            return fits.open(name, memmap=not scaled, lazy_load_hdus=False, do_not_scale_image_data=not scaled)

    notes = [] if notes is None else notes
    with contextlib.ExitStack() as files:
        copy = decompressed_copy(path, files, notes)
        try:
            hdul = open_whole(opened, copy or path, copy is not None, files, notes)
        except Exception as exc:  # astropy raises OSError, ValueError, TypeError... for corrupt files
            hint = ""
            if copy is None and first_bytes(path) == XZ_MAGIC:  # (read in memory: astropy reads xz from 7.1 on)
                hint = f"; it is xz-compressed, which astropy {astropy_version} cannot read: decompress it (xz -dk FILE)"
            raise InputError(f"{path}: not a readable FITS file ({short_reason(exc)}){hint}") from None
        try:
            yield hdul
        finally:
            hdul.close()


def is_enhanced_output(hdul: fits.HDUList) -> bool:
    """Whether ``hdul`` is an RGB FITS that astroenhance wrote (`run`, `compose`, `mosaic --enhance`): its primary
    header records the tool's version and it holds RED, GREEN and BLUE display planes (values 0-1)."""
    names = {h.name for h in hdul}
    return "AE_VER" in hdul[0].header and {"RED", "GREEN", "BLUE"} <= names


def _image_hdus(hdul: fits.HDUList) -> list[int]:
    out = []
    for i, h in enumerate(hdul):
        if isinstance(h, IMAGE_HDUS) and h.header.get("NAXIS", 0) >= 2:
            if all(h.header.get(f"NAXIS{k}", 0) > 0 for k in range(1, h.header["NAXIS"] + 1)):
                out.append(i)
    return out


def _describe(hdul: fits.HDUList, i: int) -> str:
    h = hdul[i]
    name = h.name or ("PRIMARY" if i == 0 else "")  # an extension without EXTNAME is not the primary
    ver = h.header.get("EXTVER")
    shape = "x".join(str(h.header.get(f"NAXIS{k}")) for k in range(h.header.get("NAXIS", 0), 0, -1))
    label = " ".join(filter(None, [name + (f",{ver}" if ver is not None and name not in ("PRIMARY", "") else ""),
                                   shape]))
    return f"{i} ({label})" if label else str(i)


def raw_exposure_name(name: str) -> bool:
    """Whether the file name ``name`` is an HST archive's uncalibrated exposure: ``*_raw``, WFPC2's ``*_d0m`` or
    ``*_d0f`` (any extensions), or its GEIS ``*.d0h``/``*.d0d``."""
    return archive_product(name, RAW_PRODUCTS, GEIS_RAW)


def raw_exposure(frame: FrameSource) -> bool:
    """Whether ``frame`` is of an uncalibrated exposure, by its file's name or, renamed, the FILENAME its header
    keeps (`raw_exposure_name`)."""
    return raw_exposure_name(frame.path.name if frame.path else "") or raw_exposure_name(frame.archive_name)


def _select_hdu(path: Path, hdul: fits.HDUList, hdu: str | int) -> int:
    if isinstance(hdu, int) or (isinstance(hdu, str) and hdu.lstrip("-").isdigit()):
        idx = int(hdu)
        if not 0 <= idx < len(hdul):
            raise InputError(f"{path}: no HDU {idx} (the file has {len(hdul)}: {', '.join(_describe(hdul, i) for i in range(len(hdul)))})")
        return idx
    name, _, ver = str(hdu).partition(",")
    try:
        return hdul.index_of((name.strip(), int(ver)) if ver else name.strip())
    except (KeyError, ValueError):
        raise InputError(f"{path}: no HDU named {hdu!r}; image HDUs: "
                         f"{', '.join(_describe(hdul, i) for i in _image_hdus(hdul)) or 'none'}") from None


def _holding(h) -> str:
    """What an HDU that is not an image holds, from its header alone (" (no data)", " (1-D, 100 values: a spectrum
    or a profile, not an image)", " (table, 4 rows)"), for the message of a file with no image."""
    head = h.header
    axes = [int(head.get(f"NAXIS{k}", 0)) for k in range(1, int(head.get("NAXIS", 0)) + 1)]
    if isinstance(h, (fits.BinTableHDU, fits.TableHDU)):
        n = axes[1] if len(axes) > 1 else 0
        return f" (table, {n} row{'' if n == 1 else 's'})"
    if not axes or 0 in axes:
        return " (no data)"
    if len([n for n in axes if n > 1]) == 1:
        return f" (1-D, {max(axes)} values: a spectrum or a profile, not an image)"
    return ""


MAX_PLANES = 16  # a cube's planes enhanced at once, each its own output, unless --hdu names one


def _fits_frames(path: Path, hdul: fits.HDUList, hdu: str | int | None, dq_mask: int | None,
                 max_planes: int | None = MAX_PLANES) -> list[FrameSource]:
    others: list[int] = []  # image HDUs not enhanced (several unnamed images: stamps, sci + wht + psf)
    every = every_hdu(hdu)
    if every:
        hdu = None
    if hdu is not None:
        try:
            indices = [_select_hdu(path, hdul, hdu)]
        except InputError as exc:  # not an HDU: perhaps one of the chips a multi-chip file lists ("chip2", "sci1")
            try:
                chips = {f.label: f for f in _fits_frames(path, hdul, None, dq_mask, max_planes=None) if f.label}
            except InputError:
                raise exc from None
            label = str(hdu).strip().lower()
            if label not in chips:
                names = list(chips)
                names = names if len(names) <= 8 else [*names[:3], "...", names[-1]]
                raise InputError(f"{exc}; chips: {', '.join(names)}" if chips else str(exc)) from None
            return [chips[label]]
    else:
        candidates = _image_hdus(hdul)
        if not candidates:
            kinds = ", ".join(f"{i} {type(h).__name__}{_holding(h)}" for i, h in enumerate(hdul))
            raise NoImageError(f"{path}: no image data in any HDU (found: {kinds})")
        if is_enhanced_output(hdul):
            head = hdul[0].header
            raise EnhancedOutputError(_output_refusal(path, str(head.get("AE_INPUT") or ""), int(head.get("AE_SCALE", 4)),
                                                      "FLUX" in {h.name for h in hdul}))
        sci = [i for i in candidates if hdul[i].name == "SCI"]
        indices = sci if sci else candidates if every else candidates[:1]
        others = [] if sci else candidates[len(indices):]
        reads = _ramp_reads(hdul, sci)
    frames: list[FrameSource] = []
    if hdu is None and reads:  # one exposure's reads, not chips: its last read, the whole ramp
        frames = _hdu_frames(path, hdul, reads[0], False, dq_mask)
        frames[0].notes.append(
            f"an up-the-ramp file (WFC3/IR or NICMOS _ima/_raw): its {len(reads)} SCI extensions are reads of one "
            f"exposure, not chips; the last read (SCI,{hdul[reads[0]].header.get('EXTVER', 1)}: SAMPNUM "
            f"{hdul[reads[0]].header['SAMPNUM']}, the whole exposure) is enhanced, --hdu 'SCI,N' takes another; "
            "the _flt is the calibrated frame")
        return frames
    multi = len(indices) > 1
    stamps = every and multi and not sci  # every image of a file without SCI (stamps): each named by its index
    where: list[int] = []  # each frame's HDU index
    unread: list[str] = []  # stamps that cannot be frames (1x1, a cube), each noted, the others read
    for i in indices:
        try:
            got = _hdu_frames(path, hdul, i, multi, dq_mask, max_planes)
        except InputError as exc:
            if not stamps:
                raise
            why = str(exc)  # (without the file's name and the label it was read under: hdu0 is named instead)
            if why.startswith(str(path)):
                why = re.sub(r"^\[[^\]]*\]", "", why[len(str(path)):]).removeprefix(": ")
            unread.append(f"hdu{i} not enhanced: {why}")
            continue
        frames.extend(got)
        where += [i] * len(got)
    if unread and not frames:
        raise InputError(f"{path}: no image of the file can be enhanced ({'; '.join(unread[:3])})")
    labels = [f.label for f in frames]
    if stamps or len(set(labels)) < len(labels):  # extensions of one name without EXTVER: told apart by their HDU index
        for f, i in zip(frames, where):  # (they had one label, and one chip's outputs replaced the other's)
            f.label = f"hdu{i}" + (f.label if f.label.startswith("chip") else "")
            f.name = f"{path}[{f.label}]"
    if others:
        frames[0].notes.append(_others_note(hdul, indices[0], others))
    frames[0].notes.extend(unread)
    return frames


def every_hdu(hdu: str | int | None) -> bool:
    """Whether ``hdu`` asks for every image HDU of a file (``--hdu all``: a file of stamps, each its own output)."""
    return isinstance(hdu, str) and hdu.strip().lower() == "all"


def _ramp_reads(hdul: fits.HDUList, sci: list[int]) -> list[int]:
    """The SCI extensions of an up-the-ramp file (WFC3/IR, NICMOS: each read of one exposure numbered by SAMPNUM),
    the last read first; empty for a file of chips (ACS/WFC, WFC3/UVIS: no SAMPNUM) or of one SCI."""
    if len(sci) < 2 or not all("SAMPNUM" in hdul[i].header for i in sci):
        return []
    return sorted(sci, key=lambda i: -int(hdul[i].header["SAMPNUM"]))


def _others_note(hdul: fits.HDUList, chosen: int, others: list[int], listed: int = 3) -> str:
    """A frame's note that its file holds more image HDUs than the one enhanced, naming a few."""
    named = ", ".join(_describe(hdul, i) for i in others[:listed])
    more = f" and {len(others) - listed} more" if len(others) > listed else ""
    return (f"enhanced HDU {_describe(hdul, chosen)}, the first image; the file holds {len(others)} more image "
            f"HDU{'s' if len(others) > 1 else ''} not enhanced: {named}{more} (--hdu N enhances another, --hdu all "
            "every one)")


def rescale_pixel_area(header: fits.Header, factor: float, grid: str) -> None:
    """Put ``header``'s pixel-area cards (`PIXEL_AREA`) on a grid whose pixels are ``factor`` times the frame's
    (1/16 on the 4x grid), saying so; a header without them is left as it is."""
    for key in PIXEL_AREA:
        if key in header:
            try:
                header[key] = (float(header[key]) * factor, f"pixel area on {grid}"[:47])
            except (TypeError, ValueError):  # not a number: not an area to carry
                del header[key]


def kept_keywords(*headers: fits.Header) -> fits.Header:
    """The keywords of a frame's headers an output keeps and the engine reads (`KEEP_KEYWORDS`: BUNIT, the
    photometry, TELESCOP, INSTRUME, FILTER...), each from the first header that has it."""
    kept = fits.Header()
    for key in KEEP_KEYWORDS:
        for h in headers:
            if key in h:
                kept[key] = (h[key], h.comments[key])
                break
    return kept


def _inherited(header: fits.Header, hdul: fits.HDUList) -> fits.Header | None:
    """An extension with ``INHERIT = T`` and no WCS of its own, under a primary header that has one: the primary's
    keywords with the extension's over them (the FITS INHERIT convention of mosaic cameras' archives); else None."""
    primary = hdul[0].header
    if header is primary or header.get("INHERIT") is not True or "CTYPE1" in header or "CTYPE1" not in primary:
        return None
    merged = primary.copy()
    merged.update(header)
    return merged


def _wcs_for(path: Path, header: fits.Header, hdul: fits.HDUList) -> tuple[WCS | None, list[str]]:
    notes = []
    if (merged := _inherited(header, hdul)) is not None:
        header = merged
        notes.append("WCS from the primary header (the extension says INHERIT = T)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            w = WCS(header, hdul, naxis=2)
        except Exception as exc:
            return None, [f"WCS could not be read ({short_reason(exc)}); output carries none"]
    if not w.has_celestial:
        return None, ["no celestial WCS in the header; output carries none"]
    if w.pixel_shape is not None and len(w.pixel_shape) != 2:  # (a cube's: its planes are 2-D frames)
        w.pixel_shape = w.pixel_shape[:2]
    try:
        m = np.asarray(w.celestial.pixel_scale_matrix, np.float64)
        singular = not np.all(np.isfinite(m)) or abs(np.linalg.det(m)) <= 1e-10 * np.abs(m).max() ** 2
    except Exception:  # noqa: BLE001 - a matrix numpy cannot use is as unusable as a singular one
        singular = True
    if singular:
        return None, ["the WCS's CD/PC matrix is singular (no sky scale); output carries no WCS"]
    sky = (w.wcs.lng + 1, w.wcs.lat + 1)
    if not any(re.fullmatch(r"CD\d+_\d+", k) for k in header) and not all(f"CDELT{i}" in header for i in sky):
        notes.append(f"the WCS gives no pixel scale (no CD{sky[0]}_{sky[0]} or CDELT{sky[0]}, CDELT{sky[1]}): FITS's "
                     "default of 1 degree a pixel is what the output's WCS carries (scaled to its grid)")
    return w, notes


def _hdu_frames(path: Path, hdul: fits.HDUList, index: int, multi: bool, dq_mask: int | None,
                max_planes: int | None = MAX_PLANES) -> list[FrameSource]:
    h = hdul[index]
    header = h.header
    conventions = dq_flags(header, hdul[0].header)
    dq_mask = conventions.no_data if dq_mask is None else dq_mask
    naxis = header.get("NAXIS", 0)
    if naxis < 2:
        raise InputError(f"{path}: HDU {_describe(hdul, index)} holds no image data")
    dims = tuple(header[f"NAXIS{k}"] for k in range(naxis, 0, -1))  # numpy order
    extra = [d for d in dims[:-2] if d != 1]
    if len(extra) > 1:
        raise InputError(f"{path}: HDU {_describe(hdul, index)} is a {naxis}-D cube; only 2-D frames "
                         "(or a 3-D stack of chips) can be enhanced")
    if header.get("BITPIX") not in (8, 16, 32, 64, -32, -64):
        raise InputError(f"{path}: HDU {_describe(hdul, index)} has BITPIX = {header.get('BITPIX')!r}; FITS allows "
                         "8, 16, 32, 64, -32 or -64")
    bscale, bzero = float(header.get("BSCALE", 1.0)), float(header.get("BZERO", 0.0))
    if bscale == 0:
        raise InputError(f"{path}: HDU {_describe(hdul, index)} has BSCALE = 0: every pixel would read as BZERO")
    blank = header.get("BLANK") if header.get("BITPIX", -32) > 0 else None
    kept = kept_keywords(header, hdul[0].header)
    check_linear_units(f"{path}: HDU {_describe(hdul, index)}", kept)
    archive_name = str(header.get("FILENAME", hdul[0].header.get("FILENAME", "")) or "").strip()
    label_base = f"{h.name.lower()}{header.get('EXTVER', 1)}" if multi and h.name else ""
    planes = extra[0] if extra else 1
    if max_planes is not None and planes > max_planes:
        raise InputError(f"{path}: HDU {_describe(hdul, index)} is a cube of {planes} planes, each an output of its "
                         f"own (at most {max_planes} at once); --hdu chipK enhances plane K alone (chip1-chip{planes})")
    chip_wcs = _group_wcs(hdul, header, planes)
    direct = _direct_row_reader(path, hdul, index, dims)
    extver, shape2d = int(header.get("EXTVER", 1)), (dims[-2], dims[-1])
    flagged = dq_reader(hdul, extver, shape2d, dq_mask) if planes == 1 else None
    empty = unweighted_reader(hdul, extver, shape2d) if planes == 1 else None  # drizzle's fill: no data
    sigma, sigma_from, sigma_rows, companion_notes = file_noise(hdul, extver, shape2d) if planes == 1 else (
        None, "", None, [])
    err = companion(hdul, "ERR", extver, shape2d) if planes == 1 else None
    dq = companion(hdul, "DQ", extver, shape2d) if planes == 1 else None
    frames = []
    lead = (0,) * (len(dims) - 2 - (1 if extra else 0))
    for plane in range(planes):
        beyond = [0]

        def read_rows(y0: int, y1: int, plane: int = plane, beyond: list[int] = beyond) -> np.ndarray:
            key = lead + ((plane,) if extra else ()) + (slice(y0, y1), slice(None))
            try:
                raw = direct(y0, y1, plane) if direct else h.data[key]  # unscaled: only these rows are read
                out = raw.astype(np.float64) * bscale + bzero if (bscale != 1 or bzero != 0) else raw
                out = _finite_float32(out, beyond)
                if blank is not None:
                    out[raw == blank] = np.nan
                if flagged is not None:
                    out[flagged(y0, y1)] = np.nan
                if empty is not None:
                    out[empty(y0, y1)] = np.nan
                return out
            except InputError:
                raise  # already says what is wrong, naming the file
            except MemoryError:
                raise InputError(f"{path}: not enough memory to read rows {y0}-{y1}") from None
            except Exception as exc:
                raise InputError(f"{path}: data could not be read ({short_reason(exc)}); the file may be truncated") from None
        if planes > 1:
            label = f"chip{plane + 1}"
            wcs, notes = chip_wcs[plane] if chip_wcs else _wcs_for(path, header, hdul)
        else:
            label = label_base
            wcs, notes = _wcs_for(path, header, hdul)
        frames.append(FrameSource(name=f"{path}" + (f"[{label}]" if label else ""), shape=(dims[-2], dims[-1]),
                                  channels=1, origin="lower", read_rows=read_rows, wcs=wcs, header=kept,
                                  label=label, dtype=_fits_dtype(header), path=path, notes=notes,
                                  archive_name=archive_name, noise=sigma, noise_from=sigma_from, noise_rows=sigma_rows,
                                  physical=physical_of(header),
                                  dq_mask=dq_mask if flagged else 0, dq_flags=conventions,
                                  weight_mask=empty is not None, beyond_float32=beyond,
                                  cube_planes=planes if planes > 1 and not chip_wcs else 0,
                                  pixel_noise_rows=None if err is None else (lambda a, b, e=err: e.section[a:b]),
                                  dq_rows=None if dq is None else (lambda a, b, d=dq: d.section[a:b])))
    if planes == 1:  # (companions are a 2-D frame's)
        frames[0].notes.extend(misfit_companions(hdul, extver, shape2d) + companion_notes)
    if planes == 3 and not chip_wcs:  # not a WFPC2 stack (its table gives each chip's WCS): perhaps a colour picture
        frames[0].notes.append("a cube of 3 planes, each enhanced as a grey frame of its own (chip1-3): if it is a "
                               "colour picture (red, green, blue: DS9's rgbcube, Siril, PixInsight), its colours are "
                               "not kept; save it as a PNG or TIFF, or give its planes as files to compose")
    for f in frames:
        _check_size(f.name, f.shape)
    return frames


def _direct_row_reader(path: Path, hdul: fits.HDUList, index: int, dims: tuple[int, ...]):
    """Read rows of an uncompressed image straight from the file (positioned reads): unlike a memory map,
    pages read stay out of the process's resident memory, so a large frame costs no more than a small one.
    None for compressed files (gzip, tile-compressed), which go through astropy."""
    h = hdul[index]
    source = _file_of(hdul)  # (a compressed file's decompressed copy, where it has one)
    if source is None or isinstance(h, fits.CompImageHDU) or compressed_whole(source):  # (None: in memory)
        return None
    dtype = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}.get(h.header.get("BITPIX"))
    try:
        offset = hdul.fileinfo(index)["datLoc"]
    except Exception:
        return None
    if dtype is None or offset is None:
        return None
    ny, nx = dims[-2], dims[-1]
    itemsize = np.dtype(dtype).itemsize
    size = source.stat().st_size

    def read(y0: int, y1: int, plane: int = 0) -> np.ndarray:
        y0, y1 = max(0, y0), min(ny, y1)
        start = offset + ((plane * ny + y0) * nx) * itemsize
        count = (y1 - y0) * nx
        if start + count * itemsize > size:
            raise InputError(f"{path}: data could not be read (file ends early); the file may be truncated")
        with open(source, "rb") as fh:
            fh.seek(start)
            data = np.fromfile(fh, dtype=dtype, count=count)
        return data.reshape(y1 - y0, nx)

    return read


def _fits_dtype(header: fits.Header) -> str:
    bitpix = header.get("BITPIX")
    base = {8: "uint8", 16: "int16", 32: "int32", 64: "int64", -32: "float32", -64: "float64"}.get(bitpix, str(bitpix))
    if bitpix == 16 and header.get("BZERO") == 32768:
        return "uint16"
    return base + (" (scaled)" if header.get("BSCALE", 1) != 1 else "")


def _group_wcs(hdul: fits.HDUList, header: fits.Header, planes: int) -> list[tuple[WCS | None, list[str]]] | None:
    """Per-chip WCS of a WFPC2-style stack whose table extension holds one WCS row per chip."""
    if planes < 2:
        return None
    for h in hdul[1:]:
        if isinstance(h, fits.TableHDU | fits.BinTableHDU) and h.data is not None and len(h.data) == planes and "CRPIX1" in h.columns.names:
            out = []
            for row in h.data:
                hdr = fits.Header()
                for key in ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CRPIX1", "CRPIX2", "CD1_1", "CD1_2", "CD2_1", "CD2_2"):
                    if key in h.columns.names:
                        v = row[key]
                        hdr[key] = v.strip() if isinstance(v, str) else float(v)
                hdr["NAXIS"] = 2
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        w = WCS(hdr)
                        out.append((w, []) if w.has_celestial else (None, ["chip has no celestial WCS"]))
                    except Exception as exc:
                        out.append((None, [f"chip WCS could not be read ({short_reason(exc)})"]))
            return out
    return None


# ---- display images ---------------------------------------------------------------------------------

def _png_bit_depth(path: Path) -> tuple[int, int] | None:
    with open(path, "rb") as fh:
        head = fh.read(33)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    depth, colour = struct.unpack(">BB", head[24:26])
    return depth, colour


#: the most pixels a PNG/TIFF/JPEG may have (decoded whole: ~8 bytes a pixel for 16-bit RGB while reading);
#: ``$ASTROENHANCE_MAX_PIXELS`` raises or lowers it
MAX_IMAGE_PIXELS = 250_000_000


def max_image_pixels() -> int:
    """The most pixels a picture may have (it is read whole): ``$ASTROENHANCE_MAX_PIXELS``, else `MAX_IMAGE_PIXELS`;
    a value that is not a whole number > 0 is a `SettingsError` (it was ignored, the limit kept without a word)."""
    value = os.environ.get("ASTROENHANCE_MAX_PIXELS", "").strip().replace("_", "").replace(",", "")
    if not value:
        return MAX_IMAGE_PIXELS
    if not value.isdigit() or int(value) == 0:
        raise SettingsError(f"ASTROENHANCE_MAX_PIXELS={os.environ['ASTROENHANCE_MAX_PIXELS']!r}: give a whole number of "
                            f"pixels (the default is {MAX_IMAGE_PIXELS:,})")
    return int(value)


class PictureHeader(NamedTuple):
    """What a picture's header says before any pixel is decoded (`picture_header`)."""

    size: tuple[int, int] | None  # (width, height); None if the header cannot tell
    text: str  # its comment (PNG Comment, JPEG comment, TIFF ImageDescription); "" if none
    xmp: bytes | None  # its XMP packet, where AVM sky coordinates live

    @property
    def provenance(self) -> str | None:
        """The text, where astroenhance wrote the picture (its provenance: ``tool=astroenhance ...; input=...``)."""
        return self.text if self.text.startswith("tool=astroenhance") else None


def provenance_said(text: str) -> dict[str, str]:
    """A picture's provenance text (``tool=astroenhance ...; key=value; ...``, `pipeline.provenance.provenance_text`)
    as a dictionary, the closing sentence left out."""
    said: dict[str, str] = {}
    for part in text.split(". Generated detail is not measurement")[0].split("; "):
        key, sep, value = part.partition("=")
        if sep:
            said.setdefault(key.strip(), value)
    return said


def picture_header(path: Path) -> PictureHeader:
    """The picture's size, comment (astroenhance's outputs: their provenance) and XMP packet, from one read of its
    header (tifffile for TIFF, Pillow for the rest: neither decodes the pixels); an unreadable header gives
    nothing, and the decoder says what is wrong."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                xmp = page.tags.get(700)
                size, text, xmp = (int(page.shape[1]), int(page.shape[0])), page.description, xmp and xmp.value
        else:
            with _pil_open(path) as im:
                size, text, xmp = im.size, im.info.get("Comment") or im.info.get("comment") or "", im.info.get("xmp")
    except Exception:  # noqa: BLE001 - the decoder will say what is wrong
        return PictureHeader(None, "", None)
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text or "")
    return PictureHeader(size, text, bytes(xmp) if xmp else None)


@contextlib.contextmanager
def _pil_open(path: Path):
    """``PIL.Image.open`` with Pillow's own decompression-bomb limit lifted: `max_image_pixels` governs instead
    (checked from the header before anything is decoded)."""
    from PIL import Image

    old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as im:
            yield im
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _output_refusal(path: Path, source: str, scale: int, flux: bool = False) -> str:
    """Why an astroenhance output is not enhanced as a frame, and what to do instead (`EnhancedOutputError`)."""
    composite = source.startswith("compose:")
    what = (f"a composite of {source.removeprefix('compose:').strip()}" if composite else f"made from {source or 'a frame'}")
    made = f"already enhanced {scale}x, its detail generated" if scale > 1 else "display values, not data"
    instead = ("`compose --upscale` of its frames gives it 4x" if composite else
               "enhance the original instead" + ("; --hdu FLUX reads its enhanced luminance as data" if flux else ""))
    return f"{path}: an astroenhance output ({what}; {made}): {instead}"


def is_astroenhance_output(path: str | Path) -> bool:
    """Whether the file at ``path`` is one astroenhance wrote (an RGB FITS: `is_enhanced_output`; a picture: its
    provenance text), so not a frame to enhance again; False for anything else or anything unreadable."""
    path = Path(path)
    if not is_fits(path):
        return picture_header(path).provenance is not None
    try:
        with fits.open(path, memmap=True, lazy_load_hdus=False) as hdul:
            return is_enhanced_output(hdul)
    except Exception:  # noqa: BLE001
        return False


def made_by_astroenhance(path: str | Path) -> bool:
    """Whether the file at ``path`` is one astroenhance wrote — an output of `run` or `compose`, or a science mosaic
    (its primary header's ``AE_VER`` or ``AE_COMB``) — so that writing it again replaces nothing of the user's."""
    path = Path(path)
    if not is_fits(path):
        return picture_header(path).provenance is not None
    try:  # the primary header's cards as bytes: a damaged (truncated) output of its own is still known, and made again
        with open(path, "rb") as fh:
            head = fh.read(2880 * 36)
    except OSError:
        return False
    for i in range(0, len(head) - 79, 80):
        key = head[i:i + 8]
        if key in (b"AE_VER  ", b"AE_COMB "):  # (every FITS it writes records its version in the primary header)
            return True
        if key == b"END     ":
            break
    return False


def check_replaceable(target: Path, instead: str = "choose another output folder") -> None:
    """An `OutputError` where ``target`` exists and astroenhance did not write it (`made_by_astroenhance`): a file
    of the user's at an output's path is never replaced (its own earlier outputs are made again)."""
    if target.exists() and not made_by_astroenhance(target):
        raise OutputError(f"{target} exists and is not an astroenhance output, so it is not replaced; move it away "
                          f"or {instead}")


def read_picture(path: Path) -> FrameSource:
    """A PNG/TIFF/JPEG picture as a `FrameSource` (display values in its data type's range: `display_range`),
    upright (EXIF orientation), grey where R, G and B agree, transparent pixels no data.  A picture astroenhance
    wrote is an `EnhancedOutputError`: its detail is already the networks' (enhance the original)."""
    suffix = path.suffix.lower()
    _check_kind(path)
    header = picture_header(path)
    if header.provenance is not None:
        said = provenance_said(header.provenance)
        scale = said.get("scale", "4")
        raise EnhancedOutputError(_output_refusal(path, said.get("input", ""), int(scale) if scale.isdigit() else 4))
    size = header.size
    limit = max_image_pixels()
    if size is not None and size[0] * size[1] > limit:
        raise InputError(f"{path}: {size[0]}x{size[1]} pixels is more than the limit of {limit:,} for PNG/TIFF/JPEG "
                         "(read whole into memory); set ASTROENHANCE_MAX_PIXELS to raise it, or give a FITS file")
    try:
        turn = 1  # the orientation (TIFF's tag, else EXIF) that turns the array as read upright: `UPRIGHT`
        icc_note, tiff_note, icc, arr = "", "", None, None
        depth, colour_type = (_png_bit_depth(path) or (8, 0)) if suffix == ".png" else (8, 0)
        if suffix in (".tif", ".tiff"):
            arr, turn, icc, tiff_note = _read_tiff(path)  # (arr None: a palette or CMYK TIFF, read by Pillow below)
        elif depth == 16 and colour_type in (2, 4, 6):
            import png  # pypng: Pillow reads 16-bit colour or grey + alpha PNG as 8-bit

            with open(path, "rb") as fh:  # (pypng's filename= leaves the file open)
                w, h, rows, info = png.Reader(file=fh).asDirect()
                arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(h, w, info["planes"])
            with _pil_open(path) as im:
                turn = im.getexif().get(0x0112, 1)
                icc = im.info.get("icc_profile")
        if arr is None:
            with _pil_open(path) as im:
                im.load()
                turn = im.getexif().get(0x0112, 1)  # EXIF Orientation: how viewers turn the picture
                if im.mode == "P":
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                elif im.mode == "PA":
                    im = im.convert("RGBA")
                icc = im.info.get("icc_profile")
                if im.mode == "CMYK":  # (a print profile: LittleCMS)
                    if (srgb := _as_srgb(im)) is not None:
                        im, icc_note = srgb[0], CONVERTED_TO_SRGB.format(srgb[1])
                    im, icc = im.convert("RGB"), None
                arr = np.asarray(im)
        if icc:  # every RGB picture brought to sRGB the same way, whatever its container and depth
            arr, icc_note = _in_srgb(arr, icc)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: not a readable image ({short_reason(exc)})") from None
    src = _image_source(path, arr, turn, header.xmp)
    src.notes[:0] = [n for n in (tiff_note, icc_note) if n]
    if turn in UPRIGHT:
        tag = "TIFF orientation tag" if suffix in (".tif", ".tiff") else "EXIF orientation"
        src.notes.insert(0, f"turned upright by its {tag} {turn}, as image viewers show it")
    return src


def _read_tiff(path: Path) -> tuple[np.ndarray | None, int, bytes | None, str]:
    """A TIFF's pixels as stored (tifffile: every depth, float included), its orientation tag, ICC profile and a note
    on how its pixels were read.  The array is None for a palette or CMYK (separated) TIFF: Pillow reads those
    (colours from the palette; the print profile by LittleCMS) at 8 bits.  A white-is-zero grey TIFF is inverted to
    black-is-zero; a TIFF stored in CIE L*a*b* or another colour model raises `InputError`."""
    import tifffile
    from tifffile import PHOTOMETRIC, PLANARCONFIG

    with tifffile.TiffFile(path) as tif:
        # (reduced-resolution pages are previews of the first; any other page is a picture of its own)
        if (full := sum(not getattr(page, "is_reduced", False) for page in tif.pages)) > 1:
            raise InputError(f"{path}: a TIFF of {full} pages (a stack, or a multi-page document); "
                             "astroenhance reads one picture: save the page you want as a file of its own")
        page = tif.pages[0]
        kind = page.photometric
        tag = page.tags.get("Orientation")
        turn = int(tag.value) if tag is not None else 1
        profile = page.tags.get("InterColorProfile")
        icc = bytes(profile.value) if profile is not None else None
        if kind in (PHOTOMETRIC.PALETTE, PHOTOMETRIC.SEPARATED):
            bits = int(page.bitspersample)
            deep = bits > 8 and kind == PHOTOMETRIC.SEPARATED
            return None, turn, icc, (f"a {bits}-bit CMYK TIFF, read at 8 bits" if deep else "")
        if kind not in (PHOTOMETRIC.MINISBLACK, PHOTOMETRIC.MINISWHITE, PHOTOMETRIC.RGB, PHOTOMETRIC.YCBCR):
            raise InputError(f"{path}: its pixels are stored as {kind.name} (TIFF photometric {int(kind)}), which "
                             "astroenhance does not read: save it as grey or RGB")
        arr = tif.asarray()
        if page.planarconfig == PLANARCONFIG.SEPARATE and arr.ndim == 3:  # planar: samples first, (S, H, W)
            arr = np.moveaxis(arr, 0, -1)
    if kind == PHOTOMETRIC.MINISWHITE:  # 0 is white: a negative as stored
        if arr.dtype.kind != "u":
            raise InputError(f"{path}: a white-is-zero TIFF of {arr.dtype} values: its black level is not "
                             "known; save it as black-is-zero grey")
        note = "stored white-is-zero (a negative): read inverted, as viewers show it"
        return np.iinfo(arr.dtype).max - arr, turn, icc, note
    return arr, turn, icc, ""


#: the note of a picture read in sRGB from its own colour space
CONVERTED_TO_SRGB = ("colours converted from its ICC profile ({}) to sRGB, as the outputs are read (untagged pictures "
                     "are sRGB)")


def _profile_name(icc: bytes):
    """``(LittleCMS profile, its description)`` of ICC bytes, the description None where it is sRGB (nothing to
    convert); raises where LittleCMS cannot read them."""
    import io

    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    described = ImageCms.getProfileDescription(profile).strip() or "unnamed"
    return profile, (None if "srgb" in described.lower().replace(" ", "") else described)


def _is_grey(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all())


def _as_srgb(im):
    """``(picture in sRGB, its profile's description)`` for a colour picture (RGB, RGBA, CMYK) whose embedded ICC
    profile is not sRGB (a wide-gamut L*-RGB or Adobe RGB press image, a print CMYK JPEG), converted by LittleCMS;
    None where there is nothing to convert (no profile, sRGB, grey stored as RGB) or the profile cannot be used.
    The outputs are untagged, so read as sRGB: unconverted, such a picture's colours came out shifted (7 of the 648
    shared images carry an L*-RGB profile: up to 41/255 in saturated colours)."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK"):
        return None
    from PIL import Image, ImageCms

    try:
        profile, described = _profile_name(icc)
        if described is None:
            return None
        rgb = im.convert("RGB") if im.mode == "RGBA" else im
        if im.mode != "CMYK" and _is_grey(np.asarray(rgb)):
            return None  # grey: its values are kept as they are (read as grey)
        out = ImageCms.profileToProfile(rgb, profile, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception:  # noqa: BLE001 - a broken or unusual profile: the values as they are
        return None
    if im.mode == "RGBA":
        out = Image.merge("RGBA", (*out.split(), im.getchannel("A")))
    return out, described


def _in_srgb(arr: np.ndarray, icc: bytes | None) -> tuple[np.ndarray, str]:
    """A picture's values as read (``(H, W, 3|4)``; PNG, JPEG or TIFF, 8 or 16
    bits) brought to sRGB from its ICC profile ``icc``, and the note that says so ("" where nothing was done: no
    profile, sRGB, grey, grey stored as RGB).  A matrix/TRC profile (Adobe RGB, ProPhoto, L*-RGB...) is applied in float64
    at any integer depth (`io.icc`: within 1/255 of LittleCMS on 8-bit pictures); another kind of profile on an 8-bit
    picture by LittleCMS (`_as_srgb`); anything else is read as stored, and the note says that its colours were not
    converted."""
    if not icc:
        return arr, ""
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or _is_grey(arr[..., :3]):
        return arr, ""
    from .icc import convert_to_srgb, matrix_shaper

    try:
        described = _profile_name(icc)[1]
    except Exception:  # noqa: BLE001 - a profile LittleCMS cannot read: the matrix/TRC reader may
        described = "unreadable by LittleCMS"
    if described is None:
        return arr, ""
    profile = matrix_shaper(icc)
    if profile is not None and arr.dtype in (np.uint8, np.uint16):
        return convert_to_srgb(arr, profile), CONVERTED_TO_SRGB.format(described)
    if arr.dtype == np.uint8:
        from PIL import Image

        im = Image.fromarray(np.ascontiguousarray(arr))
        im.info["icc_profile"] = icc
        if (srgb := _as_srgb(im)) is not None:
            return np.asarray(srgb[0]), CONVERTED_TO_SRGB.format(described)
    return arr, (f"its ICC profile ({described}) could not be applied to its {arr.dtype} values: colours read as "
                 "stored, as if they were sRGB")


#: an EXIF/TIFF Orientation (1-8) as the turn or flip of a ``(H, W[, C])`` array that shows the picture upright, as
#: viewers show it (the same as Pillow's `ImageOps.exif_transpose`)
UPRIGHT = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, -1)[::-1],
           8: lambda a: np.rot90(a, 1)}


def _image_source(path: Path, arr: np.ndarray, turn: int = 1, xmp: bytes | None = None) -> FrameSource:
    notes: list[str] = []
    if turn in UPRIGHT and arr.ndim in (2, 3):
        arr = np.ascontiguousarray(UPRIGHT[turn](arr))
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    alpha = None
    if arr.ndim == 3 and arr.shape[2] in (2, 4):  # grey or RGB, and alpha
        alpha = arr[..., -1]
        arr = arr[..., 0] if arr.shape[2] == 2 else arr[..., :3]
        if (clear := int(np.count_nonzero(alpha == 0))):  # (an opaque alpha channel changes nothing: no note)
            notes.append(f"{clear} fully transparent pixel{'s are' if clear > 1 else ' is'} no data (alpha 0)")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise InputError(f"{path}: unsupported image layout {arr.shape}; expected grey or RGB")
    if arr.ndim == 3 and _is_grey(arr):
        arr = arr[..., 0]  # grey stored as RGB (a grey palette, an RGB save of a grey picture): grey
        notes.append("R, G and B are equal everywhere: read as a grey image")
    try:
        rng = display_range(arr)
    except TypeError:
        raise InputError(f"{path}: unsupported pixel type {arr.dtype}") from None
    data = arr.astype(np.float32)
    if alpha is not None:
        data[alpha == 0] = np.nan
    if np.isnan(data).all():
        raise InputError(f"{path}: every pixel is transparent or not finite; nothing to enhance")
    wcs = _avm_wcs(xmp, data.shape[:2], turn, notes) if xmp else None
    src = from_array(data, wcs, name=str(path), origin="upper", dtype_range=rng)
    src.dtype = str(arr.dtype)
    src.path = path
    src.notes = notes
    return src


def _avm_wcs(xmp: bytes, shape: tuple[int, int], turn: int, notes: list[str]) -> WCS | None:
    """The sky coordinates a picture's AVM tags (in its XMP packet) give (press images: `pyavm`, whose own reader
    loads the whole file: the packet comes from `picture_header`), as a WCS of its rows bottom-up (the
    AVM and FITS convention, as the FITS and AVM outputs are written), or None.  Carried only where the tags say
    they describe these pixels (Spatial.ReferenceDimension the picture's size, no orientation turn): a crop or a
    resize that kept its original's tags would get a wrong WCS; ``notes`` says why one was not carried."""
    try:
        import pyavm

        start = xmp.index(b"?>", xmp.index(b"<?xpacket begin=")) + 2  # the XML inside the packet, as pyavm cuts it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            avm = pyavm.AVM.from_xml(xmp[start:xmp.index(b"</x:xmpmeta>") + 12])
            spatial = avm.Spatial
            if spatial.ReferenceValue is None or spatial.ReferencePixel is None:
                return None
            ref = spatial.ReferenceDimension
            size = None if ref is None else tuple(int(round(float(v))) for v in ref)
            if size != (shape[1], shape[0]):
                described = "unknown size" if size is None else f"{size[0]}x{size[1]}"
                notes.append(f"its AVM sky coordinates are not carried: they describe a picture of {described} "
                             "(Spatial.ReferenceDimension), "
                             f"this one is {shape[1]}x{shape[0]} (a crop or resize that kept its original's tags?)")
                return None
            if turn != 1:
                notes.append("its AVM sky coordinates are not carried: it is turned by its orientation tag, and the "
                             "tags may describe the pixels as stored or as shown")
                return None
            wcs = avm.to_wcs()
            wcs.wcs.set()
    except Exception:  # no AVM (most pictures), or tags that do not make a WCS
        return None
    notes.append(f"sky coordinates from its AVM tags ({wcs.wcs.ctype[0]}, {wcs.wcs.ctype[1]}): carried onto the "
                 "output's grid, in its FITS and as AVM in its pictures")
    return wcs


def single_frame(path: str | Path, frames: list[FrameSource]) -> FrameSource:
    """The one frame of a file read whole into memory (`read_frame`, `Enhancer.enhance_frame`); a file of several
    chips is an `InputError` naming them and the ``hdu=`` that picks one."""
    if len({f.chip for f in frames}) > 1:
        raise InputError(f"{path}: holds {len(frames)} chips ({', '.join(f.chip for f in frames)}); "
                         f"choose one with hdu= (e.g. hdu={frames[-1].chip!r})")
    if len(frames) > 1:  # several cut-outs of one chip
        raise InputError(f"{path}: {len(frames)} cut-outs ({', '.join(f.section for f in frames)}) where one frame "
                         "is read; give one cut-out centre")
    return frames[0]


def read_frame(path: str | Path | fits.HDUList | fits.ImageHDU, hdu: str | int | None = None, *, dq_mask: int | None = None,
               dq: str | Path | None = None, cosmic_rays: bool | None = None
               ) -> tuple[np.ndarray, WCS | None, fits.Header | None]:
    """Read one whole frame into memory as `run` reads it: ``(data, wcs, kept_header)`` (data float32, NaN for no
    data, including pixels whose DQ flags ``dq_mask`` lists: None, the instrument's default; 0 reads every pixel;
    the kept header with the frame's LTV/LTM where it has them).
    ``dq``: a data-quality file of its own (WFPC2's ``_c1m``).  ``cosmic_rays``: hits read as no data
    (`noise.mask_cosmic_rays`): None, in single exposures whose DQ flags none (`run`'s default); False never.

    For a multi-chip file, name the chip with ``hdu``: an extension (``"SCI,2"``) or a chip label the error lists
    (``"sci2"``; ``"chip3"`` for a plane of a WFPC2 stack).  ``path`` may be an astropy HDUList (or one image HDU)
    in memory, read as the file it would write (`open_frames`).
    """
    with open_frames(path, hdu, dq_mask=dq_mask, dq=dq, cosmic_rays=cosmic_rays) as frames:
        f = single_frame(frame_name(path), frames)
        wcs = f.wcs
        if wcs is not None and f.origin == "upper":  # a picture's (AVM's, rows bottom-up) for its rows as read
            from ..imaging.wcs import flip_rows

            wcs = flip_rows(wcs, f.shape[0])
        header = f.header
        if f.physical != IDENTITY_PHYSICAL:  # its place on the detector (LTV/LTM), which `enhance_array` then keeps
            header = fits.Header() if header is None else header.copy()
            for key, value, comment in physical_cards(f.physical, 1):
                header[key] = (value, comment)
        return f.read_rows(0, f.shape[0]), wcs, header

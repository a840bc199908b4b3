"""What an HST file says about its own noise and bad pixels: ERR, WHT and DQ extensions, or an rms map by path.

A science extension ``SCI,v`` is paired with the ``ERR,v``, ``WHT,v`` and ``DQ,v`` extensions of the same file
(same EXTVER, same shape):

* the frame's noise sigma (`FrameSource.noise`, input units) is the median of ``ERR`` (flt/flc files), else of
  ``1/sqrt(WHT)`` where ``WHT > 0`` (drz/drc files drizzled with inverse-variance weights; the engine checks that
  it agrees with the frame's own pixel-to-pixel noise within 3x, since ``WHT`` is an exposure-time map when
  drizzled with ``final_wht_type=EXP``), else of an rms map given by path (``run --noise FILE``); otherwise
  the engine estimates it from the pixels.  Where it came from is recorded (``AE_SIGSR``).
* Where that per-pixel noise says the sky is deeper in some parts of the frame than in others (a mosaic's edges,
  a chip gap covered by fewer exposures), `sky_noise_map` turns it into a `NoiseMap`: the lower quartile of the sky
  pixels' noise in blocks of `NOISE_MAP_BLOCK` pixels (a ``WHT`` that is an exposure-time map still gives the depth's shape: then
  scaled to the pixels' own noise, block by block), read between block centres by bilinear interpolation.  A frame whose sky noise
  varies by less than `NOISE_MAP_UNIFORM` keeps one sigma.  A FITS frame that gives no per-pixel noise has each block's
  sky noise measured from its pixels (`_estimated_sky_sigmas`), used where it spans `NOISE_MAP_UNIFORM_ESTIMATED`.
* A pixel of no weight in ``WHT`` (0, or not finite: nothing was drizzled there, as in the empty corners of most
  drz/drc frames, whose values are drizzle's fill) is no-data, whatever the DQ mask.
* ``DQ`` flags listed in the mask make a pixel no-data (NaN, like a NaN in the file).  The default,
  `DQ_NO_DATA`, flags what has no usable signal in ACS and WFC3 files: Reed-Solomon errors (1), replaced/fill
  data (2), bad detector pixels (4), hot pixels (16), bad columns (128) and cosmic rays (4096 AstroDrizzle,
  8192 calwf3/acsrej).  Saturated pixels (256, 2048) stay: their values are lower limits, and dropping them
  would punch holes in every bright star.  (The default mask lives with the settings: `config.DQ_NO_DATA`.)
  WFPC2 has flags of its own (`dq_flags`, from INSTRUME): its default, `config.WFPC2_DQ_NO_DATA`, adds bad pixels (32),
  unrepaired warm pixels (512) and masked chips (2048); its saturation is 8.  Its calibrated exposures keep the DQ in
  a file of their own, ``_c1m``/``_c1f`` beside ``_c0m``/``_c0f`` (`dq_planes`).  JWST files (TELESCOP) are read
  with JWST's flags: only DO_NOT_USE (1), `config.JWST_DQ_NO_DATA`, is no data by default; HST's mask would take
  its saturated (2), jump-detected (4: good pixels, the hit fitted around in the ramp) and warm (4096) pixels.
* ``run --clean-cosmic-rays`` (`mask_cosmic_rays`) finds cosmic-ray hits that a single exposure's DQ does not flag:
  pixels sharper than the diffraction limit at the filter's pivot wavelength (PHOTPLAM) allows a star to be
  (`imaging.cosmics`), read as no-data like DQ-flagged ones.
* In every grey frame, a pixel far brighter than any PSF lets a source be beside its neighbours (`ISOLATED`: a hot
  pixel no DQ flags, a fill value such as 1e38) is read as no-data too (`mask_isolated_pixels`, by the engine once
  it knows the frame's sky and noise).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..config import DQ_NO_DATA, JWST_DQ_NO_DATA, WFPC2_DQ_NO_DATA
from ..cores import in_order
from ..errors import DQFileError, InputError, NoiseMapError, short_reason
from ..imaging.cosmics import MARGIN, find_cosmic_rays, star_sharpness
from ..imaging.psf import MAX_STARS, STAMP, detector_pixel, fwhm_arcsec, fwhm_from_stars, star_widths
from ..metrics import difference_sigma
from .compression import decompressed_copy, open_whole


@dataclass(frozen=True)
class DQFlags:
    """An instrument's DQ conventions: the flags read as no data by default, saturation (full well, A/D converter:
    not the PSF's shape, never searched for cosmic rays) and cosmic rays (set when a frame's hits were found)."""

    instrument: str
    no_data: int
    saturated: int
    cosmic_rays: int


ACS_WFC3_FLAGS = DQFlags("ACS/WFC3/STIS", DQ_NO_DATA, 256 | 2048, 4096 | 8192)  # cosmic rays: AstroDrizzle, calwf3/acsrej
WFPC2_FLAGS = DQFlags("WFPC2", WFPC2_DQ_NO_DATA, 8, 4096 | 8192)  # cosmic rays: AstroDrizzle (crbit 4096)
JWST_FLAGS = DQFlags("JWST", JWST_DQ_NO_DATA, 2, 4 | 16)  # cosmic rays: JUMP_DET (ramp fitting), OUTLIER (stage 3)
JWST_INSTRUMENTS = ("NIRCAM", "NIRISS", "NIRSPEC", "MIRI", "FGS")


def dq_flags(*headers: fits.Header) -> DQFlags:
    """The DQ conventions of the instrument the first of ``headers`` to name one (INSTRUME; TELESCOP for JWST)
    names: WFPC2's, JWST's, else ACS/WFC3/STIS's (theirs also serve files that name none)."""
    instrument = next((str(h["INSTRUME"]).strip().upper() for h in headers if h is not None and "INSTRUME" in h), "")
    telescope = next((str(h["TELESCOP"]).strip().upper() for h in headers if h is not None and "TELESCOP" in h), "")
    if telescope == "JWST" or instrument in JWST_INSTRUMENTS:
        return JWST_FLAGS
    return WFPC2_FLAGS if instrument == "WFPC2" else ACS_WFC3_FLAGS


SINGLE_EXPOSURES = ("_flt", "_flc", "_c0m", "_c0f")  # calibrated single exposures: ACS/WFC3/STIS, WFPC2
GEIS_SINGLE_EXPOSURES = ("c0h", "c0d")  # WFPC2's calibrated exposure in GEIS, the name its FITS files' FILENAME keeps
SAMPLE_ROWS = 512  # rows read to take a companion's median: bounded memory for any frame size


def companion(hdul: fits.HDUList, name: str, extver: int, shape: tuple[int, int]) -> fits.ImageHDU | None:
    """The ``name`` extension paired with a science extension of EXTVER ``extver`` and ``shape``, if it holds
    data of that shape (HST writes constant ERR/DQ as empty extensions: those are skipped)."""
    for h in hdul[1:]:
        if (h.name == name and int(h.header.get("EXTVER", 1)) == extver and h.header.get("NAXIS") == 2
                and (h.header.get("NAXIS2"), h.header.get("NAXIS1")) == shape):
            return h
    return None


def sampled_median(read: Callable[[int, int], np.ndarray], rows: int, keep=np.isfinite) -> float | None:
    """Median of the values ``keep`` accepts over evenly strided rows (None if none)."""
    step = max(1, rows // SAMPLE_ROWS)
    vals = np.concatenate([np.asarray(read(y, y + 1), np.float64).ravel() for y in range(0, rows, step)])
    vals = vals[keep(vals)]
    return float(np.median(vals)) if vals.size else None


Rows = Callable[[int, int], np.ndarray]


def file_noise(hdul: fits.HDUList, extver: int, shape: tuple[int, int]
               ) -> tuple[float | None, str, Rows | None, list[str]]:
    """The frame's noise sigma from its ERR or WHT extension, which one (``""`` if neither), a reader of its
    per-pixel sigma rows (``1/sqrt(WHT)``, NaN where ``WHT <= 0``), and notes on an ERR or WHT of the frame's shape
    that cannot give it (no positive value in the rows sampled; another shape: `misfit_companions`)."""
    notes: list[str] = []
    err = companion(hdul, "ERR", extver, shape)
    if err is not None:
        def err_rows(a: int, b: int) -> np.ndarray:
            return err.section[a:b]
        sigma = sampled_median(err_rows, shape[0], lambda v: np.isfinite(v) & (v > 0))
        if sigma:
            return sigma, "ERR", err_rows, notes
        notes.append("its ERR extension holds no positive finite value (all zero, negative or NaN): not used as "
                     "the noise")
    wht = companion(hdul, "WHT", extver, shape)
    if wht is not None:
        inv_sqrt = weight_sigma(lambda a, b: wht.section[a:b])
        sigma = sampled_median(inv_sqrt, shape[0])
        if sigma:
            return sigma, "WHT", inv_sqrt, notes
        notes.append("its WHT extension gives no pixel a positive weight in the rows sampled: not used as the "
                     "noise (pixels of zero weight are no data)")
    return None, "", None, notes


def misfit_companions(hdul: fits.HDUList, extver: int, shape: tuple[int, int]) -> list[str]:
    """A note for each ERR, DQ or WHT image extension of a science extension's EXTVER whose shape is not the
    frame's (`companion` passes it over: its noise, flags or weights are not used)."""
    return [f"its {h.name} extension is {h.header.get('NAXIS1')}x{h.header.get('NAXIS2')} pixels and the frame "
            f"{shape[1]}x{shape[0]}: not used"
            for h in hdul[1:] if h.name in ("ERR", "DQ", "WHT") and int(h.header.get("EXTVER", 1)) == extver
            and h.header.get("NAXIS") == 2 and (h.header.get("NAXIS2"), h.header.get("NAXIS1")) != shape]


def weight_sigma(read_weights: Rows) -> Rows:
    """Rows of ``1/sqrt(w)`` from a reader of inverse-variance weight rows, NaN where ``w <= 0`` or not finite: no
    weight, no data (nothing was drizzled there; the science value is drizzle's fill, usually 0)."""
    def rows(a: int, b: int) -> np.ndarray:
        w = np.asarray(read_weights(a, b), np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(w > 0, 1.0 / np.sqrt(w), np.nan)
    return rows


def unweighted_reader(hdul: fits.HDUList, extver: int, shape: tuple[int, int]):
    """``rows(y0, y1) -> bool array`` of the pixels the WHT extension gives no weight (`weight_sigma`), or None
    without a WHT."""
    wht = companion(hdul, "WHT", extver, shape)
    if wht is None:
        return None
    sigma = weight_sigma(lambda a, b: wht.section[a:b])
    return lambda y0, y1: np.isnan(sigma(y0, y1))


def dq_reader(hdul: fits.HDUList, extver: int, shape: tuple[int, int], mask: int):
    """``rows(y0, y1) -> bool array`` of the pixels the DQ extension's ``mask`` flags, or None."""
    if mask == 0:
        return None
    dq = companion(hdul, "DQ", extver, shape)
    if dq is None:
        return None

    def flagged(y0: int, y1: int) -> np.ndarray:
        return (np.asarray(dq.section[y0:y1]).astype(np.int64) & mask) != 0

    return flagged


def dq_planes(path: Path, files: contextlib.ExitStack) -> list[tuple[tuple[int, int], Rows]]:
    """The image planes of a data-quality file of a frame's own (WFPC2's ``_c1m``/``_c1f``; ``run --dq FILE``), in
    order — each 2-D image HDU, each plane of a cube; one per chip of the frame's file — as ``(shape, rows)``, where
    ``rows(y0, y1)`` reads its flags (integers).  The file is opened once and stays open (memory-mapped) until
    ``files`` closes.  `DQFileError` when it cannot be read or holds floating-point values."""
    try:
        hdul = _opened(path, files, DQFileError, memmap=True, do_not_scale_image_data=True)
        planes = []
        for h in hdul:
            naxis = h.header.get("NAXIS", 0)
            if not isinstance(h, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)) or naxis not in (2, 3):
                continue
            dims = tuple(h.header.get(f"NAXIS{k}", 0) for k in range(naxis, 0, -1))
            if 0 in dims:
                continue
            if h.header.get("BITPIX", -32) < 0:
                raise DQFileError(f"{path}: floating-point values, not DQ flags (integers)")
            planes += [(dims, _plane_rows(path, h, None))] if naxis == 2 else [
                (dims[1:], _plane_rows(path, h, k)) for k in range(dims[0])]
        return planes
    except DQFileError:
        raise
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError... for corrupt files
        raise DQFileError(f"{path}: not a readable FITS file ({short_reason(exc)})") from None


def _opened(path: Path, files: contextlib.ExitStack, error: type[Exception], **options) -> fits.HDUList:
    """``path`` opened by astropy with ``options``, from its decompressed copy where it is compressed whole
    (`compression.decompressed_copy`: read by rows, not into memory whole), its whole HDUs only where bytes that
    begin none follow them (`compression.open_whole`); it stays open until ``files`` closes.  A damaged stream is
    ``error``; astropy's own errors are raised as they are.  (A map has no notes of its own: that it was read in
    memory, or had bytes after its stream or its HDUs, goes unsaid; the frame's own file says it.)"""
    try:
        copy = decompressed_copy(path, files, [])
    except InputError as exc:
        raise error(str(exc)) from None
    # (every HDU read at once: bytes after the last one are found here, not while its HDUs are looked through)
    return files.enter_context(open_whole(lambda name: fits.open(name, lazy_load_hdus=False, **options), copy or path,
                                          copy is not None, files, []))


def _plane_rows(path: Path, h, plane: int | None) -> Rows:
    def rows(a: int, b: int) -> np.ndarray:
        try:
            return np.asarray(h.section[a:b] if plane is None else h.section[plane, a:b])
        except Exception as exc:
            raise DQFileError(f"{path}: DQ could not be read ({short_reason(exc)})") from None
    return rows


def flagged_as_no_data(read_rows: Rows, dq_rows: Rows, mask: int) -> Rows:
    """``read_rows`` with NaN where ``dq_rows`` flags any of ``mask``'s bits."""
    def rows(a: int, b: int) -> np.ndarray:
        out = np.array(read_rows(a, b), dtype=np.float32, copy=True)
        out[(np.asarray(dq_rows(a, b)).astype(np.int64) & mask) != 0] = np.nan
        return out
    return rows


def map_noise(path: Path, shape: tuple[int, int], files: contextlib.ExitStack, weights: bool = False
              ) -> tuple[float, Rows]:
    """The median of an rms (sigma) map given by path (``run --noise FILE``: its first 2-D image, the frame's shape,
    values > 0 counted) and a reader of its rows; the file stays open (memory-mapped) until ``files`` closes.
    ``weights``: the map is an inverse-variance weight map instead (``run --weight FILE``, a drizzled frame's separate
    ``_wht`` file): the rows read as `weight_sigma` (NaN where there is no weight).  Either way a pixel without a
    finite sigma > 0 is no data (`unmeasured`)."""
    what = "weight map" if weights else "noise map"
    try:
        hdul = _opened(path, files, NoiseMapError, memmap=True)
        data = next((h.data for h in hdul if h.header.get("NAXIS") == 2 and h.data is not None), None)
        if data is None:
            raise NoiseMapError(f"{path}: no 2-D image in the {what}")
        if data.shape != tuple(shape):
            raise NoiseMapError(f"{path}: {what} is {data.shape[0]}x{data.shape[1]}, the frame "
                                f"{shape[0]}x{shape[1]}")

        def raw(a: int, b: int) -> np.ndarray:
            try:
                return np.asarray(data[a:b])
            except Exception as exc:
                raise NoiseMapError(f"{path}: {what} could not be read ({short_reason(exc)})") from None

        rows = weight_sigma(raw) if weights else raw
        sigma = sampled_median(rows, shape[0], lambda v: np.isfinite(v) & (v > 0))
    except NoiseMapError:
        raise
    except Exception as exc:  # unreadable, not FITS
        raise NoiseMapError(f"{path}: {what} could not be read ({short_reason(exc)})") from None
    if not sigma:
        raise NoiseMapError(f"{path}: {what} has no finite value > 0")
    return sigma, rows


def unmeasured(read_rows: Rows, sigma_rows: Rows) -> Rows:
    """``read_rows`` with NaN where ``sigma_rows`` (`map_noise` of a map given by path) has no finite sigma > 0: a
    pixel of no weight, or one an rms map gives 0, infinity or no value — nothing was measured there."""
    def rows(a: int, b: int) -> np.ndarray:
        out = np.array(read_rows(a, b), dtype=np.float32, copy=True)
        sigma = np.asarray(sigma_rows(a, b), np.float64)
        with np.errstate(invalid="ignore"):
            out[~(np.isfinite(sigma) & (sigma > 0))] = np.nan
        return out
    return rows


def at_pixels_no_data(read_rows: Rows, ys: np.ndarray, xs: np.ndarray) -> Rows:
    """``read_rows`` with NaN at the pixels (``ys``, ``xs``; rows ascending, as `np.nonzero` gives them): cosmic-ray
    hits, hot pixels.  Rows holding none come as read; the others as a copy (never the input's own array), integers
    as float32."""
    def rows(a: int, b: int) -> np.ndarray:
        out = read_rows(a, b)
        lo, hi = np.searchsorted(ys, (a, b))
        if lo == hi:
            return out
        out = np.array(out, np.float32 if out.dtype.kind in "iu" else out.dtype)
        out[ys[lo:hi] - a, xs[lo:hi]] = np.nan
        return out
    return rows


NOISE_MAP_BLOCK = 32  # input pixels per side of a `NoiseMap` block (1,024 pixels: a depth step blurs over ~32)
NOISE_MAP_UNIFORM = 1.2  # a frame keeps one sigma unless its blocks' sky noise spans more (95th / 5th percentile)
# a block's sky pixels: within SKY_CUT of the frame's sigma of the frame's sky (a source's pixels are not, however
# much noise its own photons add); a block needs SKY_SHARE of its pixels to be (where it is 6x shallower than the
# frame's sigma, ~38% are); others (a galaxy filling them) take their neighbours'
SKY_CUT = 3.0
SKY_SHARE = 0.1
SKY_QUANTILE = 25  # of the sky pixels' sigma: sources only add noise, so a galaxy's halo among them counts less
# a file without per-pixel noise: each block's sky noise measured from its pixels (`_estimated_sky_sigmas`), those
# within SKY_CLIP of the block's robust sigma of the sky; an estimate from ~1,000 pixels scatters by a few percent
# and faint sources add to some, so such a map needs a wider span to be used
SKY_CLIP = 4.0
NOISE_MAP_UNIFORM_ESTIMATED = 1.5


@dataclass(frozen=True)
class NoiseMap:
    """The sky's noise sigma across a frame (input units): one value per block of ``block`` pixels, read at any
    pixel by bilinear interpolation between block centres (constant beyond the outer centres), so that it has no
    steps where blocks meet."""

    grid: np.ndarray  # (blocks down, blocks across)
    block: int
    shape: tuple[int, int]  # the frame's
    units: float = 1.0  # the noise file's values -> sigma in the pixels' units (an exposure-time WHT's scale)

    def _weights(self, a: int, b: int, axis: int) -> np.ndarray:
        """``(b - a, blocks)``: each pixel's interpolation weights over the blocks along ``axis``."""
        n, size = self.grid.shape[axis], self.shape[axis]
        starts = np.arange(n) * self.block
        centres = (starts + np.minimum(starts + self.block, size)) / 2 - 0.5
        weights = np.zeros((b - a, n))
        if n == 1:
            weights[:, 0] = 1.0
            return weights
        pos = np.clip(np.arange(a, b, dtype=np.float64), centres[0], centres[-1])
        left = np.clip(np.searchsorted(centres, pos, side="right") - 1, 0, n - 2)
        t = (pos - centres[left]) / (centres[left + 1] - centres[left])
        rows = np.arange(b - a)
        weights[rows, left] = 1.0 - t
        weights[rows, left + 1] += t
        return weights

    def at(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The map's sigma at rows ``y0:y1``, columns ``x0:x1`` (float64)."""
        return self._weights(y0, y1, 0) @ self.grid @ self._weights(x0, x1, 1).T

    @cached_property
    def _ceiling(self) -> np.ndarray:
        """Each block's largest sigma among itself and its 8 neighbours."""
        from scipy.ndimage import maximum_filter

        return maximum_filter(self.grid, size=3, mode="nearest")

    def read(self, noise_rows: Rows | None, y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
        """The sky's sigma at rows ``y0:y1``, columns ``x0:x1``, sharp and smooth (float64).  Sharp: the file's own
        per-pixel noise (``noise_rows``) where it says less than the largest block around (3x3 blocks) — a depth step
        stays a step, while a source's photons (which raise its ERR above any sky nearby) do not count — and the map
        where the file has no value.  Smooth: the map alone (`at`)."""
        wy, wx = self._weights(y0, y1, 0), self._weights(x0, x1, 1)
        smooth = wy @ self.grid @ wx.T
        if noise_rows is None:  # a map estimated from the pixels alone: nothing sharper to read
            return smooth, smooth
        pixel = np.asarray(noise_rows(y0, y1), np.float64)[:, x0:x1] * self.units
        with np.errstate(invalid="ignore"):
            own = np.isfinite(pixel) & (pixel > 0)
        sharp = np.where(own, np.minimum(np.where(own, pixel, 0.0), wy @ self._ceiling @ wx.T), smooth)
        return sharp, smooth

    def sharp(self, noise_rows: Rows | None, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The sharp sigma of `read`."""
        return self.read(noise_rows, y0, y1, x0, x1)[0]

    @property
    def span(self) -> tuple[float, float]:
        """The smallest and largest sigma of its blocks."""
        return float(self.grid.min()), float(self.grid.max())


def sky_noise_map(read_data: Rows, read_noise: Rows | None, shape: tuple[int, int], sky: float, sigma: float,
                  rescale: bool = False, block: int | None = None,
                  uniform: float = NOISE_MAP_UNIFORM) -> NoiseMap | None:
    """The frame's `NoiseMap` from its pixels and their per-pixel sigma (ERR, ``1/sqrt(WHT)`` or an rms map): per
    block the lower quartile of its sky pixels' sigma (`SKY_CUT`: an ERR that counts a galaxy's photons must not make
    its block look shallow), blocks with too few sky pixels filled from their neighbours; with ``rescale`` (where the
    file's values are not the noise itself, e.g. a ``WHT`` that is an exposure-time map) scaled to the pixels' own
    noise (the lower quartile over blocks of their pixel-difference sigma over the file's value; ``sigma`` where
    none).  Without ``read_noise`` (a file that gives no per-pixel noise) each block's sky noise is measured from
    its pixels (`_estimated_sky_sigmas`) and a frame needs `NOISE_MAP_UNIFORM_ESTIMATED` to get a map.  None when the
    blocks' noise spans less than ``uniform`` (95th / 5th percentile: one sigma serves), or no block has enough sky.  Reads ``block`` rows at a time (default `NOISE_MAP_BLOCK`, read at the
    call)."""
    h, w = shape
    block = block or NOISE_MAP_BLOCK
    if read_noise is None:
        if rescale:
            raise ValueError("rescale scales the file's per-pixel noise: give read_noise")
        measured = _estimated_sky_sigmas(read_data, shape, block, sky, sigma, SKY_SHARE)
        uniform = max(uniform, NOISE_MAP_UNIFORM_ESTIMATED)
    else:
        measured, own = _sky_sigmas(read_data, read_noise, shape, block, sky, SKY_CUT * sigma, SKY_SHARE)
    grid = _fill(measured)
    if grid is None:
        return None
    lo, hi = np.percentile(grid, [5, 95])
    if hi < uniform * lo:
        return None
    units = 1.0
    if rescale:  # the pixels' own noise over the file's value, block by block: sources and a depth step inside a
        # block only raise the pixels' noise, so the lower quartile of the ratios
        ratio = own / measured
        ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
        units = float(np.percentile(ratio, 25)) if ratio.size else sigma / float(np.median(grid))
    return NoiseMap(grid * units, block, (h, w), units)


def _grid(shape: tuple[int, int], block: int) -> np.ndarray:
    return np.full((-(-shape[0] // block), -(-shape[1] // block)), np.nan)


def _sky_sigmas(read_data: Rows, read_noise: Rows, shape: tuple[int, int], block: int, sky: float,
                cut: float, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Per block, the `SKY_QUANTILE` percentile of the noise of the pixels within ``cut`` (the pixels' units) of
    ``sky``, where at least ``share`` of the block's pixels are, and the block's own pixel noise (differences of
    pixels 2 apart, `metrics.difference_sigma`); NaN elsewhere.  All the blocks of a row of blocks at once (the same
    numbers as block by block: `benchmarks/bench_noise_map.py --err`)."""
    grid, own = _grid(shape, block), _grid(shape, block)

    def measure(data: np.ndarray, noise: np.ndarray):
        n, size = len(data), data.shape[1] * np.minimum(block, shape[1] - np.arange(len(data)) * block)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(data) & np.isfinite(noise) & (noise > 0)
            keep = ok & (np.abs(data - sky) < cut)
        count = keep.reshape(n, -1).sum(axis=1)
        sky_blocks = (count > 0) & (count >= share * size)
        if not sky_blocks.any():
            return None
        return (sky_blocks, _masked_percentiles(np.where(keep, noise, np.nan).reshape(n, -1), SKY_QUANTILE),
                _difference_sigmas(np.where(ok, data, np.nan)))

    for j, found in _by_rows_of_blocks((read_data, read_noise), shape, block, measure):
        if found is not None:
            sky_blocks, quantile, pixel_sigma = found
            grid[j, sky_blocks] = quantile[sky_blocks]
            own[j, sky_blocks] = pixel_sigma[sky_blocks]
    return grid, own


def _by_rows_of_blocks(reads: tuple[Rows, ...], shape: tuple[int, int], block: int, measure):
    """``(j, measure(*rows))`` for every row of blocks ``j``, ``rows`` its blocks from each of ``reads``
    (`_row_of_blocks`): read here, in order; measured by the host's threads (`cores.in_order`)."""
    jobs = ((measure, tuple(_row_of_blocks(r, j, shape, block) for r in reads)) for j in range(-(-shape[0] // block)))
    return enumerate(in_order(jobs))


def _row_of_blocks(read: Rows, j: int, shape: tuple[int, int], block: int) -> np.ndarray:
    """Row ``j`` of blocks as ``(blocks, rows, block)`` float64, the last block's columns past the frame NaN."""
    h, w = shape
    rows = np.asarray(read(j * block, min(h, (j + 1) * block)), np.float64)
    n = -(-w // block)
    padded = np.full((rows.shape[0], n * block), np.nan)
    padded[:, :w] = rows
    return padded.reshape(rows.shape[0], n, block).transpose(1, 0, 2)


def _estimated_sky_sigmas(read_data: Rows, shape: tuple[int, int], block: int, sky: float, sigma: float,
                          share: float) -> np.ndarray:
    """Per block, the noise of its sky measured from the pixels alone: differences of pixels 2 apart
    (`metrics.difference_sigma`, robust) among the pixels within `SKY_CLIP` of the estimate of the block's own level
    (the median of those kept), three rounds from its sky pixels (within `SKY_CUT` frame sigmas, ``sigma``, of
    ``sky``): the first cut truncates a shallow block's noise, the wider ones take it whole, a source's bright pixels
    stay out.  NaN (filled from the neighbours) where under ``share`` of the block's pixels are sky, where its level
    ends more than `SKY_CUT` frame sigmas from ``sky`` (extended light, whose own photons are not the sky's noise),
    and for a sliver of a block at the frame's edge (under half a block: too few pixels to tell).  All the blocks of
    a row of blocks at once (the same numbers as block by block: `benchmarks/bench_noise_map.py`)."""
    w = shape[1]
    grid = _grid(shape, block)
    n = grid.shape[1]
    widths = np.minimum(block, w - np.arange(n) * block)

    def measure(x: np.ndarray):  # (blocks, rows, columns) -> the blocks measured and their sigmas, or None
        alive = x.shape[1] * widths >= block * block // 2
        need = np.maximum(share * np.isfinite(x).reshape(n, -1).sum(axis=1), 2 * block)
        with np.errstate(invalid="ignore"):
            keep = np.abs(x - sky) < SKY_CUT * sigma
            for _ in range(4):  # three rounds of clipping, then the measure
                alive &= keep.reshape(n, -1).sum(axis=1) >= need
                if not alive.any():
                    return None
                kept = np.where(keep, x, np.nan)
                est = _difference_sigmas(kept)
                level = _masked_medians(kept.reshape(n, -1))
                keep = np.abs(x - level[:, None, None]) < SKY_CLIP * est[:, None, None]
            return alive & (est > 0) & (np.abs(level - sky) < SKY_CUT * sigma), est

    for j, found in _by_rows_of_blocks((read_data,), shape, block, measure):
        if found is not None:
            ok, est = found
            grid[j, ok] = est[ok]
    return grid


def _masked_medians(values: np.ndarray) -> np.ndarray:
    """The median of each row's finite values (NaN where none), as `numpy.median` takes it."""
    if values.shape[1] == 0:
        return np.full(len(values), np.nan)
    s = np.sort(values, axis=1)  # NaN last
    count = np.isfinite(values).sum(axis=1)
    lo, hi = np.maximum(count - 1, 0) // 2, count // 2
    pick = np.arange(len(s))
    return np.where(count > 0, 0.5 * (s[pick, lo] + s[pick, np.minimum(hi, s.shape[1] - 1)]), np.nan)


def _masked_percentiles(values: np.ndarray, q: float) -> np.ndarray:
    """The ``q`` percentile of each row's finite values (NaN where none), as `numpy.percentile` takes it (linear)."""
    if values.shape[1] == 0:
        return np.full(len(values), np.nan)
    s = np.sort(values, axis=1)  # NaN last
    count = np.isfinite(values).sum(axis=1)
    at = np.true_divide(q, 100) * (np.maximum(count, 1) - 1)  # numpy's virtual index
    lo = np.floor(at).astype(np.intp)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    pick = np.arange(len(s))
    a, b, t = s[pick, lo], s[pick, hi], at - lo
    diff = b - a
    value = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)  # numpy's _lerp
    return np.where(count > 0, value, np.nan)


def _difference_sigmas(blocks: np.ndarray, lag: int = 2) -> np.ndarray:
    """`metrics.difference_sigma` of each block ``(blocks, rows, columns)`` (NaN skipped; 0 where no pair)."""
    d = np.abs(blocks[..., lag:] - blocks[..., :-lag]).reshape(len(blocks), -1)
    med = _masked_medians(d)
    return np.where(np.isfinite(med), 1.4826 * med / np.sqrt(2), 0.0)


def _fill(grid: np.ndarray) -> np.ndarray | None:
    """``grid`` with its NaN blocks given the mean of their neighbours that have a value, ring by ring (None if
    none has)."""
    from scipy.ndimage import convolve

    valid = np.isfinite(grid)
    if not valid.any():
        return None
    grid, ring = grid.copy(), np.ones((3, 3))
    while not valid.all():
        total = convolve(np.where(valid, grid, 0.0), ring, mode="nearest")
        count = convolve(valid.astype(np.float64), ring, mode="nearest")
        new = ~valid & (count > 0)
        grid[new] = total[new] / count[new]
        valid |= new
    return grid


#: the pivot wavelengths (Angstrom) of HST's filters, from the far-UV (STIS, ACS/SBC: ~1,150) to the near-IR
#: (WFC3/IR, NICMOS: ~17,000), with room: a PHOTPLAM outside is not a wavelength the search can use
PIVOT_RANGE = (900, 30000)


def frame_optics(frame, needs: str) -> tuple[float, float]:
    """The pivot wavelength (m: the header's PHOTPLAM) and the WCS's smallest pixel scale (arcsec) of ``frame`` (a
    `readers.FrameSource`) as seen through HST's 2.4 m mirror; an `InputError` naming the frame and what ``needs``
    them (e.g. "--clean-cosmic-rays, to know how sharp a star can be,") where the header cannot give them."""
    header = frame.header
    telescope = str(header.get("TELESCOP", "HST") if header is not None else "HST").strip().upper()
    if telescope not in ("HST", ""):  # (a larger mirror makes stars sharper: its star cores would read as hits)
        raise InputError(f"{frame.name}: {needs} assumes HST's 2.4 m mirror; a {telescope} frame's PSF is another (a "
                         "larger mirror's stars are sharper)")
    try:
        wavelength = float(header["PHOTPLAM"]) * 1e-10 if header is not None and "PHOTPLAM" in header else 0.0
    except (TypeError, ValueError):
        wavelength = 0.0
    if not wavelength > 0:
        raise InputError(f"{frame.name}: {needs} needs the filter's pivot wavelength (PHOTPLAM); this header has none")
    if not PIVOT_RANGE[0] <= wavelength * 1e10 <= PIVOT_RANGE[1]:
        raise InputError(f"{frame.name}: {needs}: PHOTPLAM = {wavelength * 1e10:.4g} Angstrom is no HST filter's "
                         f"pivot wavelength ({PIVOT_RANGE[0]}-{PIVOT_RANGE[1]}), so it is not known")
    if frame.wcs is None:
        raise InputError(f"{frame.name}: {needs} needs a celestial WCS (the pixel scale); this frame has none")
    from astropy.wcs.utils import proj_plane_pixel_scales

    scale = float(np.min(proj_plane_pixel_scales(frame.wcs.celestial))) * 3600.0
    if not 0 < scale < np.inf:
        raise InputError(f"{frame.name}: {needs} needs the pixel scale, and the WCS gives {scale:g}\"")
    return wavelength, scale


def frame_star_sharpness(frame) -> tuple[float, float]:
    """How sharp a star can be on ``frame`` (a `readers.FrameSource`; `imaging.cosmics.star_sharpness`): HST's
    diffraction limit at the header's PHOTPLAM (pivot wavelength, Angstrom) on the WCS's smallest pixel scale."""
    return star_sharpness(*frame_optics(frame, "--clean-cosmic-rays, to know how sharp a star can be,"))


#: rows of a frame read at a time to measure its stars
STAR_STRIP = 1024


def frame_psf_fwhm(frame) -> tuple[float, str]:
    """A lower bound on ``frame``'s PSF FWHM in its own pixels from its header (`imaging.psf.fwhm_arcsec`: HST's
    diffraction core at PHOTPLAM with the detector's pixel, on the WCS's pixel scale), and where it came from; 0 and
    why not where the header cannot say."""
    try:
        wavelength, scale = frame_optics(frame, "the PSF's width")
    except InputError as exc:
        return 0.0, str(exc).removeprefix(f"{frame.name}: ")  # why, without the frame's name the note adds
    return fwhm_arcsec(wavelength, detector_pixel(frame.header, scale)) / scale, "header"


def frame_star_fwhm(frame, sky: float, sigma: float) -> tuple[float, str]:
    """``frame``'s PSF FWHM in its own pixels measured on its compact sources above ``sky`` with noise ``sigma``
    (input units; `imaging.psf.star_widths`, `fwhm_from_stars`: the frame read once, in strips), and how; 0 and why
    not where it has too few.  Kept on the frame (``star_fwhm``): it is asked for the pixels and for the header."""
    if frame.star_fwhm is None:
        h, widths = frame.shape[0], []
        for y in range(0, h if frame.channels == 1 and sigma > 0 else 0, STAR_STRIP):
            left = MAX_STARS - sum(w.size for w in widths)
            if left <= 0:
                break
            a, b = max(0, y - STAMP), min(h, y + STAR_STRIP + STAMP)
            data = np.asarray(frame.read_rows(a, b), np.float64)
            widths.append(star_widths(data, sky, sigma, interior=(y - a, min(h, y + STAR_STRIP) - a), limit=left)[1])
        frame.star_fwhm = fwhm_from_stars(np.concatenate(widths) if widths else np.zeros(0))
    return frame.star_fwhm


def mask_cosmic_rays(frame) -> int:
    """Find ``frame``'s cosmic-ray hits (`imaging.cosmics.find_cosmic_rays`, with the ERR extension's per-pixel
    sigma where the file has one, else the frame's noise) and make its ``read_rows`` return them as NaN, like
    DQ-flagged pixels; saturated pixels (DQ 256, 2048; WFPC2's 8) and their neighbours are never flagged.  Sets
    ``frame.cosmic_rays`` (pixels flagged) and ``cosmic_ray_limit``, adds a note; returns the count.  The whole
    frame is read once (single exposures: a few tens of MB)."""
    from scipy.ndimage import binary_dilation, label

    if frame.channels != 1:
        raise InputError(f"{frame.name}: --clean-cosmic-rays needs a grey frame (one band)")
    ratio, curvature = frame_star_sharpness(frame)
    h = frame.shape[0]
    data = np.asarray(frame.read_rows(0, h), np.float64)
    if frame.pixel_noise_rows is not None:
        sigma = np.asarray(frame.pixel_noise_rows(0, h), np.float64)
        source = "ERR per pixel"
    else:
        sigma = frame.noise or difference_sigma(data) or np.inf
        source = "one sigma for the frame"
    if frame.dq_rows is not None:
        saturated = frame.dq_flags.saturated
        sat = binary_dilation((np.asarray(frame.dq_rows(0, h)).astype(np.int64) & saturated) != 0, iterations=2)
        data = np.where(sat, np.nan, data)
    # as many strips at once as this process may use threads (`runner.set_threads` sets OMP_NUM_THREADS for
    # each of --jobs N workers), else every core
    budget = os.environ.get("OMP_NUM_THREADS", "").strip()
    mask = find_cosmic_rays(data, sigma, ratio, curvature, workers=int(budget) if budget.isdigit() else None)
    del data
    n = int(mask.sum())
    frame.cosmic_rays, frame.cosmic_ray_limit = n, ratio
    hits = label(mask, np.ones((3, 3), bool))[1] if n else 0
    test = f"(peak > {MARGIN:g} x {ratio:.2f} times its neighbours' mean, {source})"
    frame.notes.append(f"cosmic rays: {n} pixel{'s' * (n != 1)} in {hits} group{'s' * (hits != 1)} sharper than a "
                       f"star can be {test} read as no data (AE_NCR)" if n else
                       f"cosmic rays: searched, no pixel sharper than a star can be {test}: none read as no data "
                       "(AE_NCR 0)")
    if n:
        frame.read_rows = at_pixels_no_data(frame.read_rows, *np.nonzero(mask))
    return n


def archive_product(name: str, suffixes: tuple[str, ...], geis: tuple[str, ...]) -> bool:
    """Whether the file name ``name`` is one of an HST archive's products named by ``suffixes`` (``_flt``: any
    extensions after it) or, in WFPC2's GEIS, by ``geis`` (the extension: ``c0h``)."""
    name = name.strip().lower()
    return name.split(".")[0].endswith(suffixes) or name.rsplit(".", 1)[-1] in geis


def single_exposure_name(name: str) -> bool:
    """Whether the file name ``name`` is an HST archive's calibrated single exposure: ``*_flt``, ``*_flc``, ``*_c0m``,
    ``*_c0f`` (any extensions), or WFPC2's GEIS ``*.c0h``/``*.c0d``."""
    return archive_product(name, SINGLE_EXPOSURES, GEIS_SINGLE_EXPOSURES)


def unflagged_single_exposure(frame) -> bool:
    """Whether ``frame`` looks like a calibrated single exposure (named ``*_flt``, ``*_flc``, ``*_c0m``, ``*_c0f``,
    or renamed from one: its header's FILENAME says so) whose DQ (if any) flags no cosmic rays: its hits are still
    in the pixels.  (A frame of no file — an HDUList in memory — by its FILENAME alone; an array has none.)"""
    if not (single_exposure_name(frame.path.name if frame.path else "") or single_exposure_name(frame.archive_name)):
        return False
    if frame.dq_rows is None:
        return True
    h = frame.shape[0]
    flags = frame.dq_flags.cosmic_rays
    return not any(((np.asarray(frame.dq_rows(y, min(h, y + SAMPLE_ROWS))).astype(np.int64) & flags) != 0).any()
                   for y in range(0, h, SAMPLE_ROWS))


#: a grey pixel this many times further above the sky than its brightest neighbour (and than the noise) is no source:
#: any telescope's PSF puts a percent or more of a star's peak into each neighbour, even binned 4x (the largest ratios
#: over the shared frames: 348 in an ACS/HRC exposure before its cosmic-ray search, 70 in WFPC2's; their 4x-binned
#: protocol inputs at most 17; `benchmarks/bench_hot_pixels.py`)
ISOLATED = 1000.0
_RING = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], bool)


def isolated_pixels(frame, sky: float, sigma: float, step: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, columns (row-major order) and values of ``frame``'s pixels more than `ISOLATED` times further above ``sky``
    than each of their 8 neighbours (a neighbour with no data is no light) and than the noise ``sigma`` (> 0): hot
    pixels, fill values.  Read in strips of ``step`` rows, each with its neighbouring rows."""
    from scipy.ndimage import maximum_filter

    h = frame.shape[0]
    found = [], [], []
    for y in range(0, h, step):
        a, b = max(0, y - 1), min(h, y + step + 1)
        rows = np.asarray(frame.read_rows(a, b), np.float64)  # (1e38 times 1000 overflows float32)
        core = rows[y - a:y - a + min(step, h - y)]
        near = maximum_filter(np.where(np.isfinite(rows), rows, -np.inf), footprint=_RING, mode="constant",
                              cval=-np.inf)[y - a:y - a + core.shape[0]]
        with np.errstate(invalid="ignore"):  # (NaN pixels compare False)
            iy, ix = np.nonzero(core - sky > ISOLATED * np.maximum(near - sky, sigma))
        for out, part in zip(found, (iy + y, ix, core[iy, ix])):
            out.append(part)
    return tuple(np.concatenate(part) if part else np.empty(0) for part in found)


def mask_isolated_pixels(frame, sky: float, sigma: float) -> int:
    """Make ``frame``'s `isolated_pixels` read as no data (NaN), like DQ-flagged ones; sets ``frame.hot_pixels`` (how
    many), adds a note where there are any; returns how many it masked now (0 where the frame was searched before)."""
    if frame.hot_pixels >= 0 or frame.channels != 1 or not sigma > 0:
        return 0
    ys, xs, values = isolated_pixels(frame, sky, sigma)
    frame.hot_pixels = n = int(ys.size)
    if n:
        frame.notes.append(f"{n} isolated pixel{'s' * (n != 1)} far brighter than any source (up to {values.max():.4g}; "
                           f"over {ISOLATED:g}x further above the sky than every neighbour and than the noise: hot "
                           "pixels, fill values) read as no data (AE_NHOT): no PSF makes such a pixel")
        frame.read_rows = at_pixels_no_data(frame.read_rows, ys, xs)
    return n

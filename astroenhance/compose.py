"""True-colour composites from several filters, and mosaics, with reproject.

`compose` aligns filter frames on one celestial grid and maps them to RGB in wavelength order; `mosaic`
co-adds frames onto one grid with background matching.  Both write through the same writers as `run`.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from .errors import InputError, short_reason
from .io.observation import wavelength_nm
from .io.writers import scratch_array

#: a composite's small no-data holes filled for display (`filled_holes`), as `run`'s default --fill-holes, in strips
#: of this many rows
FILL_HOLES, HOLE_STRIP = 8, 256


@dataclass
class Band:
    """One filter frame: data, WCS, where it came from and its wavelength (nm, None if unknown)."""

    path: Path
    data: np.ndarray
    wcs: WCS
    header: fits.Header
    filter: str
    wavelength: float | None
    label: str = ""  # the chip, in a file of several (``sci2``, ``chip3``)
    more: tuple[Path, ...] = ()  # other files of the same filter co-added into this band (`by_filter`)
    sigma: np.ndarray | None = None  # its per-pixel noise where the file gives it (ERR, 1/sqrt(WHT)), in data's units
    notes: list[str] = field(default_factory=list)  # what reading it found (cosmic rays, odd WCS...), each naming it
    cosmic_rays: int = -1  # pixels read as no data as cosmic-ray hits (-1: not searched)
    cosmic_ray_limit: float = 0.0  # the peak / neighbours ratio above which a pixel was not a star (AE_CRLIM)
    section: str = ""  # a cut-out's pixels of the frame ('[x1:x2,y1:y2]', 1-based; `io.cutout`); "": all of it
    noise_from: str = ""  # where ``sigma`` came from, as `run` records it (AE_SIGSR: ERR, WHT, an rms map's name)
    dq_mask: int = 0  # the DQ flags read as no data (AE_DQMSK)
    noise_file: Path | None = None  # the rms or weight map's file ``sigma`` came from, where one (AE_SIGSH)
    dq_file: Path | None = None  # a data-quality file beside it (WFPC2's _c1m), where one (AE_DQFIL, AE_DQSHA)
    picture: tuple[float, float] | None = None  # a PNG/TIFF/JPEG's value range (0-255...): display values, not data

    @property
    def name(self) -> str:
        """The file's name, with the chip where the file holds several (and the files co-added with it)."""
        return self.path.name + (f"[{self.label}]" if self.label else "") + "".join(f"+{p.name}" for p in self.more)


#: what reading a frame found that its outputs record (AE_SIGSR, AE_SIGSH, AE_DQMSK, AE_DQFIL, AE_DQSHA, AE_NCR,
#: AE_CRLIM): `FrameSource`'s, kept by its `Band` and given back to the source a colour mosaic enhances it from
READ_FACTS = ("noise_from", "noise_file", "dq_mask", "dq_file", "cosmic_rays", "cosmic_ray_limit")
NOISE_UNREAD = READ_FACTS[2:]  # (a band without its sigma array: the noise is the pixels' own)


def read_bands(path: str | Path, hdu: str | None = None, cosmic_rays: bool | None = False, *,
               noise: Path | None = None, weight: Path | None = None, dq: Path | None = None,
               with_sigma: bool = False, cutout=None, colour: str = "") -> list[Band]:
    """Every chip of the FITS frame ``path`` (the one ``hdu`` names, if given) as a `Band`, each with its own WCS;
    astropy's notes on odd headers stay quiet, as in `run`, and its own are the band's (`Band.notes`).
    ``cosmic_rays``: as `io.readers.open_frames` (None: where `run` searches them by default, single exposures whose
    DQ flags none); ``noise``, ``weight``, ``dq``:
    its rms or weight map and data-quality file beside it (`batch.pair_companions`), as `run` reads them;
    ``with_sigma``: each band's per-pixel noise too (`Band.sigma`: frames to enhance), a second array in memory;
    ``cutout``: only that part of each chip (`io.cutout.Cutout`; chips without its centre left out);
    ``colour``: where not empty, a colour picture is an `InputError` that names it and says this (what to do instead);
    so is a cube of 3 planes under one WCS (`FrameSource.cube_planes`: a colour picture's planes?), all of it read."""
    from .io.readers import open_frames

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open_frames(path, hdu, cosmic_rays=cosmic_rays, noise=noise, weight=weight, dq=dq,
                         dq_beside=dq is not None, cutout=cutout) as frames:
            # (the kept keywords: the frame's own, else its primary header's, where HST files keep their filters)
            name, wl = wavelength_nm(frames[0].header if frames[0].header is not None else fits.Header())
            if len(frames) > 1 and frames[0].cube_planes == 3:  # (every plane read: no --hdu chipN)
                raise InputError(f"{path}: a cube of 3 planes under one WCS (a colour picture's red, green and blue?), "
                                 "which would be co-added as one band: give each plane as a FITS file of its own (or, "
                                 "where every file is such a cube, choose a plane with --hdu chip1, chip2 or chip3)")
            bands = []
            for f in frames:
                if colour and f.channels == 3:
                    raise InputError(f"{f.name}: a colour picture: {colour}")
                if f.wcs is None:
                    raise InputError(f"{f.name}: no celestial WCS: it cannot be aligned with other frames")
                _check_sky(f.name, f.wcs, f.shape)
                kept = f.header.copy() if f.header is not None else fits.Header()
                sigma = (np.asarray(f.noise_rows(0, f.shape[0]), np.float32)
                         if with_sigma and f.noise_rows is not None else None)
                data = f.read_rows(0, f.shape[0])
                if f.origin == "upper":  # a picture's rows run top-down; its WCS (from AVM) counts them bottom-up
                    data = np.ascontiguousarray(data[::-1])
                band = Band(Path(path), data, f.wcs, kept, name, wl, f.label, sigma=sigma, section=f.section,
                            picture=f.dtype_range, **{k: getattr(f, k) for k in READ_FACTS})
                band.notes = [f"{band.name}: {n}" for n in f.notes]
                if len(frames) > 1 and f is frames[0] and f.cube_planes:
                    band.notes.append(f"{path}: a cube of {f.cube_planes} planes under one WCS, co-added as one band "
                                      "(a stack of one filter's exposures?); --hdu chipN takes one plane")
                bands.append(band)
            return bands


#: a frame's pixels shrunk by its projection below this share of their nominal size (CDELT, CD) are not a real frame's
SQUEEZED = 0.01


def _check_sky(name: str, wcs: WCS, shape: tuple[int, int]) -> None:
    """An `InputError` naming the frame where its WCS cannot place it on a grid with others: a celestial frame
    astropy does not know (RADESYS 'XYZ'), or no sky position for its corners and centre (a CRVAL of 1e10 degrees,
    a projection that fails there) — reproject's own errors said neither which frame nor why."""
    from astropy.wcs.utils import wcs_to_celestial_frame

    try:
        wcs_to_celestial_frame(wcs)
    except ValueError:
        raise InputError(f"{name}: its WCS's celestial frame is not one astropy knows (RADESYS "
                         f"{wcs.wcs.radesys!r}, CTYPE {', '.join(wcs.wcs.ctype)}): it cannot be aligned with other "
                         "frames") from None
    ny, nx = shape
    xs, ys = np.array([0, nx - 1, nx - 1, 0, nx / 2]), np.array([0, 0, ny - 1, ny - 1, ny / 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        world = np.asarray(wcs.celestial.all_pix2world(xs, ys, 0), np.float64)
    lon, lat = world
    if not (np.isfinite(world).all() and (np.abs(lon) <= 720).all() and (np.abs(lat) <= 90 + 1e-9).all()):
        raise InputError(f"{name}: its WCS gives no usable sky position for some of its corners (CRVAL "
                         f"{', '.join(f'{v:g}' for v in wcs.wcs.crval)}): it cannot be aligned with other frames")
    # the frame's pixels where they are: a reference pixel far off the frame (CRPIX 1e9) puts them where the projection
    # squeezes a pixel to a sliver of its nominal size, and reproject sizes the grid NaN
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        step = np.asarray(wcs.celestial.all_pix2world([nx / 2, nx / 2 + 1, nx / 2], [ny / 2, ny / 2, ny / 2 + 1], 0))
    centre = SkyCoord(step[0, 0], step[1, 0], unit="deg")
    local = centre.separation(SkyCoord(step[0, 1:], step[1, 1:], unit="deg")).deg
    nominal = proj_plane_pixel_scales(wcs.celestial)
    if not (np.isfinite(local).all() and (local > SQUEEZED * nominal).all()):
        raise InputError(f"{name}: its WCS squeezes its pixels to {np.nanmin(local / nominal):.2g} of their nominal "
                         f"size where the frame lies (CRPIX {', '.join(f'{v:g}' for v in wcs.wcs.crpix)}, far off the "
                         "frame?): it cannot be aligned with other frames")


def read_band(path: str | Path, hdu: str | None = None, **maps) -> Band:
    """The frame of ``path`` as one filter's band (`read_bands`, with its ``maps``: noise, weight, dq, cosmic_rays
    and cutout): a file of
    several chips (an ACS/WFC exposure, a WFPC2 one) gives its chips co-added onto one grid — the first chip's,
    extended over the others (`mosaic_grid` ``first``), backgrounds matched (`coadd`) — unless ``hdu`` names one."""
    bands = read_bands(path, hdu, colour="compose makes colour from frames of one filter each (a colour picture is "
                       "already a composite): give each filter's grey frame", **maps)
    return _coadded(bands, "+".join(b.label for b in bands))


def area_scales(bands: list[Band], wcs: WCS) -> np.ndarray:
    """Per band, the factor that puts its values in the units of a pixel of the grid ``wcs``: for amounts per pixel
    (counts, electrons/s: `pipeline.finish.flux_per_pixel` of BUNIT, which takes a frame without BUNIT so) the
    grid's pixel area over the band's, since reprojecting keeps each pixel's value (a frame of 0.05" pixels
    beside one of 0.03" came out 2.8x too bright); 1 for surface brightness (MJy/sr: the same on any grid)."""
    from astropy.wcs.utils import proj_plane_pixel_area

    from .pipeline.finish import flux_per_pixel

    area = proj_plane_pixel_area(wcs)
    scales = np.array([area / proj_plane_pixel_area(b.wcs) if flux_per_pixel(str(b.header.get("BUNIT", "")))[0]
                       else 1.0 for b in bands])
    return np.where(np.abs(scales - 1.0) < 1e-6, 1.0, scales)  # (the same pixel size, to rounding)


def exposure_scales(bands: list[Band]) -> np.ndarray:
    """Per band, the factor that puts an amount gathered over the exposure (BUNIT counts, electrons, DN — not per
    second) on the first such band's exposure time (EXPTIME): frames of 100 s and 1000 s in electrons combined as
    they are mix two scales (10x).  1 for rates (electrons/s, Jy, MJy/sr), frames without EXPTIME or BUNIT, and
    where the times agree."""
    from .pipeline.finish import gathered_over_exposure

    def time(b: Band) -> float | None:
        try:
            t = float(b.header.get("EXPTIME", 0))
        except (TypeError, ValueError):
            return None
        return t if gathered_over_exposure(str(b.header.get("BUNIT", ""))) and np.isfinite(t) and t > 0 else None

    times = [time(b) for b in bands]
    ref = next((t for t in times if t), None)
    scales = np.array([ref / t if t and ref else 1.0 for t in times])
    return np.where(np.abs(scales - 1.0) < 1e-6, 1.0, scales)


def on_grid_units(bands: list[Band], wcs: WCS) -> tuple[list[Band], np.ndarray, np.ndarray]:
    """``bands`` with their data in the units of a pixel of the grid ``wcs`` (`area_scales`) and, for amounts
    gathered over the exposure, of the first one's exposure time (`exposure_scales`); and the two factors."""
    area, exposure = area_scales(bands, wcs), exposure_scales(bands)
    return [b if f == 1.0 else replace(b, data=(b.data * np.float32(f)).astype(np.float32),
                                       sigma=None if b.sigma is None else (b.sigma * np.float32(f)).astype(np.float32))
            for b, f in zip(bands, area * exposure)], area, exposure


def _coadded(bands: list[Band], label: str, more: tuple[Path, ...] = ()) -> Band:
    """Frames of one filter as one band: co-added onto the first one's grid extended over the others
    (`mosaic_grid` ``first``), backgrounds matched (`coadd`), each in that grid's pixel units (`on_grid_units`)."""
    if len(bands) == 1:
        return bands[0]
    wcs, shape = mosaic_grid([(b.data, b.wcs) for b in bands], "first")
    on_grid, _, exposure = on_grid_units(bands, wcs)
    data, _, _ = coadd([(b.data, b.wcs) for b in on_grid], wcs, shape, "mean", True)
    first = bands[0]
    header = first.header.copy()  # (the exposures' dates, names and times, where they differ, not the band's)
    drop_differing(header, [b.header for b in bands], exposure)
    return Band(first.path, np.asarray(data, np.float32), wcs, header, first.filter, first.wavelength, label,
                more, notes=[n for b in bands for n in b.notes], cosmic_rays=cosmic_ray_total(bands),
                section="+".join(b.section for b in bands if b.section))


def cosmic_ray_total(bands: list[Band]) -> int:
    """The cosmic-ray pixels of the bands searched, together (`Band.cosmic_rays`; -1: none was searched)."""
    searched = [b.cosmic_rays for b in bands if b.cosmic_rays >= 0]
    return sum(searched) if searched else -1


def by_filter(bands: list[Band]) -> list[Band]:
    """One band per filter: frames that name the same filter (exposures of one band) co-added (`_coadded`), in
    the order first given; frames whose filter is unknown stay apart.  One filter is a `SettingsError`."""
    from .errors import SettingsError

    groups: dict[object, list[Band]] = {}
    for i, b in enumerate(bands):
        groups.setdefault(b.filter.lower() if b.filter else i, []).append(b)
    if len(groups) < 2:
        raise SettingsError(f"every frame is of one filter ({bands[0].filter}): give two or more filters")
    return [_coadded(g, g[0].label if len(g) == 1 else "", tuple(b.path for b in g[1:])) for g in groups.values()]


def _centre(band: Band) -> SkyCoord:
    ny, nx = band.data.shape
    return band.wcs.pixel_to_world((nx - 1) / 2, (ny - 1) / 2)


def check_overlap(bands: list[Band]) -> None:
    """Raise `InputError` with the separation when two frames do not overlap on the sky."""
    for i, a in enumerate(bands):
        for b in bands[i + 1:]:
            ny, nx = b.data.shape
            corners = b.wcs.pixel_to_world(np.array([-0.5, nx - 0.5, nx - 0.5, -0.5, (nx - 1) / 2]),
                                           np.array([-0.5, -0.5, ny - 0.5, ny - 0.5, (ny - 1) / 2]))
            x, y = a.wcs.world_to_pixel(corners)
            ay, ax = a.data.shape
            bx0, bx1, by0, by1 = np.min(x), np.max(x), np.min(y), np.max(y)
            if bx1 < -0.5 or bx0 > ax - 0.5 or by1 < -0.5 or by0 > ay - 0.5:
                sep = _centre(a).separation(_centre(b))
                raise InputError(f"{a.name} and {b.name} do not overlap on the sky: their centres are "
                                 f"{sep.to('arcsec').value:.1f} arcsec apart")


def order_by_wavelength(bands: list[Band]) -> tuple[list[Band], str]:
    """Bands sorted blue to red when every wavelength is known; a warning text when the given order differs."""
    if any(b.wavelength is None for b in bands):
        return bands, ""
    ordered = sorted(bands, key=lambda b: b.wavelength)
    if [b.path for b in ordered] != [b.path for b in bands]:
        given = ", ".join(f"{b.name} ({b.filter}, {b.wavelength:.0f} nm)" for b in bands)
        return ordered, (f"the frames were given as {given}, which is not blue-to-red; "
                         f"using {', '.join(b.filter for b in ordered)} as blue, green, red")
    return ordered, ""


def _finest(bands: list[Band]) -> int:
    return int(np.argmin([np.mean(proj_plane_pixel_scales(b.wcs.celestial)) for b in bands]))


def filled_holes(bands: list[Band], max_run: int) -> tuple[list[Band], int]:
    """Each band with its small no-data holes — runs of at most ``max_run`` pixels along a row or column with data
    around (cosmic-ray hits, DQ-flagged hot pixels) — interpolated from their neighbours (`pipeline.holes`, as `run`
    shows them in its display planes), and how many pixels were filled.  For a picture only: a composite's hole is
    a black dot, grown by the reprojection."""
    from .pipeline.holes import fill_in_strips

    out, total = [], 0
    for b in bands:
        data, filled = fill_in_strips(b.data, max_run, HOLE_STRIP)  # (in strips: a band's memory stays bounded)
        total += filled
        out.append(replace(b, data=data) if filled else b)
    return out, total


#: output pixels per strip of a composite (`align`, `composite_rgb`: astropy's Lupton mapping holds ~15 float64
#: copies of what it is given)
COMPOSE_STRIP_PIXELS = 1_000_000


def _strips(shape: tuple[int, ...], pixels: int | None = None):
    """Slices of rows of a grid of ``shape`` (its last two axes), about ``pixels`` (`COMPOSE_STRIP_PIXELS`) each."""
    rows = max(1, (pixels or COMPOSE_STRIP_PIXELS) // max(1, shape[-1]))
    for y0 in range(0, shape[-2], rows):
        yield slice(y0, min(shape[-2], y0 + rows))


def _grid_array(scratch: Path | None, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
    """A new array of ``shape``: in memory, or a memory-mapped file ``name`` in the folder ``scratch``."""
    return np.zeros(shape, dtype) if scratch is None else scratch_array(Path(scratch) / f"{name}.npy", dtype, shape)


def align(bands: list[Band], reference: int | None = None,
          out: np.ndarray | None = None) -> tuple[np.ndarray, WCS, int]:
    """Every band reprojected onto the reference frame's grid (`interp_keeping_data`: each pixel's value kept, so a
    band in counts per pixel of another size is off by the area ratio — by one factor for the whole band, which
    `composite_rgb`'s per-band scaling removes), in strips of that grid (reproject's coordinates for the whole grid
    at once were ~50 bytes a pixel per band).

    Returns ``(stack (n, H, W), wcs, reference_index)``, the stack in ``out`` where given (a float32 memory map:
    a large field's bands need not be in memory twice); the reference defaults to the finest-sampled frame.
    """
    from .imaging.wcs import crop_wcs

    ref = _finest(bands) if reference is None else reference
    target = bands[ref]
    shape = target.data.shape
    stack = np.empty((len(bands), *shape)) if out is None else out
    for i, b in enumerate(bands):
        if i == ref:
            stack[i] = b.data
            continue
        for rows in _strips(shape):
            strip = crop_wcs(target.wcs, 0, rows.start, shape[1], rows.stop - rows.start)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arr, _ = interp_keeping_data((b.data, b.wcs), strip, shape_out=(rows.stop - rows.start, shape[1]))
            stack[i, rows] = arr
    return stack, target.wcs, ref


def common_data(stack: np.ndarray) -> np.ndarray:
    """Where every plane of ``stack`` ``(n, H, W)`` has data, found in strips (a boolean ``(H, W)``)."""
    common = np.empty(stack.shape[1:], bool)
    for rows in _strips(stack.shape):
        common[rows] = np.isfinite(stack[:, rows]).all(axis=0)
    return common


def _background(a: np.ndarray) -> float:
    from astropy.stats import sigma_clipped_stats

    finite = a[np.isfinite(a)]
    return float(sigma_clipped_stats(finite, sigma=3, maxiters=5)[1]) if finite.size else 0.0


def _levels(band: np.ndarray, common: np.ndarray) -> tuple[float, float]:
    """``band``'s background and the 99.5th percentile above it, both taken where every band has data: what a band
    is brought to one scale by (less the one, divided by the other)."""
    values = band[common].astype(np.float64)
    background = _background(values)
    values -= background
    level = float(np.percentile(values, 99.5)) if values.size else 0.0
    return background, level if level > 0 else 1.0


def chromatic_weights(n: int) -> np.ndarray:
    """``(n, 3)``: how much of each of ``n`` bands, blue to red, goes into the blue, green and red channels — each
    band given a hue by its rank, evenly from blue (the bluest) through green to red (the reddest), each channel's
    weights summing to 1 ("chromatic ordering"; for three bands: each its own channel)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    w = np.hstack([np.clip(1 - 2 * t, 0, None), 1 - np.abs(2 * t - 1), np.clip(2 * t - 1, 0, None)])
    return w / w.sum(axis=0)


def chromatic_channels(stack: np.ndarray, weights: np.ndarray, out: np.ndarray | None = None,
                       common: np.ndarray | None = None) -> np.ndarray:
    """``(n, H, W)`` aligned bands, blue to red -> ``(3, H, W)`` blue, green, red: each band first brought to one
    scale (`_levels`: every band counts alike, whatever its units and depth), then weighted (`chromatic_weights`);
    in strips, into ``out`` where given (``common``: `common_data` of ``stack``, where the caller has it)."""
    common = common_data(stack) if common is None else common
    if not common.any():
        raise InputError("the aligned bands share no pixel with data in all of them: nothing to compose")
    levels = np.array([_levels(b, common) for b in stack])[:, :, None, None]
    out = np.empty((3, *stack.shape[1:])) if out is None else out
    for rows in _strips(stack.shape):
        out[:, rows] = np.einsum("nc,nhw->chw", weights, (stack[:, rows] - levels[:, 0]) / levels[:, 1])
    return out


def composite_rgb(stack: np.ndarray, method: str = "lupton", q: float = 8.0, stretch: float = 0.5,
                  out: np.ndarray | None = None, common: np.ndarray | None = None) -> np.ndarray:
    """``(3, H, W)`` aligned blue, green, red -> ``(H, W, 3)`` RGB display values in [0, 1] (NaN: no data), float32,
    made in strips (into ``out`` where given: a memory map; ``common``: `common_data` of ``stack``, where known).

    ``lupton``: Lupton et al. (2004) asinh on the summed intensity, which keeps colours of bright objects;
    each band is background-subtracted and scaled by its 99.5th percentile first. ``asinh``: each band through
    its own percentile:99.5 interval and asinh stretch.  Each band's statistics are taken where every band has
    data (the composite's own sky): a band covering less of the field was scaled by other sky than the rest, and
    its colour balance with it (a green at a sixth of its brightness where it covered half the field).  Both
    mappings work pixel by pixel once those are known, so each strip is as the whole grid would be.
    """
    from astropy.visualization import make_lupton_rgb

    from .imaging.normalize import Normalizer

    if method not in ("asinh", "lupton"):
        raise ValueError(f"unknown method {method!r}; choose lupton or asinh")
    channels = stack[::-1]  # red, green, blue
    common = common_data(stack) if common is None else common
    if not common.any():
        raise InputError("the aligned bands share no pixel with data in all of them: nothing to compose")
    if method == "asinh":
        norms = [Normalizer.fit(c[common], "asinh", "percentile:99.5") for c in channels]
    else:
        levels = [_levels(c, common) for c in channels]
    rgb = np.empty((*stack.shape[1:], 3), np.float32) if out is None else out
    for rows in _strips(stack.shape):
        if method == "asinh":
            part = np.stack([norm(c[rows]) for norm, c in zip(norms, channels)], -1).astype(np.float64)
        else:
            scaled = [np.nan_to_num((c[rows].astype(np.float64) - bg) / level, nan=0.0)
                      for (bg, level), c in zip(levels, channels)]
            with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 where no band has light (no data: masked)
                part = make_lupton_rgb(*scaled, minimum=0.0, stretch=stretch, Q=q, output_dtype=np.float64)
        part = np.clip(part, 0.0, 1.0)
        part[~common[rows]] = np.nan
        rgb[rows] = part
    return rgb


#: a mosaic grid may hold this many times its frames' own pixels (rotated, offset frames: a few times), or this many
#: pixels, whichever is more; beyond both, the frames lie far apart and the grid would be mostly empty
GRID_EMPTINESS, GRID_FREE_PIXELS = 25, 4_000_000


def mosaic_grid(frames: list[tuple[np.ndarray, WCS]], grid: str = "optimal",
                refuse_empty: bool = True, names: list[str] | None = None) -> tuple[WCS, tuple[int, int]]:
    """The output grid: ``optimal`` (reproject's `find_optimal_celestial_wcs`, north up, finest resolution) or
    ``first`` (the first frame's pixel grid, extended to cover every frame).  A grid mostly empty because the frames
    lie far apart on the sky (`GRID_EMPTINESS`) is a `SettingsError`, before anything that size is allocated
    (``refuse_empty`` False: the caller decided that already, on the same frames at their own pixels), and so is a
    grid less than a pixel across, which pixels far longer than wide make; the messages name the frames by
    ``names``.  A colour frame ``(H, W, 3)`` counts by its first plane."""
    from .errors import SettingsError

    frames = [(a if a.ndim == 2 else a[..., 0], w) for a, w in frames]
    names = names or [f"frame {i + 1}" for i in range(len(frames))]
    apart = "mosaic frames that overlap or touch, a group at a time"
    if refuse_empty and (far := _farthest(frames))[0] > 90:  # no one tangent plane holds them (reproject: NaN sizes)
        raise SettingsError(f"the frames lie far apart on the sky: {far[0]:.0f} degrees between {names[far[1]]} and "
                            f"{names[far[2]]}; {apart}")
    wcs, shape = _grid(frames, grid)
    if min(shape) < 1:  # (reproject rounds the frames' extent to 0 pixels: reprojecting onto that raised)
        sides = [proj_plane_pixel_scales(w.celestial) * 3600 for _, w in frames]
        i = int(np.argmax([s.max() / s.min() for s in sides]))
        raise SettingsError(f"the frames are less than half a grid pixel across: {names[i]}'s pixels are "
                            f"{sides[i][0]:.3g}\" by {sides[i][1]:.3g}\" and the grid takes the frames' mean side "
                            f"({np.mean(sides[i]):.3g}\" or less); check their WCS (CDELT, CD), or use --grid first")
    own = sum(a.shape[0] * a.shape[1] for a, _ in frames)
    if refuse_empty and shape[0] * shape[1] > max(GRID_EMPTINESS * own, GRID_FREE_PIXELS):
        raise SettingsError(f"the frames lie far apart on the sky: their grid would be {shape[1]}x{shape[0]} pixels "
                            f"({shape[0] * shape[1] / 1e6:.0f} Mpx, {shape[0] * shape[1] / own:.0f}x the frames' own "
                            f"pixels, nearly all empty; farthest apart: {names[far[1]]} and {names[far[2]]}, "
                            f"{far[0]:.2g} degrees); {apart}")
    return wcs, shape


def _farthest(frames: list[tuple[np.ndarray, WCS]]) -> tuple[float, int, int]:
    """The largest angle (degrees) between two frames' centres, and which two frames."""
    xyz = np.array([w.celestial.pixel_to_world((a.shape[1] - 1) / 2, (a.shape[0] - 1) / 2).icrs.cartesian.xyz.value
                    for a, w in frames])
    cos = xyz @ xyz.T
    i, j = np.unravel_index(int(np.argmin(cos)), cos.shape)
    return float(np.degrees(np.arccos(np.clip(cos[i, j], -1.0, 1.0)))), int(min(i, j)), int(max(i, j))


def _grid(frames: list[tuple[np.ndarray, WCS]], grid: str) -> tuple[WCS, tuple[int, int]]:
    from reproject.mosaicking import find_optimal_celestial_wcs

    if grid == "optimal":
        scale = min(np.mean(proj_plane_pixel_scales(w.celestial)) for _, w in frames)
        from astropy import units as u

        wcs, shape = find_optimal_celestial_wcs([(a, w) for a, w in frames], resolution=scale * u.deg)
        return wcs, (int(shape[0]), int(shape[1]))
    if grid != "first":
        raise ValueError(f"unknown grid {grid!r}; choose optimal or first")
    ref = frames[0][1]
    xs, ys = [], []
    for a, w in frames:
        ny, nx = a.shape
        corners = w.pixel_to_world(np.array([0, nx - 1, nx - 1, 0]), np.array([0, 0, ny - 1, ny - 1]))
        x, y = ref.world_to_pixel(corners)
        xs += list(x)
        ys += list(y)
    x0, y0 = int(np.floor(min(xs) + 1e-6)), int(np.floor(min(ys) + 1e-6))
    x1, y1 = int(np.ceil(max(xs) - 1e-6)), int(np.ceil(max(ys) - 1e-6))
    from .imaging.wcs import crop_wcs

    out = crop_wcs(ref, x0, y0, x1 - x0 + 1, y1 - y0 + 1)  # (the first frame's grid, extended: x0, y0 <= 0)
    # lookup-table distortions (NPOL, D2IM) are indexed by the detector's own pixels, and a FITS header cannot hold
    # them: dropped (sub-pixel corrections), so that the grid the frames are reprojected onto is the one written
    out.cpdis1 = out.cpdis2 = out.det2im1 = out.det2im2 = None
    out.wcs.set()
    return out, (y1 - y0 + 1, x1 - x0 + 1)


def coadd(frames: list[tuple[np.ndarray, WCS]], wcs: WCS, shape: tuple[int, int], combine: str = "mean",
          match_background: bool = True, scratch: Path | None = None, dtype=np.float64, footprint: bool = True
          ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The frames combined onto ``wcs``/``shape`` (mean or first: `reproject_and_coadd`; median: of every frame's
    reprojection), in strips of the grid; with ``scratch`` the output lives in memory-mapped files.  A frame may
    hold planes on one pixel grid, ``(P, H, W)`` (a colour frame's R, G, B): each is combined on its own, the sky
    mapped once for all (outputs ``(P, *shape)``).  ``match_background`` (frames of one plane): each frame first
    shifted by its `background_offsets` (subtracted), which are returned too (zeros without).  (reproject's own
    matching turns a frame that overlaps no other — the chips of an ACS/WFC exposure, either side of their gap —
    into NaN: its correction is the mean of nothing.)  Each strip is combined in float64 and kept as ``dtype`` (a
    colour mosaic's display values: float32; a science mosaic's: ``">f4"``, the float32 it writes), its footprint
    too, or not kept (``footprint`` False: None returned) — 12 bytes a grid pixel for R, G, B instead of 48."""
    from reproject.mosaicking import reproject_and_coadd

    from .imaging.wcs import crop_wcs

    planes = frames[0][0].shape[:-2]
    if match_background and planes:
        raise ValueError("background matching is for frames of one plane")
    offsets = background_offsets(frames, wcs, shape) if match_background else np.zeros(len(frames))
    full = (*planes, *shape)
    kept = ["array", "footprint"] if footprint else ["array"]
    made = [np.zeros(full, dtype) if scratch is None else scratch_array(scratch.with_suffix(f".{k}.npy"), dtype, full)
            for k in kept]
    shifted = [(a - o if o else a, w) for (a, w), o in zip(frames, offsets)]
    # in strips of the grid: reproject holds every frame's reprojection (float64, with its coordinates) at once, a
    # few GB for two 2800² frames on their whole grid; a strip's are a strip's (each pixel's value is the same)
    rows = max(16, COADD_STRIP_PIXELS // (shape[1] * int(np.prod(planes))))
    for y0 in range(0, shape[0], rows):
        h = min(rows, shape[0] - y0)
        strip = crop_wcs(wcs, 0, y0, shape[1], h)
        if combine == "median":  # (reproject's coadd has none)
            stack = _reprojected(shifted, strip, (h, shape[1]))
            fp = np.isfinite(stack).sum(axis=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # (all-NaN columns: no frame there)
                out = np.nanmedian(stack, axis=0)
        else:
            out, fp = np.zeros((*planes, h, shape[1])), np.zeros((*planes, h, shape[1]))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reproject_and_coadd(shifted, strip, shape_out=(*planes, h, shape[1]),
                                    reproject_function=interp_keeping_data, combine_function=combine,
                                    match_background=False, blank_pixel_value=np.nan, output_array=out,
                                    output_footprint=fp)
            out[fp == 0] = np.nan  # (a strip no frame reaches: reproject returns early)
        for grid, part in zip(made, (out, fp)):
            grid[..., y0:y0 + h, :] = part
    return made[0], made[1] if footprint else None, offsets


#: output pixels (times planes) per strip of `coadd` (reproject's memory for one strip: ~100 bytes a pixel per frame)
COADD_STRIP_PIXELS = 2_000_000


#: the share of an interpolated pixel's weight that may fall on no data and still be round-off (`interp_keeping_data`)
NO_DATA_WEIGHT = 1e-6


def interp_keeping_data(input_data, output_projection, shape_out, output_array=None, output_footprint=None,
                        **kwargs):
    """`reproject_interp` that loses no pixel to round-off beside no data: reproject interpolates even a grid onto
    itself at positions 1e-10 pixel off, so every no-data pixel (DQ, cosmic ray) took its 8 neighbours with it (69
    such pixels of the HRC crop made 271 in a mosaic on its own grid).  The frame is interpolated with no data as 0,
    and so is its mask of data; a pixel is kept where at most `NO_DATA_WEIGHT` of its weight lies on no data (its
    value divided by the data's share), no data elsewhere, as before.  Planes ``(P, H, W)`` and their masks are
    interpolated together, the sky mapped once (one mask where the planes share it: a colour frame's)."""
    from reproject import reproject_interp

    data, wcs_in = input_data
    data = np.asarray(data)
    finite = np.isfinite(data)
    if finite.all():
        return reproject_interp(input_data, output_projection, shape_out=shape_out, output_array=output_array,
                                output_footprint=output_footprint, **kwargs)
    values, finite = data.reshape(-1, *data.shape[-2:]), finite.reshape(-1, *data.shape[-2:])
    masks = finite[:1] if all(np.array_equal(finite[0], m) for m in finite[1:]) else finite
    # (float32 suffices: 0 and 1, and the data's own values, are interpolated in double precision by scipy)
    stack = np.concatenate([np.where(finite, values, np.float32(0)), masks.astype(np.float32)])
    both, _ = reproject_interp((stack, wcs_in), output_projection, shape_out=(len(stack), *shape_out[-2:]), **kwargs)
    value, share = both[:len(values)], both[len(values):]
    keep = share >= 1.0 - NO_DATA_WEIGHT
    value_out = np.empty(shape_out) if output_array is None else output_array
    footprint = np.empty(shape_out) if output_footprint is None else output_footprint
    with np.errstate(divide="ignore", invalid="ignore"):
        value_out[...] = np.where(keep, value / share, np.nan).reshape(shape_out)
    footprint[...] = np.broadcast_to(keep & ~np.isnan(value), value.shape).reshape(shape_out)
    return value_out, footprint


# output pixels at most on which `background_offsets` compares the frames: per frame, and over all frames together
BACKGROUND_GRID, BACKGROUND_STACK = 2_000_000, 20_000_000


def _reprojected(frames: list[tuple[np.ndarray, WCS]], wcs: WCS, shape: tuple[int, int],
                 dtype=np.float64) -> np.ndarray:
    """Every frame reprojected onto ``wcs``/``shape`` (`interp_keeping_data`), NaN outside it: ``(n, *shape)``
    (``(n, P, *shape)`` for frames of P planes)."""
    planes = frames[0][0].shape[:-2]
    stack = np.full((len(frames), *planes, *shape), np.nan, dtype=dtype)
    for k, (a, w) in enumerate(frames):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr, fp = interp_keeping_data((a, w), wcs, shape_out=(*planes, *shape))
        stack[k] = np.where(fp > 0, arr, np.nan)
    return stack


def background_offsets(frames: list[tuple[np.ndarray, WCS]], wcs: WCS, shape: tuple[int, int],
                       max_pixels: int = BACKGROUND_GRID) -> np.ndarray:
    """Each frame's background offset from the others, on the output grid ``wcs``/``shape`` coarsened to at most
    ``max_pixels`` (fewer with many frames: `BACKGROUND_STACK` over all) (`solve_offsets`: a frame that overlaps no
    other gets 0)."""
    from .imaging.wcs import scale_wcs

    max_pixels = max(1, min(max_pixels, BACKGROUND_STACK // max(1, len(frames))))
    step = max(1, int(np.ceil(np.sqrt(shape[0] * shape[1] / max_pixels))))
    coarse = scale_wcs(wcs, 1 / step)[0] if step > 1 else wcs
    return solve_offsets(_reprojected(frames, coarse, (-(-shape[0] // step), -(-shape[1] // step)), np.float32))


def solve_offsets(stack: np.ndarray, min_overlap: int = 10) -> np.ndarray:
    """Offsets (one per frame of ``stack``, frames on one grid, NaN outside each) that make the frames agree where
    they overlap: least squares on the median difference of every pair sharing more than ``min_overlap`` pixels,
    the offsets of each group of frames joined by overlaps summing to zero, so that a frame overlapping none keeps
    its own level (0)."""
    n = len(stack)
    rows, rhs = [], []
    group = list(range(n))  # union-find over overlapping pairs

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    finite = np.isfinite(stack)
    for i in range(n):
        for j in range(i + 1, n):
            both = finite[i] & finite[j]
            if both.sum() > min_overlap:
                r = np.zeros(n)
                r[i], r[j] = 1.0, -1.0
                rows.append(r)
                rhs.append(float(np.median(stack[i][both] - stack[j][both])))
                group[root(i)] = root(j)
    for g in {root(i) for i in range(n)}:
        rows.append(np.array([1.0 if root(i) == g else 0.0 for i in range(n)]))
        rhs.append(0.0)
    return np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]


def _box_within(frame_wcs: WCS, frame_shape: tuple[int, int], wcs: WCS, shape: tuple[int, int],
                margin: int) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)``: the bounding box, in a frame's pixels, of what the grid ``wcs`` of ``shape`` shows of
    it, ``margin`` more each way; None where it shows none of it."""
    ny, nx = shape
    t = np.linspace(0, 1, 33)
    xs = np.concatenate([t * nx, np.full(33, nx), (1 - t) * nx, np.zeros(33)]) - 0.5  # the grid's outline
    ys = np.concatenate([np.zeros(33), t * ny, np.full(33, ny), (1 - t) * ny]) - 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bx, by = (np.asarray(v, float) for v in frame_wcs.world_to_pixel(wcs.pixel_to_world(xs, ys)))
    ok = np.isfinite(bx) & np.isfinite(by)
    if not ok.any():
        return None
    h, w = frame_shape
    x0, x1 = max(0, int(np.floor(bx[ok].min())) - margin), min(w, int(np.ceil(bx[ok].max())) + margin + 1)
    y0, y1 = max(0, int(np.floor(by[ok].min())) - margin), min(h, int(np.ceil(by[ok].max())) + margin + 1)
    return None if x0 >= x1 or y0 >= y1 else (x0, y0, x1, y1)


def band_within(band: Band, wcs: WCS, shape: tuple[int, int], margin: int = 8) -> Band | None:
    """The part of ``band`` that the grid ``wcs`` of ``shape`` shows — its bounding box in the band's pixels,
    ``margin`` more each way (for the interpolation and the networks' context), with its noise and exact WCS
    (`imaging.wcs.crop_wcs`) — or None where the grid shows none of it (a mosaic cut-out: frames to enhance)."""
    from .imaging.wcs import crop_wcs
    from .io.cutout import fits_section

    if (box := _box_within(band.wcs, band.data.shape, wcs, shape, margin)) is None:
        return None
    x0, y0, x1, y1 = box
    return replace(band, data=band.data[y0:y1, x0:x1], wcs=crop_wcs(band.wcs, x0, y0, x1 - x0, y1 - y0),
                   sigma=None if band.sigma is None else band.sigma[y0:y1, x0:x1],
                   section=fits_section(x0, y0, x1 - x0, y1 - y0), notes=list(band.notes))


def picture_range(bands: list[Band]) -> tuple[float, float] | None:
    """The value range every one of ``bands`` shares as a picture (0-255 for 8-bit PNGs...), shown in it as `run`
    shows pictures; None where one is a FITS frame or their ranges differ."""
    ranges = {b.picture for b in bands}
    return ranges.pop() if len(ranges) == 1 else None


def enhance_frames(bands: list[Band], enhancer, match_background: bool = True,
                   grid: tuple[WCS, tuple[int, int]] | None = None,
                   scratch: Path | None = None) -> list[tuple[np.ndarray, WCS, fits.Header]]:
    """Each band enhanced (``enhancer.enhance_array``: colour, 4x) for a colour mosaic, all shown with one display
    mapping so that no seam shows where they meet: first their backgrounds matched in the data's own units
    (`background_offsets` on the grid that holds them all), then one mapping fitted to them together (the median of
    their skies and noises, their brightest pixel: `Normalizer.fit` with the enhancer's FITS stretch and interval).
    ``grid``: a grid that holds them all, where the caller has one (`mosaic_grid`: made here otherwise).
    Returns ``(rgb, wcs, header)`` per band, on its own 4x grid, the header `run`'s output of it would have (how it
    was made: networks, weights, display mapping); with ``scratch`` (a folder) each ``rgb`` is a memory-mapped
    file there, written as it is made, so that the frames need not stay in memory (an ACS/WFC chip's: 1.6 GB).
    No FLUX or FLUXERR plane is made: the mosaic shows the display planes.
    Pictures (PNG, TIFF, JPEG: display values already) are enhanced as `run` enhances them — the picture network,
    their own value range as the mapping (pictures of different ranges each brought to 0-1), no background matching
    — and cannot be mixed with FITS frames (an `InputError`)."""
    from .imaging.normalize import Normalizer
    from .io.readers import from_array

    pictures = sum(b.picture is not None for b in bands)
    if 0 < pictures < len(bands):
        raise InputError(f"{next(b.name for b in bands if b.picture is not None)}: a picture (display values) among "
                         "FITS frames (data): a colour mosaic shows one or the other")
    fits_like = not pictures
    # pictures of one value range shown in it, as `run` shows them; of several (8- and 16-bit) each brought to 0-1
    span = None if fits_like else picture_range(bands) or (0.0, 1.0)
    frames = [(b.data if span is None or span == b.picture else
               (b.data - b.picture[0]) / (b.picture[1] - b.picture[0]), b.wcs) for b in bands]
    if match_background and fits_like and len(frames) > 1:
        offsets = background_offsets(frames, *(grid or mosaic_grid(frames, "optimal")))
        frames = [(a - o, w) for (a, w), o in zip(frames, offsets)]
    cfg = enhancer.settings(fits_like).for_frame(3 if bands[0].data.ndim == 3 else 1)
    # each frame as `run` sees it: its units (BUNIT), its own per-pixel noise where the file gives one, and what
    # reading it found, recorded as `run` records it (where its noise came from, DQ flags and file, cosmic rays)
    sources = [from_array(a, w, origin="lower", header=b.header, sigma=b.sigma, dtype_range=span)
               for (a, w), b in zip(frames, bands)]
    for src, b in zip(sources, bands):
        # (a band without its sigma array: the noise estimated from the pixels, as `run` says)
        for key in READ_FACTS if b.sigma is not None and b.noise_from else NOISE_UNREAD:
            setattr(src, key, getattr(b, key))
    own = [enhancer.fit_normalizer(src, cfg) for src in sources]
    # (the pooled sample serves the other intervals: percentile, zscale...)
    shared = Normalizer.fit(np.concatenate([src.sample(1_000_000 // len(sources)).ravel() for src in sources]),
                            cfg.stretch or ("asinh" if fits_like else "linear"),
                            cfg.interval or ("noise:3" if fits_like else "range"), span,
                            sky=float(np.median([n.sky for n in own])),
                            sigma=float(np.median([n.sky_noise for n in own])), maximum=max(n.vmax for n in own))
    display_only = replace(enhancer.asked, flux_plane=False, flux_err=False)  # (a colour mosaic shows rgb alone)
    out = []
    for k, src in enumerate(sources):
        shape = (src.shape[0] * enhancer.scale, src.shape[1] * enhancer.scale, 3)
        planes = None if scratch is None else scratch_array(Path(scratch) / f"enhanced{k}.npy", np.float32, shape)
        res = enhancer.enhance_source(src, display=shared, config=display_only, out=planes,
                                      luminance=False)  # (display planes alone)
        out.append((res.rgb, res.wcs, res.header))
        del res
    return out


def scratch_bytes(frames: list[tuple[int, int]], grid: tuple[int, int], planes: int) -> int:
    """The scratch space a mosaic takes while it works: the colour frames it holds in files (``frames``: their
    shapes, R, G, B in float32; none for a science mosaic, whose frames stay as read) and the co-added grid in
    float32 (`coadd`): R, G, B for a colour mosaic (``planes`` 3), the values and their footprint for a science one."""
    return sum(h * w * 3 * 4 for h, w in frames) + grid[0] * grid[1] * 4 * (planes if planes > 1 else 2)


def check_scratch_room(folder: Path, needed: int) -> None:
    """An `OutputError` when the disk holding ``folder`` (or the nearest folder above it that exists) has less than
    ``needed`` bytes free: said before hours of work go into a mosaic that could not be finished."""
    import shutil

    from .errors import OutputError
    from .io.writers import readable_size

    where = next(p for p in (folder, *folder.parents) if p.exists())
    free = shutil.disk_usage(where).free
    if needed > free:
        raise OutputError(f"{folder}: the mosaic needs about {readable_size(needed)} of scratch space there while it "
                          f"works ({readable_size(free)} free): free space, or give -o on a disk with room")


#: the display mapping's keywords: enhanced frames that differ in any show seams where they meet
MAPPING_KEYWORDS = ("AE_STRCH", "AE_STRA", "AE_INTVL", "AE_VMIN", "AE_VMAX")


class Enhanced(NamedTuple):
    """One of `run`'s RGB FITS outputs, its pixels not read: `enhanced_planes` reads them."""
    path: Path
    wcs: WCS
    header: fits.Header  # (the primary's)
    shape: tuple[int, int]
    origin: tuple[int, int] = (0, 0)  # (x, y) of the part's first pixel in the output: `enhanced_within`


def enhanced_within(out: Enhanced, wcs: WCS, shape: tuple[int, int], margin: int = 2) -> Enhanced | None:
    """The part of ``out`` that the grid ``wcs`` of ``shape`` shows (`band_within`'s box), its WCS cut to it
    (`imaging.wcs.crop_wcs`); None where the grid shows none of it (a mosaic cut-out of outputs)."""
    from .imaging.wcs import crop_wcs

    if (box := _box_within(out.wcs, out.shape, wcs, shape, margin)) is None:
        return None
    x0, y0, x1, y1 = box
    return out._replace(wcs=crop_wcs(out.wcs, x0, y0, x1 - x0, y1 - y0), shape=(y1 - y0, x1 - x0),
                        origin=(out.origin[0] + x0, out.origin[1] + y0))


def enhanced_outputs(paths: list[Path]) -> list[Enhanced] | None:
    """Each of ``paths`` (`Enhanced`: its WCS, primary header and shape) when all are astroenhance outputs
    (`io.readers.is_enhanced_output`); None when none is.  A mix of outputs and frames to enhance is an `InputError`
    naming the first frame that is not an output: their values are not comparable."""
    from .io.readers import is_enhanced_output, is_fits, open_fits

    found, kinds = [], []
    for path in paths:
        if not is_fits(path):  # a picture: a frame, read (and its name checked) as `run` reads it
            kinds.append(False)
            continue
        with open_fits(Path(path)) as hdul:
            kinds.append(is_enhanced_output(hdul))
            if kinds[-1]:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    wcs = WCS(hdul["RED"].header, hdul).celestial  # (with its lookup-table distortions)
                if not wcs.has_celestial:
                    raise InputError(f"{path}: no celestial WCS: it cannot be aligned with other frames")
                red = hdul["RED"].header
                shape = (int(red.get("ZNAXIS2", red["NAXIS2"])), int(red.get("ZNAXIS1", red["NAXIS1"])))
                found.append(Enhanced(Path(path), wcs, hdul[0].header.copy(), shape))
    if not any(kinds):
        return None
    if not all(kinds):
        frame, first = paths[kinds.index(False)], paths[kinds.index(True)]
        raise InputError(f"{frame}: not an astroenhance output, among outputs ({first}: display values, not the data's "
                         "units): mosaic the enhanced outputs together, or the original frames (with --enhance for "
                         "colour)")
    return found


#: output pixels a plane is read in at a time by `enhanced_planes`
PLANE_STRIP_PIXELS = 4_000_000


def enhanced_planes(out: Enhanced, into: Path | None = None) -> np.ndarray:
    """The RGB display planes of ``out`` as ``(H, W, 3)`` float32 (NaN: no data; int16's BLANK, rice's too), read in
    strips; with ``into`` (a ``.npy`` path) a memory-mapped file there, so that a mosaic of many outputs need not
    hold them all in memory (an ACS/WFC chip's: 1.6 GB)."""
    shape = (*out.shape, 3)
    rgb = np.empty(shape, np.float32) if into is None else scratch_array(into, np.float32, shape)
    rows, (ox, oy) = max(16, PLANE_STRIP_PIXELS // out.shape[1]), out.origin
    # (memmap False: astropy reads a section of a scaled plane, BSCALE, BZERO and BLANK applied, only then)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (astropy's "may have been truncated": said below, naming the file)
            hdul = fits.open(out.path, memmap=False, lazy_load_hdus=False)
        with hdul:
            for c, name in enumerate(("RED", "GREEN", "BLUE")):
                for y0 in range(0, out.shape[0], rows):
                    y1 = min(y0 + rows, out.shape[0])
                    rgb[y0:y1, :, c] = hdul[name].section[oy + y0:oy + y1, ox:ox + out.shape[1]]
    except Exception as exc:  # (astropy: OSError, ValueError, TypeError... for a file cut short)
        raise InputError(f"{out.path}: its display planes could not be read ({short_reason(exc)}); the file may be "
                         "truncated") from None
    if into is not None:
        rgb.flush()
    return rgb


def mapping_differs(headers: list[fits.Header]) -> list[str]:
    """The display-mapping keywords (`MAPPING_KEYWORDS`) on which enhanced outputs disagree."""
    return [k for k in MAPPING_KEYWORDS if len({str(h.get(k)) for h in headers}) > 1]


# ---- the two jobs, as the CLI runs them ----------------------------------------------------------------

def composite_source(paths: list[Path], hdu: str | None = None, reference: int | None = None,
                     method: str = "lupton", maps: dict[Path, dict] | None = None, cosmic_rays: bool | None = None,
                     cutout=None, scratch: Path | None = None):
    """The true-colour composite of filter frames ``paths`` as a display source (values in [0, 1], rows
    bottom-up, the reference frame's WCS and keywords plus AE_* cards naming each channel's frame and filter),
    and a warning ("" if none) when the frames were not given blue to red.

    Frames are ordered by wavelength; two frames make green their mean, four or more are blended into the three
    channels by their rank in wavelength (`chromatic_weights`); all are reprojected onto frame
    ``reference`` (1-based, as given) or the finest-sampled one.  ``cosmic_rays``: as `read_bands` (by default
    searched where `run` searches them); what reading found is in the source's notes.  ``cutout``: only that part
    of each frame (`io.cutout.Cutout`: about a sky position, the same part of the sky in every band).  ``scratch``:
    a folder where the aligned bands and the composite are memory-mapped files (float32, 4 bytes a pixel per band and
    12 for the composite), so that a large field is in memory once, as its bands read; else in memory."""
    from .errors import SettingsError
    from .io.readers import from_array
    from .io.writers import add_text, set_card

    if len(paths) < 2:
        raise SettingsError("give at least two filter frames (BLUE GREEN RED)")
    if reference is not None and not 1 <= reference <= len(paths):
        raise SettingsError(f"--reference {reference}: choose 1..{len(paths)}")
    bands = [read_band(p, hdu, cosmic_rays=cosmic_rays, cutout=cutout, **(maps or {}).get(Path(p), {}))  # (maps: DQ...)
             for p in paths]
    check_overlap(bands)
    bands, filled = filled_holes(by_filter(bands), FILL_HOLES)
    ref_path = Path(paths[reference - 1]) if reference else None
    bands, warning = order_by_wavelength(bands)
    if len(bands) > 3 and (unknown := [b.name for b in bands if b.wavelength is None]):
        raise SettingsError(f"{len(bands)} filters: more than three are given hues in order of wavelength, and the "
                            f"filter of {', '.join(unknown)} is not known (FILTER, PHOTPLAM); give three, or frames "
                            "whose headers name their filter")
    ref_index = None if ref_path is None else next(i for i, b in enumerate(bands) if ref_path in (b.path, *b.more))
    shape = bands[_finest(bands) if ref_index is None else ref_index].data.shape
    stack, wcs, ref_index = align(bands, ref_index, _grid_array(scratch, "aligned", (len(bands), *shape)))
    bands = [replace(b, data=np.empty((0, 0), np.float32)) for b in bands]  # (their pixels are in the stack now)
    common = common_data(stack)
    for b, plane in zip(bands, stack):  # (a flat band was a wash of colour with --method asinh, black with lupton)
        if common.any() and not np.ptp(values := plane[common]) > 0:
            raise InputError(f"{b.name}: every pixel where the bands overlap is {float(values[0]):g}: a band "
                             "with no signal cannot give a colour")
    blend = chromatic_weights(len(bands)) if len(bands) > 3 else None
    if blend is not None:  # four filters or more: each a hue by its rank in wavelength
        stack = chromatic_channels(stack, blend, _grid_array(scratch, "channels", (3, *shape)), common)
    if len(bands) == 2:  # two filters: green is their mean, on the common grid
        three = _grid_array(scratch, "channels", (3, *shape))
        for rows in _strips(stack.shape):
            three[0, rows], three[2, rows] = stack[0, rows], stack[1, rows]
            three[1, rows] = (stack[0, rows].astype(np.float64) + stack[1, rows]) / 2
        stack = three
        bands = [bands[0], replace(bands[0], filter="mean", wavelength=None, more=()), bands[1]]
        ref_index *= 2
    # (the channels have data where every band has: a blend of bands, or a mean of two)
    rgb = composite_rgb(stack, method, out=_grid_array(scratch, "rgb", (*shape, 3)), common=common)
    header = bands[ref_index].header.copy()
    drop_differing(header, [b.header for b in bands if b.filter != "mean"])  # (FILTER always: the AE_?FLT cards say)
    from .models.weights import sha256_file

    sha = {p: sha256_file(p) for p in sorted({p for b in bands for p in (b.path, *b.more)}, key=str)}  # each read once
    if blend is None:
        for colour, b in zip(("BLUE", "GREEN", "RED"), bands):
            set_card(header, f"AE_{colour[:1]}SRC", b.name[-60:] if b.filter != "mean" else "mean of blue and red",
                     f"{colour.lower()} channel frame")
            set_card(header, f"AE_{colour[:1]}FLT", b.filter or "unknown", f"{colour.lower()} filter")
            if b.section:  # the cut-out of its frame (--cutout)
                set_card(header, f"AE_{colour[:1]}CUT", b.section[-68:], f"{colour.lower()} frame's cut-out pixels")
            if b.filter != "mean":  # a synthesised green has no file of its own
                set_card(header, f"AE_{colour[:1]}SHA", sha[b.path], f"sha256 of the {colour.lower()} frame")
    else:  # each channel a blend: its filters and weights; each band's frame, filter and sha256 in HISTORY
        for c, colour in enumerate(("BLUE", "GREEN", "RED")):
            mix = "+".join(f"{b.filter}*{w:.2f}" for b, w in zip(bands, blend[:, c]) if w > 0)
            set_card(header, f"AE_{colour[:1]}SRC", f"blend of {int((blend[:, c] > 0).sum())} bands (HISTORY)",
                     f"{colour.lower()} channel frames")
            set_card(header, f"AE_{colour[:1]}FLT", mix[:68], f"{colour.lower()} filters*weights")
        set_card(header, "AE_NBAND", len(bands), "bands, each a hue by wavelength rank")
        for k, (b, w) in enumerate(zip(bands, blend)):
            add_text(header, "HISTORY", f"astroenhance compose band {k + 1} of {len(bands)}: {b.name}, filter "
                                        f"{b.filter} ({b.wavelength:.0f} nm), weight in blue {w[0]:.3f} green "
                                        f"{w[1]:.3f} red {w[2]:.3f}, sha256 {sha[b.path]}"
                                        + (f", cut-out {b.section}" if b.section else ""))
    set_card(header, "AE_INSHA", ",".join(h[:16] for h in sha.values()), "inputs' sha256 (16 hex each)")
    set_card(header, "AE_CMETH", method, "composite method")
    set_card(header, "AE_CREF", bands[ref_index].name[-60:], "frame whose grid was used")
    add_text(header, "HISTORY", "astroenhance compose: bands reprojected with reproject_interp onto the reference grid")
    add_text(header, "HISTORY", "colours are the filters' own (a true-colour composite), not predicted")
    src = from_array(rgb, wcs, name="compose: " + " ".join(b.name for b in bands), origin="lower",
                     header=header, dtype_range=(0.0, 1.0))
    src.notes.extend(n for b in bands if b.filter != "mean" for n in b.notes)
    src.cosmic_rays = cosmic_ray_total([b for b in bands if b.filter != "mean"])  # (AE_NCR)
    src.fill_holes = FILL_HOLES  # (AE_FILLH)
    if filled:
        src.notes.append(f"{filled} no-data pixel{'s' * (filled != 1)} in small holes (runs of <= {FILL_HOLES} "
                         "pixels with data around: hits, hot pixels) are shown interpolated (AE_FILLH)")
    return src, warning


#: how HST and other archives spell the same BUNIT apart (ELECTRONS/S, electron / s, e-/s; COUNTS/S, counts s-1, cps)
UNIT_SPELLINGS = ((re.compile(r"(?i)\bcps\b"), "count/s"), (re.compile(r"(?i)\belectrons?\b|\be-(?![a-z0-9])"), "electron"),
                  (re.compile(r"(?i)\b(counts?|cts)\b"), "count"), (re.compile(r"(?i)\b(sec|seconds?)\b"), "s"),
                  (re.compile(r"(?i)/\s*s\b"), "/s"), (re.compile(r"(?i)\s*\bs\s*(\*\*|\^)?\s*-1\b"), "/s"))


def unit_key(bunit: str) -> str:
    """BUNIT in one spelling, so that frames in the same unit written differently are not called different:
    the archives' words made astropy's (ELECTRONS -> electron, COUNTS -> count, a second as s: HST's "/S" is never
    siemens here), then astropy's own form of the unit where it knows it ("electron / s"), else that text.  Case
    is kept elsewhere (mJy is not MJy)."""
    text = str(bunit or "").strip()
    for pattern, word in UNIT_SPELLINGS:
        text = pattern.sub(word, text)
    text = re.sub(r"\s*/\s*", "/", text)
    try:
        from astropy import units as u

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            unit = u.Unit(text, parse_strict="silent")
        return text if isinstance(unit, u.UnrecognizedUnit) else unit.to_string()
    except Exception:  # noqa: BLE001 - a unit astropy cannot even read: its text
        return text


def mixed_frames(bands: list[Band], data: bool = True) -> list[str]:
    """What makes a mosaic of ``bands`` more than one measurement: pictures (PNG/TIFF/JPEG: display values, not
    data) co-added as data (``data``; not where they are enhanced into a colour mosaic), frames of different
    filters, or in different units (BUNIT), each as a sentence naming them; empty when they agree (or do not say)."""
    said = []
    if data and (pictures := [b.name for b in bands if b.picture is not None]):
        said.append((f"{len(pictures)} of the frames are" if len(pictures) < len(bands) else "the frames are")
                    + f" pictures ({', '.join(pictures)}): their values are display values (stretched, clipped), "
                    "not data; the mosaic co-adds them as they are: a picture, not a measurement")
    for what, values, key in (("filters", [b.filter for b in bands], str),
                              ("units (BUNIT)", [str(b.header.get("BUNIT", "")).strip() for b in bands], unit_key)):
        named = {v for v in values if v}
        if len({key(v) for v in named}) > 1:
            said.append(f"the frames are of different {what} ({', '.join(sorted(named))}): the mosaic mixes them, "
                        "a picture or a detection image, not one band's measurement")
    return said


class Checksums(dict):
    """sha256 of files, each read once (a multi-chip frame's chips are one file)."""

    def __missing__(self, path: Path) -> str:
        from .models.weights import sha256_file

        self[path] = sha256_file(path)
        return self[path]


def band_history(i: int, band: Band, shas: Checksums) -> list[str]:
    """A mosaic's HISTORY lines for its input ``i`` (0-based) read as ``band``: its name, the sha256 of its file
    and of the maps beside it, the cosmic rays read as no data."""
    lines = [f"astroenhance mosaic input {i + 1}: {band.name}",
             f"astroenhance mosaic input {i + 1} sha256: " + ", ".join(shas[p] for p in (band.path, *band.more))]
    if band.cosmic_rays >= 0:
        lines.append(f"astroenhance mosaic input {i + 1} cosmic rays: {band.cosmic_rays} pixels sharper than a star "
                     "can be read as no data")
    return lines


def made_of(headers: list[fits.Header]) -> tuple[fits.Header, list[str]]:
    """How frames shown together were made — the cards of `pipeline.provenance.MADE_OF` (networks, weights, colour,
    scale, display mapping) from each frame's header: each card's value where every frame has the same, ``mixed``
    where they differ (those keywords returned too: each frame's value belongs in HISTORY)."""
    from .io.writers import set_card
    from .pipeline.provenance import MADE_OF_CARDS, MIXED

    made, mixed = fits.Header(), []
    for key in MADE_OF_CARDS:
        values = [h.get(key) for h in headers]
        if values[0] is None:
            continue
        same = all(v == values[0] for v in values)
        set_card(made, key, values[0] if same else MIXED, headers[0].comments[key] if same else
                 "differs between the frames (HISTORY)")
        mixed += [] if same else [key]
    return made, mixed


#: keywords that describe one observation: an image made of several frames (a mosaic, a composite, a band co-added
#: from exposures) carries each only where its frames agree — the first frame's described a frame it does not alone
#: show (a mosaic of F105W and F814W said FILTER = F105W, and the first exposure's DATE-OBS and ROOTNAME)
OBSERVATION_KEYWORDS = ("TELESCOP", "INSTRUME", "DETECTOR", "FILTER", "FILTER1", "FILTER2", "FILTNAM1", "DATE-OBS",
                        "TIME-OBS", "MJD-OBS", "TARGNAME", "OBJECT", "EXPTIME", "PROPOSID", "ROOTNAME", "PHOTPLAM",
                        "PHOTFLAM", "PHOTFNU", "PHOTZPT", "BUNIT")


def drop_differing(header: fits.Header, frames: list[fits.Header], exposure: np.ndarray | None = None) -> list[str]:
    """Remove from ``header`` (the first frame's keywords) each of `OBSERVATION_KEYWORDS` that the ``frames``' headers
    do not all give alike (BUNIT by its unit, `unit_key`), with a HISTORY line naming them; return their names.
    ``exposure``: the frames' `exposure_scales`; where one is not 1 the data were put on the first frame's exposure
    time, whose EXPTIME then describes them and stays."""
    from .io.writers import add_text

    def said(h: fits.Header, key: str) -> str | None:
        if key not in h:
            return None
        value = str(h[key]).strip()
        return unit_key(value) if key == "BUNIT" else value

    scaled = exposure is not None and bool(np.any(exposure != 1))
    gone = []
    for key in OBSERVATION_KEYWORDS:
        if key not in header or (key == "EXPTIME" and scaled):
            continue
        if len({said(h, key) for h in frames}) > 1:
            header.remove(key, remove_all=True)
            gone.append(key)
    if gone:
        add_text(header, "HISTORY", f"astroenhance: {', '.join(gone)} differ between the {len(frames)} frames (or some "
                                    "do not say): not carried; each frame's are in its own file")
    return gone


def set_mosaic_cards(header: fits.Header, combine: str, grid: str, match_background: bool, frames: int) -> None:
    """A mosaic's own cards (`pipeline.provenance.MOSAIC_CARDS`) set in ``header``: how its ``frames`` frames were
    combined, onto which grid, backgrounds matched or not."""
    from .io.writers import set_card

    set_card(header, "AE_COMB", combine, "combine function")
    set_card(header, "AE_GRID", grid, "output grid")
    set_card(header, "AE_BGMAT", match_background, "backgrounds matched")
    set_card(header, "AE_NFRM", frames, "frames in the mosaic (HISTORY)")


def colour_mosaic_header(header: fits.Header | None, frames: list[fits.Header], inputs: list[list[str]],
                         shas: list[str], combine: str, grid: str, match_background: bool,
                         cosmic_rays: int | None = None) -> fits.Header:
    """The header a colour mosaic is written from (`mosaic --enhance`, or a mosaic of `run`'s outputs): ``header``
    (the first frame's; None for outputs) with the mosaic's cards (`pipeline.provenance.MOSAIC_CARDS`), its inputs'
    sha256 (``shas``: AE_INSHA, 16 hex each; whole in the HISTORY ``inputs`` gives, lines per input) and what made
    its pixels, the ``frames``' enhancement cards (`made_of`), which its provenance records as its own: the step
    that writes the co-added display planes makes no colour and no detail, the frames' networks did.
    ``cosmic_rays``: the pixels read as no data in the frames (AE_NCR), where the frames' headers do not say."""
    from .io.writers import add_text, set_card

    out = fits.Header() if header is None else header.copy()
    drop_differing(out, frames)
    made, mixed = made_of(frames)
    out.extend(made, update=True)
    set_mosaic_cards(out, combine, grid, match_background, len(frames))
    set_card(out, "AE_INSHA", ",".join(h[:16] for h in shas), "inputs' sha256 (16 hex each)")
    if cosmic_rays is not None:
        set_card(out, "AE_NCR", cosmic_rays, "cosmic-ray pixels read as no data (-1: none)")
    for i, (lines, frame) in enumerate(zip(inputs, frames)):
        if mixed:
            lines = [*lines, f"astroenhance mosaic input {i + 1}: " + ", ".join(f"{k}={frame[k]}" for k in mixed)]
        for line in lines:
            add_text(out, "HISTORY", line)
    return out


def has_data(a: np.ndarray) -> bool:
    """Whether ``a`` (a mosaic's grid, maybe a memory map larger than memory) holds a finite value, looked for in
    strips (``np.isfinite(a).any()`` makes a boolean copy of the whole grid first)."""
    return any(np.isfinite(a[rows]).any() for rows in _strips(a.shape, COADD_STRIP_PIXELS))


def _big_endian_float32(a: np.ndarray, into: Path | None = None) -> np.ndarray:
    """``a`` as float32 in FITS's byte order, as astropy writes (and checksums) it without a copy of its own; with
    ``into`` a memory-mapped scratch file filled in strips, so that a large mosaic is never whole in memory."""
    if into is None or a.dtype == np.dtype(">f4"):  # (a mosaic co-added as that already: no copy)
        return np.asarray(a, dtype=">f4")
    out = scratch_array(into, ">f4", a.shape)
    for rows in _strips(a.shape, COADD_STRIP_PIXELS):
        out[rows] = a[rows]
    out.flush()
    return out


def write_science_mosaic(path: Path, data: np.ndarray, footprint: np.ndarray, wcs: WCS, bands: list[Band],
                         combine: str, grid: str, match_background: bool, offsets: np.ndarray | None = None,
                         scales: np.ndarray | None = None, exposure: np.ndarray | None = None,
                         section: str = "", scratch: Path | None = None, deferred: list | None = None) -> Path:
    """A mosaic in the data's own units: primary image + FOOTPRINT extension, the grid's WCS, the first frame's
    keywords and how it was made (each input, the factors that put it in the grid's pixel units, `area_scales`, and
    on the first frame's exposure time, `exposure_scales`, and the background offset subtracted from it); written
    under a temporary name and renamed when complete (with ``deferred``, a list: appended to it, its caller renames
    it with the other outputs, `io.writers.publish_all`).  ``section``: the part of the grid it is (a cut-out),
    AE_CUT."""

    from . import __version__
    from .config import utc_now
    from .io.readers import rescale_pixel_area
    from .io.writers import _AtomicFile, _write_error, add_text

    header = bands[0].header.copy()
    drop_differing(header, [b.header for b in bands], exposure)
    header.update(wcs.to_header(relax=True))
    if bands[0].wcs is not None:
        from astropy.wcs.utils import proj_plane_pixel_area

        rescale_pixel_area(header, proj_plane_pixel_area(wcs) / proj_plane_pixel_area(bands[0].wcs), "the mosaic")
    header["AE_VER"] = (__version__, "astroenhance version")
    header["AE_DATE"] = (utc_now(), "UTC time of processing")
    header["DATE"] = (header["AE_DATE"].rstrip("Z"), "UTC date the file was written (FITS standard)")
    set_mosaic_cards(header, combine, grid, match_background, len(bands))
    header["AE_CUT"] = (section, "cut-out of the grid [x0:x1,y0:y1]; '' all")
    header["AE_NCR"] = (cosmic_ray_total(bands), "cosmic-ray pixels read as no data (-1: none)")
    shas = Checksums()
    for i, b in enumerate(bands):
        for line in band_history(i, b, shas):
            add_text(header, "HISTORY", line)
        if scales is not None and scales[i] != 1.0:
            add_text(header, "HISTORY", f"astroenhance mosaic input {i + 1} times {float(scales[i]):.6g}: per-pixel "
                                        "units onto the grid's pixel area")
        if exposure is not None and exposure[i] != 1.0:
            add_text(header, "HISTORY", f"astroenhance mosaic input {i + 1} times {float(exposure[i]):.6g}: its "
                                        f"EXPTIME {b.header.get('EXPTIME')} s onto the first frame's")
        if offsets is not None and match_background:
            add_text(header, "HISTORY", f"astroenhance mosaic input {i + 1} background offset subtracted: "
                                        f"{float(offsets[i]):.6g}")
    for warning in mixed_frames(bands):
        add_text(header, "HISTORY", f"astroenhance mosaic warning: {warning}")
    header["NEXTEND"] = (1, "number of extensions")  # (FOOTPRINT: a copy cut short after the science is then known)
    out = _AtomicFile(path)
    try:
        planes = [_big_endian_float32(a, None if scratch is None else scratch / f"{name}.npy")
                  for a, name in ((data, "science"), (footprint, "footprint"))]
        fits.HDUList([fits.PrimaryHDU(planes[0], header),
                      fits.ImageHDU(planes[1], name="FOOTPRINT")]).writeto(out.tmp, checksum=True)
    except BaseException as exc:
        out.abort()
        if isinstance(exc, OSError):
            raise _write_error(path, exc, "writing the mosaic") from None
        raise
    if deferred is None:
        return out.publish()
    deferred.append(out)
    return path

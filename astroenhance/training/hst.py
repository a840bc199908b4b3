"""`evaluate --task hst`: super-resolution on the telescope's own frames, scored against the truth they were made from.

Protocol (stated in every report): each truth is a deep real frame (linear units).  Its input is the truth binned
4x4 (block means: pixels 4x coarser, WCS rescaled) plus Gaussian noise of ``k`` times the truth's own pixel rms
(``estimate_noise``: neighbouring-pixel differences; a draw of its own for each frame and level, seeded by the
frame's name; with several draws, the report's means run over them all), written as a FITS file with SCI and ERR
extensions and enhanced by the real `run` code path (`Enhancer.enhance_file`, --no-colorize --format fits, every
other setting `run`'s default).  The output luminance is scored against the truth in the output's own display mapping (its AE_STRCH, AE_STRA, AE_VMIN, AE_VMAX applied to
the truth and to every baseline): PSNR (data range 1) and SSIM, and how much 4x4 block edges show in the sky
(`sky_lattice`: mean |step| across block edges over inside blocks, on the truth's fainter half).
Where a truth has no data (NaN, a pixel its weight map gives none, a window of 7x7 pixels of one value: a
fill), every 4x4 block holding such a pixel is no data (NaN) in the input, and every score below runs over the other
blocks alone (the truth's median, noise and sources over its data).
Baselines, the best one per case reported beside `run`: bicubic of the input in linear units and of the stretched
input, each as is and projected onto the input's 4x4 block means, each after a Gaussian smoothing of the input
by sigma 0, 0.5, 1 or 1.5 input pixels (16 in all; choosing the best on the scored data favours the baselines).
In linear units (`run`'s FLUX plane, the output meant for measurement; the linear bicubic baseline):
sources are 8-connected groups of at least 5 pixels (a source extractor's minimum area) above 5 sigma of the
truth's per-pixel noise (pixels 2 apart: see below) on the truth, detections on an output likewise; their flux within the footprint
(dilated by 2 pixels) gives the relative aperture flux error, and the half-light radius within it (about the source's
centroid on the truth) the half-light-radius bias (median over sources of output / truth - 1: negative is sharper
than the truth, positive broader); completeness is the share of truth sources with an
output detection overlapping them (averaged over frames; also pooled over all frames' sources), false detections the output detections overlapping none.  Noise peaks that
overlap a source count as finding it, so a noisy output's completeness is inflated: bicubic's is also given at
matched false detections (its threshold raised, by bisection between 5 and 40 sigma, until it has no more false
detections than `run`).  A frame holds a dozen sources or so, so the aperture-flux errors are also compared
with bicubic's source by source, pooled over frames: the share of sources where `run`'s is smaller and the
difference of the two median errors with its 68% interval (a paired bootstrap over sources).  Blank-noise
frames: `run` and bicubic of pure noise inputs (display mapping minmax: a percentile interval would clip the peaks),
peaks above the median + 5 sigma of bicubic's output (one threshold for both) counted per million input pixels.
The truth is itself noisy, and no method can predict that noise: the "truth-noise ceiling" is the PSNR a method
knowing the noise-free truth would score — each pixel's best guess is the mean of the display mapping over the
truth's noise, its error that noise's spread — with the truth smoothed by 1.5 pixels standing in for the noise-free
truth (8 draws of white noise of the truth's per-pixel sigma, measured from pixels 2 apart: drizzled truths share
their noise between neighbours, and adjacent-pixel differences see 20-50% too little of it).  It estimates the room
there is; it is not a strict bound: the input carries the block means of the truth's own noise (a method can
recover a little of it), and where the 1.5-pixel smoothing blurs real structure the stand-in is worse than the truth.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from astropy.io import fits
from scipy.ndimage import binary_dilation, gaussian_filter, maximum_filter, minimum_filter

from ..config import EnhanceConfig
from ..errors import InputError
from ..imaging.normalize import Normalizer
from ..io.companions import companion_token
from ..io.noise import unflagged_single_exposure
from ..io.readers import FITS_SUFFIXES, open_frames, raw_exposure
from ..metrics import area_downsample, block_lattice, groups_above, psnr, robust_sigma, ssim
from ..pipeline import Enhancer
from ..pipeline.finish import block_mean_shift, estimate_noise, project_block_means
from . import fields

PROTOCOL = __doc__.split("\n\n", 1)[1].strip()
SCALE = 4
NOISE_LEVELS = (0.5, 2.0)
SMOOTHING = (0.0, 0.5, 1.0, 1.5)
MIN_AREA = 5  # pixels a detection needs (a source extractor's minimum area: smaller groups are the noise's tails)


def list_truths(folder: str | Path) -> list[Path]:
    """The FITS frames in ``folder`` (not recursive), without companions named like noise maps, PSFs or weights
    (`io.companions.companion_token`)."""
    return sorted(p for p in Path(folder).iterdir()
                  if p.name.lower().endswith(FITS_SUFFIXES) and companion_token(p) is None)


def truth_frames(path: Path) -> list[tuple[str, np.ndarray, object, np.ndarray]]:
    """Every chip of ``path`` as a truth (`as_truth`: image, WCS, where it has data), with its label (``""`` for a file
    of one frame), from one reading of the file: each chip of a multi-chip file is a truth of its own.  A single
    exposure whose DQ flags no cosmic rays (`noise.unflagged_single_exposure`) is an `InputError`: its hits would be
    the truth's sources."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open_frames(path) as frames:  # (a truth as it is: no cosmic-ray search)
            if any(raw_exposure(f) for f in frames):
                why = "an uncalibrated (raw) exposure: bias, dark and cosmic rays still in it"
            elif any(unflagged_single_exposure(f) for f in frames):
                why = "a single exposure whose DQ flags no cosmic rays: its hits would be scored as the truth's sources"
            else:
                why = ""
            if why:
                raise InputError(f"{path}: {why}; a truth is a deep combined frame (a drz/drc, or a calibrated "
                                 "exposure whose DQ flags its cosmic rays)")
            many = len(frames) > 1
            return [(f.label if many else "", *as_truth(f.read_rows(0, f.shape[0]), f.wcs, f.name)) for f in frames]


def load_truth(path: Path) -> tuple[np.ndarray, object]:
    """The frame of ``path`` as a truth (`truth_frames`: its image, no data filled, and WCS); a file of several chips
    is an `InputError`."""
    chips = truth_frames(path)
    if len(chips) > 1:
        raise InputError(f"{path}: {len(chips)} frames ({', '.join(c[0] for c in chips)}): a truth is one deep "
                         "grey frame per file")
    return chips[0][1:3]


#: the side (pixels) of a window of one value that `has_data` reads as no data (a fill, not a measurement)
FILL_SIDE = 7


def has_data(data: np.ndarray, side: int = FILL_SIDE) -> np.ndarray:
    """Where a frame holds data: finite pixels outside any ``side`` x ``side`` window of one value — a drizzled
    frame's zero fill (its weight map not at hand), a border padded with a constant, a saturated block.  Measured
    sky and sources are never that flat over 49 pixels."""
    finite = np.isfinite(data)
    x = np.where(finite, data, 0.0)
    flat = minimum_filter(x, side, mode="nearest") == maximum_filter(x, side, mode="nearest")
    return finite & ~binary_dilation(flat, np.ones((side, side), bool))


def as_truth(data: np.ndarray, wcs, name: str) -> tuple[np.ndarray, object, np.ndarray]:
    """A frame's image as a truth: float64, cropped to a multiple of 4, with its WCS likewise, and where it has data
    (`has_data`), its pixels without data set to the median of those with; an `InputError` naming it where it
    cannot be one (no data, constant, under 4 pixels a side)."""
    data = np.asarray(data, np.float64)
    if data.ndim != 2:
        raise InputError(f"{name}: a single grey frame is needed, got shape {data.shape}")
    h, w = (data.shape[0] // SCALE) * SCALE, (data.shape[1] // SCALE) * SCALE
    if not h or not w:
        raise InputError(f"{name}: {data.shape[1]}x{data.shape[0]} pixels: a truth is binned {SCALE}x{SCALE}, so it "
                         f"needs {SCALE} or more a side")
    data = data[:h, :w]
    if not np.isfinite(data).any():
        raise InputError(f"{name}: no finite pixels (no data anywhere, DQ-flagged pixels included): not a truth")
    if not np.nanmax(data) > np.nanmin(data):  # no noise to scale k by, nothing to score (every PSNR infinite)
        raise InputError(f"{name}: every pixel is {np.nanmin(data):g}: a truth must be a real frame")
    valid = has_data(data)
    if not whole_blocks(valid).any():
        raise InputError(f"{name}: no {SCALE}x{SCALE} block of it holds data throughout (the rest NaN or windows of "
                         f"{FILL_SIDE}x{FILL_SIDE} pixels of one value, a fill): not a truth")
    data = np.where(valid, data, np.median(data[valid]))
    if wcs is not None:
        wcs = wcs[:h, :w]
    return data, wcs, valid


def noise_draw(seed: int, name: str, k: float, draw: int = 0) -> np.random.Generator:
    """The generator of the protocol's noise for the frame called ``name`` at level ``k``, its ``draw``-th: a draw of
    its own for each frame (two frames of one shape never share a noise pattern) that does not depend on which
    other frames are scored beside it (seeded by the name's CRC-32, not its place in a list)."""
    key = [seed, zlib.crc32(name.encode("utf-8")), round(k * 1000)]
    return np.random.default_rng(key + [draw] if draw else key)


def degrade(truth: np.ndarray, k: float, rng: np.random.Generator, rms: float | None = None
            ) -> tuple[np.ndarray, float]:
    """The truth binned 4x4 (block means) plus Gaussian noise of ``k`` times its own pixel rms (``rms``, measured
    when not given); and that sigma."""
    sigma = k * (estimate_noise(truth) if rms is None else rms)
    lr = area_downsample(truth, SCALE)
    return lr + rng.normal(0.0, sigma, lr.shape), sigma


def degrade_two_depths(truth: np.ndarray, k: tuple[float, float], rng: np.random.Generator,
                       rms: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The truth binned 4x4 as `degrade` does, its left half given noise of ``k[0]`` and its right half ``k[1]``
    times the truth's pixel rms (a frame whose depth varies: a mosaic's edge); and the per-pixel sigma (an ERR)."""
    rms = estimate_noise(truth) if rms is None else rms
    lr = area_downsample(truth, SCALE)
    sigma = np.full(lr.shape, k[0] * rms)
    sigma[:, lr.shape[1] // 2:] = k[1] * rms
    return lr + rng.normal(0.0, 1.0, lr.shape) * sigma, sigma


def write_input(path: Path, lr: np.ndarray, sigma: float, wcs) -> Path:
    """SCI + ERR FITS of a degraded frame (the WCS binned 4x when the truth has one)."""
    header = fits.Header()
    if wcs is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header.update(wcs[::SCALE, ::SCALE].to_header(relax=True))
    header["BUNIT"] = ("truth units", "the truth's own units, binned by block means")
    fits.HDUList([fits.PrimaryHDU(),
                  fits.ImageHDU(lr.astype(np.float32), header, name="SCI"),
                  fits.ImageHDU(np.full(lr.shape, sigma, np.float32), header, name="ERR")]).writeto(path)
    return path


def _bicubic(x: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x, np.float64))[None, None]
    return F.interpolate(t, scale_factor=SCALE, mode="bicubic", align_corners=False)[0, 0].numpy()


def baselines(lr: np.ndarray, display: Normalizer) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Every classical baseline of the protocol on the output grid, one at a time (a large truth's sixteen would
    hold 32 frames of it at once): ``(name, display image, linear image)``."""
    for s in SMOOTHING:
        src = gaussian_filter(lr, s, mode="nearest") if s else lr
        lin = _bicubic(src)
        yield f"bicubic linear, smooth {s}", display(lin), lin
        lin_p = block_mean_shift(lin, src, SCALE)
        yield f"bicubic linear projected, smooth {s}", display(lin_p), lin_p
        del lin, lin_p
        d_src = display(src)
        disp = np.clip(_bicubic(d_src), 0, 1)
        yield f"bicubic display, smooth {s}", disp, display.inverse(disp)
        disp_p = project_block_means(disp, np.clip(d_src, 0, 1), SCALE).astype(np.float64)
        yield f"bicubic display projected, smooth {s}", disp_p, display.inverse(disp_p)


@dataclass
class TruthSources:
    """The truth's sources (8-connected groups of `MIN_AREA` pixels or more above 5 sigma of its per-pixel noise):
    their pixels, footprints (dilated by 2 pixels), fluxes and half-light radii, found once per truth and shared by
    every output scored against it."""

    background: float
    sigma: float  # the truth's pixel rms from adjacent pixels (what k multiplies, as the protocol measures it)
    above: np.ndarray  # the truth's pixels above the threshold (smaller groups too: real, if too small to count)
    pixels: list[np.ndarray]  # flat indices of each source's pixels
    footprints: list[np.ndarray]  # flat indices of each footprint
    flux: list[float]
    pixel_sigma: float = 0.0  # its per-pixel noise, from pixels 2 apart (drizzled noise is shared by neighbours)
    distances: list[np.ndarray] = field(default_factory=list)  # each footprint pixel's distance from the centroid
    half_light: list[float] = field(default_factory=list)  # each source's half-light radius on the truth (pixels)
    min_area: int = 1  # detections (on the truth and on outputs) need this many connected pixels

    @classmethod
    def of(cls, truth: np.ndarray, valid: np.ndarray | None = None) -> TruthSources:
        """`find` with the sigma measured: the adjacent-pixel rms of the truth's pixels with data (``valid``)."""
        return cls.find(truth, estimate_noise(truth if valid is None else np.where(valid, truth, np.nan)),
                        valid=valid)

    @classmethod
    def find(cls, truth: np.ndarray, sigma: float, min_area: int = MIN_AREA, valid: np.ndarray | None = None
             ) -> TruthSources:
        """Sources of ``truth`` whose adjacent-pixel rms is ``sigma``: groups of ``min_area`` pixels or more above
        its median plus 5 times its per-pixel sigma; median and sigma over its pixels with data (``valid``, all if
        not given: `as_truth` set the others to that median)."""
        background = float(np.median(truth if valid is None else truth[valid]))
        pixel_sigma = max(sigma, estimate_noise(truth if valid is None else np.where(valid, truth, np.nan), lag=2))
        threshold = background + 5 * pixel_sigma
        above = truth > threshold  # an output detection on any of these is not false
        labels, n = groups_above(truth, threshold, min_area)
        flat = truth.ravel()
        pixels, footprints, flux, distances, half = [], [], [], [], []
        for i in range(1, n + 1):
            member = labels == i
            foot = np.flatnonzero(binary_dilation(member, iterations=2))
            pix = np.flatnonzero(member)
            pixels.append(pix)
            footprints.append(foot)
            flux.append(float((flat[foot] - background).sum()))
            # the flux-weighted centroid of the source's pixels on the truth: both radii are measured about it
            wgt = np.clip(flat[pix] - background, 0, None) + 1e-300
            cy, cx = (np.average(c, weights=wgt) for c in np.unravel_index(pix, truth.shape))
            fy, fx = np.unravel_index(foot, truth.shape)
            distances.append(np.hypot(fy - cy, fx - cx))
            half.append(half_light_radius(flat[foot] - background, distances[-1]))
        return cls(background, sigma, above, pixels, footprints, flux, pixel_sigma, distances, half, min_area)


def half_light_radius(values: np.ndarray, distance: np.ndarray) -> float:
    """The radius (pixels) within which a footprint's pixels (background subtracted) hold half its flux: the
    growth curve (pixels in order of ``distance``, made non-decreasing, from 0 at radius 0) interpolated at half
    the total; NaN where the total is not positive."""
    order = np.argsort(distance, kind="stable")
    total = float(values.sum())
    if not total > 0:
        return math.nan
    growth = np.maximum.accumulate(np.concatenate([[0.0], np.cumsum(values[order])]))
    return float(np.interp(total / 2, growth, np.concatenate([[0.0], distance[order]])))


def source_scores(sources: TruthSources, out_linear: np.ndarray, nsigma_out: float = 5.0) -> dict[str, float]:
    """Aperture flux error, completeness, false detections and half-light-radius bias of ``out_linear`` against the
    truth's ``sources``, the output thresholded at ``nsigma_out`` per-pixel sigma of the truth (5 in the protocol)."""
    lab_o, n_o = groups_above(out_linear, sources.background + nsigma_out * sources.pixel_sigma, sources.min_area)
    n_t = len(sources.pixels)
    if n_t == 0:
        return {"sources": 0, "aperture_flux_err": math.nan, "completeness": math.nan, "false_detections": n_o,
                "half_light_bias": math.nan, "aperture_flux_errs": []}
    flat_o, out_flat = lab_o.ravel(), out_linear.ravel()
    # NaN for a source whose truth flux is not positive (kept, so that two outputs' lists pair source by source)
    errs = [abs(float((out_flat[foot] - sources.background).sum()) - f) / f if f > 0 else math.nan
            for foot, f in zip(sources.footprints, sources.flux)]
    finite = [e for e in errs if math.isfinite(e)]
    found = sum(bool((flat_o[pix] > 0).any()) for pix in sources.pixels)
    hit = np.unique(lab_o[sources.above])
    ratios = [half_light_radius(out_flat[foot] - sources.background, dist) / r
              for foot, dist, r in zip(sources.footprints, sources.distances, sources.half_light) if r > 0]
    ratios = [q for q in ratios if math.isfinite(q)]
    return {"sources": n_t, "aperture_flux_err": float(np.median(finite)) if finite else math.nan,
            "completeness": found / n_t, "false_detections": n_o - int((hit > 0).sum()),
            "half_light_bias": float(np.median(ratios)) - 1 if ratios else math.nan, "aperture_flux_errs": errs}


def paired_flux_errors(run: list[float], other: list[float], draws: int = 2000, seed: int = 0) -> dict[str, float]:
    """How `run`'s aperture-flux errors compare with another output's on the same sources (both lists from
    `source_scores`, pooled over frames in the same order): the number of sources, each output's median error over
    them, the share where `run`'s error is smaller, and the difference of the two medians with its 68% interval from a
    paired bootstrap over sources.
    A frame holds a dozen sources or so, so a difference of the medians smaller than the interval is noise."""
    a, b = np.asarray(run, np.float64), np.asarray(other, np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if a.size == 0:
        return {"sources": 0, "run_median": math.nan, "other_median": math.nan, "run_better_share": math.nan,
                "median_diff": math.nan, "median_diff_68": [math.nan] * 2}
    pick = np.random.default_rng(seed).integers(0, a.size, (draws, a.size))
    diffs = np.median(a[pick], axis=1) - np.median(b[pick], axis=1)
    return {"sources": int(a.size), "run_median": float(np.median(a)), "other_median": float(np.median(b)),
            "run_better_share": float(np.mean(a < b)),
            "median_diff": float(np.median(a) - np.median(b)),
            "median_diff_68": [float(v) for v in np.percentile(diffs, [16, 84])]}


def _pooled_completeness(scores: list[dict]) -> float:
    """The share of all truth sources found, over several frames' `source_scores`."""
    n = sum(x["sources"] for x in scores)
    return sum(x["completeness"] * x["sources"] for x in scores if x["sources"]) / n if n else math.nan


def _read_output(path: Path) -> tuple[np.ndarray, Normalizer, np.ndarray]:
    """The display luminance, its mapping, and the output in linear units at the input's per-pixel level: the FLUX
    plane (x 16 where its pixels sum to the input pixel), else the display mapped back through its inverse."""
    with fits.open(path) as h:
        lum = np.asarray(h["GREEN"].data, np.float64)  # a grey output: R = G = B = luminance
        p = h[0].header
        norm = Normalizer(stretch=p["AE_STRCH"], interval=p["AE_INTVL"], vmin=p["AE_VMIN"], vmax=p["AE_VMAX"],
                          a=p["AE_STRA"])
        if "FLUX" in h:
            linear = np.asarray(h["FLUX"].data, np.float64) * (SCALE**2 if p["AE_FLXPL"] == "sum" else 1)
        else:
            linear = norm.inverse(np.nan_to_num(lum))
    return lum, norm, np.nan_to_num(linear)


def evaluate_frame(enhancer: Enhancer, name: str, truth: np.ndarray, wcs, k: float, seed: int,
                   workdir: Path, panels: list | None = None, sources: TruthSources | None = None,
                   noise_free: bool = False, draw: int = 0, valid: np.ndarray | None = None) -> dict:
    """One truth at one noise level, its noise's ``draw``-th draw (`noise_draw`): `run` and the best baseline, scored
    (see the protocol).  ``panels``, if given, receives one figure row (`figure_row`); ``sources`` are the truth's
    (`TruthSources.find`, found if not given).  A ``noise_free`` truth (a simulated field) has no truth-noise
    ceiling (its ``psnr`` is None).  ``valid``: where the truth has data (`as_truth`; all of it if not given) — a
    4x4 block of the input with any pixel without is no data (NaN) in `run`'s input, and every score is taken
    over the other blocks alone."""
    rng = noise_draw(seed, name, k, draw)
    where = _scored_blocks(valid)
    sources = sources or TruthSources.of(truth, valid)
    rms = sources.sigma  # the truth's pixel rms, measured once per truth
    lr, sigma = degrade(truth, k, rng, rms)
    src = write_input(workdir / f"{name}.k{k:g}{f'.d{draw}' if draw else ''}.fits",
                      lr if where is None else np.where(whole_blocks(valid), lr, np.nan), sigma, wcs)
    [result] = enhancer.enhance_file(src, workdir)
    out, display, out_linear = _read_output(result.outputs[0])
    truth_d = display(truth)
    lin_bicubic = _bicubic(lr)
    if where is not None:  # (no detections where the truth has no data: run's FLUX is NaN there, bicubic's noise)
        out_linear, lin_bicubic = (np.where(where, x, sources.background) for x in (out_linear, lin_bicubic))
    ok = np.isfinite(out) if where is None else np.isfinite(out) & where
    row = {"image": name, "k": k, "draw": draw, "input_sigma": sigma, "shape_in": list(lr.shape),
           "run": {"psnr": psnr(out[ok], truth_d[ok]), "ssim": ssim(np.nan_to_num(out), truth_d, where=where),
                   **source_scores(sources, out_linear)}}
    scored, best, d_best = {}, "", None  # every baseline's PSNR; the best's display image kept, the others let go
    for m, d, _ in baselines(lr, display):
        scored[m] = psnr(d, truth_d) if where is None else psnr(d[where], truth_d[where])
        if d_best is None or scored[m] > scored[best]:
            best, d_best = m, d
    row["run"]["sky_lattice"] = sky_lattice(np.nan_to_num(out), truth_d, where)
    row["run"]["fine_error"] = fine_error(np.nan_to_num(out), truth_d, where)
    row["best_baseline"] = {"method": best, "psnr": scored[best], "ssim": ssim(d_best, truth_d, where=where),
                            "sky_lattice": sky_lattice(d_best, truth_d, where),
                            "fine_error": fine_error(d_best, truth_d, where)}
    row["bicubic_linear"] = {"psnr": scored["bicubic linear, smooth 0.0"],
                             **source_scores(sources, lin_bicubic)}
    if panels is not None:
        panels.append((f"{name} k={k:g}", figure_row(lr, d_best, out, truth_d, display)))
    row["bicubic_matched"] = matched_false_detections(sources, lin_bicubic, row["run"]["false_detections"])
    row["run"]["psnr_gain"] = row["run"]["psnr"] - scored[best]
    # the truth's per-pixel noise: drizzled truths share it between neighbours, so differences of adjacent pixels
    # (``rms``, which sets k) see too little of it; pixels 2 apart see it all (as `run` measures a frame's noise)
    row["truth_noise_ceiling"] = {"psnr": None if noise_free else
                                  truth_noise_ceiling(truth, sources.pixel_sigma, display, seed, where=where)}
    return row


def whole_blocks(valid: np.ndarray) -> np.ndarray:
    """Which 4x4 blocks of a truth (the input's pixels) have every pixel ``valid``."""
    return area_downsample(valid.astype(np.float64), SCALE) == 1


def _scored_blocks(valid: np.ndarray | None) -> np.ndarray | None:
    """The truth's pixels that are scored: those of its `whole_blocks`; None (every pixel) where all are valid."""
    if valid is None or valid.all():
        return None
    return np.repeat(np.repeat(whole_blocks(valid), SCALE, 0), SCALE, 1)


def sky_lattice(display: np.ndarray, truth_display: np.ndarray, where: np.ndarray | None = None) -> float:
    """How much an output's 4x4 block edges show in the sky: `metrics.block_lattice` (means) over the truth's fainter
    half (of its pixels ``where``, all if not given), columns and rows averaged (1: no lattice; a display corrected
    block by block shows isolated squares)."""
    if where is None:
        sky = truth_display < np.median(truth_display)
    else:
        sky = where & (truth_display < np.median(truth_display[where]))
    return 0.5 * (block_lattice(display, sky) + block_lattice(display.T, sky.T))


#: the Gaussian (output pixels) whose high-pass `fine_error` looks at: detail finer than about 1.5 input pixels
FINE_SIGMA = 1.5


def fine_error(display: np.ndarray, truth_display: np.ndarray, where: np.ndarray | None = None) -> float:
    """The rms over the frame of output minus truth in their detail finer than `FINE_SIGMA` output pixels (each
    minus its Gaussian smoothing; display units): what sharpening draws.  A baseline draws none, so its fine error
    is about the truth's own fine detail; an output above that has drawn fine detail the truth does not have — on a
    frame that samples its PSF well (`simulated_field`'s ``psf_scale``), sharper than any source can be.  Over the
    pixels ``where`` (all if not given)."""
    diff = np.asarray(display, np.float64) - np.asarray(truth_display, np.float64)
    fine = (diff - gaussian_filter(diff, FINE_SIGMA)) ** 2
    return float(np.sqrt(np.mean(fine if where is None else fine[where])))


FIGURE_TITLES = ["input (4x4 px)", "best baseline", "astroenhance", "truth", "baseline - truth", "astroenhance - truth"]


def figure_row(lr: np.ndarray, baseline: np.ndarray, out: np.ndarray, truth: np.ndarray, display: Normalizer,
               side: int = 160) -> list[np.ndarray]:
    """Grey RGB crops of ``side``² output pixels around the truth's brightest part, in the output's display mapping
    (rows flipped to north up): input (pixels replicated), best baseline, `run`, truth, and the two residuals
    (0.5 = none; scaled 4x)."""
    h, w = truth.shape
    side = min(side, h, w) // SCALE * SCALE
    smooth = gaussian_filter(truth, 8)
    cy, cx = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    y0 = int(np.clip(cy - side // 2, 0, h - side)) // SCALE * SCALE
    x0 = int(np.clip(cx - side // 2, 0, w - side)) // SCALE * SCALE
    crop = lambda a: np.asarray(a, np.float64)[y0:y0 + side, x0:x0 + side]  # noqa: E731
    up = np.repeat(np.repeat(np.asarray(display(lr), np.float64), SCALE, 0), SCALE, 1)
    views = [crop(up), crop(baseline), crop(np.nan_to_num(out)), crop(truth)]
    views += [0.5 + 4 * (views[1] - views[3]), 0.5 + 4 * (views[2] - views[3])]
    return [np.repeat(np.clip(v, 0, 1)[::-1, :, None], 3, -1) for v in views]


def matched_false_detections(sources: TruthSources, out_linear: np.ndarray, allowed: int,
                             lo: float = 5.0, hi: float = 40.0, steps: int = 8) -> dict[str, float]:
    """`source_scores` of ``out_linear`` with its detection threshold raised (bisection in sigma between ``lo`` and
    ``hi``) until it has at most ``allowed`` false detections: completeness at a matched false-detection count."""
    best = source_scores(sources, out_linear, lo)
    if best["false_detections"] <= allowed:
        return {"nsigma": lo, **best}
    best = {"nsigma": hi, **source_scores(sources, out_linear, hi)}
    for _ in range(steps):
        mid = (lo + hi) / 2
        s = source_scores(sources, out_linear, mid)
        if s["false_detections"] <= allowed:
            hi, best = mid, {"nsigma": mid, **s}
        else:
            lo = mid
    return best


def truth_noise_ceiling(truth: np.ndarray, rms: float, display: Normalizer, seed: int = 0, draws: int = 8,
                        where: np.ndarray | None = None) -> float:
    """PSNR of the best possible guess at a truth with white noise ``rms`` in ``display`` (see the protocol), over
    its pixels ``where`` (all if not given)."""
    clean = gaussian_filter(truth, 1.5, mode="nearest")

    def shown() -> Iterator[np.ndarray]:  # the draws one at a time, the same ones on each pass (not 8 frames at once)
        rng = np.random.default_rng([seed, 99])
        for _ in range(draws):
            yield display(clean + rng.normal(0.0, rms, truth.shape)).astype(np.float64)

    mean = sum(shown()) / draws  # (two passes, added in order: numpy's var of the stacked draws, to the last bit)
    spread = sum((x - mean) ** 2 for x in shown()) / (draws - 1)
    mse = float(spread.mean() if where is None else spread[where].mean())
    return 10 * math.log10(1.0 / mse) if mse > 0 else math.inf


def blank_noise(enhancer: Enhancer, workdir: Path, frames: int = 6, size: int = 96, seed: int = 0) -> dict:
    """5-sigma peaks in `run`'s output of pure-noise inputs, and in bicubic's, per million input pixels.  One
    threshold for both: the median plus 5 times the bicubic output's own noise (a denoised output must not be held
    to its own, smaller, noise: every faint ripple would count)."""
    rng = np.random.default_rng(seed)
    counts = {"run": 0, "bicubic": 0}
    for i in range(frames):
        lr = 0.01 * rng.standard_normal((size, size))
        src = write_input(workdir / f"blank{i}.fits", lr, 0.01, None)
        [result] = enhancer.enhance_file(src, workdir)
        out, display, _ = _read_output(result.outputs[0])
        bicubic = display(_bicubic(lr))
        threshold = np.median(bicubic) + 5 * robust_sigma(bicubic)
        for m, img in (("run", np.nan_to_num(out)), ("bicubic", bicubic)):
            counts[m] += groups_above(img, threshold)[1]
    mpix = frames * size * size / 1e6
    return {"frames": frames, "size": size, **{m: c / mpix for m, c in counts.items()}}


def evaluate_hst(truths: list[Path], config: EnhanceConfig | None = None, levels: tuple[float, ...] = NOISE_LEVELS,
                 seed: int = 0, noise_frames: int = 6, panels: list | None = None, simulated: int = 0,
                 simulated_from: int = 0, draws: int = 1, psf_scale: float = 1.0, tell_psf: bool = False) -> dict:
    """The whole protocol over ``truths`` and ``simulated`` simulated fields (`training.fields.simulated_field`:
    noise-free truths, 384², units where the pixel rms is 1; fields ``simulated_from`` on: the report's are 0 on,
    validation's 100 on; their PSF ``psf_scale`` times wider, 4: as well sampled as a drizzled frame; ``tell_psf``:
    `run` is told each one's PSF FWHM, as an HST header tells it, `run --psf-fwhm`): per frame, noise level and
    draw, means per level for the real frames (``summary``) and apart for the simulated fields
    (``simulated_summary``), and blank-noise peaks.
    ``draws`` noise draws per frame and level (`noise_draw`) average the summary over that many inputs: one draw's
    mean over a few frames moves by a few hundredths of a dB from draw to draw.
    ``panels``, if given, receives a figure row per frame and level (`figure_row`; the first draw's)."""
    if draws < 1:
        raise ValueError(f"draws {draws}: at least 1")
    if not truths and not simulated:
        raise InputError("nothing to score: give deep frames as truths, simulated fields, or both")
    cfg = replace(config or EnhanceConfig(), colorize=False, formats=("fits",))
    enhancer = Enhancer(cfg)
    rows, used, skipped = [], [], []
    with tempfile.TemporaryDirectory(prefix="astroenhance-hst-") as tmp:
        work = Path(tmp)

        def score(name: str, truth: np.ndarray, wcs, sources: TruthSources, noise_free: bool = False,
                  runs: Enhancer = enhancer, valid: np.ndarray | None = None) -> None:
            """Every level and draw of one truth (the figure takes each level's first draw)."""
            for k, d in itertools.product(levels, range(draws)):
                rows.append(evaluate_frame(runs, name, truth, wcs, k, seed, work, None if d else panels, sources,
                                           noise_free, draw=d, valid=valid))

        for path in truths:  # each chip of a multi-chip file a truth; a file that cannot be one is named, left out
            try:
                chips = truth_frames(path)
            except InputError as exc:
                skipped.append(str(exc))
                continue
            for chip, truth, wcs, valid in chips:
                name = path.name.split(".")[0] + (f"[{chip}]" if chip else "")
                used.append(f"{path}[{chip}]" if chip else str(path))
                score(name, truth, wcs, TruthSources.of(truth, valid), valid=valid)
        if truths and not rows:
            raise InputError(f"no frame could serve as a truth: {'; '.join(skipped)}")
        real = len(rows)
        # fluxes in units of the pixel rms the protocol's k multiplies
        for i in range(simulated_from, simulated_from + simulated):
            truth, fwhm = fields.numbered_field(i, psf_scale=psf_scale)
            told = (Enhancer(replace(cfg.for_input(True), psf_fwhm=fwhm / SCALE), enhancer.networks) if tell_psf
                    else enhancer)
            score(f"simulated{i:02d}" + (f"-psf{psf_scale:g}x" if psf_scale != 1 else ""), truth, None,
                  TruthSources.find(truth, 1.0), noise_free=True, runs=told)
        # blank frames in a minmax display mapping: a percentile interval would clip the very peaks counted
        blank = blank_noise(Enhancer(replace(cfg, interval="minmax")), work, frames=noise_frames) if noise_frames else {}
    return {"protocol": PROTOCOL, "frames": used, "skipped": skipped, "levels": list(levels), "seed": seed,
            "draws": draws,
            "simulated": {"fields": simulated, "psf_scale": psf_scale, "psf_told": tell_psf,
                          "seeds": f"numpy default_rng([{fields.SEED}, i]), {simulated_from} <= i < {simulated_from + simulated}",
                          "what": " ".join(fields.__doc__.split("\n\n")[1].split())} if simulated else {},
            "summary": summarise(rows[:real], levels), "simulated_summary": summarise(rows[real:], levels),
            "blank_noise": blank, "per_frame": rows}


def frame_means(rows: list[dict]) -> list[dict]:
    """Each frame and level of ``rows`` (`evaluate_frame`'s) once, its PSNRs averaged over its noise draws: run, the
    best baseline, their difference, the truth-noise ceiling minus the best baseline (None for a noise-free truth),
    and the baseline that was best in most draws."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["image"], r["k"]), []).append(r)
    out = []
    for (image, k), rs in groups.items():
        best = [r["best_baseline"]["psnr"] for r in rs]
        ceilings = [r["truth_noise_ceiling"]["psnr"] for r in rs]
        methods = [r["best_baseline"]["method"] for r in rs]
        out.append({"image": image, "k": k, "draws": len(rs),
                    "run_psnr": float(np.mean([r["run"]["psnr"] for r in rs])), "best_baseline_psnr": float(np.mean(best)),
                    "run_minus_best": float(np.mean([r["run"]["psnr_gain"] for r in rs])),
                    "ceiling_minus_best": None if None in ceilings else float(np.mean(np.subtract(ceilings, best))),
                    "best_baseline": max(methods, key=methods.count)})
    return out


def _per_source_over_draws(rows: list[dict], key: str) -> list[float]:
    """Each source's aperture-flux error under ``rows[...][key]``, averaged over the draws of its frame (the rows of
    one image share their sources, in one order): a source counts once however many draws were made."""
    by_image: dict[str, list[list[float]]] = {}
    for r in rows:
        by_image.setdefault(r["image"], []).append(r[key]["aperture_flux_errs"])
    out: list[float] = []
    for lists in by_image.values():
        errs = np.asarray(lists, np.float64)
        if errs.size:
            with warnings.catch_warnings():  # a source whose error is NaN in every draw stays NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                out += np.nanmean(errs, axis=0).tolist()
    return out


def summarise(rows: list[dict], levels: tuple[float, ...]) -> dict:
    """Per noise level, the means (medians, sums, pools) over ``rows`` (`evaluate_frame`'s) that the report gives;
    ``{}`` without rows.  The truth-noise ceiling is averaged over the frames that have one (None: none has).
    With several noise draws per frame, means and medians run over every frame's every draw, false detections are
    per draw (the sum over the frames, averaged over draws), and the source-by-source comparison takes each
    source's error averaged over its draws."""
    summary = {}
    for k in levels:
        sel = [r for r in rows if r["k"] == k]
        if not sel:
            continue
        images = {r["image"] for r in sel}
        draws = len(sel) // len(images)
        rooms = [r["truth_noise_ceiling"]["psnr"] - r["best_baseline"]["psnr"] for r in sel
                 if r["truth_noise_ceiling"]["psnr"] is not None]
        summary[f"k={k:g}"] = {
            "frames": len(images),
            "draws": draws,
            "run_psnr": float(np.mean([r["run"]["psnr"] for r in sel])),
            "best_baseline_psnr": float(np.mean([r["best_baseline"]["psnr"] for r in sel])),
            "run_minus_best": float(np.mean([r["run"]["psnr_gain"] for r in sel])),
            # how far one draw's mean over the frames moves from draw to draw (None with one draw)
            "run_minus_best_draw_sd": float(np.std([np.mean([r["run"]["psnr_gain"] for r in sel if r["draw"] == d])
                                                    for d in range(draws)], ddof=1)) if draws > 1 else None,
            "ceiling_minus_best": float(np.mean(rooms)) if rooms else None,
            "run_ssim": float(np.mean([r["run"]["ssim"] for r in sel])),
            # (nan for a frame with too little sky to tell: left out of the mean)
            "run_sky_lattice": float(np.nanmean([r["run"]["sky_lattice"] for r in sel])),
            "best_baseline_sky_lattice": float(np.nanmean([r["best_baseline"]["sky_lattice"] for r in sel])),
            "best_baseline_ssim": float(np.mean([r["best_baseline"]["ssim"] for r in sel])),
            "run_fine_error": float(np.mean([r["run"]["fine_error"] for r in sel])),
            "best_baseline_fine_error": float(np.mean([r["best_baseline"]["fine_error"] for r in sel])),
            "run_completeness": float(np.nanmean([r["run"]["completeness"] for r in sel])),
            "bicubic_completeness": float(np.nanmean([r["bicubic_linear"]["completeness"] for r in sel])),
            "bicubic_completeness_matched": float(np.nanmean([r["bicubic_matched"]["completeness"] for r in sel])),
            "run_aperture_flux_err": float(np.nanmedian([r["run"]["aperture_flux_err"] for r in sel])),
            "bicubic_aperture_flux_err": float(np.nanmedian([r["bicubic_linear"]["aperture_flux_err"] for r in sel])),
            "run_half_light_bias": float(np.nanmedian([r["run"]["half_light_bias"] for r in sel])),
            "bicubic_half_light_bias": float(np.nanmedian([r["bicubic_linear"]["half_light_bias"] for r in sel])),
            "run_false_detections": sum(r["run"]["false_detections"] for r in sel) / draws,
            "bicubic_false_detections": sum(r["bicubic_linear"]["false_detections"] for r in sel) / draws,
            # pooled over the sources of all frames (a frame's share weighs by its sources, not 1/frames)
            **{f"{m}_completeness_pooled": _pooled_completeness([r[key] for r in sel])
               for m, key in (("run", "run"), ("bicubic", "bicubic_linear"), ("bicubic_matched", "bicubic_matched"))},
            "aperture_flux_vs_bicubic": paired_flux_errors(_per_source_over_draws(sel, "run"),
                                                           _per_source_over_draws(sel, "bicubic_linear")),
        }
    return summary

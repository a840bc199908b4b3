"""How well `run --clean-cosmic-rays` finds cosmic-ray hits, and whether it ever takes a star.

    python benchmarks/bench_cosmic_rays.py [--hits N] [--margins 1,1.25,1.5,2] [--stars N] [FRAME[:PIVOT_A:SCALE_ARCSEC] ...]

Each frame is a clean image (a drizzled combination: its cosmic rays are already gone) at its own sampling; the
pivot wavelength (Angstrom) and pixel scale come from the header (PHOTPLAM, WCS) unless given after the path.
Synthetic hits are added (seeded): ``N`` line segments of 1 + Exp(1.5) pixels (at most 15) at random angles, drawn
anti-aliased, spread by charge diffusion of 0-0.35 px, with 5-500 sigma of charge per pixel of track
(log-uniform), anywhere on the frame (on sky and on sources).  `imaging.cosmics.find_cosmic_rays` then runs with
the frame's sharpest-star ratio times each margin.  Columns:

* ``hits found``: share of hits whose brightest pixel is flagged; ``charge``: share of the added charge in flagged
  pixels; ``left > 5σ``: hits with an unflagged pixel holding more than 5 sigma of added charge (what the
  network would still see);
* ``false px / Mpx``: flagged pixels that received no charge (< 0.5 sigma), per million pixels, and of those,
  ``on sources``: pixels more than 10 sigma above the local sky in the clean frame (stars, galaxy cores).

A frame with real hits (an flt) counts its own hits as false flags here: use drizzled frames for the false-flag
columns, and the flt (``j8bt06nyq_flt.fits``) for the number of groups `run` flags (the last lines), and the
seconds the search takes with ``--workers`` strips at once (``0``: every core; ``1,2``: compare).

``--stars N``: the test's promise checked apart, on N seeded 96² frames per filter and pixel scale (`STAR_CHECKS`:
HST cameras from 0.025" to 0.128"): 10 diffraction-limited stars (the sharpest possible, 2e3-2e7 electrons, anywhere
within a pixel) and 4 diffraction spikes (lines as sharp as the aperture draws them, up to 3e4 electrons a pixel,
any angle) on a sky of 50 electrons with Poisson and read noise, the search at the shipped margin: pixels flagged
(each one a star or a spike taken for a hit; 0 is the promise).
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter, label, median_filter

from astroenhance.imaging.cosmics import MARGIN, annular_airy, find_cosmic_rays, star_sharpness
from astroenhance.io.readers import open_frames, read_frame
from astroenhance.metrics import difference_sigma


def add_hits(shape: tuple[int, int], sigma: float, n: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, list[np.ndarray]]:
    """An image of ``n`` synthetic hits (see the module) and each hit's flat pixel indices."""
    h, w = shape
    img = np.zeros(shape, np.float64)
    pixels = []
    for _ in range(n):
        length = min(15.0, 1.0 + rng.exponential(1.5))
        angle = rng.uniform(0, math.pi)
        y0, x0 = rng.uniform(8, h - 8), rng.uniform(8, w - 8)
        per_px = sigma * math.exp(rng.uniform(math.log(5), math.log(500)))
        steps = max(2, int(length * 10))
        t = np.linspace(-length / 2 + 0.5, length / 2 - 0.5, steps) if length > 1 else np.zeros(1)
        ys, xs = y0 + t * math.sin(angle), x0 + t * math.cos(angle)
        one = np.zeros(shape, np.float64)
        iy, ix = np.floor(ys).astype(int), np.floor(xs).astype(int)
        fy, fx = ys - iy, xs - ix
        q = per_px * max(length, 1.0) / len(t)
        for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (1, 0, fy * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 1, fy * fx)):
            np.add.at(one, (np.clip(iy + dy, 0, h - 1), np.clip(ix + dx, 0, w - 1)), q * wgt)
        diffusion = rng.uniform(0, 0.35)
        if diffusion > 0.05:
            one = gaussian_filter(one, diffusion)
        img += one
        pixels.append(np.flatnonzero(one > 0.5 * sigma))
    return img, pixels


#: (pivot wavelength in m, pixel scale in arcsec) of `--stars`: ACS/HRC, ACS/WFC, WFC3/UVIS, WFPC2 PC and WF, WFC3/IR
#: drizzled and native, and the far-UV
STAR_CHECKS = ((5888e-10, 0.025), (8057e-10, 0.05), (5888e-10, 0.04), (4884e-10, 0.0455), (4884e-10, 0.0996),
               (10552e-10, 0.06), (15369e-10, 0.128), (2250e-10, 0.04))


def star_field(rng: np.random.Generator, wavelength: float, scale: float, size: int = 96,
               oversample: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A `--stars` frame and its per-pixel sigma (see the module); every source integrated over the pixels."""
    to_rad = scale * math.pi / 648000
    sub = (np.arange(size * oversample) + 0.5) / oversample - 0.5  # sub-pixel centres, in pixels
    sy, sx = sub[:, None], sub[None, :]

    def pixels(fine: np.ndarray) -> np.ndarray:
        return fine.reshape(size, oversample, size, oversample).mean(axis=(1, 3))

    truth = np.full((size, size), 50.0)
    for _ in range(10):
        y, x = rng.uniform(10, size - 10, 2)
        star = pixels(annular_airy(np.hypot(sy - y, sx - x) * to_rad, wavelength, 2.4, 0.33))
        truth += math.exp(rng.uniform(math.log(2e3), math.log(2e7))) * star / star.sum()
    u = np.arange(-12 * 25, 12 * 25 + 1) / 25  # the line-spread profile: the star summed along a line
    uu, vv = np.meshgrid(u, np.linspace(-60, 60, 2401))
    lsf = annular_airy(np.hypot(uu, vv) * to_rad, wavelength, 2.4, 0.33).sum(axis=0)
    for _ in range(4):
        y, x = rng.uniform(10, size - 10, 2)
        angle = rng.uniform(0, math.pi)
        spike = pixels(np.interp((sx - x) * math.sin(angle) - (sy - y) * math.cos(angle), u, lsf))
        truth += math.exp(rng.uniform(math.log(50), math.log(3e4))) * spike / spike.max()
    return rng.poisson(truth) + rng.normal(0, 5.0, truth.shape), np.sqrt(truth + 25.0)


def frame_info(spec: str) -> tuple[str, np.ndarray, float, float]:
    parts = spec.split(":")
    path = parts[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, wcs, header = read_frame(path)
    if len(parts) == 3:
        lam, scale = float(parts[1]) * 1e-10, float(parts[2])
    else:
        from astropy.wcs.utils import proj_plane_pixel_scales
        lam = float(header["PHOTPLAM"]) * 1e-10
        scale = float(np.min(proj_plane_pixel_scales(wcs.celestial))) * 3600
    return Path(path).name.split(".")[0], np.asarray(data, np.float64), lam, scale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("frames", nargs="*")
    ap.add_argument("--hits", type=int, default=300)
    ap.add_argument("--margins", default="1,1.25,1.5,2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--flt", default=None, help="a single exposure: count the groups `run --clean-cosmic-rays` flags")
    ap.add_argument("--workers", default="0", help="strips searched at once in the --flt lines (0: every core)")
    ap.add_argument("--stars", type=int, default=0, help="seeded frames of stars and spikes per camera (0: none)")
    args = ap.parse_args()
    margins = [float(m) for m in args.margins.split(",")]
    if args.frames:
        print(f"{'frame':<34}{'ratio':>6}{'margin':>7}{'hits found':>11}{'charge':>8}{'left > 5σ':>10}"
              f"{'false px/Mpx':>13}{'on sources':>11}")
    for spec in args.frames:
        name, data, lam, scale = frame_info(spec)
        data = np.where(np.isfinite(data), data, np.nanmedian(data))
        sigma = difference_sigma(data)
        ratio, curvature = star_sharpness(lam, scale)
        rng = np.random.default_rng(args.seed)
        hits, pixels = add_hits(data.shape, sigma, args.hits, rng)
        injected = hits > 0.5 * sigma
        sources = (data - median_filter(data, 25)) > 10 * sigma
        for m in margins:
            flags = find_cosmic_rays(data + hits, sigma, ratio, curvature, margin=m)
            flat_f, flat_h = flags.ravel(), hits.ravel()
            found = np.mean([flat_f[p[np.argmax(flat_h[p])]] for p in pixels if p.size])
            charge = float(hits[flags].sum() / hits.sum())
            left = np.mean([bool((flat_h[p][~flat_f[p]] > 5 * sigma).any()) for p in pixels if p.size])
            false = flags & ~injected
            mpx = data.size / 1e6
            print(f"{name[:33]:<34}{ratio:6.2f}{m:7.2f}{found:11.3f}{charge:8.3f}{left:10.3f}"
                  f"{false.sum() / mpx:13.0f}{(false & sources).sum() / mpx:11.0f}", flush=True)
    if args.stars:
        print(f"\nstars and spikes ({args.stars} frames each, margin {MARGIN:g}): pixels flagged (0: the promise kept)")
        for wavelength, scale in STAR_CHECKS:
            ratio, curvature = star_sharpness(wavelength, scale)
            flagged = sum(int(find_cosmic_rays(*star_field(np.random.default_rng([1000, seed]), wavelength, scale),
                                               ratio, curvature).sum()) for seed in range(args.stars))
            print(f"  {wavelength * 1e10:6.0f} A, {scale:.4f}\": star ratio {ratio:6.2f}, flagged {flagged}", flush=True)
    if args.flt:
        print(f"\n{args.flt}: groups flagged by `run --clean-cosmic-rays` (DQ and saturation masks as `run` reads them)")
        import astroenhance.imaging.cosmics as cosmics
        import astroenhance.io.noise as noise
        default = cosmics.MARGIN
        for m, workers in ((m, int(w)) for m in margins for w in args.workers.split(",")):
            cosmics.MARGIN = noise.MARGIN = m
            os.environ["OMP_NUM_THREADS"] = str(workers)  # what `mask_cosmic_rays` takes as its thread budget
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with open_frames(args.flt, cosmic_rays=True) as frames:
                    f = frames[0]
                    mask = np.isnan(f.read_rows(0, f.shape[0]))
            seconds = time.perf_counter() - t0
            with open_frames(args.flt) as frames:
                base = np.isnan(frames[0].read_rows(0, frames[0].shape[0]))
            groups = label(mask & ~base, np.ones((3, 3), bool))[1]
            print(f"  margin {m:g}, workers {workers or 'all'}: {f.cosmic_rays} pixels in {groups} groups "
                  f"({seconds:.2f} s)")
        cosmics.MARGIN = noise.MARGIN = default


if __name__ == "__main__":
    main()

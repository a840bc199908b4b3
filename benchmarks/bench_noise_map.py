"""The sky-noise map's measures: all the blocks of a row of blocks at once against the same measure block by block
(the way each was written first, kept here as the reference), on the same frame in the same run — the seconds of each,
their ratio, and whether the two grids agree.  Two measures: a frame without per-pixel noise
(`io.noise._estimated_sky_sigmas`), and with ``--err`` a frame with an ERR plane (`io.noise._sky_sigmas`: the sky
pixels' noise quantile and the blocks' own pixel noise).

    python benchmarks/bench_noise_map.py [--frame FITS] [--sizes 1024,2048] [--repeat 3] [--err]

Frames: ``--frame`` (its first 2-D image; with ``--err`` its ERR extension, else sigma from WHT, else one made from the
pixels), else synthetic frames of each ``--size``: sky 10, white noise whose sigma doubles from the left half to the
right (a mosaic's edge), a few hundred Gaussian sources, 1% NaN (with ``--err`` the true sigma as its ERR).  Prints
one table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from astroenhance.io import noise
from astroenhance.metrics import clipped_sky, difference_sigma


def blocks(shape: tuple[int, int], block: int, *reads):
    """The references' walk over a frame: ``(j, i, [view, ...])`` for each block of ``block`` pixels, each reader's
    rows (float64, read once per row of blocks) cut to the block's columns."""
    h, w = shape
    for j in range(-(-h // block)):
        rows = [np.asarray(read(j * block, min(h, (j + 1) * block)), np.float64) for read in reads]
        for i in range(-(-w // block)):
            yield j, i, [r[:, i * block:min(w, (i + 1) * block)] for r in rows]


def per_block(read_data, shape, block, sky, sigma, share):
    """The reference: `_estimated_sky_sigmas` one block at a time."""
    grid = noise._grid(shape, block)
    for j, i, (data,) in blocks(shape, block, read_data):
        if data.size < block * block // 2:
            continue
        need = max(share * np.isfinite(data).sum(), 2 * block)
        with np.errstate(invalid="ignore"):
            keep = np.abs(data - sky) < noise.SKY_CUT * sigma
            for _ in range(4):
                if keep.sum() < need:
                    break
                est, level = difference_sigma(np.where(keep, data, np.nan)), float(np.median(data[keep]))
                keep = np.abs(data - level) < noise.SKY_CLIP * est
            else:
                if est > 0 and abs(level - sky) < noise.SKY_CUT * sigma:
                    grid[j, i] = est
    return grid


def per_block_err(read_data, read_noise, shape, block, sky, cut, share):
    """The reference: `_sky_sigmas` one block at a time."""
    grid, own = noise._grid(shape, block), noise._grid(shape, block)
    for j, i, (data, sig) in blocks(shape, block, read_data, read_noise):
        ok = np.isfinite(data) & np.isfinite(sig) & (sig > 0)
        keep = ok & (np.abs(data - sky) < cut)
        if keep.any() and keep.sum() >= share * ok.size:
            grid[j, i] = np.percentile(sig[keep], noise.SKY_QUANTILE)
            own[j, i] = difference_sigma(np.where(ok, data, np.nan))
    return grid, own


def synthetic(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A frame and its true per-pixel sigma."""
    rng = np.random.default_rng(seed)
    sigma = np.broadcast_to(np.where(np.arange(size) < size // 2, 1.0, 2.0)[None, :], (size, size))
    img = 10.0 + rng.normal(0.0, 1.0, (size, size)) * sigma
    yy, xx = np.mgrid[:size, :size]
    for y, x, f, r in zip(*(rng.uniform(0, size, (2, size // 4))), rng.uniform(20, 400, size // 4),
                          rng.uniform(1, 4, size // 4)):
        y0, y1, x0, x1 = int(max(0, y - 4 * r)), int(min(size, y + 4 * r + 1)), int(max(0, x - 4 * r)), int(min(size, x + 4 * r + 1))
        img[y0:y1, x0:x1] += f * np.exp(-((yy[y0:y1, x0:x1] - y) ** 2 + (xx[y0:y1, x0:x1] - x) ** 2) / (2 * r * r))
    img[rng.random(img.shape) < 0.01] = np.nan
    return img, np.array(sigma)


def read_frame(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The first 2-D image of a FITS file and its sigma: ERR, else 1/sqrt(WHT), else None."""
    with fits.open(path) as h:
        data = next(np.asarray(x.data, np.float64) for x in h if x.header.get("NAXIS") == 2)
        names = [x.name for x in h]
        if "ERR" in names:
            return data, np.asarray(h["ERR"].data, np.float64)
        if "WHT" in names:
            with np.errstate(divide="ignore"):
                return data, 1.0 / np.sqrt(np.asarray(h["WHT"].data, np.float64))
    return data, None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frame", default=None)
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--repeat", type=int, default=3, help="timings per implementation (the fastest is kept)")
    ap.add_argument("--err", action="store_true", help="the measure of a frame with per-pixel noise (ERR / WHT)")
    args = ap.parse_args()
    if args.frame:
        frames = {Path(args.frame).name: read_frame(args.frame)}
        if args.err and frames[Path(args.frame).name][1] is None:
            ap.error(f"--err: {args.frame} has no ERR or WHT extension")
    else:
        frames = {f"synthetic {s}x{s}": synthetic(int(s)) for s in args.sizes.split(",")}
    print(f"{'frame':<24}{'block by block, s':>19}{'row of blocks, s':>18}{'ratio':>8}{'grids equal':>13}")
    for name, (data, sig) in frames.items():
        sigma = difference_sigma(data)
        sky = clipped_sky(data[np.isfinite(data)], sigma)
        rows = (lambda a, b, d=data: d[a:b])  # noqa: E731
        if args.err:
            pair = (per_block_err, noise._sky_sigmas)
            args_ = (rows, lambda a, b, e=sig: e[a:b], data.shape, noise.NOISE_MAP_BLOCK, sky,
                     noise.SKY_CUT * sigma, noise.SKY_SHARE)
        else:
            pair = (per_block, noise._estimated_sky_sigmas)
            args_ = (rows, data.shape, noise.NOISE_MAP_BLOCK, sky, sigma, noise.SKY_SHARE)
        times, grids = {}, {}
        for label, fn in zip(("ref", "vec"), pair):
            best = np.inf
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                grids[label] = np.asarray(fn(*args_))
                best = min(best, time.perf_counter() - t0)
            times[label] = best
        equal = np.array_equal(grids["ref"], grids["vec"], equal_nan=True)
        print(f"{name[:23]:<24}{times['ref']:>19.3f}{times['vec']:>18.3f}{times['ref'] / times['vec']:>8.1f}{str(equal):>13}")


if __name__ == "__main__":
    main()

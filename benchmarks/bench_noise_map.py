"""The sky-noise map of a frame without per-pixel noise (`io.noise._estimated_sky_sigmas`): all the blocks of a row
of blocks at once against the same measure block by block (the way it was written first, kept here as the reference),
on the same frame in the same run — the seconds of each, their ratio, and whether the two grids agree.

    python benchmarks/bench_noise_map.py [--frame FITS] [--sizes 1024,2048] [--repeat 3]

Frames: ``--frame`` (its first 2-D image), else synthetic frames of each ``--size``: sky 10, white noise whose sigma
doubles from the left half to the right (a mosaic's edge), a few hundred Gaussian sources, 1% NaN.  Prints one table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from astroenhance.io import noise
from astroenhance.metrics import clipped_sky, difference_sigma


def per_block(read_data, shape, block, sky, sigma, share):
    """The reference: `_estimated_sky_sigmas` one block at a time."""
    grid = noise._grid(shape, block)
    for j, i, (data,) in noise._blocks(shape, block, read_data):
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


def synthetic(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sigma = np.where(np.arange(size) < size // 2, 1.0, 2.0)[None, :]
    img = 10.0 + rng.normal(0.0, 1.0, (size, size)) * sigma
    yy, xx = np.mgrid[:size, :size]
    for y, x, f, r in zip(*(rng.uniform(0, size, (2, size // 4))), rng.uniform(20, 400, size // 4),
                          rng.uniform(1, 4, size // 4)):
        y0, y1, x0, x1 = int(max(0, y - 4 * r)), int(min(size, y + 4 * r + 1)), int(max(0, x - 4 * r)), int(min(size, x + 4 * r + 1))
        img[y0:y1, x0:x1] += f * np.exp(-((yy[y0:y1, x0:x1] - y) ** 2 + (xx[y0:y1, x0:x1] - x) ** 2) / (2 * r * r))
    img[rng.random(img.shape) < 0.01] = np.nan
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frame", default=None)
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--repeat", type=int, default=3, help="timings per implementation (the fastest is kept)")
    args = ap.parse_args()
    if args.frame:
        with fits.open(args.frame) as h:
            frames = {Path(args.frame).name: next(np.asarray(x.data, np.float64) for x in h if x.header.get("NAXIS") == 2)}
    else:
        frames = {f"synthetic {s}x{s}": synthetic(int(s)) for s in args.sizes.split(",")}
    print(f"{'frame':<24}{'block by block, s':>19}{'row of blocks, s':>18}{'ratio':>8}{'grids equal':>13}")
    for name, data in frames.items():
        sigma = difference_sigma(data)
        sky = clipped_sky(data[np.isfinite(data)], sigma)
        args_ = (lambda a, b, d=data: d[a:b], data.shape, noise.NOISE_MAP_BLOCK, sky, sigma, noise.SKY_SHARE)
        times, grids = {}, {}
        for label, fn in (("ref", per_block), ("vec", noise._estimated_sky_sigmas)):
            best = np.inf
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                grids[label] = fn(*args_)
                best = min(best, time.perf_counter() - t0)
            times[label] = best
        equal = np.array_equal(grids["ref"], grids["vec"], equal_nan=True)
        print(f"{name[:23]:<24}{times['ref']:>19.3f}{times['vec']:>18.3f}{times['ref'] / times['vec']:>8.1f}{str(equal):>13}")


if __name__ == "__main__":
    main()

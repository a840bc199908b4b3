"""Is FLUXERR honest?  The scatter of `run`'s FLUX over apertures, against what FLUXERR says it is.

    python benchmarks/bench_fluxerr.py --data ../shared/data [--sets slacs2303,cosmos] [--frames FOLDER]
        [--tolerances default,0] [--levels 0.5,2] [--workdir DIR]

Each truth (the validation sets of `bench_hst_validation.py`, or the deep frames of ``--frames``) is degraded as
`evaluate --task hst` does (binned 4x, Gaussian noise of k times its pixel rms, SCI + ERR FITS) twice, with two
independent noise draws, and both go through `run` (`Enhancer.enhance_file`, --no-colorize --format fits, the
given ``--flux-tolerance``).  The truth is the same in both, so the difference of the two FLUX planes over an
aperture is noise alone (the truth's own noise cancels): ``z = (S1 - S2) / sqrt(E1^2 + E2^2)``, with ``S`` the
aperture's FLUX sum and ``E`` the quadrature sum of FLUXERR over it.  Where FLUXERR is honest the z have unit
spread; below 1 it is conservative (the network removed noise), above 1 it claims too little.  Apertures: squares
of 1, 2 and 4 input pixels aligned with the blocks, circles of radius 1, 2 and 4 input pixels at random centres (not
aligned: part-blocks at their edges), and the truth's sources' footprints (`training.hst.TruthSources`).  It prints
the spread (1.4826 x the median absolute z; and the rms) per aperture kind and noise level, pooled over frames.
This measures the noise FLUXERR describes, not bias: the light the network takes from faint sources is the
protocol's aperture-flux error (`evaluate --task hst`).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from bench_hst_validation import SETS, write_sets

from astroenhance.config import EnhanceConfig
from astroenhance.pipeline import Enhancer
from astroenhance.pipeline.finish import estimate_noise
from astroenhance.training.hst import SCALE, TruthSources, degrade, list_truths, load_truth, noise_draw, write_input

SQUARES = (1, 2, 4)  # input pixels on a side, aligned with the blocks
CIRCLES = (1.0, 2.0, 4.0)  # radius in input pixels, random centres
PER_FRAME = 400  # random circles per frame and radius


def _planes(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with fits.open(path) as h:
        return np.asarray(h["FLUX"].data, np.float64), np.asarray(h["FLUXERR"].data, np.float64)


def _z(flux: tuple[np.ndarray, np.ndarray], err: tuple[np.ndarray, np.ndarray], masks) -> list[float]:
    """z of each aperture (a boolean mask, or flat indices) where both outputs have data throughout."""
    out = []
    for m in masks:
        s = [f.ravel()[m] if m.dtype != bool else f[m] for f in flux]
        e = [x.ravel()[m] if m.dtype != bool else x[m] for x in err]
        if not all(np.isfinite(v).all() for v in s + e):
            continue
        var = (e[0] ** 2).sum() + (e[1] ** 2).sum()
        if var > 0:
            out.append(float((s[0].sum() - s[1].sum()) / np.sqrt(var)))
    return out


def _square_sums(plane: np.ndarray, side: int, quadrature: bool = False) -> np.ndarray:
    """Sums (or quadrature sums) of ``plane`` over aligned squares of ``side`` input pixels (``side * SCALE`` output
    pixels), whole squares only."""
    n = side * SCALE
    h, w = plane.shape[0] // n * n, plane.shape[1] // n * n
    p = plane[:h, :w] ** 2 if quadrature else plane[:h, :w]
    s = p.reshape(h // n, n, w // n, n).sum(axis=(1, 3))
    return np.sqrt(s) if quadrature else s


def frame_scores(enhancer: Enhancer, name: str, truth: np.ndarray, wcs, k: float, work: Path, seed: int = 0
                 ) -> dict[str, list[float]]:
    """The z of every aperture kind for one truth at noise level ``k`` (two noise draws)."""
    rms = estimate_noise(truth)
    flux, err = [], []
    for draw in (0, 1):
        lr, sigma = degrade(truth, k, noise_draw(seed, name, k, draw), rms)  # the frame's own draws
        src = write_input(work / f"{name}.k{k:g}.d{draw}.fits", lr, sigma, wcs)
        [result] = enhancer.enhance_file(src, work)
        f, e = _planes(result.outputs[0])
        flux.append(f)
        err.append(e)
    z: dict[str, list[float]] = {}
    for side in SQUARES:
        s = [_square_sums(f, side) for f in flux]
        e = [_square_sums(x, side, quadrature=True) for x in err]
        zz = (s[0] - s[1]) / np.sqrt(e[0] ** 2 + e[1] ** 2)
        z[f"square {side}"] = [float(v) for v in zz[np.isfinite(zz)]]
    rng = np.random.default_rng([seed, 7])
    yy, xx = np.indices(flux[0].shape)
    for radius in CIRCLES:
        r = radius * SCALE
        masks = []
        for _ in range(PER_FRAME):
            cy = rng.uniform(r, flux[0].shape[0] - r)
            cx = rng.uniform(r, flux[0].shape[1] - r)
            masks.append(np.flatnonzero((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r))
        z[f"circle r={radius:g}"] = _z(flux, err, masks)
    sources = TruthSources.find(truth, rms)
    z["sources"] = _z(flux, err, sources.footprints)
    return z


def spread(z: list[float]) -> tuple[float, float]:
    a = np.asarray(z)
    return (float(1.4826 * np.median(np.abs(a - np.median(a)))), float(np.sqrt(np.mean(a**2)))) if a.size else (np.nan,) * 2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, help="the shared data folder (for the validation sets)")
    ap.add_argument("--sets", default="slacs2303,cosmos,galaxies",
                    help=f"comma-separated validation sets (of {', '.join(SETS)}; '' for none)")
    ap.add_argument("--frames", type=Path, default=None, help="a folder of deep frames to use as truths instead")
    ap.add_argument("--tolerances", default="default,0", help="comma-separated run --flux-tolerance values")
    ap.add_argument("--levels", default="0.5,2", help="comma-separated k")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    scratch = None if args.workdir else tempfile.TemporaryDirectory(prefix="ae-fluxerr-", ignore_cleanup_errors=True)
    work = args.workdir or Path(scratch.name)  # (a temporary one is removed at the end; --workdir is kept)
    work.mkdir(parents=True, exist_ok=True)
    folders = [args.frames] if args.frames else list(write_sets(args.data, work / "sets",
                                                                [s for s in args.sets.split(",") if s]).values())
    truths = [p for folder in folders for p in list_truths(folder)]
    levels = [float(x) for x in args.levels.split(",")]
    print(f"{len(truths)} truths; z = (S1 - S2) / sqrt(E1^2 + E2^2): spread 1.4826 MAD (rms); 1 = FLUXERR honest")
    for tol in args.tolerances.split(","):
        cfg = EnhanceConfig(colorize=False, formats=("fits",),
                            flux_tolerance=None if tol == "default" else float(tol))
        enhancer = Enhancer(cfg)
        pooled: dict[float, dict[str, list[float]]] = {k: {} for k in levels}
        for i, path in enumerate(truths):
            truth, wcs = load_truth(path)
            for k in levels:
                out = work / f"t{tol}" / f"{i}"
                out.mkdir(parents=True, exist_ok=True)
                for kind, z in frame_scores(enhancer, f"f{i}", truth, wcs, k, out).items():
                    pooled[k].setdefault(kind, []).extend(z)
        kinds = list(pooled[levels[0]])
        print(f"\n--flux-tolerance {tol}")
        print("aperture".ljust(16) + "".join(f"k = {k:g}: spread (rms), n".rjust(30) for k in levels))
        for kind in kinds:
            cells = []
            for k in levels:
                s, r = spread(pooled[k][kind])
                cells.append(f"{s:.3f} ({r:.3f}), {len(pooled[k][kind])}".rjust(30))
            print(kind.ljust(16) + "".join(cells))


if __name__ == "__main__":
    main()

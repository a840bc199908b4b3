"""Frames whose depth varies: `run` with the sky's noise map (``--noise-map``, the default) against one sigma per frame.

    python benchmarks/bench_depth.py [--data DIR ...] [--validation ../shared/data] [--k 0.5,2]
        [--workdir DIR]

Each truth (the FITS frames of each ``--data`` folder, as `evaluate --task hst` lists them, or with
``--validation DATA`` frames of `bench_hst_validation.py`'s validation sets: SLACS 2303 and the synthetic
elliptical, undersampled disk and bright disk) is binned 4x as `evaluate --task hst` does, and its two halves get noise of different depth: the left
``k_deep`` times the truth's pixel rms, the right ``k_shallow`` times it (a mosaic's edge, or a gap covered by fewer
exposures), with an ERR extension that says so (``--no-err``: without one, so that the map is measured from the pixels alone).  Both runs (`run --no-colorize --format fits`, every other setting
the default) are scored per half against the truth: PSNR in the one-sigma run's display mapping, false 5-sigma
detections (`training.hst.source_scores`' definition), the FLUX plane's aperture-flux error over the truth's sources
(the protocol's median), and the FLUX blocks' chi^2/N against the input with its true sigma (the noise-consistent
promise: near 1 where the residual is the input's noise), and the seconds each run took (file in, file out).  Prints
one row per frame and run, and the means (seconds: the sum).  ``--block`` sets the noise map's block size.

``--spans FILE ...`` instead prints, for each FITS frame given (and for frames of white and of drizzle-like noise),
the span (95th / 5th percentile) of the sky-noise blocks measured from its pixels alone, as `run` measures them for a
file without per-pixel noise, and whether that span would switch the map on (`noise.NOISE_MAP_UNIFORM_ESTIMATED`):
frames of one depth must stay below it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

from astroenhance.config import EnhanceConfig
from astroenhance.io import noise
from astroenhance.metrics import area_downsample, groups_above, psnr
from astroenhance.pipeline import Enhancer
from astroenhance.pipeline.finish import estimate_noise
from astroenhance.training.hst import (
    SCALE,
    TruthSources,
    _read_output,
    degrade_two_depths,
    list_truths,
    load_truth,
    source_scores,
)

sys.path.insert(0, str(Path(__file__).parent))
from bench_hst_validation import bright, elliptical, undersampled  # noqa: E402


def truths(folders: list[Path], validation: Path | None) -> dict[str, np.ndarray]:
    out = {}
    for folder in folders:
        for path in list_truths(folder):
            out[path.name.split(".")[0]] = load_truth(path)[0]
    if validation is not None:
        out["slacs2303"] = load_truth(validation / "fits/hst_real/slacs2303p1422_050mas_image.fits")[0]
        out.update({"elliptical": elliptical(), "undersampled_disk": undersampled(7, True),
                    "bright_disk": bright(11, True)})
    return out


def score(name: str, truth: np.ndarray, k: tuple[float, float], enhancers: dict[bool, Enhancer], work: Path,
          seed: int = 1, err: bool = True) -> list[dict]:
    truth = truth[:, :(truth.shape[1] // (2 * SCALE)) * 2 * SCALE]
    sources = TruthSources.find(truth, estimate_noise(truth))
    lr, sigma = degrade_two_depths(truth, k, np.random.default_rng(seed), sources.sigma)
    half = lr.shape[1] // 2
    path = work / f"{name}.fits"
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(lr.astype(np.float32), name="SCI")]
    hdus += [fits.ImageHDU(sigma.astype(np.float32), name="ERR")] if err else []
    fits.HDUList(hdus).writeto(path, overwrite=True)
    rows, display = [], None
    cut = half * SCALE
    for use_map, enhancer in enhancers.items():
        t0 = time.perf_counter()
        [result] = enhancer.enhance_file(path, work / ("map" if use_map else "one"))
        seconds = time.perf_counter() - t0
        lum, norm, linear = _read_output(result.outputs[0])
        display = display or norm  # both scored in the one-sigma run's mapping
        out, ref = display(norm.inverse(np.nan_to_num(lum))), display(truth)
        labels, n = groups_above(linear, sources.background + 5 * sources.pixel_sigma, sources.min_area)
        false = [i for i in range(1, n + 1) if not sources.above[labels == i].any()]
        false_deep = sum(np.nonzero(labels == i)[1].mean() < cut for i in false)
        z2 = ((area_downsample(linear, SCALE) - lr) / sigma) ** 2
        rows.append({"frame": name, "map": use_map,
                     "psnr": (psnr(out[:, :cut], ref[:, :cut]), psnr(out[:, cut:], ref[:, cut:])),
                     "false": (false_deep, len(false) - false_deep),
                     "flux_err": source_scores(sources, linear)["aperture_flux_err"],
                     "chi2": (float(z2[:, :half].mean()), float(z2[:, half:].mean())), "seconds": seconds})
    return rows


def spans(files: list[Path]) -> None:
    """The estimated map's block span per frame (see the module's docstring)."""
    from astroenhance.io.readers import from_array
    from astroenhance.training.telescope import drizzle_like

    rng = np.random.default_rng(0)
    frames = {f.name: load_truth(f)[0] for f in files}
    frames.update({"white noise 512²": rng.normal(0, 1, (512, 512)),
                   "drizzle-like noise 512²": drizzle_like(rng.normal(0, 1, (512, 512)), rng)})
    enhancer = Enhancer(EnhanceConfig(colorize=False, upscale=False, noise_map=False))
    print(f"{'frame':44s} {'blocks':>6s} {'p95/p5':>7s}  map (on at >= {noise.NOISE_MAP_UNIFORM_ESTIMATED:g})")
    for name, data in frames.items():
        data = np.asarray(data, np.float64)
        norm = enhancer.fit_normalizer(from_array(data), enhancer.config.for_input(True))
        grid = noise._fill(noise._estimated_sky_sigmas(lambda a, b, d=data: d[a:b], data.shape, noise.NOISE_MAP_BLOCK,
                                                       norm.sky, norm.sky_noise, noise.SKY_SHARE))
        span = np.divide(*np.percentile(grid, [95, 5])) if grid is not None else float("nan")
        print(f"{name[:44]:44s} {grid.size if grid is not None else 0:6d} {span:7.3f}  "
              f"{'on' if span >= noise.NOISE_MAP_UNIFORM_ESTIMATED else 'off'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, action="append", default=[], help="a folder of deep FITS frames (truths)")
    ap.add_argument("--validation", type=Path, default=None, metavar="DATA",
                    help="validation frames too (DATA: the shared data folder, for SLACS 2303)")
    ap.add_argument("--k", default="0.5,2", help="noise of the deep and the shallow half, x the truth's pixel rms")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--block", type=int, default=None, help="the noise map's block size (default: the shipped one)")
    ap.add_argument("--no-err", action="store_true",
                    help="write the inputs without their ERR extension: the map is measured from the pixels alone")
    ap.add_argument("--spans", type=Path, nargs="+", default=None, metavar="FILE",
                    help="print the estimated map's block span of these frames (and of noise frames) instead")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.spans:
        return spans(args.spans)
    if args.block:
        noise.NOISE_MAP_BLOCK = args.block
    k = tuple(float(v) for v in args.k.split(","))
    warnings.simplefilter("ignore")
    enhancers = {m: Enhancer(EnhanceConfig(colorize=False, formats=("fits",), noise_map=m)) for m in (False, True)}
    scratch = None if args.workdir else tempfile.TemporaryDirectory(prefix="astroenhance-depth-", ignore_cleanup_errors=True)
    work = args.workdir or Path(scratch.name)  # (a temporary one is removed at the end; --workdir is kept)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, truth in truths(args.data, args.validation).items():
        rows += score(name, truth, k, enhancers, work, err=not args.no_err)
    print(f"depth step: left half k = {k[0]:g}, right half k = {k[1]:g} (x the truth's pixel rms); "
          + ("no ERR: the map from the pixels" if args.no_err else "ERR says so"))
    print(f"{'frame':34s} {'sigma':9s} {'PSNR deep':>9s} {'shallow':>8s} {'false deep/shallow':>18s} "
          f"{'flux err':>8s} {'chi2/N deep':>11s} {'shallow':>8s} {'seconds':>8s}")
    for r in rows:
        print(f"{r['frame'][:34]:34s} {'map' if r['map'] else 'one':9s} {r['psnr'][0]:9.2f} {r['psnr'][1]:8.2f} "
              f"{r['false'][0]:>8d}/{r['false'][1]:<9d} {r['flux_err']:8.3f} {r['chi2'][0]:11.2f} {r['chi2'][1]:8.2f} "
              f"{r['seconds']:8.2f}")
    for use_map in (False, True):
        sel = [r for r in rows if r["map"] == use_map]
        print(f"{'mean of ' + str(len(sel)) + ' frames':34s} {'map' if use_map else 'one':9s} "
              f"{np.mean([r['psnr'][0] for r in sel]):9.2f} {np.mean([r['psnr'][1] for r in sel]):8.2f} "
              f"{sum(r['false'][0] for r in sel):>8d}/{sum(r['false'][1] for r in sel):<9d} "
              f"{np.nanmedian([r['flux_err'] for r in sel]):8.3f} {np.mean([r['chi2'][0] for r in sel]):11.2f} "
              f"{np.mean([r['chi2'][1] for r in sel]):8.2f} {sum(r['seconds'] for r in sel):8.2f}")


if __name__ == "__main__":
    main()

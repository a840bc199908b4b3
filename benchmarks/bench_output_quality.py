"""What the FITS output promises, measured on one frame: clipping of the display mapping, the FLUX plane's flux
conservation, its block lattice beside the display luminance's and bicubic's, its independence of how rows are cut
into pieces, and what the FLUX plane costs in time.

    python benchmarks/bench_output_quality.py [--frame FITS] [--hdu SCI]

Default frame: the ACS/HRC crop in tests/data (the figures in docs were measured on the whole frame,
``--frame ../shared/data/fits/hst/j8bt06nyq_flt.fits``).  Prints one table; every number is a ratio or a fraction
within this run, so machines compare.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import astroenhance.pipeline.engine as engine
from astroenhance import EnhanceConfig, Enhancer
from astroenhance.imaging.normalize import Normalizer
from astroenhance.io.readers import read_frame
from astroenhance.metrics import block_lattice as lattice
from astroenhance.pipeline.finish import block_means

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frame", default=str(HERE.parent / "tests" / "data" / "fits" / "j8bt06nyq_flt_crop.fits"))
    ap.add_argument("--hdu", default=None)
    args = ap.parse_args()
    data, wcs, _ = read_frame(args.frame, args.hdu)
    rows = []

    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False))
    t0 = time.perf_counter()
    res = enh.enhance_array(data, wcs)
    with_flux = time.perf_counter() - t0
    t0 = time.perf_counter()
    Enhancer(EnhanceConfig(device="cpu", colorize=False, flux_plane=False)).enhance_array(data, wcs)
    without = time.perf_counter() - t0
    norm = res.normalizer
    finite = data[np.isfinite(data)]
    old = Normalizer.fit(finite, "asinh", "percentile:99.5")
    rows += [("display >= 0.999 (top-clipped), percentile:99.5", f"{np.mean(old(finite) >= 0.999):.4%}"),
             (f"display >= 0.999, {norm.interval} (the default)", f"{np.mean(norm(finite) >= 0.999):.4%}")]

    ok = np.isfinite(data)
    exact = Enhancer(EnhanceConfig(device="cpu", colorize=False, flux_tolerance=0.0)).enhance_array(data, wcs)
    for label, r in ((f"default ({res.header['AE_SRMOD']}, within {res.header['AE_FLUXT']:g} sigma)", res),
                     ("exact (--flux-tolerance 0)", exact)):
        z = (block_means(np.nan_to_num(r.flux.astype(np.float64)), 4) * 16 - data)[ok] / norm.sky_noise
        rows += [(f"FLUX {label}: max |16-pixel sum - input pixel| / input noise; chi2/N", f"{np.abs(z).max():.2e}; {np.mean(z**2):.3g}"),
                 (f"FLUX {label}: total relative error", f"{np.nansum(r.flux) / data[ok].sum() - 1:.1e}")]
    flux = res.flux.astype(np.float64)
    bicubic = F.interpolate(torch.from_numpy(np.nan_to_num(data, nan=norm.sky).astype(np.float64))[None, None],
                            scale_factor=4, mode="bicubic", align_corners=False)[0, 0].numpy()
    rows += [("block lattice: FLUX (columns / rows)", f"{lattice(flux):.3f} / {lattice(flux.T):.3f}"),
             ("block lattice: display luminance", f"{lattice(res.luminance.astype(np.float64)):.3f}")]
    lum = res.luminance.astype(np.float64)
    sky = np.isfinite(lum) & (lum < np.nanmedian(lum))  # the fainter half of the output: mostly sky
    rows += [("block lattice, means over the fainter half (isolated squares): display luminance (columns / rows)",
              f"{lattice(lum, sky):.3f} / {lattice(lum.T, sky.T):.3f}"),
             ("block lattice: bicubic", f"{lattice(bicubic):.3f}")]

    out = {}
    for piece in (4, 64):
        engine.FINISH_ROWS = piece
        out[piece] = Enhancer(EnhanceConfig(device="cpu", colorize=False)).enhance_array(data, wcs).flux
    engine.FINISH_ROWS = 16
    rel = np.abs(out[4].astype(np.float64) - out[64]) / (np.abs(out[64].astype(np.float64)) + norm.sky_noise / 16)
    rows += [("FLUX, pieces of 4 vs 64 rows: |difference| / (|flux| + sigma/16), max / 99.9th pct",
              f"{np.nanmax(rel):.4f} / {np.nanpercentile(rel, 99.9):.1e}"),
             ("time with the FLUX plane / without", f"{with_flux / without:.2f} ({with_flux:.1f} s / {without:.1f} s)")]

    print(f"frame {args.frame} {data.shape[1]}x{data.shape[0]}, interval {norm.interval}, sigma {norm.sky_noise:.4g}")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()

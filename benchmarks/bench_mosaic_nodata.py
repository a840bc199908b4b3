"""What a mosaic keeps beside no data, and what keeping it costs: reproject's own interpolation against
`compose.interp_keeping_data`, in the same run, on one frame (its no-data pixels: DQ flags, cosmic rays) onto its own
grid and onto a north-up grid.

    python benchmarks/bench_mosaic_nodata.py [FRAME] [--repeats 3]

FRAME defaults to the ACS/HRC crop in tests/data (the whole 1024² frame: ../shared/data/fits/hst/j8bt06nyq_flt.fits).
reproject interpolates even a grid onto itself at positions ~1e-10 pixel off, so with its own interpolation each
no-data pixel takes its neighbours with it; the table prints the no-data pixels inside the frame's footprint and the
time of each, with the ratio.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from bench_speed import best_of
from reproject import reproject_interp

from astroenhance.compose import interp_keeping_data, mosaic_grid
from astroenhance.io.readers import read_frame

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("frame", nargs="?", default=str(REPO / "tests/data/fits/j8bt06nyq_flt_crop.fits"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data, wcs, _ = read_frame(args.frame)
    print(f"{Path(args.frame).name}: {data.shape[1]}x{data.shape[0]}, {int(np.isnan(data).sum())} no-data pixels")
    print(f"{'grid':<10}{'interpolation':<22}{'no data inside':>16}{'seconds':>10}{'x reproject':>13}")
    for grid in ("first", "optimal"):
        out_wcs, shape = mosaic_grid([(data, wcs)], grid)
        inside = reproject_interp((np.ones_like(data), wcs), out_wcs, shape_out=shape)[1] > 0
        base = None
        for name, fn in (("reproject_interp", reproject_interp), ("interp_keeping_data", interp_keeping_data)):
            def once(fn=fn, out_wcs=out_wcs, shape=shape):
                return fn((data, wcs), out_wcs, shape_out=shape)
            seconds = best_of(once, args.repeats)
            arr, fp = once()
            lost = int((inside & ~((fp > 0) & np.isfinite(arr))).sum())
            base = base or seconds
            print(f"{grid:<10}{name:<22}{lost:>16}{seconds:>10.3f}{seconds / base:>13.2f}")


if __name__ == "__main__":
    main()

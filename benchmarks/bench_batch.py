"""Archive throughput: files per hour for a typical HST frame, and how it scales with --jobs.

    python benchmarks/bench_batch.py [--files 4] [--jobs 1,2] [--size 512]

The frame is a SIZE x SIZE cut of the real ACS/HRC frame j8bt06nyq_flt.fits (with its WCS), copied FILES times
into a folder; each row runs `astroenhance run FOLDER --format fits,png --jobs J` in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from astropy.io import fits
from astropy.wcs import WCS
from bench_memory import SAFE_PATH  # (a sibling script: its folder is sys.path[0] when run as a script)

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "fits" / "hst" / "j8bt06nyq_flt.fits"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--jobs", default="1,2")
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="ae-batch-", ignore_cleanup_errors=True)  # (removed at the end)
    work = Path(scratch.name)
    src = work / "in"
    src.mkdir()
    with fits.open(SOURCE) as h:
        data = h["SCI"].data[: args.size, : args.size]
        header = WCS(h["SCI"].header, h)[: args.size, : args.size].to_header()
    for i in range(args.files):
        fits.PrimaryHDU(data, header=header).writeto(src / f"frame{i:03d}.fits")
    cores = os.cpu_count() or 1
    print(f"{args.files} frames of {args.size}x{args.size} (ACS/HRC), outputs fits+png, {cores} cores")
    print(f"{'jobs':>4} {'seconds':>8} {'files/hour':>11} {'files/hour/core':>16} {'speed-up':>9}")
    base = None
    for jobs in [int(j) for j in args.jobs.split(",")]:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "astroenhance.cli", "run", str(src), "-o", str(work / f"out{jobs}"),
                        "--jobs", str(jobs), "-q"], check=True, env=SAFE_PATH)
        secs = time.perf_counter() - t0
        fph = args.files / secs * 3600
        base = base or fph
        print(f"{jobs:>4} {secs:8.1f} {fph:11.1f} {fph / cores:16.1f} {fph / base:9.2f}")


if __name__ == "__main__":
    main()

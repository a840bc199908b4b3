"""Peak memory of `astroenhance run --format fits` (or other formats) on a 1024x1024 and a 4096x4096 frame.

    python benchmarks/bench_memory.py [--sizes 1024,4096] [--formats fits,png] [--workdir DIR] [--low-memory]
        [--run-args '--tile 224'] [--compressions none,gzip]

The large frames are the real ACS/HRC frame j8bt06nyq_flt.fits tiled (mirrored) up to the size, with its
WCS (CRPIX kept, so the WCS stays valid for the first copy), uncompressed or gzipped (``--compressions``: a
``.fits.gz`` of each size too).  Each run is a separate process; its peak RSS comes from getrusage.  Prints a
table with the ratio to the first row's.  A cut-out of a large frame measures what reading it costs:
``--sizes 8192 --compressions none,gzip --run-args '--cutout "6.03093 -72.0855" --cutout-size 10arcsec'``.
To measure older code, put a worktree of it first on ``PYTHONPATH``: the runs start with ``PYTHONSAFEPATH=1``, so
that the current folder (the repository root, say) does not come before it on their ``sys.path``.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

# the runs' environment: a worktree of older code first on PYTHONPATH is what they import, even started from the
# repository root (``python -c`` and ``-m`` put the current folder first on ``sys.path``; other benchmarks use it too)
SAFE_PATH = dict(os.environ, PYTHONSAFEPATH="1")
HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent / "shared" / "data" / "fits" / "hst" / "j8bt06nyq_flt.fits"
# a machine without ../shared beside the checkout (a lent GPU) carries a copy of the frame's SCI here
SOURCE = SOURCE if SOURCE.exists() else HERE.parent / ".gpu_data" / "j8bt06nyq_flt.fits.gz"


def make_frame(size: int, path: Path) -> None:
    with fits.open(SOURCE) as h:
        data, header = h["SCI"].data.astype(np.float32), h["SCI"].header
    reps = -(-size // data.shape[0])
    big = np.block([[data if (i + j) % 2 == 0 else data[::-1, ::-1] for j in range(reps)] for i in range(reps)])
    fits.PrimaryHDU(big[:size, :size], header=header).writeto(path, overwrite=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1024,4096")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--low-memory", action="store_true", help="pass --low-memory to run")
    ap.add_argument("--run-args", default="", help="more options for run, e.g. '--tile 224'")
    ap.add_argument("--formats", default="fits", help="run --format: one row per size and format, e.g. fits,png")
    ap.add_argument("--compressions", default="none", help="the frame as written: none (.fits), gzip (.fits.gz)")
    args = ap.parse_args()
    scratch = None if args.workdir else tempfile.TemporaryDirectory(prefix="ae-bench-", ignore_cleanup_errors=True)
    work = Path(args.workdir or scratch.name)  # (a temporary one is removed at the end: GBs of outputs at 4096²)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for size, fmt, packing in itertools.product([int(s) for s in args.sizes.split(",")], args.formats.split(","),
                                                args.compressions.split(",")):
        frame = work / f"frame_{size}.fits"
        if not frame.exists():
            make_frame(size, frame)
        if packing == "gzip":
            packed = frame.with_name(frame.name + ".gz")
            if not packed.exists():
                with open(frame, "rb") as src, gzip.open(packed, "wb", compresslevel=1) as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            frame = packed
        code = ("import resource, sys; from astroenhance.cli import app; "
                "sys.argv=['astroenhance','run',sys.argv[1],'-o',sys.argv[2],'--format',sys.argv[3],'-q']+sys.argv[4:];\n"
                "try: app()\nexcept SystemExit as e: code=e.code\n"
                "print('RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-c", code, str(frame), str(work / f"out_{size}_{fmt}_{packing}"), fmt]
                             + (["--low-memory"] if args.low_memory else []) + shlex.split(args.run_args),
                             capture_output=True, text=True, env=SAFE_PATH)
        secs = time.perf_counter() - t0
        rss = next((int(ln.split()[1]) for ln in res.stdout.splitlines() if ln.startswith("RSS_KB")), -1)
        if rss < 0:
            print(res.stdout, res.stderr)
        rows.append((size, packing, fmt, rss / 1024, secs, (size * 4) ** 2 / 1e6 / secs))
    print(f"{'input':>10} {'packing':>7} {'format':>7} {'peak RSS MB':>12} {'x first':>8} {'seconds':>8} {'out MP/s':>9}")
    for size, packing, fmt, mb, secs, mps in rows:
        print(f"{size:>5}x{size:<4} {packing:>7} {fmt:>7} {mb:12.0f} {mb / rows[0][3]:8.2f} {secs:8.1f} {mps:9.3f}")


if __name__ == "__main__":
    main()

"""Peak memory and time of `astroenhance evaluate --task hst` on large truths (a deep frame an astronomer holds).

    python benchmarks/bench_evaluate_memory.py [--sizes 600,2048] [--source FRAME] [--levels 2] [--workdir DIR]

Each truth is the deep frame ``--source`` (default: the NGC 2274 WFC3/IR 600² frame of ``../shared/data``) tiled
(mirrored) up to the size, alone in a folder; each size is one `evaluate --task hst --draws 1 --noise-frames 0`
process (``--levels``), its peak RSS from getrusage.  Prints a table: seconds, peak MB, bytes per truth pixel and
the ratio of the peak to the first row's.  To measure older code, put a worktree of it first on ``PYTHONPATH``
(the runs start with ``PYTHONSAFEPATH=1``, as in `bench_memory.py`).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent.parent / "shared" / "data" / "fits" / "hst_real" / "autogalaxy_ngc2274_wfc3ir_600px_data.fits.gz"


def tiled(source: Path, size: int) -> np.ndarray:
    """``source``'s first image mirrored about its edges until it is ``size`` x ``size``."""
    data = np.asarray(next(h.data for h in fits.open(source) if h.data is not None and h.data.ndim == 2), np.float32)
    reps = -(-size // min(data.shape))
    row = np.concatenate([data if i % 2 == 0 else data[:, ::-1] for i in range(reps)], axis=1)
    return np.concatenate([row if i % 2 == 0 else row[::-1] for i in range(reps)], axis=0)[:size, :size]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="600,2048")
    ap.add_argument("--source", type=Path, default=SOURCE)
    ap.add_argument("--levels", default="2")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    env = dict(os.environ, PYTHONSAFEPATH="1")
    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            folder = Path(tmp) / f"t{size}"
            folder.mkdir()
            fits.writeto(folder / f"tiled{size}.fits", tiled(args.source, size))
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "astroenhance", "evaluate", "--task", "hst", "--data", str(folder),
                            "--draws", "1", "--noise-frames", "0", "--levels", args.levels,
                            "--json", str(folder / "out.json")], check=True, env=env, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - t0
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # (the largest child so far)
            if peak <= before * 1024:
                print(f"# {size}: its peak is not above an earlier run's; run sizes in increasing order", file=sys.stderr)
            rows.append((size, seconds, peak))
    print(f"{'truth':>11} {'seconds':>8} {'peak MB':>8} {'B/pixel':>8} {'x first':>8}")
    for size, seconds, peak in rows:
        print(f"{size:>5}x{size:<5} {seconds:8.1f} {peak / 1e6:8.0f} {peak / size**2:8.0f} {peak / rows[0][2]:8.2f}")


if __name__ == "__main__":
    main()

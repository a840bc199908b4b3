"""The writers' host-side rates, output megapixels per second: the FITS int16 encoding of one plane, a picture's rows
quantised to 8 bits into its scratch file (`ImageWriter.write_rows`), FITS blocks written
(`FITSRGBWriter.write_block`: int16 RGB + float32 FLUX + FLUXERR), the same as a finished `--fits-encoding rice`
file (blocks, tile compression, checksums), a float plane gzipped as rice files' FLUX is (level 1, the writer's;
9, astropy's own), and a PNG encoded by `write_png` on one thread
and on the host's threads, with its size.  With ``--pictures SIDE``, also each picture format (PNG, TIFF, JPEG)
written whole by `ImageWriter` — rows into its scratch file, then encoded — in a process of its own: its seconds and
peak RSS (the encoders' memory; a 16384² picture is 805 MB of 8-bit pixels).  Only interfaces older code has too, so
that a worktree of it can be measured the same way.

    python benchmarks/bench_writers.py [--width 16384] [--png 4096] [--pictures 16384] [--workdir DIR]

The picture is smooth sky with noise and a ramp (pure noise would compress unlike any real output).  Compare the
code before a change by putting a worktree of it first on ``PYTHONPATH`` (ratios in the same session: these
machines are noisy).  `bench_gpu.py` prints the same table on the device's host.
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from bench_speed import best_of

from astroenhance.io.writers import FITSRGBWriter, ImageWriter, to_int16, write_png


def picture(side: int, seed: int = 0, span: tuple[int, int] | None = None) -> np.ndarray:
    """Display values of a ``side`` x ``side`` RGB picture: smooth sky, noise, a ramp (``span``: only rows y0:y1)."""
    y0, y1 = span or (0, side)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[y0:y1, 0:side].astype(np.float32) / side
    base = 0.1 + 0.05 * np.sin(x * 14) * np.cos(y * 20) + 0.3 * x * y
    return np.clip(base[..., None] + rng.normal(0, 0.02, (y1 - y0, side, 3)).astype(np.float32), 0, 1)


def rows(width: int, workdir: Path, png_side: int) -> list[tuple[str, float, str]]:
    """(what, output MP/s, remark) for each writer stage."""
    out = []
    plane = np.random.default_rng(0).random((256, width), dtype=np.float32)
    plane[::9, ::7] = np.nan
    out.append(("FITS int16 encoding, one plane", plane.size / 1e6 / best_of(lambda: to_int16(plane), 3), ""))
    rgb = np.random.default_rng(1).random((64, width, 3), dtype=np.float32)
    rgb[::9, ::7] = np.nan

    def picture_rows() -> None:
        w = ImageWriter(workdir / "rows.png", (64, width), "png")
        try:
            w.write_rows(0, rgb)
        finally:
            w.abort()
    out.append(("picture rows quantised to 8 bits (scratch)", rgb.size / 3e6 / best_of(picture_rows, 3), ""))
    height = 512
    flux = np.random.default_rng(2).random((64, width), dtype=np.float32)

    def fits_blocks() -> None:
        w = FITSRGBWriter(workdir / "blocks.fits", (height, width), fits.Header(), fits.Header(), "int16",
                          (fits.Header(), fits.Header()))
        try:
            for r in range(0, height, 64):
                w.write_block(r, rgb, 0, flux, flux)
        finally:
            w.abort()
    out.append(("FITS blocks (int16 RGB + FLUX + FLUXERR)", height * width / 1e6 / best_of(fits_blocks, 3), ""))

    def rice_file() -> None:  # the whole file: blocks, then the tile compression and its checksums
        path = workdir / "rice.fits"
        path.unlink(missing_ok=True)
        w = FITSRGBWriter(path, (height, width), fits.Header(), fits.Header(), "rice", (fits.Header(), fits.Header()))
        for r in range(0, height, 64):
            w.write_block(r, rgb, 0, flux, flux)
        w.commit()
    t = best_of(rice_file, 2)
    out.append(("FITS --fits-encoding rice, finished file", height * width / 1e6 / t,
                f"{t:.2f} s, {(workdir / 'rice.fits').stat().st_size / 1e6:.1f} MB"))
    # a rice file's float planes (FLUX, FLUXERR) are gzipped tile by tile (GZIP_2: bytes shuffled, then deflated):
    # astropy's level 9 against the writer's level 1, on one smooth plane (a picture's sky, in float32)
    shuffled = picture(1024)[..., 1].astype(">f4").view(np.uint8).reshape(-1, 4).T.tobytes()
    for level in (1, 9):
        t = best_of(lambda lv=level: gzip.compress(shuffled, compresslevel=lv), 2)
        size = len(gzip.compress(shuffled, compresslevel=level)) / len(shuffled)
        out.append((f"GZIP_2 float32 plane, gzip level {level}", 1024**2 / 1e6 / t, f"{size:.3f} of its bytes"))
    q = (picture(png_side) * 255 + 0.5).astype(np.uint8)
    threaded = "threads" in inspect.signature(write_png).parameters
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for threads in (1, cores) if threaded else (1,):
        path = workdir / f"picture_{threads}.png"
        extra = {"threads": threads} if threaded else {}
        t = best_of(lambda p=path, e=extra: write_png(p, lambda a, b: q[a:b], q.shape[:2], **e), 2)
        out.append((f"PNG {png_side}² picture, {threads} thread(s)", png_side**2 / 1e6 / t,
                    f"{t:.2f} s, {path.stat().st_size / 1e6:.2f} MB"))
    return out


def one_picture(fmt: str, side: int, workdir: Path) -> None:
    """Write a ``side``² picture in ``fmt`` by `ImageWriter` (256 rows at a time, as `run` hands it rows) and print
    its seconds, peak RSS (MB) and size (MB): run in a process of its own."""
    t0 = time.perf_counter()
    w = ImageWriter(workdir / f"whole.{fmt}", (side, side), fmt)
    for y in range(0, side, 256):
        w.write_rows(y, picture(side, seed=y, span=(y, min(y + 256, side))))
    path = w.commit()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{seconds:.2f} {peak:.0f} {path.stat().st_size / 1e6:.1f}")


def picture_rows_table(side: int, workdir: Path) -> None:
    print(f"\n{'picture ' + str(side) + '²':<14}{'seconds':>9}{'peak RSS MB':>13}{'size MB':>9}")
    for fmt in ("png", "tiff", "jpeg"):
        out = subprocess.run([sys.executable, __file__, "--one-picture", fmt, str(side), "--workdir", str(workdir)],
                             capture_output=True, text=True, check=True).stdout.split()
        print(f"{fmt:<14}{float(out[0]):9.1f}{float(out[1]):13.0f}{float(out[2]):9.1f}")
        (workdir / f"whole.{fmt}").unlink(missing_ok=True)


def print_table(table: list[tuple[str, float, str]]) -> None:
    print(f"{'writer stage':<44}{'MP/s':>9}  remark")
    for what, rate, remark in table:
        print(f"{what:<44}{rate:9.1f}  {remark}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=4096 * 4, help="output columns of the planes and blocks")
    ap.add_argument("--png", type=int, default=4096, help="side of the PNG picture")
    ap.add_argument("--pictures", type=int, default=0, help="side of the pictures written whole per format (0: none)")
    ap.add_argument("--one-picture", nargs=2, metavar=("FORMAT", "SIDE"), help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    scratch = None if args.workdir else tempfile.TemporaryDirectory(prefix="ae-writers-", ignore_cleanup_errors=True)
    work = Path(args.workdir or scratch.name)  # (a temporary one is removed at the end)
    work.mkdir(parents=True, exist_ok=True)
    if args.one_picture:
        one_picture(args.one_picture[0], int(args.one_picture[1]), work)
        return
    print_table(rows(args.width, work, args.png))
    if args.pictures:
        picture_rows_table(args.pictures, work)


if __name__ == "__main__":
    main()

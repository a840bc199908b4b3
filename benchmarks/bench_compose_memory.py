"""Wall time and memory of `compose` on synthetic filter frames of growing size, against the whole-grid baseline,
in one run.

    python benchmarks/bench_compose_memory.py [--sizes 1024,2048] [--bands 3]

For each size N, BANDS frames of N² pixels (stars on noise, each band a third of a pixel off the others, F435W,
F606W, F814W, ...) are written to a temporary folder; each row is `astroenhance compose` of them in a fresh
process, its peak RSS and RssAnon (what the kernel cannot drop: memory-mapped scratch excluded) sampled every
20 ms. The baseline aligns and composes the whole grid at once, in float64 and in memory, as `compose` did before
it worked in strips (`compose.COMPOSE_STRIP_PIXELS` above the grid's size, `compose._grid_array` float64 arrays
in memory); the composites' display planes are compared (the largest difference, in 16-bit steps).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import memory_probe
import numpy as np
from astropy.io import fits

#: the baseline (WHOLE_GRID in its environment): the whole grid at once, float64, in memory, as before
PATCHES = r"""
import numpy as np
from astroenhance import compose
if os.environ.get("WHOLE_GRID"):
    compose.COMPOSE_STRIP_PIXELS = 1 << 62
    compose._grid_array = lambda scratch, name, shape, dtype=None: np.zeros(shape)
"""

FILTERS = [("F435W", 4318.9), ("F606W", 5921.1), ("F814W", 8057.0), ("F105W", 10552.0), ("F125W", 12486.0),
           ("F140W", 13923.0), ("F160W", 15369.0)]


def frames(n: int, bands: int, folder: Path) -> list[Path]:
    rng = np.random.default_rng(n)
    out = []
    for k, (name, pivot) in enumerate(FILTERS[:bands]):
        h = fits.Header()
        h["CTYPE1"], h["CTYPE2"], h["CRVAL1"], h["CRVAL2"] = "RA---TAN", "DEC--TAN", 150.0, 2.0
        h["CRPIX1"], h["CRPIX2"] = n / 2 + k / 3, n / 2 - k / 3
        h["CD1_1"], h["CD2_2"], h["CD1_2"], h["CD2_1"] = -1.0e-5, 1.0e-5, 0.0, 0.0
        h["FILTER"], h["PHOTPLAM"], h["BUNIT"] = name, pivot, "ELECTRONS/S"
        data = rng.normal(0, 0.01, (n, n)).astype(np.float32)
        count = n * n // 2500
        data[rng.integers(0, n, count), rng.integers(0, n, count)] += rng.exponential(5, count).astype(np.float32)
        out.append(folder / f"b{n}_{k}_{name.lower()}_drz.fits")
        fits.writeto(out[-1], data, h)
    return out


def measure(args: list[str], before: bool) -> dict:
    return memory_probe.measure(args, PATCHES, {"WHOLE_GRID": "1"} if before else {})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1024,2048")
    ap.add_argument("--bands", type=int, default=3)
    args = ap.parse_args()
    print(f"{'command':<44}{'seconds':>9}{'peak RSS MB':>13}{'RssAnon MB':>12}{'x baseline (s, anon)':>22}"
          f"{'largest diff (16-bit steps)':>29}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in (int(v) for v in args.sizes.split(",")):
            paths = frames(n, args.bands, tmp)
            base = None
            for before in (True, False):
                out = tmp / f"{n}{'a' if before else 'b'}"
                r = measure(["compose", *map(str, paths), "-o", str(out), "--name", "c", "--format", "fits"], before)
                base = base or r
                diff = ""
                if not before:
                    with fits.open(tmp / f"{n}a" / "c.composite.fits") as a, fits.open(out / "c.composite.fits") as b:
                        diff = max(float(np.nanmax(np.abs(a[c].data - b[c].data))) for c in ("RED", "GREEN", "BLUE"))
                        diff = f"{diff * 65534:.1f}"
                name = f"{args.bands} bands of {n}², " + ("whole grid, float64 (baseline)" if before else "in strips")
                ratio = f"{r['seconds'] / base['seconds']:.2f}, {r['anon'] / base['anon']:.2f}"
                print(f"{name:<44}{r['seconds']:>9.1f}{r['rss']:>13.0f}{r['anon']:>12.0f}{ratio:>22}{diff:>29}")


if __name__ == "__main__":
    main()

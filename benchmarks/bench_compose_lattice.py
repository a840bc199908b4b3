"""How much `compose --upscale`'s 4x4 block edges show, at each display tolerance.

    python benchmarks/bench_compose_lattice.py --data ../shared/data [--tolerances 4,0]

Composes the CFHTLS g, r, i bands (`fits/multiband_cfhtls`) with ``--upscale`` at each ``--display-tolerance`` and
prints, for the PNG's luminance (BT.601) and colour (B - Y), the mean |step| between neighbouring columns at each of
the 4 phases (the last across block edges) on pixels whose 9x9 neighbourhood is above 8/255 (away from the composite's
black sky, where a block whose pixel is 0 must be all 0 under any promise), and the edge step over the mean inside
(1: no lattice).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import minimum_filter

from astroenhance.combining import make_composite


def phases(x: np.ndarray, where: np.ndarray) -> list[float]:
    d = np.abs(np.diff(x, axis=1))
    ok = where[:, 1:]
    return [float(d[:, j::4][ok[:, j::4]].mean()) for j in range(4)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder (holds fits/multiband_cfhtls)")
    ap.add_argument("--tolerances", default="4,0")
    args = ap.parse_args()
    bands = [args.data / "fits" / "multiband_cfhtls" / f"CFHTLS-test_{b}.fits" for b in "gri"]
    print(f"{'tolerance':>10}  {'luminance: phases 1-3 / edge':<34} {'ratio':>6}  {'colour: phases 1-3 / edge':<34} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for tol in args.tolerances.split(","):
            out = Path(tmp) / tol
            make_composite(bands, out, upscale=True, formats="png", display_tolerance=float(tol), say=lambda _: None)
            a = np.asarray(Image.open(out / "CFHTLS-test.composite.png"), np.float64)[..., :3]
            y = a @ [0.299, 0.587, 0.114]
            lit = minimum_filter(y, size=9) > 8
            row = [f"{tol:>10}"]
            for plane in (y, a[..., 2] - y):
                p = phases(plane, lit)
                row += [f"{' '.join(f'{v:.2f}' for v in p[:3])} / {p[3]:.2f}".ljust(34), f"{p[3] / np.mean(p[:3]):6.2f}"]
            print("  ".join(row))


if __name__ == "__main__":
    main()

"""What FLUX does to faint sources, and how much of the noise it lets go: signed aperture-flux error by the source's
signal-to-noise in the input, and the block residuals' chi^2/N against the input, per FLUX tolerance.

    python benchmarks/bench_flux_bias.py [--fields 8] [--first 0] [--tolerances default,1,0] [--levels 0.5,2]
                                         [--weights default,W1,...] [--draws N]

Truths: the simulated fields of `evaluate --task hst --simulated N` (fields ``--first`` to ``--first`` + N - 1; the
report's are 0 to N - 1, so choose settings with ``--first 100``, the validation bench's fields; noise-free, so the
error of a source's flux is the method's alone) and one frame of pure noise (the truth is 0 everywhere).  Each is degraded as the
protocol does (binned 4x, Gaussian noise of k in the fields' units, SCI + ERR FITS) and enhanced by `run`
(`Enhancer.enhance_file`, --no-colorize --format fits, the given ``--flux-tolerance``; the display's own default).
For every source of the truth (`training.hst.TruthSources`: >= 5 pixels above 5 units) its FLUX over its footprint,
minus the truth's, over the truth's: the mean of that signed error per bin of the source's S/N in the input (its
footprint's flux over the noise of its sum: k x sqrt(footprint pixels / 16) x 16), beside bicubic's (whose loss is
its blur leaving the footprint).  chi^2/N: ``mean(((input - block_means(FLUX x 16)) / sigma)**2)`` (1 where FLUX
keeps none of the noise, 0 where it keeps all of it: the exact mode).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from astroenhance.config import EnhanceConfig
from astroenhance.metrics import area_downsample
from astroenhance.pipeline import Enhancer
from astroenhance.training import fields
from astroenhance.training.hst import SCALE, TruthSources, _bicubic, degrade, noise_draw, write_input

BINS = ((0, 10), (10, 30), (30, 100), (100, np.inf))


def flux_per_input_pixel(path: Path) -> np.ndarray:
    """The output's FLUX plane at the input's per-pixel level (x 16 where its pixels sum to the input pixel)."""
    with fits.open(path) as h:
        return np.asarray(h["FLUX"].data, np.float64) * (SCALE**2 if h[0].header["AE_FLXPL"] == "sum" else 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fields", type=int, default=8, help="simulated fields FIRST to FIRST + N - 1")
    ap.add_argument("--first", type=int, default=0, help="the first field (100: the validation fields)")
    ap.add_argument("--weights", default="default", help="comma-separated weights folders; default = shipped")
    ap.add_argument("--tolerances", default="default,1,0", help="FLUX tolerances (default: the network's)")
    ap.add_argument("--levels", default="0.5,2")
    ap.add_argument("--draws", type=int, default=1, help="noise draws per field and level (each source's error "
                    "counts once per draw): a bin of ~50 faint sources moves by a few hundredths from draw to draw")
    args = ap.parse_args()
    levels = [float(v) for v in args.levels.split(",")]
    truths = [fields.numbered_field(i)[0] for i in range(args.first, args.first + args.fields)]
    sources = [TruthSources.find(t, 1.0) for t in truths]
    noise = np.zeros((384, 384))
    print(f"{'weights':<16}{'FLUX tol.':<10}{'k':>4}  " + "".join(f"{f'S/N {lo}-{hi}: n, run, bicubic':>34}" for lo, hi in BINS)
          + f"{'chi2/N fields':>15}{'chi2/N noise':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for (n, w), tol in itertools.product(enumerate(args.weights.split(",")), args.tolerances.split(",")):
            enh = Enhancer(EnhanceConfig(colorize=False, formats=("fits",), weights=None if w == "default" else w,
                                         flux_tolerance=None if tol == "default" else float(tol)))
            for k in levels:
                rows, chi2 = [], {"fields": [], "noise": []}
                pairs = [*zip(truths, sources), (noise, None)]
                for (i, (truth, src)), d in itertools.product(enumerate(pairs), range(args.draws)):
                    # each field's own noise, the draws `evaluate --task hst --simulated --draws` give it
                    name = "blank" if src is None else f"simulated{args.first + i:02d}"
                    lr, sigma = degrade(truth, k, noise_draw(0, name, k, d), 1.0)
                    [res] = enh.enhance_file(write_input(work / f"w{n}t{tol}k{k:g}f{i}d{d}.fits", lr, sigma, None),
                                             work)
                    flux = flux_per_input_pixel(res.outputs[0])
                    chi2["noise" if src is None else "fields"].append(
                        np.mean(((lr - area_downsample(flux, SCALE)) / sigma) ** 2))
                    if src is None:
                        continue
                    bic = _bicubic(lr).ravel()
                    for foot, f in zip(src.footprints, src.flux):
                        snr = f / (k * np.sqrt(len(foot) / SCALE**2) * SCALE**2)
                        rows.append((snr, (flux.ravel()[foot] - src.background).sum() / f - 1,
                                     (bic[foot] - src.background).sum() / f - 1))
                r = np.array(rows)
                cells = []
                for lo, hi in BINS:
                    sel = r[(r[:, 0] >= lo) & (r[:, 0] < hi)]
                    cells.append(f"{len(sel)}, {sel[:, 1].mean():+.3f}, {sel[:, 2].mean():+.3f}" if len(sel) else "-")
                print(f"{Path(w).name[:15]:<16}{tol:<10}{k:>4g}  " + "".join(f"{c:>34}" for c in cells)
                      + f"{np.mean(chi2['fields']):>15.2f}{np.mean(chi2['noise']):>14.2f}", flush=True)


if __name__ == "__main__":
    main()

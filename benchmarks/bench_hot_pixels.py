"""How far real sources are from `io.noise.ISOLATED`: the largest (pixel - sky) / max(brightest neighbour - sky, sigma)
over FITS frames, as they are and 4x-binned with the `evaluate --task hst` protocol's noise.

    python benchmarks/bench_hot_pixels.py --data ../shared/data [--levels 0.5,2]

Every FITS frame under ``fits/`` (each chip a frame; sky: the median, sigma: `estimate_noise`), then each that can be
a truth (`training.hst.truth_frames`) binned 4x with noise at each level; `run` reads a pixel over `ISOLATED` as no
data, so a real source must stay far under it.  The last column is what `run` itself finds in the frame (its
`AE_NHOT`: the engine's sky and noise, after DQ, weights and its cosmic-ray search).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter

from astroenhance import EnhanceConfig, Enhancer
from astroenhance.errors import AstroEnhanceError
from astroenhance.io.noise import _RING, ISOLATED
from astroenhance.io.readers import FITS_SUFFIXES, open_frames
from astroenhance.pipeline.finish import estimate_noise
from astroenhance.training import hst


def ratio(img: np.ndarray) -> float:
    img = np.asarray(img, np.float64)
    finite = np.isfinite(img)
    if finite.sum() < 9:
        return float("nan")
    sky, sigma = float(np.median(img[finite])), estimate_noise(img)
    if not sigma > 0:
        return float("nan")
    near = maximum_filter(np.where(finite, img, -np.inf), footprint=_RING, mode="constant", cval=-np.inf)
    with np.errstate(invalid="ignore"):
        r = (img - sky) / np.maximum(near - sky, sigma)
    return float(np.nanmax(np.where(finite, r, np.nan)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--levels", default="0.5,2")
    args = ap.parse_args()
    levels = [float(k) for k in args.levels.split(",")]
    warnings.simplefilter("ignore")
    print(f"ISOLATED = {ISOLATED:g}")
    print(f"{'frame':<60} {'as is':>8} " + " ".join(f"{f'k={k:g}':>8}" for k in levels) + f" {'run':>5}")
    enhancer = Enhancer(EnhanceConfig(device="cpu", colorize=False))
    for path in sorted(p for p in (args.data / "fits").rglob("*") if p.name.lower().endswith(FITS_SUFFIXES)):
        try:
            with open_frames(path) as frames:
                plain = [(f.label, ratio(f.read_rows(0, f.shape[0]))) for f in frames if f.channels == 1]
            found = {}
            with open_frames(path, cosmic_rays=None) as frames:  # as `run` reads them
                for f in frames:
                    enhancer.fit_normalizer(f, enhancer.settings(True))
                    found[f.label] = f.hot_pixels
        except AstroEnhanceError:
            continue
        try:
            binned = {label: [ratio(hst.degrade(truth, k, hst.noise_draw(0, path.name, k), estimate_noise(truth))[0])
                              for k in levels] for label, truth, *_ in hst.truth_frames(path)}
        except AstroEnhanceError:
            binned = {}
        for label, r in plain:
            cells = " ".join(f"{v:8.1f}" for v in binned.get(label, [float("nan")] * len(levels)))
            print(f"{(path.name + (f'[{label}]' if label else ''))[:60]:<60} {r:8.1f} {cells} {found.get(label, -1):5d}")


if __name__ == "__main__":
    main()

"""How a frame's noise is estimated when the file gives none, and what it does to `run`'s output.

    python benchmarks/bench_noise_estimate.py [FITS ...]

For each frame (default: the shipped example, a drizzled Frontier Fields cut-out): the robust sigma from differences
of pixels L = 1, 2, 3, 4, 6 apart along rows (`finish.estimate_noise`; drizzled noise is shared between neighbours,
so L = 1 sees too little of it; `run` uses L = 2), and the share of pixels the display maps to black (< 0.01) in the
input and in `run`'s output (the default `hst` network, no colour) — black speckles where the sigma is too small.
Then a pure-sky check of `evaluate --task hst`'s truth-noise ceiling: on white noise (k = 0.5) the best possible
guess is a constant; its MSE, the ceiling's and `hst`'s should agree.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

from astroenhance import EnhanceConfig, Enhancer
from astroenhance.imaging.normalize import Normalizer
from astroenhance.io.readers import read_frame
from astroenhance.models.weights import default_weights_dir, find_weights, load_network
from astroenhance.pipeline.finish import estimate_noise
from astroenhance.training.hst import degrade, truth_noise_ceiling
from astroenhance.training.telescope import noise_space_sr

HERE = Path(__file__).resolve().parent
LAGS = (1, 2, 3, 4, 6)


def main() -> None:
    frames = sys.argv[1:] or [str(HERE.parent / "examples" / "abell_2744_group_of_galaxies_f105w.fits.gz")]
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False))
    print(f"{'frame':<40}" + "".join(f"{'L=' + str(lag):>10}" for lag in LAGS) + f"{'black in':>10}{'black out':>10}")
    for f in frames:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data, wcs, _ = read_frame(f)
        res = enh.enhance_array(data, wcs)
        black_in = np.nanmean(res.normalizer(data) < 0.01)
        black_out = np.nanmean(res.luminance < 0.01)
        print(f"{Path(f).name[:39]:<40}" + "".join(f"{estimate_noise(data, lag=lag):>10.4g}" for lag in LAGS)
              + f"{black_in:>10.2%}{black_out:>10.2%}")

    rng = np.random.default_rng(0)
    truth = 100 + rng.normal(0, 1, (256, 256))
    truth[0, 0] = 400  # the brightest pixel sets the display's top, as a frame's brightest source does
    lr, sigma = degrade(truth, 0.5, rng, 1.0)
    norm = Normalizer.fit(lr, interval="noise:3", sky=100.0, sigma=sigma, maximum=400.0)
    shown = norm(truth).astype(np.float64)
    info = find_weights(default_weights_dir(), "sr", "hst")
    net = load_network(default_weights_dir(), info)
    sr = norm(noise_space_sr(net, lr, 100.0, sigma)).astype(np.float64)
    mse = lambda a: float(np.mean((a - shown)[4:, 4:] ** 2))  # noqa: E731  (away from the bright pixel)
    print(f"pure sky, k = 0.5, display MSE: best constant {mse(np.full_like(shown, shown[4:, 4:].mean())):.3e}, truth-noise ceiling {10 ** (-truth_noise_ceiling(truth, 1.0, norm) / 10):.3e}, hst {mse(sr):.3e}")


if __name__ == "__main__":
    main()

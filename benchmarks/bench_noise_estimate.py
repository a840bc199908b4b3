"""How a frame's noise is estimated when the file gives none, and what it does to `run`'s output.

    python benchmarks/bench_noise_estimate.py [FITS ...] [--tilted FITS]

For each frame (default: the shipped example, a drizzled Frontier Fields cut-out): the robust sigma from differences
of pixels L = 1, 2, 3, 4, 6 apart along rows (`finish.estimate_noise`; drizzled noise is shared between neighbours,
so L = 1 sees too little of it; `run` uses L = 2), and the share of pixels the display maps to black (< 0.01) in the
input and in `run`'s output (the default `hst` network, no colour) — black speckles where the sigma is too small.
Then a pure-sky check of `evaluate --task hst`'s truth-noise ceiling: on white noise (k = 0.5) the best possible
guess is a constant; its MSE, the ceiling's and `hst`'s should agree.

``--tilted FITS``: a drizzled frame's empty corners.  The frame (its first image, its second as WHT where the file
holds one) turned by 30° as a drizzled footprint sits in its rectangle, the corners 0 in SCI and WHT; the noise `run`
records (`fit_normalizer`'s sigma) for the untilted frame, the tilted one with its WHT extension (zero weight: no
data) and the tilted SCI alone (the fill read as data, with the note `run` then prints).
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.ndimage import rotate

from astroenhance import EnhanceConfig, Enhancer
from astroenhance.imaging.normalize import Normalizer
from astroenhance.io.readers import open_frames, read_frame
from astroenhance.models.weights import default_weights_dir, find_weights, load_network
from astroenhance.pipeline.finish import estimate_noise
from astroenhance.training.hst import degrade, truth_noise_ceiling
from astroenhance.training.telescope import noise_space_sr

HERE = Path(__file__).resolve().parent
LAGS = (1, 2, 3, 4, 6)


def tilted(path: str, enh: Enhancer) -> None:
    with fits.open(path) as h:
        images = [np.asarray(x.data, np.float32) for x in h if x.data is not None and x.data.ndim == 2]
    sci = images[0]
    wht = images[1] if len(images) > 1 and images[1].shape == sci.shape else np.ones_like(sci)
    w = rotate(wht, 30, reshape=True, order=0, cval=0.0)
    s = np.where(w > 0, rotate(sci, 30, reshape=True, order=1, cval=0.0), 0.0).astype(np.float32)
    scratch = tempfile.TemporaryDirectory(prefix="ae-tilted-", ignore_cleanup_errors=True)  # (removed at the end)
    work = Path(scratch.name)
    cases = {"untilted": [fits.ImageHDU(sci, name="SCI")],
             "tilted, SCI + WHT": [fits.ImageHDU(s, name="SCI"), fits.ImageHDU(w, name="WHT")],
             "tilted, SCI alone": [fits.ImageHDU(s, name="SCI")]}
    print(f"{Path(path).name}: corners {np.mean(w <= 0):.0%} of the tilted frame")
    for i, (name, hdus) in enumerate(cases.items()):
        file = work / f"case{i}.fits"
        fits.HDUList([fits.PrimaryHDU(), *hdus]).writeto(file)
        with open_frames(file) as [src]:
            norm = enh.fit_normalizer(src, enh.config.for_input(True))
            fill = any("exactly 0" in n for n in src.notes)
        print(f"  {name:<20} sigma {norm.sky_noise:.4g} ({src.noise_from or 'estimated'}){'; fill note' if fill else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("frames", nargs="*", default=[str(HERE.parent / "examples" / "abell_2744_group_of_galaxies_f105w.fits.gz")])
    ap.add_argument("--tilted", default=None, help="a frame to turn into a drizzled footprint with empty corners")
    args = ap.parse_args()
    frames = args.frames
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
    if args.tilted:
        tilted(args.tilted, enh)


if __name__ == "__main__":
    main()

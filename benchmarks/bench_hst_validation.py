"""`evaluate --task hst` on the validation sets used to choose SR settings for real frames, per weights folder.

    python benchmarks/bench_hst_validation.py --data ../shared/data [--weights W1,W2,...] [--tolerances 2/2,2/3]
        [--workdir DIR]

Three sets, none used for training or test (docs/experiments.md):

* ``slacs2303``: the SLACS 2303 field at 0.05" (`fits/hst_real/slacs2303p1422_050mas_image.fits`);
* ``cosmos``: the first two COSMOS galaxy stamps of `fits/hst_real/paltas_cosmos_real_galaxy_images_23.5_n1subset.fits`
  (HDUs 0 and 1, written as frames of their own);
* ``galaxies``: three synthetic frames filled by large ellipticals (`elliptical`, `crowded`: Sérsic r_e 70 / 120 /
  45 px, n 4 / 3 / 5, peak S/N 3,000-8,000, small galaxies, Moffat PSF, white noise of sigma 1; seeded, so always
  the same), the case where the frame's median sits on a galaxy's halo.

For each weights folder (``default``: the shipped ones) and each ``--tolerances`` pair FLUX/DISPLAY (`run
--flux-tolerance` / `--display-tolerance`; ``default``: the network's) it prints run minus the best classical
baseline (dB) and `run`'s aperture-flux error on FLUX (bicubic's beside) at k = 0.5 and 2, averaged over each set.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.signal import fftconvolve

from astroenhance.config import EnhanceConfig
from astroenhance.training.hst import evaluate_hst, list_truths
from astroenhance.training.telescope import moffat_psf, sersic


def elliptical(seed: int = 42) -> np.ndarray:
    """A 400² frame: an n = 4 elliptical (r_e 70 px) and a small disk, sky 10, white noise of sigma 1."""
    rng = np.random.default_rng(seed)
    n = 400
    img = 3e6 * sersic((n, n), 210.3, 195.7, 70, 4.0, 0.8, 0.6) + 4e5 * sersic((n, n), 90, 300, 12, 1.0, 0.5, 1.2)
    img = fftconvolve(img, moffat_psf(2.5, 3.0), mode="same") + 10.0
    return img + rng.normal(0, 1.0, img.shape)


def crowded(seed: int, sersic_n: float, r_e: float, flux: float, q: float, fwhm: float) -> np.ndarray:
    """A 360² frame: one large elliptical near the centre and six small galaxies, sky 5, white noise of sigma 1."""
    rng = np.random.default_rng(seed)
    n = 360
    img = flux * sersic((n, n), 170.4 + rng.uniform(-20, 20), 190.2, r_e, sersic_n, q, rng.uniform(0, 3))
    for _ in range(6):
        f = 10 ** rng.uniform(3, 4.5)
        img += f * sersic((n, n), *rng.uniform(20, 340, 2), 10 ** rng.uniform(0.3, 1.0), 1.0, rng.uniform(0.4, 1),
                          rng.uniform(0, 3))
    img = fftconvolve(img, moffat_psf(fwhm, 3.0), mode="same") + 5.0
    return img + rng.normal(0, 1.0, img.shape)


GALAXIES = {"ell": lambda: elliptical(42), "ell7": lambda: crowded(7, 3.0, 120, 2e7, 0.9, 3.0),
            "ell11": lambda: crowded(11, 5.0, 45, 8e5, 0.6, 2.2)}


def write_sets(data: Path, work: Path) -> dict[str, Path]:
    sets = {name: work / name for name in ("slacs2303", "cosmos", "galaxies")}
    for d in sets.values():
        d.mkdir(parents=True, exist_ok=True)
    real = data / "fits" / "hst_real"
    (sets["slacs2303"] / "slacs2303.fits").write_bytes((real / "slacs2303p1422_050mas_image.fits").read_bytes())
    with fits.open(real / "paltas_cosmos_real_galaxy_images_23.5_n1subset.fits") as h:
        for i in (0, 1):
            fits.PrimaryHDU(h[i].data.astype(np.float32)).writeto(sets["cosmos"] / f"paltas{i}.fits", overwrite=True)
    for name, make in GALAXIES.items():
        fits.PrimaryHDU(make().astype(np.float32)).writeto(sets["galaxies"] / f"{name}.fits", overwrite=True)
    return sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="the shared data folder (holds fits/hst_real)")
    ap.add_argument("--weights", default="default", help="comma-separated weights folders; default = shipped")
    ap.add_argument("--tolerances", default="default",
                    help="comma-separated FLUX/DISPLAY tolerance pairs in input sigmas, e.g. 2/2,2/3; default = the network's")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    sets = write_sets(args.data, args.workdir or Path(tempfile.mkdtemp(prefix="ae-hstval-")))
    print(f"{'weights':<24}{'tol F/D':<9}{'set':<11}{'k=0.5 run-best':>15}{'k=2 run-best':>13}"
          f"{'apflux k=2 (bicubic)':>22}")
    for w in args.weights.split(","):
        for tol in args.tolerances.split(","):
            flux, display = (None, None) if tol == "default" else (float(v) for v in tol.split("/"))
            cfg = EnhanceConfig(device="cpu", weights=None if w == "default" else w, flux_tolerance=flux,
                                display_tolerance=display)
            for name, folder in sets.items():
                s = evaluate_hst(list_truths(folder), cfg, noise_frames=0)["summary"]
                lo, hi = s["k=0.5"], s["k=2"]
                print(f"{Path(w).name[:23]:<24}{tol:<9}{name:<11}{lo['run_minus_best']:+15.2f}"
                      f"{hi['run_minus_best']:+13.2f}{hi['run_aperture_flux_err']:>12.3f} "
                      f"({hi['bicubic_aperture_flux_err']:.3f})", flush=True)


if __name__ == "__main__":
    main()

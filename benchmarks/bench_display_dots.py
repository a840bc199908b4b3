"""How many dots sharper than the PSF `run`'s display draws, per frame and `--psf-fwhm` setting.

    python benchmarks/bench_display_dots.py [--psf-fwhm default,0,stars,2.2] [FRAME ...]

The telescope network (`hst`) learned from undersampled frames; on a frame that samples its PSF well it draws noise
and texture as compact dots.  Each frame is enhanced as `run --no-colorize --format fits` does (the shipped
weights) with each ``--psf-fwhm`` setting (``default``: none given, the HST header's or none), and its display
(RED) is searched for local peaks 0.03 above their 9x9 median, the brightest within 5 output pixels (dots of a
few output pixels).  Columns: the FWHM `run` used and where from (AE_PSFFW, AE_PSFSR), the peaks, and those where
the input is under 5 sigma (the brightest input pixel within one of the peak; sigma from the frame's MAD): peaks
there are noise drawn as dots, peaks over sources may be real.  Without frames: the shipped example
(examples/abell_2744_group_of_galaxies_f105w.fits.gz).  docs/experiments.md (thirty-third and thirty-fourth
sessions) has the example's and the CFHTLS frames' (`../shared/data/fits/multiband_cfhtls/CFHTLS-test_{g,r,i}.fits`).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage as ndi

from astroenhance.config import EnhanceConfig
from astroenhance.pipeline.engine import Enhancer

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "abell_2744_group_of_galaxies_f105w.fits.gz"


def display_dots(display: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the display's local peaks 0.03 above their 9x9 median (the brightest within 5 pixels)."""
    hp = display - ndi.median_filter(display, 9)
    return np.nonzero((hp == ndi.maximum_filter(hp, 5)) & (hp > 0.03))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("frames", nargs="*", type=Path, default=[EXAMPLE])
    ap.add_argument("--psf-fwhm", default="default,0", help="comma-separated settings: default, stars or pixels")
    args = ap.parse_args()
    print(f"{'frame':<44}{'--psf-fwhm':>11}{'FWHM px':>9}  {'from':<44}{'peaks':>6}{'under 5σ':>9}")
    for path in args.frames:
        x = np.asarray(fits.getdata(path), np.float64)
        sky = np.nanmedian(x)
        snr = ndi.maximum_filter((x - sky) / (1.4826 * np.nanmedian(np.abs(x - sky))), 3)
        for setting in args.psf_fwhm.split(","):
            fwhm = None if setting == "default" else setting if setting == "stars" else float(setting)
            cfg = EnhanceConfig(device="cpu", colorize=False, formats=("fits",), psf_fwhm=fwhm)
            with tempfile.TemporaryDirectory() as out:
                [res] = Enhancer(cfg).enhance_file(path, out)
                with fits.open(res.outputs[0]) as h:
                    told = h[0].header["AE_PSFFW"], h[0].header["AE_PSFSR"]
                    ys, xs = display_dots(h["RED"].data.astype(np.float64))
            faint = int((snr[ys // 4, xs // 4] < 5).sum())
            print(f"{path.name[:43]:<44}{setting:>11}{told[0]:>9.2f}  {told[1][:43]:<44}{ys.size:>6}{faint:>9}")


if __name__ == "__main__":
    main()

"""How wide `run --psf-fwhm stars` reads a frame's PSF, against the width it is (`imaging.psf.star_widths`).

    python benchmarks/bench_star_psf.py [--data ../shared/data] [--truths FOLDER] [FRAME ...]

Synthetic frames whose PSF is known: the validation sets' star fields (`bench_hst_validation.starfield`'s frames,
seeds 23 and 29: Moffat index 2.5, FWHM 1.6 input pixels after 4x binning, noise at k = 0.5 and 2) and the
``undersampled`` fields at their own pixels (FWHM 1.04 pixels: 1.3 x 0.8); then any FITS frames given (their first
image; sky the median, sigma from neighbouring-pixel differences, `finish.estimate_noise`), with the lower bound an
HST header gives beside (`io.noise.frame_psf_fwhm`).  With ``--data``: also the validation sets' simulated fields
100-107 binned 4x (`training.fields.numbered_field`, PSF scale 1 and 4: undersampled and well sampled, their known
FWHM) and `cosmos_fields` (real galaxies, no stars: the narrowest sources are galaxies' cores, the PSF ~0.7 px), at
k = 0.5 and 2.  With ``--truths``: each deep frame of the folder as `evaluate --task hst` makes its inputs (binned
4x, the protocol's first noise draw at k = 0.5 and 2 of the truth's pixel rms; the noise told as the protocol's ERR
tells `run`) — what the default reads on the protocol's frames, which carry no PHOTPLAM.  Columns: the FWHM read (the median of the 3 narrowest compact sources), its ratio to the known one,
the spread of the 3 narrowest (3rd / 1st: stars of one PSF agree, galaxies' cores need not), the sources fitted and
the seconds the measuring took.  The frames
docs/experiments.md reports (thirty-fifth session): ``../shared/data/fits/multiband_cfhtls/CFHTLS-test_{g,r,i}.fits
../shared/data/fits/hst_real/autogalaxy_ngc2274_wfc3ir_600px_data.fits.gz examples/*.fits.gz``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hst_validation import (  # noqa: E402
    COSMOS_FIELD_SEEDS,
    STARFIELD_FWHM,
    STARFIELD_SEEDS,
    galaxy_field,
    undersampled,
)

from astroenhance.imaging.psf import fwhm_from_stars, star_widths  # noqa: E402
from astroenhance.io.noise import frame_psf_fwhm  # noqa: E402
from astroenhance.io.readers import open_frames  # noqa: E402
from astroenhance.pipeline.finish import estimate_noise  # noqa: E402
from astroenhance.training.fields import numbered_field  # noqa: E402
from astroenhance.training.hst import (  # noqa: E402
    SCALE,
    TruthSources,
    degrade,
    list_truths,
    noise_draw,
    truth_frames,
)

#: the undersampled fields' PSF FWHM in their own pixels (`undersampled`: a Moffat of 0.8 x 1.3 pixels)
UNDERSAMPLED_FWHM = 1.3 * 0.8


def row(name: str, data: np.ndarray, known: float | None, note: str = "", sigma: float | None = None) -> None:
    t = time.perf_counter()
    widths = star_widths(data, float(np.nanmedian(data)), estimate_noise(data) if sigma is None else sigma)[1]
    fwhm, _ = fwhm_from_stars(widths)
    seconds = time.perf_counter() - t
    ratio = f"{fwhm / known:.2f}" if known and fwhm else "-"
    narrowest = np.sort(widths)[:3]
    spread = f"{narrowest[-1] / narrowest[0]:.2f}" if narrowest.size == 3 else "-"
    print(f"{name:<40}{fwhm:>8.2f}{(f'{known:.2f}' if known else '-'):>8}{ratio:>7}{spread:>8}{widths.size:>9}"
          f"{seconds:>9.2f}  {note}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("frames", nargs="*", type=Path)
    ap.add_argument("--data", type=Path, default=None, help="the shared data folder: also the validation fields")
    ap.add_argument("--truths", type=Path, default=None,
                    help="a folder of deep frames: also their protocol inputs (evaluate --task hst)")
    args = ap.parse_args()
    print(f"{'frame':<40}{'stars':>8}{'known':>8}{'ratio':>7}{'spread':>8}{'fitted':>9}{'seconds':>9}  header")
    for name, seed in STARFIELD_SEEDS.items():
        truth = undersampled(seed, False, 8.0)
        for k in (0.5, 2.0):
            row(f"starfield {name} k={k:g}", degrade(truth, k, noise_draw(0, name, k))[0], STARFIELD_FWHM)
    for seed, disk in ((3, False), (5, True)):
        truth = undersampled(seed, disk)
        row(f"undersampled {'disk' if disk else 'field'} {seed}", truth, UNDERSAMPLED_FWHM)
    if args.data is not None:
        for scale in (1.0, 4.0):
            for i in range(100, 108):
                truth, fwhm = numbered_field(i, psf_scale=scale)
                for k in (0.5, 2.0):
                    name = f"simulated{i:02d}" + (f"-psf{scale:g}x" if scale != 1 else "")
                    row(f"{name} k={k:g}", degrade(truth, k, noise_draw(0, name, k))[0], fwhm / SCALE)
        for seed in COSMOS_FIELD_SEEDS:
            truth = galaxy_field(args.data / "fits" / "hst_real", seed)
            for k in (0.5, 2.0):
                row(f"cosmos_field{seed} k={k:g}", degrade(truth, k, noise_draw(0, f"cosmos_field{seed}", k))[0], None)
    for path in list_truths(args.truths) if args.truths is not None else []:
        for chip, truth, *_ in truth_frames(path):
            name = path.name.split(".")[0] + (f"[{chip}]" if chip else "")  # (as `evaluate_hst` names it)
            rms = TruthSources.find(truth, estimate_noise(truth)).sigma
            for k in (0.5, 2.0):
                lr, sigma = degrade(truth, k, noise_draw(0, name, k), rms)
                row(f"{name[:32]} k={k:g}", lr, None, sigma=sigma)
    for path in args.frames:
        with open_frames(path) as frames:
            src = frames[0]
            header = frame_psf_fwhm(src)
            data = np.asarray(src.read_rows(0, src.shape[0]), np.float64)
        if data.ndim != 2:
            data = data.mean(axis=-1)
        row(path.name[:39], data, None, f"{header[0]:.2f} ({header[1]})" if header[0] else header[1])


if __name__ == "__main__":
    main()

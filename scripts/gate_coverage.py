"""How much of a frame's output carries network detail once the noise gate has spoken (`run`'s default).

    python scripts/gate_coverage.py FRAME [FRAME ...] [--hdu H]

For each frame (each chip of a multi-chip file): the noise level `run` would use and the share of output pixels on
which the noise gate keeps the SR network's detail -- `Enhancer.sr_detail_fraction`, which `run` records in every
output (FITS keyword ``AE_SRDET``, ``sr_detail_fraction`` in the provenance).  A frame with 0 gets bicubic
luminance (flux-projected) from `run`; `--no-noise-gate` shows the network's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from astroenhance.config import EnhanceConfig  # noqa: E402
from astroenhance.io.readers import is_fits, open_frames  # noqa: E402
from astroenhance.pipeline import Enhancer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("frames", nargs="+")
    ap.add_argument("--hdu", default=None, help="which image HDU or chip (as run --hdu)")
    args = ap.parse_args()
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, hdu=args.hdu))
    for path in args.frames:
        cfg = enh.config.for_input(is_fits(Path(path)))
        with open_frames(path, cfg.hdu) as chips:  # every chip of a multi-chip file, as run does
            for chip in chips:
                norm = enh.fit_normalizer(chip, cfg)
                print(f"{chip.name}: {chip.shape[1]}x{chip.shape[0]} px, noise {norm.noise:.4g}; network detail kept "
                      f"on {enh.sr_detail_fraction(chip, cfg, norm):.1%} of output pixels")


if __name__ == "__main__":
    main()

"""How much of a frame's output carries network detail once the noise gate has spoken (`run`'s default).

    python scripts/gate_coverage.py FRAME [FRAME ...] [--hdu H] [--size N]

For each frame: the display normalization and noise level `run` would use, then the noise gate's coefficient
(0: bicubic only, 1: the network's full detail) on every output pixel, computed by the same `noise_gate` function
with a unit "detail" (on the whole frame at once; run gates tile by tile, so tile borders may differ by a
pixel).  Prints the fraction of output pixels where the gate is open at all and its mean.  A frame
whose coverage is 0 gets bicubic luminance (flux-projected) from `run`; `--no-noise-gate` shows the network's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from astroenhance.config import EnhanceConfig  # noqa: E402
from astroenhance.io.readers import open_frames  # noqa: E402
from astroenhance.models.srresnet import noise_gate  # noqa: E402
from astroenhance.pipeline import Enhancer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("frames", nargs="+")
    ap.add_argument("--hdu", default=None, help="which image HDU or chip (as run --hdu)")
    ap.add_argument("--size", type=int, default=0, help="use only the first N x N pixels (0: the whole frame)")
    args = ap.parse_args()
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False))
    s = enh.scale
    for path in args.frames:
        with open_frames(path, args.hdu) as chips:  # every chip of a multi-chip file, as run does
            for chip in chips:
                frame = chip.read_rows(0, chip.shape[0])
                if args.size:
                    frame = frame[: args.size, : args.size]
                norm = enh.enhance_array(frame, chip.wcs).normalizer  # the normalization and noise run uses
                lr = torch.from_numpy(np.nan_to_num(norm(frame)).astype(np.float32))[None, None]
                base = F.interpolate(lr, scale_factor=s, mode="bicubic", align_corners=False)
                gate = (noise_gate(base + 1, lr, s, norm.noise) - base)[0, 0].numpy()
                print(f"{chip.name}: {frame.shape[1]}x{frame.shape[0]} px, noise {norm.noise:.4g}; network detail "
                      f"kept on {(gate > 0).mean():.1%} of output pixels (mean gate {gate.mean():.3f})")


if __name__ == "__main__":
    main()

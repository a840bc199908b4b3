"""Where the remaining errors of the shipped networks live, by spatial frequency (issue 3's two missed targets).

    python scripts/error_bands.py --data ../shared/data/eval [--sr-model psnr] [--limit N]

Same protocol as `astroenhance evaluate` (float64; SR inputs are 4x area averages; bare networks, no noise gate).
For each held-out image:

- SR: RGB PSNR of the shipped SR luminance with `evaluate`'s chroma (bicubic, block means kept) and with the
  *true* chroma, and the chroma error's power split into radial frequency bands of the output grid
  (cycles per output pixel): below 1/8 (what the 4x-smaller input can carry), 1/8-1/4 (finer than the input,
  coarser than a 4:2:0 JPEG's chroma grid) and above 1/4.
- Colorizer: chroma RMS of the shipped colorizer and of no colour, and its error's power below 0.01 cycles per
  pixel (scales above 100 px: the image's overall palette), 0.01-0.05, 0.05-0.125 and above; and the RMS
  left if each image's mean chroma error were removed (an oracle that knew every image's average colour).

The totals line pools all pixels, as `evaluate --task colorize` does.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from astroenhance.imaging.color import rgb_to_ycbcr, ycbcr_to_rgb  # noqa: E402
from astroenhance.models.weights import default_weights_dir, find_weights, load_network  # noqa: E402
from astroenhance.training.evaluate import (_chroma, _upscale_chroma, _upscale_lum, area_downsample,  # noqa: E402
                                            load_images, psnr)


def band_power(err: np.ndarray, edges: list[float]) -> np.ndarray:
    """Summed squared error ``(h, w, c)`` in radial frequency bands ``[0, e1), [e1, e2), ..., [ek, inf)``
    (cycles per pixel); the bands add up to ``(err**2).sum()`` (Parseval)."""
    spec = (np.abs(np.fft.fft2(err, axes=(0, 1))) ** 2).sum(-1) / (err.shape[0] * err.shape[1])
    r = np.hypot(np.fft.fftfreq(err.shape[0])[:, None], np.fft.fftfreq(err.shape[1])[None])
    bins = np.digitize(r, edges)
    return np.bincount(bins.ravel(), spec.ravel(), minlength=len(edges) + 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--sr-model", default="psnr", help="psnr, psnr-large or gan (the manifest's mode)")
    ap.add_argument("--limit", type=int)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    wdir = default_weights_dir()
    sr = load_network(wdir, find_weights(wdir, "sr", args.sr_model))
    colorizer = load_network(wdir, find_weights(wdir, "colorize", "default"))
    images = load_images(args.data, args.limit)

    sr_edges, col_edges = [1 / 8, 1 / 4], [0.01, 0.05, 1 / 8]
    print(f"SR ({args.sr_model}, bare): RGB PSNR with evaluate's chroma / with the true chroma; chroma error share "
          "by band (cycles per output pixel)")
    print(f"{'image':<40}{'PSNR':>8}{'true':>8}{'gap':>7}{'<1/8':>7}{'-1/4':>7}{'>1/4':>7}")
    gaps = []
    for name, hr in images:
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
        y_lr, c_lr = rgb_to_ycbcr(area_downsample(hr, 4))
        c_hr = rgb_to_ycbcr(hr)[1]
        y_sr = _upscale_lum(sr, y_lr, 4, gate=False)
        c_sr = _upscale_chroma(c_lr, 4)
        p, p_true = (psnr(np.clip(ycbcr_to_rgb(y_sr, c), 0, 1), hr) for c in (c_sr, c_hr))
        share = band_power(c_sr - c_hr, sr_edges)
        share /= share.sum()
        gaps.append((p, p_true))
        print(f"{name[:39]:<40}{p:8.2f}{p_true:8.2f}{p_true - p:7.2f}" + "".join(f"{s:7.2f}" for s in share))
    p, p_true = np.mean(gaps, 0)
    print(f"{'mean':<40}{p:8.3f}{p_true:8.3f}{p_true - p:7.3f}")

    print("\nColorizer: chroma RMS, no colour, the RMS left without each image's mean error; error share by band "
          "(cycles per pixel)")
    print(f"{'image':<40}{'RMS':>8}{'grey':>8}{'-mean':>8}{'<.01':>7}{'-.05':>7}{'-.125':>7}{'>.125':>7}")
    tot = np.zeros(4)
    sq = sq_grey = sq_demeaned = 0.0
    n = 0
    for name, rgb in images:
        y, c = rgb_to_ycbcr(rgb)
        err = _chroma(colorizer, y) - c
        bands = band_power(err, col_edges)
        demeaned = err - err.mean((0, 1))
        tot += bands
        sq, sq_grey, sq_demeaned, n = sq + (err**2).sum(), sq_grey + (c**2).sum(), sq_demeaned + (demeaned**2).sum(), n + err.size
        print(f"{name[:39]:<40}{math.sqrt((err**2).mean()):8.4f}{math.sqrt((c**2).mean()):8.4f}"
              f"{math.sqrt((demeaned**2).mean()):8.4f}" + "".join(f"{b / bands.sum():7.2f}" for b in bands))
    print(f"{'pooled':<40}{math.sqrt(sq / n):8.4f}{math.sqrt(sq_grey / n):8.4f}{math.sqrt(sq_demeaned / n):8.4f}"
          + "".join(f"{b / tot.sum():7.2f}" for b in tot))


if __name__ == "__main__":
    main()

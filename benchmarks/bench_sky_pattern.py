"""What a telescope SR network draws from pure sky noise: the 4x4 pattern `evaluate --task hst`'s sky lattice sees.

    python benchmarks/bench_sky_pattern.py [--weights default,W...] [--mode hst|hst-gan] [--size 128] [--seeds 3]

Each network (``default``: the shipped ``hst``; or a weights folder holding one) gets white Gaussian noise of sigma 1
in its noise-normalised space (a flat sky, ``--size``² input pixels) and its output is split into the means of its
4x4 blocks and what varies within them. Printed per network (mean over ``--seeds`` noise frames): the output's rms,
the block means' rms, the within-block rms, the slope of the block means on the block's own input pixel (a network
trained against noisy truths keeps that share of each input pixel's noise as a block), and the mean |step| across
block edges over the mean |step| inside blocks (1: no lattice).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from astroenhance.models.weights import default_weights_dir, find_weights, load_network
from astroenhance.training.telescope import SCALE, noise_space_sr


def pattern(model: torch.nn.Module, size: int, seed: int) -> dict[str, float]:
    lr = np.random.default_rng(seed).normal(0.0, 1.0, (size, size))
    out = noise_space_sr(model, lr, 0.0, 1.0)
    means = out.reshape(size, SCALE, size, SCALE).mean(axis=(1, 3))
    within = out - np.repeat(np.repeat(means, SCALE, 0), SCALE, 1)
    steps = np.abs(np.diff(out, axis=1))
    phases = [steps[:, k::SCALE].mean() for k in range(SCALE)]
    return {"rms": out.std(), "block rms": means.std(), "within rms": within.std(),
            "slope": float(np.polyfit(lr.ravel(), means.ravel(), 1)[0]),
            "edge/inner": phases[SCALE - 1] / np.mean(phases[:SCALE - 1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="default", help="comma-separated: default, or weights folders")
    ap.add_argument("--mode", default="hst", help="which network of each folder: hst (the FITS default) or hst-gan")
    ap.add_argument("--size", type=int, default=128, help="input side in pixels")
    ap.add_argument("--seeds", type=int, default=3, help="noise frames per network")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{'weights':<28}{'rms':>8}{'block rms':>11}{'within rms':>12}{'slope':>8}{'edge/inner':>12}")
    for w in args.weights.split(","):
        folder = default_weights_dir() if w == "default" else w
        model = load_network(folder, find_weights(folder, "sr", args.mode)).eval()
        rows = [pattern(model, args.size, seed) for seed in range(args.seeds)]
        m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        print(f"{w[-27:]:<28}{m['rms']:>8.4f}{m['block rms']:>11.4f}{m['within rms']:>12.4f}{m['slope']:>8.3f}"
              f"{m['edge/inner']:>12.2f}")


if __name__ == "__main__":
    main()

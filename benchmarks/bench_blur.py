"""Speed of the Gaussian blur of `run`'s PSF smoothing (and FLUX's local means), `finish.gaussian_blur`, against
the single-channel ``conv2d`` it replaced, in the same run (ratio), and how far their numbers differ.

    python benchmarks/bench_blur.py [--width 2.07] [--repeats 5] [--threads 2] [--cases 300]

The width is in output pixels (2.07: the ACS/HRC frame's header PSF, 2.18 input px, at 0.6x its sigma, x4).  The
shapes are a tile of `run`'s noise-space output (2 planes of 960²: the network's own and the one it smooths) and
long thin strips.  Then ``--cases`` random shapes, widths and precisions: how many come out bitwise equal, and
the largest difference relative to the largest value.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from bench_speed import best_of  # (a sibling script: its folder is sys.path[0] when run as a script)

from astroenhance.pipeline.finish import gaussian_blur, gaussian_radius


def conv2d_blur(x: torch.Tensor, width: float) -> torch.Tensor:
    """The blur as it was before (a single-channel ``conv2d`` per pass): the baseline."""
    radius = gaussian_radius(width)
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device) / width) ** 2)
    k = (k / k.sum()).view(1, 1, 1, -1)
    n, c, h, w = x.shape
    y = x.reshape(n * c, 1, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), k)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), k.transpose(2, 3))
    return y.reshape(n, c, h, w)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=float, default=2.07, help="Gaussian sigma in pixels")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--cases", type=int, default=300, help="random cases compared number for number")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, width {args.width:g} px")
    print(f"{'shape':<22}{'conv2d ms':>11}{'shifted sums ms':>17}{'speed-up':>10}")
    for shape in ((1, 2, 960, 960), (1, 1, 4096, 256), (1, 2, 256, 4096)):
        x = torch.randn(shape)
        times = []
        for blur in (conv2d_blur, gaussian_blur):
            blur(x, args.width)  # warm-up
            times.append(best_of(lambda b=blur, x=x: b(x, args.width), args.repeats))
        print(f"{'x'.join(map(str, shape)):<22}{times[0] * 1e3:11.2f}{times[1] * 1e3:17.2f}{times[0] / times[1]:9.1f}x")
    rng = np.random.default_rng(0)
    same, worst = 0, 0.0
    for i in range(args.cases):
        dtype = torch.float32 if i % 2 else torch.float64
        shape = tuple(int(v) for v in (rng.integers(1, 3), rng.integers(1, 3), rng.integers(1, 300), rng.integers(1, 300)))
        x = torch.from_numpy(rng.normal(size=shape) * 10 ** rng.uniform(-3, 3)).to(dtype)
        width = float(rng.uniform(0.2, 6))
        a, b = conv2d_blur(x, width), gaussian_blur(x, width)
        same += bool(torch.equal(a, b))
        worst = max(worst, float((a - b).abs().max() / a.abs().max()))
    print(f"{args.cases} random cases: {same} bitwise equal; largest difference {worst:.2g} of the largest value")


if __name__ == "__main__":
    main()

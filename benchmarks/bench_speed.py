"""Throughput of `astroenhance run`'s networks against a Real-ESRGAN-style RRDBNet x4, same input, same run.

    python benchmarks/bench_speed.py [--size 128] [--threads 2]

Prints output megapixels per second for: the shipped pipeline (colorize + 4x SR, fp32 and bf16, BN folded,
channels_last), the other shipped SR models (``--sr-models``, fp32) and RRDBNet x4 (23 RRDB blocks, 64 features,
32 growth, random weights), and their ratio; then the registry's SR architectures as bare networks on one tile
(``--archs``), each's cost relative to the first.
The RRDBNet is written here (no download); only its cost matters, not its output.
"""

from __future__ import annotations

import astroenhance  # noqa: F401  (first: sets GOMP_SPINCOUNT before torch loads OpenMP, as `run` does)
import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn


class RDB(nn.Module):
    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, padding=1) for i in range(5)])
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for i, conv in enumerate(self.convs):
            y = conv(torch.cat(feats, 1))
            if i < 4:
                feats.append(self.act(y))
        return x + 0.2 * y


class RRDBNet(nn.Module):
    """ESRGAN's generator: 23 RRDB blocks (3 RDBs each), 64 features, nearest x2 upsampling twice."""

    def __init__(self, in_ch: int = 3, nf: int = 64, nb: int = 23) -> None:
        super().__init__()
        self.head = nn.Conv2d(in_ch, nf, 3, padding=1)
        self.body = nn.Sequential(*[nn.Sequential(RDB(nf), RDB(nf), RDB(nf)) for _ in range(nb)])
        self.body_conv = nn.Conv2d(nf, nf, 3, padding=1)
        self.up1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.up2 = nn.Conv2d(nf, nf, 3, padding=1)
        self.hr = nn.Conv2d(nf, nf, 3, padding=1)
        self.last = nn.Conv2d(nf, in_ch, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        f = f + self.body_conv(self.body(f))
        f = self.act(self.up1(nn.functional.interpolate(f, scale_factor=2, mode="nearest")))
        f = self.act(self.up2(nn.functional.interpolate(f, scale_factor=2, mode="nearest")))
        return self.last(self.act(self.hr(f)))


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="input side in pixels (one tile by default)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--sr-models", default="psnr-large,gan",
                    help="other shipped SR models to time too (fp32, SR only), comma-separated ('' for none)")
    ap.add_argument("--frame", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "fits" / "hst" / "j8bt06nyq_flt.fits"),
                    help="also time a whole real frame (default: the 1024x1024 ACS/HRC frame; '' to skip)")
    ap.add_argument("--archs", default="srresnet-8x32,srresnet-12x48,srresnet-16x64",
                    help="registry SR architectures to time as bare networks on one tile (random weights, BN folded, "
                         "fp32): their cost relative to the first ('' to skip)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from astroenhance.config import EnhanceConfig
    from astroenhance.pipeline import Enhancer

    rng = np.random.default_rng(0)
    data = rng.gamma(2.0, 10.0, (args.size, args.size)).astype(np.float32)
    out_mp = (args.size * 4) ** 2 / 1e6
    rows = []
    for precision in ("fp32", "bf16"):
        enh = Enhancer(EnhanceConfig(device="cpu", precision=precision, formats=("fits",)))
        enh.enhance_array(data[:32, :32])  # warm-up
        t = best_of(lambda e=enh: e.enhance_array(data), args.repeats)
        rows.append((f"astroenhance run ({enh.sr_info.architecture}+colorizer, {precision})", t))
        enh_sr = Enhancer(EnhanceConfig(device="cpu", precision=precision, colorize=False))
        t = best_of(lambda e=enh_sr: e.enhance_array(data), args.repeats)
        rows.append((f"astroenhance run --no-colorize ({enh_sr.sr_info.architecture}, {precision})", t))
    for model in filter(None, args.sr_models.split(",")):
        enh_sr = Enhancer(EnhanceConfig(device="cpu", sr_model=model, colorize=False))
        enh_sr.enhance_array(data[:32, :32])
        t = best_of(lambda e=enh_sr: e.enhance_array(data), args.repeats)
        rows.append((f"run --no-colorize --sr-model {model} ({enh_sr.sr_info.architecture}, fp32)", t))
    if args.frame and Path(args.frame).exists():
        from astroenhance.io.readers import read_frame

        frame, wcs, _ = read_frame(args.frame)
        for colorize in (True, False):
            enh = Enhancer(EnhanceConfig(device="cpu", colorize=colorize))
            enh.enhance_array(frame[:32, :32], wcs)
            t = best_of(lambda e=enh: e.enhance_array(frame, wcs), 1)
            label = "+colorizer" if colorize else " SR only"
            frame_mp = frame.shape[0] * frame.shape[1] * 16 / 1e6
            print(f"whole frame {Path(args.frame).name} {frame.shape[1]}x{frame.shape[0]}{label}: {t:.1f} s, "
                  f"{frame_mp / t:.3f} output MP/s (fp32, default tile/overlap)")
        from astroenhance.io.readers import from_array  # the provenance's noise-gate coverage pass, alone

        src = from_array(frame, wcs, origin="lower", dtype_range=None)
        cfg = enh.config.for_input(True)
        norm = enh.fit_normalizer(src, cfg)
        t_cov = best_of(lambda: enh.sr_detail_fraction(src, cfg, norm), 2)
        print(f"  of which the noise gate's coverage (sr_detail_fraction, AE_SRDET): {t_cov:.2f} s "
              f"({t_cov / t:.1%} of the SR-only run)")
    archs = [a for a in args.archs.split(",") if a]
    if archs:
        from astroenhance.models.registry import build_model
        from astroenhance.models.weights import fold_batchnorm

        tile = torch.rand((1, 1, 224, 224)).contiguous(memory_format=torch.channels_last)
        cost = {}
        for a in archs:
            net = fold_batchnorm(build_model(a).eval()).to(memory_format=torch.channels_last)
            with torch.inference_mode():
                net(tile)
                cost[a] = best_of(lambda n=net: n(tile), 3)
        print("bare SR networks, one 224² tile, fp32: " + ", ".join(
            f"{a} {t:.3f} s ({t / cost[archs[0]]:.2f}x)" for a, t in cost.items()))
    rrdb = RRDBNet().eval().to(memory_format=torch.channels_last)
    x = torch.from_numpy(rng.random((1, 3, args.size, args.size), dtype=np.float32)).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        rrdb(x[..., :16, :16])
        t = best_of(lambda: rrdb(x), 1)
    rows.append(("RRDBNet x4 (23 blocks, 64 features, fp32)", t))
    base = rows[-1][1]
    print(f"input {args.size}x{args.size}, output {args.size * 4}x{args.size * 4} ({out_mp:.2f} MP), "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'method':<66} {'seconds':>8} {'out MP/s':>9} {'x RRDBNet':>10}")
    for name, t in rows:
        print(f"{name:<66} {t:8.2f} {out_mp / t:9.3f} {base / t:10.1f}")


if __name__ == "__main__":
    main()

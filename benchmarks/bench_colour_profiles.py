"""Converting a picture to sRGB from its ICC profile: `io.icc` (float64, any integer depth) against LittleCMS
(Pillow's `ImageCms`, 8-bit only), in one run.

    python benchmarks/bench_colour_profiles.py [--mpx 4] [--repeat 3] [--picture PNG]

A random picture of ``--mpx`` megapixels in the profile of ``--picture`` (default the Stellarium texture in
tests/data, L*-RGB) is converted by: LittleCMS as Pillow applies it by default (its optimised 8-bit pipeline; the
baseline), LittleCMS unoptimised (exact), and `io.icc.convert_to_srgb` on the 8-bit picture and on the same picture
in 16 bits. Printed per method: the best of ``--repeat`` wall times, seconds per megapixel, and the largest
difference from unoptimised LittleCMS in 8-bit steps (16-bit values divided by 257).
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

from astroenhance.io.icc import convert_to_srgb, matrix_shaper

REPO = Path(__file__).resolve().parents[1]


def best(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mpx", type=float, default=4.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--picture", type=Path, default=REPO / "tests/data/color/stellarium_n3918.png")
    args = ap.parse_args()
    with Image.open(args.picture) as im:
        icc = im.info["icc_profile"]
    side = int(round((args.mpx * 1e6) ** 0.5))
    rgb8 = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    rgb16 = rgb8.astype(np.uint16) * 257
    lcms, srgb = ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB")
    picture, profile = Image.fromarray(rgb8), matrix_shaper(icc)

    def littlecms(flags=ImageCms.Flags.NONE):
        return np.asarray(ImageCms.profileToProfile(picture, lcms, srgb, outputMode="RGB", flags=flags))

    exact = littlecms(ImageCms.Flags.NOOPTIMIZE).astype(float)
    rows = [("LittleCMS, Pillow's default (baseline)", lambda: littlecms(), 1.0),
            ("LittleCMS, unoptimised", lambda: littlecms(ImageCms.Flags.NOOPTIMIZE), 1.0),
            ("io.icc, 8-bit", lambda: convert_to_srgb(rgb8, profile), 1.0),
            ("io.icc, 16-bit", lambda: convert_to_srgb(rgb16, profile), 257.0)]
    print(f"{side}x{side} picture ({side * side / 1e6:.1f} Mpx), profile of {args.picture.name}")
    print(f"{'method':<40}{'seconds':>9}{'s/Mpx':>8}{'x baseline':>12}{'max diff (8-bit steps)':>24}")
    base = None
    for name, fn, per in rows:
        seconds, out = best(fn, args.repeat)
        base = base or seconds
        diff = np.abs(out / per - exact).max()
        print(f"{name:<40}{seconds:>9.3f}{seconds / (side * side / 1e6):>8.3f}{seconds / base:>12.1f}{diff:>24.2f}")


if __name__ == "__main__":
    main()

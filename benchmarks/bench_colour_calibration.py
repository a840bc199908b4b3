"""Issue 18's colour protocol for colorizer weights over a grid of colour strengths and temperatures.

    python benchmarks/bench_colour_calibration.py --images ../shared/data/train_aux/stellarium_hubble_textures \
        --images ../shared/data/train_aux/hashirkz_128px --lut-data ../shared/data/train \
        [--weights default,RUN/ckpt.pt,...] [--strengths 0.2,0.5,1] [--temperatures 1,1.5,2] [--per-image]

Each colorizer (``default``: the shipped one; a ``ckpt.pt`` written by `astroenhance train colorizer`; a weights
folder) runs through `run`'s engine (`training.evaluate.evaluate_colour_per_image`: centre crops of 384², BT.601
luma as an 8-bit grey image, 8-bit RGB out) at every strength (the factor `run --color-strength` applies) and,
for a distribution head, every softmax temperature. It prints the BT.601 chroma RMS averaged over images, its
ratio to no colour's, and the worst image's excess over no colour, with no colour and the luminance lookup table
(fitted on ``--lut-data``) beside; and, per colorizer, the setting it would choose: the lowest mean among those
with no image more than ``--worst`` (0.01) worse than no colour; and the *oracle*: each image at its own best of those
settings (or no colour) — what the best per-image confidence could reach with this colorizer's chroma.
``--lut-strengths`` also scores the lookup table at those shares of its chroma (the same rule picks one): the bar a
colorizer at its calibrated strength has to clear.

Choose settings on a calibration split (images the colorizer never trained on), then score that one setting once
on a test split.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from astroenhance.imaging.color import ycbcr_to_rgb
from astroenhance.models.fold import fold_batchnorm
from astroenhance.models.weights import default_weights_dir, find_weights, load_checkpoint_model, load_network
from astroenhance.training.evaluate import (
    LumaChromaLUT,
    chroma_rms,
    colour_case,
    evaluate_colour_per_image,
    load_images,
)


def load_colorizer(spec: str) -> torch.nn.Module:
    """``default``, a ``ckpt.pt`` (or a run folder holding one), or a weights folder with a colorize entry."""
    path = default_weights_dir() if spec == "default" else Path(spec)
    if path.is_dir() and (path / "ckpt.pt").exists():
        path = path / "ckpt.pt"
    if path.is_file():
        model, _ = load_checkpoint_model(path)
        return fold_batchnorm(model.eval())
    return load_network(path, find_weights(path, "colorize", "default"))


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", action="append", required=True, help="a folder of colour images (repeatable)")
    ap.add_argument("--lut-data", required=True, help="colour images the lookup-table baseline is fitted on")
    ap.add_argument("--weights", default="default", help="comma-separated: default, ckpt.pt files, weights folders")
    ap.add_argument("--strengths", default="0.1,0.2,0.3,0.5,0.7,1")
    ap.add_argument("--temperatures", default="1", help="softmax temperatures (distribution heads only)")
    ap.add_argument("--crop", type=int, default=384)
    ap.add_argument("--worst", type=float, default=0.01)
    ap.add_argument("--per-image", action="store_true", help="also print every image's chroma RMS")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--lut-strengths", default="", help="comma-separated shares of the lookup table's chroma to score")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # whole images (as `evaluate --crop`): the centre crop is taken at the image's own scale
    images = [im for folder in args.images for im in load_images(folder, max_side=1 << 20)]
    lut = LumaChromaLUT.fit([im for _, im in load_images(args.lut_data, max_side=800)])
    print(f"{len(images)} images; chroma RMS mean over images, ratio to no colour, worst image minus no colour")
    print(f"{'colorizer':<40} {'T':>5} {'s':>5} {'mean':>8} {'ratio':>6} {'worst':>8}")
    if args.lut_strengths:
        lut_at_strengths(images, lut, floats(args.lut_strengths), args.crop, args.worst)
    baselines_shown = False
    for spec in args.weights.split(","):
        model = load_colorizer(spec)
        temps = floats(args.temperatures) if getattr(model, "chroma_bins", 0) else [1.0]
        best = None
        oracle: dict[str, float] = {}  # each image's lowest chroma RMS over the settings (no colour included)
        for t, s in itertools.product(temps, floats(args.strengths)):
            model.temperature, model.chroma_scale = t, s
            rows: list[dict] = []
            res = evaluate_colour_per_image(model, images, lut, args.crop, per_image=rows)
            grey = res["grey"]["chroma_rms_mean"]
            if not baselines_shown:
                for m in ("grey", "lookup_table"):
                    r = res[m]
                    print(f"{m:<40} {'':>5} {'':>5} {r['chroma_rms_mean']:8.5f} {r['chroma_rms_mean'] / grey:6.3f} "
                          f"{r['worst_minus_grey']:+8.4f}")
                baselines_shown = True
            r = res["astroenhance"]
            print(f"{spec[-40:]:<40} {t:5.2f} {s:5.2f} {r['chroma_rms_mean']:8.5f} {r['chroma_rms_mean'] / grey:6.3f} "
                  f"{r['worst_minus_grey']:+8.4f}", flush=True)
            if r["worst_minus_grey"] <= args.worst and (best is None or r["chroma_rms_mean"] < best[2]):
                best = (t, s, r["chroma_rms_mean"], r["chroma_rms_mean"] / grey)
            for row in rows:
                oracle[row["image"]] = min(oracle.get(row["image"], row["grey"]["chroma_rms"]),
                                           row["astroenhance"]["chroma_rms"])
            if args.per_image:
                for row in rows:
                    print(f"    {row['image'][:48]:<48} grey {row['grey']['chroma_rms']:.4f} "
                          f"astroenhance {row['astroenhance']['chroma_rms']:.4f}")
        grey_mean = float(np.mean([row["grey"]["chroma_rms"] for row in rows]))
        print(f"  oracle for {spec} (each image at its best setting): {np.mean(list(oracle.values())):.5f} "
              f"({np.mean(list(oracle.values())) / grey_mean:.3f}x no colour)")
        if best:
            print(f"  choice for {spec}: T {best[0]:g}, s {best[1]:g}: {best[2]:.5f} ({best[3]:.3f}x no colour)")
        else:
            print(f"  choice for {spec}: none with no image more than {args.worst} worse than no colour")


def lut_at_strengths(images, lut: LumaChromaLUT, strengths: list[float], crop: int, worst: float) -> None:
    """Issue 18's protocol for the lookup table's chroma times each strength (as `evaluate_colour_per_image` scores
    its full-strength row), and the strength the rule picks."""
    cases = [(grey, lut(grey), c) for grey, c in (colour_case(rgb, crop) for _, rgb in images)]
    grey_err = np.array([float(np.sqrt(np.mean(c ** 2))) for _, _, c in cases])
    best = None
    for s in strengths:
        err = np.array([chroma_rms(ycbcr_to_rgb(g, s * ch), c) for g, ch, c in cases])
        excess = float((err - grey_err).max())
        print(f"{'lookup_table x' + format(s, 'g'):<40} {'':>5} {'':>5} {err.mean():8.5f} "
              f"{err.mean() / grey_err.mean():6.3f} {excess:+8.4f}", flush=True)
        if excess <= worst and (best is None or err.mean() < best[1]):
            best = (s, err.mean())
    if best:
        print(f"  choice for the lookup table: x{best[0]:g}: {best[1]:.5f} ({best[1] / grey_err.mean():.3f}x no colour)")


if __name__ == "__main__":
    main()

"""How this session's SR and colorizer experiments were measured (README "What more training did not buy").

    python scripts/eval_experiments.py --data ../shared/data/eval --train-data ../shared/data/train \
        [--sr CKPT ...] [--colorizer CKPT|shipped ...] [--downscale N] [--skip-sr] [--chroma] [--limit N]

Same protocol as `astroenhance evaluate` (4x area-average inputs, float64, RGB PSNR), bare networks (no noise gate):
- bicubic; the shipped psnr model with bicubic chroma; the shipped luminance with the *true* chroma (the
  ceiling of any chroma upscaling); and each ``--sr`` checkpoint (a Y Cb Cr network upscales chroma itself);
- chroma RMS of each ``--colorizer`` checkpoint (or ``shipped``) against grey and the lookup table fitted on
  ``--train-data``, on the images area-averaged ``--downscale`` times (default 1: as they are);
- ``--chroma``: ways of upscaling the input's chroma under the shipped luminance, none of them learned (besides
  the bicubic of the "shipped psnr" row): bicubic with its 4x4 block means set to the input's (what `run --flux-conserving` does), a guided filter
  (chroma as a local linear function of luminance, radius 1 px, eps 1e-2, its slope applied to the SR
  luminance detail) and a constant-hue ratio (chroma / (luminance + 0.2) upscaled, times the SR luminance + 0.2,
  block means set).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from astroenhance.imaging.color import conserve_block_means, rgb_to_ycbcr, ycbcr_to_rgb  # noqa: E402
from astroenhance.models.srresnet import flux_project  # noqa: E402
from astroenhance.models.weights import default_weights_dir, find_weights, load_checkpoint_model, load_network  # noqa: E402
from astroenhance.training.data import list_images, load_rgb  # noqa: E402
from astroenhance.training.evaluate import (LumaChromaLUT, _resize, _upscale_lum, area_downsample,  # noqa: E402
                                            evaluate_colorizer, load_images, psnr)


def upscale(model: torch.nn.Module, lr: np.ndarray) -> np.ndarray:
    """RGB 4x of ``lr`` by ``model`` (bare, flux-projected); chroma bicubic, or the network's for a Y Cb Cr one."""
    y, c = rgb_to_ycbcr(lr)
    if getattr(model, "in_channels", 1) == 3:
        t = torch.from_numpy(np.concatenate([y[..., None], c], -1).astype(np.float32)).permute(2, 0, 1)[None]
        out = flux_project(model(t), t, 4)[0].double().numpy().transpose(1, 2, 0)
        return ycbcr_to_rgb(out[..., 0], out[..., 1:])
    return ycbcr_to_rgb(_upscale_lum(model, y, 4, gate=False), _resize(c, 4, "bicubic"))


def _box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over (2r+1)^2 pixels (edges replicated) of each channel of ``(h, w, c)``."""
    t = torch.from_numpy(x).permute(2, 0, 1)[None]
    t = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(t, (r, r, r, r), mode="replicate"), 2 * r + 1, stride=1)
    return t[0].permute(1, 2, 0).numpy()


def chroma_variants(y_lr: np.ndarray, c_lr: np.ndarray, y_sr: np.ndarray) -> dict[str, np.ndarray]:
    """4x chroma ``(H, W, 2)`` by each non-learned method of ``--chroma`` (see the module docstring)."""
    bic = _resize(c_lr, 4, "bicubic")
    y1 = y_lr[..., None]
    my, mc = _box(y1, 1), _box(c_lr, 1)
    slope = _box((_box(y1 * c_lr, 1) - my * mc) / (_box(y1 * y1, 1) - my * my + 1e-2), 1)
    detail = (y_sr - _resize(y1, 4, "bicubic")[..., 0])[..., None]
    ratio = _resize(c_lr / (y1 + 0.2), 4, "bicubic") * (y_sr[..., None] + 0.2)
    return {"chroma bicubic, block means kept": conserve_block_means(bic, c_lr, 4),
            "chroma guided filter": bic + _resize(slope, 4, "bicubic") * detail,
            "chroma constant-hue ratio, block means kept": conserve_block_means(ratio, c_lr, 4)}


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--train-data", default="")
    ap.add_argument("--sr", nargs="*", default=[])
    ap.add_argument("--colorizer", nargs="*", default=[])
    ap.add_argument("--chroma", action="store_true", help="also compare non-learned chroma upscalers")
    ap.add_argument("--downscale", type=int, default=1,
                    help="colorizers: on the images area-averaged this many times (objects that much smaller)")
    ap.add_argument("--skip-sr", action="store_true", help="only the colorizer rows")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    images = load_images(args.data, limit=args.limit)
    wdir = default_weights_dir()
    if args.colorizer:
        lut = LumaChromaLUT.fit([load_rgb(p).astype(np.float64) / 255 for p in list_images(args.train_data)])
        f = args.downscale
        small = [(n, area_downsample(im, f) if f > 1 else im) for n, im in images]
        for p in args.colorizer:
            model = (load_network(wdir, find_weights(wdir, "colorize", "default")) if p == "shipped"
                     else load_checkpoint_model(p)[0])
            r = evaluate_colorizer(model, small, lut)
            print(f"colorizer {p} (images 1/{f}): " + ", ".join(f"{k} {v['chroma_rms']:.4f}" for k, v in r.items()))
    if args.skip_sr:
        return
    shipped = load_network(wdir, find_weights(wdir, "sr", "psnr"))
    models = {p: load_checkpoint_model(p)[0] for p in args.sr}
    rows: dict[str, list[float]] = {"bicubic": [], "shipped psnr": [], "shipped psnr + true chroma": []}
    for _, hr in images:
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
        lr = area_downsample(hr, 4)
        rows["bicubic"].append(psnr(np.clip(_resize(lr, 4, "bicubic"), 0, 1), hr))
        y_lr, c_lr = rgb_to_ycbcr(lr)
        y_sr = _upscale_lum(shipped, y_lr, 4, gate=False)  # once per image for every shipped-luminance row
        chromas = {"": _resize(c_lr, 4, "bicubic"), " + true chroma": rgb_to_ycbcr(hr)[1]}
        if args.chroma:
            chromas |= {f" + {name}": c for name, c in chroma_variants(y_lr, c_lr, y_sr).items()}
        for name, c in chromas.items():
            rows.setdefault(f"shipped psnr{name}", []).append(psnr(np.clip(ycbcr_to_rgb(y_sr, c), 0, 1), hr))
        for name, m in models.items():
            rows.setdefault(name, []).append(psnr(np.clip(upscale(m, lr), 0, 1), hr))
    print(f"SR, RGB PSNR on {len(images)} images (bare networks)")
    for name, v in rows.items():
        print(f"  {name:<40} {np.mean(v):.3f} dB")


if __name__ == "__main__":
    main()

"""Honest evaluation on held-out colour images: the networks against simple baselines, one protocol for all.

Protocol (stated in every report): images are read as 8-bit RGB in [0, 1]; metrics are computed in float64.
SR: the low-resolution input is the 4x **area average** (flux-preserving) of the image cropped to a multiple
of 4; every method upscales the same input; PSNR on RGB and on BT.709 luminance, SSIM on luminance (Gaussian
window, sigma 1.5).  astroenhance upscales luminance with the network (+ flux projection) and chroma
bicubically.  Colorization: the input is the image's BT.709 luminance; chroma RMS (Cb, Cr) against the true
chroma; baselines are grey (no colour) and a luminance -> mean-chroma lookup table fitted on training images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy.ndimage import gaussian_filter

from ..imaging.color import LUMA_WEIGHTS, rgb_to_ycbcr, ycbcr_to_rgb
from ..models.srresnet import flux_project
from .data import list_images, load_rgb

PROTOCOL = __doc__.split("\n\n", 1)[1].strip()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> float:
    """Mean SSIM of two 2-D images in [0, 1] (Wang et al. 2004, Gaussian window)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = gaussian_filter(a, sigma), gaussian_filter(b, sigma)
    saa = gaussian_filter(a * a, sigma) - mu_a**2
    sbb = gaussian_filter(b * b, sigma) - mu_b**2
    sab = gaussian_filter(a * b, sigma) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return float(s.mean())


def area_downsample(img: np.ndarray, s: int) -> np.ndarray:
    h, w = img.shape[0] // s, img.shape[1] // s
    return img[: h * s, : w * s].reshape(h, s, w, s, *img.shape[2:]).mean(axis=(1, 3))


def _resize(img: np.ndarray, s: int, method: str) -> np.ndarray:
    if method == "bicubic":
        t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
        return F.interpolate(t, scale_factor=s, mode="bicubic", align_corners=False)[0].numpy().transpose(1, 2, 0)
    resample = {"nearest": Image.NEAREST, "lanczos": Image.LANCZOS}[method]
    chans = [np.asarray(Image.fromarray(img[..., c].astype(np.float32), "F").resize(
        (img.shape[1] * s, img.shape[0] * s), resample)) for c in range(img.shape[2])]
    return np.stack(chans, -1).astype(np.float64)


@dataclass
class LumaChromaLUT:
    """The trivial colorizer: mean chroma for each of ``bins`` luminance bins, fitted on training images."""

    table: np.ndarray  # (bins, 2)

    @classmethod
    def fit(cls, images: list[np.ndarray], bins: int = 64) -> "LumaChromaLUT":
        sums, counts = np.zeros((bins, 2)), np.zeros(bins)
        for rgb in images:
            y, c = rgb_to_ycbcr(rgb)
            idx = np.clip((y * bins).astype(int), 0, bins - 1).ravel()
            np.add.at(sums, idx, c.reshape(-1, 2))
            counts += np.bincount(idx, minlength=bins)
        return cls(sums / np.maximum(counts, 1)[:, None])

    def __call__(self, y: np.ndarray) -> np.ndarray:
        bins = self.table.shape[0]
        return self.table[np.clip((y * bins).astype(int), 0, bins - 1)]


def load_images(folder: str | Path, limit: int | None = None, max_side: int = 1400) -> list[tuple[str, np.ndarray]]:
    out = []
    for p in list_images(folder)[:limit]:
        rgb = load_rgb(p).astype(np.float64) / 255.0
        out.append((p.name, rgb[:max_side, :max_side]))
    return out


@torch.no_grad()
def evaluate_sr(model: torch.nn.Module, images: list[tuple[str, np.ndarray]], scale: int = 4) -> dict:
    """Per-method mean metrics over ``images`` (see the module docstring for the protocol)."""
    methods = ["nearest", "bicubic", "lanczos", "astroenhance"]
    acc: dict[str, dict[str, list[float]]] = {m: {"psnr_rgb": [], "psnr_lum": [], "ssim_lum": [], "flux_err": []} for m in methods}
    for _, hr in images:
        h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
        hr = hr[:h, :w]
        lr = area_downsample(hr, scale)
        y_hr = hr @ LUMA_WEIGHTS
        for m in methods:
            if m == "astroenhance":
                y_lr, c_lr = rgb_to_ycbcr(lr)
                t = torch.from_numpy(y_lr.astype(np.float32))[None, None]
                y_sr = flux_project(model(t), t, scale)[0, 0].double().numpy()
                c_sr = _resize(c_lr, scale, "bicubic")
                sr = ycbcr_to_rgb(y_sr, c_sr)
            else:
                sr = _resize(lr, scale, m)
            sr = np.clip(sr, 0, 1)
            y_sr = sr @ LUMA_WEIGHTS
            acc[m]["psnr_rgb"].append(psnr(sr, hr))
            acc[m]["psnr_lum"].append(psnr(y_sr, y_hr))
            acc[m]["ssim_lum"].append(ssim(y_sr, y_hr))
            blocks_sr, blocks_hr = area_downsample(y_sr, scale), area_downsample(y_hr, scale)
            acc[m]["flux_err"].append(float(np.abs(blocks_sr - blocks_hr).sum() / max(blocks_hr.sum(), 1e-12)))
    return {m: {k: float(np.mean(v)) for k, v in d.items()} for m, d in acc.items()}


@torch.no_grad()
def evaluate_colorizer(model: torch.nn.Module, images: list[tuple[str, np.ndarray]], lut: LumaChromaLUT) -> dict:
    """Chroma RMS of the model, grey and the lookup table, pooled over all pixels of ``images``."""
    sq = {"grey": 0.0, "lookup_table": 0.0, "astroenhance": 0.0}
    n = 0
    for _, rgb in images:
        y, c = rgb_to_ycbcr(rgb)
        t = torch.from_numpy(y.astype(np.float32))[None, None]
        pred = model(t)[0].double().numpy().transpose(1, 2, 0)
        sq["grey"] += float((c**2).sum())
        sq["lookup_table"] += float(((lut(y) - c) ** 2).sum())
        sq["astroenhance"] += float(((pred - c) ** 2).sum())
        n += c.size
    return {m: {"chroma_rms": math.sqrt(v / n)} for m, v in sq.items()}

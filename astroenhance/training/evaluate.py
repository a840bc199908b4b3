"""Honest evaluation on held-out colour images: the networks against simple baselines, one protocol for all.

Protocol (stated in every report): images are read as 8-bit RGB in [0, 1]; metrics are computed in float64.
SR: the low-resolution input is the 4x **area average** (flux-preserving) of the image cropped to a multiple
of 4; every method upscales the same input; PSNR on RGB and on BT.709 luminance, SSIM on luminance (Gaussian
window, sigma 1.5), MSE on RGB in 8-bit units (0-255 scale as in the paper's table, computed in float64).
astroenhance is `run`'s own engine (tiles, noise gate, flux projection, gamut: `Enhancer.enhance_array` on the
input as a display image, with --flux-conserving): luminance by the network, gated by the input's noise
(``astroenhance_ungated``: --no-noise-gate), chroma bicubically with its 4x4 block means set to the input's.
Colorization: the input is the image's BT.709 luminance, colorized by `run`'s engine (--no-upscale); chroma RMS
(Cb, Cr) of its output against the true chroma; baselines are grey (no colour) and a luminance -> mean-chroma lookup table fitted on training images.
With a crop (``--crop N``, issue 18's protocol): centre crops of N x N (smaller images whole), BT.601 luma as an
8-bit grey image in, 8-bit RGB out; BT.601 Cb/Cr RMS per image, then the mean over images and the worst image's
excess over grey (pooling all pixels instead would let the largest images decide).
Inception Score (only with user-supplied Inception-v3 weights): on 299x299 crops at the output's own
resolution (a grid of up to 16 per image, the same places for every method; smaller images are resized up),
softmax of the network, exp(E KL(p(y|x) || p(y))) in 10 splits (fewer where a split would hold under 10
crops; mean, std).  It rewards confident, varied ImageNet classes, not fidelity, and differs between
Inception implementations: compare values only within one run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..config import EnhanceConfig
from ..errors import InputError, SettingsError
from ..imaging.color import BT601_WEIGHTS, LUMA_WEIGHTS, rgb_to_ycbcr, ycbcr_to_rgb
from ..io.writers import quantize
from ..metrics import area_downsample, detections, flux_error, inception_score, mse_8bit, psnr, psnr_of_mse, ssim
from ..pipeline import Enhancer, Networks
from .data import list_images, load_rgb

PROTOCOL = __doc__.split("\n\n", 1)[1].strip()


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
    def fit(cls, images: list[np.ndarray], bins: int = 64) -> LumaChromaLUT:
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


def inception_crops(rgb: np.ndarray, side: int = 299, max_crops: int = 16) -> np.ndarray:
    """``(k, 3, side, side)`` float32 crops of ``rgb`` at its own resolution: an evenly spaced grid of at
    most ``max_crops`` (the same places for every image of that shape); a side shorter than ``side`` is
    taken whole and resized up (bilinear)."""
    h, w = rgb.shape[:2]
    rows, cols = max(1, h // side), max(1, w // side)
    while rows * cols > max_crops:
        rows, cols = (rows - 1, cols) if rows >= cols else (rows, cols - 1)
    ch, cw = min(h, side), min(w, side)
    out = []
    for r in np.linspace(0, h - ch, rows).round().astype(int):
        for c in np.linspace(0, w - cw, cols).round().astype(int):
            out.append(rgb[r:r + ch, c:c + cw].transpose(2, 0, 1))
    t = torch.from_numpy(np.ascontiguousarray(np.stack(out), dtype=np.float32))
    if (ch, cw) != (side, side):
        t = F.interpolate(t, size=(side, side), mode="bilinear", align_corners=False)
    return t.numpy()


class InceptionScorer:
    """Collects an Inception-v3's class probabilities of each method's outputs (`inception_crops`), then
    gives each method's Inception Score (see the module docstring)."""

    def __init__(self, net: torch.nn.Module, max_crops: int = 16, batch: int = 8) -> None:
        self.net, self.max_crops, self.batch = net.eval(), max_crops, batch
        self.probs: dict[str, list[np.ndarray]] = {}

    @torch.no_grad()
    def add(self, method: str, rgb: np.ndarray) -> None:
        crops = torch.from_numpy(inception_crops(rgb, max_crops=self.max_crops))
        for i in range(0, len(crops), self.batch):
            p = torch.softmax(self.net(crops[i:i + self.batch]).double(), 1).numpy()
            self.probs.setdefault(method, []).append(p)

    def scores(self, splits: int = 10) -> dict[str, dict[str, float]]:
        out = {}
        for method, parts in self.probs.items():
            mean, std = inception_score(np.concatenate(parts), splits)
            out[method] = {"inception_score": mean, "inception_std": std, "inception_crops": sum(map(len, parts))}
        return out


#: the smallest side an image to score may have: 4x binning leaves 4 pixels of input
MIN_SIDE = 16


#: 8-bit steps by which R, G and B of a grey image may differ (a grey stored as RGB with rounding or scanner noise;
#: a JPEG's chroma noise can pass it, and such an image is scored)
GREY_STEPS = 2


def is_grey_image(rgb: np.ndarray) -> bool:
    """Whether an RGB image in [0, 1] is grey: R, G and B within `GREY_STEPS` 8-bit steps of each other at every
    pixel."""
    tol = (GREY_STEPS + 0.5) / 255
    return bool(np.abs(rgb[..., 0] - rgb[..., 1]).max() <= tol and np.abs(rgb[..., 1] - rgb[..., 2]).max() <= tol)


def load_images(folder: str | Path, limit: int | None = None, max_side: int = 1400,
                skipped: list[str] | None = None, colour: bool = False) -> list[tuple[str, np.ndarray]]:
    """The first ``limit`` images of ``folder`` as float64 RGB in [0, 1], each cut to ``max_side``; those smaller
    than `MIN_SIDE` on a side are left out (named in ``skipped``), as there is nothing to score on them, and so are
    astroenhance's own outputs and files that cannot be read.  With ``colour`` grey images are left out too
    (`is_grey_image`): a black-and-white photograph never recorded its scene's colours, so it has none to score a
    colour against."""
    out, left_out = [], []
    paths = list_images(folder, left_out)  # (a run output beside the held-out images: its detail is the networks')
    if skipped is not None:
        skipped += [f"{p}: {why}, not an image to score against" for p, why in left_out
                    if why != "flagged in MANIFEST.csv"]
    for p in paths:
        if limit is not None and len(out) == limit:
            break
        try:
            rgb = load_rgb(p).astype(np.float64) / 255.0
        except InputError as exc:  # a broken file among the held-out images: named, the others scored
            if skipped is not None:
                skipped.append(str(exc))
            continue
        if min(rgb.shape[:2]) < MIN_SIDE:
            if skipped is not None:
                skipped.append(f"{p}: {rgb.shape[1]}x{rgb.shape[0]} pixels, under {MIN_SIDE} on a side")
            continue
        if colour and is_grey_image(rgb):
            if skipped is not None:
                skipped.append(f"{p}: a grey image, no colour to score against")
            continue
        out.append((p.name, rgb[:max_side, :max_side]))
    return out


class Engine:
    """`run`'s engine around networks under evaluation: every astroenhance output here is made by
    `Enhancer.enhance_array` exactly as `run` makes it (tiles, noise gate, flux projection, gamut), on the
    input treated as a display image in [0, 1] with --flux-conserving."""

    def __init__(self, sr: torch.nn.Module | None = None, colorizer: torch.nn.Module | None = None,
                 scale: int = 4) -> None:
        self.config = EnhanceConfig(device="cpu", scale=scale, upscale=sr is not None, colorize=colorizer is not None,
                                    flux_conserving=True, formats=("png",))
        self.enhancer = Enhancer(self.config, Networks(sr=sr, colorizer=colorizer))

    def __call__(self, img: np.ndarray, gate: bool = True) -> np.ndarray:
        """RGB ``(H*s, W*s, 3)`` float64 of ``img`` (luminance ``(H, W)`` or RGB ``(H, W, 3)`` in [0, 1])."""
        cfg = replace(self.config, noise_gate=gate)
        out = self.enhancer.enhance_array(np.asarray(img, np.float32), is_fits_like=False, config=cfg)
        return out.rgb.astype(np.float64)

    def luminance(self, y: np.ndarray, gate: bool = True) -> np.ndarray:
        return self(y, gate) @ LUMA_WEIGHTS


@torch.no_grad()
def evaluate_sr(model: torch.nn.Module, images: list[tuple[str, np.ndarray]], scale: int = 4,
                per_image: list[dict] | None = None, scorer: InceptionScorer | None = None) -> dict:
    """Per-method mean metrics over ``images`` (see the module docstring for the protocol).

    ``per_image``, if given, receives one ``{"image": name, method: {metric: value}}`` per image;
    ``scorer``, if given, every output and original (Inception Score)."""
    engine = Engine(sr=model, scale=scale)
    methods = ["nearest", "bicubic", "lanczos", "astroenhance", "astroenhance_ungated"]
    acc: dict[str, dict[str, list[float]]] = {m: {"mse_rgb": [], "psnr_rgb": [], "psnr_lum": [], "ssim_lum": [], "flux_err": []} for m in methods}
    for name, hr in images:
        h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
        hr = hr[:h, :w]
        lr = area_downsample(hr, scale)
        if scorer is not None:
            scorer.add("original", hr)
        y_hr = hr @ LUMA_WEIGHTS
        for m in methods:
            if m.startswith("astroenhance"):
                sr = engine(lr, gate=m == "astroenhance")
            else:
                sr = np.clip(_resize(lr, scale, m), 0, 1)
            if scorer is not None:
                scorer.add(m, sr)
            y_sr = sr @ LUMA_WEIGHTS
            acc[m]["mse_rgb"].append(mse_8bit(sr, hr))
            acc[m]["psnr_rgb"].append(psnr_of_mse(acc[m]["mse_rgb"][-1]))
            acc[m]["psnr_lum"].append(psnr(y_sr, y_hr))
            acc[m]["ssim_lum"].append(ssim(y_sr, y_hr))
            acc[m]["flux_err"].append(flux_error(y_sr, y_hr, scale))
        _record(per_image, name, acc)
    return {m: {k: float(np.mean(v)) for k, v in d.items()} for m, d in acc.items()}


def _record(per_image: list[dict] | None, name: str, acc: dict[str, dict[str, list[float]]]) -> None:
    """Append the last image's metrics (the last entry of each list in ``acc``) to ``per_image``."""
    if per_image is not None:
        per_image.append({"image": name, **{m: {k: v[-1] for k, v in d.items()} for m, d in acc.items()}})


@torch.no_grad()
def evaluate_colorizer(model: torch.nn.Module, images: list[tuple[str, np.ndarray]], lut: LumaChromaLUT,
                       per_image: list[dict] | None = None, scorer: InceptionScorer | None = None) -> dict:
    """Chroma RMS of the model (through `run`'s engine), grey and the lookup table, pooled over all pixels of
    ``images`` (``per_image`` and ``scorer`` as in `evaluate_sr`)."""
    engine = Engine(colorizer=model)
    sq = {"grey": 0.0, "lookup_table": 0.0, "astroenhance": 0.0}
    n = 0
    for name, rgb in images:
        y, c = rgb_to_ycbcr(rgb)
        chroma = {"grey": np.zeros_like(c), "lookup_table": lut(y), "astroenhance": rgb_to_ycbcr(engine(y))[1]}
        this = {m: float(((v - c) ** 2).sum()) for m, v in chroma.items()}
        if scorer is not None:
            scorer.add("original", rgb)
            for m, v in chroma.items():
                scorer.add(m, np.clip(ycbcr_to_rgb(y, v), 0, 1))
        for m, v in this.items():
            sq[m] += v
        n += c.size
        if per_image is not None:
            per_image.append({"image": name, **{m: {"chroma_rms": math.sqrt(v / c.size)} for m, v in this.items()}})
    return {m: {"chroma_rms": math.sqrt(v / n)} for m, v in sq.items()}


def _chroma_601(rgb: np.ndarray) -> np.ndarray:
    """BT.601 (Cb, Cr) of RGB in [0, 1], ``(H, W, 2)``."""
    y = rgb @ BT601_WEIGHTS
    return np.stack([(rgb[..., 2] - y) / 1.772, (rgb[..., 0] - y) / 1.402], axis=-1)


def centre_crop(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[y0:y0 + side, x0:x0 + side]


def q8(a: np.ndarray) -> np.ndarray:
    """Values in [0, 1] as an 8-bit picture holds them."""
    return np.round(np.clip(a, 0, 1) * 255) / 255


def colour_case(rgb: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """Issue 18's input and truth for one colour image: the 8-bit grey (BT.601 luma) of its 8-bit centre crop, and
    the crop's BT.601 chroma."""
    truth = q8(centre_crop(rgb, crop))
    return q8(truth @ BT601_WEIGHTS), _chroma_601(truth)


def chroma_rms(rgb: np.ndarray, truth_chroma: np.ndarray) -> float:
    """Issue 18's score of an output picture: the RMS of its 8-bit BT.601 chroma's error."""
    return float(np.sqrt(np.mean((_chroma_601(q8(rgb)) - truth_chroma) ** 2)))


def evaluate_colour_per_image(model: torch.nn.Module, images: list[tuple[str, np.ndarray]], lut: LumaChromaLUT,
                              crop: int = 384, per_image: list[dict] | None = None) -> dict:
    """Issue 18's protocol (see the module docstring): per-image BT.601 chroma RMS on centre crops, averaged; and
    its other promise, the output's luminance unchanged: the largest change of an 8-bit output's BT.601 luma from the
    grey input, in 8-bit steps (``luma_change_255``; the issue asks ≤ 1)."""
    engine = Engine(colorizer=model)
    rows = []
    for name, rgb in images:
        grey, c = colour_case(rgb, crop)  # grey: what a user's grey 8-bit picture holds
        outputs = {"grey": np.repeat(grey[..., None], 3, -1), "lookup_table": ycbcr_to_rgb(grey, lut(grey)),
                   "astroenhance": engine(grey)}
        rows.append({"image": name, **{m: {"chroma_rms": chroma_rms(o, c),
                                           "luma_change_255": float(np.abs(q8(o) @ BT601_WEIGHTS - grey).max() * 255)}
                                       for m, o in outputs.items()}})
    if per_image is not None:
        per_image.extend(rows)
    out = {}
    for m in ("grey", "lookup_table", "astroenhance"):
        vals = np.array([r[m]["chroma_rms"] for r in rows])
        worst = max(r[m]["chroma_rms"] - r["grey"]["chroma_rms"] for r in rows)
        out[m] = {"chroma_rms_mean": float(vals.mean()), "worst_minus_grey": float(worst),
                  "luma_change_255": max(r[m]["luma_change_255"] for r in rows)}
    return out


def _bicubic_lum(y_lr: np.ndarray, scale: int) -> np.ndarray:
    return _resize(y_lr[..., None], scale, "bicubic")[..., 0]


@torch.no_grad()
def false_sources(model: torch.nn.Module, frames: int = 24, size: int = 128, scale: int = 4, seed: int = 0,
                  level: float = 0.2, noise: float = 0.02) -> dict:
    """Run SR on pure-noise frames and count 5-sigma detections in each output that are not in its input.

    Each frame is Gaussian noise (mean ``level``, sigma ``noise``, in display units) of ``size``² input
    pixels; nothing in it is a source, so every output detection whose input block is not itself a
    5-sigma detection is a false source.  Reported per million input pixels, for the network (through `run`'s
    engine, noise-gated as `run` does, and bare) and for bicubic and Lanczos interpolation of the same frames.
    """
    engine = Engine(sr=model, scale=scale)
    rng = np.random.default_rng(seed)
    upscale = {"bicubic": lambda lr: _bicubic_lum(lr, scale),
               "lanczos": lambda lr: _resize(lr[..., None], scale, "lanczos")[..., 0],
               "astroenhance": lambda lr: engine.luminance(lr, gate=True),
               "astroenhance_ungated": lambda lr: engine.luminance(lr, gate=False)}
    counts = dict.fromkeys(upscale, 0)
    in_input = 0
    for _ in range(frames):
        lr = np.clip(level + noise * rng.standard_normal((size, size)), 0, 1)
        real, n_real = detections(lr)
        in_input += n_real
        real_hr = np.kron(real > 0, np.ones((scale, scale), dtype=bool))
        for m, fn in upscale.items():
            lab, n = detections(fn(lr))
            if n:
                hit_real = np.zeros(n + 1, dtype=bool)
                hit_real[np.unique(lab[real_hr & (lab > 0)])] = True
                counts[m] += int((~hit_real[1:]).sum())
    mpix = frames * size * size / 1e6
    return {"input_detections": in_input, "frames": frames, "frame_size": size, "noise_sigma": noise,
            **{m: {"false_sources_per_mpix": c / mpix, "false_sources": c} for m, c in counts.items()}}


@torch.no_grad()
def evaluate_pipeline(sr: torch.nn.Module, colorizer: torch.nn.Module, images: list[tuple[str, np.ndarray]],
                      lut: LumaChromaLUT, scale: int = 4, per_image: list[dict] | None = None,
                      scorer: InceptionScorer | None = None) -> dict:
    """The whole job: grey 4x-area-averaged input -> colour 4x output, against the original colour image.

    Methods: ``bicubic_grey`` (bicubic luminance, no colour), ``bicubic_lut`` (bicubic luminance, lookup-table
    colour) and ``astroenhance`` (`run`'s engine: colorizer at input resolution, chroma upscaled bicubically,
    luminance by the SR network, noise gate, flux projection, gamut).  ``per_image`` and ``scorer`` as in
    `evaluate_sr`.
    """
    engine = Engine(sr=sr, colorizer=colorizer, scale=scale)
    methods = ["bicubic_grey", "bicubic_lut", "astroenhance"]
    acc: dict[str, dict[str, list[float]]] = {m: {"mse_rgb": [], "psnr_rgb": [], "psnr_lum": [], "chroma_rms": []} for m in methods}
    for name, hr in images:
        h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
        hr = hr[:h, :w]
        if scorer is not None:
            scorer.add("original", hr)
        y_hr, c_hr = rgb_to_ycbcr(hr)
        y_lr = area_downsample(y_hr, scale)
        for m in methods:
            if m == "astroenhance":
                rgb = engine(y_lr)
            else:
                c_sr = np.zeros_like(c_hr) if m == "bicubic_grey" else _resize(lut(y_lr), scale, "bicubic")
                rgb = np.clip(ycbcr_to_rgb(_bicubic_lum(y_lr, scale), c_sr), 0, 1)
            y_sr, c_sr = rgb_to_ycbcr(rgb)
            if scorer is not None:
                scorer.add(m, rgb)
            acc[m]["mse_rgb"].append(mse_8bit(rgb, hr))
            acc[m]["psnr_rgb"].append(psnr_of_mse(acc[m]["mse_rgb"][-1]))
            acc[m]["psnr_lum"].append(psnr(y_sr, y_hr))
            acc[m]["chroma_rms"].append(float(np.sqrt(np.mean((c_sr - c_hr) ** 2))))
        _record(per_image, name, acc)
    return {m: {k: float(np.mean(v)) for k, v in d.items()} for m, d in acc.items()}


def _crop_box(img: np.ndarray, side: int) -> tuple[int, int]:
    """Top-left of the ``side``² crop with the most structure (largest luminance variance on a coarse grid)."""
    y = img @ LUMA_WEIGHTS if img.ndim == 3 else img
    best, pos = -1.0, (0, 0)
    for r in range(0, max(1, y.shape[0] - side + 1), max(1, side // 2)):
        for c in range(0, max(1, y.shape[1] - side + 1), max(1, side // 2)):
            v = float(y[r:r + side, c:c + side].var())
            if v > best:
                best, pos = v, (r, c)
    return pos


def comparison_figure(panels: list[tuple[str, list[np.ndarray]]], titles: list[str], path: str | Path,
                      note: str = "") -> Path:
    """Save rows of equal-size RGB crops (one row per image) under column ``titles`` as a PNG."""
    from PIL import ImageDraw

    side = panels[0][1][0].shape[0]
    pad, head, foot = 6, 18, 18 if note else 0
    cols = len(titles)
    width = cols * (side + pad) + pad
    height = head + len(panels) * (side + pad) + pad + foot
    canvas = Image.new("RGB", (width, height), (20, 20, 20))
    draw = ImageDraw.Draw(canvas)
    for j, t in enumerate(titles):
        draw.text((pad + j * (side + pad) + 2, 3), t, fill=(230, 230, 230))
    for i, (_name, crops) in enumerate(panels):
        for j, crop in enumerate(crops):
            tile = Image.fromarray(quantize(crop, np.dtype(np.uint8)))
            canvas.paste(tile, (pad + j * (side + pad), head + pad + i * (side + pad)))
    if note:
        draw.text((pad, height - foot + 2), note, fill=(200, 200, 120))
    from ..io.writers import write_whole

    return write_whole(Path(path), lambda tmp: canvas.save(tmp, format="PNG"), "the figure")


@torch.no_grad()
def figure_crops(task: str, images: list[tuple[str, np.ndarray]], sr: torch.nn.Module | None,
                 colorizer: torch.nn.Module | None, lut: LumaChromaLUT | None, scale: int = 4, side: int = 192,
                 count: int = 4) -> tuple[list[str], list[tuple[str, list[np.ndarray]]]]:
    """Side-by-side crops for `comparison_figure`: input | baseline | astroenhance | original."""
    titles = {"sr": ["input (4x area mean)", "bicubic", "astroenhance SR", "original"],
              "colorize": ["input (luminance)", "lookup table", "astroenhance colour", "original"]}.get(
        task, ["input (grey, 4x area mean)", "bicubic", "astroenhance", "original"])
    side = min([side] + [min(hr.shape[:2]) // (4 * scale) * 4 * scale for _, hr in images[:count]])
    if side < 4 * scale:
        raise SettingsError(f"images too small for a figure (need at least {4 * scale} pixels)")
    engine = Engine(sr=sr if task != "colorize" else None, colorizer=colorizer if task != "sr" else None, scale=scale)
    panels = []
    for name, hr in images[:count]:
        r, c = _crop_box(hr, side)
        r, c = r - r % scale, c - c % scale
        hr_c = hr[r:r + side, c:c + side]
        if hr_c.shape[:2] != (side, side):
            continue
        grey = lambda y: np.repeat(y[..., None], 3, axis=-1)  # noqa: E731
        if task == "sr":
            lr = area_downsample(hr_c, scale)
            crops = [np.kron(lr, np.ones((scale, scale, 1))), _resize(lr, scale, "bicubic"), engine(lr), hr_c]
        elif task == "colorize":
            y, _ = rgb_to_ycbcr(hr_c)
            crops = [grey(y), ycbcr_to_rgb(y, lut(y)), engine(y), hr_c]
        else:
            y_hr, _ = rgb_to_ycbcr(hr_c)
            y_lr = area_downsample(y_hr, scale)
            crops = [grey(np.kron(y_lr, np.ones((scale, scale)))), grey(_bicubic_lum(y_lr, scale)), engine(y_lr), hr_c]
        panels.append((name, crops))
    return titles, panels

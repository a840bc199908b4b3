"""Training images: a folder of colour images, held in memory as uint8, sampled deterministically.

Every batch is drawn from ``numpy.random.default_rng((seed, step))``, so a run resumed at step ``k``
sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import InputError, SettingsError
from ..io.readers import IMAGE_SUFFIXES


def _manifest_excludes(folder: Path) -> set[str]:
    """Names a ``MANIFEST.csv`` marks as unsuitable (visual flag set, duplicate)."""
    out: set[str] = set()
    for manifest in folder.rglob("MANIFEST.csv"):
        with open(manifest, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("visual_flag", "").strip() or row.get("duplicate_of", "").strip():
                    out.add(row["file"])
    return out


def list_images(folder: str | Path, left_out: list[tuple[Path, str]] | None = None) -> list[Path]:
    """Every image under ``folder`` (recursively, sorted), minus those its MANIFEST.csv flags and astroenhance's own
    outputs (their detail is the networks' own: not a truth to train or score on), each of those added to
    ``left_out`` with why."""
    from ..io.readers import is_astroenhance_output

    folder = Path(folder)
    excluded = _manifest_excludes(folder)
    out = []
    for p in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        why = ("flagged in MANIFEST.csv" if p.name in excluded else
               "an astroenhance output: its detail is the networks' own" if is_astroenhance_output(p) else "")
        if not why:
            out.append(p)
        elif left_out is not None:
            left_out.append((p, why))
    return out


def load_rgb(path: Path) -> np.ndarray:
    """An image as ``(H, W, 3)`` uint8 RGB, read as `run` reads pictures: upright (EXIF orientation), 16-bit and
    float images scaled from their data type's range (Pillow's own conversion clipped 16-bit grey at 255: nearly
    white), 16-bit colour PNG and TIFF at their depth, transparent pixels black."""
    from ..io.readers import read_picture

    src = read_picture(Path(path))
    lo, hi = src.dtype_range
    data = src.read_rows(0, src.shape[0])
    scaled = np.nan_to_num((data - lo) / (hi - lo), nan=0.0).clip(0.0, 1.0)
    rgb = np.floor(scaled * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(rgb[..., None], 3, axis=2) if rgb.ndim == 2 else rgb


GREY = "grey (its channels equal): no colour to learn from"


def is_grey(im: np.ndarray) -> bool:
    """Whether an ``(H, W, 3)`` uint8 image is grey: 99.9% of its pixels with channels within 2 levels of each
    other (a grey picture saved as JPEG keeps a few pixels apart)."""
    spread = im.max(axis=2).astype(np.int16) - im.min(axis=2)
    return float(np.mean(spread > 2)) <= 1e-3


@dataclass
class ImagePool:
    """Images held in memory as uint8 ``(H, W, 3)``; crops are taken from them at random."""

    images: list[np.ndarray]
    names: list[str]
    thumb_size: int = 128
    # > 0: each crop's thumbnail shows a random window around the crop, its sides this fraction of the image's
    # or more, instead of the whole image — so the global branch cannot learn each image's colours by heart
    thumb_jitter: float = 0.0
    # > 1: each crop is taken zoomed out by a random whole factor 1..scale_jitter (a region that many times
    # the crop side, area-averaged down to it), so the networks also see objects smaller than the training
    # images show them — as on a 4x-smaller frame, or a survey with coarser pixels
    scale_jitter: int = 1
    # "area": crops spread evenly over all pixels (a large image gives more crops); "image": each image as likely
    # as any other, as when scores are averaged over images
    sample_by: str = "area"
    left_out: list[tuple[Path, str]] = field(default_factory=list)  # images of the folder not used, and why

    def __post_init__(self) -> None:
        # whole-image thumbnails for the colorizer's global branch, made as `run` makes them
        self.thumbs = [self._thumbnail(im) for im in self.images]
        if self.sample_by not in ("area", "image"):
            raise SettingsError(f"sample_by must be 'area' or 'image' (got {self.sample_by!r})")
        area = np.array([im.shape[0] * im.shape[1] if self.sample_by == "area" else 1 for im in self.images], dtype=float)
        self.pick_probability = area / area.sum()

    @classmethod
    def from_folder(cls, folder: str | Path, min_size: int = 0, limit: int | None = None,
                    thumb_size: int = 128, thumb_jitter: float = 0.0, scale_jitter: int = 1,
                    sample_by: str = "area", colour: bool = False) -> ImagePool:
        """The images under ``folder`` (`list_images`) of ``min_size`` pixels a side or more; with ``colour`` (a
        colorizer's data) grey images are left out too: they would teach that nothing has colour."""
        left_out: list[tuple[Path, str]] = []
        paths = list_images(folder, left_out)[:limit]
        images, names = [], []
        for p in paths:
            try:
                im = load_rgb(p)
            except InputError as exc:  # one broken file among thousands: named, the others trained on
                left_out.append((p, str(exc).removeprefix(f"{p}: ")))
                continue
            if min(im.shape[:2]) < min_size:
                left_out.append((p, f"{im.shape[1]}x{im.shape[0]} pixels, under the crop's {min_size}"))
            elif colour and is_grey(im):
                left_out.append((p, GREY))
            else:
                images.append(im)
                names.append(p.name)
        if not images:
            grey = sum(why == GREY for _, why in left_out)
            raise SettingsError(f"no usable images (>= {min_size} px" + (", in colour" if colour else "")
                                + f") under {folder}" + (f" ({grey} grey)" if grey else ""))
        return cls(images, names, thumb_size, thumb_jitter, scale_jitter, sample_by,
                   [(p, why) for p, why in left_out if why != "flagged in MANIFEST.csv"])

    def _plan(self, rng: np.random.Generator, batch: int, size: int) -> list[tuple[int, int, int, bool, int, int]]:
        """Which crops a batch takes: ``(image, y, x, flip, quarter_turns, zoom_out)`` each, drawn from ``rng``
        (the region is ``size * zoom_out`` pixels square; zoom_out is drawn only when ``scale_jitter > 1``)."""
        idx = rng.choice(len(self.images), size=batch, p=self.pick_probability)
        plan = []
        for i in idx:
            h, w = self.images[i].shape[:2]
            f = 1
            if self.scale_jitter > 1:
                f = int(rng.integers(1, max(1, min(self.scale_jitter, min(h, w) // size)) + 1))
            y = int(rng.integers(0, h - size * f + 1))
            x = int(rng.integers(0, w - size * f + 1))
            flip = bool(rng.random() < 0.5)
            plan.append((int(i), y, x, flip, int(rng.integers(4)), f))
        return plan

    def crops(self, rng: np.random.Generator, batch: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Random crops ``(B, size, size, 3)`` with flips and 90-degree turns (and zoomed out, see
        ``scale_jitter``), float32 in [0, 1], and the thumbnails ``(B, T, T, 3)`` of the images they came from, turned the same way."""
        out = np.empty((batch, size, size, 3), dtype=np.float32)
        thumbs = np.empty((batch, self.thumb_size, self.thumb_size, 3), dtype=np.float32)
        for k, (i, y, x, flip, turns, f) in enumerate(self._plan(rng, batch, size)):
            c, th = self.images[i][y:y + size * f, x:x + size * f], self.thumbs[i]
            if f > 1:  # block sums (exact), divided once below: the same float32 as the device pool's
                c = c.reshape(size, f, size, f, 3).sum((1, 3), dtype=np.float64)
            if self.thumb_jitter > 0:
                th = self._window_thumb(rng, i, y, x, size * f)
            if flip:
                c, th = c[:, ::-1], th[:, ::-1]
            out[k] = np.rot90(c, k=turns) / (255.0 * f * f)
            thumbs[k] = np.rot90(th, k=turns) / 255.0
        return out, thumbs

    def _window_thumb(self, rng: np.random.Generator, i: int, y: int, x: int, size: int) -> np.ndarray:
        """Thumbnail of a random window containing the crop at ``(y, x)``, sides >= ``thumb_jitter`` of the image's."""
        im = self.images[i]
        h, w = im.shape[:2]
        wh = max(size, round(h * rng.uniform(self.thumb_jitter, 1.0)))
        ww = max(size, round(w * rng.uniform(self.thumb_jitter, 1.0)))
        y0 = int(rng.integers(max(0, y + size - wh), min(y, h - wh) + 1))
        x0 = int(rng.integers(max(0, x + size - ww), min(x, w - ww) + 1))
        return self._thumbnail(np.ascontiguousarray(im[y0:y0 + wh, x0:x0 + ww]))

    def _thumbnail(self, im: np.ndarray) -> np.ndarray:
        """``(T, T, 3)`` uint8 box-filtered thumbnail of ``im`` (as `run` makes the colorizer's whole-frame one)."""
        return np.asarray(Image.fromarray(im).resize((self.thumb_size,) * 2, Image.BOX))

    def on_device(self, device: torch.device | str) -> DeviceImagePool:
        return DeviceImagePool(self, device)


class DeviceImagePool:
    """The same images held as uint8 tensors on ``device`` (a GPU), cropped there: the same crops as
    `ImagePool.crops` for the same ``rng``, returned as ``(B, 3, S, S)`` tensors, so a fast GPU is not left
    waiting for crops made on the host."""

    def __init__(self, pool: ImagePool, device: torch.device | str) -> None:
        if pool.thumb_jitter > 0:
            raise SettingsError("thumbnail jitter is made on the host; hold the images there (data_on_device=False)")
        self.pool = pool
        # (copied: images decoded by PIL are read-only arrays, which torch.from_numpy warns about)
        self.images = [torch.from_numpy(np.array(im)).to(device) for im in pool.images]
        self.thumbs = [torch.from_numpy(np.array(th)).to(device) for th in pool.thumbs]

    def crops(self, rng: np.random.Generator, batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        out, thumbs, scale = [], [], []
        for i, y, x, flip, turns, f in self.pool._plan(rng, batch, size):
            c, th = self.images[i][y:y + size * f, x:x + size * f], self.thumbs[i]
            if self.pool.scale_jitter > 1:  # block sums, exact in float32 (uint8 crops otherwise, converted once)
                c = c.float().reshape(size, f, size, f, 3).sum((1, 3))
            if flip:
                c, th = c.flip(1), th.flip(1)
            out.append(torch.rot90(c, turns, (0, 1)))
            thumbs.append(torch.rot90(th, turns, (0, 1)))
            scale.append(255.0 * f * f)
        div = torch.tensor(scale, device=out[0].device)[:, None, None, None]
        crops = torch.stack(out).permute(0, 3, 1, 2).float().div_(div).contiguous()
        return crops, torch.stack(thumbs).permute(0, 3, 1, 2).float().div_(255.0).contiguous()

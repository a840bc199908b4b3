"""`astroenhance prepare`: cut large colour images into training tiles with a deterministic split.

As the paper did — tiles of a fixed size (2040x1356 by default), PNG, an 80/10/10 split — but without its
accidents: nothing in the source folder is modified or deleted (grey images are *skipped*, not removed),
tiles of one source image all go to the same split (no leakage of an image into its own validation
set), and every decision is written to ``prepare.json``.

Tiles along an axis: ``n = ceil(length / tile)`` tiles spread evenly from edge to edge, so where the
tile does not divide the image the neighbours overlap instead of leaving a strip unused.  Images smaller
than one tile in either direction are discarded (listed in the record).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import SettingsError
from ..io.writers import TEMP_MARKER, write_whole
from ..models.weights import sha256_file
from .data import list_images, load_rgb

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PrepareConfig:
    tile: tuple[int, int] = (2040, 1356)  # width, height
    split: tuple[int, int, int] = (80, 10, 10)
    seed: int = 0
    grey_tolerance: float = 2 / 255  # an image whose channels never differ by more than this is grey


def parse_tile(text: str) -> tuple[int, int]:
    """``"2040x1356"`` -> ``(2040, 1356)`` (width, height); ``"512"`` -> ``(512, 512)``."""
    parts = text.lower().split("x")
    try:
        w, h = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else (0, 0)
    except ValueError:
        w = h = 0
    if w < 16 or h < 16:
        raise SettingsError(f"--tile must be WIDTHxHEIGHT of at least 16 pixels each (got {text!r})")
    return w, h


def parse_split(text: str) -> tuple[int, int, int]:
    """``"80/10/10"`` -> ``(80, 10, 10)``: train/val/test proportions (any positive scale)."""
    try:
        parts = tuple(int(p) for p in text.split("/"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or sum(parts) == 0:
        raise SettingsError(f"--split must be three non-negative integers like 80/10/10 (got {text!r})")
    return parts  # type: ignore[return-value]


def tile_starts(length: int, tile: int) -> list[int]:
    """Evenly spread starts of ``ceil(length / tile)`` tiles covering ``length`` (overlapping if needed)."""
    if length < tile:
        return []
    n = -(-length // tile)
    return [0] if n == 1 else [round(i * (length - tile) / (n - 1)) for i in range(n)]


def assign_splits(names: list[str], split: tuple[int, int, int], seed: int) -> dict[str, str]:
    """Source image -> split, from a seeded permutation of the sorted names (same inputs, same answer)."""
    order = sorted(names)
    perm = np.random.default_rng(seed).permutation(len(order))
    total = sum(split)
    n_train = round(len(order) * split[0] / total)
    n_val = round(len(order) * split[1] / total)
    out = {}
    for rank, i in enumerate(perm):
        out[order[i]] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"
    return out


def _is_grey(rgb: np.ndarray, tol: float) -> bool:
    spread = rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1).astype(np.int16)
    return float(np.percentile(spread, 99.9)) <= tol * 255


#: the name of a tile `prepare` writes: ``<stem>_y<Y>_x<X>.png``
TILE_NAME = re.compile(r".+_y\d+_x\d+\.png")


def _check_earlier(dst: Path) -> list[Path]:
    """The tiles an earlier `prepare` left in ``dst``'s split folders (named like `TILE_NAME`); any other file
    there is a `SettingsError`, before anything is written or removed (they are not ours to delete)."""
    tiles, others = [], []
    for name in SPLITS:
        if (dst / name).is_dir():
            for f in (dst / name).iterdir():
                ours = TILE_NAME.fullmatch(f.name) or TEMP_MARKER in f.name  # (a tile, or one cut short by a kill)
                (tiles if f.is_file() and ours else others).append(f)
    if others:
        raise SettingsError(f"{dst}: its {others[0].parent.name}/ holds files prepare did not write (e.g. "
                            f"{others[0].name}); choose an empty output folder")
    return tiles


def _clear_earlier(dst: Path, tiles: list[Path]) -> None:
    """Remove an earlier `prepare`'s ``tiles`` (`_check_earlier`) and record from ``dst``: its tiles of another
    size, or of images a new seed puts in another split, would stay beside the new ones — the same image in
    train/ and val/."""
    for f in tiles:
        f.unlink(missing_ok=True)
    (dst / "prepare.json").unlink(missing_ok=True)


def prepare(src: str | Path, dst: str | Path, cfg: PrepareConfig = PrepareConfig()) -> dict:
    """Write ``dst/{train,val,test}/<stem>_y<Y>_x<X>.png`` and ``dst/prepare.json``; return the record.

    ``src`` is only read.  ``dst`` must not be inside ``src`` (or be it).
    """
    src, dst = Path(src).resolve(), Path(dst).resolve()
    if not src.is_dir():
        raise SettingsError(f"{src}: not a folder")
    if dst == src or src in dst.parents:
        raise SettingsError(f"{dst}: the output folder must not be inside the source folder {src}")
    earlier = _check_earlier(dst)  # (before the images are read: a folder that is not ours is refused at once)
    tw, th = cfg.tile
    left_out: list[tuple[Path, str]] = []
    paths = list_images(src, left_out)
    if not paths:
        raise SettingsError(f"{src}: no images (.png, .jpg, .tif)")
    from .. import __version__
    from ..config import utc_now

    record: dict = {"tool": f"astroenhance {__version__}", "utc": utc_now(), "source": str(src), "tile": [tw, th],
                    "split": list(cfg.split), "seed": cfg.seed, "images": [], "skipped": []}
    for p, why in left_out:
        record["skipped"].append({"file": str(p.relative_to(src)), "reason": why})
    usable: list[tuple[Path, np.ndarray]] = []
    for p in paths:
        try:
            rgb = load_rgb(p)
        except Exception as exc:  # noqa: BLE001 - any unreadable image is skipped with its reason
            record["skipped"].append({"file": str(p.relative_to(src)), "reason": f"unreadable ({exc})"})
            continue
        h, w = rgb.shape[:2]
        if w < tw or h < th:
            record["skipped"].append({"file": str(p.relative_to(src)), "reason": f"smaller than a tile ({w}x{h})"})
        elif _is_grey(rgb, cfg.grey_tolerance):
            record["skipped"].append({"file": str(p.relative_to(src)), "reason": "grey (no colour to learn)"})
        else:
            usable.append((p, rgb))
    splits = assign_splits([str(p.relative_to(src)) for p, _ in usable], cfg.split, cfg.seed)
    _clear_earlier(dst, earlier)
    for name in SPLITS:
        (dst / name).mkdir(parents=True, exist_ok=True)
    for p, rgb in usable:
        rel = str(p.relative_to(src))
        split = splits[rel]
        stem = rel.rsplit(".", 1)[0].replace(os.sep, "__")
        tiles = []
        for y in tile_starts(rgb.shape[0], th):
            for x in tile_starts(rgb.shape[1], tw):
                out = dst / split / f"{stem}_y{y}_x{x}.png"
                tile = Image.fromarray(np.ascontiguousarray(rgb[y:y + th, x:x + tw]))
                write_whole(out, lambda tmp, tile=tile: tile.save(tmp, format="PNG"), "the tile")
                tiles.append({"file": str(out.relative_to(dst)), "y": y, "x": x})
        record["images"].append({"file": rel, "sha256": sha256_file(p), "size": [rgb.shape[1], rgb.shape[0]],
                                 "split": split, "tiles": tiles})
    record["counts"] = {s: sum(len(i["tiles"]) for i in record["images"] if i["split"] == s) for s in SPLITS}
    text = json.dumps(record, indent=2) + "\n"
    write_whole(dst / "prepare.json", lambda tmp: tmp.write_text(text), "the record")
    return record

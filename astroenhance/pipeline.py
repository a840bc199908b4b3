"""Frame in, enhanced frame out: normalise -> tile -> colorize -> upscale -> blend -> flux -> write.

The networks are loaded once into an `Enhancer`; `Enhancer.enhance` holds no state between calls.
Luminance and chroma travel separately: the colorizer predicts BT.709 chroma at the frame's own
resolution, the super-resolution network upscales luminance, chroma is upscaled bicubically (it is
smooth), and the two are recombined with the chroma shrunk just enough to stay in gamut — so the output
luminance is exactly the (upscaled, flux-consistent) input luminance.
"""

from __future__ import annotations

import datetime as _dt
import errno
import math
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from astropy.io import fits

from . import __version__
from .config import FORMAT_SUFFIX, FORMATS, EnhanceConfig
from .errors import DeviceError, DiskFullError, InputError, OutputError
from .imaging.color import conserve_block_means, fit_chroma_to_gamut, rgb_to_ycbcr, ycbcr_to_rgb
from .imaging.normalize import Normalizer, make_stretch, parse_interval
from .imaging.tiling import TileGrid
from .imaging.wcs import scale_wcs, wcs_header
from .io.readers import FrameSource, is_fits, open_frames, output_stem
from .io.writers import FITSRGBWriter, ImageWriter
from .models.srresnet import estimate_noise, gate_map, noise_gate, require_luminance
from .models.weights import WeightsInfo, default_weights_dir, find_weights, load_network, sha256_file

BAND_WIDTH = 1024  # input columns a band spans at most (one tile where wider): memory does not grow with the width
GATE_STRIP = 256  # input rows at a time when measuring the noise gate's coverage (`Enhancer.sr_detail_fraction`)
FINISH_ROWS = 16  # input rows finished at a time (blend, flux projection, colour): bounded temporaries
COLOR_CHUNK = 1024  # input columns (plus margins) per colorizer pass: its full-resolution activations are bounded
NOT_MEASUREMENT = ("Generated detail is not measurement: colour and sub-pixel structure are predicted "
                   "by neural networks; use the input frame for photometry and astrometry.")


# ---- device and precision ---------------------------------------------------------------------------

def resolve_device(device: str, precision: str) -> torch.device:
    """The torch device for ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``), checked with ``precision``."""
    if precision not in ("fp32", "bf16", "fp16"):
        raise DeviceError(f"unknown precision {precision!r}; choose fp32, bf16 or fp16")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but no CUDA GPU is available to torch here "
                          "(use --device cpu or --device auto)")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise DeviceError(f"unknown device {device!r}; choose auto, cpu or cuda")
    if device == "cpu" and precision == "fp16":
        raise DeviceError("fp16 is not supported on CPU (slow and known to crash in peers); use bf16 or fp32")
    return torch.device(device)


def slow_cpu_bf16(device: torch.device, precision: str) -> str:
    """A warning (or "") for bf16 on a CPU without native bf16 (AVX512-BF16 or AMX): oneDNN then emulates it:
    `benchmarks/bench_speed.py` on an AVX2-only CPU, a 224² tile through `run`: 6-8x slower than fp32."""
    if device.type != "cpu" or precision != "bf16":
        return ""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if None in probes or any(probe() for probe in probes):  # native, or a torch too old to say: no warning
        return ""
    return ("--precision bf16 on this CPU (no AVX512-BF16 or AMX) is emulated and several times slower "
            "than fp32; use fp32 here")


# ---- flux consistency -------------------------------------------------------------------------------

def project_block_means(out: np.ndarray, target: np.ndarray, scale: int, iterations: int = 48) -> np.ndarray:
    """Shift each ``scale x scale`` block of ``out`` so its mean equals ``target`` and values stay in [0, 1].

    For every block the result is ``clip(out + tau, 0, 1)`` with ``tau`` found by bisection — the closest
    (least-squares) block in [0, 1] with the required mean.  ``target`` must lie in [0, 1].
    """
    h, w = target.shape
    n = scale * scale
    blocks = out.reshape(h, scale, w, scale).transpose(0, 2, 1, 3).reshape(h * w, n).astype(np.float64)
    t = target.reshape(-1).astype(np.float64)
    # most blocks need only the plain shift; bisection only where the shift would leave [0, 1]
    blocks += (t - blocks.mean(axis=1))[:, None]
    bad = np.flatnonzero((blocks.min(axis=1) < 0) | (blocks.max(axis=1) > 1))
    if bad.size:
        b, tb = blocks[bad], t[bad]
        lo = tb - b.max(axis=1) - 1e-12
        hi = tb - b.min(axis=1) + 1e-12
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            too_high = np.clip(b + mid[:, None], 0.0, 1.0).mean(axis=1) > tb
            hi = np.where(too_high, mid, hi)
            lo = np.where(too_high, lo, mid)
        fixed = np.clip(b + (0.5 * (lo + hi))[:, None], 0.0, 1.0)
        # remove the bisection's last rounding with a shift of the pixels strictly inside (0, 1)
        inside = (fixed > 0) & (fixed < 1)
        count = inside.sum(axis=1)
        corr = np.where(count > 0, (tb - fixed.mean(axis=1)) * n / np.maximum(count, 1), 0.0)
        fixed += corr[:, None] * inside
        blocks[bad] = np.clip(fixed, 0.0, 1.0)  # only removes float64 dust (~1e-17)
    return blocks.reshape(h, w, scale, scale).transpose(0, 2, 1, 3).reshape(h * scale, w * scale).astype(np.float32)


# ---- results ----------------------------------------------------------------------------------------

@dataclass
class FrameResult:
    """What enhancing one frame produced."""

    source: str
    outputs: list[Path]
    shape_in: tuple[int, int]
    shape_out: tuple[int, int]
    normalizer: Normalizer
    notes: list[str] = field(default_factory=list)


@dataclass
class EnhancedArray:
    """In-memory result of `Enhancer.enhance_array`: RGB display values, luminance, and the output WCS."""

    rgb: np.ndarray  # (H*s, W*s, 3) float32 in [0, 1], NaN where the input had no data; rows as the input
    luminance: np.ndarray  # (H*s, W*s)
    wcs: object
    normalizer: Normalizer
    header: fits.Header


class _ArraySink:
    """Collects strips in memory (for the Python API on arrays that fit in memory)."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.rgb = np.zeros((*shape, 3), dtype=np.float32)
        self.lum = np.zeros(shape, dtype=np.float32)

    def put(self, row0: int, row1: int, col0: int, rgb: np.ndarray, lum: np.ndarray) -> None:
        self.rgb[row0:row1, col0:col0 + rgb.shape[1]] = rgb
        self.lum[row0:row1, col0:col0 + lum.shape[1]] = lum


class _BandCarry:
    """The blend sums (L, Cb, Cr, weight) a column band leaves in the columns it shares with the next band,
    for every output row, kept in an unnamed temporary file rather than memory (its size grows with the
    frame's height) so that no tile is computed twice.  Written once by one band, read once by the next."""

    def __init__(self, cols: int) -> None:
        self.cols = cols
        self._row_bytes = cols * 4 * 4
        try:
            self._file = tempfile.TemporaryFile(prefix="astroenhance-band-")
        except OSError as exc:
            raise self._error(exc, "creating") from None

    def write(self, row0: int, block: np.ndarray) -> None:
        try:
            self._file.seek(row0 * self._row_bytes)
            self._file.write(np.ascontiguousarray(block, dtype=np.float32).data)
        except OSError as exc:
            raise self._error(exc, "writing") from None

    @staticmethod
    def _error(exc: OSError, doing: str) -> OutputError:
        where = tempfile.gettempdir()
        kind = DiskFullError if exc.errno in (errno.ENOSPC, errno.EDQUOT) else OutputError
        return kind(f"{where}: {doing} the temporary file for a band's shared columns failed "
                    f"({exc.strerror or exc}); set TMPDIR to a writable folder with space")

    def read(self, row0: int, row1: int) -> np.ndarray:
        out = np.empty((row1 - row0, self.cols, 4), dtype=np.float32)
        self._file.seek(row0 * self._row_bytes)
        if self._file.readinto(out.data) != out.nbytes:
            raise OSError("band carry file shorter than written")
        return out

    def close(self) -> None:
        self._file.close()


# ---- the engine -------------------------------------------------------------------------------------

class Enhancer:
    """Loads the networks for a configuration once; enhances any number of frames.

    Parameters
    ----------
    config : EnhanceConfig
        Settings; per-input defaults (stretch, interval, flux mode, formats) are resolved per frame.
    """

    def __init__(self, config: EnhanceConfig = EnhanceConfig()) -> None:
        if config.scale not in (1, 2, 4) and config.upscale:
            raise ValueError(f"--scale must be 4 for the shipped networks (got {config.scale})")
        if config.formats:
            bad = [f for f in config.formats if f not in FORMATS]
            if bad:
                raise ValueError(f"unknown format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
        if config.stretch:
            make_stretch(config.stretch)
        if config.interval:
            parse_interval(config.interval)
        if config.tile < 16 or not 0 <= config.overlap < config.tile:
            raise ValueError(f"need tile >= 16 and 0 <= overlap < tile (got tile={config.tile}, overlap={config.overlap})")
        self.config = config
        self.device = resolve_device(config.device, config.precision)
        self.weights_dir = Path(config.weights) if config.weights else default_weights_dir()
        self.sr: torch.nn.Module | None = None
        self.colorizer: torch.nn.Module | None = None
        self.sr_info: WeightsInfo | None = None
        self.colorizer_info: WeightsInfo | None = None
        if config.upscale:
            self.sr_info = find_weights(self.weights_dir, "sr", config.sr_model)
            self.sr = self._prepare(load_network(self.weights_dir, self.sr_info))
            scale = getattr(self.sr, "scale", 4)
            require_luminance(self.sr, f"`run` ({self.sr_info.id})")
            if scale != config.scale:
                raise ValueError(f"the {config.sr_model} network upscales by {scale}, not --scale {config.scale}")
        if config.colorize:
            self.colorizer_info = find_weights(self.weights_dir, "colorize", "default")
            self.colorizer = self._prepare(load_network(self.weights_dir, self.colorizer_info))
        self.scale = config.scale if config.upscale else 1
        self.batch = config.batch or (8 if self.device.type == "cuda" else 1)

    def _prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        if self.device.type == "cpu":
            model = model.to(memory_format=torch.channels_last)
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def _autocast(self):
        if self.config.precision == "fp32":
            return torch.autocast(self.device.type, enabled=False)
        dtype = torch.bfloat16 if self.config.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _run(self, model: torch.nn.Module, x: np.ndarray, context: torch.Tensor | None = None) -> np.ndarray:
        """Run ``model`` on ``x`` ``(N, C, h, w)`` in batches; returns float32 numpy."""
        outs = []
        with torch.inference_mode(), self._autocast():
            for i in range(0, x.shape[0], self.batch):
                t = torch.from_numpy(np.ascontiguousarray(x[i:i + self.batch])).to(self.device)
                if self.device.type == "cpu":
                    t = t.contiguous(memory_format=torch.channels_last)
                if context is None:
                    outs.append(model(t).float().cpu().numpy())
                else:
                    outs.append(model(t, context=context.expand(t.shape[0], -1)).float().cpu().numpy())
        return np.concatenate(outs, axis=0)

    # ---- per-frame steps ------------------------------------------------------------------------
    def fit_normalizer(self, src: FrameSource, cfg: EnhanceConfig) -> Normalizer:
        rows = src.sample()  # evenly strided whole rows
        try:
            norm = Normalizer.fit(rows.reshape(-1) if src.channels == 3 else rows, cfg.stretch or "linear",
                                  cfg.interval or "range", src.dtype_range)
        except InputError as exc:
            raise InputError(f"{src.name}: {exc}") from None
        # the noise of the display luminance, from neighbouring pixels of the sampled rows (for the noise gate)
        disp = norm(rows)
        lum = rgb_to_ycbcr(disp)[0] if src.channels == 3 else disp
        return replace(norm, noise=estimate_noise(lum))

    def _normalized_rows(self, src: FrameSource, norm: Normalizer, y0: int, y1: int, x0: int = 0, x1: int | None = None):
        """Normalized luminance ``(n, w)``, chroma ``(n, w, 2)`` or None, and the no-data mask."""
        raw = src.read_rows(y0, y1)[:, x0:x1]
        if src.channels == 3:
            mask = np.isnan(raw).any(axis=-1)
            disp = np.nan_to_num(norm(raw), nan=0.0)
            lum, chroma = rgb_to_ycbcr(disp)
            return lum.astype(np.float32), chroma.astype(np.float32), mask
        mask = np.isnan(raw)
        return np.nan_to_num(norm(raw), nan=0.0), None, mask

    def _context(self, src: FrameSource, norm: Normalizer) -> torch.Tensor | None:
        """The colorizer's whole-frame context, from a thumbnail built strip by strip."""
        if self.colorizer is None:
            return None
        h, w = src.shape
        f = max(1, math.ceil(max(h, w) / 1024))
        step = f * max(1, 256 // f)  # about 256 rows at a time, a multiple of f: bounded memory
        rows = []
        for y in range(0, h, step):
            lum = self._normalized_rows(src, norm, y, min(h, y + step))[0]
            ph, pw = (-lum.shape[0]) % f, (-lum.shape[1]) % f
            lum = np.pad(lum, ((0, ph), (0, pw)), mode="edge")
            rows.append(lum.reshape(lum.shape[0] // f, f, lum.shape[1] // f, f).mean(axis=(1, 3)))
        small = torch.from_numpy(np.concatenate(rows, axis=0)[None, None].astype(np.float32))
        size = self.colorizer.thumb_size
        thumb = F.interpolate(small, size=(size, size), mode="area" if min(small.shape[-2:]) >= size else "bilinear",
                              align_corners=None if min(small.shape[-2:]) >= size else False)
        with torch.inference_mode():
            return self.colorizer.global_features(thumb.to(self.device)).float()

    def sr_detail_fraction(self, src: FrameSource, cfg: EnhanceConfig, norm: Normalizer) -> float:
        """The share of the output's valid pixels that carry the SR network's detail: 0 without SR, 1 without the
        noise gate, else where `noise_gate` lets it through.  Computed on the whole frame, strip by strip (exact:
        the gate looks 3 pixels around), where `run` gates tile by tile: tile borders may differ by a pixel."""
        if self.sr is None:
            return 0.0
        if not cfg.noise_gate or norm.noise <= 0:
            return 1.0
        h = src.shape[0]
        kept = valid = 0
        for y in range(0, h, GATE_STRIP):
            a, b = max(0, y - 3), min(h, y + GATE_STRIP + 3)
            lum, _, mask = self._normalized_rows(src, norm, a, b)
            g = gate_map(torch.from_numpy(lum.astype(np.float32))[None, None], norm.noise)[0, 0].numpy()
            rows = slice(y - a, y - a + min(GATE_STRIP, h - y))
            ok = ~mask[rows]
            kept += int((g[rows] > 0)[ok].sum())
            valid += int(ok.sum())
        return kept / valid if valid else 0.0

    def process(self, src: FrameSource, cfg: EnhanceConfig,
                put: Callable[[int, int, int, np.ndarray, np.ndarray], None],
                progress: Callable[[int, int], None] | None = None, norm: Normalizer | None = None) -> Normalizer:
        """Enhance ``src`` piece by piece; ``put(out_row0, out_row1, out_col0, rgb, lum)`` receives each final piece.

        Rows are in the source's own order.  ``rgb`` is ``(rows, cols, 3)`` display values in [0, 1] with NaN
        where the input had no data.  Work proceeds in column bands and, within a band, in strips of tile
        rows, so memory depends on the tile and band size, not on the frame size.
        """
        norm = norm or self.fit_normalizer(src, cfg)
        context = self._context(src, norm)
        h, w = src.shape
        s = self.scale
        grid = TileGrid(h, w, cfg.tile, cfg.overlap)
        tw = grid.tile_shape[1]
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, len(grid))

        carry_in: _BandCarry | None = None  # blend sums the previous band left in this band's first columns
        carry_out: _BandCarry | None = None
        try:
            for cols, emit0, emit1 in grid.column_bands(BAND_WIDTH):
                carry_out = _BandCarry((grid.col_starts[cols[-1]] + tw - emit1) * s) if emit1 < w else None
                self._process_band(src, cfg, norm, context, grid, cols, (emit0, emit1), carry_in, carry_out, put, tick)
                if carry_in is not None:
                    carry_in.close()
                carry_in = carry_out
        finally:  # temporary files go at once, also when a frame fails part-way
            for carry in (carry_in, carry_out):
                if carry is not None:
                    carry.close()
        return norm

    def _process_band(self, src: FrameSource, cfg: EnhanceConfig, norm: Normalizer, context: torch.Tensor | None,
                      grid: TileGrid, cols: list[int], emit: tuple[int, int], carry_in: _BandCarry | None,
                      carry_out: _BandCarry | None, put: Callable[[int, int, int, np.ndarray, np.ndarray], None],
                      tick: Callable[[], None]) -> None:
        """One column band: its tiles, one tile row at a time, blended into an accumulator a tile row high;
        rows no later tile row reaches are finished and ``put`` (input columns ``emit``), after adding the
        previous band's blend sums (``carry_in``) and handing this band's shared columns on (``carry_out``)."""
        s = self.scale
        th, tw = grid.tile_shape
        emit0, emit1 = emit
        bx0 = grid.col_starts[cols[0]]
        bx1 = grid.col_starts[cols[-1]] + tw
        acc = np.zeros((th * s, (bx1 - bx0) * s, 4), dtype=np.float32)  # weighted L, Cb, Cr; the weight
        acc_row0 = 0  # input row of acc[0]
        for r, y0 in enumerate(grid.row_starts):
            lum, chroma_in, mask = self._normalized_rows(src, norm, y0, y0 + th, bx0, bx1)
            starts = [grid.col_starts[c] - bx0 for c in cols]
            tiles_l = np.stack([lum[:, x0:x0 + tw] for x0 in starts])[:, None]  # (T, 1, th, tw)
            if self.colorizer is not None:
                chroma_t = self._colorize_tiles(src, norm, context, y0, [grid.col_starts[c] for c in cols],
                                                (th, tw), cfg.color_margin)  # (T, 2, th, tw)
            elif chroma_in is not None:
                chroma_t = np.stack([chroma_in[:, x0:x0 + tw].transpose(2, 0, 1) for x0 in starts])
            else:
                chroma_t = np.zeros((len(starts), 2, th, tw), dtype=np.float32)
            off = (y0 - acc_row0) * s
            step = self.batch if self.sr is not None else len(cols)
            for k0 in range(0, len(cols), step):  # a batch of tiles at a time: temporaries stay tile-sized
                k1 = min(len(cols), k0 + step)
                lum_b = self._run(self.sr, tiles_l[k0:k1]) if self.sr is not None else tiles_l[k0:k1]
                for k in range(k0, k1):
                    lum_k = torch.from_numpy(lum_b[k - k0:k - k0 + 1])  # (1, 1, th*s, tw*s)
                    chroma_k = torch.from_numpy(chroma_t[k:k + 1])
                    if self.sr is not None:
                        if cfg.noise_gate:
                            lum_k = noise_gate(lum_k, torch.from_numpy(tiles_l[k:k + 1]), s, norm.noise)
                        chroma_k = F.interpolate(chroma_k, scale_factor=s, mode="bicubic", align_corners=False)
                    win = grid.window(y0, grid.col_starts[cols[k]], s).astype(np.float32)
                    x0 = starts[k] * s
                    region = acc[off:off + th * s, x0:x0 + tw * s]
                    region[..., 0] += lum_k[0, 0].numpy() * win
                    region[..., 1] += chroma_k[0, 0].numpy() * win
                    region[..., 2] += chroma_k[0, 1].numpy() * win
                    region[..., 3] += win
                    tick()
                del lum_b
            final = grid.final_rows_after(r)
            for a in range(acc_row0, final, FINISH_ROWS):  # finish in short chunks: bounded temporaries
                b = min(a + FINISH_ROWS, final)
                rows = slice(a - y0, b - y0)
                cols_in = slice(emit0 - bx0, emit1 - bx0)
                done_rows = acc[(a - acc_row0) * s:(b - acc_row0) * s]  # no later tile row reaches them
                if carry_in is not None:
                    done_rows[:, :carry_in.cols] += carry_in.read(a * s, b * s)
                if carry_out is not None:
                    carry_out.write(a * s, done_rows[:, cols_in.stop * s:])
                piece = done_rows[:, cols_in.start * s:cols_in.stop * s]
                measured = chroma_in[rows, cols_in] if chroma_in is not None and self.colorizer is None else None
                rgb, out_l = self._finish(piece, lum[rows, cols_in], mask[rows, cols_in], cfg.flux_conserving,
                                          measured)
                put(a * s, b * s, emit0 * s, rgb, out_l)
            n = final - acc_row0
            if n > 0:
                keep = acc[n * s:].copy()
                acc[:] = 0
                acc[: keep.shape[0]] = keep
                acc_row0 = final

    def _colorize_tiles(self, src: FrameSource, norm: Normalizer, context: torch.Tensor, y0: int,
                        x_starts: list[int], shape: tuple[int, int], margin: int) -> np.ndarray:
        """Chroma of each tile of one tile row, from colorizer passes over runs of neighbouring tiles.

        The colorizer sees far (1/16-resolution bottleneck): each pass covers consecutive tiles about
        ``COLOR_CHUNK`` columns wide plus ``margin`` rows and columns of context on every side, so
        neighbouring tiles agree on colour, the activations (at full resolution) stay the same size
        whatever the frame, and the cost stays a small fraction of the super-resolution network's.
        """
        th, tw = shape
        h, w = src.shape
        ya, yb = max(0, y0 - margin), min(h, y0 + th + margin)
        out = np.empty((len(x_starts), 2, th, tw), dtype=np.float32)
        i = 0
        while i < len(x_starts):
            j = i + 1
            while j < len(x_starts) and x_starts[j] + tw - x_starts[i] <= max(COLOR_CHUNK, tw):
                j += 1
            xa, xb = max(0, x_starts[i] - margin), min(w, x_starts[j - 1] + tw + margin)
            lum = self._normalized_rows(src, norm, ya, yb, xa, xb)[0]
            chroma = self._run(self.colorizer, lum[None, None], context)[0]  # (2, rows, cols)
            for k in range(i, j):
                out[k] = chroma[:, y0 - ya:y0 - ya + th, x_starts[k] - xa:x_starts[k] - xa + tw]
            i = j
        return out

    def _finish(self, acc: np.ndarray, lum_in: np.ndarray, mask: np.ndarray, flux: bool | None,
                chroma_in: np.ndarray | None = None):
        """Final RGB and luminance of finished output rows from blend sums ``acc``; with ``flux``, block means
        of the luminance equal ``lum_in`` and, for a colour input (``chroma_in``, measured colour), so do the
        chroma's (then the gamut may shrink the chroma of a pixel, never its luminance)."""
        s = self.scale
        weight = acc[..., 3]
        lum = acc[..., 0] / weight
        chroma = acc[..., 1:3] / weight[..., None]
        if flux and s > 1:
            lum = project_block_means(lum, np.clip(lum_in, 0, 1), s)
            if chroma_in is not None:
                chroma = conserve_block_means(chroma, chroma_in, s)
        else:
            lum = np.clip(lum, 0.0, 1.0)
        chroma = fit_chroma_to_gamut(lum, chroma)
        rgb = ycbcr_to_rgb(lum, chroma).astype(np.float32)
        # the luminance of the output *is* lum; rounding in the rebuild must not push values out of [0, 1]
        np.clip(rgb, 0.0, 1.0, out=rgb)
        if mask.any():
            big = np.repeat(np.repeat(mask, s, axis=0), s, axis=1)
            rgb[big] = np.nan
            lum = lum.copy()
            lum[big] = np.nan
        return rgb, lum

    # ---- provenance -------------------------------------------------------------------------------
    def provenance(self, src: FrameSource, cfg: EnhanceConfig, norm: Normalizer) -> dict[str, object]:
        info = {
            "tool": f"astroenhance {__version__}",
            "input": src.path.name if src.path else src.name,
            "input_sha256": sha256_file(src.path) if src.path else "",
            "chip": src.label,
            "sr_weights": f"{self.sr_info.id} {self.sr_info.sha256}" if self.sr_info else "none",
            "colorizer_weights": f"{self.colorizer_info.id} {self.colorizer_info.sha256}" if self.colorizer_info else "none",
            "stretch": norm.stretch, "stretch_a": norm.a, "interval": norm.interval,
            "vmin": norm.vmin, "vmax": norm.vmax,
            "luminance": "BT.709 luma of display values",
            "tile": cfg.tile, "overlap": cfg.overlap, "scale": self.scale,
            "flux_conserving": bool(cfg.flux_conserving), "colorize": cfg.colorize, "upscale": cfg.upscale,
            "sr_model": cfg.sr_model if cfg.upscale else "none",
            "device": str(self.device), "precision": cfg.precision,
            "noise_gate": bool(cfg.noise_gate), "noise_sigma": norm.noise,
            "sr_detail_fraction": round(self.sr_detail_fraction(src, cfg, norm), 4),
            "utc": _utc_now(),
        }
        return info

    def headers(self, src: FrameSource, cfg: EnhanceConfig, norm: Normalizer,
                prov: dict[str, object] | None = None) -> tuple[fits.Header, fits.Header, list[str], object]:
        """Primary header (provenance), image header (WCS + kept keywords), notes, and the output WCS."""
        prov = prov or self.provenance(src, cfg, norm)
        primary = fits.Header()
        kept = src.header.copy() if src.header is not None else fits.Header()
        kept.remove("BUNIT", ignore_missing=True, remove_all=True)
        cards = [("AE_VER", __version__, "astroenhance version"),
                 ("AE_INPUT", str(prov["input"])[-68:], "input file"),
                 ("AE_INSHA", prov["input_sha256"], ""),
                 ("AE_CHIP", src.label, "chip/extension of the input"),
                 ("AE_SRW", self.sr_info.sha256 if self.sr_info else "none", ""),
                 ("AE_SRID", self.sr_info.id if self.sr_info else "none", "SR weights id"),
                 ("AE_COW", self.colorizer_info.sha256 if self.colorizer_info else "none", ""),
                 ("AE_COID", self.colorizer_info.id if self.colorizer_info else "none", "colorizer weights id"),
                 ("AE_STRCH", norm.stretch, "stretch (astropy.visualization)"),
                 ("AE_STRA", norm.a, "stretch parameter a"),
                 ("AE_INTVL", norm.interval, "interval"),
                 ("AE_VMIN", norm.vmin, "input value mapped to 0"),
                 ("AE_VMAX", norm.vmax, "input value mapped to 1"),
                 ("AE_LUMA", "BT709", "luminance = .2126R + .7152G + .0722B"),
                 ("AE_TILE", cfg.tile, "tile size (input pixels)"),
                 ("AE_OVLAP", cfg.overlap, "tile overlap (input pixels)"),
                 ("AE_SCALE", self.scale, "output pixels per input pixel"),
                 ("AE_FLUX", bool(cfg.flux_conserving), "block means equal input luminance"),
                 ("AE_COLOR", cfg.colorize, "colour predicted by the colorizer"),
                 ("AE_SRMOD", prov["sr_model"], "super-resolution model"),
                 ("AE_DEV", prov["device"], "device"),
                 ("AE_PREC", cfg.precision, "precision"),
                 ("AE_GATE", bool(cfg.noise_gate), "SR detail only above the input noise"),
                 ("AE_NOISE", float(norm.noise), "noise sigma of display luminance"),
                 ("AE_SRDET", prov["sr_detail_fraction"], "share of output pixels with SR network detail"),
                 ("AE_DATE", prov["utc"], "UTC time of processing"),
                 ("BUNIT", "display", "stretched display values in [0, 1], not flux")]
        for key, value, comment in cards:
            primary[key] = (value, comment)
        primary.add_comment(NOT_MEASUREMENT)
        for k, v in prov.items():
            primary.add_history(f"astroenhance {k}: {v}"[:72])
        notes = list(src.notes)
        out_wcs = None
        image = fits.Header()
        if src.wcs is not None:
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                out_wcs, wnotes = scale_wcs(src.wcs, self.scale) if self.scale != 1 else (src.wcs.deepcopy(), [])
            notes += wnotes
            for note in wnotes:
                primary.add_history(note[:72])
            if src.origin == "upper":
                out_wcs = None  # display images (top-down rows) carry no WCS of their own
            else:
                image.extend(wcs_header(out_wcs), unique=True)
        image.extend(kept, unique=True)
        image["BUNIT"] = ("display", "stretched display values in [0, 1], not flux")
        image.add_comment(NOT_MEASUREMENT)
        return primary, image, notes, out_wcs

    # ---- public entry points ------------------------------------------------------------------------
    def enhance_file(self, path: str | Path, outdir: str | Path, *, overwrite: bool = True,
                     progress: Callable[[int, int], None] | None = None) -> list[FrameResult]:
        """Enhance every frame (chip) of ``path`` into ``outdir``; returns one result per frame.

        Outputs are ``<stem>[.<chip>].enhanced.<ext>``, written under temporary names and renamed only
        when complete; on any error nothing is left under a final name.
        """
        path = Path(path)
        outdir = Path(outdir)
        cfg = self.config.for_input(is_fits(path))
        results = []
        with open_frames(path, cfg.hdu) as frames:
            for src in frames:
                results.append(self._enhance_source(src, cfg, outdir, path, progress))
        return results

    def planned_outputs(self, path: str | Path, outdir: str | Path) -> list[tuple[Path, tuple[int, int]]]:
        """Every output `enhance_file` would write for ``path``, with its ``(height, width)``."""
        path, outdir = Path(path), Path(outdir)
        cfg = self.config.for_input(is_fits(path))
        planned = []
        with open_frames(path, cfg.hdu) as frames:
            for src in frames:
                shape = (src.shape[0] * self.scale, src.shape[1] * self.scale)
                planned += [(p, shape) for p in self.output_paths(path, outdir, src.label, cfg.formats or ("png",)).values()]
        return planned

    def output_paths(self, path: Path, outdir: Path, label: str, formats: tuple[str, ...],
                     suffix: str = "enhanced") -> dict[str, Path]:
        stem = output_stem(path) + (f".{label}" if label else "")
        return {fmt: outdir / f"{stem}.{suffix}{FORMAT_SUFFIX[fmt]}" for fmt in formats}

    def write_display_source(self, src: FrameSource, outdir: str | Path, name: str, suffix: str) -> FrameResult:
        """Write an in-memory display image (values in [0, 1], e.g. a colour composite) through the same
        pipeline and writers as `enhance_file`: ``OUTDIR/<name>.<suffix>.<ext>``."""
        cfg = replace(self.config.for_input(False), stretch="linear", interval="range",
                      formats=self.config.formats or ("fits", "png"),
                      flux_conserving=True if self.config.flux_conserving is None else self.config.flux_conserving)
        return self._enhance_source(src, cfg, Path(outdir), Path(f"{name}.png"), None, suffix)

    def _enhance_source(self, src: FrameSource, cfg: EnhanceConfig, outdir: Path, path: Path,
                        progress: Callable[[int, int], None] | None, suffix: str = "enhanced") -> FrameResult:
        targets = self.output_paths(path, outdir, src.label, cfg.formats or ("png",), suffix)
        for target in targets.values():
            if target.resolve() == path.resolve():
                raise OutputError(f"{target}: would overwrite the input")
        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{outdir}: cannot create output folder ({exc.strerror or exc})") from None
        norm = self.fit_normalizer(src, cfg)
        prov = self.provenance(src, cfg, norm)
        primary, image, notes, out_wcs = self.headers(src, cfg, norm, prov)
        if self.sr is not None and prov["sr_detail_fraction"] == 0:
            notes.append("the noise gate kept none of the SR network's detail (AE_SRDET = 0): the luminance is "
                         "interpolation, flux-projected; --no-noise-gate shows the network's")
        h, w = src.shape
        shape_out = (h * self.scale, w * self.scale)
        writers: dict[str, FITSRGBWriter | ImageWriter] = {}
        prov_text = "; ".join(f"{k}={v}" for k, v in prov.items()) + ". " + NOT_MEASUREMENT
        try:
            for fmt, target in targets.items():
                if fmt == "fits":
                    writers[fmt] = FITSRGBWriter(target, shape_out, primary, image)
                else:
                    writers[fmt] = ImageWriter(target, shape_out, fmt, out_wcs, prov_text)
            hout = shape_out[0]

            def put(r0: int, r1: int, c0: int, rgb: np.ndarray, lum: np.ndarray) -> None:
                # FITS rows run bottom-up, image rows top-down
                fits_row0, img_row0, flip = (r0, hout - r1, True) if src.origin == "lower" else (hout - r1, r0, False)
                for fmt, wr in writers.items():
                    if fmt == "fits":
                        block = rgb if src.origin == "lower" else rgb[::-1]
                        for c in range(3):
                            wr.write_rows(c, fits_row0, block[..., c], c0)  # type: ignore[call-arg]
                    else:
                        wr.write_rows(img_row0, rgb[::-1] if flip else rgb, c0)  # type: ignore[call-arg]

            self.process(src, cfg, put, progress, norm)
            for wr in writers.values():
                wr.finish()
                notes += getattr(wr, "notes", [])
            outputs = [wr.publish() for wr in writers.values()]  # all complete: only now take final names
        except BaseException:
            for wr in writers.values():
                wr.abort()
            raise
        return FrameResult(src.name, outputs, (h, w), shape_out, norm, notes)

    def enhance_array(self, data: np.ndarray, wcs=None, *, is_fits_like: bool = True) -> EnhancedArray:
        """Enhance an in-memory ``(H, W)`` or ``(H, W, 3)`` array (rows bottom-up, as in FITS) and its WCS."""
        from .io.readers import from_array

        src = from_array(data, wcs, origin="lower", dtype_range=None if is_fits_like else _dtype_range(data))
        cfg = self.config.for_input(is_fits_like)
        sink = _ArraySink((src.shape[0] * self.scale, src.shape[1] * self.scale))
        norm = self.process(src, cfg, sink.put)
        primary, image, _, out_wcs = self.headers(src, cfg, norm)
        primary.extend(image, unique=True)
        return EnhancedArray(sink.rgb, sink.lum, out_wcs, norm, primary)


def _utc_now() -> str:
    """Now in UTC, or ``$SOURCE_DATE_EPOCH`` when set (reproducible, byte-identical reruns)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = (_dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch and epoch.isdigit()
           else _dt.datetime.now(_dt.timezone.utc))
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def _dtype_range(data: np.ndarray) -> tuple[float, float]:
    if data.dtype == np.uint8:
        return (0.0, 255.0)
    if data.dtype == np.uint16:
        return (0.0, 65535.0)
    return (0.0, 1.0)


def enhance(data: np.ndarray, wcs=None, config: EnhanceConfig = EnhanceConfig()) -> EnhancedArray:
    """Enhance an array (+ WCS) in one call: a fresh `Enhancer`, no state kept.  See `Enhancer.enhance_array`."""
    return Enhancer(config).enhance_array(data, wcs)

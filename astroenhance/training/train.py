"""The training loop for both networks, readable top to bottom.

A checkpoint is a plain dict: model, optimizer, step and the whole config, so a resume (and any later
reader) knows exactly what was trained.  Batches depend only on ``(seed, step)``, so ``--resume``
continues exactly where an uninterrupted run would be.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..imaging.color import KB, KR, LUMA_WEIGHTS
from ..models.registry import ARCHITECTURES, build_model
from ..models.srresnet import flux_project
from .data import ImagePool


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; stored in each checkpoint."""

    task: str  # "sr" or "colorize"
    data: str
    out: str
    arch: str = ""
    stage: str = "pretrain"  # sr only: "pretrain" (pixel loss) or "gan"
    iters: int = 10000
    batch: int = 16
    crop: int = 96  # high-resolution crop side (sr) or crop side (colorize)
    lr: float = 1e-3
    lr_min_factor: float = 0.05  # cosine decay to lr * lr_min_factor
    warmup: int = 100
    seed: int = 0
    val_data: str = ""
    val_every: int = 250
    ckpt_every: int = 250
    device: str = "cpu"
    threads: int = 0
    # colorize: extra weight on saturated pixels (the paper's remedy for washed-out colour). Measured here:
    # with 2.0 the held-out chroma RMS was worse than no colour at all after 750 steps (0.0597 vs 0.0547);
    # plain 0.0 is the default
    saturation_weight: float = 0.0

    def resolved_arch(self) -> str:
        return self.arch or ("srresnet-8x32" if self.task == "sr" else "resenc-colorizer")


def _rgb_to_ycc_torch(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 3, H, W)`` RGB -> luminance ``(N, 1, H, W)`` and chroma ``(N, 2, H, W)`` (BT.709)."""
    w = torch.tensor(LUMA_WEIGHTS, dtype=rgb.dtype, device=rgb.device)[None, :, None, None]
    y = (rgb * w).sum(1, keepdim=True)
    cb = (rgb[:, 2:3] - y) / KB
    cr = (rgb[:, 0:1] - y) / KR
    return y, torch.cat([cb, cr], 1)


def _gaussian_blur(x: torch.Tensor, size: int) -> torch.Tensor:
    sigma = size / 4.0
    r = torch.arange(size, dtype=x.dtype, device=x.device) - (size - 1) / 2
    k1 = torch.exp(-(r**2) / (2 * sigma**2))
    k1 = k1 / k1.sum()
    k = (k1[:, None] * k1[None, :]).expand(x.shape[1], 1, size, size)
    return F.conv2d(F.pad(x, [size // 2] * 4, mode="replicate"), k, groups=x.shape[1])


def colour_loss(pred: torch.Tensor, target: torch.Tensor, saturation_weight: float) -> torch.Tensor:
    """Mean of squared chroma distances, plain and after 3x3 and 5x5 Gaussian blurs (the paper's loss).

    Pixels whose true colour is saturated weigh more, ``1 + w * |chroma| / mean|chroma|``, so the
    network is not rewarded for painting everything grey.
    """
    sat = target.norm(dim=1, keepdim=True)
    weight = 1 + saturation_weight * sat / (sat.mean() + 1e-6)
    losses = [((pred - target) ** 2 * weight).mean()]
    for size in (3, 5):
        losses.append(((_gaussian_blur(pred, size) - _gaussian_blur(target, size)) ** 2 * weight).mean())
    return sum(losses) / 3


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``lr * lr_min_factor``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.iters - cfg.warmup))
    return cfg.lr * (cfg.lr_min_factor + (1 - cfg.lr_min_factor) * 0.5 * (1 + math.cos(math.pi * t)))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB for values in [0, 1], computed in float64."""
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


class Trainer:
    """Holds the model, optimizer and data for one run; `run` is the loop."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.arch = cfg.resolved_arch()
        spec = ARCHITECTURES[self.arch]
        if spec.task != cfg.task:
            raise ValueError(f"architecture {self.arch} is for task {spec.task!r}, not {cfg.task!r}")
        self.scale = spec.scale
        self.device = torch.device(cfg.device)
        self.model = build_model(self.arch).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8)
        self.step = 0
        self.pool = ImagePool.from_folder(cfg.data, min_size=cfg.crop)
        self.val = self._validation_batch()
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)

    # ---- data -------------------------------------------------------------------------------------
    def _validation_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed set of crops (seeded, independent of training batches), ``(N, 3, S, S)``, and thumbnails."""
        pool = ImagePool.from_folder(self.cfg.val_data, min_size=self.cfg.crop) if self.cfg.val_data else self.pool
        size = self.cfg.crop * 2 if self.cfg.task == "sr" else self.cfg.crop
        size = min(size, min(min(im.shape[:2]) for im in pool.images))
        size -= size % 16
        return self._to_tensors(pool.crops(np.random.default_rng([self.cfg.seed, 10**9]), 32, size))

    def _to_tensors(self, arrays: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(torch.from_numpy(a).permute(0, 3, 1, 2).contiguous().to(self.device) for a in arrays)  # type: ignore[return-value]

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.cfg.seed, step])
        return self._to_tensors(self.pool.crops(rng, self.cfg.batch, self.cfg.crop))

    # ---- losses -----------------------------------------------------------------------------------
    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        rgb, thumb_rgb = batch
        y, chroma = _rgb_to_ycc_torch(rgb)
        if self.cfg.task == "sr":
            lr = F.avg_pool2d(y, self.scale)  # 4x area mean: the flux-preserving low-resolution frame
            sr = flux_project(self.model(lr), lr, self.scale)
            return F.l1_loss(sr, y)
        pred = self.model(y, _rgb_to_ycc_torch(thumb_rgb)[0])
        return colour_loss(pred, chroma, self.cfg.saturation_weight)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """SR: luminance PSNR of the model and of bicubic; colorize: chroma RMS of the model and of grey."""
        self.model.eval()
        out: dict[str, float] = {}
        rgb, thumb_rgb = self.val
        y, chroma = _rgb_to_ycc_torch(rgb)
        if self.cfg.task == "sr":
            lr = F.avg_pool2d(y, self.scale)
            sr = flux_project(self.model(lr), lr, self.scale).clamp(0, 1)
            bic = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False).clamp(0, 1)
            out = {"val_psnr": psnr(sr, y), "val_psnr_bicubic": psnr(bic, y)}
        else:
            pred = self.model(y, _rgb_to_ycc_torch(thumb_rgb)[0])
            out = {"val_chroma_rms": torch.sqrt(((pred - chroma) ** 2).mean()).item(),
                   "val_chroma_rms_grey": torch.sqrt((chroma**2).mean()).item()}
        self.model.train()
        return out

    # ---- checkpoints ------------------------------------------------------------------------------
    def save(self) -> Path:
        path = self.out / "ckpt.pt"
        tmp = path.with_suffix(".pt.tmp")
        torch.save({"model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "step": self.step,
                    "arch": self.arch, "config": dataclasses.asdict(self.cfg)}, tmp)
        os.replace(tmp, path)
        return path

    def load(self, path: Path) -> None:
        ckpt = torch.load(path, map_location=self.device, weights_only=True)
        if ckpt["arch"] != self.arch:
            raise ValueError(f"checkpoint {path} holds {ckpt['arch']}, not {self.arch}")
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])

    # ---- the loop ---------------------------------------------------------------------------------
    def run(self, on_step: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
        """Train until ``cfg.iters``; checkpoint every ``ckpt_every`` steps and on interruption."""
        cfg = self.cfg
        (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        log_path = self.out / "log.csv"
        new_log = not log_path.exists()
        last: dict[str, float] = {}
        with open(log_path, "a", newline="") as fh:
            log = csv.writer(fh)
            if new_log:
                log.writerow(["step", "loss", "lr", "seconds", "metric", "value"])
            self.model.train()
            t0 = time.perf_counter()
            try:
                while self.step < cfg.iters:
                    lr = lr_at(self.step, cfg)
                    for group in self.opt.param_groups:
                        group["lr"] = lr
                    loss = self.loss(self._batch(self.step))
                    self.opt.zero_grad(set_to_none=True)
                    loss.backward()
                    self.opt.step()
                    self.step += 1
                    last = {"loss": loss.item(), "lr": lr}
                    log.writerow([self.step, f"{last['loss']:.6g}", f"{lr:.3g}", f"{time.perf_counter() - t0:.1f}", "", ""])
                    if self.step % cfg.val_every == 0 or self.step == cfg.iters:
                        metrics = self.validate()
                        last.update(metrics)
                        for k, v in metrics.items():
                            log.writerow([self.step, "", "", "", k, f"{v:.6g}"])
                    if self.step % cfg.ckpt_every == 0 or self.step == cfg.iters:
                        self.save()
                        fh.flush()
                    if on_step is not None:
                        on_step(self.step, last)
            except KeyboardInterrupt:
                self.save()
                raise
        return last

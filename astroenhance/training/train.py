"""The training loop for both networks, readable top to bottom.

A checkpoint is a plain dict: model, optimizer, step and the whole config, so a resume (and any later
reader) knows exactly what was trained.  Batches depend only on ``(seed, step)``, so ``--resume``
continues exactly where an uninterrupted run would be.
"""

from __future__ import annotations

import copy
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

from .. import interrupts
from ..errors import SettingsError, WeightsError
from ..imaging.color import rgb_to_ycbcr_planes, ycbcr_to_rgb_planes
from ..metrics import psnr
from ..models.discriminator import adversarial_loss, discriminator_loss
from ..models.registry import ARCHITECTURES, architecture, build_model
from ..models.weights import read_checkpoint, sha256_file
from ..pipeline.finish import block_mean_shift
from .checkpoints import flush_log, save_checkpoint
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
    # colorize, against over-fitting a few images: thumbnails of random windows around each crop (see
    # `ImagePool.thumb_jitter`), and the pretrained global backbone kept frozen (its ImageNet features only)
    thumb_jitter: float = 0.0
    freeze_backbone: bool = False
    # crops zoomed out by a random whole factor up to this (see `ImagePool.scale_jitter`); 1 = native scale only
    scale_jitter: int = 1
    # which image a crop comes from: "area" (in proportion to its pixels) or "image" (each image alike)
    sample_by: str = "area"
    precision: str = "fp32"  # fp32, or bf16/fp16 autocast (CUDA only)
    init: str = ""  # weights to start from (a ckpt.pt or .safetensors), e.g. the pretrained SRResNet for "gan"
    init_sha256: str = ""  # their sha256 (set by the trainer; a resumed run keeps its first start's)
    # pretrained feature network (models.features): SRGAN content loss, and the colorizer's pretrained global branch
    feature_net: str = "mobilenet_v2"
    # sr "gan" stage: generator loss = content * perceptual + adv * (-log D(G(x))) + pixel * L1
    content_weight: float = 1.0
    adv_weight: float = 1e-3
    pixel_weight: float = 0.1
    d_lr: float = 1e-4
    # on CUDA, hold the training images on the GPU and crop there (the host cannot crop fast enough for a
    # big GPU); the crops are the same as on the host, so this does not change what is trained
    data_on_device: bool = True

    def resolved_arch(self) -> str:
        return self.arch or ("srresnet-8x32" if self.task == "sr" else "resenc-colorizer")


def check_loop(iters: int, batch: int, lr: float, val_every: int, threads: int, crop: int, crop_min: int,
               crop_multiple: int = 1, device: str = "cpu") -> None:
    """A training run's loop settings, before anything is loaded: each wrong one a `SettingsError` naming its option
    (they were tracebacks from deep in torch, or a run that "finished at step 0"); ``device`` must be here."""
    from ..pipeline.device import resolve_device

    wrong = [(name, value, want) for name, value, ok, want in (
        ("--iters", iters, iters >= 1, "1 or more"),
        ("--batch", batch, batch >= 1, "1 or more"),
        ("--lr", lr, math.isfinite(lr) and lr > 0, "above 0"),
        ("--val-every", val_every, val_every >= 1, "1 or more"),
        ("--threads", threads, threads >= 0, "0 (torch's default) or more"),
        ("--crop", crop, crop >= crop_min and crop % crop_multiple == 0,
         f"{crop_min} or more" + (f", a multiple of {crop_multiple}" if crop_multiple > 1 else "")),
    ) if not ok]
    if wrong:
        raise SettingsError("; ".join(f"{name} {value}: must be {want}" for name, value, want in wrong))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SettingsError(f"--device {device}: no CUDA GPU is available to torch here; train with --device cpu")
    resolve_device(device, "fp32")  # (cuda:N beyond the GPUs there are, an unknown device)


def read_init(path: str | Path) -> tuple[dict[str, torch.Tensor], str | None, str]:
    """The tensors of ``--init`` weights — a ``.safetensors`` file, a run's ``ckpt.pt`` or its folder —, the
    architecture a checkpoint records (None for safetensors) and the file's sha256 (the run records it: which
    weights it started from, whatever the file is later called); anything unreadable is a `SettingsError` naming
    the file (it was a traceback from torch or safetensors)."""
    p = Path(path)
    if p.is_dir():
        p = p / "ckpt.pt"
    if not p.is_file():
        raise SettingsError(f"--init {path}: no such file (give a .safetensors file, a run's ckpt.pt or its folder)")
    try:
        digest = sha256_file(p)  # (read once: the run records it, a checkpoint is checked against it)
        with interrupts.deferred():  # (an interrupt inside the C loaders came out as an unreadable file)
            if p.suffix == ".safetensors":
                from safetensors.torch import load_file

                return load_file(str(p)), None, digest
            ck = read_checkpoint(p, digest=digest)
        return ck["model"], ck.get("arch"), digest
    except WeightsError as exc:
        raise SettingsError(f"--init {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a FITS file, a truncated checkpoint, another program's pickle...
        from ..errors import why_unreadable

        raise SettingsError(f"--init {p}: not weights astroenhance can read ({why_unreadable(exc)})") from None


def load_init(model: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path, arch: str,
              strict: bool = True):
    """``model.load_state_dict(state, strict)`` for ``--init`` weights read from ``path``: tensors that are missing,
    unexpected or of another shape (another network's weights) are a `SettingsError` naming the file."""
    try:
        return model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise SettingsError(f"--init {path}: its tensors do not fit {arch} ({str(exc).splitlines()[0][:160]})") from None


def training_folder(data: str) -> str:
    """A folder written by `astroenhance prepare` trains on its ``train/`` split only; others as given."""
    return str(Path(data) / "train") if (Path(data) / "prepare.json").exists() else data


def validation_folder(data: str) -> str:
    """The ``val/`` split of a prepared folder (if it has images), else "" (validate on training crops)."""
    val = Path(data) / "val"
    return str(val) if (Path(data) / "prepare.json").exists() and any(val.iterdir()) else ""


def _rgb_to_ycc_torch(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 3, H, W)`` RGB -> luminance ``(N, 1, H, W)`` and chroma ``(N, 2, H, W)`` (BT.709)."""
    y, cb, cr = rgb_to_ycbcr_planes(rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3])
    return y, torch.cat([cb, cr], 1)


def _ycc_to_rgb_torch(ycc: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` Y Cb Cr -> RGB (BT.709), the inverse of `_rgb_to_ycc_torch`."""
    return torch.cat(ycbcr_to_rgb_planes(ycc[:, 0:1], ycc[:, 1:2], ycc[:, 2:3]), 1)


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


def _widen_channels(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A luminance SRResNet's weights for a Y Cb Cr one: the luminance channel keeps its weights, the chroma
    channels start at zero (so the new network starts as the old one with bicubic chroma).  Tensors
    that already fit pass unchanged."""
    out = {}
    for k, v in state.items():
        t = target.get(k)
        if t is not None and v.shape != t.shape and v.dim() == t.dim():
            diff = [d for d in range(v.dim()) if v.shape[d] != t.shape[d]]
            if len(diff) == 1 and v.shape[diff[0]] == 1:
                w = torch.zeros_like(t)
                w.narrow(diff[0], 0, 1).copy_(v)
                v = w
        out[k] = v
    return out


def _same_design(a: str | None, b: str) -> bool:
    """Whether architecture ``a``'s weights can start ``b``: the same registry entry, or one that differs only
    in its channel count (a luminance SRResNet starting a Y Cb Cr one, see `_widen_channels`) or, for a colorizer,
    in its output head (regression or distribution: the head starts fresh)."""
    if a not in ARCHITECTURES:
        return False
    ka, kb = dict(ARCHITECTURES[a].kwargs), dict(ARCHITECTURES[b].kwargs)
    for k in ("in_channels", "chroma_bins", "chroma_range"):  # channel counts, a colorizer's output head
        ka.pop(k, None), kb.pop(k, None)
    return ARCHITECTURES[a].cls is ARCHITECTURES[b].cls and ka == kb


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``lr * lr_min_factor``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = min(1.0, (step - cfg.warmup) / max(1, cfg.iters - cfg.warmup))
    return cfg.lr * (cfg.lr_min_factor + (1 - cfg.lr_min_factor) * 0.5 * (1 + math.cos(math.pi * t)))


class Trainer:
    """Holds the model, optimizer and data for one run; `run` is the loop."""

    def __init__(self, cfg: TrainConfig) -> None:
        # (sr: the crop is the high-resolution side, 4 input pixels or more; the colorizer's encoder needs 16)
        check_loop(cfg.iters, cfg.batch, cfg.lr, cfg.val_every, cfg.threads, cfg.crop, 16,
                   4 if cfg.task == "sr" else 1, cfg.device)
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.arch = cfg.resolved_arch()
        spec = architecture(self.arch)
        if spec.task != cfg.task:
            raise SettingsError(f"architecture {self.arch} is for task {spec.task!r}, not {cfg.task!r}")
        self.scale = spec.scale
        if cfg.stage not in ("pretrain", "gan") or (cfg.stage == "gan" and cfg.task != "sr"):
            raise SettingsError(f"stage {cfg.stage!r} is not a stage of task {cfg.task!r}")
        if cfg.precision not in ("fp32", "bf16", "fp16"):
            raise SettingsError(f"precision must be fp32, bf16 or fp16 (got {cfg.precision!r})")
        if cfg.precision != "fp32" and not cfg.device.startswith("cuda"):
            raise SettingsError(f"--precision {cfg.precision} is for CUDA; train in fp32 on {cfg.device}")
        # torchrun sets WORLD_SIZE/RANK/LOCAL_RANK: one process per GPU, gradients averaged (DDP)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        device = cfg.device
        if self.world > 1:
            import torch.distributed as dist

            if device.startswith("cuda"):
                device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
                torch.cuda.set_device(device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        self.device = torch.device(device)
        self.model = build_model(self.arch).to(self.device)
        self.channels = getattr(self.model, "in_channels", 1)  # sr: 1 (luminance) or 3 (Y, Cb, Cr)
        if cfg.stage == "gan" and self.channels != 1:
            raise SettingsError(f"the gan stage trains luminance networks; {self.arch} has {self.channels} channels")
        self._init_weights()
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True
        self.frozen = self._frozen_backbone()
        self.net = self._parallel(self.model)  # what the loss calls: the model, or its DDP wrapper
        self.opt = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=cfg.lr,
                                    betas=(0.9, 0.999), eps=1e-8, fused=self.device.type == "cuda")
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.precision == "fp16")
        self.disc: torch.nn.Module | None = None
        if cfg.stage == "gan":
            from ..models.discriminator import SRGANDiscriminator
            from ..models.features import PerceptualLoss

            self.perceptual = PerceptualLoss(cfg.feature_net).to(self.device)
            self.disc = SRGANDiscriminator().to(self.device)
            self.d_net = self._parallel(self.disc)
            self.d_opt = torch.optim.Adam(self.disc.parameters(), lr=cfg.d_lr, betas=(0.9, 0.999), eps=1e-8)
        self.step = 0
        self.pool = ImagePool.from_folder(training_folder(cfg.data), min_size=cfg.crop,
                                          thumb_size=getattr(self.model, "thumb_size", 128), thumb_jitter=cfg.thumb_jitter,
                                          scale_jitter=cfg.scale_jitter, sample_by=cfg.sample_by,
                                          colour=cfg.task == "colorize")
        on_gpu = cfg.data_on_device and self.device.type == "cuda" and cfg.thumb_jitter == 0
        self.device_pool = self.pool.on_device(self.device) if on_gpu else None
        self.val = self._validation_batch()
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)

    def _frozen_backbone(self) -> torch.nn.Module | None:
        """With ``freeze_backbone``: the colorizer's pretrained global backbone, its weights and batch-norm
        statistics fixed (kept in eval mode while the rest trains)."""
        if not self.cfg.freeze_backbone:
            return None
        if getattr(self.model, "global_branch", "conv") == "conv":
            raise SettingsError("--freeze-backbone needs a pretrained global branch (resenc-colorizer-mnv2)")
        backbone = self.model.global_encoder[0]
        for p in backbone.parameters():
            p.requires_grad_(False)
        return backbone

    def _train_mode(self) -> None:
        self.model.train()
        if self.frozen is not None:
            self.frozen.eval()

    def _parallel(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` wrapped in DistributedDataParallel under torchrun, else itself."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[self.device] if self.device.type == "cuda" else None)

    def _init_weights(self) -> None:
        """Start from ``cfg.init`` (generator weights) and/or a pretrained global branch (colorizer)."""
        cfg = self.cfg
        if cfg.init:
            path = Path(cfg.init)
            state, arch, digest = read_init(path)
            self.cfg = dataclasses.replace(cfg, init_sha256=digest)
            if arch is not None and not _same_design(arch, self.arch):
                raise SettingsError(f"{path} holds {arch}, not {self.arch}")
            target = self.model.state_dict()
            fresh: set[str] = set()
            if getattr(self.model, "chroma_bins", 0):
                # a colorizer started from one with another output head: everything but the head and the
                # luminance prior is taken; those keep their grey start
                fresh = {k for k, v in state.items()
                         if k.startswith(("head.", "prior")) and k in target and v.shape != target[k].shape}
                state = {k: v for k, v in state.items() if k not in fresh}
            result = load_init(self.model, _widen_channels(state, target), path, self.arch, strict=not fresh)
            if fresh and (set(result.missing_keys) != fresh or result.unexpected_keys):
                raise SettingsError(f"{path}: its tensors do not fit {self.arch} beyond the output head")
        elif getattr(self.model, "global_branch", "conv") != "conv":
            self.model.load_global_backbone(cfg.feature_net)

    # ---- data -------------------------------------------------------------------------------------
    def _validation_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed set of crops (seeded, independent of training batches), ``(N, 3, S, S)``, and thumbnails."""
        val = self.cfg.val_data or validation_folder(self.cfg.data)
        # validation sees whole-image thumbnails at the images' own scale, as `run` does, whatever thumb_jitter
        # and scale_jitter train with
        if val:
            pool = ImagePool.from_folder(val, min_size=self.cfg.crop, thumb_size=self.pool.thumb_size,
                                         colour=self.cfg.task == "colorize")
        else:  # the training images, their whole-image thumbnails as made once (a shallow copy: nothing recomputed)
            pool = copy.copy(self.pool)
            pool.thumb_jitter, pool.scale_jitter = 0.0, 1
        size = self.cfg.crop * 2 if self.cfg.task == "sr" else self.cfg.crop
        size = min(size, min(min(im.shape[:2]) for im in pool.images))
        size -= size % 16
        return self._to_tensors(pool.crops(np.random.default_rng([self.cfg.seed, 10**9]), 32, size))

    def _to_tensors(self, arrays: tuple[np.ndarray, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        return tuple(torch.from_numpy(a).permute(0, 3, 1, 2).contiguous().to(self.device) for a in arrays)  # type: ignore[return-value]

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.cfg.seed, step] + ([self.rank] if self.world > 1 else []))
        if self.device_pool is not None:
            return self.device_pool.crops(rng, self.cfg.batch, self.cfg.crop)
        return self._to_tensors(self.pool.crops(rng, self.cfg.batch, self.cfg.crop))

    # ---- losses -----------------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def _cl(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.device.type == "cuda" else x

    def _super_resolve(self, y: torch.Tensor, net: torch.nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """4x area mean of ``y`` (the flux-preserving low-resolution frame) and its flux-projected SR (fp32)."""
        lr = F.avg_pool2d(y, self.scale)
        with self._autocast():
            out = (net or self.net)(self._cl(lr))
        return lr, block_mean_shift(out.float(), lr, self.scale)

    def _sr_target(self, rgb: torch.Tensor) -> torch.Tensor:
        """What the SR network reproduces: luminance ``(N, 1, H, W)``, or Y Cb Cr for a 3-channel network."""
        y, chroma = _rgb_to_ycc_torch(rgb)
        return y if self.channels == 1 else torch.cat([y, chroma], 1)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        rgb, thumb_rgb = batch
        if self.cfg.task == "sr":
            # L1 on luminance; a Y Cb Cr network is scored on RGB, the colours the evaluation measures
            target = self._sr_target(rgb)
            _, sr = self._super_resolve(target)
            return F.l1_loss(sr, target) if self.channels == 1 else F.l1_loss(_ycc_to_rgb_torch(sr), rgb)
        y, chroma = _rgb_to_ycc_torch(rgb)
        if getattr(self.model, "chroma_bins", 0):  # distribution head: cross-entropy on its logits
            with self._autocast():
                logits = self.net(self._cl(y), _rgb_to_ycc_torch(thumb_rgb)[0], raw=True)
            return self.model.distribution_loss(logits, chroma)
        with self._autocast():
            pred = self.net(self._cl(y), _rgb_to_ycc_torch(thumb_rgb)[0])
        return colour_loss(pred.float(), chroma, self.cfg.saturation_weight)

    def gan_step(self, batch: tuple[torch.Tensor, torch.Tensor], lr: float) -> dict[str, float]:
        """One SRGAN iteration (k = 1): a discriminator update, then a generator update with
        ``content * perceptual + adv * BCE(D(G(x)), 1) + pixel * L1`` (the ``-log D`` form)."""
        cfg = self.cfg
        assert self.disc is not None
        y, _ = _rgb_to_ycc_torch(batch[0])
        _, sr = self._super_resolve(y)
        for group in self.d_opt.param_groups:
            group["lr"] = cfg.d_lr * lr / cfg.lr
        with self._autocast():
            if self.world > 1:  # DDP allows one forward per backward: real and fake in one batch
                d_real, d_fake = self.d_net(self._cl(torch.cat([y, sr.detach()]))).float().chunk(2)
            else:
                d_real = self.d_net(self._cl(y)).float()
                d_fake = self.d_net(self._cl(sr.detach())).float()
            d_loss = discriminator_loss(d_real, d_fake)
        self.d_opt.zero_grad(set_to_none=True)
        self.scaler.scale(d_loss).backward()
        self.scaler.step(self.d_opt)
        with self._autocast():
            g_fake = self.d_net(self._cl(sr)).float()
            adv = adversarial_loss(g_fake)
            content = self.perceptual(self._cl(sr), self._cl(y)).float()
        pixel = F.l1_loss(sr, y)
        g_loss = cfg.content_weight * content + cfg.adv_weight * adv + cfg.pixel_weight * pixel
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(g_loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return {"loss": g_loss.item(), "d_loss": d_loss.item(), "content": content.item(), "adv": adv.item(),
                "pixel": pixel.item(), "d_real": torch.sigmoid(d_real).mean().item(),
                "d_fake": torch.sigmoid(d_fake).mean().item()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """SR: luminance PSNR of the model and of bicubic; colorize: chroma RMS of the model and of grey."""
        self.model.eval()
        out: dict[str, float] = {}
        rgb, thumb_rgb = self.val
        if self.cfg.task == "sr":
            target = self._sr_target(rgb)
            y = target[:, :1]
            lr, sr = self._super_resolve(target, self.model)
            bic = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
            out = {"val_psnr": psnr(sr[:, :1].clamp(0, 1), y), "val_psnr_bicubic": psnr(bic[:, :1].clamp(0, 1), y)}
            if self.channels == 3:
                out.update(val_psnr_rgb=psnr(_ycc_to_rgb_torch(sr).clamp(0, 1), rgb),
                           val_psnr_rgb_bicubic=psnr(_ycc_to_rgb_torch(bic).clamp(0, 1), rgb))
        else:
            y, chroma = _rgb_to_ycc_torch(rgb)
            with self._autocast():
                pred = self.model(self._cl(y), _rgb_to_ycc_torch(thumb_rgb)[0]).float()
            out = {"val_chroma_rms": torch.sqrt(((pred - chroma) ** 2).mean()).item(),
                   "val_chroma_rms_grey": torch.sqrt((chroma**2).mean()).item()}
        self._train_mode()
        return out

    # ---- checkpoints ------------------------------------------------------------------------------
    def save(self) -> Path:
        state = {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "step": self.step,
                 "arch": self.arch, "config": dataclasses.asdict(self.cfg), "scaler": self.scaler.state_dict()}
        if self.disc is not None:
            state.update(discriminator=self.disc.state_dict(), d_optimizer=self.d_opt.state_dict())
        return save_checkpoint(state, self.out / "ckpt.pt")

    def load(self, path: Path) -> None:
        ckpt = read_checkpoint(path, self.device)
        if ckpt["arch"] != self.arch:
            raise SettingsError(f"checkpoint {path} holds {ckpt['arch']}, not {self.arch}")
        if not self.cfg.init:  # (--resume gives no --init: the run still started from the weights it did)
            first = ckpt.get("config", {})
            self.cfg = dataclasses.replace(self.cfg, init=first.get("init", ""), init_sha256=first.get("init_sha256", ""))
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt:
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.disc is not None:
            if "discriminator" not in ckpt:
                raise SettingsError(f"checkpoint {path} has no discriminator: it is not a gan-stage run (use --init)")
            self.disc.load_state_dict(ckpt["discriminator"])
            self.d_opt.load_state_dict(ckpt["d_optimizer"])
        self.step = int(ckpt["step"])

    # ---- the loop ---------------------------------------------------------------------------------
    def run(self, on_step: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
        """Train until ``cfg.iters``; checkpoint every ``ckpt_every`` steps and on interruption.

        Under torchrun only rank 0 validates, logs and writes checkpoints."""
        cfg = self.cfg
        lead = self.rank == 0
        if lead:
            (self.out / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
        log_path = self.out / "log.csv"
        new_log = not log_path.exists()
        last: dict[str, float] = {}
        with open(log_path if lead else os.devnull, "a", newline="") as fh:
            log = csv.writer(fh)
            if new_log and lead:
                log.writerow(["step", "loss", "lr", "seconds", "metric", "value"])
            self._train_mode()
            if self.disc is not None:
                self.disc.train()
            t0 = time.perf_counter()
            try:
                while self.step < self.cfg.iters:  # (read each step: a driver may set iters from measured speed)
                    cfg = self.cfg
                    lr = lr_at(self.step, cfg)
                    for group in self.opt.param_groups:
                        group["lr"] = lr
                    batch = self._batch(self.step)
                    if cfg.stage == "gan":
                        stats = self.gan_step(batch, lr)
                    else:
                        loss = self.loss(batch)
                        self.opt.zero_grad(set_to_none=True)
                        self.scaler.scale(loss).backward()
                        self.scaler.step(self.opt)
                        self.scaler.update()
                        stats = {"loss": loss.item()}
                    self.step += 1
                    last = dict(stats, lr=lr)
                    log.writerow([self.step, f"{last['loss']:.6g}", f"{lr:.3g}", f"{time.perf_counter() - t0:.1f}", "", ""])
                    if lead and (self.step % cfg.val_every == 0 or self.step == cfg.iters):
                        metrics = self.validate()
                        if cfg.stage == "gan":
                            metrics.update({k: v for k, v in stats.items() if k != "loss"})
                        last.update(metrics)
                        for k, v in metrics.items():
                            log.writerow([self.step, "", "", "", k, f"{v:.6g}"])
                    if lead and (self.step % cfg.ckpt_every == 0 or self.step == cfg.iters):
                        self.save()
                        flush_log(fh, log_path)
                    if on_step is not None and lead:
                        on_step(self.step, last)
            except KeyboardInterrupt:
                if lead:
                    self.save()
                raise
        return last

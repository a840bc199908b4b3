"""A model of the telescope for training super-resolution on real frames, and the loop that trains with it.

Pairs are made on the fly, deterministically per (seed, step): a truth in linear units — a crop of a deep real HST
frame, or a synthetic field (Sérsic bulge + disk galaxies with knots, and stars, drawn through a Moffat PSF at the
truth's pixel scale) — is binned 4x4 by block means (pixels 4x coarser: the same optics, a coarser detector) and
given Gaussian noise of ``k`` times the truth's own pixel rms, ``k`` drawn log-uniformly (faint, background-limited
to bright).  Both sides are mapped into the noise-normalised space of `pipeline.space` with the frame's sky and the
input's measured noise, exactly as `run` maps a frame, and the network (an SRResNet) learns to upscale in that
space with an L1 loss (``stage="gan"``: SRGAN's fine-tuning, a perceptual and a 1e-3 adversarial loss added on the
synthetic, noise-free truths; `TelescopeTrainer.gan_losses`).  Real frames already carry the telescope's PSF; synthetic fields bring noise-free truths,
compact sources and variety; press images' luminance de-stretched to linear (``press``) brings textures.  Optional:
drizzle-correlated input noise (``correlated``), smooth backgrounds, pixel-integrated PSFs, the telescope's own PSF
models (``psfs``: empirical grids, TinyTim), the sources' own photon noise (``photon_noise``).  Not modelled (issue 15):
cosmic rays and hot pixels (`run` masks or cleans them before the network).
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import fftconvolve

from ..errors import InputError, SettingsError
from ..imaging.color import LUMA_WEIGHTS
from ..io.readers import open_fits
from ..metrics import area_downsample, clipped_sky, psnr
from ..models.discriminator import adversarial_loss, discriminator_loss
from ..models.registry import architecture, build_model
from ..models.weights import read_checkpoint
from ..pipeline.device import resolve_device
from ..pipeline.finish import block_mean_shift, estimate_noise
from ..pipeline.space import BETA, from_noise_space, to_noise_space
from .checkpoints import flush_log, save_checkpoint

SCALE = 4
#: the FWHM range (truth pixels, drawn log-uniformly) of `synthetic_field`'s wide PSFs: 1.2-3.5 input pixels
WIDE_FWHM = (4.8, 14.0)
#: training losses, both in the noise-normalised space (near the sky: linear in the input's noise; cores: log)
#: each pixel's error (output minus truth -> error), averaged by `pixel_loss`
LOSSES = {"l1": torch.abs, "mse": torch.square}
#: the source level (sky sigmas) at which the sources' photon noise doubles the variance: drawn log-uniformly
PHOTONS = (3.0, 30.0)


def block_edge_steps(out: torch.Tensor, truth: torch.Tensor, scale: int = SCALE) -> torch.Tensor:
    """Mean |step of ``out`` - step of ``truth``| between neighbouring pixels across the edges of the ``scale`` x
    ``scale`` blocks (``(N, 1, H, W)``, columns and rows alike): what the 4x4 pattern in flat sky is made of.  A truth
    has no preference for block edges, so this is small only where the network draws none; the pixel loss alone
    lets a network keep a little of each input pixel's noise as a block (`benchmarks/bench_sky_pattern.py`)."""
    dx = (out[..., :, 1:] - out[..., :, :-1]) - (truth[..., :, 1:] - truth[..., :, :-1])
    dy = (out[..., 1:, :] - out[..., :-1, :]) - (truth[..., 1:, :] - truth[..., :-1, :])
    return (dx[..., :, scale - 1::scale].abs().mean() + dy[..., scale - 1::scale, :].abs().mean()) / 2


#: a truth pixel one input sigma above the sky, in the noise space (asinh(x / (BETA sigma))): `pixel_loss`'s sources
SOURCE_LEVEL = math.asinh(1 / BETA)


def pixel_loss(cfg: TelescopeConfig, out: torch.Tensor, truth: torch.Tensor,
               noise_free: torch.Tensor | None = None) -> torch.Tensor:
    """The pixel loss of a noise-space network: ``cfg.loss`` (``cfg.real_loss`` on the pairs whose truth is a real
    frame, not ``noise_free``, where it is set) plus ``cfg.edge_weight`` times `block_edge_steps`.
    With ``cfg.source_weight`` W, the pixels of the noise-free truths (``noise_free``, ``(N,)``) above
    `SOURCE_LEVEL` weigh 1 + W: an L1 (or MSE) whose weight depends on the truth moves the network's answer, where
    it cannot tell a faint source from the noise, toward keeping the source (the plain median flattens it). A
    real truth's pixels all weigh 1: its own noise would cross the level and bias the sky upward."""
    err = LOSSES[cfg.loss](out - truth)
    if cfg.real_loss and cfg.real_loss != cfg.loss and noise_free is not None:
        err = torch.where(noise_free.view(-1, 1, 1, 1), err, LOSSES[cfg.real_loss](out - truth))
    if cfg.source_weight > 0 and noise_free is not None and bool(noise_free.any()):
        w = 1 + cfg.source_weight * ((truth > SOURCE_LEVEL) & noise_free.view(-1, 1, 1, 1)).to(truth.dtype)
        loss = (w * err).sum() / w.sum()
    else:
        loss = err.mean()
    return loss + cfg.edge_weight * block_edge_steps(out, truth) if cfg.edge_weight > 0 else loss


# ---- truths ----------------------------------------------------------------------------------------------

@dataclass
class Truth:
    """One deep frame (linear units) and its statistics."""

    name: str
    data: np.ndarray  # float32, NaN-free
    sky: float
    rms: float  # estimate_noise of the truth itself


def load_truths(paths: list[Path], min_side: int = 128, what: str = "--truth") -> list[Truth]:
    """Real deep frames (first image HDU or SCI) as truths, each at least ``min_side`` pixels a side (the crops
    drawn from it): a smaller one, or a picture that is not FITS, is a `SettingsError` naming it (a frame under
    64 pixels was skipped without a word, one under the crop failed deep in numpy)."""
    from ..io.readers import is_fits
    from ..training.hst import load_truth

    out = []
    for p in paths:
        if not is_fits(p):
            raise SettingsError(f"{what} {p}: a deep frame in linear units (FITS), not a picture")
        data, _ = load_truth(Path(p))
        if min(data.shape) < min_side:
            raise SettingsError(f"{what} {p}: {data.shape[1]}x{data.shape[0]} pixels; its crops need {min_side} a "
                                "side" + (" (--crop x 4)" if what == "--truth" else ""))
        # the sky as `run` measures it (with the per-pixel sigma it would use when the file gives none)
        sky = clipped_sky(data, estimate_noise(data, lag=2))
        out.append(Truth(Path(p).name, data.astype(np.float32), sky, estimate_noise(data)))
    return out


def load_press(folder: Path, min_side: int = 128) -> list[np.ndarray]:
    """Press images' luminance (BT.709 of their 8-bit RGB) from ``folder`` and below, for `press_field`: texture
    variety the deep frames lack (nebulae, dust lanes, spiral arms); 0 at each image's black level (its 5th
    percentile), 1 at white."""
    from .data import list_images, load_rgb

    out = []
    for p in list_images(Path(folder)):
        y = load_rgb(p).astype(np.float32) @ LUMA_WEIGHTS.astype(np.float32) / 255.0
        if min(y.shape) >= min_side:
            black = float(np.percentile(y, 5))
            out.append(np.clip((y - black) / max(1.0 - black, 1e-6), 0.0, 1.0).astype(np.float32))
    if not out:
        raise SettingsError(f"--press {folder}: no images of {min_side} pixels a side or more")
    return out


def load_psfs(paths: list[Path]) -> list[np.ndarray]:
    """PSF models from FITS files (an empirical grid's cube of PSFs, one per position on the detector, or one 2-D
    PSF: TinyTim, WebbPSF, a star stacked from a frame), each plane normalised to sum 1 (negative values, the
    model's noise, set to 0): for `file_psf`.  A file that holds none is a `SettingsError` naming it."""
    out = []
    for p in paths:
        try:  # (as `run` opens a frame: bytes after the last HDU, as four of the STScI grids have, left out)
            with open_fits(Path(p), scaled=True) as hdul:
                planes = [np.asarray(h.data, np.float64) for h in hdul if h.is_image and h.data is not None
                          and h.data.ndim in (2, 3)]
        except InputError as exc:
            raise SettingsError(f"--psf {exc}") from None
        found = [q for plane in planes for q in (plane if plane.ndim == 3 else [plane])]
        found = [np.clip(np.nan_to_num(q), 0, None) for q in found if min(q.shape) >= 5]
        found = [q / q.sum() for q in found if q.sum() > 0 and q.max() > 0]
        if not found:
            raise SettingsError(f"--psf {p}: no PSF image (a 2-D image or a cube of them, 5 pixels a side or more)")
        out.extend(found)
    return out


def half_max_fwhm(psf: np.ndarray) -> float:
    """A PSF's FWHM in its own pixels, from the area of those at or above half its peak (a disk's diameter)."""
    return 2 * math.sqrt(float((psf >= psf.max() / 2).sum()) / math.pi)


def file_psf(rng: np.random.Generator, psfs: list[np.ndarray], fwhm: tuple[float, float] = (0.9, 3.0),
             jitter: float = 0.4, size: int = 41) -> np.ndarray:
    """One of ``psfs`` (`load_psfs`) as a normalised PSF of a truth: its core brought to a FWHM drawn from ``fwhm``
    truth pixels (the model's own FWHM measured from its area above half its peak; integrated over the new pixels
    when shrunk), so that a PSF sampled at any scale serves a truth at any scale — its shape (rings, spikes, the
    detector's asymmetry) kept; then Gaussian pointing jitter of up to ``jitter`` pixels, cut to ``size``² pixels."""
    from scipy.ndimage import gaussian_filter, uniform_filter, zoom

    psf = psfs[int(rng.integers(len(psfs)))]
    z = max(rng.uniform(*fwhm) / half_max_fwhm(psf), 3 / min(psf.shape))  # (a model far wider than its core keeps 3 pixels)
    if z < 1:  # each new pixel integrates the model over its area, then is sampled
        psf = uniform_filter(psf, size=max(1, round(1 / z)), mode="constant")
    psf = np.clip(zoom(psf, z, order=1, mode="grid-constant", grid_mode=True), 0, None)
    cy, cx = np.unravel_index(int(np.argmax(psf)), psf.shape)
    r = size // 2
    psf = np.pad(psf, r)[cy:cy + size, cx:cx + size]  # centred on its peak
    psf = gaussian_filter(psf, rng.uniform(0, jitter), mode="constant")
    return psf / psf.sum()


def press_field(rng: np.random.Generator, images: list[np.ndarray], size: int) -> np.ndarray:
    """A noise-free truth of ``size``² pixels from a press image's luminance, de-stretched to linear units: a random
    crop (at its pixels or 2x binned), through the inverse of an asinh stretch
    ``sinh(a y) / sinh(a)`` (``a`` 2-10: press images are stretched that hard or harder) and a peak of 10-3,000 in the
    units of `synthetic_field` (the noise a 1x input pixel gets)."""
    img = images[int(rng.integers(len(images)))]
    f = 2 if min(img.shape) >= 2 * size and rng.uniform() < 0.5 else 1
    y, x = (int(rng.integers(0, n - f * size + 1)) for n in img.shape)
    crop = img[y:y + f * size, x:x + f * size].astype(np.float64)
    d = area_downsample(crop, f) if f > 1 else crop
    a = math.exp(rng.uniform(math.log(2.0), math.log(10.0)))
    return np.sinh(a * d) / math.sinh(a) * 10 ** rng.uniform(1.0, 3.5)


def moffat_psf(fwhm: float, beta: float = 2.5, size: int = 25) -> np.ndarray:
    """A normalised Moffat PSF of ``fwhm`` pixels on a ``size``² grid."""
    alpha = fwhm / (2 * math.sqrt(2 ** (1 / beta) - 1))
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    psf = (1 + (x**2 + y**2) / alpha**2) ** -beta
    return psf / psf.sum()


def sersic(shape: tuple[int, int], x0: float, y0: float, r_e: float, n: float, q: float, theta: float) -> np.ndarray:
    """A unit-flux Sérsic profile (index ``n``, half-light radius ``r_e`` pixels, axis ratio ``q``)."""
    b = 2 * n - 1 / 3 + 4 / (405 * n)
    y, x = np.mgrid[: shape[0], : shape[1]]
    dx, dy = x - x0, y - y0
    c, s = math.cos(theta), math.sin(theta)
    r = np.sqrt((dx * c + dy * s) ** 2 + ((-dx * s + dy * c) / q) ** 2)
    img = np.exp(-b * ((r / r_e) ** (1 / n) - 1))
    return img / max(img.sum(), 1e-30)


def pixel_integrated_psf(fwhm: float, beta: float, size: int = 15, oversample: int = 5) -> np.ndarray:
    """A normalised Moffat PSF of ``fwhm`` pixels integrated over each pixel (rendered ``oversample`` times finer,
    then summed per pixel): how a detector whose pixels are about as large as the PSF's core records it."""
    fine = moffat_psf(fwhm * oversample, beta, size * oversample)
    return fine.reshape(size, oversample, size, oversample).sum(axis=(1, 3)) / fine.sum()


def synthetic_field(rng: np.random.Generator, size: int, big: float = 0.0, sharp: float = 0.0,
                    psfs: list[np.ndarray] | None = None, psf_share: float = 0.0, wide: float = 0.0) -> np.ndarray:
    """A noise-free deep field of ``size``² truth pixels: galaxies (bulge + disk + knots) and stars through a
    Moffat PSF; fluxes in units of the noise a 1x input pixel will get (so ``k`` sets the depth).  With
    probability ``big`` also one large bright elliptical (half-light radius 30-160 pixels, Sérsic n 2.5-5, centred
    anywhere within a crop's width of it): the smooth halo and steep core of a cD or nearby galaxy.  With
    probability ``sharp`` the PSF is instead a pixel-integrated Moffat of FWHM 0.9-1.8 truth pixels: a truth that
    samples its PSF as WFC3/IR's 0.13" pixels do (`pixel_integrated_psf`).  With probability ``psf_share`` it is
    one of ``psfs`` (`load_psfs`: the telescope's own models) at a FWHM of 0.9-3 pixels (`file_psf`).  With
    probability ``wide`` it is a Moffat of FWHM `WIDE_FWHM` truth pixels: binned 4x, an input that samples its PSF
    as a drizzled frame does at its own pixels (FWHM 1.2-3.5 input pixels) — `run`'s usual input, where a one-pixel
    bump is noise, not a star."""
    field_ = np.zeros((size, size))
    for _ in range(int(rng.integers(2, 9))):
        x0, y0 = rng.uniform(-8, size + 8, 2)
        flux = 10 ** rng.uniform(1.3, 4.0)
        r_e = 10 ** rng.uniform(0.2, 1.3)
        q, theta = rng.uniform(0.3, 1.0), rng.uniform(0, math.pi)
        bulge = rng.uniform(0, 1)
        field_ += flux * bulge * sersic((size, size), x0, y0, r_e * 0.4, rng.uniform(2.5, 4.5), min(1, q + 0.2), theta)
        field_ += flux * (1 - bulge) * sersic((size, size), x0, y0, r_e, rng.uniform(0.6, 1.2), q, theta)
        for _ in range(int(rng.integers(0, 4))):  # star-forming knots in the disk
            kx, ky = x0 + rng.normal(0, r_e), y0 + rng.normal(0, r_e * q)
            field_ += flux * rng.uniform(0.01, 0.05) * sersic((size, size), kx, ky, rng.uniform(0.5, 1.5), 1.0, 1.0, 0)
    stars = np.zeros((size, size))
    for _ in range(int(rng.integers(0, 5))):
        stars[rng.integers(0, size), rng.integers(0, size)] += 10 ** rng.uniform(1.5, 4.5)
    psf = moffat_psf(rng.uniform(1.8, 4.0), rng.uniform(2.0, 4.0))
    if big > 0 and rng.uniform() < big:  # drawn last: fields without it are the same as before
        x0, y0 = rng.uniform(-size, 2 * size, 2)
        field_ += 10 ** rng.uniform(4.5, 6.5) * sersic((size, size), x0, y0, 10 ** rng.uniform(1.5, 2.2),
                                                       rng.uniform(2.5, 5.0), rng.uniform(0.5, 1.0),
                                                       rng.uniform(0, math.pi))
    if sharp > 0 and rng.uniform() < sharp:  # drawn after everything else: fields without it are the same as before
        psf = pixel_integrated_psf(rng.uniform(0.9, 1.8), rng.uniform(2.0, 4.0))
    if psfs and psf_share > 0 and rng.uniform() < psf_share:  # drawn last, and only with models: old runs repeat
        psf = file_psf(rng, psfs)
    if wide > 0 and rng.uniform() < wide:  # drawn last, and only when asked: old runs repeat
        fwhm = math.exp(rng.uniform(*np.log(WIDE_FWHM)))
        psf = moffat_psf(fwhm, rng.uniform(2.0, 4.0), size=int(6 * fwhm) | 1)
    return fftconvolve(field_ + stars, psf, mode="same")


# ---- pairs ---------------------------------------------------------------------------------------------------

def drizzle_like(noise: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """White noise made correlated as drizzling makes it: each pixel shares with its neighbours as a pixel shifted by
    a fraction of a pixel overlaps the output grid (a separable ``[1 - a, a] x [1 - b, b]`` kernel, a and b drawn
    from 0.2-0.5), rescaled to the same per-pixel sigma (its neighbours now correlate by up to 0.5)."""
    a, b = rng.uniform(0.2, 0.5, 2)
    kernel = np.outer([1 - a, a], [1 - b, b])
    out = fftconvolve(np.pad(noise, 1, mode="wrap"), kernel, mode="same")[1:-1, 1:-1]
    return out / math.sqrt(float((kernel**2).sum()))


def smooth_background(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """A smooth field over a ``size``² truth crop, in units of the input's noise ``sigma``: an offset (±3σ), a slope
    (up to 6σ across the crop) and a curvature (±3σ at the corners) — a halo or intracluster light filling the crop,
    or a sky level that is not the frame's, as `run` meets them where no sky is in view."""
    y, x = (np.mgrid[:size, :size] + 0.5) / size - 0.5
    angle = rng.uniform(0, 2 * math.pi)
    slope = rng.uniform(0, 6) * (math.cos(angle) * x + math.sin(angle) * y)
    return sigma * (rng.uniform(-3, 3) + slope + rng.uniform(-3, 3) * 2 * (x**2 + y**2))


def make_pair(truth: np.ndarray, sky: float, rms: float, k: float, rng: np.random.Generator,
              correlated: bool = False, photons: float = 0.0, exact_sigma: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
    """(input, truth) in noise space for one truth crop: binned 4x4, noise ``k * rms`` (white, or `drizzle_like`
    with ``correlated``), mapped with the frame's ``sky`` and the input crop's own noise estimate (pixels 2 apart;
    its sources lift it: 1.06-1.30x ``k * rms`` in the median of synthetic 24² crops, more at low k) or, with
    ``exact_sigma``, ``k * rms`` itself — the sigma `run` is given by a file's ERR or WHT, or estimates from a whole
    frame's sky.  ``photons`` > 0 adds the sources' own photon noise: a pixel whose light above the sky is
    ``photons`` sky sigmas has twice the sky's variance (variance ``s² (1 + light / (photons s))``, ``s = k * rms``),
    as in a frame whose sources are bright against its sky."""
    lr = area_downsample(truth, SCALE)
    noise = rng.normal(0.0, k * rms, lr.shape)
    if photons > 0:
        noise = noise * np.sqrt(1 + np.clip(lr - sky, 0, None) / (photons * k * rms))
    lr = lr + (drizzle_like(noise, rng) if correlated else noise)
    # (in any units: the noise space keeps it above 0, `space._scale`)
    sigma = k * rms if exact_sigma else estimate_noise(lr, lag=2)
    return (to_noise_space(lr, sky, sigma).astype(np.float32),
            to_noise_space(truth, sky, sigma).astype(np.float32))


@dataclass
class TelescopeConfig:
    """Settings of a telescope-model training run (recorded in the run folder and the manifest)."""

    truths: list[str] = field(default_factory=list)  # real deep frames
    val: list[str] = field(default_factory=list)  # frames for validation crops (not trained on)
    out: str = "runs/sr-hst"
    arch: str = "srresnet-8x32"
    init: str = ""  # start from these weights (safetensors or a run's ckpt.pt)
    init_sha256: str = ""  # their sha256 (set by the trainer)
    iters: int = 3000
    batch: int = 16
    crop: int = 32  # input pixels (the truth crop is 4x larger)
    lr: float = 2e-4
    k_min: float = 0.25
    k_max: float = 4.0
    synthetic: float = 0.3  # share of pairs from synthetic fields
    big_galaxies: float = 0.0  # share of synthetic fields that also hold one large bright elliptical
    sharp_psfs: float = 0.0  # share of synthetic fields drawn through a pixel-integrated PSF of FWHM 0.9-1.8 pixels
    wide_psfs: float = 0.0  # share of synthetic fields drawn through a Moffat of FWHM WIDE_FWHM (well-sampled inputs)
    psfs: list[str] = field(default_factory=list)  # PSF model files (empirical grids, TinyTim) for synthetic fields
    psf_share: float = 0.0  # share of synthetic fields drawn through one of them (`file_psf`)
    press: str = ""  # a folder of press images (`load_press`) for a share of the pairs
    press_share: float = 0.0  # share of the pairs not synthetic whose truth is a press image (`press_field`), not a frame
    correlated: float = 0.0  # share of pairs whose noise is correlated like a drizzled frame's (`drizzle_like`)
    backgrounds: float = 0.0  # share of pairs whose truth gets a smooth field of a few input sigmas (`smooth_background`)
    photon_noise: float = 0.0  # share of pairs whose input also has the sources' photon noise (`make_pair`'s photons)
    pair_sigma: str = "measured"  # the sigma pairs are mapped with: the input crop's own estimate, or "exact" (k * rms)
    flux_tolerance: float = 0.0  # > 0: train through run's flux promise (`project_within`): what is scored is what ships
    loss: str = "l1"  # l1 (the median of the truth given the input) or mse (its mean: what PSNR rewards)
    real_loss: str = ""  # the loss on pairs whose truth is a real (noisy) frame; "": `loss`
    edge_weight: float = 0.0  # > 0: plus this times `block_edge_steps` (no 4x4 pattern drawn in flat sky)
    source_weight: float = 0.0  # > 0: noise-free truths' pixels above one input sigma weigh 1 + this (`pixel_loss`)
    seed: int = 0
    val_every: int = 250
    threads: int = 0
    device: str = "cpu"  # cpu, cuda, cuda:N
    precision: str = "fp32"  # fp32 or bf16 (autocast of the forward pass and the loss)
    workers: int = 0  # processes making batches ahead (each batch is still a function of the step alone)
    minutes: float = 0.0  # > 0: stop (and checkpoint) after this much training time, whatever the step
    # "gan": SRGAN's fine-tuning (`TelescopeTrainer.gan_losses`): the pixel loss on every pair, plus a perceptual and
    # a 1e-3 adversarial loss on the pairs whose truth is noise-free (synthetic) — on a real truth they would teach
    # the network to paint the truth's own noise
    stage: str = "pretrain"
    content_weight: float = 1.0
    adv_weight: float = 1e-3
    pixel_weight: float = 1.0
    d_lr: float = 1e-4
    feature_net: str = "mobilenet_v2"


class _Batches(torch.utils.data.Dataset):
    """Item ``i`` is the trainer's batch of step ``first + i`` (`TelescopeTrainer.batch`), made in a DataLoader
    worker: the same batches as without workers."""

    def __init__(self, trainer: TelescopeTrainer, first: int, last: int) -> None:
        self.make, self.first, self.last = trainer.batch, first, last

    def __len__(self) -> int:
        return max(0, self.last - self.first)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.make(self.first + i)


class TelescopeTrainer:
    """Trains an SR network on telescope-model pairs; checkpoints (``ckpt.pt``) and resumes exactly."""

    def __init__(self, cfg: TelescopeConfig, truths: list[Truth], val: list[Truth]) -> None:
        from .train import check_loop

        check_loop(cfg.iters, cfg.batch, cfg.lr, cfg.val_every, cfg.threads, cfg.crop, 4, 1, cfg.device)
        if not 0 < cfg.k_min <= cfg.k_max:
            raise SettingsError(f"--k-min {cfg.k_min} and --k-max {cfg.k_max}: need 0 < k-min <= k-max (noise sigma "
                                "as a multiple of the truth's)")
        if not truths and cfg.synthetic <= 0:
            raise SettingsError("give real deep frames (--truths) or a share of synthetic fields (--synthetic)")
        for name, value in (("loss", cfg.loss), ("real-loss", cfg.real_loss or cfg.loss)):
            if value not in LOSSES:
                raise SettingsError(f"--{name} {value!r}: choose from {', '.join(LOSSES)}")
        if cfg.pair_sigma not in ("measured", "exact"):
            raise SettingsError(f"--pair-sigma {cfg.pair_sigma!r}: choose measured or exact")
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if cfg.precision not in ("fp32", "bf16"):
            raise SettingsError(f"precision {cfg.precision!r}: choose fp32 or bf16")
        self.device = resolve_device(cfg.device, cfg.precision)
        self.cfg, self.truths, self.val = cfg, truths, val
        self.press = load_press(Path(cfg.press), cfg.crop * SCALE) if cfg.press and cfg.press_share > 0 else []
        self.psfs = load_psfs([Path(p) for p in cfg.psfs]) if cfg.psf_share > 0 else []
        if cfg.psf_share > 0 and not self.psfs:
            raise SettingsError("--psf-share needs PSF model files (--psf)")
        torch.manual_seed(cfg.seed)
        spec = architecture(cfg.arch)
        if spec.task != "sr" or spec.kwargs.get("in_channels", 1) != 1:
            raise SettingsError(f"--arch {cfg.arch}: sr-hst trains a luminance SR network (srresnet-8x32, "
                                "srresnet-12x48, srresnet-16x64)")
        self.model = build_model(cfg.arch)
        if cfg.init:
            from .train import load_init, read_init

            state, _, digest = read_init(cfg.init)
            self.cfg = replace(cfg, init_sha256=digest)  # (the caller's settings left as they were given)
            load_init(self.model, state, cfg.init, cfg.arch)
        self.model.to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        if cfg.stage not in ("pretrain", "gan"):
            raise SettingsError(f"stage {cfg.stage!r}: choose pretrain or gan")
        self.disc: torch.nn.Module | None = None
        if cfg.stage == "gan":
            from ..models.discriminator import SRGANDiscriminator
            from ..models.features import PerceptualLoss

            try:
                self.perceptual = PerceptualLoss(cfg.feature_net).to(self.device)
            except ValueError as exc:
                raise SettingsError(str(exc)) from None
            self.disc = SRGANDiscriminator().to(self.device)
            self.d_opt = torch.optim.Adam(self.disc.parameters(), lr=cfg.d_lr)
        self.step = 0
        self.out = Path(cfg.out)
        areas = np.array([t.data.size for t in truths], float)
        self.weights = areas / areas.sum() if len(areas) else areas
        self.val_pairs = self._val_pairs()

    def _draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
        """(input, truth, whether the truth is synthetic: noise-free)."""
        s = self.cfg.crop * SCALE
        k = math.exp(rng.uniform(math.log(self.cfg.k_min), math.log(self.cfg.k_max)))
        synthetic = not self.truths or rng.uniform() < self.cfg.synthetic
        if synthetic:
            truth = synthetic_field(rng, s, self.cfg.big_galaxies, self.cfg.sharp_psfs, self.psfs, self.cfg.psf_share,
                                    self.cfg.wide_psfs)
            sky, rms = 0.0, 1.0
        elif self.press and rng.uniform() < self.cfg.press_share:  # (no draw without press images: old runs repeat)
            truth, sky, rms, synthetic = press_field(rng, self.press, s), 0.0, 1.0, True
        else:
            t = self.truths[rng.choice(len(self.truths), p=self.weights)]
            y, x = rng.integers(0, t.data.shape[0] - s + 1), rng.integers(0, t.data.shape[1] - s + 1)
            truth, sky, rms = t.data[y:y + s, x:x + s].astype(np.float64), t.sky, t.rms
        truth = np.rot90(truth, int(rng.integers(4)))
        if rng.uniform() < 0.5:
            truth = truth[:, ::-1]
        if self.cfg.backgrounds > 0 and rng.uniform() < self.cfg.backgrounds:  # (no draw when off: old runs repeat)
            truth = truth + smooth_background(rng, s, k * rms)
        correlated = rng.uniform() < self.cfg.correlated
        # sources' photon noise doubling the variance at 3-30 sky sigmas (no draw when off: old runs repeat)
        photons = (math.exp(rng.uniform(math.log(PHOTONS[0]), math.log(PHOTONS[1])))
                   if self.cfg.photon_noise > 0 and rng.uniform() < self.cfg.photon_noise else 0.0)
        x, y = make_pair(np.ascontiguousarray(truth), sky, rms, k, rng, correlated=correlated, photons=photons,
                         exact_sigma=self.cfg.pair_sigma == "exact")
        return x, y, synthetic

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Step ``step``'s inputs and truths ``(N, 1, h, w)``, ``(N, 1, 4h, 4w)`` and which truths are synthetic ``(N,)``."""
        rng = np.random.default_rng([self.cfg.seed, step])
        pairs = [self._draw(rng) for _ in range(self.cfg.batch)]
        x = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None])
        y = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None])
        return x, y, torch.tensor([p[2] for p in pairs])

    def _val_pairs(self) -> list[tuple[str, float, np.ndarray, np.ndarray]]:
        """Fixed validation crops (128² truth) of the validation frames at k = 0.5 and 2."""
        out = []
        rng = np.random.default_rng(12345)
        s = 128
        for t in self.val:
            for k in (0.5, 2.0):
                for _ in range(4):
                    y, x = rng.integers(0, t.data.shape[0] - s + 1), rng.integers(0, t.data.shape[1] - s + 1)
                    out.append((t.name, k, *make_pair(t.data[y:y + s, x:x + s].astype(np.float64), t.sky, t.rms, k,
                                                       rng, exact_sigma=self.cfg.pair_sigma == "exact")))
        return out

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """L1 in noise space and PSNR in an asinh display of the truth, of the network and of bicubic (nothing
        without validation frames)."""
        if not self.val_pairs:
            return {}
        self.model.eval()
        res: dict[str, list[float]] = {"val_l1": [], "val_l1_bicubic": [], "val_psnr": [], "val_psnr_bicubic": []}
        for _, _, x, y in self.val_pairs:
            t = torch.from_numpy(x)[None, None]
            with self._autocast():
                out = self.model(t.to(self.device)).float()[0, 0].cpu().numpy()
            bic = F.interpolate(t, scale_factor=SCALE, mode="bicubic", align_corners=False)[0, 0].numpy()
            res["val_l1"].append(float(np.abs(out - y).mean()))
            res["val_l1_bicubic"].append(float(np.abs(bic - y).mean()))
            lo, hi = np.percentile(y, [0.5, 99.9])
            show = lambda a, lo=lo, hi=hi: np.clip((a - lo) / max(hi - lo, 1e-9), 0, 1)  # noqa: E731
            res["val_psnr"].append(psnr(show(out), show(y)))
            res["val_psnr_bicubic"].append(psnr(show(bic), show(y)))
        self.model.train()
        return {k: float(np.mean(v)) for k, v in res.items()}

    def gan_losses(self, out: torch.Tensor, y: torch.Tensor, synthetic: torch.Tensor,
                   lr: float) -> tuple[torch.Tensor, dict[str, float]]:
        """One SRGAN iteration on a batch (noise space): the discriminator is updated on the synthetic pairs' truths
        against the network's outputs for them, and the generator's loss is returned: ``pixel * L1 (all pairs) +
        content * perceptual + adv * BCE(D(G(x)), 1)`` (the last two on the synthetic pairs, through `for_features`)."""
        cfg = self.cfg
        pixel = pixel_loss(cfg, out, y, synthetic)
        if not bool(synthetic.any()):
            return cfg.pixel_weight * pixel, {"pixel": pixel.item()}
        fake, real = for_features(out[synthetic]), for_features(y[synthetic])
        for g in self.d_opt.param_groups:
            g["lr"] = cfg.d_lr * lr / cfg.lr
        d_real, d_fake = self.disc(real), self.disc(fake.detach())
        d_loss = discriminator_loss(d_real, d_fake)
        self.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_opt.step()
        g_fake = self.disc(fake)
        adv = adversarial_loss(g_fake)
        content = self.perceptual(fake, real)
        loss = cfg.pixel_weight * pixel + cfg.content_weight * content + cfg.adv_weight * adv
        return loss, {"pixel": pixel.item(), "content": content.item(), "adv": adv.item(), "d_loss": d_loss.item(),
                      "d_real": torch.sigmoid(d_real.detach()).mean().item(),
                      "d_fake": torch.sigmoid(d_fake.detach()).mean().item()}

    def save(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        state = {"model": self.model.state_dict(), "opt": self.opt.state_dict(), "step": self.step,
                 "arch": self.cfg.arch, "config": asdict(self.cfg) | {"task": "sr"}}
        if self.disc is not None:
            state.update(discriminator=self.disc.state_dict(), d_opt=self.d_opt.state_dict())
        return save_checkpoint(state, self.out / "ckpt.pt")

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    def _batches(self):
        """``(x, y)`` for every step from the current one to the end: made here, or ahead in ``cfg.workers``
        processes (the same batches: each is a function of its step alone)."""
        if self.cfg.workers <= 0:
            return (self.batch(step) for step in range(self.step, self.cfg.iters))
        return iter(torch.utils.data.DataLoader(_Batches(self, self.step, self.cfg.iters), batch_size=None,
                                                num_workers=self.cfg.workers, prefetch_factor=4,
                                                pin_memory=self.device.type == "cuda"))

    def load(self, path: Path) -> None:
        ck = read_checkpoint(path)
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["opt"])
        if self.disc is not None:
            if "discriminator" not in ck:
                raise SettingsError(f"checkpoint {path} has no discriminator: it is not a gan-stage run (use --init)")
            self.disc.load_state_dict(ck["discriminator"])
            self.d_opt.load_state_dict(ck["d_opt"])
        self.step = int(ck["step"])

    def run(self, on_step=None, stop_after: int | None = None) -> dict[str, float]:
        """Train to ``cfg.iters`` (or stop after step ``stop_after``, or after ``cfg.minutes`` of training), validating
        and checkpointing every ``cfg.val_every`` steps and at the end."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(asdict(self.cfg), indent=2))
        log = self.out / "log.csv"
        new = not log.exists()
        last: dict[str, float] = {}
        with open(log, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(["step", "metric", "value", "time"])
            self.model.train()
            start = time.perf_counter()
            batches = self._batches()
            while self.step < min(self.cfg.iters, stop_after or self.cfg.iters):
                lr = self.cfg.lr * 0.5 * (1 + math.cos(math.pi * self.step / self.cfg.iters))
                for g in self.opt.param_groups:
                    g["lr"] = lr
                x, y, synthetic = (t.to(self.device, non_blocking=True) for t in next(batches))
                with self._autocast():
                    out = self.model(x).float()
                if self.cfg.flux_tolerance > 0:
                    out = project_within(out, x, self.cfg.flux_tolerance)
                loss, parts = (self.gan_losses(out, y, synthetic, lr) if self.disc is not None
                               else (pixel_loss(self.cfg, out, y, synthetic), {}))
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
                self.step += 1
                last = {"loss": float(loss.detach()), **parts}
                out_of_time = self.cfg.minutes > 0 and time.perf_counter() - start > 60 * self.cfg.minutes
                if self.step % self.cfg.val_every == 0 or self.step == self.cfg.iters or out_of_time:
                    last.update(self.validate())
                    for k, v in last.items():
                        writer.writerow([self.step, k, f"{v:.6g}", f"{time.time():.0f}"])
                    flush_log(fh, log)
                    self.save()
                if on_step:
                    on_step(self.step, last)
                if out_of_time:
                    break
        return last


def for_features(n: torch.Tensor) -> torch.Tensor:
    """Noise space as the GAN stage's feature network and discriminator see it, in (0, 1): a logistic of the
    noise-space value (the sky near 0.3, a 5-sigma source 0.5, bright cores towards 1), smooth so that no part of
    the range loses its gradient."""
    return torch.sigmoid((n - 1.5) / 2)


def project_within(out: torch.Tensor, x: torch.Tensor, tolerance: float, beta: float = BETA) -> torch.Tensor:
    """``out`` (noise space, 4x grid) with each 4x4 block's mean brought within ``tolerance`` input sigmas of the
    input pixel ``x`` (noise space) in linear units, by a block-constant shift — as `run` keeps its flux promise for
    noise-space networks — differentiably, so training sees what `run` will show."""
    u_out = torch.sinh(out.clamp(-30, 30))  # linear, in units of beta * sigma about the sky
    u_in = torch.sinh(x)
    target = u_in + (F.avg_pool2d(u_out, SCALE) - u_in).clamp(-tolerance / beta, tolerance / beta)
    return torch.asinh(block_mean_shift(u_out, target, SCALE))


def noise_space_sr(model: torch.nn.Module, lr: np.ndarray, sky: float, sigma: float) -> np.ndarray:
    """A linear frame ``lr`` upscaled by a noise-space network (whole frame; for tests and quick looks)."""
    with torch.no_grad():
        n = torch.from_numpy(to_noise_space(np.asarray(lr, np.float64), sky, sigma).astype(np.float32))[None, None]
        return from_noise_space(model(n)[0, 0].double().numpy(), sky, sigma)


__all__ = ["BETA", "project_within", "TelescopeConfig", "TelescopeTrainer", "Truth", "load_truths", "make_pair", "moffat_psf",
           "noise_space_sr", "pixel_integrated_psf", "sersic", "synthetic_field"]

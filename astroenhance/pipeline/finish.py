"""Finishing the networks' output: the noise gate, flux consistency and gamut — the one copy.

`run`, `evaluate`, `compose --upscale` and `mosaic --enhance` all finish pixels here (through the engine), so an
evaluation scores exactly what `run` ships.  Every function works on one piece of output at a time:

* `noise_gate` keeps the SR network's detail only where the input shows structure above its noise
  (`gate_map` is its coefficient on the input grid, `estimate_noise` the noise it is measured against);
* `block_mean_shift` / `project_block_means` make each ``scale x scale`` block of the output average to its
  input pixel (the flux promise), unbounded for chroma and within [0, 1] for luminance;
* `finish_pixels` turns blended luminance and chroma into the output's RGB and luminance: flux projection, chroma
  fitted into the gamut (never luminance clipped), no-data pixels as NaN.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..imaging.color import fit_chroma_to_gamut, ycbcr_to_rgb

GATE_Z = (5.0, 7.0)  # the gate opens from |pixel - 3x3 mean| = 5 sigma (closed) to 7 sigma (fully open)


# ---- noise -------------------------------------------------------------------------------------------

def estimate_noise(img: torch.Tensor | np.ndarray, lag: int = 1) -> float:
    """Robust noise sigma of a 2-D image (or rows of one) from differences of pixels ``lag`` apart along rows:
    ``1.4826 * median|x[i, j+lag] - x[i, j]| / sqrt(2)``, blind to smooth structure and to a few sources.  Lag 1 is
    the white-noise sigma; where noise is correlated between neighbours (drizzled frames) it is too small, and lag 2
    gives the per-pixel sigma (drizzle kernels reach about one pixel)."""
    x = torch.as_tensor(img, dtype=torch.float64)
    d = (x[..., lag:] - x[..., :-lag]).abs().flatten()
    d = d[torch.isfinite(d)]
    return float(1.4826 * d.median() / math.sqrt(2)) if d.numel() else 0.0


def gate_map(lr: torch.Tensor, sigma: float, z0: float = GATE_Z[0], z1: float = GATE_Z[1]) -> torch.Tensor:
    """`noise_gate`'s coefficient on the input grid ``(N, 1, h, w)``: 0 keeps bicubic, 1 the network's detail.
    Each value depends on the input within 3 pixels (3x3 mean, then 5x5 dilation)."""
    local = F.avg_pool2d(F.pad(lr, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    z = (lr - local).abs() / (math.sqrt(72 / 81) * sigma)
    g = ((z - z0) / (z1 - z0)).clamp(0, 1)
    return F.max_pool2d(g, 5, stride=1, padding=2)


def noise_gate(sr: torch.Tensor, lr: torch.Tensor, scale: int, sigma: float, z0: float = GATE_Z[0],
               z1: float = GATE_Z[1]) -> torch.Tensor:
    """Keep the network's detail (its difference from bicubic) only where the input shows structure above
    the noise; elsewhere the output falls back to bicubic interpolation.

    Significance of input pixel ``p``: ``z = |p - mean3x3(p)| / (0.943 sigma)`` (0.943 sigma is that
    statistic's spread for white noise).  The gate rises from 0 at ``z0`` to 1 at ``z1`` and is dilated
    over 5x5 input pixels, so a detected source keeps its surroundings' detail too.  On pure noise almost
    nothing passes (|z| > 5 has probability 6e-7), so the network cannot turn noise peaks into sources.
    """
    base = F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)
    if sigma <= 0:
        return sr
    g = F.interpolate(gate_map(lr, sigma, z0, z1), scale_factor=scale, mode="nearest")
    return base + (sr - base) * g


# ---- flux consistency -------------------------------------------------------------------------------

def block_means(hr: np.ndarray, scale: int) -> np.ndarray:
    """Means of the ``scale x scale`` blocks of ``hr`` ``(H*s, W*s, ...)`` -> ``(H, W, ...)``."""
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    return hr.reshape(h, scale, w, scale, *hr.shape[2:]).mean(axis=(1, 3))


def block_mean_shift(hr, lr, scale: int):
    """Shift each ``scale x scale`` block of ``hr`` so its mean equals the matching pixel of ``lr``.

    The least-squares correction (the same shift for every pixel of a block), unbounded.  numpy arrays
    ``(H*s, W*s, ...)`` / ``(H, W, ...)``: the chroma of a colour input in `finish_pixels`; torch tensors
    ``(N, C, H*s, W*s)`` / ``(N, C, H, W)``: differentiable, for training with the flux promise in the loop."""
    if isinstance(hr, torch.Tensor):
        return hr + F.interpolate(lr - F.avg_pool2d(hr, scale), scale_factor=scale, mode="nearest")
    return hr + np.repeat(np.repeat(lr - block_means(hr, scale), scale, axis=0), scale, axis=1)


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


# ---- flux in the input's units ---------------------------------------------------------------------------

SMOOTH_PASSES = 16  # back-projection passes with a bilinear kernel before the last, block-constant, step


def smooth_block_correction(out: np.ndarray, target: np.ndarray, scale: int, passes: int = SMOOTH_PASSES) -> np.ndarray:
    """``out`` (float64, ``(H*s, W*s)``) with each ``scale x scale`` block mean brought onto ``target`` (``(H, W)``)
    by a smooth correction: iterative back-projection of the block residuals with a bilinear kernel (edges
    replicated), then one block-constant step for the little left, so the result is exact and no 4x4 lattice of
    steps shows where the network and the input disagree.  Unbounded (flux may be negative in noise)."""
    x = torch.from_numpy(np.ascontiguousarray(out, np.float64))[None, None]
    t = torch.from_numpy(np.ascontiguousarray(target, np.float64))[None, None]
    for _ in range(passes):
        r = t - F.avg_pool2d(x, scale)
        x = x + F.interpolate(r, scale_factor=scale, mode="bilinear", align_corners=False)
    return block_mean_shift(x, t, scale)[0, 0].numpy()


PER_PIXEL_UNITS = ("electron", "count", "dn", "adu", "e-", "e/s", "jy", "erg/s/cm", "erg/cm")
SURFACE_BRIGHTNESS = ("/sr", "arcsec", "/pix", "/beam", "mag")


def flux_per_pixel(bunit: str) -> tuple[bool, str]:
    """Whether BUNIT is a per-pixel quantity (counts, electrons/s, Jy per pixel: the output pixels *sum* to the
    input pixel) or a surface brightness (MJy/sr, per arcsec²: they *average* to it), and how that was decided."""
    u = str(bunit or "").strip().lower().replace(" ", "")
    if any(k in u for k in SURFACE_BRIGHTNESS):
        return False, f"BUNIT {bunit!r}: a surface brightness, so the 16 output pixels average to the input pixel"
    if any(k in u for k in PER_PIXEL_UNITS):
        return True, f"BUNIT {bunit!r}: per pixel, so the 16 output pixels sum to the input pixel"
    return True, (f"BUNIT {bunit!r} not recognised" if u else "no BUNIT") + \
        ": taken as per pixel, so the 16 output pixels sum to the input pixel"


def physical_flux(lum: np.ndarray, raw: np.ndarray, inverse, scale: int, tolerance: float = 0.0,
                  sigma: float = 0.0, per_pixel: bool = True) -> np.ndarray:
    """The ``FLUX`` plane of a piece of output: the finished display luminance ``lum`` ``(H*s, W*s)`` mapped back to
    the input's units by ``inverse`` (the display mapping's exact inverse), then each block's mean brought onto
    the input pixel ``raw`` ``(H, W)`` (``tolerance`` 0) or within ``tolerance * sigma`` of it (noise-consistent), by
    `smooth_block_correction`.  Per-pixel units (counts, electrons/s) are divided by ``scale**2`` so that the
    ``scale**2`` output pixels *sum* to the input pixel; surface brightness keeps the mean.  NaN where the input
    has no data; float32."""
    ok = np.isfinite(raw)
    lin = inverse(np.nan_to_num(lum, nan=0.0)).astype(np.float64)
    current = block_means(lin, scale)
    r = np.where(ok, raw, current) - current
    if tolerance > 0:
        r = np.sign(r) * np.maximum(np.abs(r) - tolerance * sigma, 0.0)
    out = smooth_block_correction(lin, current + r, scale)
    if per_pixel:
        out /= scale * scale
    if not ok.all():
        out[np.repeat(np.repeat(~ok, scale, axis=0), scale, axis=1)] = np.nan
    return out.astype(np.float32)


# ---- the finished pixels ------------------------------------------------------------------------------

def noise_consistent_shift(out: np.ndarray, target: np.ndarray, sigma: np.ndarray, scale: int,
                           tolerance: float) -> np.ndarray:
    """Shift each ``scale x scale`` block of ``out`` towards its ``target`` mean by the part of the difference that
    exceeds ``tolerance * sigma`` (the input pixel's noise): block means end within the input's noise of the input,
    as the truth's are, so a network that removes noise is not forced to put it back.  Values stay in [0, 1]."""
    current = block_means(out.astype(np.float64), scale)
    r = target - current
    r = np.sign(r) * np.maximum(np.abs(r) - tolerance * sigma, 0.0)
    # the new block means lie between the current ones and the target, so within [0, 1]: the bounded
    # least-squares projection reaches them exactly, also where a block touches 0 or 1
    return project_block_means(out, np.clip(current + r, 0.0, 1.0), scale)


def finish_pixels(lum: np.ndarray, chroma: np.ndarray, lum_in: np.ndarray, mask: np.ndarray, scale: int,
                  flux: bool, chroma_in: np.ndarray | None = None, tolerance: float = 0.0,
                  sigma_in: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Final RGB ``(H*s, W*s, 3)`` and luminance ``(H*s, W*s)`` of a piece of output.

    ``lum``/``chroma`` are the blended network outputs on the output grid; ``lum_in`` the normalized input
    luminance and ``mask`` its no-data pixels on the input grid.  With ``flux`` the block means of the
    luminance equal ``lum_in`` and, for a colour input (``chroma_in``, measured colour), so do the chroma's;
    then the chroma is shrunk into the RGB gamut (a pixel's saturation may give way, never its luminance).
    With a ``tolerance`` > 0 the luminance's block means are only brought within ``tolerance * sigma_in`` (the
    input pixels' noise, display units) of ``lum_in`` (`noise_consistent_shift`) instead of onto it.
    """
    if flux and scale > 1 and tolerance > 0 and sigma_in is not None:
        lum = noise_consistent_shift(lum, np.clip(lum_in, 0, 1), sigma_in, scale, tolerance).astype(np.float32)
    elif flux and scale > 1:
        lum = project_block_means(lum, np.clip(lum_in, 0, 1), scale)
        if chroma_in is not None:
            chroma = block_mean_shift(chroma, chroma_in, scale)
    else:
        lum = np.clip(lum, 0.0, 1.0)
    chroma = fit_chroma_to_gamut(lum, chroma)
    rgb = ycbcr_to_rgb(lum, chroma).astype(np.float32)
    # the luminance of the output *is* lum; rounding in the rebuild must not push values out of [0, 1]
    np.clip(rgb, 0.0, 1.0, out=rgb)
    if mask.any():
        big = np.repeat(np.repeat(mask, scale, axis=0), scale, axis=1)
        rgb[big] = np.nan
        lum = lum.copy()
        lum[big] = np.nan
    return rgb, lum

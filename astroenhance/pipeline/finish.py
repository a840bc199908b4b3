"""Finishing the networks' output: the noise gate, flux consistency and gamut — the one copy.

`run`, `evaluate`, `compose --upscale` and `mosaic --enhance` all finish pixels here (through the engine), so an
evaluation scores exactly what `run` ships.  Every function works on one piece of output at a time, as torch code on
the run's device (CPU or GPU: one path); numpy arrays given to the same functions come back as numpy:

* `noise_gate` keeps the SR network's detail only where the input shows structure above its noise
  (`gate_map` is its coefficient on the input grid, `estimate_noise` the noise it is measured against);
* `block_mean_shift` / `project_block_means` make each ``scale x scale`` block of the output average to its
  input pixel (the flux promise), unbounded for chroma and within [0, 1] for luminance;
* `finish_pixels` turns blended luminance and chroma into the output's RGB and luminance: flux projection, chroma
  fitted into the gamut (`fit_chroma_to_gamut`: never luminance clipped), no-data pixels as NaN;
* `physical_flux` makes the FLUX plane: the luminance in the input's units, each input pixel's flux kept;
  `flux_error` its FLUXERR plane: the input's noise, shared over each block as the flux is.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch
import torch.nn.functional as F

from ..imaging.color import ycbcr_to_rgb_planes

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
# One implementation, in torch: the engine calls these with tensors on the run's device (CPU or GPU, the same
# code); numpy arrays (evaluation, tests) go through the same code and come back as numpy.

def _tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


def _like(t: torch.Tensor, x):
    """``t`` as the kind ``x`` was: a tensor stays one, a numpy input gets numpy back."""
    return t if isinstance(x, torch.Tensor) else t.numpy()


def _pool(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Means of the ``scale x scale`` blocks of the last two axes of ``x``."""
    lead = x.shape[:-2]
    p = F.avg_pool2d(x.reshape(-1, 1, *x.shape[-2:]), scale)
    return p.reshape(*lead, *p.shape[-2:])


def _expand(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Each pixel of the last two axes of ``x`` repeated into a ``scale x scale`` block."""
    return x.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)


def block_means(hr, scale: int):
    """Means of the ``scale x scale`` blocks of ``hr``: numpy ``(H*s, W*s, ...)`` -> ``(H, W, ...)``; torch
    ``(..., H*s, W*s)`` -> ``(..., H, W)``."""
    if isinstance(hr, torch.Tensor):
        return _pool(hr, scale)
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    return hr.reshape(h, scale, w, scale, *hr.shape[2:]).mean(axis=(1, 3))


def block_mean_shift(hr, lr, scale: int):
    """Shift each ``scale x scale`` block of ``hr`` so its mean equals the matching pixel of ``lr``.

    The least-squares correction (the same shift for every pixel of a block), unbounded.  torch tensors
    ``(..., H*s, W*s)`` / ``(..., H, W)`` (differentiable: training with the flux promise in the loop; the chroma of a
    colour input in `finish_pixels`); numpy arrays ``(H*s, W*s, ...)`` / ``(H, W, ...)``."""
    if isinstance(hr, torch.Tensor):
        return hr + _expand(lr - _pool(hr, scale), scale)
    return hr + np.repeat(np.repeat(lr - block_means(hr, scale), scale, axis=0), scale, axis=1)


PROJECT_CHUNK = 65536  # blocks solved at a time by `_clipped_shifts` (its temporaries: ~1 KB per 4x4 block)


def _clipped_shifts(b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """For each row of ``b`` ``(k, n)`` the shift ``tau`` with ``mean(clip(b + tau, 0, 1)) = t`` (``t`` ``(k,)`` in
    [0, 1]), exactly: that mean is piecewise linear in ``tau``, rising from 0 to 1 between the breakpoints ``-b`` (a
    pixel leaves 0) and ``1 - b`` (it reaches 1).  It is evaluated at all ``2n`` of them — ``sum(clip(b + x, 0, 1))``
    is ``g(x) - g(x - 1)`` with ``g(x) = sum(max(b + x, 0))``, the sum of the values above ``-x`` plus ``x`` times
    their count (sorted values, their running sums) — and ``tau`` interpolated on the segment that reaches ``t``: a
    fixed number of tensor operations (a bisection took ~400 on a GPU's queue)."""
    k, n = b.shape
    bs = b.sort(dim=1).values
    top = torch.cat([b.new_zeros((k, 1)), bs.flip(1).cumsum(dim=1)], dim=1)  # top[:, m]: the sum of the m largest
    knots = torch.cat([-bs, 1.0 - bs], dim=1).sort(dim=1).values  # (k, 2n)

    def g(x: torch.Tensor) -> torch.Tensor:
        m = n - torch.searchsorted(bs, -x, right=True)  # how many values lie above -x
        return top.gather(1, m) + m * x

    f = (g(knots) - g(knots - 1.0)) / n  # (k, 2n), from 0 to 1, non-decreasing
    j = (f < t[:, None]).sum(dim=1, keepdim=True).clamp(1, 2 * n - 1)  # f[j - 1] < t <= f[j]
    k0, k1 = knots.gather(1, j - 1)[:, 0], knots.gather(1, j)[:, 0]
    f0, f1 = f.gather(1, j - 1)[:, 0], f.gather(1, j)[:, 0]
    rise = f1 - f0
    return k0 + torch.where(rise > 0, (t - f0) / rise.clamp(min=1e-300), torch.zeros_like(rise)) * (k1 - k0)


def project_block_means(out, target, scale: int):
    """Shift each ``scale x scale`` block of ``out`` so its mean equals ``target`` and values stay in [0, 1].

    For every block the result is ``clip(out + tau, 0, 1)`` with ``tau`` solved exactly (`_clipped_shifts`) — the
    closest (least-squares) block in [0, 1] with the required mean.  ``target`` ``(H, W)`` must lie in [0, 1]; ``out``
    is ``(H*s, W*s)``, numpy or a torch tensor (worked on its device, in float64); float32 back.
    """
    t_out, t_tgt = _tensor(out), _tensor(target)
    h, w = t_tgt.shape
    n = scale * scale
    blocks = t_out.double().reshape(h, scale, w, scale).permute(0, 2, 1, 3).reshape(h * w, n)
    t = t_tgt.double().reshape(-1)
    # most blocks need only the plain shift; the exact clipped shift only where the plain one would leave [0, 1]
    blocks = blocks + (t - blocks.mean(dim=1))[:, None]
    bad = torch.nonzero((blocks.amin(dim=1) < 0) | (blocks.amax(dim=1) > 1)).squeeze(1)
    for c in range(0, bad.numel(), PROJECT_CHUNK):
        rows = bad[c:c + PROJECT_CHUNK]
        b, tb = blocks[rows], t[rows]
        fixed = (b + _clipped_shifts(b, tb)[:, None]).clamp(0.0, 1.0)
        # remove the last rounding with a shift of the pixels strictly inside (0, 1)
        inside = (fixed > 0) & (fixed < 1)
        count = inside.sum(dim=1)
        corr = torch.where(count > 0, (tb - fixed.mean(dim=1)) * n / count.clamp(min=1), torch.zeros_like(tb))
        fixed = fixed + corr[:, None] * inside
        blocks[rows] = fixed.clamp(0.0, 1.0)  # only removes float64 dust (~1e-17)
    res = blocks.reshape(h, w, scale, scale).permute(0, 2, 1, 3).reshape(h * scale, w * scale).float()
    return _like(res, out)


# ---- flux in the input's units ---------------------------------------------------------------------------

SMOOTH_PASSES = 16  # back-projection passes with a bilinear kernel before the last, block-constant, step


def _pooled_bilinear_taps(scale: int, like: torch.Tensor) -> torch.Tensor:
    """The 3 taps (pixel before, itself, after) of the block means of a bilinear ``scale`` upsampling, on the input
    grid.  Output pixel ``i`` of a block sits at offset ``o = (i + 0.5) / scale - 0.5`` (|o| < 0.5) from its input
    pixel and takes ``1 - |o|`` of it and ``|o|`` of the neighbour on that side (the interpolation clamps its
    coordinates: edges replicated); the block mean averages those weights (x4: 1/8, 3/4, 1/8)."""
    o = (torch.arange(scale, dtype=like.dtype, device=like.device) + 0.5) / scale - 0.5
    return torch.stack([(-o).clamp(min=0).mean(), (1 - o.abs()).mean(), o.clamp(min=0).mean()])


def _pooled_bilinear(r: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """``_pool(interpolate(r, scale, bilinear))`` for ``r`` ``(1, 1, H, W)`` on the input grid: the separable filter
    ``taps`` (`_pooled_bilinear_taps`), edges replicated — 1/scale² of the work."""
    r = F.conv2d(F.pad(r, (1, 1, 0, 0), mode="replicate"), taps.view(1, 1, 1, 3))
    return F.conv2d(F.pad(r, (0, 0, 1, 1), mode="replicate"), taps.view(1, 1, 3, 1))


def smooth_block_correction(out, target, scale: int, passes: int = SMOOTH_PASSES):
    """``out`` (``(H*s, W*s)``) with each ``scale x scale`` block mean brought onto ``target`` (``(H, W)``)
    by a smooth correction: iterative back-projection of the block residuals with a bilinear kernel (edges
    replicated), then one block-constant step for the little left, so the result is exact and no 4x4 lattice of
    steps shows where the network and the input disagree.  Unbounded (flux may be negative in noise).  float64,
    numpy or torch (on its device).

    Every pass is linear, so the passes run on the input grid (the residual's next value is itself minus the block
    means of its bilinear upsampling, `_pooled_bilinear`) and the output grid gets one upsampling of their sum: the
    same result as upsampling each pass's residual, to float64 rounding."""
    x = _tensor(out).double()[None, None]
    t = _tensor(target).double()[None, None]
    r = t - F.avg_pool2d(x, scale)
    taps = _pooled_bilinear_taps(scale, r)
    total = torch.zeros_like(r)
    for _ in range(passes):
        total = total + r
        r = r - _pooled_bilinear(r, taps)
    x = x + F.interpolate(total, scale_factor=scale, mode="bilinear", align_corners=False)
    return _like(block_mean_shift(x, t, scale)[0, 0], out)


SHARP_SIGMAS = 3.0  # block corrections beyond this many input sigmas follow the block's light (`physical_flux`)


def structured_block_correction(out, shift, scale: int, floor=0.0):
    """``out`` (``(H*s, W*s)``) with each ``scale x scale`` block's mean raised by ``shift`` (``(H, W)``), spread over the
    block in proportion to each pixel's light above the block's faintest pixel plus ``floor`` (a number or ``(H, W)``;
    0: evenly only in an exactly flat block, and for what a negative shift takes beyond all that light): the
    correction stays where the light is, so a large one does not ring; a ``floor`` at the noise level spreads it
    evenly where the block's light varies by less (the sky: a noise peak is not gathered into a dot).  Only the
    blocks with a shift are worked on.  float64 tensors; a new tensor back."""
    n = scale * scale
    h, w = shift.shape
    res = out.clone().contiguous()
    iy, ix = torch.nonzero(shift).unbind(1)
    if not iy.numel():
        return res
    view = res.view(h, scale, w, scale)
    b = view[iy, :, ix, :]  # (k, s, s): the blocks to correct
    k = b.shape[0]
    flat = b.reshape(k, n)
    light = flat - flat.amin(dim=1, keepdim=True)
    if isinstance(floor, torch.Tensor):
        light = light + floor.to(flat)[iy, ix][:, None]
    elif floor:
        light = light + floor
    total = light.sum(dim=1)  # each block's light above its faintest pixel
    want = shift[iy, ix] * n
    # a block loses at most all of that light (down to its faintest pixel's level); the rest of a larger negative
    # shift, and the whole shift of a flat block, is even
    moved = torch.where(total > 1e-12 * flat.abs().sum(dim=1), torch.maximum(want, -total), torch.zeros_like(want))
    flat = flat + light * (moved / total.clamp(min=1e-300))[:, None] + ((want - moved) / n)[:, None]
    view[iy, :, ix, :] = flat.reshape(k, scale, scale)
    return res


PER_PIXEL_UNITS = ("electron", "count", "dn", "adu", "e-", "e/s", "jy", "erg", "/pix", "maggie")
# ("/pix": Jy/pixel, counts/pixel are an amount in each pixel, so a pixel's 16 parts sum to it)
#: a solid angle anywhere in BUNIT makes it a surface brightness, in every way the FITS standard writes one:
#: MJy/sr, MJy sr-1, MJy.sr**-1, Jy/beam, Jy beam-1, erg/s/cm2/A/arcsec2, mJy arcsec-2, W m-2 sr-1
SURFACE_BRIGHTNESS = re.compile(r"(?<![a-z])(sr|steradian|arcsec|arcmin|beam)(?![a-z])")


def flux_per_pixel(bunit: str) -> tuple[bool, str]:
    """Whether BUNIT is a per-pixel quantity (counts, electrons/s, Jy per pixel: the output pixels *sum* to the
    input pixel) or a surface brightness (MJy/sr, per arcsec²: they *average* to it), and how that was decided."""
    u = str(bunit or "").strip().lower()
    if SURFACE_BRIGHTNESS.search(u):
        return False, f"BUNIT {bunit!r}: a surface brightness, so the 16 output pixels average to the input pixel"
    if any(k in u.replace(" ", "") for k in PER_PIXEL_UNITS):
        return True, f"BUNIT {bunit!r}: per pixel, so the 16 output pixels sum to the input pixel"
    return True, (f"BUNIT {bunit!r} not recognised" if u else "no BUNIT") + \
        ": taken as per pixel, so the 16 output pixels sum to the input pixel"


#: BUNIT of an amount gathered over the exposure (counts, electrons, DN), unless it is per second
INTEGRATED_UNITS = re.compile(r"electron|count|dn|adu|e-|photon")
RATE_UNITS = re.compile(r"/\s*s(ec|econd)?\b|\bs(\*\*|\^)?-1|\bcps\b|per\s*s")


def gathered_over_exposure(bunit: str) -> bool:
    """Whether BUNIT is an amount gathered over the whole exposure (counts, electrons, DN: ACS/WFC3 flt, WFPC2 c0m),
    not a rate (electrons/s, counts s-1) or a flux density: frames of other exposure times are then on other scales
    (`compose.exposure_scales`)."""
    u = str(bunit or "").strip().lower()
    return bool(INTEGRATED_UNITS.search(u)) and not RATE_UNITS.search(u)


def _shrink(r: torch.Tensor, allowed) -> torch.Tensor:
    """The part of each residual ``r`` beyond ``allowed`` (a number or a tensor like ``r``), with its sign."""
    return r.sign() * (r.abs() - allowed).clamp(min=0.0)


#: FLUX lets the network's departure from the input go only where it looks like noise: its local mean over a Gaussian
#: of this many input pixels is put back (0: each pixel on its own); chosen on validation frames (docs/experiments.md)
FLUX_LOWPASS = 1.0


def gaussian_radius(width: float) -> int:
    """Pixels on either side that `_gaussian_mean` of ``width`` reaches (its kernel is cut at 3 sigma)."""
    return max(1, math.ceil(3 * width))


def gaussian_blur(x: torch.Tensor, width: float) -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` smoothed by a Gaussian of ``width`` pixels, each plane on its own (separable, cut at 3
    sigma, edges replicated).  Each pass is a weighted sum of shifted views (a single-channel ``conv2d`` on a CPU
    took 8x as long, for the same sums)."""
    radius = gaussian_radius(width)
    k = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=x.dtype) / width) ** 2)
    taps = (k / k.sum()).tolist()  # (the weights in x's precision, as Python numbers: no device round trips)
    n, c, h, w = x.shape
    y = F.pad(x.reshape(n * c, 1, h, w), (radius, radius, 0, 0), mode="replicate")
    y = _weighted_shifts(y, taps, -1, w)
    y = F.pad(y, (0, 0, radius, radius), mode="replicate")
    return _weighted_shifts(y, taps, -2, h).reshape(n, c, h, w)


def _weighted_shifts(y: torch.Tensor, taps: list[float], dim: int, size: int) -> torch.Tensor:
    """``sum_i taps[i] * y.narrow(dim, i, size)``: one pass of a separable filter over ``y`` padded along ``dim``."""
    out = y.narrow(dim, 0, size) * taps[0]
    for i, t in enumerate(taps[1:], 1):
        out.add_(y.narrow(dim, i, size), alpha=t)
    return out


def _gaussian_mean(x: torch.Tensor, ok: torch.Tensor, width: float) -> torch.Tensor:
    """The mean of ``x`` ``(H, W)`` over a Gaussian of ``width`` pixels, over the ``ok`` pixels only (edges
    replicated)."""
    stack = gaussian_blur(torch.stack([torch.where(ok, x, torch.zeros_like(x)), ok.to(x.dtype)])[None], width)
    return stack[0, 0] / stack[0, 1].clamp(min=1e-12)


def high_pass_within(r: torch.Tensor, ok: torch.Tensor, allowed, width: float) -> torch.Tensor:
    """The part of the residuals ``r`` (input minus output block means, ``(H, W)``) that FLUX may let go: within
    ``allowed`` (the noise tolerance: a number, or a tensor like ``r``) and, for ``width`` > 0, without its local mean over a Gaussian of ``width``
    pixels — noise averages out over a few pixels, the light of a faint source the network flattened does not, so
    that light is put back while the noise stays removed.  Zero where ``ok`` is False (no data)."""
    let_go = r.clamp(-allowed, allowed)
    if width > 0:
        let_go = (let_go - _gaussian_mean(let_go, ok, width)).clamp(-allowed, allowed)
    return torch.where(ok, let_go, torch.zeros_like(let_go))


def physical_flux(lum, raw, inverse, scale: int, tolerance: float = 0.0, sigma=0.0, per_pixel: bool = True):
    """The ``FLUX`` plane of a piece of output: the finished display luminance ``lum`` ``(H*s, W*s)`` mapped back to
    the input's units by ``inverse`` (the display mapping's exact inverse, applied to a tensor), then each block's
    mean brought onto the input pixel ``raw`` ``(H, W)`` (``tolerance`` 0) or within ``tolerance * sigma`` of it
    (``sigma`` the input's noise: a number, or per input pixel like ``raw``; noise-consistent: what it lets go is
    only what looks like noise, `high_pass_within`).  Corrections beyond
    `SHARP_SIGMAS` follow the block's light (`structured_block_correction`: no ringing around a star whose core the
    display clipped), the rest is smooth (`smooth_block_correction`: no 4x4 lattice).  Per-pixel units (counts,
    electrons/s) are divided by ``scale**2`` so that the ``scale**2`` output pixels *sum* to the input pixel; surface
    brightness keeps the mean.
    NaN where the input has no data; float32, numpy or a tensor on ``lum``'s device as ``lum`` is."""
    t_lum = _tensor(lum)
    t_raw = _tensor(raw).to(t_lum.device, torch.float64)
    ok = torch.isfinite(t_raw)
    lin = _tensor(inverse(torch.nan_to_num(t_lum, nan=0.0))).double()
    current = _pool(lin, scale)
    r = torch.where(ok, t_raw, current) - current
    if isinstance(sigma, torch.Tensor | np.ndarray):
        sigma = _tensor(sigma).to(t_raw.device, torch.float64)
        positive = bool((sigma > 0).all())
    else:
        positive = sigma > 0
    if tolerance > 0:
        r = r - high_pass_within(r, ok, tolerance * sigma, FLUX_LOWPASS)
    if positive:
        # a correction far beyond the noise (a star's core the display clipped, a block the network got wrong) goes
        # where the block's light is: a smooth one would spread it over the neighbours and ring
        lin = structured_block_correction(lin, _shrink(r, SHARP_SIGMAS * sigma), scale)
    out = smooth_block_correction(lin, current + r, scale)
    if per_pixel:
        out = out / (scale * scale)
    out = torch.where(_expand(ok, scale), out, torch.full_like(out, float("nan")))
    return _like(out.float(), lum)


def flux_error(sigma, ok, scale: int, per_pixel: bool = True):
    """The ``FLUXERR`` plane of a piece of output: each input pixel's noise ``sigma`` ``(H, W)`` shared over its
    ``scale x scale`` block so that a sum in quadrature over the block's ``scale**2`` pixels gives that sigma back
    for the block's sum (per-pixel units: ``sigma / scale`` on each output pixel) or for its mean (surface
    brightness: ``sigma * scale``), as `physical_flux` shares the flux.  The block's pixels are not independent
    (one input measurement spread over 16 pixels): quadrature sums are right for apertures of whole input pixels,
    and nearly so for apertures much larger than one; a single output pixel's error is not known.  NaN where
    ``ok`` (``(H, W)``) is False.  float32, numpy or a tensor as ``sigma`` is."""
    t = _tensor(sigma).double()
    err = (t / scale if per_pixel else t * scale).float()
    err = torch.where(_tensor(ok).to(t.device), err, torch.full_like(err, float("nan")))
    h, w = err.shape
    return _like(err[:, None, :, None].expand(h, scale, w, scale).reshape(h * scale, w * scale), sigma)


# ---- the finished pixels ------------------------------------------------------------------------------

def fit_chroma_to_gamut(y, chroma):
    """Shrink chroma towards grey, per pixel, just enough that ``ycbcr_to_rgb(y, chroma)`` lies in [0, 1].

    Luminance is left exactly as it is (``y`` must already be in [0, 1]); only saturation gives way.
    This is why clipping is never needed and the output luminance stays the input luminance.
    torch (the engine, on its device): ``y`` ``(...)``, ``chroma`` ``(2, ...)``; numpy: ``chroma`` ``(..., 2)``, through
    the same code.
    """
    if isinstance(chroma, torch.Tensor):
        return _fit_chroma(y, chroma)
    out = _fit_chroma(torch.from_numpy(np.asarray(y)), torch.from_numpy(np.moveaxis(np.asarray(chroma), -1, 0)))
    return np.ascontiguousarray(np.moveaxis(out.numpy(), 0, -1))


def _fit_chroma(y: torch.Tensor, chroma: torch.Tensor) -> torch.Tensor:
    y = y.clamp(0.0, 1.0)
    # RGB offsets from grey per unit chroma: R - Y, G - Y, B - Y
    d = torch.stack(ycbcr_to_rgb_planes(torch.zeros_like(y), chroma[0], chroma[1]))  # (3, ...)
    rgb = y + d
    leaves = (rgb.amin(dim=0) < 0) | (rgb.amax(dim=0) > 1)  # only these pixels are shrunk (the others' factor is 1)
    # at black or white every colour leaves the gamut (some channel's offset has the wrong sign): grey, no search
    at_edge = leaves & ((y <= 0) | (y >= 1))
    out = chroma.masked_fill(at_edge, 0.0)
    leaves &= ~at_edge
    if bool(leaves.any()):
        where = (slice(None), *leaves.nonzero(as_tuple=True))
        out[where] = chroma[where] * _gamut_factor(y[leaves], d[where])
    return out


def _gamut_factor(y: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """The largest factor in [0, 1] by which the RGB offsets ``d`` ``(3, n)`` from grey ``y`` ``(n,)`` may be scaled
    with ``y + factor * d`` in [0, 1] (1 where no offset is finite)."""
    inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
    up = torch.where(d > 0, (1.0 - y) / d, inf)
    down = torch.where(d < 0, -y / d, inf)
    t = torch.minimum(up, down).amin(dim=0).clamp(max=1.0)
    return torch.where(torch.isfinite(t), t.clamp(min=0.0), torch.ones_like(t))


def block_levels_within(out, low, high, scale: int, display, sigma=0.0):
    """``out`` (display values, ``(H*s, W*s)``) with each ``scale x scale`` block's mean *in the input's units* brought
    into ``[low, high]`` (``(H, W)``, input units: the input pixel's value minus and plus the noise tolerated, or the
    value itself for the exact promise; NaN where the input has no data: the block left as it is).  ``display`` is
    the display mapping (a `Normalizer`: called, its ``inverse``, ``vmin`` and ``vmax``).  In the input's units, because a block's display mean is not the display of its mean: a sharp
    star's block has a display mean well below the display of its flux (the truth's too), and a promise kept in
    display units flattened such stars into squares.  A block is moved in the input's units, the move spread over it
    in proportion to its light above a floor of the input's noise ``sigma`` (`structured_block_correction`: evenly
    where the light varies less, as in the sky), values kept between the display's black and white points
    (`project_block_means`): block means end within the input's noise of the input, as the truth's are, and a
    network that removes noise is not forced to put it back.  A block holding pixels at the white point has light
    above it that its values do not show: it is only held below ``high``.  torch tensors on the run's device;
    float32 back."""
    t_out = _tensor(out)
    black, span = display.vmin, display.vmax - display.vmin  # the input values the display maps to 0 and to 1
    u = (display.inverse(t_out.double()) - black) / span  # the input's units, 0 at the black point, 1 at the white
    current = _pool(u, scale)
    lo, hi = (_tensor(low).double() - black) / span, (_tensor(high).double() - black) / span
    known = torch.isfinite(lo) & torch.isfinite(hi)
    white_pixels = F.max_pool2d((u >= 1.0 - 1e-9).double()[None, None], scale)[0, 0] > 0
    lo = torch.where(white_pixels, torch.full_like(lo, -math.inf), lo)
    target = torch.where(known, torch.minimum(torch.maximum(current, lo), hi), current)
    target = target.clamp(0.0, 1.0)
    # only the blocks beyond the promise move (a few per cent): the rest keep their display values (`u` is their exact
    # inverse); the moved ones are gathered into one row of blocks and worked on alone
    res = t_out.float().clamp(0.0, 1.0)
    iy, ix = torch.nonzero(target - current).unbind(1)
    if not iy.numel():
        return _like(res, out)
    h, w = target.shape
    k = iy.numel()
    blocks = u.view(h, scale, w, scale)[iy, :, ix, :]  # (k, s, s) -> one row of k blocks, (s, k*s)
    blocks = blocks.permute(1, 0, 2).reshape(scale, k * scale)
    floor = _tensor(sigma).double()[iy, ix][None] / span if isinstance(sigma, torch.Tensor | np.ndarray) else sigma / span
    # the correction goes where the block's light is (a star's block is not flattened into a square), then the
    # bounded projection removes what the clip at the black and white points left
    moved = structured_block_correction(blocks, (target - current)[iy, ix][None], scale, floor).clamp(0.0, 1.0)
    moved = display(black + span * project_block_means(moved, target[iy, ix][None], scale).double())
    res.view(h, scale, w, scale)[iy, :, ix, :] = moved.reshape(scale, k, scale).permute(1, 0, 2).to(res)
    return _like(res, out)


def finish_pixels(lum: torch.Tensor, chroma: torch.Tensor, lum_in: torch.Tensor, mask: torch.Tensor, scale: int,
                  flux: bool, chroma_in: torch.Tensor | None = None,
                  bounds: tuple[torch.Tensor, torch.Tensor] | None = None,
                  display=None, sigma=0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Final RGB ``(H*s, W*s, 3)`` and luminance ``(H*s, W*s)`` of a piece of output, as float32 tensors on the
    inputs' device (the engine's: CPU or GPU, one code path).

    ``lum`` ``(H*s, W*s)`` / ``chroma`` ``(2, H*s, W*s)`` are the blended network outputs on the output grid;
    ``lum_in`` the normalized input luminance and ``mask`` its no-data pixels on the input grid.  With ``flux`` the
    block means of the luminance equal ``lum_in`` and, for a colour input (``chroma_in`` ``(2, H, W)``, measured
    colour), so do the chroma's; then the chroma is shrunk into the RGB gamut (a pixel's saturation may give way,
    never its luminance).  With ``bounds`` (two ``(H, W)`` tensors: each input pixel's value minus and plus the noise
    tolerated, in the input's units; equal for the exact promise), ``display`` (the display mapping) and ``sigma``
    (the input's noise) the luminance's block means are kept in the input's units instead (`block_levels_within`):
    the engine's way for a grey frame, and for a colour one with a tolerance.
    """
    if flux and scale > 1 and bounds is not None:
        lum = block_levels_within(lum, bounds[0], bounds[1], scale, display, sigma)
    elif flux and scale > 1:
        lum = project_block_means(lum, lum_in.clamp(0, 1), scale)
        if chroma_in is not None:
            chroma = block_mean_shift(chroma, chroma_in, scale)
    else:
        lum = lum.clamp(0.0, 1.0)
    chroma = fit_chroma_to_gamut(lum, chroma)
    # the luminance of the output *is* lum; rounding in the rebuild must not push values out of [0, 1]
    rgb = torch.stack(ycbcr_to_rgb_planes(lum, chroma[0], chroma[1]), dim=-1).float().clamp(0.0, 1.0)
    if mask.any():
        big = _expand(mask, scale)
        rgb = rgb.masked_fill(big[..., None], float("nan"))
        lum = lum.masked_fill(big, float("nan"))
    return rgb, lum

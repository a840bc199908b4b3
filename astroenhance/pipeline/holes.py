"""Small no-data holes (cosmic-ray hits, hot pixels, bad columns) filled from their neighbours, for display only.

A no-data pixel is *filled* when, along its row or its column, the run of no-data pixels it belongs to is at most
``max_run`` pixels long and has valid pixels at both ends: its value is the linear interpolation between those two
ends, and where both directions qualify the two interpolations are averaged with weights inversely proportional to
their spans (the narrower direction of a track counts more, as IRAF's ``fixpix`` interpolates across the narrower
dimension).  A plane ``a + b*x + c*y`` is filled exactly.  Larger regions — chip gaps, a drizzled frame's empty
corners, the frame's own edges — are left as no data: a fill needs valid pixels on both sides.

Filled values are an interpolation, not a measurement: `run` shows them in the display planes only (the networks
also see them, so a star's halo around a hit is not read as a dip), while the FLUX and FLUXERR planes keep no data
there.  Whether a pixel is filled depends on pixels at most ``max_run`` away along its row and column, so a frame
read in strips gives the same values as read whole when each strip is read with ``context(max_run)`` rows and
columns around it.
"""

from __future__ import annotations

import numpy as np
import torch


def context(max_run: int) -> int:
    """Rows and columns around a region that decide every fill inside it."""
    return max_run + 1 if max_run > 0 else 0


def _along_last(x: torch.Tensor, valid: torch.Tensor, max_run: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolations along the last axis and their weights (0 where a pixel is not filled along it)."""
    n = x.shape[-1]
    idx = torch.arange(n, device=x.device).expand_as(x)
    none = torch.full_like(idx, -1)
    prev = torch.cummax(torch.where(valid, idx, none), dim=-1).values  # last valid index at or before (-1: none)
    rev = torch.cummax(torch.where(valid, n - 1 - idx, none).flip(-1), dim=-1).values.flip(-1)
    nxt = n - 1 - rev  # first valid index at or after (n: none)
    span = nxt - prev
    ok = ~valid & (prev >= 0) & (nxt < n) & (span - 1 <= max_run)
    lo = torch.gather(x, -1, prev.clamp(0, n - 1))
    hi = torch.gather(x, -1, nxt.clamp(0, n - 1))
    t = (idx - prev).to(x.dtype) / span.clamp(min=1).to(x.dtype)
    value = torch.where(ok, lo + (hi - lo) * t, torch.zeros_like(x))
    weight = torch.where(ok, 1.0 / span.clamp(min=1).to(x.dtype), torch.zeros_like(x))
    return value, weight


def fill_holes(x: torch.Tensor, max_run: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(filled, holes)`` for a 2-D tensor ``x`` whose no-data pixels are NaN (or infinite): ``filled`` is ``x``
    with every hole pixel (module docstring) interpolated in float64 and cast back to ``x``'s dtype, no data (NaN)
    elsewhere; ``holes`` the boolean mask of the pixels filled.  ``x`` itself is not changed."""
    valid = torch.isfinite(x)
    if max_run <= 0 or bool(valid.all()):
        return torch.where(valid, x, torch.full_like(x, float("nan"))), torch.zeros_like(valid)
    v = torch.where(valid, x.double(), torch.zeros((), dtype=torch.float64, device=x.device))
    vx, wx = _along_last(v, valid, max_run)
    vy, wy = _along_last(v.T, valid.T, max_run)
    vy, wy = vy.T, wy.T
    den = wx + wy
    holes = den > 0
    value = (vx * wx + vy * wy) / torch.where(holes, den, torch.ones_like(den))
    nan = torch.full_like(v, float("nan"))
    filled = torch.where(valid, v, torch.where(holes, value, nan)).to(x.dtype)
    return filled, holes


def fill_in_strips(data: np.ndarray, max_run: int, strip: int = 256) -> tuple[np.ndarray, int]:
    """`fill_holes` of a whole 2-D array, read in strips of ``strip`` rows with the `context` rows that decide their
    fills (memory of a strip, not of the frame): ``(filled, number filled)``, the same values as filling it whole.
    ``data`` itself is returned, unchanged, where nothing is filled; otherwise a float32 copy."""
    out, count, h = data, 0, data.shape[0]
    margin = context(max_run)
    for y0 in range(0, h, strip):
        y1 = min(y0 + strip, h)
        if np.isfinite(data[y0:y1]).all():
            continue
        a, z = max(0, y0 - margin), min(h, y1 + margin)  # (from ``data`` as given, never the strips already filled)
        filled, holes = fill_holes(torch.from_numpy(np.ascontiguousarray(data[a:z], np.float32)), max_run)
        inner = holes[y0 - a:y1 - a]
        if bool(inner.any()):
            if out is data:
                out = np.array(data, np.float32)
            out[y0:y1] = filled[y0 - a:y1 - a].numpy()
            count += int(inner.sum())
    return out, count

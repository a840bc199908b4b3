"""Image-quality metrics, computed in float64 — one copy for training validation, `evaluate` and the benchmarks.

Images are in [0, 1]; MSE is given in 8-bit units (0-255 scale, as the seed paper's table), so it never
wraps around as uint8 arithmetic would.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter, label
from scipy.special import xlogy


def mse_8bit(a, b) -> float:
    """Mean squared error of images in [0, 1], in 8-bit units (0-255 scale).  numpy arrays or torch tensors
    (reduced on their own device, in float64)."""
    if hasattr(a, "double") and hasattr(a, "device"):  # torch tensors: no copy to the host
        return float(((a.double() - b.double()) ** 2).mean().item()) * 255.0**2
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)) * 255.0**2


def psnr_of_mse(mse: float) -> float:
    """PSNR in dB of an 8-bit-unit MSE: ``10 log10(255^2 / MSE)``."""
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def psnr(a, b) -> float:
    """PSNR in dB of images in [0, 1] (numpy or torch)."""
    return psnr_of_mse(mse_8bit(a, b))


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5, where: np.ndarray | None = None) -> float:
    """Mean SSIM of two 2-D images in [0, 1] (Wang et al. 2004, Gaussian window), over the pixels ``where`` (a mask
    like ``a``; all if not given)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = gaussian_filter(a, sigma), gaussian_filter(b, sigma)
    saa = gaussian_filter(a * a, sigma) - mu_a**2
    sbb = gaussian_filter(b * b, sigma) - mu_b**2
    sab = gaussian_filter(a * b, sigma) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return float(s.mean() if where is None else s[where].mean())


def area_downsample(img: np.ndarray, s: int) -> np.ndarray:
    """Means of the ``s x s`` blocks of ``img`` ``(H, W, ...)`` (cropped to a multiple of ``s``): flux-preserving."""
    h, w = img.shape[0] // s, img.shape[1] // s
    return img[: h * s, : w * s].reshape(h, s, w, s, *img.shape[2:]).mean(axis=(1, 3))


def flux_error(out_lum: np.ndarray, true_lum: np.ndarray, s: int) -> float:
    """Summed absolute difference of the ``s x s`` block means, relative to the truth's total."""
    blocks_out, blocks_true = area_downsample(out_lum, s), area_downsample(true_lum, s)
    return float(np.abs(blocks_out - blocks_true).sum() / max(blocks_true.sum(), 1e-12))


def clipped_sky(values: np.ndarray, sigma: float, nsigma: float = 3.0, iterations: int = 1000) -> float:
    """The sky level of a frame: the median of its finite ``values``, recomputed over the values within
    ``nsigma * sigma`` of it until it settles.  On a field that is mostly sky it is the median of the sky pixels
    (sources no longer pull it up); on a frame filled by a galaxy it walks down the halo to where most pixels are
    (about the isophote at the frame's edges), where the plain median would sit on the galaxy's light (and a
    display's black point there would hide nearly half of it).  The values are sorted once: each step is two binary searches."""
    v = np.sort(np.asarray(values, np.float64).ravel())
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0
    m = float(np.median(v))
    if not sigma > 0 or not np.isfinite(sigma):
        return m
    half = nsigma * sigma
    for _ in range(iterations):
        lo, hi = np.searchsorted(v, m - half, "right"), np.searchsorted(v, m + half, "left")
        if hi <= lo:
            break
        mid = (lo + hi - 1) / 2
        new = float(0.5 * (v[int(np.floor(mid))] + v[int(np.ceil(mid))]))
        if abs(new - m) < 1e-3 * sigma:
            return new
        m = new
    return m


def block_lattice(x: np.ndarray, where: np.ndarray | None = None, scale: int = 4) -> float:
    """How much the ``scale x scale`` block edges of an upscaled image ``x`` show: the median |step| between columns
    across block edges over the median inside blocks (1: no lattice).  With ``where`` (a mask like ``x``: the steps
    between two of its pixels) the means instead, which also see a few isolated blocks set apart (4x4 squares) that
    the medians do not.  Columns only (pass ``x.T`` for rows)."""
    d = np.abs(np.diff(np.asarray(x, np.float64), axis=1))
    n = d.shape[1] // scale * scale
    d = d[:, :n]
    if where is not None:
        d = np.where((where[:, 1:] & where[:, :-1])[:, :n], d, np.nan)
    columns = [d[:, k::scale] for k in range(scale)]
    if not all(np.isfinite(c).any() for c in columns):  # a phase with nothing asked for (a frame without sky)
        return float("nan")
    phases = [np.nanmedian(c) if where is None else np.nanmean(c) for c in columns]
    inside = float(np.mean(phases[:scale - 1]))
    return float(phases[scale - 1] / inside) if inside > 0 else float("nan")  # (0: flat inside, a filled region)


def difference_sigma(img: np.ndarray, lag: int = 2) -> float:
    """Robust noise sigma of a 2-D numpy image from differences of pixels ``lag`` apart along rows (NaN skipped):
    ``1.4826 * median|x[i, j+lag] - x[i, j]| / sqrt(2)`` — `pipeline.finish.estimate_noise` for code that must not
    load torch (lag 2: the per-pixel sigma also of drizzled frames)."""
    x = np.asarray(img, np.float64)
    d = np.abs(x[..., lag:] - x[..., :-lag]).ravel()
    d = d[np.isfinite(d)]
    return float(1.4826 * np.median(d) / np.sqrt(2)) if d.size else 0.0


def robust_sigma(x: np.ndarray) -> float:
    """Gaussian-equivalent sigma from the median absolute deviation."""
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def groups_above(img: np.ndarray, threshold: float, min_area: int = 1) -> tuple[np.ndarray, int]:
    """Labels (1..n) and count of the 8-connected groups of pixels above ``threshold`` with at least ``min_area``
    pixels (a source extractor's minimum area; smaller groups are left out)."""
    lab, n = label(img > threshold, structure=np.ones((3, 3)))
    if min_area > 1 and n:
        keep = np.bincount(lab.ravel(), minlength=n + 1) >= min_area
        keep[0] = False
        new = np.cumsum(keep) * keep  # the kept groups renumbered 1..m, the others 0
        lab, n = new[lab], int(keep.sum())
    return lab, int(n)


def detections(img: np.ndarray, nsigma: float = 5.0) -> tuple[np.ndarray, int]:
    """Labels and count of the 8-connected groups of pixels above ``median + nsigma * sigma`` (sigma from
    the median absolute deviation, as a source extractor would estimate the background noise)."""
    return groups_above(img, np.median(img) + nsigma * robust_sigma(img))


def count_sources(img: np.ndarray, nsigma: float = 5.0) -> int:
    """Number of detections in ``img`` (see `detections`)."""
    return detections(img, nsigma)[1]


def inception_score(probs: np.ndarray, splits: int = 10, min_part: int = 10) -> tuple[float, float]:
    """Salimans et al. (2016): ``exp(E_x KL(p(y|x) || p(y)))`` of class probabilities ``(n, classes)``,
    mean and standard deviation over ``splits`` equal parts, as the reference implementation the paper used
    computes it — but never parts of fewer than ``min_part`` images (fewer splits then): a part of one image
    scores exactly 1 whatever the network says."""
    probs = np.asarray(probs, np.float64)
    scores = []
    for part in np.array_split(probs, max(1, min(splits, len(probs) // min_part))):
        marginal = part.mean(0, keepdims=True)
        kl = (xlogy(part, part) - xlogy(part, marginal)).sum(1)
        scores.append(math.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))

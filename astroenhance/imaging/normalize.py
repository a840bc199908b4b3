"""Normalization: an astropy interval picks ``[vmin, vmax]``, an astropy stretch maps ``[0, 1]`` to display.

A `Normalizer` is fitted once per frame (on a sample of its finite pixels, so memory stays bounded),
recorded in every output's header, and has an exact `inverse` back to the input's units.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from astropy.visualization import (
    AsinhStretch,
    BaseStretch,
    LinearStretch,
    LogStretch,
    MinMaxInterval,
    PercentileInterval,
    SqrtStretch,
    ZScaleInterval,
)

from ..errors import InputError, SettingsError

STRETCHES = ("asinh", "linear", "sqrt", "log")
#: stretch parameters used everywhere (and written to headers): asinh ``a`` and log ``a``
STRETCH_PARAMETER = {"asinh": 0.1, "log": 1000.0, "linear": 0.0, "sqrt": 0.0}


def make_stretch(name: str, a: float | None = None) -> BaseStretch:
    """The astropy stretch called ``name`` (``asinh``, ``linear``, ``sqrt``, ``log``)."""
    a = STRETCH_PARAMETER.get(name, 0.0) if a is None else a
    if name == "asinh":
        return AsinhStretch(a=a)
    if name == "log":
        return LogStretch(a=a)
    if name == "sqrt":
        return SqrtStretch()
    if name == "linear":
        return LinearStretch()
    raise SettingsError(f"unknown stretch {name!r}; choose one of {', '.join(STRETCHES)}")


NOISE_FLOOR = 2.0  # ``noise:B``: the display's black point, in noise sigmas below the sky


def parse_interval(spec: str) -> str:
    """Validate an interval spec: ``noise:B`` (B > 0), ``zscale``, ``minmax``, ``percentile:P`` (0 < P <= 100) or
    ``range``.

    ``range`` means the full range of the input's data type (0..255 for 8-bit, 0..65535 for 16-bit,
    0..1 for float images): display images need no interval.  ``noise:B`` runs from `NOISE_FLOOR` sigmas below
    the sky to the frame's brightest pixel, and softens an asinh stretch at B sigma (Lupton et al. 2004,
    ``a = B sigma / (vmax - vmin)``): linear in the noise, logarithmic in bright cores, nothing clipped at the top.
    """
    if spec in ("zscale", "minmax", "range"):
        return spec
    for kind, top in (("percentile:", 100.0), ("noise:", math.inf)):
        if spec.startswith(kind):
            try:
                p = float(spec.split(":", 1)[1])
            except ValueError:
                p = math.nan
            if 0 < p <= top and math.isfinite(p):
                return spec
            if not math.isnan(p):  # a number out of range: say which range
                raise SettingsError(f"interval {spec!r}: " + ("P must be within 0 < P <= 100 (e.g. percentile:99.5)"
                                                             if top == 100.0 else
                                                             "B must be a finite number > 0, in sigmas (e.g. noise:3)"))
    raise SettingsError(f"unknown interval {spec!r}; use noise:B, zscale, minmax, range or percentile:P "
                        "(e.g. noise:3, percentile:99.5)")


def compute_limits(sample: np.ndarray, spec: str, dtype_range: tuple[float, float] | None = None) -> tuple[float, float]:
    """``(vmin, vmax)`` of the finite values in ``sample`` under interval ``spec``."""
    parse_interval(spec)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:  # (also for 'range': an all-NaN picture was "enhanced" into an all-NaN output)
        raise InputError("no finite pixels: the frame is all NaN/inf")
    if spec == "range":
        if dtype_range is None:
            raise SettingsError("interval 'range' needs the data type's range (display images only)")
        return dtype_range
    if spec.startswith("noise:"):
        raise SettingsError("interval 'noise:B' needs the frame's sky, noise and maximum (`Normalizer.fit`)")
    if spec == "zscale":
        vmin, vmax = ZScaleInterval().get_limits(finite)
    elif spec == "minmax":
        vmin, vmax = MinMaxInterval().get_limits(finite)
    else:
        vmin, vmax = PercentileInterval(float(spec.split(":", 1)[1])).get_limits(finite)
    vmin, vmax = float(vmin), float(vmax)
    if not vmax > vmin:  # a constant frame: map it to mid-grey rather than divide by zero
        vmin, vmax = vmin - 0.5, vmin + 0.5
    return vmin, vmax


def _is_tensor(x) -> bool:
    """A torch tensor (told without importing torch: this layer stays free of it)."""
    return type(x).__module__.startswith("torch")


def _stretch_tensor(name: str, a: float, u):
    """`make_stretch` ``(name, a)`` on a float64 torch tensor in [0, 1], on its own device: astropy's formulas, op
    for op (tensor methods only), in place on ``u`` (a temporary of the caller's)."""
    if name == "asinh":
        return u.div_(a).asinh_().div_(math.asinh(1.0 / a))
    if name == "log":
        return u.mul_(a).add_(1.0).log_().div_(math.log(a + 1.0))
    if name == "sqrt":
        return u.sqrt_()
    return u


def _inverse_tensor(name: str, a: float, d):
    """The inverse of `_stretch_tensor` (astropy's ``stretch.inverse``, op for op), in place on ``d`` (a temporary of
    the caller's: every step of these chains on a whole piece would otherwise allocate one more)."""
    if name == "asinh":
        ai = 1.0 / math.asinh(1.0 / a)  # astropy's SinhStretch(a=1 / arcsinh(1 / a))
        return d.div_(ai).sinh_().div_(math.sinh(1.0 / ai))
    if name == "log":
        return d.mul_(math.log(a + 1.0)).exp_().sub_(1.0).div_(a)
    if name == "sqrt":
        return d.pow_(2)
    return d


def _robust_sigma(sample: np.ndarray) -> float:
    """White-noise sigma from neighbouring-pixel differences along rows (MAD; 0 if there are none)."""
    x = np.asarray(sample, np.float64)
    d = np.diff(x, axis=-1).ravel() if x.ndim > 1 else np.diff(x)
    d = d[np.isfinite(d)]
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2)) if d.size else 0.0


@dataclass(frozen=True)
class Normalizer:
    """``display = stretch(clip((x - vmin) / (vmax - vmin), 0, 1))``, and its inverse.

    Values outside ``[vmin, vmax]`` are clipped, so the inverse is exact only inside the interval.
    """

    stretch: str
    interval: str
    vmin: float
    vmax: float
    a: float
    noise: float = 0.0  # white-noise sigma of the display luminance (set by the pipeline; 0 = unknown)
    sky: float = 0.0  # sky level of the input's values (`metrics.clipped_sky`; set by the pipeline)
    sky_noise: float = 0.0  # white-noise sigma of the input's values (set by the pipeline; 0 = unknown)

    @classmethod
    def fit(cls, sample: np.ndarray, stretch: str = "asinh", interval: str = "percentile:99.5",
            dtype_range: tuple[float, float] | None = None, *, sky: float | None = None,
            sigma: float | None = None, maximum: float | None = None) -> Normalizer:
        """Fitted on ``sample``.  ``noise:B`` also takes the frame's ``sky``, noise ``sigma`` and ``maximum``
        (defaults: the sample's median, robust pixel-to-pixel sigma and maximum)."""
        make_stretch(stretch)
        sample = np.asarray(sample, dtype=np.float64)
        if not interval.startswith("noise:"):
            vmin, vmax = compute_limits(sample, interval, dtype_range)
            return cls(stretch, interval, vmin, vmax, STRETCH_PARAMETER[stretch])
        parse_interval(interval)
        finite = sample[np.isfinite(sample)]
        if finite.size == 0:
            raise InputError("no finite pixels: the frame is all NaN/inf")
        sky = float(np.median(finite)) if sky is None else float(sky)
        if not sigma or not np.isfinite(sigma):
            sigma = _robust_sigma(sample)
        top = float(finite.max()) if maximum is None else float(maximum)
        vmin = sky - NOISE_FLOOR * sigma if sigma > 0 else float(finite.min())
        if not top > vmin:  # a constant frame: mid-grey, as the other intervals
            return cls(stretch, interval, vmin - 0.5, vmin + 0.5, STRETCH_PARAMETER[stretch])
        soft = float(interval.split(":", 1)[1]) * sigma / (top - vmin)
        a = soft if stretch == "asinh" and soft > 0 else STRETCH_PARAMETER[stretch]
        return cls(stretch, interval, vmin, top, a)

    def __call__(self, x):
        """Normalize to display values in [0, 1] (float32); NaN stays NaN.  A torch tensor stays on its device."""
        if _is_tensor(x):
            u = (x.double() - self.vmin).div_(self.vmax - self.vmin).clamp_(0.0, 1.0)  # a new tensor from the first step
            return _stretch_tensor(self.stretch, self.a, u).float()
        x = np.asarray(x, dtype=np.float64)
        u = np.clip((x - self.vmin) / (self.vmax - self.vmin), 0.0, 1.0)
        with np.errstate(invalid="ignore"):
            out = make_stretch(self.stretch, self.a)(u, clip=False)
        return np.asarray(out, dtype=np.float32)

    def inverse(self, display):
        """Map display values in [0, 1] back to the input's units (float64; a torch tensor stays on its device)."""
        if _is_tensor(display):
            u = _inverse_tensor(self.stretch, self.a, display.double().clamp(0.0, 1.0))  # clamp: a new tensor
            return u.mul_(self.vmax - self.vmin).add_(self.vmin)
        d = np.clip(np.asarray(display, dtype=np.float64), 0.0, 1.0)
        u = make_stretch(self.stretch, self.a).inverse(d, clip=False)
        return self.vmin + (self.vmax - self.vmin) * np.asarray(u, dtype=np.float64)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

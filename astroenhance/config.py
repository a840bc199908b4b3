"""Every setting of `astroenhance run`, in one frozen dataclass; defaults live here only."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

FORMATS = ("fits", "png", "tiff", "jpeg")
FORMAT_SUFFIX = {"fits": ".fits", "png": ".png", "tiff": ".tif", "jpeg": ".jpg"}


@dataclass(frozen=True)
class EnhanceConfig:
    """Settings for enhancing frames.  ``None`` means "the default for this kind of input":

    * ``stretch``: ``asinh`` for FITS, ``linear`` for display images (PNG/TIFF/JPEG are already stretched)
    * ``interval``: ``percentile:99.5`` for FITS, ``range`` (the data type's full range) for display images
    * ``flux_conserving``: on for FITS, off for display images
    * ``formats``: ``("fits", "png")`` for FITS, ``("png",)`` for display images
    """

    scale: int = 4
    colorize: bool = True
    upscale: bool = True
    formats: tuple[str, ...] | None = None
    stretch: str | None = None
    interval: str | None = None
    tile: int = 224
    overlap: int = 16
    flux_conserving: bool | None = None
    flux_tolerance: float | None = None  # block means within this many input-noise sigmas of the input (0: exact);
    # None: exact for display-space SR networks, 2 for noise-space ones (they remove noise; exactness would restore it)
    device: str = "auto"
    precision: str = "fp32"
    sr_model: str = "psnr"
    weights: str | None = None
    batch: int = 0  # tiles per network call; 0 = 1 on CPU, 8 on CUDA
    color_margin: int = 64  # extra context (input pixels) around each tile for the colorizer
    hdu: str | None = None
    noise_gate: bool | None = None  # network detail only above the input's noise; None: on for display-space SR
    # networks, off for the noise-space (telescope-trained) ones, which learned the noise themselves

    def for_input(self, is_fits: bool) -> EnhanceConfig:
        """This config with every ``None`` resolved for a FITS (``True``) or display-image input."""
        return replace(
            self,
            stretch=self.stretch or ("asinh" if is_fits else "linear"),
            interval=self.interval or ("percentile:99.5" if is_fits else "range"),
            flux_conserving=(is_fits if self.flux_conserving is None else self.flux_conserving),
            formats=self.formats or (("fits", "png") if is_fits else ("png",)),
        )

    def check(self) -> None:
        """Refuse settings no frame could be enhanced with (`SettingsError`: one line saying which and why).
        Cheap: nothing heavy is imported, so a usage error answers at once."""
        from .errors import SettingsError
        from .imaging.normalize import make_stretch, parse_interval

        if self.upscale and self.scale not in (1, 2, 4):
            raise SettingsError(f"scale {self.scale}: the super-resolution networks upscale by 4")
        bad = [f for f in self.formats or () if f not in FORMATS]
        if bad:
            raise SettingsError(f"unknown format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
        if self.stretch:
            make_stretch(self.stretch)
        if self.interval:
            parse_interval(self.interval)
        if self.tile < 16 or not 0 <= self.overlap < self.tile:
            raise SettingsError(f"need tile >= 16 and 0 <= overlap < tile (got tile={self.tile}, overlap={self.overlap})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

"""Every setting of `astroenhance run`, in one frozen dataclass; defaults live here only."""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import asdict, dataclass, replace
from typing import Any


def utc_now() -> str:
    """Now in UTC (``YYYY-MM-DDThh:mm:ssZ``), or ``$SOURCE_DATE_EPOCH`` when set (reproducible, byte-identical
    reruns): the time every output, report and record of astroenhance carries."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = (_dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc) if epoch and epoch.isdigit()
           else _dt.datetime.now(_dt.timezone.utc))
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


FORMATS = ("fits", "png", "tiff", "jpeg")
FITS_ENCODINGS = ("float32", "int16", "rice")  # see `io.writers.FITSRGBWriter`
SR_MODES = ("psnr", "psnr-large", "gan", "hst", "hst-gan")  # the manifest modes `run --sr-model` chooses from
FORMAT_SUFFIX = {"fits": ".fits", "png": ".png", "tiff": ".tif", "jpeg": ".jpg"}
# DQ flags that make a pixel no-data by default (`io.noise`), per instrument.  ACS, WFC3, STIS: Reed-Solomon errors,
# fill, bad pixels, hot pixels, bad columns, cosmic rays (AstroDrizzle, calwf3/acsrej); saturation (256, 2048) stays
DQ_NO_DATA = 1 | 2 | 4 | 16 | 128 | 4096 | 8192
# WFPC2 (its own flags, WFPC2 Data Handbook table 3.4): Reed-Solomon errors, calibration-file defects (charge traps),
# camera defects, missing data, bad pixels (32), permanent charge traps, unrepaired warm pixels (512), a chip masked
# out (2048), cosmic rays (AstroDrizzle); A/D saturation (8), pixels above a trap (256) and repaired warm pixels stay
WFPC2_DQ_NO_DATA = 1 | 2 | 4 | 16 | 32 | 128 | 512 | 2048 | 4096 | 8192
# JWST (jwst.datamodels.dqflags): DO_NOT_USE, which its pipeline sets on every pixel it judges unusable (dead, hot,
# no signal, outliers). Not its 2 (SATURATED: lower limits, as on HST) nor 4 (JUMP_DET: a cosmic ray found in the
# ramp and fitted around, the pixel's rate still good) nor 4096 (WARM), which the HST default would mask
JWST_DQ_NO_DATA = 1


def parse_dq_mask(text: str | int) -> int | None:
    """``--dq-mask``: ``default``, ``all``, ``none``, an integer (a sum of flags) or flags joined by commas or
    ``+`` (``4,16,4096``).  Returns the bit mask (-1: every flag), or None for ``default``: each frame's instrument's
    (`io.noise.dq_flags`: `DQ_NO_DATA`, or `WFPC2_DQ_NO_DATA` for WFPC2, `JWST_DQ_NO_DATA` for JWST)."""
    from .errors import SettingsError

    if isinstance(text, int):
        return text
    t = str(text).strip().lower()
    if t in ("default", ""):
        return None
    if t == "all":
        return -1
    if t == "none":
        return 0
    try:
        flags = [int(p, 0) for p in t.replace("+", ",").split(",") if p.strip()]
    except ValueError:
        raise SettingsError(f"--dq-mask {text!r}: give default, all, none, an integer or flags like 4,16,4096") from None
    if any(f < 0 for f in flags):
        raise SettingsError(f"--dq-mask {text!r}: flags are non-negative integers")
    mask = 0
    for f in flags:
        mask |= f
    return mask


@dataclass(frozen=True)
class EnhanceConfig:
    """Settings for enhancing frames.  ``None`` means "the default for this kind of input":

    * ``stretch``: ``asinh`` for FITS, ``linear`` for display images (PNG/TIFF/JPEG are already stretched)
    * ``interval``: ``noise:3`` for FITS (2 sigma below the sky to the brightest pixel, asinh softened at 3 sigma:
      nothing clipped at the top), ``range`` (the data type's full range) for display images
    * ``flux_conserving``: on for FITS, off for display images
    * ``formats``: ``("fits", "png")`` for FITS, ``("png",)`` for display images
    * ``sr_model``: ``hst`` for FITS (trained on Hubble frames binned 4x with their noise: it removes noise instead
      of sharpening it), ``psnr`` for display images (trained on processed colour pictures)
    * ``colorize``: grey frames are colorized; a colour frame keeps its own colours (resolved per frame,
      `for_frame`: only the frame says whether it is grey)
    """

    scale: int = 4
    colorize: bool | None = None
    upscale: bool = True
    formats: tuple[str, ...] | None = None
    stretch: str | None = None
    interval: str | None = None
    tile: int = 224
    overlap: int = 16
    flux_conserving: bool | None = None
    flux_tolerance: float | None = None  # FLUX plane: block means within this many input-noise sigmas of the input
    # (0: exact); None: exact for display-space SR networks, 2 for noise-space ones (they remove noise; exactness
    # would restore it)
    display_tolerance: float | None = None  # the display planes' luminance, likewise; None: ``flux_tolerance`` where
    # given, else exact for display-space networks and 3 for noise-space ones (chosen on validation frames)
    device: str = "auto"
    precision: str = "fp32"
    sr_model: str | None = None
    weights: str | None = None
    batch: int = 0  # tiles per network call; 0 = 1 on CPU, on a GPU from its free memory (`Accelerator.fit_batch`)
    color_strength: float | None = None  # share of the colorizer's chroma shown; None: its weights' calibrated value
    color_margin: int = 64  # extra context (input pixels) around each tile for the colorizer
    hdu: str | None = None
    flux_plane: bool = True  # FITS output of a grey frame gets a FLUX extension: the enhanced luminance in its units
    flux_err: bool = True  # and, after it, FLUXERR: the input's noise shared over each block (`finish.flux_error`)
    fits_encoding: str = "int16"  # RGB FITS display planes: float32, int16 (scaled, 2x smaller) or rice (compressed)
    dq_mask: str = "default"  # DQ flags that make a pixel no-data (`parse_dq_mask`); default: the instrument's
    dq: str | None = None  # a data-quality file (path) for the frame: WFPC2's _c1m/_c1f beside its _c0m/_c0f
    noise: str | None = None  # an rms map (path) for the frame; None: ERR/WHT of the file, else estimated
    weight: str | None = None  # or an inverse-variance weight map (path; a drizzled frame's _wht file): as a WHT
    noise_map: bool = True  # where that per-pixel noise shows the sky's depth varying across the frame, follow it
    # (`io.noise.sky_noise_map`); False: one sigma for the frame
    clean_cosmic_rays: bool | None = None  # read pixels sharper than a star can be as no-data
    # (`io.noise.mask_cosmic_rays`); None: in single exposures whose DQ flags no cosmic rays
    psf_fwhm: float | str | None = None  # the input PSF's FWHM (input pixels): a noise-space SR network's output is
    # smoothed where faint for the display planes by `imaging.psf.SMOOTH` of the PSF's sigma (no detail finer than the
    # optics deliver; FLUX keeps the network's own); None: a lower bound from an HST header (`io.noise.frame_psf_fwhm`),
    # else measured on the frame's compact sources (`io.noise.frame_star_fwhm`; none where it has fewer than 3);
    # "stars": measured so whatever the header says; 0: no smoothing
    noise_gate: bool | None = None  # network detail only above the input's noise; None: on for display-space SR
    # networks, off for the noise-space (telescope-trained) ones, which learned the noise themselves
    fill_holes: int = 8  # a grey frame's no-data runs up to this many input pixels long (along a row or a column,
    # valid pixels at both ends: cosmic-ray hits, hot pixels, bad columns) are interpolated for the networks and the
    # display planes; FLUX and FLUXERR keep no data there (`pipeline.holes`); 0: none
    cutout: str | None = None  # enhance only the part of each frame about this centre (`io.cutout`): sky or pixel;
    # several: centres separated by ';', each its own output
    cutout_size: str | None = None  # ...this large (input pixels or an angle); None: 256 pixels if cutout is given

    def for_input(self, is_fits: bool) -> EnhanceConfig:
        """This config with every ``None`` resolved for a FITS (``True``) or display-image input."""
        return replace(
            self,
            stretch=self.stretch or ("asinh" if is_fits else "linear"),
            interval=self.interval or ("noise:3" if is_fits else "range"),
            flux_conserving=(is_fits if self.flux_conserving is None else self.flux_conserving),
            formats=self.formats or (("fits", "png") if is_fits else ("png",)),
            sr_model=self.sr_model or ("hst" if is_fits else "psnr"),
        )

    def for_frame(self, channels: int) -> EnhanceConfig:
        """This config with ``colorize`` resolved for a frame of ``channels`` (1: grey, 3: colour)."""
        return self if self.colorize is not None else replace(self, colorize=channels == 1)

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
        parse_dq_mask(self.dq_mask)
        if self.color_strength is not None and not 0 <= self.color_strength <= 2:
            raise SettingsError(f"colour strength {self.color_strength}: must be within 0-2 (1: the network's own)")
        if self.fits_encoding not in FITS_ENCODINGS:
            raise SettingsError(f"FITS encoding {self.fits_encoding!r}: choose from {', '.join(FITS_ENCODINGS)}")
        if self.noise and self.weight:
            raise SettingsError("--noise and --weight both give the frame's noise: give one")
        if self.psf_fwhm not in (None, "stars") and not (isinstance(self.psf_fwhm, (int, float))
                                                         and 0 <= self.psf_fwhm <= 64):
            raise SettingsError(f"--psf-fwhm {self.psf_fwhm!r}: give the PSF's FWHM in input pixels (0-64; 0: no "
                                "smoothing) or 'stars' (measured on each frame's compact sources)")
        if self.fill_holes < 0:
            raise SettingsError(f"--fill-holes {self.fill_holes}: give the longest run of no-data pixels to fill (0: none)")
        if self.cutout is not None or self.cutout_size is not None:
            from .io.cutout import parse_cutouts

            parse_cutouts(self.cutout, self.cutout_size)
        from .io.readers import max_image_pixels

        max_image_pixels()  # (a limit set wrongly in the environment: said at once, not once per picture)
        if self.tile < 16 or not 0 <= 2 * self.overlap <= self.tile:
            fix = f"; with --tile {self.tile}, give --overlap {self.tile // 2} or less" if self.tile >= 16 else ""
            raise SettingsError(f"need --tile >= 16 and 0 <= --overlap <= tile / 2 (got tile={self.tile}, overlap="
                                f"{self.overlap}): tiles sharing more repeat the work up to (tile / (tile - overlap))² "
                                f"times{fix}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self, *weights_sha256: str) -> str:
        """sha256 of every setting that decides what an output shows, with the networks' weights hashes: `run
        --skip-existing` redoes a frame whose outputs were made otherwise (another --sr-model, stretch, colour
        strength, tolerance...).  Not the settings of how or where it is computed (`EXECUTION_SETTINGS`)."""
        import hashlib
        import json

        shown = {k: v for k, v in sorted(self.to_dict().items()) if k not in EXECUTION_SETTINGS}
        return hashlib.sha256(json.dumps([shown, list(weights_sha256)], default=str).encode()).hexdigest()


#: settings of how or where a frame is computed, not of what its outputs show: outputs made with other values are
#: still complete for `run --skip-existing` (the device and precision change values at float rounding, the tiling
#: about as little; each format's file and a map's or DQ file's content are checked on their own)
EXECUTION_SETTINGS = ("device", "precision", "batch", "tile", "overlap", "weights", "formats", "noise", "weight", "dq",
                      "hdu")

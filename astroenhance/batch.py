"""Archive-scale runs: find frames in folders, mirror the tree, skip finished work, shard, report.

Nothing here imports torch; `runner` combines these with `pipeline.Enhancer`.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import SettingsError
from .io.readers import FITS_SUFFIXES, IMAGE_SUFFIXES
from .io.writers import TEMP_MARKER

REPORT_NAME = "astroenhance-report.json"


@dataclass(frozen=True)
class Job:
    """One input file and the folder its outputs go to (mirroring its place under the input folder)."""

    path: Path
    outdir: Path


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
    ``glob`` on the file name, with outputs under ``outdir`` at the same relative path.  Symbolic links that loop
    or point nowhere are left out and, with ``skipped``, listed there with the reason.

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
                if _is_frame(f) and (glob is None or fnmatch.fnmatch(f.name, glob)):
                    jobs.append(Job(f, outdir / f.parent.relative_to(p)))
        else:
            jobs.append(Job(p, outdir))
    return jobs


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
            hints.append(f"{len(found)} frame(s) under {p} do not match --glob {glob!r}")
        if not found and entries and not any(e.is_dir() for e in entries):
            hints.append(f"{p} holds no FITS, PNG, TIFF or JPEG files")
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


def cleanup_stale_temporaries(folder: Path) -> list[Path]:
    """Remove temporary files left in ``folder`` by astroenhance processes that no longer run (e.g. killed)."""
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if TEMP_MARKER not in p.name:
            continue
        pid = p.name.split(TEMP_MARKER, 1)[1].split("-", 1)[0]
        if pid.isdigit() and _alive(int(pid)):
            continue
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Record:
    """One line of the run report."""

    input: str
    status: str  # "done", "skipped" or "failed"
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


def write_report(outdir: Path, records: list[Record], settings: dict) -> Path:
    """``OUTDIR/astroenhance-report.json``, written atomically."""
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / REPORT_NAME
    tmp = path.with_name(f".{path.name}{TEMP_MARKER}{os.getpid()}-report")
    counts = {s: sum(r.status == s for r in records) for s in ("done", "skipped", "failed")}
    tmp.write_text(json.dumps({"summary": counts, "settings": settings, "records": [asdict(r) for r in records]},
                              indent=2, default=str))
    os.replace(tmp, path)
    return path


def check_outdir(outdir: Path) -> None:
    """Refuse an output folder that is (or lies inside) a file."""
    for parent in [outdir, *outdir.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise SettingsError(f"{outdir}: cannot be an output folder: {parent} is a file")
            return


def check_claims(enhancer, path: Path, outdir: Path, claimed: dict[Path, Path],
                 inputs: set[Path] | None = None) -> None:
    """Refuse an input whose outputs another input of this run already claims (e.g. a.fits and a.png), or whose
    output would replace one of the run's ``inputs`` (resolved paths: ``a.png`` beside an input named
    ``a.enhanced.png``).  ``claimed`` maps each output path to its input and grows with every accepted input."""
    from .errors import OutputError

    for target in enhancer.output_paths(path, outdir, "").values():
        if inputs and target.resolve() in inputs:
            raise OutputError(f"{path}: its output {target} is one of this run's inputs and would overwrite it; "
                              "choose another output folder")
        other = claimed.get(target)
        if other is not None and other != path:
            raise OutputError(f"{path}: its output {target} was already written from {other} in this run; "
                              "give the inputs different names or run them into different folders")
        claimed[target] = path

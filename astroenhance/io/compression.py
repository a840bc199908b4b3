"""FITS files compressed whole (``.fits.gz``, ``.fits.bz2``, ``.fits.xz``), told by their first bytes.

Astropy reads such a file's data into memory whole, and reads a gzip stream whose checksum fails without a word
(a damaged download was enhanced).  `decompressed_copy` streams one into a temporary file instead, checking the
stream to its end, so that its data are read by rows like any uncompressed frame.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import tempfile
import zlib
from pathlib import Path

from ..errors import InputError, short_reason
from .writers import TEMP_MARKER, cleanup_stale_temporaries, owner_tag

#: the first bytes of a whole-file compressed FITS (gzip, bzip2, zip), whatever the file's name says
GZIP_MAGIC, BZIP2_MAGIC, XZ_MAGIC = b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"
COMPRESSED_MAGIC = (GZIP_MAGIC, BZIP2_MAGIC, b"PK\x03\x04", XZ_MAGIC, b"\x1f\x9d")  # gzip, bzip2, zip, xz, LZW (.Z)
#: the compressions Python decompresses as a stream, each with its name
STREAMS = ((GZIP_MAGIC, gzip.open, "gzip"), (BZIP2_MAGIC, bz2.open, "bzip2"), (XZ_MAGIC, lzma.open, "xz"))
PIECE = 1 << 20  # bytes decompressed at a time


def first_bytes(path: Path, n: int = len(XZ_MAGIC)) -> bytes | None:
    """The file's first ``n`` bytes (enough to tell every `COMPRESSED_MAGIC`), None where it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return None


def compressed_whole(path: Path) -> bool:
    """Whether ``path`` is compressed as a whole (astropy sees it by its first bytes: so must we — a gzipped frame
    named ``.fits`` was read as raw bytes, "the file may be truncated")."""
    magic = first_bytes(path)
    if magic is None:
        return str(path).lower().endswith((".gz", ".bz2", ".zip", ".xz", ".z"))
    return magic.startswith(COMPRESSED_MAGIC)


def _stream(path: Path):
    """(opener, name) of the stream compression ``path`` is in, or None."""
    magic = first_bytes(path) or b""
    return next(((opener, name) for start, opener, name in STREAMS if magic.startswith(start)), None)


def opened(path: Path):
    """``path`` opened for reading, decompressed as it is read where it is gzip, bzip2 or xz compressed."""
    stream = _stream(path)
    return stream[0](path, "rb") if stream else open(path, "rb")


def decompressed_copy(path: Path, files: contextlib.ExitStack, notes: list[str]) -> Path | None:
    """For a file compressed whole with gzip, bzip2 or xz: a decompressed copy of it in the temporary folder
    (``$TMPDIR``), deleted when ``files`` closes, so that its data are read by rows; None for any other file.  The
    copy's name holds its owner (`writers.temporary_path`): one left by a killed process goes with the next copy.

    The stream is read to its end, so a damaged or cut-short file is an `InputError` naming it (astropy read a gzip
    whose checksum fails, and enhanced it).  Where the copy cannot be written (no room in the temporary folder) the
    stream is still checked, None is returned (the file is then read in memory, as astropy reads it) and a note in
    ``notes`` says so."""
    stream = _stream(path)
    if stream is None:
        return None
    opener, kind = stream
    out, copy = None, None
    with contextlib.suppress(OSError):  # copies of runs that were killed (SIGKILL, out of memory)
        cleanup_stale_temporaries(Path(tempfile.gettempdir()))
    try:
        fd, name = tempfile.mkstemp(prefix=f"astroenhance-copy{TEMP_MARKER}{owner_tag()}-", suffix=".fits")
        copy = Path(name)
        files.callback(_unlink, copy)
        out = os.fdopen(fd, "wb")
    except OSError as exc:
        notes.append(_in_memory(exc))
    produced = 0
    try:
        with opener(path, "rb") as src:
            while True:
                try:
                    piece = src.read1(PIECE)  # (one member at a time: what came before bytes that are not gzip is kept)
                except gzip.BadGzipFile as exc:
                    if not (produced and str(exc).startswith("Not a gzipped file")):
                        raise InputError(f"{path}: damaged: its {kind} stream cannot be decompressed "
                                         f"({short_reason(exc)})") from None
                    # bytes after a whole stream, its CRC checked (a header is read only at the start of a member):
                    # ignored, as gzip itself ignores them
                    notes.append(f"bytes after its {kind} stream (not gzip data) ignored, as gzip ignores them")
                    break
                except EOFError:
                    raise InputError(f"{path}: cut short: its {kind} stream ends early (an incomplete "
                                     "download or copy?)") from None
                except (OSError, zlib.error, lzma.LZMAError, ValueError) as exc:
                    raise InputError(f"{path}: damaged: its {kind} stream cannot be decompressed "
                                     f"({short_reason(exc)})") from None
                if not piece:
                    break
                produced += len(piece)
                if out is not None:
                    try:
                        out.write(piece)
                    except OSError as exc:  # (the stream is still read to its end: checked)
                        _discard(out, copy)
                        out = None
                        notes.append(_in_memory(exc))
    finally:
        if out is not None:
            out.close()
    return copy if out is not None else None


def _in_memory(exc: OSError) -> str:
    return (f"decompressed in memory: no decompressed copy could be written to the temporary folder "
            f"{tempfile.gettempdir()} ({exc.strerror or exc}; TMPDIR chooses it)")


def _discard(out, copy: Path) -> None:
    with contextlib.suppress(OSError):
        out.close()
    _unlink(copy)


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()

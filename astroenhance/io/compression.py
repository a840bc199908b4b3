"""FITS files read through a temporary copy: compressed whole, or with bytes after their last HDU.

A file compressed whole (``.fits.gz``, ``.fits.bz2``, ``.fits.xz``, told by its first bytes): astropy reads its
data into memory whole, and reads a gzip stream whose checksum fails without a word (a damaged download was
enhanced).  `decompressed_copy` streams one into a temporary file instead, checking the stream to its end, so that
its data are read by rows like any uncompressed frame.

A file whose HDUs are whole but followed by bytes that begin no HDU (some STScI empirical PSF grids end in such a
2,880-byte block): astropy refuses it whole ("Header missing END card").  `whole_hdus` finds where its HDUs end from
their headers alone, `whole_hdus_copy` reads those bytes only, and `open_whole` opens a file through it where astropy
refuses the file itself.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import math
import os
import sys
import tempfile
import warnings
import zlib
from pathlib import Path

from ..errors import InputError, short_reason
from .writers import TEMP_MARKER, cleanup_stale_temporaries, owner_tag

#: the first bytes of a whole-file compressed FITS (gzip, bzip2, zip), whatever the file's name says
GZIP_MAGIC, BZIP2_MAGIC, XZ_MAGIC = b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"
COMPRESSED_MAGIC = (GZIP_MAGIC, BZIP2_MAGIC, b"PK\x03\x04", XZ_MAGIC, b"\x1f\x9d")  # gzip, bzip2, zip, xz, LZW (.Z)
#: the compressions Python decompresses as a stream, each with its name
STREAMS = ((GZIP_MAGIC, gzip.open, "gzip"), (BZIP2_MAGIC, bz2.open, "bzip2"), (XZ_MAGIC, lzma.open, "xz"))
PIECE = 1 << 20  # bytes decompressed (or copied) at a time
BLOCK = 2880  # a FITS file's unit: headers and data are padded to whole blocks


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
    try:
        out, copy = _temporary(files)
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


def _temporary(files: contextlib.ExitStack):
    """``(file open for writing, its path)``: a new file in the temporary folder (``$TMPDIR``), deleted when ``files``
    closes; its name holds its owner (`writers.temporary_path`), so that one left by a killed process (SIGKILL, out
    of memory) goes with the next copy.  OSError where it cannot be made."""
    with contextlib.suppress(OSError):
        cleanup_stale_temporaries(Path(tempfile.gettempdir()))
    fd, name = tempfile.mkstemp(prefix=f"astroenhance-copy{TEMP_MARKER}{owner_tag()}-", suffix=".fits")
    copy = Path(name)
    files.callback(_unlink, copy)
    return os.fdopen(fd, "wb"), copy


def data_bytes(header) -> int:
    """The bytes of data a FITS header describes (an astropy ``Header``, or any mapping of its keywords to values or
    to their text): |BITPIX| / 8 x GCOUNT x (PCOUNT + the product of the NAXISn; random groups leave out NAXIS1,
    which is 0), before padding; 0 where NAXIS is 0.  ValueError or KeyError where a size is not an integer or
    missing."""
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    axes = [int(header[f"NAXIS{k}"]) for k in range(1, naxis + 1)]
    if axes[0] == 0 and header.get("GROUPS") in (True, "T"):
        axes = axes[1:]
    return abs(int(header.get("BITPIX", 8))) // 8 * int(header.get("GCOUNT", 1)) * (
        int(header.get("PCOUNT", 0)) + math.prod(axes))


def whole_hdus(path: Path) -> tuple[int, int] | None:
    """Where the whole HDUs of the uncompressed FITS file ``path`` end and how many bytes follow them that begin no
    HDU (no ``XTENSION`` card): ``(end, after)``, from the headers alone (each one's END card; its data's size from
    BITPIX, NAXISn, PCOUNT and GCOUNT, padded to whole blocks).  None where nothing follows the HDUs, or where they
    are not whole themselves: a header without END, data cut short, a first card not ``SIMPLE``."""
    size = path.stat().st_size
    pos = 0
    with open(path, "rb") as fh:
        while pos < size:
            fh.seek(pos)
            block = fh.read(BLOCK)
            if not block.startswith(b"SIMPLE  =" if pos == 0 else b"XTENSION="):
                return (pos, size - pos) if pos else None
            cards, end = {}, None
            while end is None:
                if len(block) < BLOCK:
                    return None  # a header cut short, or without END
                for i in range(0, BLOCK, 80):
                    key = block[i:i + 8].rstrip()
                    if key == b"END":
                        end = fh.tell()
                        break
                    if block[i + 8:i + 10] == b"= ":
                        cards[key.decode("ascii", "replace")] = block[i + 10:i + 80].split(b"/")[0].strip().decode(
                            "ascii", "replace")
                else:
                    block = fh.read(BLOCK)
            try:
                data = data_bytes(cards)
            except (ValueError, KeyError):
                return None
            if data < 0:  # (a negative axis: not a header, and the walk would go back)
                return None
            pos = end + -(-data // BLOCK) * BLOCK
            if end + data > size:
                return None  # its data cut short
    return None


def whole_hdus_copy(path: Path, own: bool, files: contextlib.ExitStack, notes: list[str]) -> Path | None:
    """For a FITS file that astropy cannot open because bytes that begin no HDU follow its whole HDUs (`whole_hdus`):
    a file of those HDUs only — ``path`` itself cut there where it is a temporary copy of our ``own`` (a decompressed
    one), else a temporary copy of them, deleted when ``files`` closes — and a note in ``notes``; None for any other
    file, or where no copy can be written."""
    try:
        whole = whole_hdus(path)
        if whole is None:
            return None
        end, after = whole
        if own:
            os.truncate(path, end)
            copy = path
        else:
            out, copy = _temporary(files)
            with out, open(path, "rb") as src:
                left = end
                while left > 0:
                    piece = src.read(min(PIECE, left))
                    if not piece:
                        return None
                    out.write(piece)
                    left -= len(piece)
    except OSError:
        return None
    notes.append(f"{after} byte{'s' * (after != 1)} after its last whole HDU (byte {end}) begin no HDU (not FITS): "
                 "ignored; its HDUs read as they are")
    return copy


def open_whole(open_file, path: Path, own: bool, files: contextlib.ExitStack, notes: list[str]):
    """``open_file(path)`` (astropy's ``fits.open`` with the caller's options); where it raises and ``path``'s whole
    HDUs are followed by bytes that begin none, ``open_file`` of those HDUs (`whole_hdus_copy`; ``own``: ``path``
    is a temporary copy of ours), else its error."""
    first = None
    with warnings.catch_warnings(record=True) as said:  # (held until the file is known to open)
        warnings.simplefilter("always")
        try:
            opened = open_file(path)
        except Exception as exc:  # astropy raises OSError, ValueError, TypeError... for corrupt files
            first = exc
    if first is None:
        for w in said:  # a file that opens: its warnings, as the caller would have had them (filters by module too)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, module=_module_of(w.filename))
        return opened
    # (what astropy said before it refused the file — "non-ASCII characters" of the bytes after — is dropped)
    whole = whole_hdus_copy(path, own, files, notes)
    if whole is None:
        raise first
    try:
        return open_file(whole)
    except Exception:  # noqa: BLE001 (the file's own reason is the one to give)
        raise first from None


def _module_of(filename: str) -> str | None:
    """The name of the loaded module whose file is ``filename`` (what `warnings.warn` would have named), else None."""
    return next((name for name, module in list(sys.modules.items())
                 if getattr(module, "__file__", None) == filename), None)


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

"""Writers that receive the output by strips of rows and never hold the whole frame in memory.

Both write to a temporary name in the output folder and rename it into place only in `commit`, so a
final name never points at a half-written file; `abort` removes the temporary file.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import gzip
import os
import re
import secrets
import struct
import warnings
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from ..config import FITS_ENCODINGS
from ..cores import in_order
from ..errors import DiskFullError, OutputError, short_reason
from ..imaging.wcs import has_lookup_tables


def _out_of_space(exc: OSError) -> bool:
    """Whether ``exc`` says the disk (or the user's quota) is out of space; astropy's own words come without an
    errno."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT) or "Not enough space on disk" in str(exc)


def _write_error(path: Path, exc: OSError, doing: str) -> OutputError:
    if _out_of_space(exc):
        return DiskFullError(f"{path}: no space left on the device while {doing}; nothing was left under this name")
    return OutputError(f"{path}: {doing} failed ({exc.strerror or exc})")


#: free space below which a disk that refused a file's space is full for every file (the batch stops: `DiskFullError`)
FULL_BELOW = 1 << 20


def readable_size(n: int) -> str:
    """A number of bytes as people read it: 812 kB, 9.0 MB, 22.4 GB."""
    return next(f"{n / unit:,.1f} {name}" for unit, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB"), (1, "bytes"))
                if n >= unit or unit == 1)


def _no_room(path: Path, exc: OSError, needed: int, doing: str = "creating the output", what: str = "") -> OutputError:
    """A file of ``needed`` bytes whose space the disk refused (``exc``, while ``doing``): an `OutputError` saying how
    much it needs (``what``: of what) and how much is free where the file alone does not fit (a batch goes on:
    smaller outputs may), a `DiskFullError` where the disk is full (under `FULL_BELOW` free: the batch stops)."""
    import shutil

    try:
        free = shutil.disk_usage(path if path.is_dir() else path.parent).free
    except OSError:
        free = 0
    left = "there" if path.is_dir() else "under this name"
    if exc.errno == errno.EDQUOT or free < FULL_BELOW:
        return DiskFullError(f"{path}: no space left on the device while {doing}; nothing was left {left}")
    return OutputError(f"{path}: needs {readable_size(needed)}{what} and its disk has {readable_size(free)} free; "
                       f"nothing was left {left} (free space, or give -o on a disk with room)")


BLOCK = 2880
CHANNEL_NAMES = ("RED", "GREEN", "BLUE")
PHYSICAL_NAMES = ("FLUX", "FLUXERR")  # a grey frame's luminance in the input's units and its noise, after BLUE
# the RGB FITS's display planes: float32, or 16-bit integers scaled to [0, 1] (step 1/65534, 2x smaller, still
# streamed), or those 16-bit planes tile-compressed (RICE_1, lossless on the integers; ~0.7x int16 where the
# display shows the sky noise, less where it is black; compressed plane by plane after the frame: memory of one
# output plane)
INT16_SCALE, INT16_ZERO, INT16_BLANK = 1 / 65534, 0.5, -32768  # value = 0.5 + I/65534 for I in [-32767, 32767]
INT16_CARDS = {"BSCALE": INT16_SCALE, "BZERO": INT16_ZERO, "BLANK": INT16_BLANK}
TEMP_MARKER = ".astroenhance-tmp-"


# FITS checksums (the FITS standard, appendix J: 32-bit ones' complement sums, the complement encoded as 16 ASCII
# characters; DATASUM of the data unit, CHECKSUM making the whole HDU sum to -0), as astropy and fitsverify check them
CHECKSUM_CARDS = (("DATASUM", "0", "data unit checksum (FITS standard)"),
                  ("CHECKSUM", "0" * 16, "HDU checksum (FITS standard)"))
_EXCLUDED = frozenset(range(0x3A, 0x41)) | frozenset(range(0x5B, 0x61))  # punctuation between digits and letters


def ones_complement_sum(data: bytes | np.ndarray, total: int = 0) -> int:
    """The 32-bit ones' complement sum of ``data`` (bytes, a multiple of 4: FITS blocks) read as big-endian words,
    added to ``total``."""
    words = np.frombuffer(data, dtype=">u4")
    total += int(words.sum(dtype=np.uint64))  # < 2**64 for any file under 64 GiB
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


def checksum_string(value: int) -> str:
    """The 16 characters the FITS standard encodes a 32-bit value as (CHECKSUM holds the encoded complement)."""
    chars = [0] * 16
    for i in range(4):
        byte = (value >> (24 - 8 * i)) & 0xFF
        q, r = byte // 4 + ord("0"), byte % 4
        ch = [q + r, q, q, q]
        changed = True
        while changed:  # keep to letters and digits: move one unit between neighbours
            changed = False
            for j in (0, 2):
                if ch[j] in _EXCLUDED or ch[j + 1] in _EXCLUDED:
                    ch[j], ch[j + 1], changed = ch[j] + 1, ch[j + 1] - 1, True
        for j in range(4):
            chars[4 * j + i] = ch[j]
    return bytes(chars[(i + 15) % 16] for i in range(16)).decode("ascii")


def host_name() -> str:
    """This machine's name, reduced to characters safe in a file name."""
    import socket

    return "".join(c for c in socket.gethostname() if c.isalnum() or c in ".-")[:40] or "host"


def process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc; "" where unknown): with the host and
    the pid it names a process uniquely, even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return ""


_OWNERS: dict[int, str] = {}


def owner_tag() -> str:
    """``host~pid~start`` of this process (cached per pid: a forked or spawned worker gets its own)."""
    pid = os.getpid()
    if pid not in _OWNERS:
        _OWNERS[pid] = f"{host_name()}~{pid}~{process_start(pid)}"
    return _OWNERS[pid]


def cleanup_stale_temporaries(folder: Path, mine: bool = False) -> list[Path]:
    """Remove temporary files — and scratch folders (`combining.scratch_folder`) — left in ``folder`` by
    astroenhance processes that provably no longer run (killed): only those made on this host whose process is gone
    (or whose pid now belongs to a process started later).  Another machine's temporaries in a shared folder are
    left alone: their owner cannot be seen from here.  ``mine``: this process's own too (an interrupted run, its
    workers gone: nothing of it is being written any more, whatever point the interruption reached)."""
    import shutil

    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if TEMP_MARKER not in p.name:
            continue
        tag = p.name.split(TEMP_MARKER, 1)[1]
        if not (_owner_gone(tag) or (mine and tag.rsplit("-", 1)[0] == owner_tag())):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
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


def _owner_gone(tag: str) -> bool:
    """Whether the process named by a temporary's owner tag (``host~pid~start-…``) provably no longer runs."""
    owner = tag.rsplit("-", 1)[0]
    parts = owner.split("~")
    if len(parts) != 3:  # before owners were named (pid only): assume this host, as those versions did
        pid = tag.split("-", 1)[0]
        return pid.isdigit() and not _alive(int(pid))
    host, pid, start = parts
    if host != host_name() or not pid.isdigit():
        return False
    if not _alive(int(pid)):
        return True
    return bool(start) and process_start(int(pid)) not in ("", start)  # the pid was reused by a newer process


def _quiet_unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:  # gone already, or a read-only folder: the original error is the one to report
        pass


NAME_MAX = 255  # bytes in one file name on the usual file systems


_FOLDERS: set[Path] = set()  # where this process has made temporaries (`remove_own_temporaries`)


def made_temporaries_in(folder: Path) -> None:
    """Record that this process makes temporaries (files or scratch folders named by `owner_tag`) in ``folder``."""
    _FOLDERS.add(Path(folder))


def remove_own_temporaries() -> list[Path]:
    """Remove every temporary this process made and has left (and any of processes gone) in the folders it made
    them in: for a command that was interrupted, whatever step the interruption reached, as it ends."""
    return [p for folder in sorted(_FOLDERS) for p in cleanup_stale_temporaries(folder, mine=True)]


def temporary_path(final: Path) -> Path:
    """A hidden temporary name beside ``final`` (same file system, so the rename is atomic) that names its owner:
    host, pid and the process's start time, so another run — on this machine or another sharing the folder —
    removes it only when that process provably no longer runs (`cleanup_stale_temporaries`)."""
    made_temporaries_in(final.parent)
    tail = f"{TEMP_MARKER}{owner_tag()}-{secrets.token_hex(4)}"
    name = final.name
    room = NAME_MAX - 1 - len(os.fsencode(tail))
    while len(os.fsencode(name)) > room:  # a final name near the limit: its temporary keeps a shortened copy
        name = name[:-1]
    return final.with_name(f".{name}{tail}")


def write_whole(path: Path, write: Callable[[Path], object], what: str = "the report") -> Path:
    """A small file (a JSON report, a figure) written by ``write(tmp)`` under a temporary name and renamed into
    place: never half-written; an `OutputError` naming it (``what`` it is) where that fails (a full disk)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:  # (Ctrl-C while it is written too: no temporary left)
        _quiet_unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"{path}: cannot write {what} ({exc.strerror or exc})") from None
        raise
    return path


def scratch_array(path: Path, dtype, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` file at ``path`` memory-mapped for writing (zeros), its disk space reserved now: a memory map
    writing into a sparse file on a full disk is killed by SIGBUS, without a word, when a page is written back, so
    a full disk is found here (a `DiskFullError` naming the file, which is removed), before any work goes into it."""
    arr = np.lib.format.open_memmap(path, "w+", np.dtype(dtype), shape)
    try:
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, arr.offset + arr.nbytes)
        finally:
            os.close(fd)
    except AttributeError:  # no fallocate on this platform: the sparse file must do
        pass
    except OSError as exc:
        if _out_of_space(exc):
            del arr
            _quiet_unlink(path)
            needed = int(np.prod(shape)) * np.dtype(dtype).itemsize
            # (in a command's scratch folder, removed with it: the folder the user gave, -o, is the one to name)
            named = path.parent.parent if TEMP_MARKER in path.parent.name else path
            raise _no_room(named, exc, needed, f"reserving {readable_size(needed)} of scratch space",
                           " of scratch space") from None
    return arr


def _as_bytes(x: str | bytes) -> bytes:
    return x if isinstance(x, bytes) else x.encode("utf-8")


def _padded(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


class _AtomicFile:
    def __init__(self, final: Path) -> None:
        self.final = Path(final)
        self.tmp = temporary_path(self.final)

    def finish(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def publish(self) -> Path:
        """Rename the finished temporary file to its final name (atomic on one file system)."""
        try:
            os.replace(self.tmp, self.final)
        except OSError as exc:
            self.abort()
            raise _write_error(self.final, exc, "renaming the finished output into place") from None
        return self.final

    def commit(self) -> Path:
        """`finish` then `publish`."""
        self.finish()
        return self.publish()

    def abort(self) -> None:
        """Remove the temporary; never raises (a cleanup must not hide the error that caused it)."""
        _quiet_unlink(self.tmp)


def publish_all(finished: list[_AtomicFile]) -> list[Path]:
    """Rename every finished output into place, in order; interrupted or failing between renames, the ones not yet
    renamed are removed (they leave nothing).  Returns the final names."""
    for k, writer in enumerate(finished):
        try:
            writer.publish()
        except BaseException:
            for rest in finished[k + 1:]:
                rest.abort()
            raise
    return [writer.final for writer in finished]


class FITSRGBWriter(_AtomicFile):
    """An RGB FITS as DS9 and Aladin read it: empty primary + ``RED``, ``GREEN``, ``BLUE`` float32 images.

    The file is created at its full size and each strip is written in place (positioned writes), so
    memory stays bounded by one strip however large the output.

    Parameters
    ----------
    final : Path
        The output file name.
    shape : (int, int)
        Output ``(height, width)``.
    primary : astropy.io.fits.Header
        Cards for the primary header (provenance, kept keywords).
    image : astropy.io.fits.Header
        Cards for each colour extension (WCS, kept keywords).
    encoding : str
        ``float32``, ``int16`` or ``rice`` (`FITS_ENCODINGS`).
    flux_headers : (astropy.io.fits.Header, astropy.io.fits.Header), optional
        Headers of a ``FLUX`` (and ``FLUXERR``) extension after BLUE (physical units: always float32, never
        quantised).
    tables : list of astropy.io.fits.ImageHDU, optional
        Small extensions written last, as they are: the WCS's lookup-table distortions (``WCSDVARR``,
        ``D2IMARR``: `imaging.wcs.wcs_tables`) that the image headers' CPDIS/D2IM keywords name.
    """

    def __init__(self, final: Path, shape: tuple[int, int], primary: fits.Header, image: fits.Header,
                 encoding: str = "float32", flux_headers: tuple[fits.Header, ...] | None = None,
                 tables: list[fits.ImageHDU] | tuple = ()) -> None:
        super().__init__(final)
        if encoding not in FITS_ENCODINGS:
            raise ValueError(f"unknown FITS encoding {encoding!r} ({', '.join(FITS_ENCODINGS)})")
        self.encoding = encoding
        self.image = image
        # the display planes in the chosen encoding; FLUX and FLUXERR (physical units) always float32: never quantised
        self.physical = dict(zip(PHYSICAL_NAMES, flux_headers)) if flux_headers is not None else {}
        self.names = CHANNEL_NAMES + tuple(self.physical)
        # NEXTEND (as HST's files carry it) tells `check` and `output_is_complete` a copy cut short exactly where an
        # HDU ends
        self.primary = fits.Header([("NEXTEND", len(self.names) + len(tables), "number of extensions")])
        self.primary.extend([card for card in primary.cards if card.keyword != "NEXTEND"], unique=False)
        self.itemsizes = [4 if encoding == "float32" else 2] * 3 + [4] * (len(self.names) - 3)
        self.height, self.width = shape
        head = fits.Header([("SIMPLE", True), ("BITPIX", 8), ("NAXIS", 0), ("EXTEND", True)])
        head.extend(self.primary, unique=False)
        head.extend(CHECKSUM_CARDS)
        self.headers = [(0, head)]  # each HDU's header and where it starts: checksums are set in `finish`
        blobs = [(0, head.tostring().encode("ascii"))]
        self.data_offsets = []
        self.data_sizes = [0]  # each HDU's data size in the file (padded), the primary's first
        offset = len(blobs[0][1])
        for name, size in zip(self.names, self.itemsizes):
            h = fits.Header([("XTENSION", "IMAGE"), ("BITPIX", -32 if size == 4 else 16), ("NAXIS", 2),
                             ("NAXIS1", self.width), ("NAXIS2", self.height), ("PCOUNT", 0), ("GCOUNT", 1),
                             ("EXTNAME", name)])
            if size == 2:
                h.update(INT16_CARDS)
            h.extend(self.physical.get(name, image), unique=True)
            h.extend(CHECKSUM_CARDS)
            blob = h.tostring().encode("ascii")
            self.headers.append((offset, h))
            blobs.append((offset, blob))
            offset += len(blob)
            self.data_offsets.append(offset)
            self.data_sizes.append(_padded(self.height * self.width * size))
            offset += self.data_sizes[-1]
        self.tables = [fits.ImageHDU(np.asarray(t.data, ">f4"), t.header) for t in tables]
        for t in self.tables:  # known whole now: written with the headers
            t.header.extend(CHECKSUM_CARDS)
            blob = t.header.tostring().encode("ascii")
            self.headers.append((offset, t.header))
            blobs.append((offset, blob))
            offset += len(blob)
            self.data_offsets.append(offset)
            data = t.data.tobytes()
            blobs.append((offset, data + b"\0" * (_padded(len(data)) - len(data))))
            self.data_sizes.append(_padded(len(data)))
            offset += self.data_sizes[-1]
        self.size = offset
        try:
            self.fh = open(self.tmp, "wb+")
            try:  # reserve the space now: a full disk is found before any computing, not after
                os.posix_fallocate(self.fh.fileno(), 0, self.size)
            except (AttributeError, OSError) as exc:
                if isinstance(exc, OSError) and _out_of_space(exc):
                    raise
                self.fh.truncate(self.size)  # file systems without fallocate: a sparse pre-sized file
            for pos, blob in blobs:
                self.fh.seek(pos)
                self.fh.write(blob)
        except BaseException as exc:  # (Ctrl-C or SIGTERM while it is made, too: no temporary is left behind)
            self.abort()
            if isinstance(exc, OSError) and _out_of_space(exc):  # (the space reserved: this file's size)
                raise _no_room(final, exc, self.size) from None
            if isinstance(exc, OSError):
                raise _write_error(final, exc, "creating the output") from None
            raise

    def write_rows(self, channel: int, row0: int, rows: np.ndarray, col0: int = 0) -> None:
        """Write ``rows`` ``(n, m)`` at FITS rows ``row0..row0+n-1`` (row 0 = bottom), columns ``col0..col0+m-1``."""
        n, m = rows.shape
        if row0 < 0 or col0 < 0 or row0 + n > self.height or col0 + m > self.width:
            raise ValueError(f"block {n}x{m} at row {row0}, column {col0} does not fit {self.height}x{self.width}")
        size = self.itemsizes[channel]
        data = np.ascontiguousarray(rows, dtype=">f4") if size == 4 else to_int16(rows)
        try:
            if m == self.width:  # the array's own buffer, written as it is (no bytes copy)
                self.fh.seek(self.data_offsets[channel] + row0 * self.width * size)
                self.fh.write(data)
            else:
                for i in range(n):
                    self.fh.seek(self.data_offsets[channel] + ((row0 + i) * self.width + col0) * size)
                    self.fh.write(data[i])
        except OSError as exc:
            raise _write_error(self.final, exc, "writing") from None

    def write_block(self, row0: int, rgb: np.ndarray, col0: int = 0, flux: np.ndarray | None = None,
                    flux_err: np.ndarray | None = None) -> None:
        """Write ``rgb`` ``(n, m, 3)`` whose rows run bottom-up at FITS rows ``row0..`` of RED, GREEN and BLUE (and
        ``flux``, ``flux_err`` ``(n, m)`` into FLUX and FLUXERR, when the file has them)."""
        for c in range(3):
            self.write_rows(c, row0, rgb[..., c], col0)
        for c, plane in enumerate((flux, flux_err), start=3):
            if plane is not None and len(self.names) > c:
                self.write_rows(c, row0, plane, col0)

    def finish(self) -> None:
        """Flush everything to the temporary file (the final name is not touched yet); ``rice``: compress it."""
        try:
            self.fh.flush()
            if self.encoding == "rice":
                self._compress()
            else:
                self._set_checksums()
            os.fsync(self.fh.fileno())
            self.fh.close()
        except OSError as exc:
            self.abort()
            if self.encoding == "rice" and _out_of_space(exc):  # (the space of both comes back now: a batch goes on)
                raise OutputError(f"{self.final}: no space left on the device while compressing it (rice needs "
                                  f"room for the uncompressed planes, {readable_size(self.size)}, and the compressed "
                                  "file at once); nothing was left under this name") from None
            raise _write_error(self.final, exc, "finishing the output") from None

    def _set_checksums(self) -> None:
        """Each HDU's DATASUM (its data read back in pieces of 16 MiB) and CHECKSUM, written into its header in
        place (the cards are there from the start, so the header's length does not change)."""
        starts = [0] + self.data_offsets
        for (offset, header), start, size in zip(self.headers, starts, self.data_sizes):
            datasum = 0
            self.fh.seek(start)
            for done in range(0, size, 16 << 20):
                datasum = ones_complement_sum(self.fh.read(min(16 << 20, size - done)), datasum)
            header["DATASUM"] = str(datasum)
            header["CHECKSUM"] = "0" * 16
            total = ones_complement_sum(header.tostring().encode("ascii"), datasum)
            header["CHECKSUM"] = checksum_string(~total & 0xFFFFFFFF)
            self.fh.seek(offset)
            self.fh.write(header.tostring().encode("ascii"))
        self.fh.flush()

    def _compress(self) -> None:
        """Rewrite the finished 16-bit planes tile-compressed (RICE_1, one row per tile), one plane in memory at a
        time, into a second temporary that then replaces the first."""
        packed = temporary_path(self.final)
        try:
            head = fits.Header()
            head.extend(self.primary, unique=False)
            fits.PrimaryHDU(header=head).writeto(packed)
            for channel, name in enumerate(self.names):
                self.fh.seek(self.data_offsets[channel])
                if name in self.physical:  # float32, lossless (GZIP_2 without quantisation)
                    plane = np.fromfile(self.fh, dtype=">f4", count=self.height * self.width)
                    hdu = fits.CompImageHDU(plane.reshape(self.height, self.width).astype(np.float32),
                                            header=self.physical[name].copy(), name=name, compression_type="GZIP_2",
                                            quantize_level=0.0)
                else:
                    plane = np.fromfile(self.fh, dtype=">i2", count=self.height * self.width)
                    hdu = fits.CompImageHDU(plane.reshape(self.height, self.width).astype(np.int16),
                                            header=self.image.copy(), name=name, compression_type="RICE_1")
                    hdu.header.update(INT16_CARDS)
                del plane
                with warnings.catch_warnings(), _gzip_level(1):
                    warnings.simplefilter("ignore")  # long HISTORY/COMMENT cards are already wrapped
                    _append_hdu(packed, hdu)
                del hdu
            for table in self.tables:  # (without the checksum cards, which only the uncompressed layout fills)
                header = table.header.copy()
                for key, *_ in CHECKSUM_CARDS:
                    header.remove(key, ignore_missing=True)
                _append_hdu(packed, fits.ImageHDU(table.data, header))
            # every HDU's checksums, as the other encodings carry them: the compressed planes written again as the
            # binary tables they are (not decompressed), astropy summing each as it writes
            summed = temporary_path(self.final)
            try:
                with fits.open(packed, disable_image_compression=True, memmap=True) as hdul:
                    hdul.writeto(summed, checksum=True)
            except BaseException:
                _quiet_unlink(summed)
                raise
            _quiet_unlink(packed)
            packed = summed
            with open(packed, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(packed, self.tmp)
        except BaseException:
            _quiet_unlink(packed)
            raise

    def abort(self) -> None:
        fh = getattr(self, "fh", None)
        if fh is not None and not fh.closed:
            fh.close()
        super().abort()


def to_int16(values: np.ndarray) -> np.ndarray:
    """Display values in [0, 1] (NaN: no data) as big-endian 16-bit integers of the ``int16`` encoding."""
    v = np.array(values, np.float64)  # one working copy, changed in place: 3x faster than a chain of temporaries
    blank = np.isnan(v)
    np.clip(v, 0.0, 1.0, out=v)  # (NaN stays NaN; +-inf clip to the ends)
    v -= INT16_ZERO
    v /= INT16_SCALE
    np.rint(v, out=v)
    v[blank] = INT16_BLANK
    return v.astype(">i2")


def quantize(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Display values in [0, 1] as unsigned integers of ``dtype`` (uint8: PNG/JPEG, uint16: TIFF), rounded half up;
    NaN (no data) black, out of range clipped."""
    q = np.clip(values, 0.0, 1.0)  # one working copy, changed in place
    q[np.isnan(q)] = 0.0
    q *= float(np.iinfo(dtype).max)
    q += 0.5
    return q.astype(dtype)


@contextlib.contextmanager
def _gzip_level(level: int):
    """astropy's tile compression at gzip ``level`` for as long as this is open.  Its GZIP codecs call
    `gzip.compress` at its default level 9: on a smooth float plane 9x slower than level 1 for 1% smaller tiles
    (`benchmarks/bench_writers.py`, its GZIP_2 rows).  Any level decodes alike, so this changes a file's size only, never its
    values; an astropy without that module function is left as it is (slower, as correct)."""
    from astropy.io.fits.hdu.compressed import _codecs

    original = getattr(_codecs, "gzip_compress", None)
    if original is None:
        yield
        return
    original = getattr(original, "func", original)  # (another writer's, in another thread: astropy's own beneath)
    _codecs.gzip_compress = functools.partial(gzip.compress, compresslevel=level)
    try:
        yield
    finally:
        _codecs.gzip_compress = original


def _append_hdu(path: Path, hdu: fits.ImageHDU | fits.CompImageHDU) -> None:
    with fits.open(path, mode="append") as hdul:
        hdul.append(hdu)


#: the longest side a JPEG may have (libjpeg)
JPEG_MAX_SIDE = 65500


def linear_fit(wcs: WCS, shape: tuple[int, int], points: int = 33) -> tuple[WCS, float]:
    """The linear TAN WCS closest to ``wcs`` (SIP, lookup tables) over a picture of ``shape`` — astropy's
    `fit_wcs_from_points` on a ``points`` x ``points`` grid of its pixels — and the largest distance there (pixels)
    between where the two put a sky position: what AVM, which holds no distortion, can carry.  An ACS/WFC chip's
    linear part alone is off by ~60 pixels at its corners; the fit, by less."""
    from astropy.wcs.utils import fit_wcs_from_points

    h, w = shape
    y, x = np.meshgrid(np.linspace(0, h - 1, points), np.linspace(0, w - 1, points), indexing="ij")
    x, y = x.ravel(), y.ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sky = wcs.pixel_to_world(x, y)
        fit = fit_wcs_from_points((x, y), sky, projection="TAN")
        fx, fy = fit.world_to_pixel(sky)
    worst = float(np.hypot(fx - x, fy - y).max())
    if not np.isfinite(worst):
        raise ValueError("no linear WCS fits")
    return fit, worst


def avm_from_wcs(wcs: WCS, shape: tuple[int, int]):
    """AVM tags of a linear celestial ``wcs`` for a picture of ``shape`` (rows bottom-up, as FITS and AVM count
    them), as the AVM standard reads them: Spatial.Scale negative then positive with Spatial.Rotation.  pyavm's
    `AVM.from_wcs` writes (+, -) for half of all orientations (a rotation beyond 90 degrees), which every AVM reader —
    pyavm's own `to_wcs` included — takes as the picture turned 180 degrees about the reference pixel: the same
    matrix is written as (-, +) with the rotation + 180.  A mirrored sky (both scales of one sign), which Scale and
    Rotation cannot hold, is written as the exact Spatial.CDMatrix."""
    import pyavm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        avm = pyavm.AVM.from_wcs(wcs, shape=shape)
    if avm.Spatial.Equinox is None and avm.Spatial.CoordinateFrame in ("ICRS", "FK5", "FK4"):
        fk4 = avm.Spatial.CoordinateFrame == "FK4"
        equinox = float(wcs.wcs.equinox) if np.isfinite(wcs.wcs.equinox) else (1950.0 if fk4 else 2000.0)
        # (readers assumed J2000 with a warning; they read "J2000", "B1950" or a number)
        avm.Spatial.Equinox = {2000.0: "J2000", 1950.0: "B1950"}.get(equinox, equinox)
    scale = avm.Spatial.Scale
    if scale is not None:
        s1, s2 = (float(v) for v in scale)
        if s1 > 0 > s2:
            avm.Spatial.Scale = [-s1, -s2]
            avm.Spatial.Rotation = (float(avm.Spatial.Rotation or 0.0) + 180.0) % 360.0
        elif s1 * s2 > 0:
            cd = wcs.wcs.cd if wcs.wcs.has_cd() else wcs.wcs.get_pc() * wcs.wcs.cdelt[:, None]
            avm.Spatial.Scale = None
            avm.Spatial.Rotation = None
            avm.Spatial.CDMatrix = [float(v) for v in np.asarray(cd).ravel()]
    return avm


class ImageWriter(_AtomicFile):
    """PNG or JPEG (8-bit) or TIFF (16-bit) RGB, rows top-down, with AVM sky metadata when a WCS is given.

    A pixel with no data (NaN) is transparent in a PNG or TIFF — an alpha channel is written where the picture has
    one such pixel, and only then — so that no data is not shown as the darkest sky (nor drawn over a sky survey
    by a viewer that overlays it by its AVM); it is black in a JPEG, which has no alpha.

    Strips go into a scratch file of raw pixels beside the output by positioned writes (the page cache holds them,
    not this process); `commit` encodes it strip by strip: a PNG (`write_png`), a TIFF (tifffile), a JPEG
    (`write_jpeg`) — the picture is never whole in memory.
    """

    def __init__(self, final: Path, shape: tuple[int, int], fmt: str, wcs: WCS | None = None,
                 provenance: str = "", observation: dict[str, object] | None = None) -> None:
        if fmt == "jpeg" and max(shape) > JPEG_MAX_SIDE:  # (libjpeg's limit: found only after the whole frame)
            raise OutputError(f"{final}: {shape[1]}x{shape[0]} pixels, more than JPEG's {JPEG_MAX_SIDE:,} a side; "
                              "choose --format png or tiff for this frame")
        super().__init__(final)
        self.fmt = fmt
        self.height, self.width = shape
        self.wcs = wcs
        # (a file name the file system holds in bytes that are not UTF-8 comes as lone surrogates: written escaped,
        # \udcff, as FITS cards write it, in the picture's UTF-8 text)
        self.provenance = provenance.encode("utf-8", "backslashreplace").decode("utf-8")
        self.observation = observation or {}  # AVM fields besides the sky's (`io.observation.avm_observation`)
        self.dtype = np.dtype(np.uint16 if fmt == "tiff" else np.uint8)
        self.channels = 3 if fmt == "jpeg" else 4  # the scratch file's: colour and, but for a JPEG, alpha
        self.transparent = False  # whether a pixel had no data: the picture is then written with its alpha
        self.row_bytes = self.width * self.channels * self.dtype.itemsize
        self.scratch = temporary_path(self.final.with_name(self.final.name + ".scratch"))
        self.fd: int | None = None
        size = self.height * self.row_bytes
        try:
            self.fd = os.open(self.scratch, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            os.ftruncate(self.fd, size)
            # give the scratch file real blocks now: a full disk shows here, not halfway through the frame
            try:
                os.posix_fallocate(self.fd, 0, max(size, 1))
            except AttributeError:  # no fallocate on this platform: the sparse file must do
                pass
            except OSError as exc:
                if _out_of_space(exc):
                    raise
        except BaseException as exc:  # (Ctrl-C or SIGTERM while it is made, too: no scratch file is left behind)
            self._close()
            _quiet_unlink(self.scratch)
            if isinstance(exc, OSError) and _out_of_space(exc):  # (the space reserved: the scratch image's)
                raise _no_room(final, exc, max(size, 1), "creating the scratch image",
                               " of scratch space while it is made") from None
            if isinstance(exc, OSError):
                raise _write_error(final, exc, "creating the scratch image") from None
            raise
        self.notes: list[str] = []

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def write_rows(self, top_row: int, rgb: np.ndarray, col0: int = 0) -> None:
        """Write ``rgb`` ``(n, m, 3)`` in [0, 1] from image row ``top_row`` down (NaN = no data: black, transparent in a
        PNG or TIFF)."""
        n, m = rgb.shape[:2]
        if top_row < 0 or col0 < 0 or top_row + n > self.height or col0 + m > self.width:
            raise ValueError(f"block {n}x{m} at row {top_row}, column {col0} does not fit {self.height}x{self.width}")
        q = quantize(rgb, self.dtype)
        if self.channels == 4:
            opaque = ~np.isnan(rgb).any(axis=-1) if rgb.dtype.kind == "f" else np.ones((n, m), bool)
            self.transparent = self.transparent or not opaque.all()
            q = np.concatenate([q, (opaque * np.iinfo(self.dtype).max).astype(self.dtype)[..., None]], axis=-1)
        offset = top_row * self.row_bytes + col0 * self.channels * self.dtype.itemsize
        try:
            if m == self.width:  # whole rows: one write, of the array's own buffer
                os.pwrite(self.fd, q, offset)
            else:
                for i, row in enumerate(q):
                    os.pwrite(self.fd, row, offset + i * self.row_bytes)
        except OSError as exc:
            raise _write_error(self.final, exc, "writing the scratch image") from None

    def write_block(self, row0: int, rgb: np.ndarray, col0: int = 0, flux: np.ndarray | None = None,
                    flux_err: np.ndarray | None = None) -> None:
        """Write ``rgb`` ``(n, m, 3)`` whose rows run bottom-up, from FITS row ``row0`` (row 0 = bottom): the
        row-sink interface both writers share (an image's rows run top-down, so they are flipped here; an image
        has no FLUX plane: ``flux`` and ``flux_err`` are ignored)."""
        self.write_rows(self.height - row0 - rgb.shape[0], rgb[::-1], col0)

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``y0:y1`` of the scratch picture as it is encoded, read from the file: ``(n, width, 4)`` with alpha
        where a pixel had no data (`transparent`), else ``(n, width, 3)``."""
        data = os.pread(self.fd, (y1 - y0) * self.row_bytes, y0 * self.row_bytes)
        rows = np.frombuffer(data, self.dtype).reshape(y1 - y0, self.width, self.channels)
        return rows if self.transparent or self.channels == 3 else np.ascontiguousarray(rows[..., :3])

    def finish(self) -> None:
        """Encode the image into the temporary file (the final name is not touched yet)."""
        try:
            self._encode()
            self._close()
            self.scratch.unlink(missing_ok=True)
        except OSError as exc:
            self.abort()
            raise _write_error(self.final, exc, "finishing the output") from None

    def abort(self) -> None:
        self._close()
        _quiet_unlink(self.scratch)
        super().abort()

    def _avm(self):
        """The picture's AVM: its sky position (where it has a WCS) and `observation`'s fields; None for neither."""
        if self.wcs is None:
            if not self.observation:
                return None
            import pyavm

            return self._observed(pyavm.AVM())
        w = self.wcs.deepcopy()
        quality = "Full"
        if w.sip is not None or has_lookup_tables(w):
            quality = "Position"
            try:
                w, worst = linear_fit(self.wcs, (self.height, self.width))
                scale = float(np.sqrt(abs(np.linalg.det(w.pixel_scale_matrix)))) * 3600.0
                self.notes.append(f"AVM holds a linear WCS (distortion is not representable), the closest to the "
                                  f"frame's over the picture: up to {worst:.2g} pixels ({worst * scale:.2g}\") off; "
                                  "use the FITS for measurement")
            except Exception:  # noqa: BLE001 - no fit (a projection astropy cannot fit): the linear part as it is
                w.sip = None
                w.cpdis1 = w.cpdis2 = w.det2im1 = w.det2im2 = None
                w.wcs.ctype = [c.replace("-SIP", "") for c in w.wcs.ctype]
                self.notes.append("AVM holds the linear WCS only (distortion not representable): sky positions in "
                                  "the image file are approximate; use the FITS for measurement")
        try:
            avm = avm_from_wcs(w, (self.height, self.width))
        except Exception as exc:  # projection pyavm cannot express
            self.notes.append(f"no AVM written ({exc})")
            return None
        avm.Spatial.Quality = quality
        avm.Spatial.Notes = "Generated detail is not measurement. " + self.provenance[:500]
        return self._observed(avm)

    def _observed(self, avm):
        """``avm`` with `observation`'s fields set; one that pyavm refuses (a date it cannot read) is left out,
        noted."""
        for name, value in self.observation.items():
            *path, last = name.split(".")
            try:
                target = avm
                for part in path:
                    target = getattr(target, part)
                setattr(target, last, value)
            except Exception as exc:  # noqa: BLE001 - pyavm's validators raise several kinds
                self.notes.append(f"AVM {name} {value!r} left out ({short_reason(exc)})")
        return avm

    def _encode(self) -> None:
        avm = self._avm()
        if self.fmt == "png":  # streamed from the scratch file, the AVM packet written with it
            write_png(self.tmp, self.read_rows, (self.height, self.width),
                      [("Software", "astroenhance"), ("Comment", self.provenance)],
                      None if avm is None else _as_bytes(avm.to_xmp()), alpha=self.transparent)
            return
        if self.fmt == "tiff":  # strip by strip from the scratch file, as a PNG
            import tifffile

            extratags = [(700, "B", 0, _as_bytes(avm.to_xmp()), True)] if avm is not None else []
            samples = 3 + self.transparent  # (what `read_rows` gives: RGB, or RGBA where a pixel had no data)
            rows = max(1, TIFF_STRIP // (self.width * samples * self.dtype.itemsize))
            strips = (self.read_rows(y, min(y + rows, self.height)) for y in range(0, self.height, rows))
            tifffile.imwrite(self.tmp, data=strips, shape=(self.height, self.width, samples),
                             dtype=self.dtype, rowsperstrip=rows, photometric="rgb",
                             extrasamples=("unassalpha",) if self.transparent else None,
                             description=self.provenance or None, extratags=extratags)
            return
        write_jpeg(self.tmp, self.read_rows, (self.height, self.width), self.provenance.encode("utf-8")[:60000],
                   None if avm is None else _as_bytes(avm.to_xmp()))


TIFF_STRIP = 1 << 20  # bytes of pixels per TIFF strip (whole rows; the format's advice is small strips)
PNG_PIECE = 1 << 16  # bytes of pixels per piece `write_png` filters and compresses apart: its filter temporaries
# stay in a core's cache (a 4096² picture on this machine: 1.7 s on one thread at 64 KB, 2.5 s at 128-512 KB)
PNG_IDAT = 1 << 20  # bytes of compressed data per IDAT chunk


def _png_chunk(fh, kind: bytes, data: bytes) -> None:
    fh.write(struct.pack(">I", len(data)) + kind)
    fh.write(data)
    fh.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF))


def _png_itxt(key: str, text: bytes) -> tuple[bytes, bytes]:
    """An uncompressed ``iTXt`` chunk (UTF-8 ``text``, no language tag)."""
    return b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + text


def _png_text(key: str, value: str) -> tuple[bytes, bytes]:
    """A text chunk as Pillow writes one: ``tEXt`` when the value is Latin-1, else uncompressed ``iTXt`` (UTF-8)."""
    try:
        return b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1")
    except UnicodeEncodeError:
        return _png_itxt(key, value.encode("utf-8"))


def png_filter_rows(rows: np.ndarray, prior: np.ndarray, bpp: int = 3) -> np.ndarray:
    """Scanlines ``rows`` ``(n, width * bpp)`` uint8 with their PNG filter byte in front, ``(n, 1 + width * bpp)``:
    each row takes whichever of the five filters (none, sub, up, average, Paeth) gives the smallest sum of absolute
    values (libpng's heuristic); ``prior`` is the scanline above the first row (zeros for the image's first)."""
    x = rows.astype(np.int16)
    up = np.concatenate([prior[None].astype(np.int16), x[:-1]])
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    upleft = np.zeros_like(x)
    upleft[:, bpp:] = up[:, :-bpp]
    p = left + up - upleft
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    filtered = np.stack([x, x - left, x - up, x - ((left + up) >> 1), x - paeth]).astype(np.uint8)  # modulo 256
    cost = np.abs(filtered.view(np.int8).astype(np.int32)).sum(axis=2)  # (5, n)
    choice = np.argmin(cost, axis=0)
    out = np.empty((x.shape[0], x.shape[1] + 1), np.uint8)
    out[:, 0] = choice
    out[:, 1:] = filtered[choice, np.arange(x.shape[0])]
    return out


def _zlib_header(level: int) -> bytes:
    """The 2-byte zlib header of a deflate stream with a 32 KB window at compression ``level`` (RFC 1950)."""
    level = 6 if level < 0 else level
    flg = (0 if level < 2 else 1 if level < 6 else 2 if level == 6 else 3) << 6
    return bytes([0x78, flg + 31 - (0x7800 + flg) % 31])


def _png_piece(block: np.ndarray, prior: np.ndarray, level: int, last: bool, bpp: int = 3
               ) -> tuple[bytes, np.ndarray]:
    """One piece of a PNG's image data: its scanlines filtered (`png_filter_rows`; ``bpp`` bytes a pixel) and
    deflated on their own (a raw deflate stream that ends byte-aligned, or final for the ``last`` piece), and the
    filtered bytes (the stream's checksum covers them)."""
    filtered = png_filter_rows(block, prior, bpp)
    z = zlib.compressobj(level, zlib.DEFLATED, -15)
    return z.compress(filtered) + z.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH), filtered


def write_png(path: Path, rows: Callable[[int, int], np.ndarray], shape: tuple[int, int],
              texts: Sequence[tuple[str, str]] = (), xmp: bytes | None = None, level: int = 6,
              threads: int = 0, alpha: bool = False) -> None:
    """An 8-bit RGB PNG of ``shape`` ``(H, W)`` whose pixels ``rows(y0, y1)`` gives as ``(n, W, 3)`` uint8 (RGBA,
    ``(n, W, 4)``, with ``alpha``), read a piece at a time (the picture is never whole in memory), with text chunks
    ``texts`` and an XMP packet (AVM) in the ``iTXt`` chunk pyavm reads.

    Pieces of about `PNG_PIECE` bytes are filtered and compressed by ``threads`` threads at once (0:
    `cores.host_threads`; zlib and numpy work outside the GIL) and joined into one zlib stream as
    pigz does: each piece a deflate stream of its own ending on a byte boundary, the last one final, the checksum of
    all the filtered bytes after them.  The bytes do not depend on the number of threads."""
    height, width = shape
    bpp = 4 if alpha else 3
    step = max(1, PNG_PIECE // (width * bpp))
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n")
        _png_chunk(fh, b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6 if alpha else 2, 0, 0, 0))
        if xmp is not None:
            _png_chunk(fh, *_png_itxt("XML:com.adobe.xmp", xmp))
        for key, value in texts:
            _png_chunk(fh, *_png_text(key, value))

        def pieces():
            prior = np.zeros(width * bpp, np.uint8)
            for y0 in range(0, height, step):
                y1 = min(y0 + step, height)
                block = np.ascontiguousarray(rows(y0, y1), np.uint8).reshape(-1, width * bpp)
                yield _png_piece, (block, prior, level, y1 == height, bpp)
                prior = block[-1]

        pending = bytearray(_zlib_header(level))
        adler = 1
        for data, filtered in in_order(pieces(), threads):
            adler = zlib.adler32(filtered, adler)
            pending += data
            while len(pending) >= PNG_IDAT:
                _png_chunk(fh, b"IDAT", bytes(pending[:PNG_IDAT]))
                del pending[:PNG_IDAT]
        pending += struct.pack(">I", adler & 0xFFFFFFFF)
        _png_chunk(fh, b"IDAT", bytes(pending))
        _png_chunk(fh, b"IEND", b"")


JPEG_STRIP = 1 << 22  # bytes of pixels per strip `write_jpeg` encodes apart (whole rows, a multiple of 128)
JPEG_QUALITY = 95
XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\0"  # an APP1 segment holding XMP starts so (pyavm reads it there)


def _jpeg_parts(data: bytes) -> tuple[list[bytes], bytes]:
    """A baseline JPEG's marker segments after SOI up to and including SOS, and its entropy-coded data up to EOI."""
    segments, i = [], 2
    while True:
        if data[i] != 0xFF:
            raise ValueError(f"no JPEG marker at byte {i}")
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        segments.append(data[i:i + 2 + length])
        i += 2 + length
        if marker == 0xDA:  # SOS: the scan's data follows
            break
    if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        raise ValueError("not a whole JPEG (SOI ... EOI)")
    return segments, data[i:-2]


def _jpeg_strip(block: np.ndarray, comment: bytes | None) -> tuple[list[bytes], bytes]:
    """One strip encoded by Pillow: baseline, 4:2:0 (16-row MCUs), a restart marker after every MCU row."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(block, "RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling="4:2:0",
                                       restart_marker_rows=1, **({"comment": comment} if comment else {}))
    return _jpeg_parts(buf.getvalue())


def write_jpeg(path: Path, rows: Callable[[int, int], np.ndarray], shape: tuple[int, int], comment: bytes = b"",
               xmp: bytes | None = None, threads: int = 0) -> None:
    """An 8-bit RGB JPEG (quality `JPEG_QUALITY`, 4:2:0) of ``shape`` ``(H, W)`` whose pixels ``rows(y0, y1)``
    gives as ``(n, W, 3)`` uint8, encoded a strip at a time (the picture is never whole in memory), with a comment
    and an XMP packet (AVM) in the APP1 segment pyavm reads.

    Each strip of a multiple of 128 rows (8 MCU rows) is encoded on its own by Pillow with a restart marker after
    every MCU row, so it starts, as a restart interval does, with fresh DC predictions: the strips' scans joined
    with the restart marker due between them (RST7) are the one scan of the whole picture, under the first strip's
    headers with the height made the picture's.  Decoded, the pixels are those of Pillow's encoding of the whole
    picture.  Strips are encoded by ``threads`` threads at once (0: `cores.host_threads`; Pillow's encoder works
    outside the GIL)."""
    height, width = shape
    step = max(128, JPEG_STRIP // (width * 3) // 128 * 128)
    if xmp is not None and len(xmp) + len(XMP_NAMESPACE) > 0xFFFF - 2:
        raise ValueError(f"the XMP packet ({len(xmp)} bytes) does not fit a JPEG segment")

    def strips():
        for y0 in range(0, height, step):
            block = np.ascontiguousarray(rows(y0, min(y0 + step, height)), np.uint8)
            yield _jpeg_strip, (block, comment if y0 == 0 else None)

    with open(path, "wb") as fh:
        tables = None
        for k, (segments, scan) in enumerate(in_order(strips(), threads)):
            # every strip's quantisation and Huffman tables, restart interval and scan header are the same (one
            # quality, Pillow's standard tables, one width): checked, not assumed
            shared = [s for s in segments if s[1] not in (0xE0, 0xFE, 0xC0)]
            if k == 0:
                tables = shared
                fh.write(b"\xff\xd8")
                for s in segments:
                    if s[1] == 0xC0:  # SOF0: FF C0, length, precision, then the height the decoder reads
                        s = s[:5] + struct.pack(">H", height) + s[7:]
                    fh.write(s)
                    if s[1] == 0xE0 and xmp is not None:  # (after JFIF's APP0, where pyavm puts it)
                        body = XMP_NAMESPACE + xmp
                        fh.write(b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body)
            else:
                if shared != tables:
                    raise RuntimeError("JPEG strips encoded with different tables")
                fh.write(b"\xff\xd7")  # the restart due after 8k MCU rows (RST0..RST7 count them modulo 8)
            fh.write(scan)
        fh.write(b"\xff\xd9")


def recorded_settings(path: Path) -> str:
    """The settings digest an output records (`EnhanceConfig.digest`: FITS ``AE_SETSH``, images ``settings_sha256=``
    in their provenance text; "" where none, as in outputs of earlier versions).  Headers and text only."""
    try:
        if path.suffix == ".fits":
            return str(fits.getheader(path, 0).get("AE_SETSH", ""))
        from .readers import picture_header

        m = re.search(r"settings_sha256=([0-9a-f]*);", picture_header(path).text)
        return m.group(1) if m else ""
    except Exception:  # noqa: BLE001 - unreadable: no settings recorded
        return ""


def output_is_complete(path: Path, expected_shape: tuple[int, int] | None, input_sha256: str | None = None,
                       noise_sha256: str | None = None, dq_sha256: str | None = None) -> bool:
    """Whether an existing output can be trusted (`run --skip-existing`): it opens, has the expected shape, is
    as long as its layout requires (FITS: RED, GREEN, BLUE after the primary) and was made from the same input
    bytes (FITS ``AE_INSHA``; images: ``input_sha256=`` in their provenance text) and, with ``noise_sha256`` (the
    sha256 of the map file the frame would take its noise from now; "": none), where the output was made with a noise
    or weight map file (FITS ``AE_SIGSH``, images ``sky_noise_file_sha256=``), from that same file: an edited or
    removed map makes the frame redone.  (An output made without one stays complete: its map may have been unusable.)
    ``dq_sha256`` likewise for a data-quality file (FITS ``AE_DQSHA``, images ``dq_file_sha256=``).  The settings it
    was made with: `recorded_settings`."""
    if not path.is_file():
        return False
    try:
        if path.suffix == ".fits":
            with fits.open(path, memmap=False) as h:  # (lazy: no data is read but the last row's tile)
                names = [x.name for x in h]
                if names[1:4] != ["RED", "GREEN", "BLUE"] or h[0].header.get("NEXTEND", len(h) - 1) != len(h) - 1:
                    return False
                for ext in h[1:4]:
                    if expected_shape and ext.shape != expected_shape:
                        return False
                last = h[len(h) - 1]  # FLUX where there is one (or the WCS lookup tables after it): the end
                if isinstance(last, fits.CompImageHDU):  # compressed: the last row's tile must decompress
                    last.section[last.shape[0] - 1:]
                elif path.stat().st_size < (last.fileinfo()["datLoc"]
                                            + last.shape[0] * last.shape[1] * abs(last.header["BITPIX"]) // 8):
                    return False
                return ((input_sha256 is None or h[0].header.get("AE_INSHA") == input_sha256)
                        and _same_map(h[0].header.get("AE_SIGSH") or "", noise_sha256)
                        and _same_map(h[0].header.get("AE_DQSHA") or "", dq_sha256))
        from PIL import Image

        from .readers import picture_header

        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            if expected_shape is not None and (im.size[1], im.size[0]) != expected_shape:
                return False
            text = picture_header(path).text
            recorded = {key: (m.group(1) if (m := re.search(key + r"=([0-9a-f]*);", text)) else "")
                        for key in ("sky_noise_file_sha256", "dq_file_sha256")}
            return ((input_sha256 is None or f"input_sha256={input_sha256}" in text)
                    and _same_map(recorded["sky_noise_file_sha256"], noise_sha256)
                    and _same_map(recorded["dq_file_sha256"], dq_sha256))
    except Exception:
        return False


def _same_map(recorded: str, now: str | None) -> bool:
    """`output_is_complete`'s map test: a map recorded in the output must be the one the frame has now."""
    return now is None or not recorded or recorded == now


def fits_text(text: object) -> str:
    """``text`` as printable ASCII for a FITS card: other characters (accents, newlines) escaped as ``\\xe9``,
    ``\\n``..., so a file name of any spelling can be recorded (and recognised) in a header."""
    out = str(text).encode("ascii", "backslashreplace").decode("ascii")
    return "".join(ch if 32 <= ord(ch) < 127 else ch.encode("unicode_escape").decode("ascii") for ch in out)


def add_text(header: fits.Header, kind: str, text: str, width: int = 72) -> None:
    """Add ``text`` as HISTORY or COMMENT cards (``kind``), wrapped at word boundaries into as many cards as it
    needs: nothing is cut off, no word is split (a word longer than a card is split, at ``width``)."""
    import textwrap

    add = header.add_history if kind == "HISTORY" else header.add_comment
    for line in textwrap.wrap(fits_text(text), width, break_on_hyphens=False) or [""]:
        add(line)


def set_card(header: fits.Header, key: str, value: object, comment: str = "") -> None:
    """``header[key] = (value, comment)``, the comment shortened (or left out) so the card fits its 80 characters
    (astropy would truncate it with a warning)."""
    value = fits_text(value) if isinstance(value, str) else value
    header[key] = value
    # where astropy starts a comment: after the value — a short string's padded to column 30, which the card without
    # a comment does not show — and " / "
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = str(fits.Card(key, value, "x")).rstrip()
    room = 81 - len(probe) if probe.endswith(" / x") else 0
    if comment and room > 0:
        header.comments[key] = comment[:room]

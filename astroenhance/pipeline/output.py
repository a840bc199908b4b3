"""Where finished rows go: output names, and the sinks the engine streams rows into.

A sink has one method the engine calls, ``put(row0, row1, col0, rgb, lum)`` (and ``flux=``, ``flux_err=`` where the
frame gets a FLUX plane), with rows in the source's own order, as float32 torch tensors on the run's device: each sink
brings them to the host once, where it needs them.  `ArraySink` keeps them in memory (the Python API); `FileSink` owns the writers of one frame's outputs
(FITS and images share the writers' ``write_block`` interface: rows bottom-up) and the atomic publish: every
output is written under a temporary name and renamed only when all of them are complete.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from pathlib import Path

import numpy as np
import torch
from astropy.io import fits

from ..config import FORMAT_SUFFIX
from ..errors import OutputError
from ..imaging.wcs import wcs_tables
from ..io.readers import output_stem
from ..io.writers import NAME_MAX, FITSRGBWriter, ImageWriter


def output_paths(path: Path, outdir: Path, label: str, formats: tuple[str, ...],
                 suffix: str = "enhanced") -> dict[str, Path]:
    """``{format: OUTDIR/<stem>[.<label>].<suffix>.<ext>}`` for input ``path`` (chip ``label``); an `OutputError`
    when a name would be longer than a file name may be (`io.writers.NAME_MAX` bytes: the input's name nearly is)."""
    stem = output_stem(path) + (f".{label}" if label else "")
    paths = {fmt: outdir / f"{stem}.{suffix}{FORMAT_SUFFIX[fmt]}" for fmt in formats}
    for target in paths.values():
        if (size := len(os.fsencode(target.name))) > NAME_MAX:
            raise OutputError(f"{path}: its output's name would be {size} bytes ({target.name[:24]}...), more than a "
                              f"file name may have ({NAME_MAX}): give the input a shorter name")
    return paths


def host(piece: torch.Tensor | np.ndarray | None) -> np.ndarray | None:
    """A finished piece as a numpy array (a CPU tensor's own memory, no copy)."""
    return piece.cpu().numpy() if isinstance(piece, torch.Tensor) else piece


class _Sink:
    """What both sinks share: ``put`` hands each piece to ``_write``, at once or (``background``) through a thread
    that works while the engine computes the next pieces (`QUEUED` pieces waiting at most); an error there is
    raised by the next `put` or by `_stop`."""

    QUEUED = 4  # finished pieces waiting for the thread, at most

    def __init__(self, background: bool) -> None:
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._cancelled = False
        if background:
            self._queue = queue.Queue(maxsize=self.QUEUED)
            self._thread = threading.Thread(target=self._drain, name=f"astroenhance-{type(self).__name__}", daemon=True)
            self._thread.start()

    def put(self, row0: int, row1: int, col0: int, rgb: torch.Tensor, lum: torch.Tensor,
            flux: torch.Tensor | None = None, flux_err: torch.Tensor | None = None) -> None:
        """A finished piece (tensors on the run's device, or numpy); with a thread it comes to the host there, so
        that on a GPU the engine goes on while the piece is copied."""
        if self._queue is None:
            self._write(row0, row1, col0, rgb, lum, flux, flux_err)
            return
        if self._error is not None:
            raise self._error
        self._queue.put((row0, row1, col0, rgb, lum, flux, flux_err))

    def _write(self, row0: int, row1: int, col0: int, rgb, lum, flux, flux_err) -> None:
        raise NotImplementedError

    def _drain(self) -> None:
        """The thread: handle queued pieces until told to stop (None); after an error or a cancel, only empty the
        queue so that `put` never blocks."""
        while (item := self._queue.get()) is not None:
            if self._error is None and not self._cancelled:
                try:
                    self._write(*item)
                except BaseException as exc:  # handed to the engine's thread by the next put or by _stop
                    self._error = exc

    def _stop(self, cancel: bool) -> None:
        """Wait for the thread to finish the queued pieces (``cancel``: to drop them)."""
        if self._thread is not None:
            self._cancelled = self._cancelled or cancel
            try:
                self._queue.put(None)
                self._thread.join()
            except BaseException:  # Ctrl-C or SIGTERM while waiting: the thread drops what is left, writes no more
                self._cancelled = True
                with contextlib.suppress(queue.Full):
                    self._queue.put_nowait(None)
                raise
            self._thread = None


class ArraySink(_Sink):
    """Collects finished rows in memory (for arrays that fit in memory): ``with ArraySink(shape) as sink:
    engine.process(..., sink.put)``, then ``sink.rgb``...

    The engine covers every output pixel exactly once (no data: NaN, written by the engine), so the planes start as
    zeros (pages the system hands out on first touch, no pass to fill them), and a piece on a GPU is copied from the
    device straight into its place: one pass over the host memory, by a thread (``background``) while the engine
    goes on."""

    def __init__(self, shape: tuple[int, int], background: bool = False, rgb: np.ndarray | None = None,
                 luminance: bool = True) -> None:
        self.shape = shape
        if rgb is not None and (rgb.shape != (*shape, 3) or rgb.dtype != np.float32):
            raise ValueError(f"rgb must be float32 of shape {(*shape, 3)} (got {rgb.dtype} {rgb.shape})")
        self.rgb = np.zeros((*shape, 3), dtype=np.float32) if rgb is None else rgb  # (or the caller's: a memmap)
        # (``luminance`` False: not kept — a colour mosaic's frames need their display planes alone, and an ACS/WFC
        # chip's luminance at 4x is 0.5 GB)
        self.lum = np.zeros(shape, dtype=np.float32) if luminance else None
        self.flux: np.ndarray | None = None  # in the input's units, where the engine makes a FLUX plane
        self.flux_err: np.ndarray | None = None  # and its FLUXERR
        super().__init__(background)

    def _write(self, row0: int, row1: int, col0: int, rgb, lum, flux, flux_err) -> None:
        for name, piece in (("rgb", rgb), ("lum", None if self.lum is None else lum), ("flux", flux),
                            ("flux_err", flux_err)):
            if piece is None:  # (nor a luminance not kept)
                continue
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(self.shape, dtype=np.float32))
            place = getattr(self, name)[row0:row1, col0:col0 + piece.shape[1]]
            if isinstance(piece, torch.Tensor):
                torch.from_numpy(place).copy_(piece)
            else:
                place[...] = piece

    def __enter__(self) -> ArraySink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop(cancel=exc_type is not None)
        if exc_type is None and self._error is not None:
            raise self._error


class FileSink(_Sink):
    """The output files of one frame: ``with FileSink(...) as sink: engine.process(..., sink.put)``.

    On leaving the block without an error every output is finished and renamed to its final name
    (`outputs`, `notes` afterwards); on any error every temporary is removed and no final name is touched.
    With ``deferred`` (a list) the finished outputs are appended to it, not renamed: the caller publishes them
    (``writer.publish()``) once every frame of a file is complete, or aborts them all.
    With ``background`` the rows are written by a writer thread while the engine computes the next ones (a few
    pieces queued at most); a write error is raised by the next `put` or on leaving the block.
    """

    def __init__(self, targets: dict[str, Path], shape: tuple[int, int], origin: str, primary: fits.Header,
                 image: fits.Header, wcs, text: str, fits_encoding: str = "float32",
                 flux_headers: tuple[fits.Header, ...] | None = None, background: bool = False,
                 deferred: list | None = None, observation: dict[str, object] | None = None) -> None:
        self.deferred = deferred
        self.height = shape[0]
        self.bottom_up = origin == "lower"
        self.outputs: list[Path] = []
        self.notes: list[str] = []
        self.writers: list[FITSRGBWriter | ImageWriter] = []
        try:
            for fmt, target in targets.items():
                self.writers.append(FITSRGBWriter(target, shape, primary, image, fits_encoding, flux_headers,
                                                  wcs_tables(wcs)) if fmt == "fits"
                                    else ImageWriter(target, shape, fmt, wcs, text, observation))
            super().__init__(background)
        except BaseException:  # (Ctrl-C or SIGTERM as the writer thread starts, too)
            self._abort()
            raise

    def _write(self, row0: int, row1: int, col0: int, rgb, lum, flux, flux_err) -> None:
        rgb, flux, flux_err = host(rgb), host(flux), host(flux_err)
        if not self.bottom_up:  # the source's rows run top-down: FITS row of its last row, rows reversed
            row0, rgb = self.height - row1, rgb[::-1]
            flux = None if flux is None else flux[::-1]
            flux_err = None if flux_err is None else flux_err[::-1]
        for writer in self.writers:
            writer.write_block(row0, rgb, col0, flux, flux_err)

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:  # (interrupted anywhere here, too — waiting for the thread's last pieces: no temporary is left)
            self._stop(cancel=exc_type is not None)
            if exc_type is not None:
                self._abort()
                return
            if self._error is not None:
                raise self._error
            for writer in self.writers:
                writer.finish()
                self.notes += getattr(writer, "notes", [])
            if self.deferred is not None:
                self.deferred.extend(self.writers)
                self.outputs = [writer.final for writer in self.writers]
            else:
                self.outputs = [writer.publish() for writer in self.writers]  # all complete: only now final names
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        for writer in self.writers:
            writer.abort()

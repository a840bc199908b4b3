"""Where finished rows go: output names, and the sinks the engine streams rows into.

A sink has one method the engine calls, ``put(row0, row1, col0, rgb, lum)``, with rows in the source's own
order.  `ArraySink` keeps them in memory (the Python API); `FileSink` owns the writers of one frame's outputs
(FITS and images share the writers' ``write_block`` interface: rows bottom-up) and the atomic publish: every
output is written under a temporary name and renamed only when all of them are complete.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from ..config import FORMAT_SUFFIX
from ..io.readers import output_stem
from ..io.writers import FITSRGBWriter, ImageWriter


def output_paths(path: Path, outdir: Path, label: str, formats: tuple[str, ...],
                 suffix: str = "enhanced") -> dict[str, Path]:
    """``{format: OUTDIR/<stem>[.<label>].<suffix>.<ext>}`` for input ``path`` (chip ``label``)."""
    stem = output_stem(path) + (f".{label}" if label else "")
    return {fmt: outdir / f"{stem}.{suffix}{FORMAT_SUFFIX[fmt]}" for fmt in formats}


class ArraySink:
    """Collects finished rows in memory (for arrays that fit in memory)."""

    def __init__(self, shape: tuple[int, int]) -> None:
        self.shape = shape
        self.rgb = np.zeros((*shape, 3), dtype=np.float32)
        self.lum = np.zeros(shape, dtype=np.float32)
        self.flux: np.ndarray | None = None  # in the input's units, where the engine makes a FLUX plane

    def put(self, row0: int, row1: int, col0: int, rgb: np.ndarray, lum: np.ndarray,
            flux: np.ndarray | None = None) -> None:
        self.rgb[row0:row1, col0:col0 + rgb.shape[1]] = rgb
        self.lum[row0:row1, col0:col0 + lum.shape[1]] = lum
        if flux is not None:
            if self.flux is None:
                self.flux = np.full(self.shape, np.nan, dtype=np.float32)
            self.flux[row0:row1, col0:col0 + flux.shape[1]] = flux


class FileSink:
    """The output files of one frame: ``with FileSink(...) as sink: engine.process(..., sink.put)``.

    On leaving the block without an error every output is finished and renamed to its final name
    (`outputs`, `notes` afterwards); on any error every temporary is removed and no final name is touched.
    """

    def __init__(self, targets: dict[str, Path], shape: tuple[int, int], origin: str, primary: fits.Header,
                 image: fits.Header, wcs, text: str, fits_encoding: str = "float32",
                 flux_header: fits.Header | None = None) -> None:
        self.height = shape[0]
        self.bottom_up = origin == "lower"
        self.outputs: list[Path] = []
        self.notes: list[str] = []
        self.writers: list[FITSRGBWriter | ImageWriter] = []
        try:
            for fmt, target in targets.items():
                self.writers.append(FITSRGBWriter(target, shape, primary, image, fits_encoding, flux_header) if fmt == "fits"
                                    else ImageWriter(target, shape, fmt, wcs, text))
        except BaseException:
            self._abort()
            raise

    def put(self, row0: int, row1: int, col0: int, rgb: np.ndarray, lum: np.ndarray,
            flux: np.ndarray | None = None) -> None:
        if not self.bottom_up:  # the source's rows run top-down: FITS row of its last row, rows reversed
            row0, rgb = self.height - row1, rgb[::-1]
            flux = None if flux is None else flux[::-1]
        for writer in self.writers:
            writer.write_block(row0, rgb, col0, flux)

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            for writer in self.writers:
                writer.finish()
                self.notes += getattr(writer, "notes", [])
            self.outputs = [writer.publish() for writer in self.writers]  # all complete: only now final names
        except BaseException:
            self._abort()
            raise

    def _abort(self) -> None:
        for writer in self.writers:
            writer.abort()

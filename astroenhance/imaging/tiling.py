"""Overlapping tiles and their smooth blending window.

Tiles cover the input frame with at least ``overlap`` pixels shared between neighbours; along each axis the
fewest tiles of at most ``tile`` pixels are made equal in size and spread evenly, so every tile has the same
shape (simple batching), no tile is padded, and little is computed twice.  Each tile's result is weighted by a window that is zero for the outer quarter of
the overlap (where a convolutional network sees the tile edge), rises as a raised cosine across the
middle half, and is one elsewhere — and is one right up to the *frame* edge, where there is no neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


def _layout(length: int, tile: int, overlap: int) -> tuple[int, list[int]]:
    """The fewest tiles of at most ``tile`` pixels that cover ``length`` with at least ``overlap`` shared,
    made equal in size and spread evenly (no sliver of a last tile computed twice)."""
    if length <= tile:
        return length, [0]
    n = -(-(length - overlap) // (tile - overlap))
    size = min(tile, -(-(length + (n - 1) * overlap) // n) + 1)  # +1: slack for rounding the starts
    starts = [round(i * (length - size) / (n - 1)) for i in range(n)]
    return size, starts


def ramp(n: int, overlap: int) -> np.ndarray:
    """Weights ``(n,)`` for distances ``0..n-1`` from a tile edge that has a neighbour beyond it."""
    d = np.arange(n, dtype=np.float64) + 0.5
    dead = overlap / 4.0
    rise = overlap / 2.0
    t = np.clip((d - dead) / max(rise, 1e-9), 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * t)


@dataclass(frozen=True)
class TileGrid:
    """A grid of equal-size overlapping tiles over an ``(height, width)`` frame.

    Parameters
    ----------
    height, width : int
        Frame size in pixels.
    tile : int
        Tile side (tiles are smaller only when the frame is).
    overlap : int
        Pixels shared by neighbouring tiles; must be less than ``tile``.
    """

    height: int
    width: int
    tile: int = 256
    overlap: int = 32

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ValueError(f"frame must be at least 1x1 (got {self.height}x{self.width})")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap must be in [0, tile) (got overlap={self.overlap}, tile={self.tile})")

    @cached_property
    def row_starts(self) -> list[int]:
        return _layout(self.height, self.tile, self.overlap)[1]

    @cached_property
    def col_starts(self) -> list[int]:
        return _layout(self.width, self.tile, self.overlap)[1]

    @cached_property
    def tile_shape(self) -> tuple[int, int]:
        return _layout(self.height, self.tile, self.overlap)[0], _layout(self.width, self.tile, self.overlap)[0]

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def window(self, y0: int, x0: int, scale: int = 1) -> np.ndarray:
        """Blend weights ``(th*scale, tw*scale)`` of the tile at ``(y0, x0)``, at output resolution."""
        return np.outer(*self.axis_windows(y0, x0, scale))

    def axis_windows(self, y0: int, x0: int, scale: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The blend weights of the tile at ``(y0, x0)`` along its rows ``(th*scale,)`` and its columns
        ``(tw*scale,)``: `window` is their outer product."""
        th, tw = self.tile_shape
        return self._axis_window(y0, th, self.height, scale), self._axis_window(x0, tw, self.width, scale)

    def _axis_window(self, start: int, size: int, length: int, scale: int) -> np.ndarray:
        n = size * scale
        w = np.ones(n)
        ov = self.overlap * scale
        if start > 0:  # a neighbour before this tile
            w *= ramp(n, ov)
        if start + size < length:  # a neighbour after it
            w *= ramp(n, ov)[::-1]
        return w

    def column_bands(self, max_width: int = 2048) -> list[tuple[list[int], int, int]]:
        """Split the tile columns into bands of consecutive tiles spanning at most ``max_width`` input columns
        (at least one tile), for memory bounded by the band whatever the frame's width.

        Returns ``(tile_column_indices, emit_start, emit_stop)`` per band; every tile column is in exactly one
        band.  Once a band's tiles are computed (and the blend sums its left neighbour band left in the
        columns they share are added), input columns ``emit_start:emit_stop`` are final: no later tile
        reaches them.  The band's columns from ``emit_stop`` to its right edge are shared with the next band.
        """
        starts = self.col_starts
        tw = self.tile_shape[1]
        span = lambda k: max(starts[i + k - 1] + tw - starts[i] for i in range(len(starts) - k + 1))  # noqa: E731
        per_band = 1  # the most consecutive tiles that fit anywhere (rounded starts are not exactly equally spaced)
        while per_band < len(starts) and span(per_band + 1) <= max_width:
            per_band += 1
        n_bands = -(-len(starts) // per_band)
        edges = [round(i * len(starts) / n_bands) for i in range(n_bands + 1)]  # bands as equal as can be
        bands = []
        for c0, c1 in zip(edges, edges[1:]):
            emit_start = 0 if c0 == 0 else starts[c0]
            emit_stop = self.width if c1 == len(starts) else starts[c1]
            bands.append((list(range(c0, c1)), emit_start, emit_stop))
        return bands

    def final_rows_after(self, row_index: int) -> int:
        """Input rows ``< value`` receive no contribution from tile rows after ``row_index``."""
        if row_index + 1 >= len(self.row_starts):
            return self.height
        return self.row_starts[row_index + 1]

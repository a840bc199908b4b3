"""Small no-data holes filled for display (`pipeline.holes`): which pixels, with what values, independent of strips."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from astroenhance.pipeline.holes import context, fill_holes


def _runs(valid: np.ndarray, i: int, j: int, max_run: int) -> list[tuple[int, int, int, float]]:
    """The rule, one pixel at a time: each direction (axis 1: along the row, 0: along the column) with data at both
    ends of a run of at most ``max_run``: ``(axis, before, after, weight)``, the ends' positions along it."""
    found = []
    for axis, line, k in ((1, valid[i], j), (0, valid[:, j], i)):
        a, b = k - 1, k + 1
        while a >= 0 and not line[a]:
            a -= 1
        while b < line.size and not line[b]:
            b += 1
        if a >= 0 and b < line.size and b - a - 1 <= max_run:
            found.append((axis, a, b, 1.0 / (b - a)))
    return found


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 14), st.integers(1, 14), st.integers(0, 5), st.data())
def test_fills_exactly_the_short_runs_with_their_interpolation(h, w, max_run, data):
    holes = data.draw(arrays(np.bool_, (h, w)))
    plane = data.draw(st.tuples(*[st.floats(-3, 3)] * 3))
    y, x = np.mgrid[0:h, 0:w]
    truth = plane[0] + plane[1] * x + plane[2] * y
    frame = np.where(holes, np.nan, truth)
    got, filled = (t.numpy() for t in fill_holes(torch.from_numpy(frame), max_run))
    want_filled = np.array([[bool(holes[i, j]) and bool(_runs(~holes, i, j, max_run)) for j in range(w)]
                            for i in range(h)]).reshape(h, w)
    np.testing.assert_array_equal(filled, want_filled)
    np.testing.assert_array_equal(got[~holes], frame[~holes])  # measured pixels untouched
    assert np.isnan(got[holes & ~filled]).all()
    np.testing.assert_allclose(got[filled], truth[filled], atol=1e-9)  # a plane is filled exactly
    # and the two directions are weighted by their spans (checked on any values, not only planes)
    values = data.draw(arrays(np.float64, (h, w), elements=st.floats(-10, 10)))
    frame = np.where(holes, np.nan, values)
    got = fill_holes(torch.from_numpy(frame), max_run)[0].numpy()
    for i, j in zip(*np.nonzero(want_filled)):
        num = den = 0.0
        for axis, a, b, wgt in _runs(~holes, i, j, max_run):
            lo, hi = (values[i, a], values[i, b]) if axis == 1 else (values[a, j], values[b, j])
            k = j if axis == 1 else i
            num += wgt * (lo + (hi - lo) * (k - a) / (b - a))
            den += wgt
        assert abs(got[i, j] - num / den) < 1e-9


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 6), st.data())
def test_a_window_read_with_its_context_fills_as_the_whole_frame(max_run, data):
    h, w = 24, 20
    values = data.draw(arrays(np.float32, (h, w), elements=st.floats(0, 1, width=32)))
    holes = data.draw(arrays(np.bool_, (h, w), elements=st.booleans()))
    frame = torch.from_numpy(np.where(holes, np.float32(np.nan), values))
    whole, whole_holes = fill_holes(frame, max_run)
    y0 = data.draw(st.integers(0, h - 1))
    y1 = data.draw(st.integers(y0 + 1, h))
    x0 = data.draw(st.integers(0, w - 1))
    x1 = data.draw(st.integers(x0 + 1, w))
    c = context(max_run)
    ya, yb, xa, xb = max(0, y0 - c), min(h, y1 + c), max(0, x0 - c), min(w, x1 + c)
    part, part_holes = fill_holes(frame[ya:yb, xa:xb], max_run)
    crop = (slice(y0 - ya, y1 - ya), slice(x0 - xa, x1 - xa))
    np.testing.assert_array_equal(part[crop].numpy(), whole[y0:y1, x0:x1].numpy())
    np.testing.assert_array_equal(part_holes[crop].numpy(), whole_holes[y0:y1, x0:x1].numpy())
    assert frame.isnan().sum() == int(holes.sum())  # the input is not changed


def test_a_composites_bands_are_filled_in_strips_as_whole(monkeypatch):
    """`compose.filled_holes` fills each band in strips (a whole 4096² band took 2.5 GB at once): the same values as
    the whole band at once, wherever the strips cut, and the band's own array untouched."""
    from pathlib import Path

    import astroenhance.compose as compose

    rng = np.random.default_rng(4)
    data = rng.random((61, 47)).astype(np.float32)
    data[rng.random(data.shape) < 0.05] = np.nan
    data[20:27, 10] = np.nan  # a track across a strip's edge
    data[:, 30:33] = np.nan  # a column too wide to fill
    whole, holes = fill_holes(torch.from_numpy(data), 8)
    before = data.copy()
    for strip in (7, 16, 64):
        monkeypatch.setattr(compose, "HOLE_STRIP", strip)
        [band], n = compose.filled_holes([compose.Band(Path("x"), data, None, None, "", None)], 8)
        np.testing.assert_array_equal(band.data, whole.numpy())
        assert n == int(holes.sum())
    np.testing.assert_array_equal(np.isnan(data), np.isnan(before))


def test_the_note_counts_one_hole_as_one_pixel():
    """The note said "1 no-data pixels in small holes" (a WFPC2 chip with one cosmic ray)."""
    from astroenhance import EnhanceConfig, Enhancer

    rng = np.random.default_rng(3)
    frame = rng.normal(100.0, 5.0, (48, 48)).astype(np.float32)
    enhancer = Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False))
    for holes, said in ((1, "1 no-data pixel in small holes"), (2, "2 no-data pixels in small holes")):
        data = frame.copy()
        data[10, 10:10 + holes] = np.nan
        result = enhancer.enhance_array(data)
        assert any(n.startswith(said) for n in result.notes), result.notes

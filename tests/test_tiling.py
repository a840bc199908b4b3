import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from astroenhance.imaging.tiling import TileGrid


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 700), st.integers(1, 700), st.integers(16, 300), st.data())
def test_tiles_cover_every_pixel_with_positive_weight(h, w, tile, data):
    overlap = data.draw(st.integers(0, tile - 1))
    grid = TileGrid(h, w, tile, overlap)
    th, tw = grid.tile_shape
    total = np.zeros((h, w))
    for y in grid.row_starts:
        for x in grid.col_starts:
            assert 0 <= y and y + th <= h and 0 <= x and x + tw <= w
            total[y:y + th, x:x + tw] += grid.window(y, x)
    assert total.min() > 0


def test_window_is_one_at_frame_edges_and_smooth_inside():
    grid = TileGrid(1000, 1000, 256, 32)
    win = grid.window(0, 0)
    assert win[0, 0] == 1 and win[-1, 0] == 0
    interior = grid.window(grid.row_starts[1], grid.col_starts[1])
    assert interior[128, 128] == 1 and interior[0, 128] == 0


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 3000), st.integers(16, 300), st.data())
def test_column_bands_compute_each_tile_once_and_emit_every_column_once(w, tile, data):
    overlap = data.draw(st.integers(0, tile - 1))
    grid = TileGrid(10, w, tile, overlap)
    max_width = data.draw(st.integers(1, 800))
    bands = grid.column_bands(max_width)
    tw = grid.tile_shape[1]
    edges = [(e0, e1) for _, e0, e1 in bands]
    assert edges[0][0] == 0 and edges[-1][1] == w
    assert all(a[1] == b[0] for a, b in zip(edges, edges[1:]))
    assert [c for cols, _, _ in bands for c in cols] == list(range(len(grid.col_starts)))  # each tile once, in order
    for k, (cols, e0, e1) in enumerate(bands):
        x0, x1 = grid.col_starts[cols[0]], grid.col_starts[cols[-1]] + tw
        assert x1 - x0 <= max_width or len(cols) == 1
        later = [x for cols_, _, _ in bands[k + 1:] for x in (grid.col_starts[c] for c in cols_)]
        assert all(x >= e1 for x in later)  # emitted columns are final after this band
        earlier = [x for cols_, _, _ in bands[:k] for x in (grid.col_starts[c] for c in cols_)]
        # what earlier bands' tiles add to these columns lies inside this band (carried to it, then added)
        assert all(x + tw <= e0 or (x + tw <= x1 and e0 == x0) for x in earlier)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.sampled_from([64, 128, 224, 256]))
@example(3842, 224)  # rounded tile starts: the first tiles fit in 1024 columns, a later run of as many did not
def test_bands_are_no_wider_whatever_the_frame_width(w, tile):
    """Bands span at most the band width (or one tile): a wide frame does not make bands wider."""
    grid = TileGrid(10, w, tile, 16)
    for cols, _, _ in grid.column_bands(1024):
        assert grid.col_starts[cols[-1]] + grid.tile_shape[1] - grid.col_starts[cols[0]] <= max(1024, grid.tile_shape[1])


def test_bands_do_not_change_the_result(enhancer, hrc_crop, monkeypatch):
    import astroenhance.pipeline.engine as pipeline

    data, _ = hrc_crop
    lum = np.clip(data / np.nanpercentile(data, 99.8), 0, 1)
    whole = _network_output(enhancer, lum, tile=32, overlap=8)
    monkeypatch.setattr(pipeline, "BAND_WIDTH", 40)
    banded = _network_output(enhancer, lum, tile=32, overlap=8)
    np.testing.assert_allclose(banded, whole, atol=1e-6)


def test_every_output_pixel_of_every_plane_is_put_once(enhancer, hrc_crop, monkeypatch):
    """`ArraySink` starts from zeros, not NaN: it relies on the engine putting each pixel of RGB, luminance, FLUX
    and FLUXERR exactly once (no data included, as NaN), across bands, finishing steps and the FLUX plane's wait."""
    import torch

    import astroenhance.pipeline.engine as pipeline
    from astroenhance.io.readers import from_array

    data, wcs = hrc_crop
    data = data.copy()
    data[:7, 30:50] = np.nan  # no data at a frame edge
    src = from_array(data, wcs, origin="lower")
    cfg = enhancer.config.for_input(True).for_frame(1)
    shape = (data.shape[0] * 4, data.shape[1] * 4)
    counts = {name: np.zeros(shape, int) for name in ("rgb", "lum", "flux", "flux_err")}

    def put(r0, r1, c0, rgb, lum, flux=None, flux_err=None):
        for name, piece in (("rgb", rgb), ("lum", lum), ("flux", flux), ("flux_err", flux_err)):
            assert isinstance(piece, torch.Tensor) and piece.dtype == torch.float32, name
            counts[name][r0:r1, c0:c0 + piece.shape[1]] += 1

    monkeypatch.setattr(pipeline, "BAND_WIDTH", 40)
    monkeypatch.setattr(pipeline, "FINISH_ROWS", 7)
    enhancer.process(src, cfg, put)
    for name, count in counts.items():
        assert count.min() == count.max() == 1, name


def test_pieces_copied_by_a_thread_give_the_same_arrays(enhancer, hrc_crop, monkeypatch):
    """On a GPU `enhance_array`'s sink copies pieces to the host in a thread; forced here on the CPU: the same
    arrays, and an error in that thread reaches the caller."""
    import astroenhance.pipeline.engine as pipeline

    data, wcs = hrc_crop
    plain = enhancer.enhance_array(data, wcs)

    class Threaded(pipeline.ArraySink):
        def __init__(self, shape, background=False, **given):
            super().__init__(shape, background=True, **given)

    monkeypatch.setattr(pipeline, "ArraySink", Threaded)
    threaded = enhancer.enhance_array(data, wcs)
    for name in ("rgb", "luminance", "flux", "flux_err"):
        np.testing.assert_array_equal(getattr(threaded, name), getattr(plain, name), err_msg=name)

    class Failing(Threaded):
        def _write(self, *piece):
            raise OSError("no room for the piece")

    monkeypatch.setattr(pipeline, "ArraySink", Failing)
    with pytest.raises(OSError, match="no room"):
        enhancer.enhance_array(data, wcs)


def test_bands_do_not_change_colour_or_blend_weights(hrc_crop, monkeypatch):
    """Chroma and the blend weights cross band edges too (carried in a temporary file, not recomputed)."""
    import astroenhance.pipeline.engine as pipeline
    from astroenhance.config import EnhanceConfig

    data, _ = hrc_crop
    lum = np.clip(data / np.nanpercentile(data, 99.8), 0, 1)
    ramp = np.linspace(0, 1, lum.shape[1])[None, :]
    rgb = np.stack([lum, np.clip(0.8 * lum + 0.2 * ramp, 0, 1), np.sqrt(lum)], axis=-1).astype(np.float32)
    enh = pipeline.Enhancer(EnhanceConfig(device="cpu", colorize=False, tile=32, overlap=8))
    whole = enh.enhance_array(rgb).rgb
    monkeypatch.setattr(pipeline, "BAND_WIDTH", 40)
    assert len(TileGrid(*lum.shape, 32, 8).column_bands(40)) >= 3
    banded = enh.enhance_array(rgb).rgb
    np.testing.assert_allclose(banded, whole, atol=1e-6)


def test_unwritable_temporary_folder_is_a_clear_error(hrc_crop, monkeypatch, tmp_path):
    import tempfile

    import astroenhance.pipeline.engine as pipeline
    from astroenhance.config import EnhanceConfig
    from astroenhance.errors import OutputError

    data, _ = hrc_crop
    enh = pipeline.Enhancer(EnhanceConfig(device="cpu", colorize=False, tile=32, overlap=8))
    monkeypatch.setattr(pipeline, "BAND_WIDTH", 40)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with pytest.raises(OutputError, match="missing: creating the temporary file.*TMPDIR"):
        enh.enhance_array(data)


def test_rejects_bad_overlap():
    with pytest.raises(ValueError, match="overlap"):
        TileGrid(10, 10, 32, 32)


def _network_output(enhancer, lum, tile, overlap, psf_fwhm=None):
    """The SR luminance of `lum` through the pipeline's tiling (no flux projection, no clipping effects)."""
    from dataclasses import replace

    from astroenhance.io.readers import from_array

    cfg = replace(enhancer.config.for_input(True), tile=tile, overlap=overlap, flux_conserving=False,
                  stretch="linear", interval="minmax", psf_fwhm=psf_fwhm)
    src = from_array(lum)
    out = np.zeros((lum.shape[0] * 4, lum.shape[1] * 4), np.float32)

    def put(r0, r1, c0, rgb, lum_rows):
        out[r0:r1, c0:c0 + lum_rows.shape[1]] = lum_rows

    enhancer.process(src, cfg, put)
    return out


@pytest.mark.parametrize("psf_fwhm", [None, 2.5])
def test_tiled_matches_untiled_away_from_frame_edge(enhancer, hrc_crop, psf_fwhm):
    """Tiles of 48 with overlap 32 against one tile covering the whole 96x80 crop; also with the output smoothed
    to a PSF of 2.5 input pixels, tile by tile (`Enhancer.psf_smoothing`): the blend's ramps hide the tiles' edges."""
    data, _ = hrc_crop
    lum = np.clip((data - np.nanpercentile(data, 1)) / (np.nanpercentile(data, 99.8) - np.nanpercentile(data, 1)), 0, 1)
    tiled = _network_output(enhancer, lum, tile=48, overlap=32, psf_fwhm=psf_fwhm)
    whole = _network_output(enhancer, lum, tile=128, overlap=32, psf_fwhm=psf_fwhm)
    if psf_fwhm:  # (the smoothing took place)
        assert np.abs(whole - _network_output(enhancer, lum, tile=128, overlap=32)).max() > 0.01
    edge = 8 * 4
    diff = np.abs(tiled - whole)[edge:-edge, edge:-edge]
    assert diff.max() < 1e-3, diff.max()


@pytest.mark.parametrize("shape", [(1, 37), (37, 1), (5, 3), (33, 300), (2, 2)])
def test_odd_and_tiny_frames(enhancer, shape):
    lum = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    out = _network_output(enhancer, lum, tile=32, overlap=8)
    assert out.shape == (shape[0] * 4, shape[1] * 4)
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_colour_tiles_agree(hrc_crop):
    """The colorizer sees far (1/16 bottleneck); with its 64-pixel context margin and the shared whole-frame
    thumbnail, tiles of 48 agree with one whole-frame pass to 5e-3 (measured on 512² of this frame: 2.5e-3 max,
    2e-5 mean with 256-pixel tiles)."""
    from astroenhance.config import EnhanceConfig
    from astroenhance.pipeline import Enhancer

    data, wcs = hrc_crop
    tiled = Enhancer(EnhanceConfig(device="cpu", upscale=False, tile=48, overlap=16)).enhance_array(data, wcs).rgb
    whole = Enhancer(EnhanceConfig(device="cpu", upscale=False, tile=128)).enhance_array(data, wcs).rgb
    diff = np.abs(tiled - whole)[8:-8, 8:-8]
    assert diff.max() < 5e-3, diff.max()


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000), st.integers(16, 600), st.data())
def test_layout_keeps_the_overlap_and_wastes_little(length, tile, data):
    overlap = data.draw(st.integers(0, tile // 2))
    grid = TileGrid(length, 7, tile, overlap)
    size, starts = grid.tile_shape[0], grid.row_starts
    assert size <= tile and starts[0] == 0 and starts[-1] + size == length
    assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:]))  # neighbours share >= overlap
    if len(starts) > 1:  # one tile fewer could not have covered the frame with that overlap
        assert (len(starts) - 1) * tile - (len(starts) - 2) * overlap < length

"""Frames whose depth varies: the sky's sigma across the frame from its per-pixel noise (issue 15, item 2)."""

import numpy as np
import pytest
import torch
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from astroenhance import EnhanceConfig, Enhancer
from astroenhance.io.noise import NoiseMap, sky_noise_map
from astroenhance.io.readers import open_frames
from astroenhance.pipeline.space import from_noise_space, to_noise_space


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.sampled_from([4, 7, 16]), st.integers(0, 10**6))
def test_noise_map_is_exact_at_block_centres_and_between_them_never_outside(ny, nx, block, seed):
    rng = np.random.default_rng(seed)
    grid = rng.uniform(0.5, 5.0, (ny, nx))
    shape = (ny * block - rng.integers(0, block), nx * block - rng.integers(0, block))  # last blocks may be short
    m = NoiseMap(grid, block, shape)
    full = m.at(0, shape[0], 0, shape[1])
    assert full.shape == shape
    assert grid.min() - 1e-12 <= full.min() and full.max() <= grid.max() + 1e-12
    if block % 2 == 1:  # a full block of odd size has a centre pixel: the map is the block's value there
        for j in range(ny - 1):
            for i in range(nx - 1):
                c = block // 2
                assert full[j * block + c, i * block + c] == pytest.approx(grid[j, i])
    y0, x0 = rng.integers(0, shape[0]), rng.integers(0, shape[1])  # any window reads as the whole frame does
    np.testing.assert_allclose(m.at(y0, shape[0], x0, shape[1]), full[y0:, x0:], rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.floats(0.01, 100), st.floats(-5, 5), st.integers(0, 10**6))
def test_noise_space_with_a_sigma_per_pixel_is_exactly_invertible(scale, sky, seed):
    rng = np.random.default_rng(seed)
    x = sky + scale * rng.normal(0, 50, (8, 9))
    sigma = scale * rng.uniform(0.1, 10, (8, 9))
    np.testing.assert_allclose(from_noise_space(to_noise_space(x, sky, sigma), sky, sigma), x, rtol=1e-9,
                               atol=1e-9 * scale)
    t = torch.from_numpy(x)
    np.testing.assert_allclose(to_noise_space(t, sky, torch.from_numpy(sigma)).numpy(), to_noise_space(x, sky, sigma))


def _depth_step(n=96, deep=1.0, shallow=3.0, galaxy=0.0, seed=0):
    """A sky of 10 whose left half is ``shallow / deep`` times deeper (ERR says so), with optionally a bright
    galaxy in the deep half whose ERR counts its own photons."""
    rng = np.random.default_rng(seed)
    err = np.full((n, n), deep)
    err[:, n // 2:] = shallow
    yy, xx = np.mgrid[:n, :n]
    light = galaxy * np.exp(-np.hypot(yy - n / 2, xx - n / 6) / 1.5)
    err = np.sqrt(err**2 + light / 2)  # a gain of 2: its photons' noise
    return 10 + light + rng.normal(0, 1, (n, n)) * err, err


def test_sky_noise_map_follows_the_depth_not_a_galaxy_s_own_photons():
    sci, err = _depth_step(galaxy=2000.0)
    rows = (lambda a, b: sci[a:b]), (lambda a, b: err[a:b])
    m = sky_noise_map(*rows, sci.shape, sky=10.0, sigma=2.0)
    assert m is not None and m.span == pytest.approx((1.0, 3.0), rel=0.02)
    sigma = m.at(0, 96, 0, 96)
    assert np.allclose(sigma[:, :16], 1.0, rtol=0.02) and np.allclose(sigma[:, -16:], 3.0, rtol=0.02)
    # the galaxy's core, where its ERR is 20x the sky's, and half its block more than 10% above the sky's: the map
    # still says deep sky (a galaxy filling most of a block would count: its neighbours' sky does not stand in)
    assert err[48, 16] > 20 and (err[32:64, :32] > 1.1).mean() > 0.45
    assert sigma[48, 16] < 1.02
    # rescaled (a WHT in seconds of exposure says only how the depth varies): to the pixels' own noise, whatever the
    # frame's one sigma (a mixture of the two depths) says
    m = sky_noise_map(rows[0], lambda a, b: 100 * err[a:b], sci.shape, sky=10.0, sigma=2.0, rescale=True)
    assert m.span == pytest.approx((1.0, 3.0), rel=0.05)
    # one depth (noise varying by less than NOISE_MAP_UNIFORM): one sigma serves
    flat = np.full_like(err, 1.5)
    flat[:, :10] = 1.7
    assert sky_noise_map(rows[0], lambda a, b: flat[a:b], sci.shape, sky=10.0, sigma=1.5) is None



def test_the_map_keeps_a_depth_step_sharp_and_a_galaxy_s_photons_out():
    """Between block centres the map alone would blur a step in depth over a block; read with the file's own noise
    (`NoiseMap.sharp`) each side keeps its sigma, while a galaxy's ERR (its photons) is held to the sky's around."""
    sci, err = _depth_step(n=96, deep=1.0, shallow=3.0, galaxy=2000.0)
    err[:, 40:48] = 1.0  # the step inside a block (columns 32-63), not on a block edge
    m = sky_noise_map(lambda a, b: sci[a:b], lambda a, b: err[a:b], sci.shape, sky=10.0, sigma=2.0)
    sharp = m.sharp(lambda a, b: err[a:b], 0, 96, 0, 96)
    smooth = m.at(0, 96, 0, 96)
    assert np.ptp(smooth[:, 40:56]) < 1.5  # the map alone: a ramp over the block
    np.testing.assert_allclose(sharp[:, 40:48], 1.0)
    np.testing.assert_allclose(sharp[:, 48:56], 3.0)
    assert err[48, 16] > 20 and sharp[48, 16] < 1.1  # the galaxy's core: about the sky's sigma, not its photons'
    # where the file has no value (WHT 0, NaN): the map
    holes = err.copy()
    holes[10:20, 10:20] = np.nan
    np.testing.assert_allclose(m.sharp(lambda a, b: holes[a:b], 10, 20, 10, 20), smooth[10:20, 10:20])
    # an exposure-time WHT rescaled: its values are read in the pixels' units
    m = sky_noise_map(lambda a, b: sci[a:b], lambda a, b: 100 * err[a:b], sci.shape, sky=10.0, sigma=2.0,
                      rescale=True)
    np.testing.assert_allclose(m.sharp(lambda a, b: 100 * err[a:b], 0, 8, 0, 96), m.units * 100 * err[:8])

def _write(path, sci, err):
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci.astype(np.float32), name="SCI"),
                  fits.ImageHDU(err.astype(np.float32), name="ERR")]).writeto(path)
    return path


def test_run_records_the_depth_and_keeps_faint_sources_light_where_the_frame_is_deep(tmp_path):
    """With one sigma for a frame half 4x deeper than the other, FLUX lets the deep half's residuals go up to 2x the
    frame's (median) sigma, 5x the deep sky's: faint sources there lose light as if noise.  With the map they keep it."""
    n = 96
    yy, xx = np.mgrid[:n, :n]
    ratios = {False: [], True: []}
    enhancers = {m: Enhancer(EnhanceConfig(device="cpu", colorize=False, formats=("fits",), noise_map=m))
                 for m in ratios}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        err = np.ones((n, n))
        err[:, n // 2:] = 4.0
        centres = [(cy, cx) for cy in range(12, n - 8, 16) for cx in (12, 28)]
        truth = 10 + sum(4.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2) for cy, cx in centres)
        path = _write(tmp_path / f"step{seed}.fits", truth + rng.normal(0, 1, (n, n)) * err, err)
        for m, enh in enhancers.items():
            [res] = enh.enhance_file(path, tmp_path / f"out{m}")
            with fits.open(res.outputs[0]) as h:
                flux = h["FLUX"].data.astype(np.float64)
                span = h[0].header["AE_SIGLO"], h[0].header["AE_SIGHI"]
            assert span == ((1.0, 4.0) if m else (2.5, 2.5))  # the one sigma: ERR's median
            for cy, cx in centres:
                got = (flux[(cy - 2) * 4:(cy + 3) * 4, (cx - 2) * 4:(cx + 3) * 4] - 10 / 16).sum()
                ratios[m].append(got / (truth[cy - 2:cy + 3, cx - 2:cx + 3] - 10).sum())
    one_sigma, per_pixel = np.median(ratios[False]), np.median(ratios[True])
    assert per_pixel > 0.95 and per_pixel > one_sigma + 0.03, (one_sigma, per_pixel)


def test_tiles_agree_where_the_depth_varies(tmp_path):
    sci, err = _depth_step(n=80, galaxy=500.0, seed=3)
    outs = []
    for tile in (32, 224):
        enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, formats=("fits",), tile=tile, overlap=8))
        [res] = enh.enhance_file(_write(tmp_path / f"t{tile}.fits", sci, err), tmp_path / str(tile))
        with fits.open(res.outputs[0]) as h:
            outs.append((h["GREEN"].data.astype(np.float64), h["FLUX"].data.astype(np.float64)))
    (g1, f1), (g2, f2) = outs
    assert np.abs(g1 - g2).max() < 0.02 and np.abs(f1 - f2).max() < 0.02 * np.abs(f2).max()


def test_a_frame_of_one_depth_keeps_one_sigma(tmp_path):
    sci, err = _depth_step(deep=2.0, shallow=2.0)
    with open_frames(_write(tmp_path / "flat.fits", sci, err)) as [src]:
        enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False))
        enh.fit_normalizer(src, enh.config.for_input(True))
        assert src.noise_map is None and not any("varies across" in note for note in src.notes)


def test_run_help_states_the_map_s_block_and_threshold():
    from typer.testing import CliRunner

    from astroenhance.cli import app
    from astroenhance.io.noise import NOISE_MAP_BLOCK, NOISE_MAP_UNIFORM, NOISE_MAP_UNIFORM_ESTIMATED

    text = " ".join(CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output.split())
    assert f"{NOISE_MAP_BLOCK}-pixel blocks spans more than {NOISE_MAP_UNIFORM:g}x" in text
    assert f"measured from its pixels, and needs a span of {NOISE_MAP_UNIFORM_ESTIMATED:g}x" in text


def test_an_exposure_time_wht_gives_the_depth_in_the_pixels_units(tmp_path):
    """AstroDrizzle's default weights are exposure times: 1/sqrt(WHT) is then off from the pixels' noise (the engine
    estimates that instead), but its shape is the depth's; the map is scaled to the pixels' own noise."""
    n = 200
    wht = np.full((n, n), 1200.0, np.float32)
    wht[:, n // 2:] = 300.0  # a quarter of the exposure: twice the noise
    sci = np.random.default_rng(0).normal(0.0, 1.0, (n, n)) * 0.01 * np.sqrt(1200.0 / wht)
    path = tmp_path / "exp_drz.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci.astype(np.float32), name="SCI"),
                  fits.ImageHDU(wht, name="WHT")]).writeto(path)
    with open_frames(path) as [src]:
        enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False))
        enh.fit_normalizer(src, enh.config.for_input(True))
        assert src.noise_from == "estimated" and src.noise_map is not None
        assert src.noise_map.span == pytest.approx((0.01, 0.02), rel=0.08)


def test_a_frame_without_per_pixel_noise_gets_its_depth_from_its_pixels(tmp_path):
    """No ERR, WHT or --noise: each block's sky noise is measured from its pixels (robust differences of the sky's
    pixels, a source's bright pixels left out).  A depth step 3x is found on both sides, a galaxy's core
    does not make its block look shallow; frames of one depth — white or drizzle-correlated noise, with sources, of
    a size that leaves a sliver of a block at the edge — keep one sigma."""
    from astroenhance.training.telescope import drizzle_like, synthetic_field

    sci, _ = _depth_step(n=192, galaxy=2000.0)
    path = tmp_path / "sci_only.fits"
    fits.PrimaryHDU(sci.astype(np.float32)).writeto(path)
    with open_frames(path) as [src]:
        enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False))
        enh.fit_normalizer(src, enh.config.for_input(True))
        assert src.noise_rows is None and src.noise_map is not None
        sigma = src.noise_map.at(0, 192, 0, 192)
        # each block's estimate from ~1,000 pixels scatters by ~4%: each side's median within 5%, every pixel 15%
        assert np.median(sigma[:, :64]) == pytest.approx(1.0, rel=0.05)
        assert np.median(sigma[:, -64:]) == pytest.approx(3.0, rel=0.05)
        assert np.allclose(sigma[:, :64], 1.0, rtol=0.15) and np.allclose(sigma[:, -64:], 3.0, rtol=0.15)
        assert sigma[96, 32] < 1.15  # the galaxy's core (its photons' noise 20x the sky's)
        assert any("from its pixels" in note for note in src.notes)
    rng = np.random.default_rng(1)
    for i, noise in enumerate([rng.normal(0, 1, (200, 200)), drizzle_like(rng.normal(0, 1, (200, 200)), rng)]):
        flat = 10 + noise + synthetic_field(rng, 200)
        path = tmp_path / f"flat{i}.fits"
        fits.PrimaryHDU(flat.astype(np.float32)).writeto(path)
        with open_frames(path) as [src]:
            enh.fit_normalizer(src, enh.config.for_input(True))
            assert src.noise_map is None
    # --no-noise-map: one sigma whatever the pixels say
    with open_frames(tmp_path / "sci_only.fits") as [src]:
        off = Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False, noise_map=False))
        off.fit_normalizer(src, off.config.for_input(True))
        assert src.noise_map is None


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 40), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_row_medians_and_block_noise_are_numpy_s(rows, cols, nan_share, seed):
    """The maps measure all the blocks of a row at once: each row's median of its finite values is `numpy.median`'s
    exactly (NaN where none), its percentiles `numpy.percentile`'s, each block's difference sigma
    `metrics.difference_sigma`'s."""
    from astroenhance.io.noise import SKY_QUANTILE, _difference_sigmas, _masked_medians, _masked_percentiles
    from astroenhance.metrics import difference_sigma

    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (rows, cols)).round(1)  # ties too
    x[rng.random(x.shape) < nan_share] = np.nan
    got = _masked_medians(x)
    quantiles = {q: _masked_percentiles(x, q) for q in (0, SKY_QUANTILE, 50, 73.3, 100)}
    for r in range(rows):
        finite = x[r][np.isfinite(x[r])]
        assert (np.isnan(got[r]) if finite.size == 0 else got[r] == np.median(finite))
        for q, at in quantiles.items():
            assert (np.isnan(at[r]) if finite.size == 0 else at[r] == np.percentile(finite, q))
    blocks = x.reshape(rows, 1, cols)  # (blocks, rows, columns): one row each
    expected = [difference_sigma(b) for b in blocks]
    assert np.array_equal(_difference_sigmas(blocks), np.array(expected))

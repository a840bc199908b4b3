import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from astroenhance.errors import InputError
from astroenhance.imaging.normalize import STRETCHES, Normalizer, parse_interval

INTERVALS = ["zscale", "minmax", "percentile:99.5", "noise:3"]


@pytest.mark.parametrize("stretch", STRETCHES)
@pytest.mark.parametrize("interval", INTERVALS)
def test_round_trip_inside_interval(stretch, interval):
    x = np.random.default_rng(0).lognormal(3, 1, (64, 64))
    norm = Normalizer.fit(x, stretch, interval)
    d = norm(x)
    assert d.dtype == np.float32 and np.nanmin(d) >= 0 and np.nanmax(d) <= 1
    inside = (x > norm.vmin) & (x < norm.vmax)
    assert inside.sum() > 100
    # float32 display values: the inverse is exact to float32 precision of the stretched value
    np.testing.assert_allclose(norm.inverse(d)[inside], x[inside], rtol=2e-4 if stretch == "log" else 5e-5,
                               atol=(norm.vmax - norm.vmin) * 1e-5)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(2, 300), elements=st.floats(-1e6, 1e6)),
       st.sampled_from(STRETCHES), st.sampled_from(["minmax", "percentile:90", "zscale", "noise:3", "noise:0.5"]))
def test_any_data_maps_into_unit_interval(x, stretch, interval):
    norm = Normalizer.fit(x, stretch, interval)
    d = norm(x)
    assert np.all((d >= 0) & (d <= 1))
    assert norm.vmax > norm.vmin
    # monotone: a larger input never gets a smaller display value
    order = np.argsort(x, kind="stable")
    assert np.all(np.diff(d[order]) >= 0)


def test_nan_stays_nan_and_is_ignored_by_interval():
    x = np.arange(100.0)
    x[::7] = np.nan
    norm = Normalizer.fit(x, "linear", "minmax")
    assert (norm.vmin, norm.vmax) == (1.0, 99.0)
    assert np.isnan(norm(x)[::7]).all()


def test_all_nan_is_an_input_error():
    with pytest.raises(InputError, match="no finite pixels"):
        Normalizer.fit(np.full(10, np.nan), "asinh", "minmax")


def test_constant_frame_maps_to_mid_grey():
    norm = Normalizer.fit(np.full(50, 7.0), "linear", "minmax")
    assert norm(np.array([7.0]))[0] == pytest.approx(0.5)


@pytest.mark.parametrize("bad", ["percentile:0", "percentile:abc", "zcale", "percentile:101"])
def test_bad_interval_is_refused(bad):
    with pytest.raises(ValueError, match="interval"):
        parse_interval(bad)


@settings(max_examples=50, deadline=None)
@given(st.floats(-100, 100), st.floats(1e-3, 10), st.floats(1.0, 1e5), st.floats(0.5, 10))
def test_noise_interval_clips_nothing_at_the_top_and_is_softened_at_b_sigma(sky, sigma, peak, b):
    rng = np.random.default_rng(3)
    x = sky + sigma * rng.normal(size=(40, 50))
    x[7, 9] = top = sky + sigma * peak * 10  # one bright core
    norm = Normalizer.fit(x, "asinh", f"noise:{b!r}", sky=sky, sigma=sigma)
    assert norm.vmin == pytest.approx(sky - 2 * sigma) and norm.vmax == top
    assert norm.a == pytest.approx(b * sigma / (top - norm.vmin))
    d = norm(x)
    assert d[7, 9] == pytest.approx(1.0, abs=1e-6) and (d[np.arange(40) != 7] < 1).all()  # only the peak reaches 1
    assert np.isclose(norm(np.array([sky - 2 * sigma])), 0, atol=1e-7).all()
    core = np.linspace(sky + 5 * sigma, top, 50)  # every level of the core stays distinct: nothing flat
    shown = norm(core)
    assert (np.diff(shown.astype(np.float64)) > 0).all()
    # invertible to 2e-4 (plus 1e-3 sigma), or where that is finer than float32 display values can hold (a core
    # 1e5 sigma above a sky far from 0), to two of their steps: one step of d moves x by |dx/dd| x spacing(d)
    d = shown.astype(np.float64)
    step = np.abs(norm.inverse(np.minimum(d + 1e-7, 1.0)) - norm.inverse(d - 1e-7)) / (np.minimum(d + 1e-7, 1.0) - d + 1e-7)
    allowed = np.maximum(2e-4 * np.abs(core) + sigma * 1e-3, 2 * step * np.spacing(shown).astype(np.float64))
    assert (np.abs(norm.inverse(shown) - core) <= allowed).all()


def test_noise_interval_specs():
    """A B out of range says which range (it said "unknown interval" of noise:0; noise:inf was taken)."""
    assert parse_interval("noise:3") == "noise:3" and parse_interval("noise:0.5") == "noise:0.5"
    for bad in ("noise:x", "noise"):
        with pytest.raises(Exception, match="unknown interval"):
            parse_interval(bad)
    for bad in ("noise:0", "noise:-1", "noise:inf"):
        with pytest.raises(Exception, match=r"B must be a finite number > 0, in sigmas \(e\.g\. noise:3\)"):
            parse_interval(bad)
    with pytest.raises(Exception, match=r"'percentile:101': P must be within 0 < P <= 100"):
        parse_interval("percentile:101")


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 200), elements=st.one_of(st.floats(-1e4, 1e5), st.just(np.nan))),
       st.sampled_from(STRETCHES), st.floats(1e-3, 10), st.floats(-100, 100), st.floats(1, 1e4))
def test_a_tensor_is_mapped_as_astropy_maps_the_array(x, stretch, a, vmin, span):
    """The engine maps tensors on the run's device with its own copy of astropy's formulas: they must agree, both
    ways, NaN included."""
    import torch

    norm = Normalizer(stretch, "minmax", vmin, vmin + span, a if stretch in ("asinh", "log") else 0.0)
    want, got = norm(x), norm(torch.from_numpy(x)).numpy()
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=2e-7, equal_nan=True)
    d = np.linspace(0, 1, 257)
    np.testing.assert_allclose(norm.inverse(torch.from_numpy(d)).numpy(), norm.inverse(d), rtol=1e-12, atol=1e-9 * span)


def _field(spike: float | None, seed: int = 0) -> np.ndarray:
    """A 64² sky (100 ± 5) with an undersampled star (0.84 of its light in one pixel, 0.02 in each neighbour: as
    WFC3/IR samples a star binned 4x4) and, where given, one hot pixel of value ``spike``."""
    rng = np.random.default_rng(seed)
    img = rng.normal(100, 5, (64, 64))
    img[30:33, 40:43] += 5e4 * np.array([[0.02, 0.02, 0.02], [0.02, 0.84, 0.02], [0.02, 0.02, 0.02]])
    if spike is not None:
        img[12, 9] = spike
    return img.astype(np.float32)


@pytest.mark.parametrize("spike", [1e38, 3e7, 1e9])
def test_an_isolated_hot_pixel_does_not_set_the_white_point(spike):
    """`noise:B`'s white point is the brightest pixel (no star core clips), but not a pixel far brighter than any
    PSF lets a source be next to its neighbours: one fill value of 1e38 made the whole display black (sky 0.007 instead
    of 0.15). It shows white, FLUX keeps it, and a note names it."""
    from astroenhance import EnhanceConfig, Enhancer

    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False))
    clean, hot = (enh.enhance_array(_field(s)) for s in (None, spike))
    assert hot.normalizer.vmax == pytest.approx(clean.normalizer.vmax) == pytest.approx(float(_field(None).max()))
    far = np.ones((256, 256), bool)
    far[16:84, 4:72] = False  # the hot pixel and the 8 input pixels around it the network's view of it reaches
    np.testing.assert_allclose(hot.rgb[far], clean.rgb[far], atol=0.02)
    assert hot.rgb[48:52, 36:40].max() == pytest.approx(1.0)  # its block reaches the white point
    assert float(hot.flux[48:52, 36:40].astype(np.float64).sum()) == pytest.approx(spike, rel=1e-3)
    assert any("isolated pixel" in n and "white point" in n for n in hot.notes)
    assert not any("isolated" in n for n in clean.notes)  # the star (its core 42x its neighbours) is no spike


class _Rows:
    """A grey frame read in strips, as `FrameSource.read_rows` reads one."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.channels = data, data.shape, 1

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        return self.data[y0:y1]


@settings(max_examples=int(__import__("os").environ.get("ASTROENHANCE_FUZZ_EXAMPLES", 60)), deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 12)),
              elements=st.one_of(st.just(np.nan), st.floats(90, 110, width=32), st.floats(1e5, 1e9, width=32))),
       st.integers(1, 13))
def test_the_white_point_is_the_brightest_pixel_that_is_not_a_spike_whatever_the_strips(data, step):
    """`engine._maximum` reads the frame in strips of ``step`` rows, each with a row of its neighbours: the same as
    judging every pixel against its 8 neighbours in the whole frame at once (neighbours with no data are no light)."""
    from scipy.ndimage import maximum_filter

    from astroenhance.pipeline.engine import ISOLATED, _maximum

    sky, sigma = 100.0, 5.0
    top, n, worst = _maximum(_Rows(data), sky, sigma, step=step)
    finite = np.isfinite(data)
    if not finite.any():
        assert np.isnan(top) and n == 0
        return
    d = data.astype(np.float64)
    near = maximum_filter(np.where(finite, d, -np.inf), footprint=np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], bool),
                          mode="constant", cval=-np.inf)
    spike = finite & (d - sky > ISOLATED * np.maximum(near - sky, sigma))
    if (finite & ~spike).any():
        want = float(d[finite & ~spike].max())
        above = d[spike & (d > want)]
        assert (top, n) == (want, above.size)
        assert worst == (float(above.max()) if above.size else pytest.approx(np.nan, nan_ok=True))
    else:  # every pixel a spike: the plain maximum
        assert (top, n) == (float(d[finite].max()), 0)

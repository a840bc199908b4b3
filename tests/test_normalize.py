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
def test_an_isolated_hot_pixel_is_read_as_no_data(spike):
    """A pixel far brighter than any PSF lets a source be beside its neighbours is no source: one fill value of 1e38
    set `noise:3`'s white point and left the whole display black (sky 0.007 instead of 0.15), and the network drew a
    3e7 hot pixel as a round star with a dark ring. It is read as no data, as a DQ-flagged pixel is: the display is
    the clean frame's (the pixel shown interpolated), FLUX has no value there, AE_NHOT counts it, a note says so."""
    from astroenhance import EnhanceConfig, Enhancer

    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False))
    clean, hot = (enh.enhance_array(_field(s)) for s in (None, spike))
    assert hot.normalizer.vmax == pytest.approx(clean.normalizer.vmax) == pytest.approx(float(_field(None).max()))
    near = np.zeros((256, 256), bool)
    near[44:56, 32:44] = True  # the hot pixel's block and its neighbours'
    np.testing.assert_allclose(hot.rgb[~near], clean.rgb[~near], atol=0.01)
    np.testing.assert_allclose(hot.rgb[near], clean.rgb[near], atol=0.1)  # there: an interpolated pixel, not noise
    assert np.isnan(hot.flux[48:52, 36:40]).all() and np.isfinite(hot.flux[~near]).all()
    assert hot.header["AE_NHOT"] == 1 and clean.header["AE_NHOT"] == 0
    assert any("isolated pixel" in n and "read as no data" in n for n in hot.notes)
    assert not any("isolated" in n for n in clean.notes)  # the star (its core 42x its neighbours) is no such pixel


class _Rows:
    """A grey frame read in strips, as `FrameSource.read_rows` reads one."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.channels = data, data.shape, 1
        self.hot_pixels, self.notes = -1, []

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        return self.data[y0:y1]


@settings(max_examples=int(__import__("os").environ.get("ASTROENHANCE_FUZZ_EXAMPLES", 60)), deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 12), st.integers(1, 12)),
              elements=st.one_of(st.just(np.nan), st.floats(90, 110, width=32), st.floats(1e5, 1e9, width=32))),
       st.integers(1, 13))
def test_isolated_pixels_read_in_strips_are_those_of_the_whole_frame(data, step):
    """`noise.isolated_pixels` reads the frame in strips of ``step`` rows, each with a row of its neighbours: it must
    find what judging every pixel against its 8 neighbours in the whole frame at once finds (neighbours with no data
    are no light), in row-major order, and `mask_isolated_pixels` must read exactly those as no data."""
    from scipy.ndimage import maximum_filter

    from astroenhance.io.noise import ISOLATED, isolated_pixels, mask_isolated_pixels

    sky, sigma = 100.0, 5.0
    ys, xs, values = isolated_pixels(_Rows(data), sky, sigma, step=step)
    finite = np.isfinite(data)
    d = data.astype(np.float64)
    near = maximum_filter(np.where(finite, d, -np.inf), footprint=np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], bool),
                          mode="constant", cval=-np.inf)
    want = finite & (d - sky > ISOLATED * np.maximum(near - sky, sigma))
    wy, wx = np.nonzero(want)
    assert ys.tolist() == wy.tolist() and xs.tolist() == wx.tolist()
    assert values.tolist() == d[want].tolist()
    frame = _Rows(data.copy())
    assert mask_isolated_pixels(frame, sky, sigma) == want.sum() == frame.hot_pixels
    assert mask_isolated_pixels(frame, sky, sigma) == 0 and frame.hot_pixels == want.sum()  # searched once
    for y0 in range(0, data.shape[0], step):  # read as the engine reads: in strips
        got = frame.read_rows(y0, y0 + step)
        np.testing.assert_array_equal(np.isnan(got), ~finite[y0:y0 + step] | want[y0:y0 + step])
    np.testing.assert_array_equal(frame.data, data)  # the frame's own array is never changed

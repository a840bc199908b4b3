"""Physical promises of the pipeline: luminance kept, flux consistent, NaN carried, devices refused clearly."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from astroenhance.config import EnhanceConfig
from astroenhance.errors import DeviceError
from astroenhance.imaging.color import LUMA_WEIGHTS
from astroenhance.pipeline import Enhancer
from astroenhance.pipeline.device import resolve_device
from astroenhance.pipeline.finish import project_block_means


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.sampled_from([2, 4]), st.data())
def test_block_projection_is_exact_and_in_range(h, w, s, data):
    target = data.draw(arrays(np.float64, (h, w), elements=st.floats(0, 1)))
    out = data.draw(arrays(np.float32, (h * s, w * s), elements=st.floats(-2, 3, width=32)))
    proj = project_block_means(out, target, s)
    assert proj.min() >= 0 and proj.max() <= 1
    means = proj.reshape(h, s, w, s).mean(axis=(1, 3), dtype=np.float64)
    np.testing.assert_allclose(means, target, atol=2e-7)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.sampled_from([2, 4]), st.data())
def test_block_projection_is_the_closest_block_in_range(h, w, s, data):
    """Each block is ``clip(out + tau, 0, 1)`` for one ``tau`` (the least-squares block in [0, 1] with that mean): the
    same shift on every pixel strictly inside (0, 1), pixels at 0 or 1 only where that shift would take them beyond."""
    target = data.draw(arrays(np.float64, (h, w), elements=st.floats(0, 1)))
    out = data.draw(arrays(np.float32, (h * s, w * s), elements=st.floats(-2, 3, width=32)))
    proj = project_block_means(out, target, s).astype(np.float64)
    for i in range(h):
        for j in range(w):
            p, o = proj[i * s:(i + 1) * s, j * s:(j + 1) * s].ravel(), out[i * s:(i + 1) * s, j * s:(j + 1) * s].ravel()
            inside = (p > 1e-6) & (p < 1 - 1e-6)
            if inside.any():
                tau = float(np.median((p - o)[inside]))
                np.testing.assert_allclose(p[inside] - o[inside], tau, atol=1e-5)
                np.testing.assert_allclose(p, np.clip(o + tau, 0, 1), atol=1e-5)


def test_block_projection_leaves_consistent_blocks_alone():
    target = np.array([[0.25]])
    out = np.full((4, 4), 0.25, np.float32)
    np.testing.assert_array_equal(project_block_means(out, target, 4), out)


def test_flux_consistency_on_real_frame(enhancer, hrc_crop):
    """Exact (--flux-tolerance 0): every 4x4 block mean of the luminance, in the input's units, is the input pixel.
    The FITS default (the hst network; the display within 4 sigma): within four times its noise; and within three
    when asked."""
    from dataclasses import replace

    from .conftest import engine_sigma, keeps_display_promise

    data, wcs = hrc_crop
    for tolerance in (0.0, None, 3.0):
        # an unresolved config, as a user writes it: --flux-tolerance 0 alone makes the display exact too
        res = enhancer.enhance_array(data, wcs, config=replace(enhancer._given, flux_tolerance=tolerance,
                                                               display_tolerance=tolerance and 3.0))
        lum = res.rgb @ LUMA_WEIGHTS.astype(np.float32)
        blocks = lum.reshape(data.shape[0], 4, data.shape[1], 4).mean(axis=(1, 3), dtype=np.float64)
        norm = res.normalizer
        expected = norm(data).astype(np.float64)
        ok = np.isfinite(expected)
        if tolerance == 0:  # in the input's units, exactly (float32 rounding), as FLUX
            assert ok.mean() > 0.9 and np.all(keeps_display_promise(norm, lum, data, 0.0, 0.0)[ok])
        else:
            t = 4.0 if tolerance is None else 3.0
            assert res.header["AE_FLUXT"] == (tolerance or 2.0) and res.header["AE_DISPT"] == t and norm.sky_noise > 0
            s = engine_sigma(enhancer, data, wcs)  # the input's noise, per pixel where the depth varies
            assert ok.mean() > 0.9 and np.all(keeps_display_promise(norm, lum, data, s, t)[ok])
            assert np.abs(blocks - expected).max() > 1e-3  # not exact: the network's denoising is kept


def test_luminance_equals_normalized_input_without_upscaling(hrc_crop):
    data, wcs = hrc_crop
    res = Enhancer(EnhanceConfig(device="cpu", upscale=False)).enhance_array(data, wcs)
    q = np.round(res.rgb * 255) / 255  # as an 8-bit PNG would hold it
    lum = q @ LUMA_WEIGHTS
    assert np.abs(lum - res.normalizer(data)).max() <= 1 / 255
    # and the colorizer did add colour (this is not a grey image)
    assert np.abs(res.rgb[..., 0] - res.rgb[..., 2]).max() > 0.01


def test_nan_mask_is_carried(enhancer):
    """Without hole filling (--fill-holes 0) every no-data pixel is NaN in every output plane, and nothing else."""
    data = np.random.default_rng(0).normal(100, 5, (40, 30)).astype(np.float32)
    data[10:12, 5:9] = np.nan
    data[20, 20] = np.inf
    res = enhancer.enhance_array(data, config=EnhanceConfig(device="cpu", fill_holes=0))
    assert np.isnan(res.rgb[40:48, 20:36]).all() and np.isnan(res.rgb[80:84, 80:84]).all()
    assert np.isnan(res.rgb).sum() == (8 + 1) * 16 * 3  # exactly the masked blocks, nothing else
    assert (np.isnan(res.flux) == np.isnan(res.luminance)).all()


def test_values_beyond_float32s_range_are_no_data_and_said_so(enhancer, tmp_path):
    """float64 values beyond float32's range (sentinels such as 1e300) became no data without a word; now a note
    says so, from an array and from a FITS file, and a frame without them gets none."""
    from astroenhance.io.readers import BEYOND_FLOAT32

    data = np.random.default_rng(0).normal(100, 5, (40, 30))
    data[10, 5:9], data[30, 3] = 1e300, -1e200
    res = enhancer.enhance_array(data, config=EnhanceConfig(device="cpu", fill_holes=0))
    assert np.isnan(res.rgb[40:44, 20:36]).all() and np.isnan(res.flux[120:124, 12:16]).all()
    assert np.isnan(res.flux).sum() == 5 * 16 and BEYOND_FLOAT32 in res.notes
    assert BEYOND_FLOAT32 not in enhancer.enhance_array(data.clip(0, 200)).notes
    fits.PrimaryHDU(data).writeto(tmp_path / "f64.fits")
    result = enhancer.enhance_file(tmp_path / "f64.fits", tmp_path / "out")[0]
    assert BEYOND_FLOAT32 in result.notes


def test_small_holes_shown_filled_but_never_measured(enhancer, monkeypatch):
    """By default a small hole (runs <= 8 pixels with data at both ends) is interpolated for the networks and the
    display planes — exactly as if the frame had held the interpolation there, also when the frame is worked in
    several bands and strips — and kept as no data in FLUX and FLUXERR; a large region at the frame's corner stays
    no data everywhere."""
    import torch

    from astroenhance.io.readers import from_array
    from astroenhance.pipeline import engine
    from astroenhance.pipeline.holes import fill_holes
    from astroenhance.pipeline.output import ArraySink

    monkeypatch.setattr(engine, "BAND_WIDTH", 24)  # three column bands of tiles of 24 (overlap 8), strips likewise
    y, x = np.mgrid[0:48, 0:56]
    data = (100 + 0.5 * x + 0.25 * y + np.random.default_rng(1).normal(0, 1, (48, 56))).astype(np.float32)
    holes = np.zeros(data.shape, bool)
    holes[10:12, 5:9] = holes[20, 20] = holes[30:33, 25] = holes[15:17, 14:18] = holes[0, 40:43] = True
    holes[20:24, 31] = True  # across the strips' and bands' seams
    big = np.zeros(data.shape, bool)
    big[36:48, 0:12] = True  # 12 rows and columns: stays no data
    data[holes | big] = np.nan
    filled = fill_holes(torch.from_numpy(data), 8)[0].numpy()
    assert np.isfinite(filled[holes]).all() and np.isnan(filled[big]).all()

    def run(frame, fill, norm=None):
        cfg = engine._network_defaults(EnhanceConfig(device="cpu", tile=24, overlap=8, fill_holes=fill).for_input(True),
                                       enhancer.sr_space)
        src = from_array(frame, None, origin="lower")
        with ArraySink((frame.shape[0] * 4, frame.shape[1] * 4)) as sink:
            norm = enhancer.process(src, cfg, sink.put, norm=norm)
        return sink, norm, src.holes_filled

    shown, norm, count = run(data, 8)
    assert count == holes.sum()  # each shown hole counted once, over bands and strips (for run's note)
    want, _, none = run(filled, 0, norm)  # the same display mapping (fitted on the measured pixels only)
    assert none == 0
    np.testing.assert_array_equal(shown.rgb, want.rgb)
    np.testing.assert_array_equal(shown.lum, want.lum)
    up = lambda m: np.repeat(np.repeat(m, 4, 0), 4, 1)  # noqa: E731
    assert (np.isnan(shown.lum) == up(big)).all() and (np.isnan(shown.rgb).any(-1) == up(big)).all()
    # FLUX and FLUXERR: no data at every hole; elsewhere each block keeps its promise (within 2 sigma of its pixel)
    nodata = holes | big
    assert (np.isnan(shown.flux) == up(nodata)).all() and (np.isnan(shown.flux_err) == up(nodata)).all()
    block = lambda a: a.reshape(48, 4, 56, 4)  # noqa: E731
    sigma = np.sqrt((block(shown.flux_err.astype(np.float64)) ** 2).sum((1, 3)))  # each input pixel's sigma
    np.testing.assert_allclose(sigma[~nodata], np.sqrt((block(want.flux_err.astype(np.float64)) ** 2).sum((1, 3)))[~nodata],
                               rtol=1e-5)
    assert (np.abs(block(shown.flux).sum((1, 3)) - data)[~nodata] <= 2 * sigma[~nodata] * (1 + 1e-3)).all()
    # the default run does the same
    res = enhancer.enhance_array(data)
    assert (np.isnan(res.flux) == up(holes | big)).all() and (np.isnan(res.luminance) == up(big)).all()


def test_array_api_reads_masks_headers_and_refuses_what_is_not_an_image(hrc_crop):
    """A masked array's masked pixels are no data (their values were used); a FITS header serves as the WCS; complex
    values and a WCS of the wrong type are one clear error (the imaginary part was dropped; an AttributeError)."""
    from astroenhance.errors import InputError

    data, wcs = hrc_crop
    data = data[:48, :40]
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False))
    mask = np.zeros(data.shape, bool)
    mask[10:14, 5:9] = True
    res = enh.enhance_array(np.ma.array(data, mask=mask), wcs)
    up = np.kron(mask, np.ones((4, 4), bool))
    assert np.isnan(res.flux[up]).all() and np.isfinite(res.flux[~up]).all()
    header = wcs.to_header(relax=True)
    via_header = enh.enhance_array(data, header).wcs
    yy, xx = np.mgrid[0:192:37, 0:160:31]
    np.testing.assert_allclose(via_header.pixel_to_world_values(xx, yy),
                               enh.enhance_array(data, WCS(header)).wcs.pixel_to_world_values(xx, yy), atol=1e-12)
    with pytest.raises(InputError, match="real numbers"):
        enh.enhance_array(data.astype(complex), wcs)
    with pytest.raises(InputError, match="wcs must be"):
        enh.enhance_array(data, "EPOCH J2000")


def test_the_python_api_reads_a_frame_as_run_does(tmp_path):
    """`enhance_frame` of an ACS flt equals `run`'s output of it (noise from ERR, DQ flags as no data); `read_frame`'s
    array given its header and ERR to `enhance_array` too.  The array alone estimated the noise and lost BUNIT: a
    notebook's result differed from `run`'s (display planes by up to 0.10)."""
    from astropy.io import fits

    from .conftest import FIXTURES

    flt = FIXTURES / "j8bt06nyq_flt_crop.fits"
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, formats=("fits",)))
    [done] = enh.enhance_file(flt, tmp_path)
    with fits.open(done.outputs[0]) as hdul:
        red, flux, err, head = hdul["RED"].data, hdul["FLUX"].data, hdul["FLUXERR"].data, hdul[0].header
    res = enh.enhance_frame(flt)
    assert res.header["AE_SIGSR"] == "ERR" and res.header["AE_DQMSK"] == head["AE_DQMSK"] > 0
    assert res.header["AE_SETSH"] == head["AE_SETSH"] != "" and res.header["AE_INSHA"] == head["AE_INSHA"]
    np.testing.assert_array_equal(res.flux, flux)
    np.testing.assert_array_equal(res.flux_err, err)
    with fits.open(done.outputs[0]) as hdul:
        assert res.flux_header["BUNIT"] == hdul["FLUX"].header["BUNIT"] == "ELECTRONS"
    assert np.nanmax(np.abs(res.rgb[..., 0] - red)) <= 1 / 65534  # the int16 planes' step
    assert any("no-data pixels in small holes" in note for note in res.notes)  # as run says it
    from astroenhance import read_frame

    data, wcs, header = read_frame(flt)
    # (a single exposure — its FILENAME says j8bt06nyq_flt.fits — whose DQ flags no hits: searched, as run does)
    assert np.isnan(data).sum() > np.isnan(read_frame(flt, cosmic_rays=False)[0]).sum() and head["AE_NCR"] > 0
    given = enh.enhance_array(data, wcs, header=header, sigma=fits.getdata(flt, "ERR"))
    np.testing.assert_array_equal(given.flux, flux)
    assert given.header["AE_SIGSR"] == "sigma array"


def test_the_array_api_takes_units_and_noise(hrc_crop):
    """BUNIT from ``header`` decides whether FLUX's 16 pixels sum or average to an input pixel; ``sigma`` is the
    frame's noise, and a pixel it gives no sigma is no data; a sigma of another shape is one clear error."""
    from astropy.io import fits

    from astroenhance.errors import InputError

    data, wcs = hrc_crop
    data = np.asarray(data[:40, :36], np.float64)
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, flux_tolerance=0.0))
    sb = enh.enhance_array(data, wcs, header=fits.Header({"BUNIT": "MJy sr-1"}))
    assert sb.header["AE_FLXPL"] == "mean" and sb.flux_header["BUNIT"] == "MJy sr-1"
    np.testing.assert_allclose(sb.flux.reshape(40, 4, 36, 4).mean(axis=(1, 3)), data, rtol=1e-4, atol=1e-4)
    sigma = np.full(data.shape, 0.02)
    sigma[5, 7] = 0
    res = enh.enhance_array(data, wcs, sigma=sigma)
    assert res.header["AE_SKYSG"] == pytest.approx(0.02) and res.header["AE_FLXPL"] == "sum"
    assert np.isnan(res.flux[20:24, 28:32]).all() and np.isfinite(res.flux).sum() == res.flux.size - 16
    with pytest.raises(InputError, match="sigma must be"):
        enh.enhance_array(data, wcs, sigma=sigma[:-1])
    one = enh.enhance_array(data, wcs, sigma=0.02)  # a number: one sigma for every pixel
    assert one.header["AE_SKYSG"] == pytest.approx(0.02) and np.isfinite(one.flux).all()
    np.testing.assert_allclose(one.flux_err, enh.enhance_array(data, wcs, sigma=np.full(data.shape, 0.02)).flux_err)


def test_a_frame_with_data_only_between_the_sampled_rows_is_not_all_nan_and_an_empty_picture_is():
    """The display mapping is fitted on strided rows: data in one row between them was "all NaN/inf" (minmax,
    percentile, noise intervals); and an all-NaN picture (interval range) came out as an all-NaN image."""
    from astroenhance.errors import InputError

    strip = np.full((3000, 1000), np.nan, np.float32)
    strip[1001] = np.linspace(0, 1, 1000)  # rows 0, 3, 6... are sampled
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False, interval="minmax"))
    res = enh.enhance_array(strip, is_fits_like=False)
    assert np.nanmin(res.rgb) == 0.0 and np.nanmax(res.rgb) == 1.0
    with pytest.raises(InputError, match="no finite pixels"):
        Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False)).enhance_array(
            np.full((16, 16), np.nan, np.float32), is_fits_like=False)


def test_no_colorize_keeps_grey_grey(hrc_crop):
    data, wcs = hrc_crop
    res = Enhancer(EnhanceConfig(device="cpu", colorize=False)).enhance_array(data, wcs)
    np.testing.assert_allclose(res.rgb[..., 0], res.rgb[..., 2], atol=1e-6)


def test_no_colorize_keeps_colour_of_colour_input():
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 200  # a red frame stays red
    rgb[..., 2] = 40
    res = Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False)).enhance_array(rgb, is_fits_like=False)
    np.testing.assert_allclose(res.rgb[..., 0], 200 / 255, atol=1e-5)
    np.testing.assert_allclose(res.rgb[..., 2], 40 / 255, atol=1e-5)


@pytest.mark.parametrize("flux", [True, False])
def test_flux_conserving_keeps_colour_block_means_of_colour_input(flux):
    """With --flux-conserving a colour input's 4x4 output blocks average to its colour (RGB), not only to its
    luminance; without it, chroma is only interpolated and the block means drift."""
    from PIL import Image

    from .conftest import DATA

    rgb = np.asarray(Image.open(DATA / "color" / "heic0515a.png").convert("RGB"))[40:88, 30:70]
    res = Enhancer(EnhanceConfig(device="cpu", colorize=False, flux_conserving=flux)).enhance_array(rgb, is_fits_like=False)
    blocks = res.rgb.reshape(48, 4, 40, 4, 3).mean(axis=(1, 3), dtype=np.float64)
    err = np.abs(blocks - rgb / 255.0).max(axis=-1)
    if flux:  # exact except where the gamut made a pixel's colour give way
        assert np.mean(err <= 1e-5) >= 0.95 and err.max() < 0.02
    else:
        assert err.max() > 1e-3


def test_device_errors():
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA"):
            resolve_device("cuda", "fp32")
    with pytest.raises(DeviceError, match="fp16 is not supported on CPU"):
        resolve_device("cpu", "fp16")


@pytest.mark.filterwarnings("ignore:CUDA is not available")  # autocast on a CPU-only torch
def test_fp32_on_a_gpu_turns_tf32_off_for_the_networks():
    """cuDNN runs float32 convolutions in TF32 by default: 1e-4 off the CPU on an H200; fp32 must mean fp32 there
    (the flag is process-wide, so it is set around the networks' calls and put back)."""
    import torch

    from astroenhance.pipeline.device import Accelerator

    seen = []
    net = torch.nn.Identity()
    net.register_forward_hook(lambda *a: seen.append(torch.backends.cudnn.allow_tf32))
    before = torch.backends.cudnn.allow_tf32
    for precision, expected in (("fp32", False), ("bf16", before)):
        acc = Accelerator("cpu", precision)
        acc.device = torch.device("cuda")  # the flag's logic only: no tensor goes to a GPU
        acc.tensor = lambda x: x
        acc.run_tensor(net, torch.zeros((1, 1, 2, 2)))
        assert seen.pop() is expected
        assert torch.backends.cudnn.allow_tf32 is before


def test_bf16_close_to_fp32(hrc_crop):
    data, wcs = hrc_crop
    a = Enhancer(EnhanceConfig(device="cpu")).enhance_array(data, wcs).rgb
    b = Enhancer(EnhanceConfig(device="cpu", precision="bf16")).enhance_array(data, wcs).rgb
    assert np.abs(a - b).mean() < 0.01


def test_sr_detail_fraction_strips_match_whole_frame_and_header(monkeypatch, hrc_crop):
    """The recorded share of output pixels with network detail: computed in strips (3-pixel halo) it equals the
    noise gate on the whole frame at once; 1 without the gate, 0 without SR; the header and provenance carry it."""
    import torch

    from astroenhance.io.readers import from_array
    from astroenhance.pipeline import engine as pipeline
    from astroenhance.pipeline.finish import gate_map
    from astroenhance.pipeline.holes import fill_holes

    data, wcs = hrc_crop
    data = data.copy()
    data[5:9, 10:30] = np.nan  # a small hole: shown filled, so counted as the filled frame's pixels
    data[40:60, 20:40] = np.nan  # no-data pixels are not counted
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, noise_gate=True))
    src = from_array(data, wcs, origin="lower", dtype_range=None)
    cfg = enh.config.for_input(True)
    norm = enh.fit_normalizer(src, cfg)
    shown = fill_holes(torch.from_numpy(data), cfg.fill_holes)[0].numpy()
    assert np.isfinite(shown[5:9, 10:30]).all() and np.isnan(shown[45:55, 25:35]).all()
    lum = np.nan_to_num(norm(shown), nan=0.0).astype(np.float32)
    g = gate_map(torch.from_numpy(lum)[None, None], norm.noise)[0, 0].numpy()
    valid = ~np.isnan(shown)
    whole = (g > 0)[valid].mean()
    assert 0 < whole < 1  # a frame where the gate is partly open: the test can tell strips from the whole
    for strip in (7, 10, 1000):
        monkeypatch.setattr(pipeline, "GATE_STRIP", strip)
        assert enh.sr_detail_fraction(src, cfg, norm) == pytest.approx(whole, abs=1e-12)
    for other, share in ((dict(noise_gate=False), 1.0), (dict(upscale=False), 0.0)):
        e = Enhancer(EnhanceConfig(device="cpu", colorize=False, **other))
        assert e.sr_detail_fraction(src, e.config.for_input(True), norm) == share
    res = enh.enhance_array(data, wcs)
    assert res.header["AE_SRDET"] == pytest.approx(round(whole, 4))


def test_default_fits_display_reaches_the_brightest_pixel_even_off_the_sampled_rows():
    """noise:3 (the FITS default) takes its top from every row, not the strided sample the rest is fitted on."""
    rng = np.random.default_rng(5)
    data = (100 + 5 * rng.normal(size=(1100, 1000))).astype(np.float32)  # > 1 MP: the sample takes every 2nd row
    data[500:503, 332:335] += 450  # a star's core on an odd row, its light in the sampled rows beside it too (alone,
    data[501, 333] = 9e4  # a pixel this far above its neighbours would be a hot pixel: not the white point)
    res = Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False)).enhance_array(data)
    assert res.normalizer.interval == "noise:3" and res.normalizer.vmax == 9e4
    assert res.normalizer.sky_noise == pytest.approx(5, rel=0.05)
    assert res.luminance[501, 333] == pytest.approx(1.0, abs=1e-5) and np.sort(res.luminance.ravel())[-2] < 0.5


def test_colour_strength_scales_the_predicted_chroma_and_is_recorded(hrc_crop):
    """The shipped colorizer's colour is shown at its calibrated strength (manifest chroma_scale); --color-strength
    overrides it; luminance never changes."""
    from astroenhance.imaging.color import rgb_to_ycbcr
    from astroenhance.models.weights import default_weights_dir, find_weights

    data, wcs = hrc_crop
    calibrated = find_weights(default_weights_dir(), "colorize", "default").extra["chroma_scale"]
    assert 0 < calibrated < 1
    out = {s: Enhancer(EnhanceConfig(device="cpu", upscale=False, color_strength=s)).enhance_array(data, wcs)
           for s in (None, 1.0, 0.0)}
    (y0, c_default), (y1, c_full), (y2, c_none) = (rgb_to_ycbcr(out[s].rgb.astype(np.float64)) for s in out)
    np.testing.assert_allclose(y0, y1, atol=1e-5)
    np.testing.assert_allclose(y0, y2, atol=1e-5)
    assert np.abs(c_none).max() < 1e-6 and np.abs(c_full).max() > 0.01
    rgb_full = out[1.0].rgb
    inside = ((rgb_full > 1e-3) & (rgb_full < 1 - 1e-3)).all(axis=-1)  # in the gamut at full strength: no fitting
    assert inside.mean() > 0.5
    # the strength scales the chroma; only its magenta-green part is held to keep the BT.601 luma (JPEG's, Pillow's
    # grey) within 0.4/255 of the luminance (at full strength it moved by up to 2.8/255 here)
    from astroenhance.imaging.color import BT601_SHIFT, BT601_WEIGHTS

    along = np.array(BT601_SHIFT) / np.hypot(*BT601_SHIFT)
    across = np.array([-along[1], along[0]])
    np.testing.assert_allclose(c_default[inside] @ across, calibrated * c_full[inside] @ across, atol=1e-5)
    free = np.abs(c_full[inside] @ np.array(BT601_SHIFT)) < 0.39 / 255  # (not held at full strength)
    np.testing.assert_allclose(c_default[inside][free] @ along, calibrated * c_full[inside][free] @ along, atol=1e-5)
    for s in (None, 1.0):
        rgb = out[s].rgb.astype(np.float64)
        assert np.nanmax(np.abs(rgb @ BT601_WEIGHTS - rgb @ LUMA_WEIGHTS)) <= 0.4 / 255 + 1e-6
    assert out[None].header["AE_COSTR"] == calibrated and out[1.0].header["AE_COSTR"] == 1.0


def test_each_kind_of_input_gets_its_own_network(hrc_crop):
    """No --sr-model: a FITS frame gets the telescope-trained network (ungated, block means within 2 / 4 sigma), a
    display image the picture-trained one (gated, exact); one enhancer serves both.  --sr-model fixes it for all."""
    data, wcs = hrc_crop
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False))
    picture = np.clip(np.nan_to_num(data) / np.nanpercentile(data, 99), 0, 1).astype(np.float32)
    heads = {kind: enh.enhance_array(arr, wcs, is_fits_like=kind != "image").header
             for kind, arr in (("fits", data), ("image", picture), ("fits again", data))}
    got = {k: (h["AE_SRMOD"], h["AE_SRID"], h["AE_GATE"], h["AE_FLUXT"], h["AE_DISPT"]) for k, h in heads.items()}
    assert got["fits"] == got["fits again"] == ("hst", "sr-hst-8x32", False, 2.0, 4.0)
    assert got["image"] == ("psnr", "sr-psnr-8x32", True, 0.0, 0.0)
    assert (enh.settings(True).sr_model, enh.settings(False).sr_model) == ("hst", "psnr")
    assert (enh.settings(True).noise_gate, enh.settings(False).noise_gate) == (False, True)
    fixed = Enhancer(EnhanceConfig(device="cpu", colorize=False, sr_model="psnr"))
    assert fixed.enhance_array(data, wcs).header["AE_SRID"] == "sr-psnr-8x32"
    assert fixed.for_kind(True) is fixed is fixed.for_kind(False)


def test_stage_timing_books_every_stage_and_changes_nothing(hrc_crop):
    """`Enhancer.time_stages` (bench_gpu.py's table): each stage of a grey FITS frame through colour, SR and the FLUX
    plane gets time, the stages add up to no more than the call, and timing leaves the output as it was."""
    import time

    data, wcs = hrc_crop
    enh = Enhancer(EnhanceConfig(device="cpu", tile=48, overlap=8))
    plain = enh.enhance_array(data, wcs)
    stages = enh.time_stages()
    t = time.perf_counter()
    timed = enh.enhance_array(data, wcs)
    total = time.perf_counter() - t
    assert set(stages.seconds) == set(stages.STAGES)
    assert all(v > 0 for v in stages.seconds.values()), stages.seconds
    assert sum(stages.seconds.values()) <= total and stages.current is None
    np.testing.assert_array_equal(timed.rgb, plain.rgb)
    np.testing.assert_array_equal(timed.flux, plain.flux)


def test_enhance_array_writes_its_display_planes_into_an_array_given(tmp_path):
    """``out=``: the display planes are written into the caller's array (a memory-mapped file: `mosaic --enhance`
    keeps each frame there, not in memory), the same values as made in memory; an array of another shape or type
    is refused before any work."""
    from astroenhance import EnhanceConfig, Enhancer

    rng = np.random.default_rng(3)
    data = rng.normal(100.0, 5.0, (40, 56)).astype(np.float32)
    data[18:22, 20:24] += 400.0
    enhancer = Enhancer(EnhanceConfig(device="cpu"))
    alone = enhancer.enhance_array(data)
    out = np.lib.format.open_memmap(tmp_path / "rgb.npy", "w+", np.float32, (160, 224, 3))
    given = enhancer.enhance_array(data, out=out)
    assert given.rgb is out
    np.testing.assert_array_equal(out, alone.rgb)
    np.testing.assert_array_equal(given.flux, alone.flux)
    for bad in (np.zeros((160, 224, 3)), np.zeros((40, 56, 3), np.float32)):
        with pytest.raises(ValueError, match="rgb must be float32 of shape"):
            enhancer.enhance_array(data, out=bad)
    # ``luminance=False`` (a colour mosaic's frames): the luminance plane is not kept — 0.5 GB for an ACS/WFC chip at
    # 4x — and nothing else changes
    from astroenhance.pipeline.output import ArraySink

    bare = enhancer.enhance_array(data, out=out, luminance=False)
    assert bare.luminance is None and bare.rgb is out
    np.testing.assert_array_equal(out, alone.rgb)
    np.testing.assert_array_equal(bare.flux, alone.flux)
    with ArraySink((4, 6), luminance=False) as sink:
        sink.put(0, 4, 0, np.ones((4, 6, 3), np.float32), np.ones((4, 6), np.float32), None, None)
    assert sink.lum is None and sink.rgb.sum() == 72


def test_a_ccddata_is_enhanced_as_the_file_it_would_be_and_flux_comes_back_as_one(enhancer, hrc_crop):
    """An astropy CCDData (ccdproc's container) through `enhance_array`: its mask is no data, its uncertainty (as a
    standard deviation, a variance or an inverse variance, in its own unit) the per-pixel sigma, its WCS, unit and
    meta the header's — the same FLUX as the array with NaN, ``sigma`` and the header; `to_ccddata` gives FLUX back
    with its unit, FLUXERR as the uncertainty, no data masked and the 4x WCS.  (np.asarray of a CCDData dropped all
    but its values.)"""
    import astropy.units as u
    from astropy.nddata import CCDData, InverseVariance, StdDevUncertainty, UnknownUncertainty, VarianceUncertainty

    from astroenhance.errors import InputError

    data, wcs = hrc_crop
    data = data / 100.0  # electrons per second, roughly
    mask = np.zeros(data.shape, bool)
    mask[30:33, 40:42] = True
    sigma = np.sqrt(np.abs(data) / 500 + 0.02**2).astype(np.float32)
    meta = {"TELESCOP": "HST", "FILTER": "F606W", "LTV1": -200.0, "not a card key": 1, "HISTORY": None}
    header = fits.Header({"TELESCOP": "HST", "FILTER": "F606W", "LTV1": -200.0, "BUNIT": "electron s-1"})
    plain = enhancer.enhance_array(np.where(mask, np.nan, data), wcs, header=header, sigma=sigma)
    unit = u.electron / u.s
    for uncertainty in (StdDevUncertainty(sigma), VarianceUncertainty(sigma.astype(np.float64) ** 2),
                        InverseVariance(1 / sigma.astype(np.float64) ** 2),
                        StdDevUncertainty(sigma * 60, unit=u.electron / u.min)):
        ccd = CCDData(data, unit=unit, wcs=wcs, mask=mask, uncertainty=uncertainty, meta=meta)
        res = enhancer.enhance_array(ccd)
        np.testing.assert_allclose(res.flux, plain.flux, rtol=1e-5, atol=1e-6 * np.nanmax(plain.flux))
        assert np.isnan(res.flux[120:132, 160:168]).all() and np.isfinite(res.flux[:100]).all()
        assert u.Unit(res.flux_header["BUNIT"]) == unit and res.flux_header["AE_FLXMD"] == "sum" and res.header["TELESCOP"] == "HST"
        assert res.header["LTV1"] == 4 * -200.0 - 1.5 and res.header["FILTER"] == "F606W"
    back = res.to_ccddata()
    assert back.unit == unit and back.shape == (4 * data.shape[0], 4 * data.shape[1])
    np.testing.assert_array_equal(back.mask, ~np.isfinite(res.flux))
    np.testing.assert_array_equal(back.uncertainty.array, res.flux_err)
    assert back.wcs.pixel_to_world(7, 9).separation(res.wcs.pixel_to_world(7, 9)).arcsec < 1e-9
    with pytest.raises(InputError, match="UnknownUncertainty"):
        enhancer.enhance_array(CCDData(data, unit=unit, uncertainty=UnknownUncertainty(sigma)))
    with pytest.raises(Exception, match="no FLUX plane"):
        enhancer.enhance_array(np.zeros((8, 8, 3), np.uint8), is_fits_like=False).to_ccddata()


def test_an_hdulist_in_memory_is_enhanced_as_the_file_it_would_write(tmp_path):
    """`enhance_frame` and `read_frame` of an astropy HDUList (``fits.open``, changed in memory) give what they give
    for the file that HDUList would write — its ERR, DQ, scaling and FILENAME (a single exposure: searched for
    cosmic rays) read as a file's — and leave its values as they were; it is named "<file> (in memory)", with no
    input checksum. Only a path could be given (an HDUList was refused, and writing one out was the user's work)."""
    from astroenhance import read_frame
    from astroenhance.errors import InputError

    from .conftest import HRC

    frame = tmp_path / "small_flt.fits"
    with fits.open(HRC) as h:
        cut = (slice(100, 164), slice(90, 150))
        sci = fits.ImageHDU(h["SCI"].data[cut], h["SCI"].header, name="SCI")
        sci.scale("int16", bscale=0.25, bzero=1000.0)  # stored scaled: astropy hands the data over scaled
        fits.HDUList([fits.PrimaryHDU(header=h[0].header), sci,
                      fits.ImageHDU(h["ERR"].data[cut], h["ERR"].header, name="ERR"),
                      fits.ImageHDU(h["DQ"].data[cut], h["DQ"].header, name="DQ")]).writeto(frame)
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False))
    from_file = enh.enhance_frame(frame)
    with fits.open(frame) as hdul:
        same = enh.enhance_frame(hdul)
        np.testing.assert_array_equal(same.flux, from_file.flux)
        np.testing.assert_array_equal(same.rgb, from_file.rgb)
        assert same.header["AE_NCR"] == from_file.header["AE_NCR"] > 0  # searched for hits, as the file is
        assert same.header["AE_INPUT"] == "small_flt.fits (in memory)" and same.header["AE_INSHA"] == ""
        assert from_file.header["AE_INSHA"] != ""
        for name in ("SCI", "ERR", "DQ"):  # its values as they were (astropy has loaded them, as `.data` would)
            np.testing.assert_array_equal(hdul[name].data, fits.getdata(frame, name))
        hdul["SCI"].data -= 2.0  # a sky subtracted in a notebook
        hdul["DQ"].data[30:32, 40:44] |= 4  # pixels judged bad
        changed = enh.enhance_frame(hdul)
        hdul.writeto(tmp_path / "changed_flt.fits")
        np.testing.assert_array_equal(read_frame(hdul)[0], read_frame(tmp_path / "changed_flt.fits")[0])
    np.testing.assert_array_equal(changed.flux, enh.enhance_frame(tmp_path / "changed_flt.fits").flux)
    assert np.isnan(changed.flux[120:128, 160:176]).all() and not np.isnan(from_file.flux[120:128, 160:176]).all()
    built = enh.enhance_frame(fits.HDUList([fits.PrimaryHDU(np.ones((8, 8), np.float32))]))
    assert built.header["AE_INPUT"] == "HDUList (in memory)" and built.flux.shape == (32, 32)
    with fits.open(frame) as hdul:  # one HDU: a file of it alone (its ERR is not beside it)
        alone = enh.enhance_frame(hdul["SCI"])
        header = hdul["SCI"].header
        np.testing.assert_array_equal(alone.flux, enh.enhance_array(hdul["SCI"].data, WCS(header), header=header).flux)
        assert alone.header["AE_SIGSR"] != from_file.header["AE_SIGSR"] == "ERR"
        for given in (hdul, hdul["SCI"]):  # (np.asarray of either was a frame of a puzzling shape)
            with pytest.raises(InputError, match=f"not an astropy {type(given).__name__}: enhance_frame takes it"):
                enh.enhance_array(given)


def test_read_frame_keeps_the_frames_place_on_its_detector_for_enhance_array(tmp_path, hrc_crop):
    """`read_frame`'s header carries the frame's LTV/LTM (a binned subarray's), so `enhance_array` of it gives the
    output the physical coordinates `enhance_frame` (and `run`) give; they were lost on that path."""
    from astroenhance import read_frame

    data, wcs = hrc_crop
    header = wcs.to_header()
    header.update({"LTV1": -50.0, "LTV2": 12.5, "LTM1_1": 0.5, "LTM2_2": 0.5, "BUNIT": "COUNTS"})
    frame = tmp_path / "binned_subarray.fits"
    fits.PrimaryHDU(data, header).writeto(frame)
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False))
    filed = enh.enhance_frame(frame).header
    array = enh.enhance_array(*read_frame(frame)[:2], header=read_frame(frame)[2]).header
    assert [array[k] for k in ("LTV1", "LTV2", "LTM1_1", "LTM2_2")] == [-201.5, 48.5, 2.0, 2.0]
    assert all(array[k] == filed[k] for k in ("LTV1", "LTV2", "LTM1_1", "LTM2_2"))


def _without_times(header: fits.Header) -> list:
    """A header's cards less those that say when it was written (and the checksum that covers them)."""
    return [(c.keyword, c.value) for c in header.cards if c.keyword not in ("AE_DATE", "DATE", "CHECKSUM")
            and not str(c.value).startswith("astroenhance utc")]


def test_a_result_saves_as_run_writes_its_outputs_and_shows_in_a_notebook(tmp_path):
    """`EnhancedArray.save` writes what `run` writes for the same frame — the FITS's every plane and header (but the
    time it was written), the PNG's pixels — by the name's suffix, atomically, never over the input or a file
    astroenhance did not write; `_repr_png_` (what Jupyter shows) is the PNG's picture, north up, no data
    transparent, shrunk by block means past 2048 pixels. A result could not be written but by the user's own code."""
    import io
    from dataclasses import replace

    from PIL import Image

    from astroenhance.errors import OutputError, SettingsError

    from .conftest import COLOR, FIXTURES

    frame = tmp_path / "dwarf.fits"
    with fits.open(FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz") as h:
        data = h[0].data.astype(np.float32)
        data[20:40, 150:170] = np.nan  # no data, more than --fill-holes bridges
        fits.writeto(frame, data, h[0].header)
    enh = Enhancer(EnhanceConfig(device="cpu"))
    result = enh.enhance_frame(frame)
    [ran] = enh.enhance_file(frame, tmp_path / "run")
    saved = [result.save(tmp_path / "api" / "x.fits"), result.save(tmp_path / "api" / "x.png")]
    assert saved == [tmp_path / "api" / "x.fits", tmp_path / "api" / "x.png"]
    assert sorted(p.name for p in (tmp_path / "api").iterdir()) == ["x.fits", "x.png"]  # made; no temporaries
    with fits.open(saved[0]) as a, fits.open(ran.outputs[0]) as b:
        assert [h.name for h in a] == [h.name for h in b] == ["PRIMARY", "RED", "GREEN", "BLUE", "FLUX", "FLUXERR"]
        for x, y in zip(a, b):
            assert _without_times(x.header) == _without_times(y.header)
            if x.data is not None:
                np.testing.assert_array_equal(x.data, y.data)
    picture = np.asarray(Image.open(saved[1]))
    np.testing.assert_array_equal(picture, np.asarray(Image.open(ran.outputs[1])))
    shown = np.asarray(Image.open(io.BytesIO(result._repr_png_())))
    np.testing.assert_array_equal(shown, picture)  # RGBA: the no-data block transparent
    assert shown.shape[-1] == 4 and (shown[..., 3] == 0).any() and (shown[..., 3] == 255).any()
    colour = COLOR / "heic0406a.png"  # a picture: rows top-down, shown as they are
    from_picture, [ran_picture] = enh.enhance_frame(colour), enh.enhance_file(colour, tmp_path / "run")
    expected = np.asarray(Image.open(ran_picture.outputs[0]))
    np.testing.assert_array_equal(np.asarray(Image.open(from_picture.save(tmp_path / "api" / "c.png"))), expected)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(from_picture._repr_png_()))), expected)
    big = replace(result, rgb=np.tile(result.rgb, (6, 4, 1)))  # 4800 x 3200
    assert Image.open(io.BytesIO(big._repr_png_())).size == (3200 // 3, 4800 // 3)  # 3x3 block means: <= 2048
    with pytest.raises(SettingsError, match="suffix"):
        result.save(tmp_path / "x.gif")
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"a picture of the user's")
    with pytest.raises(OutputError, match="not an astroenhance output"):
        result.save(mine)
    assert mine.read_bytes() == b"a picture of the user's"
    with pytest.raises(OutputError, match="would overwrite the input"):
        result.save(frame)

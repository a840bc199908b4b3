"""The FLUX extension: the enhanced luminance in the input's units, every input pixel's flux kept (issue 15, item 4)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from astroenhance import EnhanceConfig, Enhancer
from astroenhance.errors import SettingsError
from astroenhance.io.readers import open_frames
from astroenhance.pipeline.finish import (
    SMOOTH_PASSES,
    block_mean_shift,
    block_means,
    flux_error,
    flux_per_pixel,
    physical_flux,
    smooth_block_correction,
)

from .conftest import COLOR, FIXTURES

HRC = FIXTURES / "j8bt06nyq_flt_crop.fits"


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.floats(-50, 1e4)),
       st.integers(0, 2**31 - 1), st.booleans())
def test_every_input_pixel_keeps_its_flux(raw, seed, per_pixel):
    rng = np.random.default_rng(seed)
    lum = rng.uniform(0, 1, (raw.shape[0] * 4, raw.shape[1] * 4))
    raw = raw.copy()
    raw[rng.uniform(size=raw.shape) < 0.1] = np.nan  # no data
    out = physical_flux(lum, raw, lambda d: 300 * d - 20, 4, per_pixel=per_pixel).astype(np.float64)
    ok = np.isfinite(raw)
    assert (np.isnan(out) == np.repeat(np.repeat(~ok, 4, 0), 4, 1)).all()
    got = block_means(np.nan_to_num(out), 4) * (16 if per_pixel else 1)
    np.testing.assert_allclose(got[ok], raw[ok], rtol=1e-5, atol=1e-3)


def test_noise_consistent_mode_moves_blocks_only_beyond_the_tolerance(monkeypatch):
    """Each block on its own (no local mean of what FLUX lets go put back: `FLUX_LOWPASS` 0): blocks within the
    tolerance are untouched, the others brought to its edge."""
    import astroenhance.pipeline.finish as finish

    monkeypatch.setattr(finish, "FLUX_LOWPASS", 0.0)
    rng = np.random.default_rng(1)
    raw = rng.normal(100, 5, (6, 7))
    lum = rng.uniform(0.2, 0.8, (24, 28))
    inverse = lambda d: 200 * d  # noqa: E731
    out = physical_flux(lum, raw, inverse, 4, tolerance=2.0, sigma=5.0, per_pixel=False).astype(np.float64)
    before, after = block_means(inverse(lum), 4), block_means(out, 4)
    assert np.all(np.abs(after - raw) <= 2 * 5.0 + 1e-4)
    inside = np.abs(before - raw) <= 10.0
    np.testing.assert_allclose(after[inside], before[inside], atol=1e-4)  # already consistent: untouched


def test_units_decide_sum_or_mean():
    assert flux_per_pixel("ELECTRONS/S")[0] and flux_per_pixel("electron / s")[0] and flux_per_pixel("COUNTS")[0]
    assert not flux_per_pixel("MJy/sr")[0] and not flux_per_pixel("Jy/arcsec**2")[0]
    assert not flux_per_pixel("Jy/beam")[0] and not flux_per_pixel("mag/arcsec2")[0]
    # the FITS standard's exponent forms of the same units (a solid angle anywhere makes a surface brightness)
    for unit in ("MJy sr-1", "MJy.sr**-1", "Jy beam-1", "JY BEAM-1", "mJy arcsec-2", "W m-2 sr-1", "erg s-1 cm-2 sr-1",
                 "1e-20 erg/s/cm2/Angstrom/arcsec2", "MJy/steradian"):
        assert not flux_per_pixel(unit)[0], unit
    for unit in ("electrons s-1", "erg s-1 cm-2 Angstrom-1"):  # recognised as per pixel, not taken so by default
        assert flux_per_pixel(unit)[0] and "not recognised" not in flux_per_pixel(unit)[1], unit
    # an amount per pixel (a radio model's Jy/pixel, counts per pixel, SDSS nanomaggies): the 16 parts sum to it
    assert flux_per_pixel("JY/PIXEL")[0] and flux_per_pixel("counts/pix")[0] and flux_per_pixel("nanomaggy")[0]
    assert flux_per_pixel("")[0] and "no BUNIT" in flux_per_pixel("")[1]


@pytest.fixture(scope="module")
def hrc_outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("flux")
    paths = {}
    for enc in ("int16", "rice"):
        enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, formats=("fits",), fits_encoding=enc, tile=96,
                                     flux_tolerance=0.0))  # exact: the default (hst) is within 2 sigma
        with open_frames(HRC) as [src]:
            [paths[enc]] = enh.write_source(src, out / enc, HRC, enh.config.for_input(True)).outputs
    return paths


def test_the_flux_extension_sums_to_the_input_in_its_units_with_the_wcs(hrc_outputs):
    with fits.open(HRC) as h:
        sci = h["SCI"].data.astype(np.float64)
        err = h["ERR"].data.astype(np.float64)
        dq = h["DQ"].data.astype(np.int64)
        photflam = h["SCI"].header.get("PHOTFLAM", h[0].header.get("PHOTFLAM"))
    with fits.open(hrc_outputs["int16"]) as h:
        assert [x.name for x in h] == ["PRIMARY", "RED", "GREEN", "BLUE", "FLUX", "FLUXERR"]
        assert h[0].header["AE_FLXPL"] == "sum" and h["FLUX"].header["AE_FLXMD"] == "sum"
        assert h["FLUX"].header["BUNIT"] == "ELECTRONS" and h["RED"].header["BUNIT"] == "display"
        assert h["FLUX"].header["PHOTFLAM"] == photflam and "PHOTFLAM" not in h["RED"].header
        flux = h["FLUX"].data.astype(np.float64)
        flux_err = h["FLUXERR"].data.astype(np.float64)
        assert h["FLUX"].header["BITPIX"] == -32 and h["FLUXERR"].header["BITPIX"] == -32  # never quantised
        assert h["FLUXERR"].header["BUNIT"] == "ELECTRONS" and h["FLUXERR"].header["AE_ERRSR"] == "ERR"
        assert h[0].header["AE_FLXER"] is True
        sky_sigma = h[0].header["AE_SKYSG"]
        pix = np.array([[0.0, 0.0], [511.0, 1023.0]])
        np.testing.assert_allclose(WCS(h["FLUX"].header).all_pix2world(pix, 0),
                                   WCS(h["RED"].header).all_pix2world(pix, 0), atol=1e-12)
    ok = (dq & 12439) == 0  # the default DQ mask: flagged pixels are no data
    assert (~ok).any()
    sums = block_means(np.nan_to_num(flux), 4) * 16
    np.testing.assert_allclose(sums[ok], sci[ok], rtol=1e-5, atol=0.05)
    assert np.isnan(flux[::4, ::4][~ok]).all()
    # FLUXERR: the file's ERR (the sky's sigma where it has none), summed in quadrature over a block
    quadrature = np.sqrt(block_means(np.nan_to_num(flux_err) ** 2, 4) * 16)
    want = np.where(err > 0, err, sky_sigma)
    np.testing.assert_allclose(quadrature[ok], want[ok], rtol=1e-5)
    assert (np.isnan(flux_err) == np.isnan(flux)).all()
    with fits.open(hrc_outputs["rice"]) as h:  # compressed: FLUX and FLUXERR losslessly so
        assert isinstance(h["FLUX"], fits.CompImageHDU) and isinstance(h["FLUXERR"], fits.CompImageHDU)
        np.testing.assert_array_equal(h["FLUX"].data, flux.astype(np.float32))
        np.testing.assert_array_equal(h["FLUXERR"].data, flux_err.astype(np.float32))


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=st.floats(1e-3, 1e3)),
       st.booleans(), st.integers(0, 2**31 - 1))
def test_flux_error_gives_each_block_its_input_sigma_in_quadrature(sigma, per_pixel, seed):
    ok = np.random.default_rng(seed).uniform(size=sigma.shape) > 0.2
    err = flux_error(sigma, ok, 4, per_pixel).astype(np.float64)
    assert (np.isnan(err) == np.repeat(np.repeat(~ok, 4, 0), 4, 1)).all()
    quadrature = np.sqrt(block_means(np.nan_to_num(err) ** 2, 4) * 16)  # the block's sum
    np.testing.assert_allclose(quadrature[ok] / (1 if per_pixel else 16), sigma[ok], rtol=1e-5)


@pytest.mark.parametrize("tolerance", [0.0, None])
def test_flux_err_is_the_scatter_of_flux_or_more(tolerance):
    """Two noise draws of one field: the difference of the two FLUX planes over apertures of whole input pixels is
    noise alone, and FLUXERR must account for it — exactly in the exact mode (its block sums are the input's), at
    least (the network removed some: never less) in the default noise-consistent one."""
    yy, xx = np.indices((96, 96))
    truth = 20 + 400 * np.exp(-((yy - 40) ** 2 + (xx - 52) ** 2) / 30) + 80 * np.exp(-((yy - 70) ** 2 + (xx - 20) ** 2) / 8)
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, flux_tolerance=tolerance))
    outs = [enh.enhance_array(truth + np.random.default_rng(seed).normal(0, 5.0, truth.shape)) for seed in (1, 2)]
    sums = [block_means(o.flux.astype(np.float64), 8) * 64 for o in outs]  # squares of 2x2 input pixels
    var = [block_means(o.flux_err.astype(np.float64) ** 2, 8) * 64 for o in outs]
    z = (sums[0] - sums[1]) / np.sqrt(var[0] + var[1])
    spread = float(np.std(z))
    if tolerance == 0.0:
        assert 0.85 < spread < 1.15
    else:
        assert spread < 1.1


def test_display_images_have_no_flux_plane_and_arrays_get_theirs(tmp_path, hrc_crop):
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, formats=("fits",), flux_tolerance=0.0))
    [res] = enh.enhance_file(COLOR / "heic0406a.png", tmp_path)
    with fits.open(res.outputs[0]) as h:
        assert "FLUX" not in [x.name for x in h] and h[0].header["AE_FLXPL"] == "none"
    data, wcs = hrc_crop
    arr = enh.enhance_array(data, wcs)
    assert arr.flux is not None and arr.flux.shape == arr.luminance.shape
    np.testing.assert_allclose(block_means(arr.flux.astype(np.float64), 4) * 16, data, rtol=1e-5, atol=0.05)
    assert Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False)).enhance_array(data, wcs).flux is None


def test_no_flux_plane_when_asked(tmp_path):
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, formats=("fits",), flux_plane=False))
    [res] = enh.enhance_file(FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz", tmp_path)
    with fits.open(res.outputs[0]) as h:
        assert [x.name for x in h] == ["PRIMARY", "RED", "GREEN", "BLUE"] and h[0].header["AE_FLXPL"] == "none"
        assert h[0].header["AE_FLXER"] is False
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, formats=("fits",), flux_err=False))
    [res] = enh.enhance_file(FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz", tmp_path / "no_err")
    with fits.open(res.outputs[0]) as h:
        assert [x.name for x in h] == ["PRIMARY", "RED", "GREEN", "BLUE", "FLUX"] and h[0].header["AE_FLXER"] is False


def test_the_flux_plane_does_not_depend_on_how_rows_are_cut_into_pieces(hrc_crop, monkeypatch):
    """Its smooth correction sees rows above and below each finished piece: 4-row and 64-row pieces agree (without
    that context they differ by up to 60x the local flux at piece edges: seams)."""
    import astroenhance.pipeline.engine as engine

    data, wcs = hrc_crop
    out = {}
    for rows in (4, 64):
        monkeypatch.setattr(engine, "FINISH_ROWS", rows)
        out[rows] = Enhancer(EnhanceConfig(device="cpu", colorize=False)).enhance_array(data, wcs)
    np.testing.assert_array_equal(out[4].luminance, out[64].luminance)
    sigma = out[4].normalizer.sky_noise
    f4, f64 = (out[r].flux.astype(np.float64) for r in (4, 64))
    assert (np.abs(f4 - f64) / (np.abs(f64) + sigma / 16)).max() < 0.05


def test_the_flux_plane_does_not_depend_on_how_columns_are_cut_into_bands(hrc_crop, monkeypatch):
    """Bands (column strips of wide frames) also hand the correction their neighbours' columns."""
    import astroenhance.pipeline.engine as engine

    data, wcs = hrc_crop
    out = {}
    for width in (40, 1024):
        monkeypatch.setattr(engine, "BAND_WIDTH", width)
        out[width] = Enhancer(EnhanceConfig(device="cpu", colorize=False, tile=32, overlap=8)).enhance_array(data, wcs)
    sigma = out[40].normalizer.sky_noise
    f1, f2 = (out[w].flux.astype(np.float64) for w in (40, 1024))
    assert (np.abs(f1 - f2) / (np.abs(f2) + sigma / 16)).max() < 0.05
    # FLUXERR is each input pixel's own sigma, wherever the bands and pieces cut: this crop's noise map (its depth
    # varies), a quarter of it on each output pixel, NaN where the input has none
    from .conftest import engine_sigma

    want = np.repeat(np.repeat(engine_sigma(Enhancer(EnhanceConfig(device="cpu", colorize=False)), data, wcs), 4, 0),
                     4, 1) / 4
    want[np.isnan(np.repeat(np.repeat(data, 4, 0), 4, 1))] = np.nan
    assert np.ptp(want[np.isfinite(want)]) > 0.1 * np.nanmax(want)  # a map, not one number: a misplaced piece shows
    for w in (40, 1024):
        np.testing.assert_allclose(out[w].flux_err, want, rtol=1e-5)


def test_flux_and_display_tolerances_resolve_per_network_and_follow_a_given_flux_tolerance():
    from astroenhance.pipeline.engine import _network_defaults

    def resolved(space, **kw):
        c = _network_defaults(EnhanceConfig(**kw), space)
        return c.flux_tolerance, c.display_tolerance

    assert resolved("noise-asinh") == (2.0, 4.0) and resolved("display") == (0.0, 0.0)
    assert resolved("noise-asinh", flux_tolerance=0.0) == (0.0, 0.0)  # --flux-tolerance 0: all exact, as before
    assert resolved("noise-asinh", display_tolerance=1.0) == (2.0, 1.0)
    assert resolved("display", flux_tolerance=1.5, display_tolerance=0.5) == (1.5, 0.5)
    with pytest.raises(SettingsError, match="display tolerance"):
        Enhancer(EnhanceConfig(device="cpu", colorize=False, display_tolerance=-1.0))


def test_a_noise_dip_below_the_black_point_is_not_painted_black():
    """The display clips the input at its black point (2 sigma below the sky), but the promise is the input's: a
    block whose input pixel dipped 2.6 or 3.5 sigma below the sky (clipped to black) lies within the default 4 sigma of
    the network's sky, so the network's block stays as it is — not pulled towards black as a dark 4x4 square (at 3
    sigma, the 3.5 sigma dips were: the 0.3% of sky pixels noise takes that far).  A dip of 8 sigma is beyond what noise
    does: its block is brought towards it (here to black: 4 sigma above it is below the black point)."""
    rng = np.random.default_rng(3)
    data = rng.normal(100.0, 5.0, (48, 48))
    dips = [(10, 12), (24, 30), (37, 8), (30, 40)]
    for (y, x), depth in zip(dips, (2.6, 2.6, 3.5, 3.5)):
        data[y, x] = 100.0 - depth * 5.0
    data[20, 20] = 100.0 - 8 * 5.0
    default = Enhancer(EnhanceConfig(device="cpu", colorize=False)).enhance_array(data)
    free = Enhancer(EnhanceConfig(device="cpu", colorize=False, display_tolerance=1e3)).enhance_array(data)
    three = Enhancer(EnhanceConfig(device="cpu", colorize=False, display_tolerance=3.0)).enhance_array(data)
    assert default.header["AE_DISPT"] == 4.0
    assert all(default.normalizer(data[y, x]) == 0 for y, x in dips)  # each dip is black in the input's display
    got, net, at3 = (block_means(r.luminance.astype(np.float64), 4) for r in (default, free, three))
    for y, x in dips:
        assert got[y, x] == pytest.approx(net[y, x], abs=1e-6) and got[y, x] > 0.1
    assert all(at3[y, x] < net[y, x] - 0.01 for y, x in dips[2:])  # 3 sigma pulled the 3.5 sigma dips down
    # the 8 sigma dip: 4 sigma above it is still below the black point, so its block is as dark as the display goes
    assert net[20, 20] > 0.1 and got[20, 20] == 0


@pytest.mark.parametrize("noise_map", [False, True])
def test_hst_keeps_flux_blocks_within_2_sigma_and_display_blocks_within_4(hrc_crop, noise_map):
    """The FITS default: FLUX (for measurement) within 2 input sigmas of every input pixel, the display within 4 —
    and the display really uses the wider promise somewhere (so the two differ).  Sigma is the frame's one, or where
    its depth varies (this crowded crop, no ERR: measured from its pixels) the noise map's at each pixel."""
    from .conftest import engine_sigma, keeps_display_promise

    data, wcs = hrc_crop
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, noise_map=noise_map))
    res = enh.enhance_array(data, wcs)
    norm = res.normalizer
    assert (res.header["AE_FLUXT"], res.header["AE_DISPT"]) == (2.0, 4.0)
    sigma = engine_sigma(enh, data, wcs)
    assert isinstance(sigma, np.ndarray) == noise_map  # this crowded crop's depth varies, measured from its pixels
    # the header's span holds every pixel's sigma (block values; between centres the map interpolates)
    assert res.header["AE_SIGLO"] <= np.min(sigma) * (1 + 1e-9) and np.max(sigma) <= res.header["AE_SIGHI"] * (1 + 1e-9)
    ok = np.isfinite(data)
    sums = block_means(np.nan_to_num(res.flux.astype(np.float64)), 4) * 16
    assert np.all((np.abs(sums - data) <= 2 * sigma * (1 + 1e-4) + 1e-3)[ok])
    # the display's block means, in the input's units, within 4 sigma of the input pixel, and some beyond 2 sigma
    assert np.all(keeps_display_promise(norm, res.luminance, data, sigma, 4.0)[ok])
    assert np.any(~keeps_display_promise(norm, res.luminance, data, sigma * 1.01, 2.0)[ok])


def test_a_star_the_display_clipped_gets_its_flux_back_without_rings():
    """An undersampled bright star: the display clips its core at the white point, so FLUX must put back far more
    than the noise in one block.  It goes where the light is: no negative lobes or rings around the star (a smooth
    correction of that size rang: -240 beside a core of 4800 on a sky of 5), every block within the tolerance."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    fine = np.full((48, 48), 5.0)
    fine[21, 22] += 1.6e5  # a star, then an undersampled PSF
    fine = gaussian_filter(fine, 0.6) + rng.normal(0, 1.0, fine.shape)
    raw = block_means(fine, 4)
    vmax = 400.0  # the display's white point: far below the star's core
    lum = np.clip(gaussian_filter(np.repeat(np.repeat(raw, 4, 0), 4, 1), 1.5) / vmax, 0, 1)
    out = physical_flux(lum, raw, lambda d: vmax * d, 4, tolerance=2.0, sigma=1.0, per_pixel=False).astype(np.float64)
    assert np.all(np.abs(block_means(out, 4) - raw) <= 2.0 + 1e-3)
    assert out.min() > 5.0 - 6.0  # the sky stays sky: no negative lobes
    ring = np.ones(out.shape, bool)
    ring[12:32, 12:32] = False  # away from the star's blocks and their neighbours
    assert np.abs(out[ring] - 5.0).max() < 6.0
    assert out.max() > vmax  # the core is brighter than the display could show


def test_structured_correction_moves_block_means_by_the_shift_where_the_light_is():
    import torch

    from astroenhance.pipeline.finish import structured_block_correction

    rng = np.random.default_rng(4)
    out = torch.from_numpy(rng.uniform(0, 1, (8, 12)))
    out[:4, :4] = 0.3  # a flat block: the shift spreads evenly
    shift = torch.from_numpy(rng.uniform(0.5, 5, (2, 3)))
    shift[1, 0] = -0.05  # a little light taken away
    shift[1, 1] = -3.0  # more than the block has above its faintest pixel: it ends flat, below it
    got = structured_block_correction(out, shift, 4)
    np.testing.assert_allclose(block_means(got.numpy(), 4), block_means(out.numpy(), 4) + shift.numpy(), atol=1e-12)
    np.testing.assert_allclose(got[:4, :4].numpy(), 0.3 + shift[0, 0].item())
    np.testing.assert_allclose(got[4:, 4:8].numpy(), out[4:, 4:8].mean().item() - 3.0, atol=1e-12)
    # elsewhere each block's faintest pixel keeps its value: the shift follows the light above it
    for by, bx in ((0, 1), (0, 2), (1, 0), (1, 2)):
        b0, b1 = out[4 * by:4 * by + 4, 4 * bx:4 * bx + 4], got[4 * by:4 * by + 4, 4 * bx:4 * bx + 4]
        i = torch.argmin(b0)
        assert b1.flatten()[i].item() == pytest.approx(b0.flatten()[i].item())
        assert torch.all((b1 - b0) * np.sign(shift[by, bx].item()) >= -1e-12)


def test_flux_puts_back_a_faint_source_the_network_flattened_but_not_the_noise():
    """The noise-consistent FLUX lets go of the network's departure from the input only where it looks like noise:
    a faint extended source it removed (each block only 1.5 sigma low, within the tolerance) gets its flux back;
    on pure noise the let-go part stays (the network's denoising is kept)."""
    rng = np.random.default_rng(5)
    y, x = np.mgrid[:24, :24]
    source = 1.5 * np.exp(-((y - 12) ** 2 + (x - 12) ** 2) / (2 * 3.0**2))  # sigma units, per input pixel
    noise = rng.normal(0, 1.0, (24, 24))
    raw = 100 + source + noise
    flat = np.full((96, 96), 100.0 / 200)  # the network: flat sky, the source and the noise removed
    out = physical_flux(flat, raw, lambda d: 200 * d, 4, tolerance=2.0, sigma=1.0, per_pixel=False).astype(np.float64)
    kept = block_means(out, 4) - 100
    inner = source > 0.75
    assert kept[inner].sum() > 0.6 * source[inner].sum()  # most of the source's flux is back
    assert np.std(kept - source) < 0.6 * np.std(noise)  # most of the noise is not


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**31 - 1), st.sampled_from([4, 2, 3]))
def test_the_smooth_correction_on_the_input_grid_equals_back_projection_on_the_output_grid(h, w, seed, s):
    """`smooth_block_correction` runs its passes on the input grid; it must give what upsampling each pass's residual
    bilinearly onto the output grid gives (the definition), edges included, at any scale."""
    rng = np.random.default_rng(seed)
    out = torch.from_numpy(rng.normal(0, 10, (s * h, s * w)))
    target = torch.from_numpy(rng.normal(0, 10, (h, w)))
    x, t = out[None, None], target[None, None]
    for _ in range(SMOOTH_PASSES):
        x = x + F.interpolate(t - F.avg_pool2d(x, s), scale_factor=s, mode="bilinear", align_corners=False)
    expected = block_mean_shift(x, t, s)[0, 0]
    got = smooth_block_correction(out, target, s)
    assert torch.allclose(got, expected, rtol=0, atol=1e-11)
    assert torch.allclose(block_means(got, s), target, rtol=0, atol=1e-11)


@pytest.mark.parametrize("units", [1e-36, 1e-19, 1e20])
def test_the_same_frame_in_other_units_gives_the_same_picture_and_flux_in_those_units(units):
    """A frame in erg/s/cm²/Å (values near 1e-19) or erg/s/cm²/Hz (noise near 1e-33) is the same frame: its display
    the same, its FLUX the same times the unit. A block's light was compared with an absolute 1e-12 (FLUX off by 41%
    of its peak at 1e-19) and sigma floored at 1e-30 (the display too at 1e-36)."""
    from .conftest import FIXTURES

    flt = FIXTURES / "j8bt06nyq_flt_crop.fits"
    data = np.asarray(fits.getdata(flt, "SCI")[:64, :72], np.float64)
    err = np.asarray(fits.getdata(flt, "ERR")[:64, :72], np.float64)
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False))
    one = enh.enhance_array(data.astype(np.float32), sigma=err.astype(np.float32))
    other = enh.enhance_array((data * units).astype(np.float32), sigma=(err * units).astype(np.float32))
    assert np.nanmax(np.abs(other.rgb - one.rgb)) < 1e-4
    peak = np.nanmax(np.abs(one.flux))
    np.testing.assert_allclose(other.flux / units, one.flux, atol=1e-4 * peak, rtol=0)
    np.testing.assert_allclose(other.flux_err / units, one.flux_err, rtol=1e-4)


def test_a_jwst_frames_pixel_area_is_put_on_the_4x_grid(tmp_path):
    """A JWST frame is in MJy/sr with its pixel's solid angle (PIXAR_SR, PIXAR_A2) to turn that into flux per pixel:
    FLUX (whose 16 pixels average to each input pixel) carries it divided by 16, as its pixels are (it was dropped);
    the display planes, which have no units, carry none."""
    w = WCS(naxis=2)
    w.wcs.ctype, w.wcs.crval, w.wcs.crpix = ["RA---TAN", "DEC--TAN"], [10.0, 20.0], [16.0, 12.0]
    w.wcs.cdelt = [-0.031 / 3600, 0.031 / 3600]
    cards = {"TELESCOP": "JWST", "INSTRUME": "NIRCAM", "BUNIT": "MJy/sr", "PIXAR_SR": 2.29e-14, "PIXAR_A2": 0.000974}
    sci = fits.ImageHDU(np.random.default_rng(3).normal(0.5, 0.05, (24, 32)).astype(np.float32),
                        w.to_header() + fits.Header(cards), name="SCI")
    fits.HDUList([fits.PrimaryHDU(), sci]).writeto(tmp_path / "jw_cal.fits")
    got = Enhancer(EnhanceConfig(device="cpu", colorize=False)).enhance_frame(tmp_path / "jw_cal.fits")
    assert got.flux_header["AE_FLXMD"] == "mean"
    assert got.flux_header["PIXAR_SR"] == pytest.approx(2.29e-14 / 16, rel=1e-12)
    assert got.flux_header["PIXAR_A2"] == pytest.approx(0.000974 / 16, rel=1e-12)
    assert "PIXAR_SR" not in got.header and "PIXAR_A2" not in got.header


@given(st.integers(1, 3), st.integers(1, 40), st.integers(1, 40), st.floats(0.2, 6.0), st.integers(0, 2**31 - 1))
@settings(max_examples=80, deadline=None)
def test_gaussian_blur_is_the_separable_gaussian_cut_at_three_sigma_with_edges_replicated(planes, h, w, width, seed):
    """`finish.gaussian_blur` (the PSF smoothing of `run`'s display, FLUX's local means) against scipy's Gaussian
    filter with the same cut (the kernel's ``ceil(3 width)`` pixels each side) and edges extended ('nearest'); it is
    now sums of shifted views (8x faster than the single-channel conv2d before), the same numbers."""
    from scipy.ndimage import gaussian_filter

    from astroenhance.pipeline.finish import gaussian_blur, gaussian_radius

    x = np.random.default_rng(seed).normal(size=(1, planes, h, w)) * 100
    got = gaussian_blur(torch.from_numpy(x), width).numpy()
    truncate = gaussian_radius(width) / width  # (scipy's radius: int(truncate * width + 0.5))
    want = gaussian_filter(x, (0, 0, width, width), mode="nearest", truncate=truncate)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    assert gaussian_blur(torch.from_numpy(x).float(), width).dtype == torch.float32

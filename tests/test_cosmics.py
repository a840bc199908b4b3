"""Cosmic-ray hits found by being sharper than any star can be (`imaging.cosmics`, `run --clean-cosmic-rays`)."""

import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from astroenhance.cli import app
from astroenhance.imaging import cosmics
from astroenhance.imaging.cosmics import annular_airy, find_cosmic_rays, star_sharpness
from astroenhance.io.readers import open_frames

from .conftest import HRC

WAVELENGTH, SCALE = 5888e-10, 0.025  # ACS/HRC F606W: the sharpest HST imaging there is


def _star(shape, y, x, flux, wavelength=WAVELENGTH, scale=SCALE, oversample=5):
    """A diffraction-limited star (the sharpest possible) at sub-pixel position (y, x), integrated over pixels,
    over the whole frame (a cut-off would be an edge sharper than any star)."""
    h, w = shape
    sy = (np.arange(h * oversample) + 0.5) / oversample - 0.5 - y
    sx = (np.arange(w * oversample) + 0.5) / oversample - 0.5 - x
    r = np.hypot(sy[:, None], sx[None, :]) * scale * math.pi / 648000
    psf = annular_airy(r, wavelength, 2.4, 0.33).reshape(h, oversample, w, oversample).sum(axis=(1, 3))
    return flux * psf / psf.sum()


def _spike(shape, y, x, angle, peak, wavelength=WAVELENGTH, scale=SCALE, oversample=5):
    """A line as sharp as the telescope can draw one (a diffraction spike: the aperture's line-spread profile
    across it) through (y, x) at ``angle`` (radians), ``peak`` at its middle, integrated over pixels."""
    h, w = shape
    u = np.arange(-12 * 25, 12 * 25 + 1) / 25
    uu, vv = np.meshgrid(u, np.linspace(-60, 60, 2401))
    lsf = annular_airy(np.hypot(uu, vv) * scale * math.pi / 648000, wavelength, 2.4, 0.33).sum(axis=0)
    sy = (np.arange(h * oversample) + 0.5) / oversample - 0.5 - y
    sx = (np.arange(w * oversample) + 0.5) / oversample - 0.5 - x
    d = sx[None, :] * math.sin(angle) - sy[:, None] * math.cos(angle)
    img = np.interp(d, u, lsf / lsf.max()).reshape(h, oversample, w, oversample).mean(axis=(1, 3))
    return peak * img / img.max()


def _field(rng, n_stars=12, size=128, sky=50.0, read=5.0, fluxes=(2e3, 2e6), wavelength=WAVELENGTH, scale=SCALE,
           spikes=0):
    """Stars at random sub-pixel positions on a sky (and ``spikes`` diffraction spikes of up to 3e4 electrons a
    pixel across the frame at random angles), with Poisson and read noise, and the per-pixel sigma an flt's ERR
    would give."""
    truth = np.full((size, size), sky)
    for _ in range(n_stars):
        y, x = rng.uniform(10, size - 10, 2)
        truth += _star(truth.shape, y, x, math.exp(rng.uniform(*np.log(fluxes))), wavelength, scale)
    for _ in range(spikes):
        y, x = rng.uniform(10, size - 10, 2)
        truth += _spike(truth.shape, y, x, rng.uniform(0, math.pi), math.exp(rng.uniform(*np.log((50, 3e4)))),
                        wavelength, scale)
    data = rng.poisson(truth).astype(np.float64) + rng.normal(0, read, truth.shape)
    return data, np.sqrt(truth + read**2)


def test_a_star_can_be_no_sharper_than_diffraction_allows():
    ratio, curvature = star_sharpness(WAVELENGTH, SCALE)
    assert 2 < ratio < 3.5 and curvature > 1  # HRC F606W: the peak holds ~2.6x its neighbours' mean
    # longer wavelengths and finer pixels spread a star over more pixels; coarser pixels make it sharper
    assert star_sharpness(2 * WAVELENGTH, SCALE)[0] < ratio < star_sharpness(WAVELENGTH, 2 * SCALE)[0]
    # a real PSF is broader than the diffraction limit: a star drawn at it, centred, sits at the bound
    img = _star((13, 13), 6, 6, 1.0, oversample=25)
    assert img[6, 6] / ((img[5:8, 5:8].sum() - img[6, 6]) / 8) == pytest.approx(ratio, rel=0.02)
    with pytest.raises(ValueError):
        star_sharpness(0, SCALE)


def test_the_bound_holds_for_a_star_anywhere_in_its_pixel_on_coarse_pixels():
    """On WFPC2's WF chips (0.1" pixels, far coarser than the core) a star a little off its pixel's middle puts less
    of its first ring on the neighbours: its pixel is sharper than a centred star's (the bound was the centred one)."""
    wavelength, scale = 4884e-10, 0.0996
    ratio, _ = star_sharpness(wavelength, scale)
    seen = []
    for dy, dx in [(0, 0), (0.15, 0.15), (0.1, 0.2), (0.3, 0.05), (0.5, 0.5)]:
        img = _star((11, 11), 5 + dy, 5 + dx, 1.0, wavelength, scale, oversample=25)
        y, x = np.unravel_index(np.argmax(img), img.shape)
        seen.append(img[y, x] / ((img[y - 1:y + 2, x - 1:x + 2].sum() - img[y, x]) / 8))
    assert max(seen) <= ratio * 1.002 and max(seen) > 1.1 * seen[0]


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_stars_as_sharp_as_physics_allows_are_never_flagged(seed):
    """Diffraction-limited stars from barely detected to 2 million electrons, anywhere within a pixel, with
    Poisson and read noise: not one pixel flagged."""
    data, sigma = _field(np.random.default_rng(seed))
    ratio, curvature = star_sharpness(WAVELENGTH, SCALE)
    assert not find_cosmic_rays(data, sigma, ratio, curvature).any()


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([(5888e-10, 0.05), (4884e-10, 0.0996), (10552e-10, 0.128)]))
def test_stars_and_diffraction_spikes_on_coarse_pixels_are_never_flagged(seed, filt):
    """ACS/WFC, WFPC2's WF chips and WFC3/IR: stars anywhere in a pixel (on WF's pixels an off-centre star is the
    sharpest) and diffraction spikes at any angle — lines as sharp as the aperture draws them — never flagged."""
    wavelength, scale = filt
    data, sigma = _field(np.random.default_rng(seed), n_stars=8, size=96, wavelength=wavelength, scale=scale,
                         spikes=3)
    ratio, curvature = star_sharpness(wavelength, scale)
    assert not find_cosmic_rays(data, sigma, ratio, curvature).any()


def _hits(rng, shape, n, sigma_sky):
    """Single-pixel hits and short tracks (2-5 pixels, row, column or diagonal) of 20-200 sigma per pixel."""
    img = np.zeros(shape)
    tracks = []
    for i in range(n):
        length = 1 + i % 5
        dy, dx = [(0, 1), (1, 0), (1, 1)][i % 3]
        y, x = rng.integers(12, shape[0] - 12), rng.integers(12, shape[1] - 12)
        px = [(y + k * dy, x + k * dx) for k in range(length)]
        for p in px:
            img[p] += rng.uniform(20, 200) * sigma_sky
        tracks.append(px)
    return img, tracks


def test_hits_and_whole_tracks_are_found_beside_stars():
    rng = np.random.default_rng(3)
    data, sigma = _field(rng, n_stars=8, size=192)
    hits, tracks = _hits(rng, data.shape, 30, float(np.median(sigma)))
    flags = find_cosmic_rays(data + hits, np.sqrt(sigma**2 + hits), *star_sharpness(WAVELENGTH, SCALE))
    whole = sum(all(flags[p] for p in t) for t in tracks)
    assert whole >= 27, f"only {whole} of 30 hits flagged entirely"
    assert not (flags & (hits == 0)).any()  # nothing else
    # the flags are the same whether the frame is searched in strips or at once, one strip at a time or several
    strip = cosmics.STRIP
    try:
        cosmics.STRIP = 40
        for workers in (1, 3):
            np.testing.assert_array_equal(find_cosmic_rays(data + hits, np.sqrt(sigma**2 + hits),
                                                           *star_sharpness(WAVELENGTH, SCALE), workers=workers), flags)
    finally:
        cosmics.STRIP = strip


def test_no_data_and_its_neighbours_are_never_flagged():
    rng = np.random.default_rng(5)
    data = rng.normal(100, 5, (64, 64))
    data[30, 30] += 2000  # a hit ...
    data[30, 32] = np.nan  # ... two pixels from a masked one
    data[10, 10] += 2000  # a hit in the clear
    flags = find_cosmic_rays(data, 5.0, *star_sharpness(WAVELENGTH, SCALE))
    assert flags[10, 10] and not flags[30, 30] and not flags[30, 32] and flags.sum() == 1


def _flt(path, data, err, dq=None, photplam=5887.9316):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix, w.wcs.cdelt = [6.0, -72.0], [64, 64], [-SCALE / 3600, SCALE / 3600]
    sci = fits.ImageHDU(data.astype(np.float32), w.to_header(), name="SCI")
    if photplam:
        sci.header["PHOTPLAM"] = photplam
    sci.header["BUNIT"] = "ELECTRONS"
    hdus = [fits.PrimaryHDU(), sci, fits.ImageHDU(err.astype(np.float32), name="ERR")]
    if dq is not None:
        hdus.append(fits.ImageHDU(dq.astype(np.int16), name="DQ"))
    fits.HDUList(hdus).writeto(path)
    return path


def test_run_reads_hits_as_no_data_and_records_them(tmp_path):
    rng = np.random.default_rng(11)
    data, sigma = _field(rng, n_stars=6)
    data[40, 40] += 3000
    data[80, 20:23] += 1500
    dq = np.zeros(data.shape, np.int16)
    bright = _star(data.shape, 100.3, 100.6, 5e6)
    sat = bright > 5e4  # a saturated core (DQ 256): not the PSF's shape
    dq[sat] = 256
    data += np.minimum(bright, 5e4)  # (its light around it: a lone pixel so far above its neighbours is a hot one)
    data[100, 100] += 1e5
    src = _flt(tmp_path / "x_flt.fits", data, sigma, dq)
    before = src.read_bytes()
    runner = CliRunner()
    args = ["--no-colorize", "--format", "fits", "-q"]
    result = runner.invoke(app, ["run", str(src), "-o", str(tmp_path / "out"), "--clean-cosmic-rays", *args])
    assert result.exit_code == 0, result.output
    assert src.read_bytes() == before  # the input is never modified
    with fits.open(tmp_path / "out" / "x_flt.enhanced.fits") as h:
        assert h[0].header["AE_NCR"] == 4 and h[0].header["AE_CRLIM"] == pytest.approx(
            star_sharpness(WAVELENGTH, SCALE)[0], rel=1e-3)
        flux = h["FLUX"].data
    assert np.isnan(flux[160:164, 160:164]).all() and np.isnan(flux[320:324, 80:92]).all()
    assert np.isfinite(flux[400:404, 400:404]).all()  # the saturated core stays
    assert np.isfinite(flux).sum() == flux.size - 4 * 16
    # by default a single exposure whose DQ flags no cosmic rays is cleaned the same way; --no-clean-cosmic-rays
    # searches nothing (AE_NCR -1), and a note says what that leaves
    result = runner.invoke(app, ["run", str(src), "-o", str(tmp_path / "auto"), *args])
    with fits.open(tmp_path / "auto" / "x_flt.enhanced.fits") as h:
        assert h[0].header["AE_NCR"] == 4 and np.array_equal(np.isnan(h["FLUX"].data), np.isnan(flux))
    result = runner.invoke(app, ["run", str(src), "-o", str(tmp_path / "plain"), "--no-clean-cosmic-rays",
                                 *args[:-1]])
    assert "--clean-cosmic-rays reads them as no data" in result.output
    with fits.open(tmp_path / "plain" / "x_flt.enhanced.fits") as h:
        assert h[0].header["AE_NCR"] == -1 and np.isfinite(h["FLUX"].data).all()
    # `mosaic --enhance` reads its frames as `run` does: the hits were enhanced as stars there
    assert runner.invoke(app, ["run", str(src), "-o", str(tmp_path / "coloured"), "--format", "fits"]).exit_code == 0
    result = runner.invoke(app, ["mosaic", str(src), "--enhance", "--grid", "first", "-o", str(tmp_path / "m"),
                                 "--format", "fits"])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "coloured" / "x_flt.enhanced.fits") as ran, fits.open(tmp_path / "m" / "mosaic.mosaic.fits") as m:
        assert np.nanmax(np.abs(ran["RED"].data - m["RED"].data)) <= 2 / 65534


def test_the_hint_is_only_for_single_exposures_without_cosmic_ray_flags(tmp_path):
    data, sigma = _field(np.random.default_rng(4), n_stars=2, size=64)
    dq = np.zeros(data.shape, np.int16)
    for name, flags in (("a_flt.fits", None), ("b_flt.fits", 0), ("c_drz.fits", None)):
        _flt(tmp_path / name, data, sigma, None if flags is None else dq)
    dq[5, 5] = 4096  # AstroDrizzle found this exposure's hits
    _flt(tmp_path / "d_flc.fits", data, sigma, dq)
    hinted = {}
    for name in ("a_flt.fits", "b_flt.fits", "c_drz.fits", "d_flc.fits"):
        with open_frames(tmp_path / name) as [src]:
            hinted[name] = any("--clean-cosmic-rays" in n for n in src.notes)
    assert hinted == {"a_flt.fits": True, "b_flt.fits": True, "c_drz.fits": False, "d_flc.fits": False}
    with open_frames(tmp_path / "a_flt.fits", cosmic_rays=True) as [src]:  # searched, none found: said so (it said
        assert src.cosmic_rays == 0 and any(  # "0 pixels in 0 groups ... read as no data")
            n.startswith("cosmic rays: searched, no pixel sharper than a star") for n in src.notes), src.notes


@pytest.mark.parametrize(("filename", "single"), [("j8bt06nyq_flt.fits", True), ("u5780205r_cvt.c0h", True),
                                                   ("ib1f23c4q_flc.fits", True), ("j8bt06010_drz.fits", False),
                                                   ("", False)])
def test_a_renamed_single_exposure_is_known_by_its_headers_filename(tmp_path, filename, single):
    """A single exposure downloaded and renamed (`hubble_wfpc2_sample.fits`) is still one: the archive's FILENAME
    keyword (an flt's, WFPC2's GEIS `.c0h`) says so, and by default its hits are searched for as by name."""
    data, sigma = _field(np.random.default_rng(4), n_stars=2, size=64)
    data[30, 30] += 3000
    src = _flt(tmp_path / "renamed.fits", data, sigma)
    with fits.open(src, mode="update") as h:
        if filename:
            h[0].header["FILENAME"] = filename
    result = CliRunner().invoke(app, ["run", str(src), "-o", str(tmp_path / "out"), "--no-colorize", "--format",
                                      "fits", "-q"])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "out" / "renamed.enhanced.fits") as h:
        assert (h[0].header["AE_NCR"] >= 1) is single and (h[0].header["AE_NCR"] == -1) is not single
        assert bool(np.isnan(h["FLUX"].data[120:124, 120:124]).all()) == single


@pytest.mark.parametrize("photplam", [None, 1e-19, 5e7])
def test_without_a_pivot_wavelength_the_search_is_refused_clearly(tmp_path, photplam):
    """No PHOTPLAM, or one no HST filter has (1e-19 made the limit infinite and writing AE_CRLIM crashed the run)."""
    data, sigma = _field(np.random.default_rng(2), n_stars=2, size=64)
    src = _flt(tmp_path / "nophot_flt.fits", data, sigma, photplam=photplam)
    result = CliRunner().invoke(app, ["run", str(src), "-o", str(tmp_path / "out"), "--clean-cosmic-rays",
                                      "--no-colorize", "--format", "fits", "-q"])
    assert result.exit_code == 1 and "PHOTPLAM" in result.output and "nophot_flt.fits" in result.output
    assert not list((tmp_path / "out").glob("*.fits"))
    # by default (not asked for by name) such a frame is enhanced as it is, and the note says why
    result = CliRunner().invoke(app, ["run", str(src), "-o", str(tmp_path / "auto"), "--no-colorize", "--format",
                                      "fits"])
    assert result.exit_code == 0 and "not searched" in result.output and "PHOTPLAM" in result.output
    with fits.open(tmp_path / "auto" / "nophot_flt.enhanced.fits") as h:
        assert h[0].header["AE_NCR"] == -1


def test_another_telescopes_frame_is_not_searched_with_hsts_diffraction_limit(tmp_path):
    """A JWST frame (6.5 m: stars up to 2.7x sharper at one wavelength) with a PHOTPLAM would have been judged by
    HST's 2.4 m limit, its star cores read as hits; the search is refused for it, by name or by default."""
    data, sigma = _field(np.random.default_rng(2), n_stars=2, size=64)
    src = _flt(tmp_path / "jw_flt.fits", data, sigma)
    with fits.open(src, mode="update") as h:
        h[0].header["TELESCOP"] = "JWST"
    result = CliRunner().invoke(app, ["run", str(src), "-o", str(tmp_path / "out"), "--clean-cosmic-rays",
                                      "--no-colorize", "--format", "fits", "-q"])
    assert result.exit_code == 1 and "HST's 2.4 m mirror" in result.output and "JWST" in result.output
    result = CliRunner().invoke(app, ["run", str(src), "-o", str(tmp_path / "auto"), "--no-colorize", "--format",
                                      "fits"])
    assert result.exit_code == 0 and "not searched" in result.output
    assert fits.getheader(tmp_path / "auto" / "jw_flt.enhanced.fits")["AE_NCR"] == -1


def test_the_real_hrc_crop_loses_a_few_small_groups():
    """The ACS/HRC 47 Tuc crop (a single 60 s exposure, CRSPLIT = 1, no cosmic rays flagged in its DQ)."""
    with open_frames(HRC) as [plain]:
        base = plain.read_rows(0, plain.shape[0])
    with open_frames(HRC, cosmic_rays=True) as [src]:
        cleaned = src.read_rows(0, src.shape[0])
        assert src.cosmic_rays > 0 and any("AE_NCR" in n for n in src.notes)
    new = np.isnan(cleaned) & ~np.isnan(base)
    assert new.sum() == src.cosmic_rays and new.sum() < 0.002 * new.size
    # hits are small: single pixels and short tracks
    from scipy.ndimage import label
    lab, n = label(new, np.ones((3, 3), bool))
    assert n >= 5 and np.bincount(lab.ravel())[1:].max() <= 12


def test_each_chip_of_a_two_chip_exposure_is_searched_with_its_own_err_and_dq(tmp_path):
    """An flc-like file: SCI/ERR/DQ for EXTVER 1 and 2, PHOTPLAM in the primary header; each chip's hits are found
    with its own ERR, and a pixel its own DQ flags as saturated is left alone."""
    rng = np.random.default_rng(8)
    hdus = [fits.PrimaryHDU()]
    hdus[0].header["PHOTPLAM"] = 5887.9316
    hits = {1: [(20, 20), (40, 70)], 2: [(90, 30)]}
    for ver in (1, 2):
        data, sigma = _field(rng, n_stars=4, size=128)
        for y, x in hits[ver]:
            data[y, x] += 2500
        dq = np.zeros(data.shape, np.int16)
        data[100, 100] += 2500
        dq[100, 100] = 256  # saturated: never searched, even where it is sharp
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval, w.wcs.crpix, w.wcs.cdelt = [6.0, -72.0 + ver * 0.01], [64, 64], [-SCALE / 3600, SCALE / 3600]
        for name, arr in (("SCI", data.astype(np.float32)), ("ERR", sigma.astype(np.float32)), ("DQ", dq)):
            h = fits.ImageHDU(arr, w.to_header() if name == "SCI" else None, name=name)
            h.header["EXTVER"] = ver
            hdus.append(h)
    path = tmp_path / "j_flc.fits"
    fits.HDUList(hdus).writeto(path)
    with open_frames(path, cosmic_rays=None) as frames:
        assert len(frames) == 2
        for ver, frame in zip((1, 2), frames):
            rows = frame.read_rows(0, frame.shape[0])
            assert frame.cosmic_rays == len(hits[ver])
            assert all(np.isnan(rows[y, x]) for y, x in hits[ver]) and np.isfinite(rows[100, 100])


def test_mosaic_and_compose_read_hits_as_run_does(tmp_path):
    """`mosaic` and `compose` read a single exposure's hits as `run` does (they were kept: a mean mosaic carried
    them, a composite showed each as a bright dot of one colour): the science mosaic has no data there (AE_NCR,
    each input's count in HISTORY); the composite, a picture, shows them filled from their neighbours (AE_FILLH) as
    `run`'s display planes do, not as black dots grown by the reprojection."""
    rng = np.random.default_rng(11)
    clean, sigma = _field(rng, n_stars=6)
    hit = clean.copy()
    hit[40, 40] += 3000
    hit[80, 20:23] += 1500
    blue = _flt(tmp_path / "hit_flt.fits", hit, sigma, photplam=4500.0)
    _flt(tmp_path / "clean_flt.fits", clean, sigma, photplam=4500.0)
    red = _flt(tmp_path / "red_flt.fits", clean, sigma)
    runner = CliRunner()
    result = runner.invoke(app, ["mosaic", str(blue), "--grid", "first", "-o", str(tmp_path / "m"), "--format", "fits"])
    assert result.exit_code == 0, result.output
    assert "hit_flt.fits: cosmic rays: 4 pixels" in " ".join(result.output.split())
    with fits.open(tmp_path / "m" / "mosaic.mosaic.fits") as h:
        assert h[0].header["AE_NCR"] == 4 and "input 1 cosmic rays: 4 pixels" in " ".join(h[0].header["HISTORY"])
        assert np.isnan(h[0].data[40, 40]) and np.isnan(h[0].data[80, 20:23]).all()
        assert np.isnan(h[0].data).sum() == 4  # the hits alone (their neighbours are data)
    kept = runner.invoke(app, ["mosaic", str(blue), "--grid", "first", "-o", str(tmp_path / "k"), "--format", "fits",
                               "--no-clean-cosmic-rays"])
    assert kept.exit_code == 0, kept.output
    with fits.open(tmp_path / "k" / "mosaic.mosaic.fits") as h:
        assert h[0].header["AE_NCR"] == -1 and np.isfinite(h[0].data).all()
    composites = {}
    for name, first, args in (("hit", blue, ()), ("clean", tmp_path / "clean_flt.fits", ()),
                              ("kept", blue, ("--no-clean-cosmic-rays",))):
        result = runner.invoke(app, ["compose", str(first), str(red), "-o", str(tmp_path / name), "--name", "c",
                                     "--format", "fits", *args])
        assert result.exit_code == 0, result.output
        with fits.open(tmp_path / name / "c.composite.fits") as h:
            composites[name] = np.stack([h[c].data for c in ("RED", "GREEN", "BLUE")], -1)
            composites[name + " cards"] = (h[0].header["AE_NCR"], h[0].header["AE_FILLH"])
    assert composites["hit cards"] == (4, 8) and composites["kept cards"] == (-1, 8)
    assert np.isfinite(composites["hit"]).all()
    near = (slice(38, 43), slice(38, 43))
    assert np.abs(composites["hit"][near] - composites["clean"][near]).max() < 0.05
    assert np.abs(composites["kept"][near] - composites["clean"][near]).max() > 0.2  # the hit, a bright dot

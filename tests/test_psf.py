"""The telescope network's output smoothed to the input's PSF (`imaging.psf`, `run --psf-fwhm`)."""

import math
import re

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.ndimage import gaussian_filter, maximum_filter, median_filter
from scipy.special import erf
from typer.testing import CliRunner

from astroenhance.cli import app
from astroenhance.config import EnhanceConfig
from astroenhance.errors import SettingsError
from astroenhance.imaging import psf
from astroenhance.imaging.psf import (
    DETECTOR_SHARE,
    detector_pixel,
    fwhm_arcsec,
    fwhm_from_stars,
    smoothing_sigma,
    star_widths,
)
from astroenhance.io import noise
from astroenhance.io.noise import frame_psf_fwhm, frame_star_fwhm
from astroenhance.io.readers import open_frames
from astroenhance.pipeline import Enhancer

from .conftest import EXAMPLE, FIXTURES


def test_hst_psf_widths_from_the_optics_are_lower_bounds_of_the_measured_ones():
    # WFC3/IR F105W (pivot 1.0551 um, 0.13" pixels): measured FWHM ~0.124"; WFC3/UVIS F606W ~0.067"; ACS/WFC
    # F814W ~0.09" (instrument handbooks): the bound is at or below each, and above the diffraction core alone
    for wavelength, pixel, measured in ((1.0551e-6, 0.13, 0.124), (0.5889e-6, 0.0396, 0.067), (0.8045e-6, 0.05, 0.09)):
        core = 1.03 * wavelength / 2.4 * 206264.8
        assert core < fwhm_arcsec(wavelength, pixel) <= measured
    assert fwhm_arcsec(1e-6, 0.0) == pytest.approx(1.03e-6 / 2.4 * 206264.8)
    assert fwhm_arcsec(1e-6, 0.1) == pytest.approx(math.hypot(1.03e-6 / 2.4 * 206264.8, DETECTOR_SHARE * 0.1))
    # the detector's pixel, where the header names it; else the frame's own (a single exposure's)
    assert detector_pixel(fits.Header({"INSTRUME": "WFC3", "DETECTOR": "IR"}), 0.06) == 0.13
    assert detector_pixel(fits.Header({"INSTRUME": "WFPC2", "DETECTOR": 1}), 0.1) == 0.0455
    assert detector_pixel(fits.Header({"INSTRUME": "NIRCAM"}), 0.031) == 0.031
    assert detector_pixel(None, 0.05) == 0.05
    # smoothing: a share of the PSF's own sigma, on the output's pixels; none where the PSF is not known
    assert smoothing_sigma(0.0, 4) == 0.0
    assert smoothing_sigma(2.3548, 4) == pytest.approx(0.6 * 4, rel=1e-4)


def test_a_frames_psf_width_comes_from_its_header_or_is_said_unknown(tmp_path):
    with open_frames(EXAMPLE) as [src]:  # a Frontier Fields WFC3/IR F105W drizzle at 0.06"
        fwhm, source = frame_psf_fwhm(src)
    assert source == "header" and fwhm == pytest.approx(fwhm_arcsec(1.0551047e-6, 0.13) / 0.06, rel=1e-3)
    assert 1.9 < fwhm < 2.2
    data = fits.getdata(EXAMPLE)
    for header, why in ((fits.Header(), "PHOTPLAM"), (fits.Header({"PHOTPLAM": 10551.0}), "WCS"),
                        (fits.Header({"PHOTPLAM": 10551.0, "TELESCOP": "JWST"}), "JWST")):
        fits.PrimaryHDU(data, header).writeto(tmp_path / "f: 2.fits", overwrite=True)
        with open_frames(tmp_path / "f: 2.fits") as [src]:
            fwhm, source = frame_psf_fwhm(src)
        assert fwhm == 0.0 and why in source
        assert "f: 2" not in source and source.startswith(("the PSF", "PHOTPLAM"))  # why, not whose (a colon too)


def _well_sampled_frame(seed: int = 3, n: int = 96, fwhm: float = 2.5) -> tuple[np.ndarray, np.ndarray]:
    """A frame that samples its PSF well: 12 stars and a smooth galaxy through a Gaussian PSF of ``fwhm`` pixels,
    sky 10, white noise of sigma 1; and where the stars are (a mask 3 pixels about each)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((n, n))
    for _ in range(12):
        img[rng.integers(4, n - 4), rng.integers(4, n - 4)] += 10 ** rng.uniform(1.5, 3.0)
    stars = maximum_filter(img > 0, 7)
    yy, xx = np.mgrid[:n, :n]
    img += 3.0 * np.exp(-((yy - 40) ** 2 + (xx - 55) ** 2) / (2 * 12.0**2))
    img = gaussian_filter(img, fwhm / 2.3548)
    return (img + 10.0 + rng.normal(0, 1.0, img.shape)).astype(np.float32), stars


def _sub_psf_peaks(display: np.ndarray, away: np.ndarray) -> int:
    """Local peaks of the display 0.03 above their 9x9 median (dots of a few output pixels) where ``away`` (output
    pixels) is True."""
    hp = display - median_filter(display, 9)
    return int(((hp == maximum_filter(hp, 5)) & (hp > 0.03) & away).sum())


def test_a_well_sampled_frame_told_its_psf_gets_no_dots_sharper_than_it_and_keeps_its_flux():
    data, stars = _well_sampled_frame()
    sky = ~np.kron(stars, np.ones((4, 4), bool))
    out = {}
    for fwhm in (0.0, 2.5):
        res = Enhancer(EnhanceConfig(device="cpu", colorize=False, psf_fwhm=fwhm)).enhance_array(data)
        out[fwhm] = res
    plain, told = out[0.0], out[2.5]
    lum = {k: v.rgb[..., 1].astype(np.float64) for k, v in out.items()}
    # away from the stars the network alone draws the noise as dots sharper than the PSF; smoothed to it, far fewer
    assert _sub_psf_peaks(lum[0.0], sky) > 3 * max(1, _sub_psf_peaks(lum[2.5], sky))
    # what changed is mostly fine detail: away from the stars the two differ far less once both are smoothed to the
    # PSF's scale
    change = np.abs(lum[0.0] - lum[2.5])[sky].mean()
    assert np.abs(gaussian_filter(lum[0.0], 4) - gaussian_filter(lum[2.5], 4))[sky].mean() < 0.35 * change
    # FLUX keeps each input pixel's flux (its 16 pixels sum to within the tolerance, AE_FLUXT sigmas, of the input
    # pixel) in both, and the whole frame's to 0.1%
    for res in (plain, told):
        blocks = res.flux.reshape(96, 4, 96, 4).sum(axis=(1, 3))
        tolerance = res.header["AE_FLUXT"] * res.header["AE_SKYSG"]
        assert np.abs(blocks - data).max() <= tolerance * (1 + 1e-4)
        assert blocks.sum() == pytest.approx(data.sum(), rel=1e-3)


def test_the_smoothing_spares_bright_cores_and_smooths_the_sky(monkeypatch):
    """Smoothed where the output is faint only (`imaging.psf.KEEP`): the brightest stars' cores are the network's own,
    the sky's sub-PSF dots go as they do when smoothed everywhere."""
    from astroenhance.imaging import psf

    data, stars = _well_sampled_frame()
    sky = ~np.kron(stars, np.ones((4, 4), bool))
    lum = {}
    for name, fwhm, keep in (("plain", 0.0, psf.KEEP), ("faint", 2.5, psf.KEEP), ("everywhere", 2.5, 0.0)):
        monkeypatch.setattr(psf, "KEEP", keep)
        res = Enhancer(EnhanceConfig(device="cpu", colorize=False, psf_fwhm=fwhm)).enhance_array(data)
        lum[name] = res.rgb[..., 1].astype(np.float64)
    cores = np.kron(data > np.percentile(data, 99.7), np.ones((4, 4), bool))  # the brightest stars' peaks
    drop = {k: (lum["plain"] - lum[k])[cores].mean() for k in ("faint", "everywhere")}
    assert drop["everywhere"] > 0.01 and abs(drop["faint"]) < 0.25 * drop["everywhere"]
    assert _sub_psf_peaks(lum["plain"], sky) > 3 * max(1, _sub_psf_peaks(lum["faint"], sky))
    assert _sub_psf_peaks(lum["faint"], sky) <= _sub_psf_peaks(lum["everywhere"], sky) + 2


def test_run_records_the_psf_and_its_smoothing_and_a_frame_without_psf_is_as_before(tmp_path):
    runner = CliRunner()
    outs = {}
    for name, extra in (("header", []), ("off", ["--psf-fwhm", "0"]), ("given", ["--psf-fwhm", "3"])):
        result = runner.invoke(app, ["run", str(EXAMPLE), "-o", str(tmp_path / name), "--no-colorize", "--format",
                                     "fits", "-q", *extra])
        assert result.exit_code == 0, result.output
        [path] = (tmp_path / name).glob("*.fits")
        outs[name] = fits.open(path)
    h = {k: v[0].header for k, v in outs.items()}
    assert h["header"]["AE_PSFSR"] == "header" and 1.9 < h["header"]["AE_PSFFW"] < 2.2
    assert h["header"]["AE_PSFSM"] == pytest.approx(smoothing_sigma(h["header"]["AE_PSFFW"], 4), rel=1e-3)
    assert (h["off"]["AE_PSFSR"], h["off"]["AE_PSFFW"], h["off"]["AE_PSFSM"]) == ("off", 0.0, 0.0)
    assert (h["given"]["AE_PSFSR"], h["given"]["AE_PSFFW"]) == ("given", 3.0)
    assert any("psf_smoothing" in str(c) for c in h["header"]["HISTORY"])
    assert not np.array_equal(outs["header"]["GREEN"].data, outs["off"]["GREEN"].data)
    # `check` says what the display was smoothed to, and nothing where it was not
    said = {name: " ".join(runner.invoke(app, ["check", str(next((tmp_path / name).glob("*.fits")))]).output.split())
            for name in ("header", "off")}
    assert re.search(r"smoothed where faint to the PSF: FWHM 2\.0\d* input px from the header,", said["header"])
    assert "smoothed where faint" not in said["off"]
    # a frame whose header cannot tell its PSF (no PHOTPLAM: the evaluation protocol's inputs) is measured on its
    # stars; the example holds too few compact sources for that (2), so it is enhanced as with --psf-fwhm 0
    src = fits.open(EXAMPLE)
    src[0].header.remove("PHOTPLAM")
    src.writeto(tmp_path / "nophot.fits")
    result = runner.invoke(app, ["run", str(tmp_path / "nophot.fits"), "-o", str(tmp_path / "nophot"),
                                 "--no-colorize", "--format", "fits", "-q"])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "nophot" / "nophot.enhanced.fits") as n:
        assert n[0].header["AE_PSFFW"] == 0.0 and "PHOTPLAM" in n[0].header["AE_PSFSR"]
        assert np.array_equal(n["GREEN"].data, outs["off"]["GREEN"].data)
    for v in outs.values():
        v.close()


def _star_field(fwhm: float, n: int = 40, size: tuple[int, int] = (160, 160), seed: int = 5,
                galaxies: int = 0) -> np.ndarray:
    """``n`` stars at random sub-pixel positions through a circular Gaussian PSF of ``fwhm`` pixels integrated over
    the pixels (peaks 25-2,000 sigma), and ``galaxies`` round exponential disks of many sizes; sky 100, noise 1."""
    rng = np.random.default_rng(seed)
    img = np.zeros(size)
    s = fwhm / 2.3548
    for _ in range(n):
        y, x = rng.uniform(8, size[0] - 8), rng.uniform(8, size[1] - 8)
        peak = 10 ** rng.uniform(1.4, 3.3)
        yy, xx = np.mgrid[:size[0], :size[1]]
        gx = 0.5 * (erf((xx + 0.5 - x) / (math.sqrt(2) * s)) - erf((xx - 0.5 - x) / (math.sqrt(2) * s)))
        gy = 0.5 * (erf((yy + 0.5 - y) / (math.sqrt(2) * s)) - erf((yy - 0.5 - y) / (math.sqrt(2) * s)))
        img += peak * 2 * math.pi * max(s, 0.4) ** 2 * gx * gy
    yy, xx = np.mgrid[:size[0], :size[1]]
    for _ in range(galaxies):
        y, x, r = rng.uniform(10, size[0] - 10), rng.uniform(10, size[1] - 10), 10 ** rng.uniform(0.2, 0.7)
        img += gaussian_filter(300 * np.exp(-np.hypot(yy - y, xx - x) / r), s)
    return img + 100 + rng.normal(0, 1, size)


@pytest.mark.parametrize("fwhm", [0.8, 1.5, 2.5, 4.0])
def test_the_psf_measured_on_stars_is_their_width(fwhm):
    widths = star_widths(_star_field(fwhm), 100.0, 1.0)[1]
    assert widths.size >= 20
    assert np.median(widths) == pytest.approx(fwhm, rel=0.03)  # each star's fit, pixel-integrated
    measured, source = fwhm_from_stars(widths)  # the narrowest few: a little under, never over
    assert (0.85 if fwhm < 1 else 0.93) * fwhm < measured <= 1.01 * fwhm and source.startswith("stars (")


def _moffat_star_field(fwhm: float, beta: float, n: int = 30, size: int = 240, seed: int = 7) -> np.ndarray:
    """``n`` stars at sub-pixel positions through a circular Moffat PSF (``fwhm`` pixels, index ``beta``: wings
    heavier than a Gaussian's) integrated over the pixels (8² points each), peaks 25-2,000 sigma; sky 100, noise 1."""
    rng = np.random.default_rng(seed)
    img, half, o = np.zeros((size, size)), 12, 8
    alpha2 = (fwhm / 2) ** 2 / (2 ** (1 / beta) - 1)
    fine = (np.arange(-half, half + 1)[:, None] + (np.arange(o) + 0.5) / o - 0.5).ravel()
    for _ in range(n):
        y, x = rng.integers(half, size - half, 2)
        dy, dx = rng.uniform(-0.5, 0.5, 2)
        light = (1 + ((fine[:, None] - dy) ** 2 + (fine[None, :] - dx) ** 2) / alpha2) ** -beta
        stamp = light.reshape(2 * half + 1, o, 2 * half + 1, o).mean(axis=(1, 3))
        img[y - half:y + half + 1, x - half:x + half + 1] += 10 ** rng.uniform(1.4, 3.3) * stamp / stamp.max()
    return img + 100 + rng.normal(0, 1, img.shape)


@pytest.mark.parametrize("fwhm, beta", [(1.0, 2.5), (1.6, 2.5), (3.0, 1.8), (3.0, 4.0)])
def test_the_psf_of_stars_with_broad_wings_is_their_core_not_their_wings(fwhm, beta):
    # a Moffat star (a ground-based seeing disk, HST's wings): a Gaussian fitted to it reads it 10-20% wide
    data = _moffat_star_field(fwhm, beta)
    widths = star_widths(data, 100.0, 1.0)[1]
    assert widths.size >= 20
    assert np.median(widths) == pytest.approx(fwhm, rel=0.03)
    # the narrowest few: a little under (a faint star's fit, a pair whose wings overlap), never over
    measured = fwhm_from_stars(widths)
    assert 0.88 * fwhm < measured[0] <= 1.02 * fwhm
    # in any units: a frame in erg/s/cm²/Hz (1e-36) reads the same (the fit's tolerances are not absolute)
    tiny = fwhm_from_stars(star_widths(data * 1e-36, 100e-36, 1e-36)[1])
    assert tiny[1] == measured[1] and tiny[0] == pytest.approx(measured[0], rel=1e-6)


def test_the_psf_from_compact_sources_bounds_it_and_needs_three():
    # galaxies of many sizes and no stars: a width, but above the PSF's (every source is the PSF widened)
    widths = star_widths(_star_field(1.5, n=0, galaxies=25), 100.0, 1.0)[1]
    assert widths.size >= psf.MIN_SOURCES and fwhm_from_stars(widths)[0] > 1.5 * 1.2
    assert fwhm_from_stars(np.array([2.0, 2.0])) == (0.0, "2 compact sources to measure it on (fewer than 3)")
    # stars among galaxies decide it; a peak next to no data is not fitted
    mixed = star_widths(_star_field(2.0, n=25, galaxies=25), 100.0, 1.0)[1]
    assert 0.93 * 2.0 < fwhm_from_stars(mixed)[0] <= 2.02
    holed = _star_field(2.0)
    holed[:, ::9] = np.nan
    assert star_widths(holed, 100.0, 1.0)[1].size == 0


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
                  elements=st.one_of(st.floats(-1e6, 1e6, width=32), st.sampled_from([np.nan, np.inf, -np.inf]))),
       st.floats(-10, 10), st.floats(1e-3, 10))
def test_star_widths_take_any_frame_and_the_psf_lies_among_the_narrowest(data, sky, sigma):
    snr, widths = star_widths(data, sky, sigma)
    assert snr.shape == widths.shape and np.all(snr >= psf.STAR_SNR - 1e-6)
    assert np.all((widths > 0.11) & (widths < psf.STAMP - 0.01))  # within the fit's bounds, none at them
    fwhm, source = fwhm_from_stars(widths)
    if widths.size < psf.MIN_SOURCES:
        assert fwhm == 0.0 and "fewer than" in source
    else:  # the middle of the three narrowest, whatever their order
        assert fwhm == np.sort(widths)[1] and fwhm_from_stars(widths[::-1]) == (fwhm, source)


@pytest.mark.parametrize("strip", [48, 1024])
def test_a_frames_psf_is_measured_on_its_stars_strip_by_strip_once(tmp_path, monkeypatch, strip):
    monkeypatch.setattr(noise, "STAR_STRIP", strip)
    data = _star_field(2.2, size=(230, 120))
    fits.PrimaryHDU(data.astype(np.float32)).writeto(tmp_path / "stars.fits")
    whole = fwhm_from_stars(star_widths(data.astype(np.float32).astype(np.float64), 100.0, 1.0)[1])
    with open_frames(tmp_path / "stars.fits") as [src]:
        fwhm, source = frame_star_fwhm(src, 100.0, 1.0)
        assert fwhm == pytest.approx(whole[0], rel=1e-9)
        assert source == whole[1]
        monkeypatch.setattr(src, "read_rows", None)  # measured once: asked for the pixels and again for the header
        assert frame_star_fwhm(src, 100.0, 1.0) == (fwhm, source)


def test_run_told_stars_smooths_a_frame_without_a_header_to_its_measured_psf(tmp_path):
    data, stars = _well_sampled_frame()  # a Gaussian PSF of FWHM 2.5 px sampled at the pixels' centres
    out = {fwhm: Enhancer(EnhanceConfig(device="cpu", colorize=False, psf_fwhm=fwhm)).enhance_array(data)
           for fwhm in ("stars", None, 0.0)}
    header = out["stars"].header
    assert header["AE_PSFSR"].startswith("stars (") and 0.9 * 2.5 < header["AE_PSFFW"] <= 2.53
    assert header["AE_PSFSM"] == pytest.approx(smoothing_sigma(header["AE_PSFFW"], 4), rel=1e-3)
    # the default where no header can say: the same
    assert [out[None].header[k] for k in ("AE_PSFSR", "AE_PSFFW")] == [header[k] for k in ("AE_PSFSR", "AE_PSFFW")]
    np.testing.assert_array_equal(out[None].rgb, out["stars"].rgb)
    sky = ~np.kron(stars, np.ones((4, 4), bool))
    lum = {k: v.rgb[..., 1].astype(np.float64) for k, v in out.items()}
    assert _sub_psf_peaks(lum[0.0], sky) > 3 * max(1, _sub_psf_peaks(lum["stars"], sky))
    np.testing.assert_array_equal(out[0.0].flux, out["stars"].flux)
    # the command line takes it, and nothing else but a number
    fits.PrimaryHDU(data).writeto(tmp_path / "stars.fits")
    result = CliRunner().invoke(app, ["run", str(tmp_path / "stars.fits"), "-o", str(tmp_path / "out"),
                                      "--no-colorize", "--format", "fits", "-q", "--psf-fwhm", "stars"])
    assert result.exit_code == 0, result.output
    assert fits.getheader(tmp_path / "out" / "stars.enhanced.fits")["AE_PSFSR"] == header["AE_PSFSR"]
    result = CliRunner().invoke(app, ["run", str(tmp_path / "stars.fits"), "-o", str(tmp_path / "bad"),
                                      "--psf-fwhm", "starz"])
    assert result.exit_code == 2 and "stars" in result.output and not (tmp_path / "bad").exists()
    with pytest.raises(SettingsError, match="stars"):
        EnhanceConfig(psf_fwhm="starz").check()


def test_a_frame_whose_psf_is_not_known_says_how_to_tell_it(tmp_path):
    # a ground-based frame (no HST header to tell its PSF): measured on its stars, or, where it holds too few
    # compact sources, a note saying why neither could and how to tell it
    noise = np.random.default_rng(3).normal(100, 1, (64, 64))
    for name, data in (("stars", _star_field(2.5, size=(64, 64))), ("blank", noise)):
        fits.PrimaryHDU(data.astype(np.float32), fits.Header({"TELESCOP": "CFHT 3.6M"})).writeto(tmp_path / f"{name}.fits")
    notes, said, measured = {}, {}, {}
    for name, fwhm in (("stars", None), ("blank", None), ("blank", "stars"), ("blank", 0.0)):
        [res] = Enhancer(EnhanceConfig(device="cpu", colorize=False, formats=("fits",), psf_fwhm=fwhm)
                         ).enhance_file(tmp_path / f"{name}.fits", tmp_path / f"out{name}{fwhm}")
        notes[name, fwhm] = [n for n in res.notes if n.startswith("PSF not known")]
        measured[name, fwhm] = [n for n in res.notes if n.startswith("PSF measured")]
        said[name, fwhm] = fits.getheader(res.outputs[0])["AE_PSFSR"]
    assert notes["stars", None] == [] and said["stars", None].startswith("stars (")
    assert len(measured["stars", None]) == 1 and "narrowest" in measured["stars", None][0]  # by default: said
    assert measured["blank", "stars"] == measured["blank", None] == []
    [note] = notes["blank", None]
    assert "CFHT" in note and "compact sources" in note and "--psf-fwhm" in note
    assert len(notes["blank", "stars"]) == 1 and "compact sources" in notes["blank", "stars"][0]  # asked, could not
    assert notes["blank", 0.0] == []  # turned off: nothing to say


def test_psf_fwhm_out_of_range_is_a_usage_error(tmp_path):
    with pytest.raises(SettingsError, match="psf-fwhm"):
        EnhanceConfig(psf_fwhm=-1.0).check()
    result = CliRunner().invoke(app, ["run", str(FIXTURES / "j94f05bgq_flt.fits"), "-o", str(tmp_path / "out"),
                                      "--psf-fwhm", "100"])
    assert result.exit_code == 2 and not (tmp_path / "out").exists()


def test_flux_keeps_the_networks_own_light_whatever_the_display_shows_and_however_bands_cut(hrc_crop, monkeypatch):
    """The display is smoothed to the PSF; FLUX is made from the network's own luminance, as without smoothing —
    also where the frame is cut into column bands, whose shared columns carry both (`engine._BandCarry`)."""
    import astroenhance.pipeline.engine as engine

    data, wcs = hrc_crop
    out = {}
    for width in (40, 1024):
        monkeypatch.setattr(engine, "BAND_WIDTH", width)
        for fwhm in (0.0, 2.5):
            cfg = EnhanceConfig(device="cpu", colorize=False, tile=32, overlap=8, psf_fwhm=fwhm)
            out[width, fwhm] = Enhancer(cfg).enhance_array(data, wcs)
    for width in (40, 1024):
        np.testing.assert_array_equal(out[width, 0.0].flux, out[width, 2.5].flux)
        assert np.nanmax(np.abs(out[width, 0.0].luminance - out[width, 2.5].luminance)) > 0.01
    # the smoothed display is the same however the columns are cut into bands (to float rounding)
    assert np.nanmax(np.abs(out[40, 2.5].luminance - out[1024, 2.5].luminance)) < 1e-4

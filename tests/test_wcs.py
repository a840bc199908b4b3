"""The WCS of the 4x grid, on real HST headers: CD (ACS/HRC), PC+CDELT (WFC3/IR cutout), SIP (+D2IM/NPOL)."""

import warnings

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st

from astroenhance.imaging.wcs import output_to_input_pixels, scale_wcs, wcs_header, wcs_tables

from .conftest import FIXTURES, HRC

CASES = [
    (HRC, 1, "cd"),
    (FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz", 0, "pc"),
    (FIXTURES / "sample_svm_flc.fits.gz", 1, "sip"),
    (FIXTURES / "sample_ipppssoot_flt.fits.gz", 1, "sip"),
    (FIXTURES / "2chipA.fits.gz", 4, "sip"),
]


def _load(path, ext):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hdul:
            return WCS(hdul[ext].header, hdul), hdul[ext].header.copy()


@pytest.mark.parametrize("path,ext,kind", CASES, ids=[c[0].name + "-" + c[2] for c in CASES])
def test_every_output_pixel_centre_matches_input_sky(path, ext, kind):
    w_in, hdr = _load(path, ext)
    assert {"cd": w_in.wcs.has_cd() and w_in.sip is None, "pc": not w_in.wcs.has_cd(), "sip": w_in.sip is not None}[kind]
    w_out, _ = scale_wcs(w_in, 4)
    written = fits.HDUList([fits.PrimaryHDU(header=wcs_header(w_out)), *wcs_tables(w_out)])
    w_out = WCS(written[0].header, written)  # through the header and tables, as a reader of our FITS sees it
    ref = w_in  # lookup-table distortions (NPOL, D2IM) included
    ny, nx = hdr["NAXIS2"] * 4, hdr["NAXIS1"] * 4
    # every output pixel of the frame when small, else a dense sample including the corners
    if nx * ny <= 200_000:
        yp, xp = np.mgrid[0:ny, 0:nx].astype(float)
    else:
        rng = np.random.default_rng(0)
        xp = np.concatenate([rng.uniform(0, nx - 1, 20000), [0, nx - 1, 0, nx - 1]])
        yp = np.concatenate([rng.uniform(0, ny - 1, 20000), [0, 0, ny - 1, ny - 1]])
    xp, yp = xp.ravel(), yp.ravel()
    ra, dec = w_out.all_pix2world(xp, yp, 0)
    xi, yi = ref.all_world2pix(ra, dec, 0, tolerance=1e-12, maxiter=200)
    xe, ye = output_to_input_pixels(xp, yp, 4)
    assert np.hypot(xi - xe, yi - ye).max() < 1e-6


def test_formulas_by_hand():
    w_in, _ = _load(FIXTURES / "sample_svm_flc.fits.gz", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w_out, notes = scale_wcs(w_in, 4)
    np.testing.assert_allclose(w_out.wcs.crpix, (w_in.wcs.crpix - 0.5) * 4 + 0.5)
    np.testing.assert_allclose(w_out.wcs.cd, w_in.wcs.cd / 4)
    p, q = 2, 1
    assert w_out.sip.a[p, q] == pytest.approx(w_in.sip.a[p, q] * 4.0 ** (1 - p - q))
    assert w_out.sip.b[1, 1] == pytest.approx(w_in.sip.b[1, 1] / 4)  # order 2: divided by 4


@pytest.mark.parametrize("seed", [0, 1])
def test_lookup_table_distortions_are_carried_exactly(seed):
    """NPOL and D2IM tables (ACS/WFC, WFC3/UVIS; here 0.3-pixel random tables on the fixture's grid, larger than
    HST's) were dropped, the output's sky off by them (~0.1 input pixel on real ACS/WFC frames); now carried: every
    output position's sky is the input's to 1e-6 of an input pixel, where the tables alone move it by 0.1 or more."""
    from astropy.wcs import DistortionLookupTable

    w_in, _ = _load(FIXTURES / "sample_svm_flc.fits.gz", 1)
    assert w_in.det2im1 is not None and w_in.cpdis1 is not None
    rng = np.random.default_rng(seed)
    for name in ("cpdis1", "cpdis2", "det2im1", "det2im2"):
        t = getattr(w_in, name)
        setattr(w_in, name, DistortionLookupTable(rng.normal(0, 0.3, t.data.shape).astype(np.float32), t.crpix,
                                                  t.crval, t.cdelt))
    w_out, notes = scale_wcs(w_in, 4)
    assert "WCSDVARR" in " ".join(notes)
    written = fits.HDUList([fits.PrimaryHDU(header=wcs_header(w_out)), *wcs_tables(w_out)])
    assert sorted(h.name for h in written[1:]) == ["D2IMARR", "D2IMARR", "WCSDVARR", "WCSDVARR"]
    back = WCS(written[0].header, written)
    xp, yp = rng.uniform(0, 2000, 3000), rng.uniform(0, 2000, 3000)  # the tables' span, in output pixels
    xi, yi = w_in.all_world2pix(*back.all_pix2world(xp, yp, 0), 0, tolerance=1e-12, maxiter=200)
    xe, ye = output_to_input_pixels(xp, yp, 4)
    assert np.hypot(xi - xe, yi - ye).max() < 1e-6
    plain = w_in.deepcopy()
    plain.cpdis1 = plain.cpdis2 = plain.det2im1 = plain.det2im2 = None
    xs, ys = plain.all_world2pix(*back.all_pix2world(xp, yp, 0), 0, tolerance=1e-12, maxiter=200)
    assert np.percentile(np.hypot(xs - xe, ys - ye), 50) > 0.1


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 360), st.booleans())
def test_avm_tags_give_back_the_wcs_at_every_orientation(angle, mirrored):
    """pyavm's `from_wcs` wrote Scale (+, -) for half of all orientations, which AVM readers (pyavm's `to_wcs`
    too) take as the picture turned 180 degrees: a PNG's sky 2.6" off 190 pixels from its reference. The tags now
    give back the WCS at any rotation, and a mirrored sky through the exact CD matrix."""
    import pyavm

    from astroenhance.io.writers import avm_from_wcs

    t, s = np.radians(angle), 1e-5
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix, w.wcs.radesys = [150.1, 2.2], [20.0, 15.0], "ICRS"
    w.wcs.cd = np.array([[-s * np.cos(t), s * np.sin(t)], [s * np.sin(t), s * np.cos(t)]]) @ np.diag(
        [-1.0 if mirrored else 1.0, 1.0])
    avm = avm_from_wcs(w, (150, 190))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        back = pyavm.AVM.from_xml(avm.to_xml()).to_wcs()  # through the tags as written
    assert not [w for w in said if "Equinox" in str(w.message)]  # (readers assumed J2000, with a warning)
    pix = np.array([[0.0, 0.0], [189.0, 149.0], [0.0, 149.0]])
    np.testing.assert_allclose(back.wcs_pix2world(pix, 0), w.wcs_pix2world(pix, 0), atol=1e-9)


@pytest.mark.parametrize("form", ["cd", "pc"])
def test_flipping_rows_keeps_every_pixel_on_its_sky(form):
    """`flip_rows`: row y of the flipped WCS is row height-1-y of the original (CD or PC+CDELT), and twice is once."""
    from astroenhance.imaging.wcs import flip_rows

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix = [150.1, 2.2], [20.0, 15.0]
    m = np.array([[-1.8e-5, 0.9e-5], [0.7e-5, 2.1e-5]])
    if form == "cd":
        w.wcs.cd = m
    else:
        w.wcs.cdelt, w.wcs.pc = [-2e-5, 2e-5], m / np.array([[-2e-5], [2e-5]])
    x, y = np.meshgrid(np.arange(0, 48, 7.0), np.arange(0, 40, 5.0))
    flipped = flip_rows(w, 40)
    np.testing.assert_allclose(flipped.all_pix2world(x, 39 - y, 0), w.all_pix2world(x, y, 0), atol=1e-12)
    np.testing.assert_allclose(flip_rows(flipped, 40).all_pix2world(x, y, 0), w.all_pix2world(x, y, 0), atol=1e-12)


@pytest.mark.parametrize("encoding", ["float32", "rice"])
def test_the_fits_output_of_a_frame_with_lookup_tables_gives_its_sky(tmp_path, encoding):
    """`run` of an ACS/WFC-like flc (SIP + NPOL + D2IM): the output's WCS, read from the file as HST's own files are
    read, gives every output pixel centre the sky of the matching input position under the input's full WCS; the
    file verifies its checksums (the tables are extensions of their own; rice-compressed planes are summed as the
    binary tables they are stored as)."""
    from typer.testing import CliRunner

    from astroenhance.cli import app

    result = CliRunner().invoke(app, ["run", str(FIXTURES / "sample_svm_flc.fits.gz"), "-o", str(tmp_path), "--format",
                                      "fits", "--no-colorize", "--hdu", "sci1", "--fits-encoding", encoding])
    assert result.exit_code == 0, result.output
    w_in, _ = _load(FIXTURES / "sample_svm_flc.fits.gz", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(tmp_path / "sample_svm_flc.sci1.enhanced.fits", disable_image_compression=True) as stored:
            assert all(hdu.verify_checksum() == 1 and hdu.verify_datasum() == 1 for hdu in stored)
        with fits.open(tmp_path / "sample_svm_flc.sci1.enhanced.fits") as h:
            assert [hdu.name for hdu in h[6:]] == ["D2IMARR", "D2IMARR", "WCSDVARR", "WCSDVARR"]
            outs = [WCS(h[name].header, h) for name in ("RED", "FLUX", "FLUXERR")]
    yp, xp = np.mgrid[0:40, 0:40].astype(float)
    xe, ye = output_to_input_pixels(xp.ravel(), yp.ravel(), 4)
    for w_out in outs:
        assert w_out.cpdis1 is not None and w_out.det2im1 is not None
        xi, yi = w_in.all_world2pix(*w_out.all_pix2world(xp.ravel(), yp.ravel(), 0), 0, tolerance=1e-12,
                                    maxiter=200)
        assert np.hypot(xi - xe, yi - ye).max() < 1e-6


def test_a_pictures_avm_is_the_closest_linear_wcs_and_says_how_far_off_it_is(tmp_path):
    """AVM holds no distortion: a picture of a distorted frame's AVM was its linear part alone, "approximate" — on an
    ACS/WFC chip's 4x grid 246 output pixels off at a corner. Now the linear WCS closest over the picture (less
    off), and the note gives the largest error, which the PNG's AVM keeps to."""
    import pyavm
    from typer.testing import CliRunner

    from astroenhance.cli import app
    from astroenhance.io.writers import linear_fit

    w_in, _ = _load(FIXTURES / "2chipA.fits.gz", 1)
    w4, _ = scale_wcs(w_in, 4)
    shape = (2048 * 4, 4096 * 4)  # the whole chip's 4x grid, as the header describes it
    fit, worst = linear_fit(w4, shape)
    y, x = np.mgrid[0:shape[0]:256, 0:shape[1]:256].astype(float)
    sky = w4.pixel_to_world(x.ravel(), y.ravel())
    linear = w4.deepcopy()
    linear.sip = linear.cpdis1 = linear.cpdis2 = linear.det2im1 = linear.det2im2 = None
    linear.wcs.ctype = [c.replace("-SIP", "") for c in linear.wcs.ctype]
    errors = {name: np.hypot(*(np.array(w.world_to_pixel(sky)) - [x.ravel(), y.ravel()])).max()
              for name, w in (("linear part", linear), ("fit", fit))}
    assert errors["fit"] < 0.8 * errors["linear part"] and errors["fit"] <= worst * 1.05
    result = CliRunner().invoke(app, ["run", str(FIXTURES / "2chipA.fits.gz"), "-o", str(tmp_path), "--dq-mask", "none",
                                      "--hdu", "sci1", "--no-colorize"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "AVM holds a linear WCS" in said
    stated = float(said.split("the closest to the frame's over the picture: up to ")[1].split(" pixels")[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        avm = pyavm.AVM.from_image(str(tmp_path / "2chipA.sci1.enhanced.png")).to_wcs()
        with fits.open(tmp_path / "2chipA.sci1.enhanced.fits") as h:
            full = WCS(h["RED"].header, h)
    y, x = np.mgrid[0:40:3, 0:40:3].astype(float)
    px, py = avm.world_to_pixel(full.pixel_to_world(x.ravel(), y.ravel()))
    assert np.hypot(px - x.ravel(), py - y.ravel()).max() <= stated * 1.05 + 1e-3


@pytest.mark.parametrize("cutout", [None, "17 9 pix"])
@pytest.mark.parametrize("physical", [{}, {"LTV1": -100.0, "LTV2": -40.25, "LTM1_1": 0.5, "LTM2_2": 0.5},
                                      {"LTV1": 3.0, "LTM1_1": 0.8, "LTM1_2": 0.6, "LTM2_1": -0.6, "LTM2_2": 0.8}])
def test_an_outputs_physical_coordinates_are_the_input_pixels_on_its_detector(tmp_path, cutout, physical):
    """DS9's and IRAF's "physical" coordinates of every output pixel (its LTV/LTM) are the input pixel it lies in,
    on the input's detector where the input's own LTV/LTM place it there (a binned subarray; a rotated grid): the
    position the input's WCS gives for the output pixel's sky, through the input's LTV/LTM. They were left out."""
    from typer.testing import CliRunner

    from astroenhance.cli import app

    rng = np.random.default_rng(3)
    w = WCS(naxis=2)
    w.wcs.ctype, w.wcs.crval, w.wcs.crpix = ["RA---TAN", "DEC--TAN"], [150.1, 2.2], [20.0, 15.0]
    w.wcs.cd = np.array([[-1e-5, 2e-6], [3e-6, 1e-5]])
    header = w.to_header()
    header.update(physical)
    frame = tmp_path / "sub.fits"
    fits.PrimaryHDU(rng.normal(10, 1, (30, 40)).astype(np.float32), header).writeto(frame)
    args = ["run", str(frame), "-o", str(tmp_path / "out"), "--format", "fits", "--no-colorize"]
    result = CliRunner().invoke(app, args + (["--cutout", cutout, "--cutout-size", "12"] if cutout else []))
    assert result.exit_code == 0, result.output
    (made,) = (tmp_path / "out").glob("*.fits")
    with fits.open(made) as h:
        outs = [(WCS(h[name].header), h[name].header) for name in ("RED", "FLUX", "FLUXERR")]
    m_in = np.array([[header.get("LTM1_1", 1.0), header.get("LTM1_2", 0.0)],
                     [header.get("LTM2_1", 0.0), header.get("LTM2_2", 1.0)]])
    v_in = np.array([header.get("LTV1", 0.0), header.get("LTV2", 0.0)])
    yp, xp = np.mgrid[0:48:5, 0:48:3].astype(float)  # 0-based output pixels
    for w_out, h_out in outs:
        m_out = np.array([[h_out["LTM1_1"], h_out.get("LTM1_2", 0.0)], [h_out.get("LTM2_1", 0.0), h_out["LTM2_2"]]])
        v_out = np.array([h_out["LTV1"], h_out["LTV2"]])
        phys = np.linalg.solve(m_out, np.stack([xp.ravel() + 1, yp.ravel() + 1]) - v_out[:, None])
        p_in = np.stack(w.world_to_pixel(w_out.pixel_to_world(xp.ravel(), yp.ravel()))) + 1  # 1-based input pixels
        expected = np.linalg.solve(m_in, p_in - v_in[:, None])
        assert np.abs(phys - expected).max() < 1e-6


def test_physical_coordinates_a_header_cannot_give_are_the_frames_own_pixels():
    from astroenhance.io.readers import IDENTITY_PHYSICAL, physical_of

    assert physical_of(fits.Header({"LTV1": "left", "LTM1_1": 1.0})) == IDENTITY_PHYSICAL
    assert physical_of(fits.Header({"LTM1_1": 0.0, "LTM2_2": 1.0})) == IDENTITY_PHYSICAL  # singular
    assert physical_of(fits.Header({"LTV2": -12.0})) == (1.0, 0.0, 0.0, 1.0, 0.0, -12.0)

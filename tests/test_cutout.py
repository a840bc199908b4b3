"""Cut-outs (`run --cutout`, `--cutout-size`): a part of a frame enhanced as the frame of those pixels would be, its
WCS exact, named and recorded by its FITS section; frames that do not hold the centre left out."""

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS, DistortionLookupTable
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from astroenhance.cli import app
from astroenhance.errors import InputError, SettingsError
from astroenhance.imaging.wcs import crop_wcs, wcs_header, wcs_tables
from astroenhance.io.cutout import OutsideCutoutError, parse_cutout
from astroenhance.io.readers import open_frames

from .conftest import EXAMPLE, FIXTURES, HRC, fuzz_examples


def _wcs(path, ext):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path) as hdul:
            return WCS(hdul[ext].header, hdul)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 3000), st.integers(0, 3000), st.integers(2, 900), st.integers(2, 900), st.integers(0, 2**16))
def test_a_cut_outs_wcs_gives_every_pixel_its_sky(x0, y0, nx, ny, seed):
    """SIP + NPOL + D2IM (the svm fixture's, with 0.3-pixel random tables): pixel (x, y) of the cut-out, through
    its written header and tables, is at the sky of pixel (x0 + x, y0 + y) of the frame, to 1e-6 pixel."""
    w_in = _wcs(FIXTURES / "sample_svm_flc.fits.gz", 1)
    rng = np.random.default_rng(seed)
    for name in ("cpdis1", "cpdis2", "det2im1", "det2im2"):
        t = getattr(w_in, name)
        setattr(w_in, name, DistortionLookupTable(rng.normal(0, 0.3, t.data.shape).astype(np.float32), t.crpix,
                                                  t.crval, t.cdelt))
    cut = crop_wcs(w_in, x0, y0, nx, ny)
    assert cut.pixel_shape == (nx, ny)
    written = fits.HDUList([fits.PrimaryHDU(header=wcs_header(cut)), *wcs_tables(cut)])
    back = WCS(written[0].header, written)
    x, y = rng.uniform(-0.5, nx - 0.5, 200), rng.uniform(-0.5, ny - 0.5, 200)
    xi, yi = w_in.all_world2pix(*back.all_pix2world(x, y, 0), 0, tolerance=1e-12, maxiter=200)
    assert np.hypot(xi - (x + x0), yi - (y + y0)).max() < 1e-6


@pytest.mark.parametrize("centre,size,expect", [
    ("150.1191 2.2059", None, ((150.1191, 2.2059), True, (256, 256), "pix")),
    ("10:00:28.6 +02:12:21", "30arcsec", ((150.119166, 2.205833), True, (30, 30), "arcsec")),
    ("10 00 28.6 +02 12 21", "1.5arcmin", ((150.119166, 2.205833), True, (90, 90), "arcsec")),
    ("10h00m28.6s,+2d12m21s", "20x10\"", ((150.119166, 2.205833), True, (20, 10), "arcsec")),
    ("512.5 300 pix", "400x300", ((512.5, 300), False, (400, 300), "pix")),
    ("-10 5 pix", "0.01deg", ((-10, 5), False, (36, 36), "arcsec")),
    (None, "64", (None, False, (64, 64), "pix")),
    ("150.1 -2e-3", "3", ((150.1, -0.002), True, (3, 3), "pix")),
])
def test_cut_out_centres_and_sizes_are_read_as_astronomers_write_them(centre, size, expect):
    c = parse_cutout(centre, size)
    want_centre, sky, want_size, unit = expect
    assert (c.sky, c.unit) == (sky, unit)
    np.testing.assert_allclose(c.size, want_size)
    if want_centre is None:
        assert c.centre is None
    else:
        np.testing.assert_allclose(c.centre, want_centre, atol=1e-5)
    assert parse_cutout(None, None) is None


@pytest.mark.parametrize("centre,size", [("abc", None), ("150", None), ("1 2 3 pix", None), ("10 95", None),
                                         ("1 2 pix", "0"), ("1 2 pix", "12.5"), ("1 2 pix", "30 parsec"),
                                         ("nan 2 pix", None), ("1 2 pix", "-5")])
def test_a_cut_out_no_frame_could_have_is_a_usage_error(centre, size):
    with pytest.raises(SettingsError, match="--cutout"):
        parse_cutout(centre, size)


def _piece(tmp_path, x0, y0, nx, ny):
    """The HRC fixture's pixels [x0:x0+nx, y0:y0+ny] (0-based) as a file of their own: SCI, ERR and DQ sliced, CRPIX
    moved (a CD WCS without distortion: nothing else changes)."""
    with fits.open(HRC) as h:
        out = fits.HDUList([fits.PrimaryHDU(header=h[0].header)])
        for ext in ("SCI", "ERR", "DQ"):
            hdr = h[ext].header.copy()
            if "CRPIX1" in hdr:
                hdr["CRPIX1"], hdr["CRPIX2"] = hdr["CRPIX1"] - x0, hdr["CRPIX2"] - y0
            out.append(fits.ImageHDU(h[ext].data[y0:y0 + ny, x0:x0 + nx], hdr, name=ext))
    path = tmp_path / "piece" / HRC.name
    path.parent.mkdir()
    out.writeto(path)
    return path


def test_a_cut_out_is_enhanced_as_the_frame_of_its_pixels(tmp_path):
    """`run --cutout` of 70x50 pixels of the HRC frame (ERR, DQ, cosmic rays searched) writes what `run` of a file
    holding only those pixels writes: the same display planes, FLUX and FLUXERR to the bit, the same sky, noise,
    display range and cosmic-ray count; named and recorded by its FITS section; its WCS the frame's at every pixel."""
    x0, y0, nx, ny = 100, 80, 70, 50
    common = ["--format", "fits", "--clean-cosmic-rays", "--no-colorize"]
    r = CliRunner().invoke(app, ["run", str(HRC), "-o", str(tmp_path / "a"), "--cutout", f"{x0 + 36} {y0 + 26} pix",
                                 "--cutout-size", f"{nx}x{ny}", *common])
    assert r.exit_code == 0, r.output
    assert "cut-out [101:170,81:130] of its 256x256 pixels" in r.output
    r = CliRunner().invoke(app, ["run", str(_piece(tmp_path, x0, y0, nx, ny)), "-o", str(tmp_path / "b"), *common])
    assert r.exit_code == 0, r.output
    with fits.open(tmp_path / "a" / f"{HRC.name[:-5]}.x101-170y81-130.enhanced.fits") as a, \
            fits.open(tmp_path / "b" / f"{HRC.name[:-5]}.enhanced.fits") as b:
        for ext in ("RED", "GREEN", "BLUE", "FLUX", "FLUXERR"):
            assert a[ext].data.shape == (4 * ny, 4 * nx)
            np.testing.assert_array_equal(a[ext].data, b[ext].data)
        for key in ("AE_SKY", "AE_SKYSG", "AE_VMIN", "AE_VMAX", "AE_NCR"):
            assert a[0].header[key] == b[0].header[key], key
        assert a[0].header["AE_NCR"] >= 0
        assert (a[0].header["AE_CUT"], b[0].header["AE_CUT"]) == ("[101:170,81:130]", "")
        w_out = WCS(a["FLUX"].header)
    w_in = _wcs(HRC, 1)
    yp, xp = np.mgrid[0:4 * ny:7, 0:4 * nx:7].astype(float)
    xi, yi = w_in.all_world2pix(*w_out.all_pix2world(xp.ravel(), yp.ravel(), 0), 0)
    assert np.hypot(xi - ((xp.ravel() + 0.5) / 4 - 0.5 + x0), yi - ((yp.ravel() + 0.5) / 4 - 0.5 + y0)).max() < 1e-6


def test_a_sky_centre_picks_the_chip_that_holds_it():
    """A 2-chip flc: a sky position on chip 2 cuts chip 2 only (chip 1 noted); trimmed at the chip's edge; a position
    on neither chip is an `OutsideCutoutError` (a frame a folder run skips)."""
    path = FIXTURES / "sample_svm_flc.fits.gz"
    w2 = _wcs(path, 4)
    ra, dec = (float(v) for v in w2.all_pix2world([[8.0, 1.0]], 0)[0])
    with open_frames(path, cutout=parse_cutout(f"{ra} {dec}", "4")) as frames:
        [f] = frames
        assert f.label == "sci2.x7-10y1-3" and f.shape == (3, 4) and f.section == "[7:10,1:3]"
        assert any("sci1 does not hold the cut-out's centre" in n for n in f.notes)
        assert any("cut-out [7:10,1:3]" in n and "trimmed at the frame's edge" in n for n in f.notes)
        with fits.open(path) as h:
            np.testing.assert_array_equal(f.read_rows(0, 3), h[4].data[0:3, 6:10].astype(np.float32))
            np.testing.assert_array_equal(f.pixel_noise_rows(0, 3), h[5].data[0:3, 6:10])
            np.testing.assert_array_equal(f.dq_rows(0, 3), h[6].data[0:3, 6:10])
    far = w2.all_pix2world([[500.0, 500.0]], 0)[0]
    with pytest.raises(OutsideCutoutError, match="does not hold the cut-out's centre.*nor does any other chip"):
        with open_frames(path, cutout=parse_cutout(f"{far[0]} {far[1]}", "4")):
            pass


def test_a_pictures_cut_out_counts_rows_from_the_bottom_as_ds9(tmp_path):
    """A PNG's pixel (x, y) is DS9's: y up from the bottom row. The cut-out's rows are the picture's rows from the
    top that those are; without sky coordinates a sky centre is one line saying so."""
    arr = np.arange(40 * 30, dtype=np.uint16).reshape(40, 30) % 251
    path = tmp_path / "grey.png"
    Image.fromarray(arr.astype(np.uint8)).save(path)
    with open_frames(path, cutout=parse_cutout("6 36 pix", "5x3")) as [f]:  # columns 4-8, rows 35-37 from the bottom
        assert f.shape == (3, 5) and f.section == "[4:8,35:37]"
        np.testing.assert_array_equal(f.read_rows(0, 3), arr[40 - 37:40 - 34, 3:8].astype(np.float32))
    with pytest.raises(InputError, match="grey.png: has no sky coordinates"):
        with open_frames(path, cutout=parse_cutout("150 2", None)):
            pass


def test_a_folder_run_skips_the_frames_that_do_not_hold_the_centre(tmp_path):
    """`run FOLDER --cutout RA DEC`: the frame that shows the position is enhanced, the one that does not is
    skipped (exit 0); named on the command line it is an error (exit 1), nothing written for it."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / EXAMPLE.name).write_bytes(EXAMPLE.read_bytes())
    (folder / HRC.name).write_bytes(HRC.read_bytes())
    ra, dec = (float(v) for v in _wcs(EXAMPLE, 0).all_pix2world([[50.0, 50.0]], 0)[0])
    args = ["--cutout", f"{ra} {dec}", "--cutout-size", "3arcsec", "--format", "png"]
    r = CliRunner().invoke(app, ["run", str(folder), "-o", str(tmp_path / "out"), *args])
    assert r.exit_code == 0, r.output
    assert "1 done, 1 skipped, 0 failed" in r.output
    import json

    files = json.loads((tmp_path / "out" / "astroenhance-report.json").read_text())["records"]
    [skipped] = [f for f in files if f["status"] == "skipped"]  # a frame, of another part of the sky
    assert skipped["input"].endswith(HRC.name) and skipped["error"].startswith("does not hold the cut-out's centre")
    made = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert len(made) == 1 and made[0].startswith(EXAMPLE.name.split(".")[0] + ".x")
    r = CliRunner().invoke(app, ["run", str(HRC), "-o", str(tmp_path / "out2"), *args])
    assert r.exit_code == 1
    assert "does not hold the cut-out's centre" in r.output
    assert not list((tmp_path / "out2").glob("*.png"))
    r = CliRunner().invoke(app, ["run", str(HRC), "-o", str(tmp_path / "out3"), "--cutout", "ten past two"])
    assert r.exit_code == 2 and "--cutout 'ten past two'" in r.output


@settings(max_examples=60, deadline=None)
@given(st.floats(-40, 300), st.floats(-40, 300), st.integers(1, 400), st.integers(1, 400))
def test_every_pixel_centre_cuts_the_pixels_about_it_or_says_it_is_outside(x, y, w, h):
    """A pixel centre anywhere: inside the 256x256 frame, the cut-out is the frame's pixels about it — the centre's
    pixel at (w // 2, h // 2) of a full-size box, trimmed at the edges — with its noise and DQ rows alike; outside, an
    `OutsideCutoutError`."""
    with fits.open(HRC) as hdul:
        sci, err, dq = (np.asarray(hdul[e].data) for e in ("SCI", "ERR", "DQ"))
    cut = parse_cutout(f"{x} {y} pix", f"{w}x{h}")
    cx, cy = math.floor(x - 0.5), math.floor(y - 0.5)
    if not (-0.5 <= x - 1 < 255.5 and -0.5 <= y - 1 < 255.5):
        with pytest.raises(OutsideCutoutError, match=r"\(\d+x\d+ pixels about pixel .*outside its 256x256 pixels"):
            with open_frames(HRC, dq_mask=0, cutout=cut):
                pass
        return
    with open_frames(HRC, dq_mask=0, cutout=cut) as [f]:
        x0, y0 = max(0, cx - w // 2), max(0, cy - h // 2)
        x1, y1 = min(256, cx - w // 2 + w), min(256, cy - h // 2 + h)
        assert f.shape == (y1 - y0, x1 - x0) and f.section == f"[{x0 + 1}:{x1},{y0 + 1}:{y1}]"
        np.testing.assert_array_equal(f.read_rows(0, f.shape[0]), sci[y0:y1, x0:x1].astype(np.float32))
        np.testing.assert_array_equal(f.pixel_noise_rows(0, f.shape[0]), err[y0:y1, x0:x1])
        np.testing.assert_array_equal(f.dq_rows(0, f.shape[0]), dq[y0:y1, x0:x1])
        assert f.wcs.pixel_shape == (x1 - x0, y1 - y0)


def test_compose_cuts_every_band_about_the_same_sky(tmp_path):
    """`compose g r i --cutout RA DEC --cutout-size 5arcsec`: each band cut about the position (CFHTLS, 0.186"
    pixels: 27x27), the composite on that cut-out's grid (pixel (0, 0) at the sky of the frame's [x1, y1]), each band's
    section recorded; a named target's composite is named for it; a position off the field is one line naming the
    frame."""
    from .conftest import CFHT

    bands = [str(CFHT / f"CFHTLS-test_{b}.fits") for b in "gri"]
    w = _wcs(bands[0], 0)
    ra, dec = (float(v) for v in w.all_pix2world([[50.0, 40.0]], 0)[0])
    r = CliRunner().invoke(app, ["compose", *bands, "-o", str(tmp_path), "--cutout", f"{ra} {dec}", "--cutout-size",
                                 "5arcsec", "--format", "fits"])
    assert r.exit_code == 0, r.output
    with fits.open(tmp_path / "CFHTLS-test.composite.fits") as h:
        hdr = h[0].header
        assert [hdr[f"AE_{c}CUT"] for c in "BGR"] == ["[38:64,28:54]"] * 3
        assert h["RED"].data.shape == (27, 27)
        out = WCS(h["RED"].header)
    np.testing.assert_allclose(out.all_pix2world([[0.0, 0.0]], 0), w.all_pix2world([[37.0, 27.0]], 0), atol=1e-9)
    r = CliRunner().invoke(app, ["compose", *bands, "-o", str(tmp_path / "named"), "--cutout", f"HCG 1 = {ra} {dec}",
                                 "--cutout-size", "5arcsec", "--format", "fits"])  # (a target's: its name too)
    assert r.exit_code == 0 and [p.name for p in (tmp_path / "named").iterdir()] == ["CFHTLS-test.HCG_1.composite.fits"]
    r = CliRunner().invoke(app, ["compose", *bands, "-o", str(tmp_path / "far"), "--cutout", f"{ra + 1} {dec}"])
    assert r.exit_code == 1 and "CFHTLS-test_g.fits: does not hold the cut-out's centre" in r.output


def test_several_centres_are_read_from_the_option_and_a_file():
    from astroenhance.io.cutout import parse_cutouts

    cuts = parse_cutouts("150.1 2.2; 10 20 pix\n 3 4 pix;", "8")
    assert [c.centre for c in cuts] == [(150.1, 2.2), (10, 20), (3, 4)] and all(c.size == (8, 8) for c in cuts)
    assert parse_cutouts(None, None) == [] and len(parse_cutouts(None, "5")) == 1
    with pytest.raises(SettingsError, match="no centre"):
        parse_cutouts(" ; ", None)


def test_a_catalogue_of_cut_outs_makes_one_output_each_and_names_the_ones_it_cannot(tmp_path):
    """`--cutout-file`: four centres on a frame with a no-data corner — one in the corner (all no data: named, not
    enhanced), one off the frame (named), one twice (made once); the two others written; exit 0."""
    with fits.open(HRC) as h:
        data = h["SCI"].data.astype(np.float32)
        data[:40, :40] = np.nan
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, h["SCI"].header, name="SCI")]).writeto(tmp_path / "f.fits")
    (tmp_path / "targets.txt").write_text("# x y\n20 20 pix  # in the hole\n100 120 pix\n200 60 pix\n"
                                          "900 900 pix\n100 120 pix\n")
    r = CliRunner().invoke(app, ["run", str(tmp_path / "f.fits"), "-o", str(tmp_path / "out"), "--cutout-file",
                                 str(tmp_path / "targets.txt"), "--cutout-size", "24", "--format", "fits"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "out").glob("*.fits")) == ["f.x188-211y48-71.enhanced.fits",
                                                                         "f.x88-111y108-131.enhanced.fits"]
    out = " ".join(r.output.split())
    assert "x8-31y8-31 not enhanced: no finite pixels" in out
    assert "about pixel (900, 900) not enhanced: the frame does not hold its centre" in out
    assert "the same pixels as another, made once ([88:111,108:131])" in out
    history = fits.getheader(tmp_path / "out" / "f.x88-111y108-131.enhanced.fits")["HISTORY"]
    assert "astroenhance cutout: 24x24 pixels about pixel (100, 120)" in list(history)  # this one, not all of them
    r = CliRunner().invoke(app, ["run", str(tmp_path / "f.fits"), "-o", str(tmp_path / "o2"), "--cutout",
                                 "20 20 pix; 900 900 pix", "--cutout-size", "24"])
    assert r.exit_code == 1 and "f.fits[8:31,8:31]: no finite pixels" in " ".join(r.output.split())
    r = CliRunner().invoke(app, ["compose", str(tmp_path / "f.fits"), str(HRC), "-o", str(tmp_path / "o3"),
                                 "--cutout", "1 2 pix; 3 4 pix"])
    assert r.exit_code == 2 and "compose makes one composite" in r.output


def test_a_mosaic_cut_out_is_that_part_of_the_whole_mosaic(tmp_path):
    """`mosaic --cutout RA DEC --cutout-size 10arcsec`: the science mosaic is the pixels [section] of the whole
    mosaic made with the same options (values and WCS); with --enhance only the frames' parts that it shows are
    enhanced, onto that grid 4x finer, every pixel covered; a named target's cut-out is named for it (without
    --name); a pixel centre is a usage error."""
    from .conftest import CFHT

    frames = [str(CFHT / f"CFHTLS-test_{b}.fits") for b in "gr"]
    opts = ["--no-match-background", "--format", "fits"]
    r = CliRunner().invoke(app, ["mosaic", *frames, "-o", str(tmp_path / "all"), *opts])
    assert r.exit_code == 0, r.output
    cut = ["--cutout", "215.5455 52.7762", "--cutout-size", "10arcsec"]
    r = CliRunner().invoke(app, ["mosaic", *frames, "-o", str(tmp_path / "cut"), *opts, *cut])
    assert r.exit_code == 0, r.output
    with fits.open(tmp_path / "all" / "mosaic.mosaic.fits") as a, fits.open(tmp_path / "cut" / "mosaic.mosaic.fits") as c:
        section = c[0].header["AE_CUT"]
        (x0, x1), (y0, y1) = (map(int, part.split(":")) for part in section.strip("[]").split(","))
        assert c[0].data.shape == (y1 - y0 + 1, x1 - x0 + 1) == (54, 54)
        np.testing.assert_allclose(c[0].data, a[0].data[y0 - 1:y1, x0 - 1:x1], rtol=1e-6, atol=1e-9)
        whole, part = WCS(a[0].header), WCS(c[0].header)
    np.testing.assert_allclose(part.all_pix2world([[0.0, 0.0]], 0), whole.all_pix2world([[x0 - 1.0, y0 - 1.0]], 0),
                               atol=1e-10)
    r = CliRunner().invoke(app, ["mosaic", *frames, "-o", str(tmp_path / "named"), *opts, "--cutout",
                                 "HCG 1 = 215.5455 52.7762", "--cutout-size", "10arcsec"])  # (a target's: its name)
    assert r.exit_code == 0 and [p.name for p in (tmp_path / "named").glob("*.fits")] == ["HCG_1.mosaic.fits"]
    np.testing.assert_array_equal(fits.getdata(tmp_path / "named" / "HCG_1.mosaic.fits"),
                                  fits.getdata(tmp_path / "cut" / "mosaic.mosaic.fits"))
    r = CliRunner().invoke(app, ["mosaic", *frames, "-o", str(tmp_path / "enh"), *opts, *cut, "--enhance"])
    assert r.exit_code == 0, r.output
    with fits.open(tmp_path / "enh" / "mosaic.mosaic.fits") as e:
        assert e[0].header["AE_CUT"] == section and e["RED"].data.shape == (216, 216)
        assert not (e["RED"].data == e["RED"].header.get("BLANK", -32768)).any()
    r = CliRunner().invoke(app, ["mosaic", *frames, "-o", str(tmp_path / "pix"), "--cutout", "10 10 pix"])
    assert r.exit_code == 2 and "give the centre as a sky position" in r.output


def test_enhance_frame_takes_one_cut_out_and_says_so_of_several():
    """The Python API reads one frame: a cut-out of it is that frame (its section recorded); several cut-outs are one
    line saying to give one centre (it offered `hdu='x12-27y12-27'`, which names no HDU), a cut-out on two chips the
    chips to choose from."""
    from astroenhance import EnhanceConfig, Enhancer

    r = Enhancer(EnhanceConfig(cutout="50 50 pix", cutout_size="16")).enhance_frame(EXAMPLE)
    assert r.rgb.shape == (64, 64, 3) and r.header["AE_CUT"] == "[42:57,42:57]"
    with pytest.raises(InputError, match=r"2 cut-outs \(\[42:57,42:57\], \[12:27,12:27\]\) .* give one cut-out centre"):
        Enhancer(EnhanceConfig(cutout="50 50 pix; 20 20 pix", cutout_size="16")).enhance_frame(EXAMPLE)
    with pytest.raises(InputError, match=r"holds 2 chips \(sci1, sci2\); choose one with hdu= \(e.g. hdu='sci2'\)"):
        Enhancer(EnhanceConfig(cutout="5 5 pix", cutout_size="4")).enhance_frame(FIXTURES / "2chipA.fits.gz")


def test_a_mosaic_cut_out_where_no_frame_has_pixels_is_one_line_and_writes_nothing(tmp_path):
    """The HRC frame on its north-up grid leaves the grid's corners empty: a cut-out there was an empty science
    mosaic written, left behind when its preview failed ("no finite pixels"), and with --enhance an IndexError.
    Now one line each, exit 1, no mosaic written."""
    from astroenhance.compose import mosaic_grid
    from astroenhance.io.readers import read_frame

    data, wcs, _ = read_frame(HRC)
    grid, shape = mosaic_grid([(data, wcs)], "optimal")
    ra, dec = (float(v) for v in grid.all_pix2world([[3.0, 3.0]], 0)[0])
    x, y = wcs.all_world2pix([[ra, dec]], 0)[0]
    assert not (-0.5 <= x < 255.5 and -0.5 <= y < 255.5)  # (the grid's corner: off the frame)
    for extra, said in (([], "the mosaic has no data: the cut-out"), (["--enhance"], "no frame shows the cut-out")):
        out = tmp_path / ("e" if extra else "s")
        r = CliRunner().invoke(app, ["mosaic", str(HRC), "-o", str(out), "--cutout", f"{ra} {dec}", "--cutout-size",
                                     "6", *extra])
        assert r.exit_code == 1 and said in " ".join(r.output.split()), r.output
        assert not out.exists()  # (the folder mosaic made for it is gone again)


def test_a_csv_catalogue_of_targets_gives_the_cut_outs_its_ra_and_dec_name(tmp_path):
    """`--cutout-file` takes a CSV catalogue as TOPCAT or VizieR writes it: RA and Dec from the columns its header
    names, or the first two columns of one without a header (sexagesimal too); the same cut-outs as those centres
    given to --cutout, named for their targets where a column holds names (name, id...: as "NAME = centre" to
    --cutout). A header naming RA but no Dec, or neither, is one line (exit 2) naming its columns."""
    from astroenhance.io.readers import read_frame

    _, wcs, _ = read_frame(HRC)
    sky = wcs.pixel_to_world([60.0, 180.0], [70.0, 150.0])
    deg = [f"{c.ra.deg:.7f} {c.dec.deg:.7f}" for c in sky]
    files = {"named.csv": "name,RAJ2000,DEJ2000,mag\n" + "".join(f"g{k},{d.replace(' ', ',')},21.5\n"
                                                                  for k, d in enumerate(deg)),
             "bare.csv": "".join(f"{c.ra.to_string('hourangle', sep=':', precision=4)},"
                                 f"{c.dec.to_string(sep=':', precision=3, alwayssign=True)}\n" for c in sky)}

    def planned(*how):
        r = CliRunner().invoke(app, ["run", str(HRC), "-o", str(tmp_path / "out"), "--dry-run", "--cutout-size", "24",
                                     *how], terminal_width=400)
        assert r.exit_code == 0, r.output
        return sorted(w for w in r.output.split() if ".enhanced.fits" in w)

    expected = planned("--cutout", "; ".join(deg))
    assert len(expected) == 2
    files["excel.csv"] = "\ufeffRA,Dec\n" + "".join(d.replace(" ", ",") + "\n" for d in deg)  # (a byte-order mark first)
    files["semicolons.csv"] = "id;ra;dec\n" + "".join(f"{k};{d.replace(' ', ';')}\n" for k, d in enumerate(deg))
    names = {"named.csv": ["g0", "g1"], "semicolons.csv": ["0", "1"]}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        given = "; ".join(f"{n} = {d}" for n, d in zip(names[name], deg)) if name in names else "; ".join(deg)
        assert planned("--cutout-file", str(tmp_path / name)) == planned("--cutout", given), name
    assert [Path(w).name.split(".")[1] for w in planned("--cutout-file", str(tmp_path / "named.csv"))] == ["g0", "g1"]
    for text, said in (("id,ra,mag\n1,10.0,20\n", "names a column of RA but none of Dec (columns: id, ra, mag)"),
                       ("id,x,y\n1,10.0,20\n", "no column of RA and Dec in its header (columns: id, x, y"),
                       # a row that is no centre, named with the file (it said "--cutout 'abc def'")
                       ("ra,dec\n10.0,20\nabc,def\n", "--cutout-file " + str(tmp_path / "bad.csv") + ": 'abc def': "
                        "give a sky position")):
        (tmp_path / "bad.csv").write_text(text)
        r = CliRunner().invoke(app, ["run", str(HRC), "-o", str(tmp_path / "o"), "--cutout-file",
                                     str(tmp_path / "bad.csv")], terminal_width=400)
        assert r.exit_code == 2 and said in " ".join(r.output.split()), r.output
        assert not (tmp_path / "o").exists()


def test_a_ds9_region_file_gives_each_region_its_own_cut_out(tmp_path):
    """`--cutout-file x.reg`: the regions an astronomer marked in DS9 (fk5, galactic and image coordinates in one
    file), each cut as the box about it — a circle or annulus its diameter, a box its sides (turned in pixels: the
    box about it; on the sky, whose axes are not the frame's, the square about any turn), a polygon its extent — a
    point with --cutout-size; excluded regions and text cut nothing. The same cut-outs as each given to --cutout with
    that size. Physical coordinates, which cannot be placed, a region `regions` skips unread (not lost unsaid), or
    a file of annotations only, are one usage line (exit 2). (A region file was read as lines of centres: "global
    color=green..." was not a centre.)"""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    from astroenhance.io.readers import read_frame

    _, wcs, _ = read_frame(HRC)
    a, b, c, d, e, f = wcs.pixel_to_world([60.0, 180.0, 120.0, 30.0, 200.0, 150.0], [70.0, 150.0, 40.0, 200.0, 210.0, 90.0])
    galactic, e, f = d.transform_to("galactic"), e.transform_to("fk5"), f.transform_to("fk5")
    square = [f.spherical_offsets_by(dx * u.arcsec, dy * u.arcsec) for dx, dy in ((-0.3, -0.2), (0.3, -0.2), (0.3, 0.2),
                                                                                   (-0.3, 0.2))]
    (tmp_path / "marks.reg").write_text(
        "# Region file format: DS9 version 4.1\n"
        'global color=green dashlist=8 3 width=1 font="helvetica 10 normal roman" select=1 highlite=1\n'
        f"icrs\ncircle({a.ra.deg:.8f},{a.dec.deg:.8f},0.3\") # text={{galaxy A}}\n"
        f"box({b.ra.to_string('hourangle', sep=':', precision=5)},{b.dec.to_string(sep=':', precision=4)},"
        "0.5\",0.3\",0)\n"
        f"point({c.ra.deg:.8f},{c.dec.deg:.8f}) # point=x\n"
        f"-circle({c.ra.deg:.8f},{c.dec.deg:.8f},1\")\n"
        f"text({b.ra.deg:.8f},{b.dec.deg:.8f}) text={{a label}}\n"
        f"galactic;circle({galactic.l.deg:.8f},{galactic.b.deg:.8f},0.25\")\n"  # (galactic from here on)
        f"fk5;ellipse({e.ra.deg:.8f},{e.dec.deg:.8f},0.4\",0.2\",40)\n"
        "polygon(" + ",".join(f"{v.ra.deg:.9f},{v.dec.deg:.9f}" for v in square) + ")\n"
        "image\ncircle(100.5,120.5,12)\nbox(200,60,20,10,30)\npolygon(50,50,70,50,60,80)\n"
        "ellipse(120,200,10,4,90)\nannulus(60,200,5,9)\n")

    def planned(*how):
        r = CliRunner().invoke(app, ["run", str(HRC), "-o", str(tmp_path / "out"), "--dry-run", *how],
                               terminal_width=400)
        assert r.exit_code == 0, r.output
        return [w for w in r.output.split() if ".enhanced.fits" in w]

    def sky(coord: SkyCoord) -> str:
        coord = coord.icrs
        return f"{coord.ra.deg:.8f} {coord.dec.deg:.8f}"

    one_by_one = [("galaxy A = " + sky(a), "0.6arcsec"), (sky(b), "0.5x0.3arcsec"), (sky(c), "24"), (sky(d), "0.5arcsec"),
                  (sky(e), "0.8arcsec"), (sky(f), "0.6x0.4arcsec"),  # a turned sky ellipse: its major axis square
                  ("100.5 120.5 pix", "24"), ("200 60 pix", "23x19"), ("60 65 pix", "20x30"), ("120 200 pix", "8x20"),
                  ("60 200 pix", "18")]
    expected = sorted(w for centre, size in one_by_one for w in planned("--cutout", centre, "--cutout-size", size))
    assert len(expected) == len(one_by_one) == len(set(expected))
    assert sorted(planned("--cutout-file", str(tmp_path / "marks.reg"), "--cutout-size", "24")) == expected
    for name, text, said in (
            ("physical.reg", "# Region file format: DS9 version 4.1\nphysical\ncircle(10,10,5)\n", "physical coordinates"),
            ("labels.reg", f"fk5\ntext({a.ra.deg},{a.dec.deg}) text={{A}}\nsegment(1,2,3,4)\n", "no region to cut"),
            ("panda.reg", f"fk5\ncircle({sky(a).replace(' ', ',')},1\")\npanda({sky(b).replace(' ', ',')},0,360,4,0.1\","
                          '0.3",1)\n', '"panda" frame or shape is not supported')):
        (tmp_path / name).write_text(text)
        r = CliRunner().invoke(app, ["run", str(HRC), "-o", str(tmp_path / "o2"), "--cutout-file", str(tmp_path / name)],
                               terminal_width=400)
        assert r.exit_code == 2 and said in r.output and name in r.output, r.output
        assert not (tmp_path / "o2").exists()


def test_a_targets_name_names_its_cut_outs_outputs(tmp_path):
    """A centre given with a name ("NAME = centre", as a catalogue's name column or a region's label gives it):
    its outputs are <stem>.<name>.<section>.enhanced.<ext>, the name made safe for a file name, and their HISTORY
    and notes name the target."""
    r = CliRunner().invoke(app, ["run", str(HRC), "-o", str(tmp_path / "out"), "--cutout",
                                 "NGC 4414 (core) = 100 120 pix; 60 70 pix", "--cutout-size", "16", "--format", "fits",
                                 "--no-colorize", "-q"])
    assert r.exit_code == 0, r.output
    made = sorted(p.name for p in (tmp_path / "out").glob("*.fits"))
    assert made == ["j8bt06nyq_flt_crop.NGC_4414_core.x92-107y112-127.enhanced.fits",
                    "j8bt06nyq_flt_crop.x52-67y62-77.enhanced.fits"]
    header = fits.getheader(tmp_path / "out" / made[0])
    history = " ".join(" ".join(header["HISTORY"]).split())  # (its cards wrap at 72 characters)
    assert "astroenhance cutout: NGC 4414 (core): 16x16 pixels about pixel (100, 120)" in history
    assert header["AE_CHIP"] == "" and header["AE_CUT"] == "[92:107,112:127]"  # (no chip: the name is no chip's)
    r = CliRunner().invoke(app, ["run", str(FIXTURES / "2chipA.fits.gz"), "-o", str(tmp_path / "chips"), "--cutout",
                                 "T1 = 5 5 pix", "--cutout-size", "4", "--format", "fits", "--dq-mask", "none", "-q"])
    assert r.exit_code == 0, r.output
    for chip in ("sci1", "sci2"):  # each chip's cut-out named for the target, and its chip still its chip
        assert fits.getheader(tmp_path / "chips" / f"2chipA.{chip}.T1.x3-6y3-6.enhanced.fits")["AE_CHIP"] == chip


@given(st.text(max_size=80))
@settings(max_examples=fuzz_examples(200), deadline=None)
def test_a_targets_file_name_is_safe_for_any_name(name):
    """Whatever a catalogue calls a target, the part of the output's name made of it is letters, digits, '.', '+',
    '-' and '_' only, at most 40 characters, neither starting nor ending with '.' or '_' (no hidden file, no
    '..'); a centre named by it (`named`) reads back with that name."""
    from astroenhance.io.cutout import named, parse_cutouts

    cut = parse_cutouts(named(name, "10 20 pix"), "8")[0]
    assert re.fullmatch(r"([A-Za-z0-9+-]([A-Za-z0-9._+-]{0,38}[A-Za-z0-9+-])?)?", cut.file_name), cut.file_name
    assert ".." not in cut.file_name and cut.centre == (10.0, 20.0) and cut.size == (8.0, 8.0)
    assert cut.name == " ".join(re.sub(r"[;=/]", " ", name).split())


def test_a_catalogue_as_a_fits_table_votable_ecsv_or_sextractor_file_gives_its_targets(tmp_path):
    """`--cutout-file` takes the catalogues astronomers save from TOPCAT, VizieR and SExtractor as astropy reads them:
    a FITS binary table (the first with RA and Dec: a FITS_LDAC's objects after its header table), a VOTable, ECSV
    (degrees with units, or sexagesimal text), SExtractor's ASCII catalogue ("# 1 NUMBER"): the same named cut-outs
    as their centres given to --cutout. A table without RA and Dec is one usage line naming its columns. (Only
    text lines and CSV were read: a FITS table was "cannot be read (utf-8...)".)"""
    from astropy import units as u
    from astropy.table import Table

    from astroenhance.io.readers import read_frame

    _, wcs, _ = read_frame(HRC)
    sky = wcs.pixel_to_world([60.0, 180.0], [70.0, 150.0])

    def planned(*how):
        r = CliRunner().invoke(app, ["run", str(HRC), "-o", str(tmp_path / "out"), "--dry-run", "--cutout-size", "24",
                                     *how], terminal_width=400)
        assert r.exit_code == 0, r.output
        return sorted(Path(w.strip(",")).name for w in r.output.split() if ".enhanced.fits" in w)

    def given(names):
        return planned("--cutout", "; ".join(f"{n} = {c.ra.deg:.9f} {c.dec.deg:.9f}" for n, c in zip(names, sky)))

    table = Table({"Name": ["g A", "g B"], "RA": sky.ra.deg * u.deg, "DEC": sky.dec.deg * u.deg, "MAG": [21.0, 22.5]})
    table.write(tmp_path / "cat.fits")
    table.write(tmp_path / "cat.vot", format="votable")
    table.write(tmp_path / "cat.ecsv")
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU(Table({"Field Header Card": ["SIMPLE = T"]}), name="LDAC_IMHEAD"),
                  fits.BinTableHDU(Table({"NUMBER": [1, 2], "ALPHA_J2000": sky.ra.deg, "DELTA_J2000": sky.dec.deg}),
                                   name="LDAC_OBJECTS")]).writeto(tmp_path / "sextractor.ldac")
    Table({"id": [1, 2], "RAJ2000": sky.ra.to_string("hourangle", sep=" ", precision=5),
           "DEJ2000": sky.dec.to_string(sep=" ", precision=4, alwayssign=True)}).write(tmp_path / "vizier.ecsv")
    (tmp_path / "sextractor.cat").write_text(
        "#   1 NUMBER                 Running object number\n"
        "#   2 ALPHA_J2000            Right ascension of barycenter (J2000)                      [deg]\n"
        "#   3 DELTA_J2000            Declination of barycenter (J2000)                          [deg]\n"
        + "".join(f"{k + 1:6d} {c.ra.deg:12.8f} {c.dec.deg:+12.8f}\n" for k, c in enumerate(sky)))
    by_name = given(["g A", "g B"])
    assert len(by_name) == 2 and all(".g_A." in n or ".g_B." in n for n in by_name)
    for name in ("cat.fits", "cat.vot", "cat.ecsv"):
        assert planned("--cutout-file", str(tmp_path / name)) == by_name, name
    for name in ("sextractor.ldac", "vizier.ecsv", "sextractor.cat"):
        assert planned("--cutout-file", str(tmp_path / name)) == given(["1", "2"]), name
    Table({"X_IMAGE": [1.0], "Y_IMAGE": [2.0]}).write(tmp_path / "pixels.fits")
    r = CliRunner().invoke(app, ["run", str(HRC), "-o", str(tmp_path / "o"), "--cutout-file",
                                 str(tmp_path / "pixels.fits")], terminal_width=400)
    assert r.exit_code == 2 and "no table with a column of RA and Dec (columns: X_IMAGE, Y_IMAGE" in r.output, r.output

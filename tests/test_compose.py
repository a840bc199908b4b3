"""compose and mosaic on real data: CFHTLS g/r/i against its reference colour image; an HST frame cut into
overlapping pieces (Cutout2D keeps each piece's WCS) and mosaicked back."""

import hashlib
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.wcs import WCS
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from astroenhance.cli import app
from astroenhance.compose import wavelength_nm

from .conftest import CFHT, EXAMPLE, FIXTURES, HRC

BANDS = [CFHT / f"CFHTLS-test_{b}.fits" for b in "gri"]
runner = CliRunner()


@pytest.fixture(scope="module")
def composite(tmp_path_factory):
    out = tmp_path_factory.mktemp("compose")
    result = runner.invoke(app, ["compose", *map(str, BANDS), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_run_of_a_composite_says_what_it_is_and_what_gives_it_4x(composite, tmp_path):
    """`run` of a composite (FITS or PNG) said "already enhanced 4x" and pointed to a FLUX extension it does not
    have: it is display values of measured colours, and `compose --upscale` is what gives it 4x."""
    for name in ("CFHTLS-test.composite.fits", "CFHTLS-test.composite.png"):
        result = runner.invoke(app, ["run", str(composite / name), "-o", str(tmp_path / "x")])
        said = " ".join(result.output.split())
        assert result.exit_code == 1 and "a composite of CFHTLS-test_g.fits" in said, said
        assert "compose --upscale" in said and "4x, its detail" not in said and "FLUX" not in said


def test_mosaic_enhance_of_one_frame_is_run_of_it(tmp_path):
    """`mosaic --enhance` enhanced each frame with its noise estimated from the pixels and without its units, where
    `run` reads ERR (or WHT) and BUNIT: one ACS frame on its own grid came out up to 0.10 (median 0.04) away from
    `run`'s picture of it. Now the same to the int16 step."""
    flt = HRC  # the ACS/HRC flt crop: SCI, ERR, DQ
    assert runner.invoke(app, ["run", str(flt), "-o", str(tmp_path / "r"), "--format", "fits", "-q"]).exit_code == 0
    result = runner.invoke(app, ["mosaic", str(flt), "--enhance", "--grid", "first", "-o", str(tmp_path / "m"),
                                 "--format", "fits"])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "r" / "j8bt06nyq_flt_crop.enhanced.fits") as ran, \
            fits.open(tmp_path / "m" / "mosaic.mosaic.fits") as mos:
        for plane in ("RED", "GREEN", "BLUE"):
            assert np.nanmax(np.abs(ran[plane].data - mos[plane].data)) <= 2 / 65534, plane
        # what made its pixels is recorded as run records it (it said: no networks, no weights, linear 0..1, no
        # input checksum — the step that writes the co-added planes, not the one that made them)
        r, m = ran[0].header, mos[0].header
        for key in ("AE_SRID", "AE_SRW", "AE_COID", "AE_COW", "AE_SRMOD", "AE_SRSPC", "AE_COLOR", "AE_COSTR",
                    "AE_SCALE", "AE_STRCH", "AE_STRA", "AE_INTVL", "AE_VMIN", "AE_VMAX", "AE_GATE", "AE_FILLH",
                    "AE_NCR", "AE_CRLIM", "AE_SKY", "AE_SKYSG", "AE_SIGSR", "AE_SIGSH", "AE_SIGLO", "AE_SIGHI",
                    "AE_DQMSK", "AE_DQFIL", "AE_DQSHA"):
            assert m[key] == r[key], key
        assert (m["AE_SRMOD"], m["AE_SCALE"], m["AE_NFRM"], m["AE_COMB"]) == ("hst", 4, 1, "mean")
        assert m["AE_INSHA"] == r["AE_INSHA"][:16] and r["AE_INSHA"] in "".join(mos["RED"].header["HISTORY"])
    picture = runner.invoke(app, ["mosaic", str(flt), "--enhance", "-o", str(tmp_path / "p"), "--format", "png"])
    assert picture.exit_code == 0, picture.output
    text = Image.open(tmp_path / "p" / "mosaic.mosaic.png").info["Comment"]
    assert f"sr_weights=sr-hst-8x32 {r['AE_SRW']};" in text and "stretch=asinh;" in text and "upscale=True" in text


def test_a_mosaic_of_outputs_records_how_they_were_made(tmp_path):
    """A colour mosaic of `run`'s outputs records what made them (networks, weights, display mapping: the outputs'
    own cards), where they differ `mixed` with each output's value in HISTORY, and each output by name, sha256 and
    the frame it was made from."""
    from astroenhance.models.weights import sha256_file

    _, _, paths = _pieces(tmp_path)
    outs = []
    for k, strength in enumerate(("0.1", "0.5")):
        r = runner.invoke(app, ["run", str(paths[k]), "-o", str(tmp_path / "e"), "--format", "fits", "-q",
                                "--color-strength", strength])
        assert r.exit_code == 0, r.output
        outs.append(tmp_path / "e" / f"piece{k}.enhanced.fits")
    r = runner.invoke(app, ["mosaic", *map(str, outs), "-o", str(tmp_path / "m"), "--format", "fits"])
    assert r.exit_code == 0, r.output
    heads = [fits.getheader(o) for o in outs]
    with fits.open(tmp_path / "m" / "mosaic.mosaic.fits") as h:
        m, history = h[0].header, "".join(h["RED"].header["HISTORY"]).replace(" ", "")
    for key in ("AE_SRID", "AE_SRW", "AE_COID", "AE_COW", "AE_SRMOD", "AE_SCALE", "AE_STRCH", "AE_INTVL"):
        assert m[key] == heads[0][key] == heads[1][key], key
    assert m["AE_COSTR"] == "mixed" and m["AE_NFRM"] == 2 and m["AE_BGMAT"] is False
    # the sky and noise are the outputs' (their frames' units), not the writing step's of display values in [0, 1]
    for key in ("AE_SKY", "AE_SKYSG", "AE_SIGLO", "AE_SIGHI"):
        assert heads[0][key] != heads[1][key] and m[key] == "mixed", key
        assert all(f"{key}={head[key]}" in history for head in heads), key
    assert m["AE_SIGSR"] == heads[0]["AE_SIGSR"] == heads[1]["AE_SIGSR"]
    assert history.index("input1:AE_SETSH=") < history.index("AE_COSTR=0.1") < history.index("input2:AE_SETSH=") \
        < history.index("AE_COSTR=0.5")  # (each output's line: the cards that differ, their settings' digest too)
    for k, (out, head) in enumerate(zip(outs, heads)):
        assert f"input{k + 1}sha256:{sha256_file(out)}" in history
        assert f"input{k + 1}madefrom:piece{k}.fits(sha256{head['AE_INSHA']})" in history
    assert m["AE_INSHA"] == ",".join(sha256_file(o)[:16] for o in outs)


def test_a_frames_weight_map_given_beside_it_is_not_combined_as_sky(tmp_path):
    """`mosaic folder/*.fits` over a drizzle product (x_drz.fits and x_wht.fits) co-added the weight map as data (the
    mosaic the mean of the sky and the weights); `compose` put it in the frame's band. It is left out now, with a
    note, and serves its frame as `run` uses it (found beside the frame, given or not: zero weight is no data)."""
    data, header = fits.getdata(BANDS[1], header=True)
    folder = tmp_path / "in"
    folder.mkdir()
    fits.writeto(folder / "r_drz.fits", data, header)
    sigma = np.median(np.abs(np.diff(data, axis=1))) / 0.954  # (the pixels' noise: the weights agree with it)
    weights = np.full_like(data, 1 / sigma**2)
    weights[:20] = 0  # nothing drizzled in the first rows: no data there
    fits.writeto(folder / "r_wht.fits", weights, header)  # same filter, same WCS
    common = ["--grid", "first", "--format", "fits"]  # (the frame's own grid: rows as in the frame)
    alone = runner.invoke(app, ["mosaic", str(folder / "r_drz.fits"), "-o", str(tmp_path / "a"), *common])
    both = runner.invoke(app, ["mosaic", str(folder / "r_drz.fits"), str(folder / "r_wht.fits"), "-o",
                               str(tmp_path / "b"), *common])
    assert alone.exit_code == 0 and both.exit_code == 0, both.output
    assert "r_wht.fits left out: the weight map of r_drz.fits" in " ".join(both.output.split())
    mos, own = fits.getdata(tmp_path / "b" / "mosaic.mosaic.fits"), fits.getdata(tmp_path / "a" / "mosaic.mosaic.fits")
    np.testing.assert_array_equal(mos, own)  # (the map beside its frame serves it whether given or not, as in run)
    # no weight, no data (the reprojection's edge takes one more row); the rest is the frame's
    assert np.isnan(mos[:20]).all() and np.isfinite(mos[21:]).all()
    np.testing.assert_allclose(mos[21:], data[21:] - np.median(data[21:]) + np.median(mos[21:]), atol=1e-3)
    composite = runner.invoke(app, ["compose", str(BANDS[0]), str(folder / "r_drz.fits"), str(folder / "r_wht.fits"),
                                    str(BANDS[2]), "-o", str(tmp_path / "c"), "--reference", "4", "--name", "c",
                                    "--format", "fits"])
    assert composite.exit_code == 0 and "r_wht.fits left out" in " ".join(composite.output.split()), composite.output
    with fits.open(tmp_path / "c" / "c.composite.fits") as h:
        assert "+" not in h[0].header["AE_GSRC"]  # the r band is r_drz alone, not co-added with its weights
        assert np.isnan(h["GREEN"].data[:20]).all() and np.isfinite(h["GREEN"].data[20:]).mean() > 0.99
    # a colour mosaic records the map its frame's noise came from, by name and content, as `run` records it
    coloured = runner.invoke(app, ["mosaic", str(folder / "r_drz.fits"), "--enhance", "-o", str(tmp_path / "w"),
                                   *common])
    assert coloured.exit_code == 0, coloured.output
    head = fits.getheader(tmp_path / "w" / "mosaic.mosaic.fits")
    assert head["AE_SIGSR"] == "WHT r_wht.fits"
    assert head["AE_SIGSH"] == hashlib.sha256((folder / "r_wht.fits").read_bytes()).hexdigest()
    # --no-companions (as run's): the frame read on its own, its weight map beside it not used (no holes)
    plain = runner.invoke(app, ["mosaic", str(folder / "r_drz.fits"), "-o", str(tmp_path / "d"), "--no-companions",
                                *common])
    assert plain.exit_code == 0, plain.output
    assert np.isfinite(fits.getdata(tmp_path / "d" / "mosaic.mosaic.fits")[:20]).all()
    composite = runner.invoke(app, ["compose", str(BANDS[0]), str(folder / "r_drz.fits"), str(BANDS[2]), "-o",
                                    str(tmp_path / "e"), "--name", "e", "--format", "fits", "--no-companions"])
    assert composite.exit_code == 0, composite.output
    with fits.open(tmp_path / "e" / "e.composite.fits") as h:
        assert np.isfinite(h["GREEN"].data[:20]).mean() > 0.99


def test_composite_matches_reference_structure(composite):
    ours = np.asarray(Image.open(composite / "CFHTLS-test.composite.png")).astype(float) / 255
    ref = np.asarray(Image.open(CFHT / "CFHTLS-test_gri.png").convert("RGB")).astype(float) / 255
    assert ours.shape == ref.shape
    lum_o, lum_r = ours @ [0.2126, 0.7152, 0.0722], ref @ [0.2126, 0.7152, 0.0722]
    # same objects in the same places: luminance correlates strongly (measured 0.9+)
    assert np.corrcoef(lum_o.ravel(), lum_r.ravel())[0, 1] > 0.85
    # same colours where there is light: red-minus-blue of bright pixels agrees in sign for most of them
    bright = lum_r > np.percentile(lum_r, 99)
    agree = np.sign(ours[..., 0] - ours[..., 2])[bright] == np.sign(ref[..., 0] - ref[..., 2])[bright]
    assert agree.mean() > 0.7


def test_band_order_read_from_headers(tmp_path):
    assert wavelength_nm(fits.Header({"FILTER": "F606W"}))[1] == 606
    assert wavelength_nm(fits.Header({"FILTER": "F105W"}))[1] == 1050
    assert wavelength_nm(fits.Header({"FILTER": "i.MP9701"}))[1] == 770
    assert wavelength_nm(fits.Header({"FILTER": "x", "PHOTPLAM": 5921.0}))[1] == pytest.approx(592.1)
    # WFPC2: FILTER1 is the filter wheel's number, FILTNAM1 the filter's name
    assert wavelength_nm(fits.Header({"FILTER1": 69, "FILTER2": 0, "FILTNAM1": "F555W"})) == ("F555W", 555.0)
    # JWST names count tens of nm (F200W: 2 um, F444W: 4.44 um, MIRI F770W: 7.7 um); read the HST way they were
    # 200, 444 and 770 nm, bluer than HST's F814W in a composite of both
    for name, nm in (("F090W", 900), ("F200W", 2000), ("F444W", 4440), ("F770W", 7700), ("F1065C", 10650)):
        assert wavelength_nm(fits.Header({"TELESCOP": "JWST", "FILTER": name}))[1] == nm
    result = runner.invoke(app, ["compose", *map(str, BANDS[::-1]), "-o", str(tmp_path), "--format", "png"])
    assert result.exit_code == 0 and "not blue-to-red" in result.output
    swapped = np.asarray(Image.open(tmp_path / "CFHTLS-test.composite.png"))
    assert swapped.shape == (256, 256, 3)


def test_composite_fits_layout_wcs_and_avm(composite):
    import pyavm

    with fits.open(composite / "CFHTLS-test.composite.fits") as h:
        assert [x.name for x in h] == ["PRIMARY", "RED", "GREEN", "BLUE"]
        assert h["RED"].header["AE_RFLT"] == "i.MP9701" and h["BLUE"].header["AE_BFLT"] == "g.MP9401"
        p = h[0].header  # the composite's provenance where a reader looks first, and only what ran
        assert p["AE_CMETH"] == "lupton" and p["AE_RFLT"] == "i.MP9701" and p["AE_GFLT"] == "r.MP9601"

        assert p["AE_RSHA"] == hashlib.sha256(BANDS[2].read_bytes()).hexdigest()
        assert p["AE_INSHA"] and p["AE_FLUX"] is False and p["AE_GATE"] is False and p["AE_SRMOD"] == "none"
        # no one band's FILTER (it said the reference band's, i): AE_?FLT name each channel's
        said = " ".join(h["RED"].header["HISTORY"]).split("astroenhance: ", 1)[1].split(" differ between the 3 frames")[0]
        assert "FILTER" not in h["RED"].header and "FILTER" in said.split(", ")
        w_fits = WCS(h["RED"].header)
    w_in = WCS(fits.getheader(BANDS[0]))
    np.testing.assert_allclose(w_fits.wcs.crpix, w_in.wcs.crpix)
    avm = pyavm.AVM.from_image(str(composite / "CFHTLS-test.composite.png"))
    w_avm = avm.to_wcs()
    pix = np.array([[0.0, 0.0], [255.0, 0.0], [0.0, 255.0], [128.0, 73.0]])
    np.testing.assert_allclose(w_avm.all_pix2world(pix, 0), w_fits.all_pix2world(pix, 0), atol=1e-8)
    # each channel's filter and colour (measured colour, AVM's words), not the reference band's alone
    assert avm.Spectral.Bandpass == ["g.MP9401", "r.MP9601", "i.MP9701"]
    assert avm.Spectral.ColorAssignment == ["Blue", "Green", "Red"] and "not predicted" in str(avm.Spectral.Notes)


def test_colour_pictures_with_sky_coordinates_are_refused_by_compose_and_a_data_mosaic(tmp_path):
    """Press pictures with AVM tags have a WCS, so compose and mosaic read them — and a colour one failed deep in the
    co-add with a traceback ("too many values to unpack", "background matching is for frames of one plane"). Now
    each names the picture and what to do; `mosaic --enhance` of them makes a colour mosaic, as before."""
    import pyavm

    rng = np.random.default_rng(0)
    paths = []
    for i, ra in enumerate((10.0, 10.003)):
        Image.fromarray(rng.integers(40, 120, (60, 60, 3)).astype(np.uint8)).save(tmp_path / f"plain{i}.png")
        w = WCS(naxis=2)
        w.wcs.ctype, w.wcs.crval, w.wcs.crpix, w.wcs.cdelt = ["RA---TAN", "DEC--TAN"], [ra, 20], [30, 30], [-1e-4, 1e-4]
        pyavm.AVM.from_wcs(w, shape=(60, 60)).embed(str(tmp_path / f"plain{i}.png"), str(tmp_path / f"sky{i}.png"))
        paths.append(str(tmp_path / f"sky{i}.png"))
    result = runner.invoke(app, ["compose", *paths, "-o", str(tmp_path / "c")])
    assert result.exit_code == 1 and "sky0.png: a colour picture: compose makes colour from frames of one filter" in (
        " ".join(result.output.split()))
    result = runner.invoke(app, ["mosaic", *paths, "-o", str(tmp_path / "m")])
    assert result.exit_code == 1 and "sky0.png: a colour picture: mosaic co-adds frames in their data's units; " \
        "--enhance makes a colour mosaic" in " ".join(result.output.split())
    assert not (tmp_path / "c").exists() and not (tmp_path / "m").exists()
    result = runner.invoke(app, ["mosaic", *paths, "-o", str(tmp_path / "e"), "--enhance", "--format", "png"])
    assert result.exit_code == 0 and (tmp_path / "e" / "mosaic.mosaic.png").exists()


def test_a_cube_of_planes_under_one_wcs_is_not_co_added_as_one_band_unsaid(tmp_path):
    """A 3-plane cube under one WCS (DS9's rgbcube, a colour picture saved as FITS) given to compose or mosaic had its
    red, green and blue co-added into one band as if they were an exposure's chips.  It is refused now, naming the
    file; --hdu chipN takes one plane; a cube of another number of planes is co-added with a note saying so."""
    rng = np.random.default_rng(1)
    w = WCS(naxis=2)
    w.wcs.ctype, w.wcs.crval, w.wcs.crpix, w.wcs.cdelt = ["RA---TAN", "DEC--TAN"], [10, 20], [30, 30], [-1e-4, 1e-4]
    for name, planes in (("rgb", 3), ("stack", 4)):
        fits.PrimaryHDU(rng.normal(10, 1, (planes, 60, 60)).astype(np.float32), w.to_header()).writeto(
            tmp_path / f"{name}.fits")
    for i in (1, 2):
        fits.PrimaryHDU(rng.normal(10, 1, (60, 60)).astype(np.float32), w.to_header()).writeto(tmp_path / f"g{i}.fits")
    for command in ("compose", "mosaic"):
        result = runner.invoke(app, [command, str(tmp_path / "rgb.fits"), str(tmp_path / "g1.fits"),
                                     str(tmp_path / "g2.fits"), "-o", str(tmp_path / command)])
        assert result.exit_code == 1 and "rgb.fits: a cube of 3 planes under one WCS" in " ".join(result.output.split())
        assert not (tmp_path / command).exists()
    result = runner.invoke(app, ["mosaic", str(tmp_path / "rgb.fits"), "--hdu", "chip2", "-o", str(tmp_path / "one")])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["compose", str(tmp_path / "stack.fits"), str(tmp_path / "g1.fits"),
                                 str(tmp_path / "g2.fits"), "-o", str(tmp_path / "s")])
    assert result.exit_code == 0 and "stack.fits: a cube of 4 planes under one WCS, co-added as one band" in (
        " ".join(result.output.split()))


def test_a_picture_with_avm_is_mosaicked_the_right_way_up(tmp_path):
    """A picture's rows run top-down and its AVM WCS counts them bottom-up (as `run`'s FITS writes them): `mosaic` and
    `compose` took its rows as they were, so its sky came out mirrored north-south (a spot near the top, 7.7" north of
    the centre, at 8.8" south). Now it lands where `run`'s output of the picture puts it."""
    import pyavm

    def peak_sky(path):
        with fits.open(path) as h:
            plane = h["GREEN"].data if "GREEN" in h else h[0].data
            y, x = np.unravel_index(np.nanargmax(plane), plane.shape)
            return np.array(WCS((h["GREEN"] if "GREEN" in h else h[0]).header).pixel_to_world_values(x, y))

    a = np.full((60, 80), 30, np.uint8)
    a[5:9, 10:14] = 250  # near the top left, as viewers show it
    w = WCS(naxis=2)
    w.wcs.ctype, w.wcs.crval, w.wcs.crpix, w.wcs.cdelt = ["RA---TAN", "DEC--TAN"], [10, 20], [40.5, 30.5], [-1e-4, 1e-4]
    for colour in (False, True):
        Image.fromarray(np.dstack([a] * 3) if colour else a).save(tmp_path / "plain.png")
        pyavm.AVM.from_wcs(w, shape=(60, 80)).embed(str(tmp_path / "plain.png"), str(tmp_path / f"sky{colour}.png"))
    ran = runner.invoke(app, ["run", str(tmp_path / "skyFalse.png"), "-o", str(tmp_path / "r"), "--format", "fits"])
    assert ran.exit_code == 0, ran.output
    want = peak_sky(tmp_path / "r" / "skyFalse.enhanced.fits")
    assert want[1] > 20.002  # north of the centre (Dec 20)
    for name, args in (("science", ["skyFalse.png"]), ("colour", ["skyTrue.png", "--enhance"])):
        result = runner.invoke(app, ["mosaic", str(tmp_path / args[0]), *args[1:], "-o", str(tmp_path / name),
                                     "--format", "fits"])
        assert result.exit_code == 0, result.output
        # a science mosaic of pictures co-adds display values: said, on the console and in its HISTORY
        said = "the frames are pictures (skyFalse.png): their values are display values"
        assert (said in " ".join(result.output.split())) == (name == "science")
        if name == "science":
            history = " ".join(str(c) for c in fits.getheader(tmp_path / name / "mosaic.mosaic.fits")["HISTORY"])
            assert "display values (stretched, clipped), not data" in history
        got = peak_sky(tmp_path / name / "mosaic.mosaic.fits")
        assert np.abs((got - want) * [np.cos(np.radians(20)), 1]).max() * 3600 < 0.5, (args, got, want)  # < 1.4 px
    # the science mosaic's preview of a picture on its own grid is the picture (its own range, linear: as `run` shows
    # pictures), not an asinh stretch of values already stretched
    result = runner.invoke(app, ["mosaic", str(tmp_path / "skyFalse.png"), "--grid", "first", "--format", "png", "-o",
                                 str(tmp_path / "preview")])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "preview" / "mosaic.mosaic.png").convert("L")), a)


def test_mosaic_enhance_of_a_picture_is_run_of_it(tmp_path):
    """`mosaic --enhance` of press pictures enhanced them as FITS frames — the `hst` network, an asinh noise:3 mapping
    over values already stretched — and `--grid first` of a colour picture failed ("too many values to unpack").
    Now a picture is enhanced as `run` enhances it (the picture network, its own value range): one picture on its
    own grid is `run`'s output of it to the int16 step. A picture among FITS frames is refused by name."""
    import pyavm

    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:60, 0:80]
    img = np.dstack([40 + 100 * np.exp(-((x - 30) ** 2 + (y - 20) ** 2) / 40),
                     30 + 60 * np.exp(-((x - 50) ** 2 + (y - 40) ** 2) / 30), 50 + 0 * x])
    Image.fromarray(np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)).save(tmp_path / "plain.png")
    w = WCS(naxis=2)
    w.wcs.ctype, w.wcs.crval, w.wcs.crpix, w.wcs.cdelt = ["RA---TAN", "DEC--TAN"], [10, 20], [40.5, 30.5], [-1e-4, 1e-4]
    pyavm.AVM.from_wcs(w, shape=(60, 80)).embed(str(tmp_path / "plain.png"), str(tmp_path / "sky.png"))
    assert runner.invoke(app, ["run", str(tmp_path / "sky.png"), "-o", str(tmp_path / "r"), "--format", "fits"]
                         ).exit_code == 0
    result = runner.invoke(app, ["mosaic", str(tmp_path / "sky.png"), "--enhance", "--grid", "first", "-o",
                                 str(tmp_path / "m"), "--format", "fits"])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "r" / "sky.enhanced.fits") as ran, fits.open(tmp_path / "m" / "mosaic.mosaic.fits") as mos:
        for plane in ("RED", "GREEN", "BLUE"):
            assert np.nanmax(np.abs(ran[plane].data - mos[plane].data)) <= 2 / 65534, plane
        for key in ("AE_SRMOD", "AE_SRID", "AE_STRCH", "AE_INTVL", "AE_VMIN", "AE_VMAX", "AE_GATE", "AE_COLOR"):
            assert mos[0].header[key] == ran[0].header[key], key
        assert mos[0].header["AE_SRMOD"] == "psnr"
    fits.writeto(tmp_path / "frame.fits", rng.normal(10, 1, (60, 80)).astype(np.float32), w.to_header())
    result = runner.invoke(app, ["mosaic", str(tmp_path / "frame.fits"), str(tmp_path / "sky.png"), "--enhance", "-o",
                                 str(tmp_path / "mixed")])
    assert result.exit_code == 1 and "sky.png: a picture (display values) among FITS frames" in (
        " ".join(result.output.split()))


def test_non_overlapping_frames_refused_with_separation(tmp_path):
    with fits.open(BANDS[2]) as h:
        h[0].header["CRVAL2"] += 1.0  # one degree north
        h.writeto(tmp_path / "far_i.fits")
    result = runner.invoke(app, ["compose", str(BANDS[0]), str(BANDS[1]), str(tmp_path / "far_i.fits"), "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert "do not overlap on the sky" in result.output and "arcsec apart" in result.output


def _small_bands(tmp_path, size: tuple[int, int]) -> list[str]:
    """The CFHTLS bands cut to ``size`` (rows, columns) about pixel (128, 128), with their WCS: their paths."""
    small = tmp_path / "small"
    small.mkdir()
    for b in BANDS:
        with fits.open(b) as h:
            cut = Cutout2D(h[0].data, (128, 128), size, wcs=WCS(h[0].header))
            hdr = h[0].header.copy()
            hdr.update(cut.wcs.to_header())
            fits.writeto(small / b.name, cut.data, hdr)
    return [str(small / b.name) for b in BANDS]


def test_composite_upscale(tmp_path):
    small = _small_bands(tmp_path, (40, 48))
    result = runner.invoke(app, ["compose", *small, "-o", str(tmp_path / "o"), "--upscale"])
    assert result.exit_code == 0, result.output
    assert "--colorize" not in result.output  # `run`'s note about a colour input: compose has no such option
    with fits.open(tmp_path / "o" / "CFHTLS-test.composite.fits") as h:
        assert h["RED"].data.shape == (160, 192) and h[0].header["AE_FLUX"] is True
        assert h[0].header["AE_DISPT"] == 4.0  # blocks within 4 sigma of the composite's noise, as run's FITS


def test_composite_upscale_shows_no_block_lattice_unless_asked_to_be_exact(tmp_path):
    """Exact block means put back, block by block, the noise the network removed: a 4x4 lattice in the sky (the
    step across block edges 1.8x the steps inside on the CFHTLS bands). Within 4 sigma, the default, it does not show;
    --display-tolerance 0 is still exact."""
    from astroenhance.metrics import block_lattice

    small = _small_bands(tmp_path, (64, 64))
    lattice, means = {}, {}
    for tol in ("4", "0"):
        args = ["compose", *small, "-o", str(tmp_path / tol), "--upscale"]
        result = runner.invoke(app, args + ([] if tol == "4" else ["--display-tolerance", tol]))
        assert result.exit_code == 0, result.output
        with fits.open(tmp_path / tol / "CFHTLS-test.composite.fits") as h:
            assert h[0].header["AE_DISPT"] == float(tol)
            y = sum(w * h[c].data.astype(np.float64) for w, c in zip((0.2126, 0.7152, 0.0722), ("RED", "GREEN", "BLUE")))
        lit = y > 0.03  # the sky above the black point (below it, a block at 0 is all 0 either way)
        lattice[tol] = max(block_lattice(y, lit), block_lattice(y.T, lit.T))
        means[tol] = y.reshape(64, 4, 64, 4).mean(axis=(1, 3))
    assert lattice["4"] < 1.4 < lattice["0"]
    assert not np.allclose(means["4"], means["0"], atol=1e-4)  # the default lets the network's blocks be


def _pieces(tmp_path):
    with fits.open(HRC) as h:
        data = h["SCI"].data[44:204, 8:208].astype(np.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(h["SCI"].header, h)[44:204, 8:208]
        hdr0 = h[0].header
    paths = []
    for k, (cy, cx) in enumerate([(45, 55), (45, 140), (115, 60), (112, 145)]):
        cut = Cutout2D(data, (cx, cy), (100, 120), wcs=wcs, mode="trim")
        hdr = cut.wcs.to_header()
        hdr["FILTER1"] = hdr0.get("FILTER1", "")
        fits.writeto(tmp_path / f"piece{k}.fits", cut.data, hdr)
        paths.append(tmp_path / f"piece{k}.fits")
    return data, wcs, paths


def test_mosaic_recovers_parent_frame(tmp_path):
    data, wcs, paths = _pieces(tmp_path)
    result = runner.invoke(app, ["mosaic", *map(str, paths), "-o", str(tmp_path / "m"), "--grid", "first",
                                 "--no-match-background"])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "m" / "mosaic.mosaic.fits") as h:
        mos, w_mos = h[0].data, WCS(h[0].header)
        assert h["FOOTPRINT"].data.max() >= 2  # the pieces overlap
        # provenance: the tool, when, and each input by name and content
        history = " ".join(h[0].header["HISTORY"]).replace("  ", "")
        assert h[0].header["AE_VER"] and h[0].header["AE_DATE"] == h[0].header["DATE"] + "Z"
        import hashlib

        for p in paths:
            assert hashlib.sha256(p.read_bytes()).hexdigest()[:40] in history.replace(" ", ""), p.name
    # the grid is the parent's: same sky at pixel (0, 0) to 1e-6 pixel, same shape
    assert mos.shape == data.shape
    sky = w_mos.pixel_to_world(0, 0)
    x, y = wcs.world_to_pixel(sky)
    assert abs(x) < 1e-6 and abs(y) < 1e-6
    # pixel values: reproject_interp at integer offsets reproduces the parent (float32 rounding)
    np.testing.assert_allclose(mos, data, rtol=1e-5, atol=1e-3)


def test_a_frame_without_data_is_named_in_a_note(tmp_path):
    """A frame with no pixel of data (all NaN here) was co-added without a word: it adds nothing to the mosaic."""
    _, _, paths = _pieces(tmp_path)
    with fits.open(paths[1], mode="update") as h:
        h[0].data = np.full_like(h[0].data, np.nan)
    result = runner.invoke(app, ["mosaic", *map(str, paths), "-o", str(tmp_path / "m"), "--format", "fits"])
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and f"note: {paths[1].name}: no pixel with data" in said
    assert f"note: {paths[0].name}: no pixel" not in said


def test_mosaic_optimal_grid_and_background_matching(tmp_path):
    data, wcs, paths = _pieces(tmp_path)
    with fits.open(paths[1], mode="update") as h:  # a background offset on one piece
        h[0].data = h[0].data + 50.0
    result = runner.invoke(app, ["mosaic", *map(str, paths), "-o", str(tmp_path / "m"), "--combine", "median"])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "m" / "mosaic.mosaic.fits") as h:
        mos, w_mos = h[0].data, WCS(h[0].header)
    from reproject import reproject_interp

    parent_on_grid, fp = reproject_interp((data, wcs), w_mos, shape_out=mos.shape)
    both = (fp > 0) & np.isfinite(mos)
    diff = (mos - parent_on_grid)[both]
    # with background matching, the offset piece no longer stands 50 counts above the parent
    assert abs(np.median(diff)) < 15
    assert (tmp_path / "m" / "mosaic.mosaic.png").exists()


def test_mosaic_of_enhanced_frames_is_colour_and_4x(tmp_path):
    _, _, paths = _pieces(tmp_path)
    result = runner.invoke(app, ["mosaic", *map(str, paths[:2]), "-o", str(tmp_path / "m"), "--enhance", "--grid", "first"])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "m" / "mosaic.mosaic.fits") as h:
        assert [x.name for x in h] == ["PRIMARY", "RED", "GREEN", "BLUE"]
        assert h["RED"].data.shape[1] > 4 * 120  # two 120-wide pieces side by side, at 4x
    assert not [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("encoding", ["int16", "rice"])
def test_a_mosaic_of_runs_outputs_is_a_colour_mosaic_of_their_planes(tmp_path, encoding):
    """run's enhanced RGB FITS, as the help promised: a colour mosaic of their display planes on their 4x grids (it
    was a grey "science" mosaic of the RED plane alone, in display values); where one output alone covers the sky,
    the mosaic's planes are that output's. Mixed with raw frames, or with --enhance: refused, nothing written; run
    refuses to enhance an output again (skipped in a folder)."""
    _, _, paths = _pieces(tmp_path)
    ran = runner.invoke(app, ["run", *map(str, paths[:2]), "-o", str(tmp_path / "e"), "--format", "fits",
                              "--fits-encoding", encoding, "-q"])
    assert ran.exit_code == 0, ran.output
    outs = [tmp_path / "e" / f"piece{k}.enhanced.fits" for k in (0, 1)]
    result = runner.invoke(app, ["mosaic", *map(str, outs), "-o", str(tmp_path / "m"), "--grid", "first",
                                 "--format", "fits"])
    assert result.exit_code == 0, result.output
    assert "different display mappings" in result.output  # each piece was shown with its own
    with fits.open(tmp_path / "m" / "mosaic.mosaic.fits") as m, fits.open(outs[0]) as first:
        assert [x.name for x in m] == ["PRIMARY", "RED", "GREEN", "BLUE"]
        mos = m["RED"].data
        own = first["RED"].data
        assert mos.shape[0] == own.shape[0] and mos.shape[1] > own.shape[1]  # the first's grid, extended
        alone = np.s_[:, : own.shape[1] // 2]  # the first piece's left half: the second does not reach it
        np.testing.assert_allclose(mos[alone], own[alone], atol=2e-5)
    for bad in (["mosaic", str(outs[0]), str(paths[2])], ["mosaic", "--enhance", *map(str, outs)]):
        refused = runner.invoke(app, [*bad, "-o", str(tmp_path / "x")])
        assert refused.exit_code in (1, 2) and "astroenhance output" in refused.output
        assert not (tmp_path / "x").exists()
    said = " ".join(runner.invoke(app, ["mosaic", str(outs[0]), str(paths[2]), "-o", str(tmp_path / "x")]).output.split())
    assert f"{paths[2]}: not an astroenhance output, among outputs ({outs[0]}: display values" in said, said
    again = runner.invoke(app, ["run", str(outs[0]), "-o", str(tmp_path / "again")])
    assert again.exit_code == 1 and "an astroenhance output" in again.output and "--hdu FLUX" in again.output
    folder = runner.invoke(app, ["run", str(tmp_path / "e"), "-o", str(tmp_path / "again2")])
    assert folder.exit_code == 0 and "0 done, 2 skipped" in folder.output


def test_no_header_card_is_truncated(tmp_path):
    """Every card compose and mosaic --enhance write fits its 80 characters: astropy has nothing to cut (its
    VerifyWarning would leak to the user's terminal)."""
    from astropy.io.fits.verify import VerifyWarning

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = runner.invoke(app, ["compose", *map(str, BANDS), "-o", str(tmp_path / "c"), "--format", "fits"])
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["mosaic", "--enhance", str(BANDS[0]), str(BANDS[1]), "-o", str(tmp_path / "m"),
                                     "--format", "fits"])
        assert result.exit_code == 0, result.output
        for f in [*tmp_path.glob("c/*.fits"), *tmp_path.glob("m/*.fits")]:
            with fits.open(f) as h:
                for hdu in h:
                    str(hdu.header)  # formats every card: a too-long one warns here
    assert not [w for w in seen if issubclass(w.category, VerifyWarning)]


def test_mosaic_takes_every_chip_of_a_multi_chip_frame(tmp_path):
    """A WFPC2 exposure's four chips, each with its own WCS (from the file's table), are four pieces of one mosaic;
    --hdu takes one; compose, which needs one frame per filter, names the chips to choose from.  Reading the
    file's odd table header says nothing on the terminal."""
    from astropy.io.fits.verify import VerifyWarning

    from astroenhance.io.readers import open_frames

    from .conftest import FIXTURES

    wfpc2 = FIXTURES / "hubble_wfpc2_sample.fits"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = runner.invoke(app, ["mosaic", str(wfpc2), "-o", str(tmp_path / "m"), "--format", "fits"])
    assert result.exit_code == 0, result.output
    assert not [w for w in seen if issubclass(w.category, VerifyWarning)]
    with fits.open(tmp_path / "m" / "mosaic.mosaic.fits") as h:
        footprint, w_mos = h["FOOTPRINT"].data, WCS(h[0].header)
        history = list(h[0].header["HISTORY"])
    inputs = [c for c in history if "mosaic input" in c
              and not any(w in c for w in ("offset", "times", "sha256", "cosmic rays"))]
    assert inputs == [f"astroenhance mosaic input {k}: hubble_wfpc2_sample.fits[chip{k}]" for k in range(1, 5)]
    # a WFPC2 exposure renamed (its FILENAME says u5780205r_cvt.c0h): each chip searched for hits, as `run` does
    assert [int(c.split()[3]) for c in history if "cosmic rays:" in c] == [1, 2, 3, 4]
    # counts per pixel: the three WF chips' 0.1" pixels onto the PC chip's 0.046" grid (they were ~4.8x too bright)
    scaled = {int(c.split()[3]): float(c.split()[5].rstrip(":")) for c in history if " times " in c}
    assert sorted(scaled) == [2, 3, 4] and all(0.2 < f < 0.22 for f in scaled.values())
    with open_frames(wfpc2) as chips:
        for chip in chips:  # each chip's inner corners and centre are on the mosaic, inside its footprint
            ny, nx = chip.shape
            xs, ys = np.array([5, nx - 6, nx - 6, 5, nx / 2]), np.array([5, 5, ny - 6, ny - 6, ny / 2])
            x, y = w_mos.world_to_pixel(chip.wcs.pixel_to_world(xs, ys))
            assert (footprint[np.round(y).astype(int), np.round(x).astype(int)] > 0).all(), chip.label
    one = runner.invoke(app, ["mosaic", str(wfpc2), "--hdu", "chip2", "-o", str(tmp_path / "one"), "--format", "fits"])
    assert one.exit_code == 0, one.output
    assert "input 1: hubble_wfpc2_sample.fits[chip2]" in str(fits.getheader(tmp_path / "one" / "mosaic.mosaic.fits"))


def test_compose_of_multi_chip_exposures_takes_each_filters_chips_together(tmp_path):
    """Each filter's file of several chips is one band: its chips co-added on the first chip's grid, extended over
    the others (a WFPC2 exposure in two filters: every chip of the field in colour); --hdu takes one chip."""
    import shutil

    from .conftest import FIXTURES

    for band, scale in (("f555w", 1.0), ("f814w", 1.5)):
        shutil.copy(FIXTURES / "hubble_wfpc2_sample.fits", tmp_path / f"u_{band}_c0f.fits")
        with fits.open(tmp_path / f"u_{band}_c0f.fits", mode="update") as h:
            h[0].header["FILTNAM1"] = band.upper()
            h[0].data = h[0].data * scale
    paths = [str(tmp_path / f"u_{b}_c0f.fits") for b in ("f555w", "f814w")]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        result = runner.invoke(app, ["compose", *paths, "-o", str(tmp_path / "c"), "--format", "fits"])
    assert result.exit_code == 0, result.output
    assert not [w for w in seen if issubclass(w.category, RuntimeWarning)]
    [out] = list((tmp_path / "c").glob("*.composite.fits"))
    with fits.open(out) as h:
        red, head = h["RED"].data, h[0].header
    assert head["AE_BSRC"] == "u_f555w_c0f.fits[chip1+chip2+chip3+chip4]"
    assert head["AE_BFLT"] == "F555W" and head["AE_RFLT"] == "F814W"
    assert np.isfinite(red).mean() > 0.8 and red.size > 4 * 200 * 200  # the four chips' field, not one chip
    one = runner.invoke(app, ["compose", *paths, "--hdu", "chip2", "-o", str(tmp_path / "one"), "--format", "fits"])
    assert one.exit_code == 0, one.output
    with fits.open(next((tmp_path / "one").glob("*.composite.fits"))) as h:
        assert h["RED"].data.shape == (200, 200) and h[0].header["AE_BSRC"] == "u_f555w_c0f.fits[chip2]"


@given(st.floats(-100, 100), st.floats(-100, 100), st.integers(0, 2**16 - 1))
@settings(max_examples=25, deadline=None)
def test_background_offsets_join_overlapping_frames_and_leave_a_lone_one_alone(d, level, seed):
    """Two frames that overlap, one d above the other, meet halfway (offsets -d/2, +d/2: their mean level kept); a
    frame that overlaps neither keeps its own level (offset 0), whatever the others do."""
    from astroenhance.compose import solve_offsets

    rng = np.random.default_rng(seed)
    sky = rng.normal(0, 1, (30, 40))
    stack = np.full((3, 30, 40), np.nan)
    stack[0, :, :25] = sky[:, :25]
    stack[1, :, 15:] = sky[:, 15:] + d
    stack[2, :5, :5] = level  # on the same grid, but in no other frame's pixels
    stack[0, :5, :5] = np.nan
    offsets = solve_offsets(stack)
    np.testing.assert_allclose(offsets, [-d / 2, d / 2, 0.0], atol=1e-9)


def test_mosaic_of_chips_that_do_not_overlap_keeps_every_pixel(tmp_path):
    """An ACS-like exposure's two chips, either side of their gap, overlap nowhere: matched backgrounds leave each as
    it is (reproject's own matching made the whole mosaic NaN); the header records each offset."""
    from .conftest import FIXTURES

    result = runner.invoke(app, ["mosaic", str(FIXTURES / "sample_svm_flc.fits.gz"), "-o", str(tmp_path / "m"),
                                 "--format", "fits"])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "m" / "mosaic.mosaic.fits", checksum=True) as h:
        data, footprint, history = h[0].data, h["FOOTPRINT"].data, [str(c) for c in h[0].header["HISTORY"]]
        assert all(x.verify_checksum() == 1 and x.verify_datasum() == 1 for x in h)  # as the run's FITS
    assert (footprint > 0).sum() >= 190 and np.isfinite(data[footprint > 0]).all()
    assert [c for c in history if "offset" in c] == [f"astroenhance mosaic input {k} background offset subtracted: 0"
                                                     for k in (1, 2)]


def test_a_first_frames_grid_keeps_its_sip_distortion_exact_where_the_grid_grows(tmp_path):
    """--grid first extends the first frame's grid to cover the others: with SIP distortion (a polynomial in pixel -
    CRPIX) every pixel must still see the sky the first frame's pixel under it sees — in memory and as written."""
    from astropy.wcs import Sip

    from astroenhance.compose import mosaic_grid

    from .conftest import FIXTURES

    with fits.open(FIXTURES / "j94f05bgq_flt.fits") as h, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = WCS(h["SCI", 1].header, h)
    assert ref.sip is not None
    other = ref.deepcopy()  # a frame whose pixels lie 300 columns left of and 200 rows below the first's
    other.wcs.crpix = np.asarray(other.wcs.crpix) + [300, 200]
    other.sip = Sip(ref.sip.a, ref.sip.b, ref.sip.ap, ref.sip.bp, other.wcs.crpix)
    other.wcs.set()
    shape = (2048, 4096)
    out, out_shape = mosaic_grid([(np.zeros(shape), ref), (np.zeros(shape), other)], "first")
    assert out_shape == (2248, 4396)
    written = WCS(out.to_header(relax=True))
    x, y = np.array([0.0, 100.0, 2500.0, 4395.0]), np.array([0.0, 50.0, 1900.0, 2247.0])
    for w in (out, written):
        sx, sy = ref.world_to_pixel(w.pixel_to_world(x, y))
        np.testing.assert_allclose(sx, x - 300, atol=1e-6)
        np.testing.assert_allclose(sy, y - 200, atol=1e-6)


def test_frames_enhanced_for_a_colour_mosaic_agree_where_they_overlap(tmp_path, monkeypatch):
    """mosaic --enhance: two overlapping pieces of one frame, one 50 counts above the other, enhanced with their
    backgrounds matched and one display mapping, show the same luminance where they overlap (each with its own
    mapping they differed by 0.018 on average: a seam)."""
    from pathlib import Path

    from reproject import reproject_interp

    from astroenhance.compose import Band, enhance_frames
    from astroenhance.config import EnhanceConfig
    from astroenhance.pipeline import Enhancer

    with fits.open(HRC) as h, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = h["SCI"].data[44:204, 8:208].astype(np.float32)
        wcs = WCS(h["SCI"].header, h)[44:204, 8:208]
    bands = []
    for k, (cx, offset) in enumerate([(70, 0.0), (130, 50.0)]):
        cut = Cutout2D(data, (cx, 80), (140, 120), wcs=wcs, mode="trim")
        bands.append(Band(Path(f"p{k}.fits"), cut.data + offset, cut.wcs, fits.Header(), "", None))
    (rgb0, w0, _), (rgb1, w1, _) = enhance_frames(bands, Enhancer(EnhanceConfig(colorize=False)), True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        l1, fp = reproject_interp((rgb1[..., 1].astype(np.float64), w1), w0, shape_out=rgb0.shape[:2])
    both = (fp > 0.99) & np.isfinite(rgb0[..., 1]) & np.isfinite(l1)
    assert both.sum() > 100_000  # the overlap: 70 input columns, at 4x
    assert np.mean(np.abs(rgb0[..., 1][both] - l1[both])) < 0.003
    # with a scratch folder (`mosaic --enhance`) each frame is written into a memory-mapped file there as it is
    # made (it was made in memory, then copied), the same values; no FLUX or FLUXERR is made for a colour mosaic
    made, enhance_source = [], Enhancer.enhance_source
    monkeypatch.setattr(Enhancer, "enhance_source", lambda *a, **k: made.append(enhance_source(*a, **k)) or made[-1])
    kept = enhance_frames(bands, Enhancer(EnhanceConfig(colorize=False)), True, scratch=tmp_path)
    assert all(isinstance(rgb, np.memmap) and Path(rgb.filename).parent == tmp_path for rgb, _, _ in kept)
    assert [r.rgb is rgb for r, (rgb, _, _) in zip(made, kept)] == [True, True]
    assert all(r.flux is None and r.flux_err is None for r in made)
    np.testing.assert_array_equal(kept[0][0], rgb0)
    np.testing.assert_array_equal(kept[1][0], rgb1)


@pytest.mark.parametrize("command, output", [("compose", "cfhtls.composite.fits"), ("mosaic", "cfhtls.mosaic.fits")])
def test_an_input_named_like_the_output_is_refused_before_any_work(tmp_path, command, output):
    """Making a composite or a mosaic again from an earlier one of the same name: the input is never replaced."""
    earlier = tmp_path / output
    shutil.copy(BANDS[0], earlier)
    before = earlier.read_bytes()
    result = runner.invoke(app, [command, str(earlier), str(BANDS[1]), "--name", "cfhtls", "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"error: {earlier}: is one of the input frames and would be overwritten")
    assert earlier.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [output]


@pytest.mark.parametrize("command", ["compose", "mosaic"])
def test_a_frame_given_twice_is_refused(tmp_path, command):
    """A band counted twice (its colour doubled), a frame weighed double in the mean: a usage error, nothing written."""
    result = runner.invoke(app, [command, str(BANDS[0]), str(BANDS[1]), str(BANDS[0]), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "is given more than once" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["compose", "mosaic"])
@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden"])
def test_an_output_name_that_is_not_a_plain_file_name_is_refused(tmp_path, command, name):
    """--name ../escape and a/b were cut to their last part without a word; '' wrote hidden files (.composite.png)."""
    result = runner.invoke(app, [command, str(BANDS[0]), str(BANDS[1]), "-o", str(tmp_path / "o"), "--name", name])
    assert result.exit_code == 2 and "give a plain file name" in result.output
    assert list(tmp_path.iterdir()) == []


def _with_filter(src, dst, name, cut=None):
    data, header = fits.getdata(src, header=True)
    header["FILTER"] = name
    if cut is not None:  # a smaller, shifted grid of the same sky
        c = Cutout2D(data, cut[0], cut[1], wcs=WCS(header))
        data = c.data
        header.update(c.wcs.to_header())
    fits.writeto(dst, data, header)
    return dst


def test_frames_of_one_filter_make_one_band(tmp_path):
    """Two exposures of g and one of r: g's band is the two co-added (so with identical exposures, the composite
    of g alone with r), not g as blue and g again as green."""
    g2 = _with_filter(BANDS[0], tmp_path / "g_second.fits", fits.getheader(BANDS[0])["FILTER"])
    planes = {}
    for name, frames in (("pair", [BANDS[0], g2, BANDS[1]]), ("single", [BANDS[0], BANDS[1]])):
        result = runner.invoke(app, ["compose", *map(str, frames), "-o", str(tmp_path / name), "--name", "c"])
        assert result.exit_code == 0, result.output
        with fits.open(tmp_path / name / "c.composite.fits") as h:
            planes[name] = np.stack([h[e].data for e in ("RED", "GREEN", "BLUE")]).astype(np.float64)
            if name == "pair":
                assert h[0].header["AE_BSRC"] == "CFHTLS-test_g.fits+g_second.fits"
                assert h[0].header["AE_GFLT"] == "mean" and h[0].header["AE_INSHA"].count(",") == 2
    np.testing.assert_allclose(planes["pair"], planes["single"], atol=1e-4)


def test_two_filters_on_different_grids_make_green_on_the_common_grid(tmp_path):
    """g, and a smaller, shifted cut-out of the same g frame called r: green (their mean) is formed after both are
    on one grid (it was formed on g's pixels before alignment: a crash here, a misaligned green where the shapes
    happened to agree).  Aligned right, the three planes are one image in three scalings (Lupton keeps ratios)."""
    r_cut = _with_filter(BANDS[0], tmp_path / "r_cut.fits", "r.MP9601", cut=((140, 120), (150, 170)))
    result = runner.invoke(app, ["compose", str(BANDS[0]), str(r_cut), "-o", str(tmp_path / "o"), "--name", "c"])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "o" / "c.composite.fits") as h:
        rgb = np.stack([h[e].data for e in ("RED", "GREEN", "BLUE")]).astype(np.float64)
        assert rgb.shape[1:] == fits.getdata(BANDS[0]).shape  # the finer (here: first) frame's grid
        assert h[0].header["AE_GSRC"] == "mean of blue and red"
    finite = np.isfinite(rgb).all(axis=0)
    assert 0.3 < finite.mean() < 0.5  # data only where both bands are (the cut-out's share of g's pixels)
    bright = finite & (rgb[2] > 0.05) & (rgb.max(axis=0) < 0.95)
    assert bright.sum() > 200
    for plane in (rgb[0], rgb[1]):  # each an affine function of blue (the bands' backgrounds differ): nothing left
        fit = np.polyval(np.polyfit(rgb[2][bright], plane[bright], 1), rgb[2][bright])
        assert np.std(plane[bright] - fit) < 0.01 * np.std(plane[bright]), np.std(plane[bright] - fit) / np.std(plane[bright])


@pytest.mark.parametrize("method", ["lupton", "asinh"])
@pytest.mark.parametrize("count", [2, 3, 4])
def test_a_composite_made_in_strips_is_the_composite_made_at_once(tmp_path, monkeypatch, method, count):
    """`compose` aligned and mapped the whole grid at once in float64 (~200 bytes a grid pixel for three bands: a
    10k² Frontier Field needed ~20 GB); it now works in strips into float32 scratch files. Every pixel is as the
    whole grid's, to float32's rounding (both mappings work pixel by pixel once each band's levels are known), for
    two, three and four bands, and the stack and the composite live in the scratch folder."""
    from astroenhance import compose

    bands = [*BANDS, _with_filter(BANDS[2], tmp_path / "z.fits", "z.MP9801")][:count] if count > 3 else BANDS[:count]
    monkeypatch.setattr(compose, "COMPOSE_STRIP_PIXELS", 1 << 62)
    whole, _ = compose.composite_source(bands, method=method)
    monkeypatch.setattr(compose, "COMPOSE_STRIP_PIXELS", 7_000)  # (strips of a few rows)
    (tmp_path / "s").mkdir()
    strips, _ = compose.composite_source(bands, method=method, scratch=tmp_path / "s")
    a, b = whole.read_rows(0, whole.shape[0]), strips.read_rows(0, strips.shape[0])
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)
    assert {p.name for p in (tmp_path / "s").iterdir()} >= {"aligned.npy", "rgb.npy"}


def test_a_composite_is_mapped_in_strips_not_whole(monkeypatch):
    """`composite_rgb` held the whole grid's float64 copies at once (astropy's Lupton mapping makes ~15 of what it
    is given); in strips, what it allocates beside its output is a strip's, and each band's levels (its pixels
    with data copied once, for the exact sigma-clipped background and 99.5th percentile)."""
    import tracemalloc

    from astroenhance import compose

    rng = np.random.default_rng(3)
    stack = rng.normal(0.0, 1.0, (3, 400, 500)).astype(np.float32) + np.array([1.0, 2.0, 3.0], np.float32)[:, None, None]
    out = np.empty((400, 500, 3), np.float32)
    peaks = {}
    for name, pixels in (("strips", 10_000), ("whole", 1 << 62)):
        monkeypatch.setattr(compose, "COMPOSE_STRIP_PIXELS", pixels)
        tracemalloc.start()
        compose.composite_rgb(stack, "lupton", out=out)
        peaks[name] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    grid = 400 * 500 * 8  # one float64 plane of the grid
    assert peaks["strips"] < 6 * grid < 15 * grid < peaks["whole"], peaks  # (measured: 5.1 and 19 planes)


def test_four_filters_or_more_each_get_a_hue_by_wavelength(tmp_path):
    """Four filters or more (a Frontier Field's seven) were refused; each band now gets a hue by its rank in
    wavelength, blue through green to red (`chromatic_weights`: three bands are each their own channel), every band
    brought to one scale first; each channel's filters and weights are in its cards, each band's frame, filter,
    weights and sha256 in HISTORY. A band of unknown filter among more than three is refused, naming it."""
    from astroenhance.compose import _levels, chromatic_channels, chromatic_weights
    from astroenhance.models.weights import sha256_file

    z = _with_filter(BANDS[2], tmp_path / "z.fits", "z.MP9801")
    result = runner.invoke(app, ["compose", str(z), *map(str, BANDS), "-o", str(tmp_path / "o"), "--name", "c4"])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "o" / "c4.composite.fits") as h:
        p, history = h[0].header, " ".join(h["RED"].header["HISTORY"])
        assert p["AE_NBAND"] == 4 and p["AE_BFLT"] == "g.MP9401*0.75+r.MP9601*0.25"
        assert p["AE_GFLT"] == "r.MP9601*0.50+i.MP9701*0.50" and p["AE_RFLT"] == "i.MP9701*0.25+z.MP9801*0.75"
        rgb = np.stack([h[c].data for c in ("RED", "GREEN", "BLUE")]).astype(np.float64)
    for k, band in enumerate([BANDS[0], BANDS[1], BANDS[2], z]):  # (blue to red, whatever the order given)
        assert f"band {k + 1} of 4: {band.name}" in history and sha256_file(band) in history.replace(" ", "")
    assert np.isfinite(rgb).all() and rgb.std(axis=(1, 2)).min() > 0.01
    stack = np.stack([fits.getdata(b).astype(np.float64) for b in BANDS])
    common = np.isfinite(stack).all(axis=0)
    np.testing.assert_array_equal(chromatic_weights(3), np.eye(3))
    def _scaled(band, common):  # a band brought to one scale: less its background, over its 99.5th percentile
        background, level = _levels(band, common)
        return (band - background) / level

    three = chromatic_channels(stack, chromatic_weights(3))
    for c in range(3):
        np.testing.assert_allclose(three[c], _scaled(stack[c], common), rtol=1e-12)
    four = chromatic_channels(np.concatenate([stack, stack[2:]]), chromatic_weights(4))
    np.testing.assert_allclose(four[0], 0.75 * _scaled(stack[0], common) + 0.25 * _scaled(stack[1], common))
    unnamed = tmp_path / "unnamed.fits"
    data, header = fits.getdata(BANDS[2], header=True)
    del header["FILTER"]
    fits.writeto(unnamed, data * 2, header)
    result = runner.invoke(app, ["compose", *map(str, BANDS), str(unnamed), "-o", str(tmp_path / "u")],
                           terminal_width=300)
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "4 filters: more than three are given hues in order of wavelength" in said, said
    assert "the filter of unnamed.fits is not known" in said and not (tmp_path / "u").exists()


@given(st.integers(3, 24))
def test_chromatic_weights_go_from_blue_to_red(n):
    from astroenhance.compose import chromatic_weights

    w = chromatic_weights(n)
    np.testing.assert_allclose(w.sum(axis=0), 1.0)
    assert (w >= 0).all() and w[0, 1:].sum() == 0 and w[-1, :2].sum() == 0 and (w.sum(axis=1) > 0).all()
    redness = (w[:, 2] - w[:, 0]) / w.sum(axis=1)
    assert (np.diff(redness) > 0).all()


def test_a_mosaic_of_different_filters_says_so(tmp_path):
    import pyavm

    result = runner.invoke(app, ["mosaic", str(BANDS[0]), str(BANDS[1]), "-o", str(tmp_path / "m")],
                           terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "warning: the frames are of different filters (g.MP9401, r.MP9601)" in result.output
    head = fits.getheader(tmp_path / "m" / "mosaic.mosaic.fits")
    history = "".join(head["HISTORY"]).replace(" ", "")
    assert "differentfilters(g.MP9401,r.MP9601)" in history  # (HISTORY cards wrap the sentence at spaces)
    # the first frame's FILTER no longer says what the mosaic is (it said g.MP9401), nor does its picture's AVM;
    # what the frames agree on stays
    assert "FILTER" not in head and "FILTER" in history.split("astroenhance:", 1)[1].split("differbetweenthe2frames")[0]
    assert head["TELESCOP"] == fits.getheader(BANDS[0])["TELESCOP"]
    avm = pyavm.AVM.from_image(str(tmp_path / "m" / "mosaic.mosaic.png"))
    assert avm.Spectral.Bandpass is None and avm.Facility == [head["TELESCOP"]]
    assert avm.Spectral.ColorAssignment == ["Grayscale"]
    same = runner.invoke(app, ["mosaic", str(BANDS[0]), str(_with_filter(BANDS[0], tmp_path / "g2.fits",
                                                                         "g.MP9401")), "-o", str(tmp_path / "s")])
    assert same.exit_code == 0 and "warning" not in same.output
    assert fits.getheader(tmp_path / "s" / "mosaic.mosaic.fits")["FILTER"] == "g.MP9401"
    assert pyavm.AVM.from_image(str(tmp_path / "s" / "mosaic.mosaic.png")).Spectral.Bandpass == ["g.MP9401"]


def test_a_mosaic_of_a_frame_without_bunit_beside_one_with_it(tmp_path):
    """A frame whose header gives no BUNIT beside one that does: the mosaic's keyword check read BUNIT from every
    frame and stopped with KeyError 'BUNIT'; the mosaic carries no BUNIT and says why in its HISTORY."""
    bare = tmp_path / "bare.fits"
    with fits.open(EXAMPLE) as hdul:
        del hdul[0].header["BUNIT"]
        hdul.writeto(bare)
    result = runner.invoke(app, ["mosaic", str(EXAMPLE), str(bare), "-o", str(tmp_path / "m"), "--format", "fits"])
    assert result.exit_code == 0, result.output
    head = fits.getheader(tmp_path / "m" / "mosaic.mosaic.fits")
    assert "BUNIT" not in head and "BUNIT" in "".join(head["HISTORY"]).split("differ between")[0]


def test_one_unit_spelled_two_ways_is_not_called_two_units(tmp_path):
    """The two Frontier Fields cut-outs of Abell 2744 say BUNIT 'ELECTRONS/S' and 'electron / s': a mosaic of them
    warned of "different units". Units are compared by meaning (HST's words, astropy's units); a real difference
    still warns."""
    from astroenhance.compose import unit_key

    same = ["ELECTRONS/S", "electron / s", "electrons/s", "e-/s", "electron s-1", "electrons/sec"]
    assert len({unit_key(u) for u in same}) == 1
    assert len({unit_key(u) for u in ["COUNTS/S", "counts s-1", "cps", "count/sec"]}) == 1
    assert unit_key("erg/s/cm2/A") == unit_key("erg/cm2/s/A")
    for a, b in [("mJy/sr", "MJy/sr"), ("ELECTRONS", "ELECTRONS/S"), ("COUNTS/S", "ELECTRONS/S"), ("DN", "DN/S")]:
        assert unit_key(a) != unit_key(b), (a, b)
    result = runner.invoke(app, ["mosaic", str(EXAMPLE), str(FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz"),
                                 "-o", str(tmp_path / "m")], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "units" not in result.output, result.output
    other = tmp_path / "counts.fits"
    with fits.open(EXAMPLE) as hdul:
        hdul[0].header["BUNIT"] = "COUNTS/S"
        hdul.writeto(other)
    result = runner.invoke(app, ["mosaic", str(EXAMPLE), str(other), "-o", str(tmp_path / "c")], terminal_width=300)
    assert "different units (BUNIT) (COUNTS/S, electron / s)" in result.output, result.output


@pytest.mark.parametrize("grid", ["optimal", "first"])
def test_frames_far_apart_are_refused_before_a_grid_that_size_is_made(tmp_path, grid):
    """Two 64² frames 0.42 degrees apart at 0.05": a 21,000² grid (460 Mpx, GBs per plane) for 8,192 pixels of data —
    refused in one line (it ran out of memory); frames side by side on the sky are still one mosaic."""
    paths = []
    for name, ra, dec in (("a", 150.0, 2.0), ("b", 150.3, 2.3), ("c", 150.0018, 2.0)):
        header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 32.0, "CRPIX2": 32.0,
                              "CRVAL1": ra, "CRVAL2": dec, "CDELT1": -1.4e-5, "CDELT2": 1.4e-5})
        fits.writeto(tmp_path / f"{name}.fits", np.ones((64, 64), np.float32), header)
        paths.append(str(tmp_path / f"{name}.fits"))
    result = runner.invoke(app, ["mosaic", paths[0], paths[1], "-o", str(tmp_path / "m"), "--grid", grid],
                           terminal_width=300)
    assert result.exit_code == 2 and "the frames lie far apart on the sky" in result.output
    assert "farthest apart: a.fits and b.fits, 0.42 degrees" in result.output, result.output
    assert not (tmp_path / "m").exists()
    result = runner.invoke(app, ["mosaic", paths[0], paths[2], "-o", str(tmp_path / "n"), "--grid", grid])
    assert result.exit_code == 0, result.output
    # on opposite sides of the sky no tangent plane holds both (reproject's grid size was NaN: a traceback)
    fits.writeto(tmp_path / "far.fits", np.ones((64, 64), np.float32),
                 fits.Header({**fits.getheader(paths[0]), "CRVAL1": 330.0, "CRVAL2": -2.0}))
    for enhance in ("--no-enhance", "--enhance"):
        result = runner.invoke(app, ["mosaic", paths[0], str(tmp_path / "far.fits"), "-o", str(tmp_path / "f"),
                                     "--grid", grid, enhance], terminal_width=300)
        assert result.exit_code == 2, result.output
        assert "far apart on the sky: 180 degrees between a.fits and far.fits" in result.output, result.output


def test_frames_of_pixels_far_longer_than_wide_are_refused_or_put_on_the_first_frames_grid(tmp_path):
    """Pixels 1 degree by 0.05" (a CDELT1 of 1 where 1.4e-5 was meant): the optimal grid, at the mean side, held the
    frames in under half a pixel one way, reproject rounded that to a grid 0 pixels tall, and `mosaic` ended in a
    ValueError from reproject (found by `test_fuzz_frames`, once in a few full runs); now one line saying why, and
    `--grid first` makes the mosaic on the frames' own pixels."""
    paths = []
    for i in range(2):
        header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 4.0, "CRPIX2": 4.0 + i,
                              "CRVAL1": 150.0, "CRVAL2": 2.0, "CDELT1": 1.0, "CDELT2": 1.4e-5})
        fits.writeto(tmp_path / f"x{i}.fits", np.random.default_rng(i).normal(10, 1, (8, 8)), header)
        paths.append(str(tmp_path / f"x{i}.fits"))
    for enhance in ("--no-enhance", "--enhance"):
        result = runner.invoke(app, ["mosaic", *paths, "-o", str(tmp_path / "m"), enhance], terminal_width=300)
        assert result.exit_code == 2 and "less than half a grid pixel across" in result.output, result.output
        assert "x0.fits's pixels are 3.6e+03\" by 0.0504\"" in result.output and not (tmp_path / "m").exists()
    result = runner.invoke(app, ["mosaic", *paths, "-o", str(tmp_path / "f"), "--grid", "first", "--format", "fits"])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "f" / "mosaic.mosaic.fits") as hdul:
        assert hdul[0].data.shape == (9, 8) and np.isfinite(hdul[0].data).sum() == 72


def _left_half(src, dst):
    data, header = fits.getdata(src, header=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cut = Cutout2D(data, (64, 128), (256, 128), wcs=WCS(header))
    header = header.copy()
    header.update(cut.wcs.to_header())
    fits.writeto(dst, cut.data, header)
    return dst


@pytest.mark.parametrize("method", ["lupton", "asinh"])
def test_a_band_covering_part_of_the_field_keeps_the_colour_balance(tmp_path, method):
    """Each band is scaled by statistics of the sky the composite shows (where all bands have data): with r over
    the left half only, its green was a sixth as bright as the composite of the same sky (r scaled by other sky
    than g and i). Now the composite there is exactly that of the three bands cut to the left half."""
    (tmp_path / "half").mkdir()
    (tmp_path / "cut").mkdir()
    partial = [BANDS[0], _left_half(BANDS[1], tmp_path / "half" / "r.fits"), BANDS[2]]
    cut = [_left_half(b, tmp_path / "cut" / f"{b.stem[-1]}.fits") for b in BANDS]
    for frames, out in ((partial, "p"), (cut, "c")):
        result = runner.invoke(app, ["compose", *map(str, frames), "-o", str(tmp_path / out), "--name", "x",
                                     "--format", "fits", "--method", method, "--reference", "1"])
        assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "p" / "x.composite.fits") as p, fits.open(tmp_path / "c" / "x.composite.fits") as c:
        for plane in ("RED", "GREEN", "BLUE"):
            shown = p[plane].data
            assert np.isnan(shown[:, 140:]).all()  # r has no data there: no colour is made up
            np.testing.assert_allclose(shown[:, :128], c[plane].data, atol=2e-5)


def test_a_mosaic_of_frames_with_different_pixel_sizes_keeps_per_pixel_units(tmp_path):
    """Counts (or electrons/s) per pixel of a frame binned 2x2 are 4x those of the native frame: reprojection keeps
    each pixel's value, so the binned frame's part of the mosaic came out 4x too bright. Now it is scaled by the
    grid's pixel area over its own (recorded in HISTORY); a surface brightness (MJy/sr) is not scaled."""
    data, wcs, paths = _pieces(tmp_path)
    native = paths[0]  # columns 0..115 of the parent
    block = data[:, 80:200]
    binned = block.reshape(block.shape[0] // 2, 2, block.shape[1] // 2, 2).sum((1, 3))  # counts per 2x2 pixel
    for bunit, factor in (("", 0.25), ("ELECTRONS", 0.25), ("MJy/sr", 1.0)):
        binned_wcs = wcs[:, 80:200].deepcopy()  # 2x2 pixels: the CD matrix doubled, CRPIX on the coarser grid
        binned_wcs.wcs.cd = binned_wcs.wcs.cd * 2
        binned_wcs.wcs.crpix = (binned_wcs.wcs.crpix - 0.5) / 2 + 0.5
        header = binned_wcs.to_header()
        if bunit:
            header["BUNIT"] = bunit
        fits.writeto(tmp_path / "binned.fits", binned if bunit != "MJy/sr" else binned / 4, header, overwrite=True)
        out = tmp_path / f"m{factor}{bunit}"
        result = runner.invoke(app, ["mosaic", str(native), str(tmp_path / "binned.fits"), "-o", str(out), "--grid",
                                     "first", "--no-match-background", "--format", "fits"])
        assert result.exit_code == 0, result.output
        with fits.open(out / "mosaic.mosaic.fits") as h:
            mos = h[0].data
            history = "".join(h[0].header["HISTORY"])
        only_binned = mos[10:150, 125:190]  # right of the native piece: the binned frame's light alone
        assert np.nanmedian(only_binned / data[10:150, 125:190]) == pytest.approx(1.0, abs=0.1), bunit
        assert ("times 0.25" in history.replace("  ", "")) == (factor != 1.0)
        assert ("1 frame(s) in per-pixel units" in result.output) == (factor != 1.0)


def test_a_mosaic_of_exposures_of_different_lengths_in_counts_puts_them_on_one_exposure_time(tmp_path):
    """Electrons (or counts) gathered over 400 s are 4x those over 100 s: the mosaic of two such exposures mixed two
    scales (the second frame's part 4x too bright); now each is put on the first frame's EXPTIME (HISTORY says
    so).  A rate (electrons/s) is not scaled, whatever the exposure times."""
    data, wcs, paths = _pieces(tmp_path)
    first, second = paths[0], paths[1]  # side by side, overlapping in columns 80..115 of the parent
    for bunit, scaled in (("ELECTRONS", True), ("COUNTS", True), ("ELECTRONS/S", False), ("electron s-1", False)):
        for path, exptime, factor in ((first, 100.0, 1.0), (second, 400.0, 4.0 if scaled else 1.0)):
            with fits.open(path) as h:
                raw = np.asarray(fits.getdata(path), np.float32)
                header = h[0].header.copy()
            header["BUNIT"], header["EXPTIME"] = bunit, exptime
            fits.writeto(tmp_path / f"e{path.name}", raw * np.float32(factor), header, overwrite=True)
        out = tmp_path / f"m{bunit.replace('/', '').replace(' ', '')}"
        result = runner.invoke(app, ["mosaic", str(tmp_path / f"e{first.name}"), str(tmp_path / f"e{second.name}"),
                                     "-o", str(out), "--grid", "first", "--no-match-background", "--format", "fits"])
        assert result.exit_code == 0, result.output
        with fits.open(out / "mosaic.mosaic.fits") as h:
            mos, head = h[0].data, h[0].header
        only_second = mos[10:90, 125:190]  # right of the first piece: the second exposure's light alone
        assert np.nanmedian(only_second / data[10:90, 125:190]) == pytest.approx(1.0, abs=0.05), bunit
        # counts: put on the first frame's EXPTIME, which the mosaic keeps; rates: the times differ, so none is its
        assert head.get("EXPTIME") == (100.0 if scaled else None)
        assert ("times 0.25: its EXPTIME 400.0 s" in "".join(head["HISTORY"]).replace("  ", "")) == scaled
        assert ("gathered over another exposure time" in result.output) == scaled


@pytest.mark.parametrize("method", ["lupton", "asinh"])
def test_a_band_without_signal_is_refused(tmp_path, method):
    """A constant (empty, zero-filled) band made a green wash over the whole composite with --method asinh (77% green
    everywhere) and no green at all with lupton; it is one line naming the frame now, nothing written."""
    data, header = fits.getdata(BANDS[1], header=True)
    flat = tmp_path / "r_flat.fits"
    fits.writeto(flat, np.full_like(data, 3.0), header)
    result = runner.invoke(app, ["compose", str(BANDS[0]), str(flat), str(BANDS[2]), "-o", str(tmp_path / "o"),
                                 "--method", method])
    assert result.exit_code == 1 and "r_flat.fits: every pixel where the bands overlap is 3" in result.output
    assert not (tmp_path / "o").exists()


def test_a_mosaics_pixel_area_cards_are_those_of_its_grid(tmp_path):
    """JWST's PIXAR_SR/PIXAR_A2 (a pixel's solid angle) in the science mosaic are of the mosaic's pixels: a 0.062"
    frame first, a 0.031" one beside it, on the finest grid, is a quarter of the first frame's."""
    from astropy.wcs import WCS

    paths = []
    for k, scale in enumerate((0.062, 0.031)):
        w = WCS(naxis=2)
        w.wcs.ctype, w.wcs.crval, w.wcs.crpix = ["RA---TAN", "DEC--TAN"], [10.0, 20.0], [8.0, 8.0]
        w.wcs.cdelt = [-scale / 3600, scale / 3600]
        area = (scale / 206264.806) ** 2
        cards = {"TELESCOP": "JWST", "BUNIT": "MJy/sr", "PIXAR_SR": area, "PIXAR_A2": scale**2}
        data = np.random.default_rng(k).normal(1.0, 0.01, (16, 16)).astype(np.float32)
        paths.append(tmp_path / f"f{k}.fits")
        fits.PrimaryHDU(data, w.to_header() + fits.Header(cards)).writeto(paths[-1])
    result = runner.invoke(app, ["mosaic", *map(str, paths), "-o", str(tmp_path / "m"), "--format", "fits"])
    assert result.exit_code == 0, result.output
    header = fits.getheader(tmp_path / "m" / "mosaic.mosaic.fits")
    assert abs(header["CDELT2"] if "CDELT2" in header else header["CD2_2"]) * 3600 == pytest.approx(0.031, rel=1e-3)
    assert header["PIXAR_A2"] == pytest.approx(0.031**2, rel=1e-3)
    assert header["PIXAR_SR"] == pytest.approx((0.031 / 206264.806) ** 2, rel=1e-3)


@pytest.mark.parametrize("card, value", [("RADESYS", "junk"), ("CRVAL1", 1e10)])
def test_a_frame_whose_wcs_cannot_be_placed_is_named(tmp_path, card, value):
    """A frame whose WCS names a celestial frame astropy does not know, or puts it nowhere on the sky, was a
    traceback out of reproject (a ValueError naming neither the frame nor why); now one line naming the frame."""
    from astropy.wcs import WCS

    paths = []
    for k in range(2):
        w = WCS(naxis=2)
        w.wcs.ctype, w.wcs.crval, w.wcs.crpix = ["RA---TAN", "DEC--TAN"], [150.0, 2.0], [8.0, 8.0]
        w.wcs.cdelt = [-0.05 / 3600, 0.05 / 3600]
        header = w.to_header()
        header["PHOTPLAM"] = 6000.0 + 2000 * k
        if k == 1:
            header[card] = value
        paths.append(tmp_path / f"f{k}.fits")
        fits.PrimaryHDU(np.random.default_rng(k).normal(1, 0.1, (16, 16)).astype(np.float32), header).writeto(paths[-1])
    for command in ("mosaic", "compose"):
        result = runner.invoke(app, [command, *map(str, paths), "-o", str(tmp_path / command)])
        said = " ".join(result.output.split())
        assert result.exit_code == 1 and "f1.fits: its WCS" in said and "cannot be aligned" in said, said
        assert not (tmp_path / command).exists() or not any((tmp_path / command).iterdir())


@pytest.mark.parametrize("combine", ["mean", "median"])
def test_a_mosaic_loses_no_pixel_beside_no_data(tmp_path, combine):
    """reproject interpolates a grid onto itself at positions 1e-10 pixel off, so each no-data pixel (DQ, a cosmic
    ray) took its 8 neighbours with it: the HRC crop's 69 made 271 in a mosaic on its own grid. Now the same 69, the
    data as it was."""
    from astroenhance.io.readers import read_frame

    data, _, _ = read_frame(HRC, cosmic_rays=False)  # (as the mosaic below: --no-clean-cosmic-rays)
    result = runner.invoke(app, ["mosaic", str(HRC), "--grid", "first", "--combine", combine, "-o", str(tmp_path),
                                 "--format", "fits", "--no-clean-cosmic-rays"])
    assert result.exit_code == 0, result.output
    mosaic = fits.getdata(tmp_path / "mosaic.mosaic.fits")
    np.testing.assert_array_equal(np.isnan(mosaic), np.isnan(data))
    np.testing.assert_allclose(mosaic, data, rtol=1e-5, atol=1e-3 * np.nanstd(data))


@pytest.mark.parametrize("combine", ["mean", "first", "median"])
def test_a_mosaic_coadded_in_strips_is_the_mosaic_coadded_at_once(monkeypatch, combine):
    """`coadd` works on strips of the grid (reproject held every frame's reprojection of the whole grid at once:
    3.0 GB for two 2800² frames, 1.6 GB in strips; the median stacked them all); every pixel is as it was: two
    overlapping, rotated pieces of the HRC crop with their no-data pixels, onto a north-up grid, in strips of a few
    rows and in one.  The median's backgrounds are matched as the mean's are (it solved its own, on the whole grid
    at full resolution)."""
    from astroenhance import compose
    from astroenhance.io.readers import read_frame

    data, wcs, _ = read_frame(HRC)
    frames = [(data[:160, :150], wcs[:160, :150]), (data[70:, 90:] + 50.0, wcs[70:, 90:])]  # (backgrounds apart)
    grid, shape = compose.mosaic_grid(frames, "optimal")
    monkeypatch.setattr(compose, "COADD_STRIP_PIXELS", 10 ** 9)
    whole, fp_whole, offsets = compose.coadd(frames, grid, shape, combine)
    monkeypatch.setattr(compose, "COADD_STRIP_PIXELS", 7 * shape[1] + 3)  # strips of 16 rows (the least)
    strips, fp_strips, again = compose.coadd(frames, grid, shape, combine)
    np.testing.assert_array_equal(offsets, again)
    np.testing.assert_array_equal(offsets, compose.coadd(frames, grid, shape, "mean")[2])
    np.testing.assert_array_equal(fp_strips, fp_whole)
    np.testing.assert_array_equal(np.isnan(strips), np.isnan(whole))
    np.testing.assert_allclose(strips, whole, rtol=1e-9, atol=1e-9 * np.nanmax(np.abs(whole)))
    assert np.isfinite(whole).sum() == (fp_whole > 0).sum() > 0.9 * (160 * 150 + 186 * 166 - 90 * 60)  # their union


@pytest.mark.parametrize("encoding", ["int16", "rice", "float32"])
def test_an_outputs_planes_are_read_in_strips_into_a_file_and_a_part_alone(tmp_path, monkeypatch, encoding):
    """A mosaic of run's outputs held every output's planes in memory at once (an ACS/WFC chip's are 1.6 GB); now
    each is read in strips into a memory-mapped file: the values astropy reads whole, no data (BLANK) as NaN; a
    mosaic cut-out reads only the part of an output that its grid shows, with that part's WCS."""
    from astroenhance import compose
    from astroenhance.imaging.wcs import crop_wcs

    with fits.open(HRC) as h:
        h["SCI"].data[20:60, 30:70] = np.nan  # (a hole too large to fill: no data in the output)
        h.writeto(tmp_path / "holey.fits")
    ran = runner.invoke(app, ["run", str(tmp_path / "holey.fits"), "-o", str(tmp_path / "e"), "--format", "fits",
                              "--fits-encoding", encoding, "--no-flux-plane", "-q"])
    assert ran.exit_code == 0, ran.output
    [out] = compose.enhanced_outputs([tmp_path / "e" / "holey.enhanced.fits"])
    with fits.open(out.path) as h:
        whole = np.stack([np.asarray(h[c].data, np.float32) for c in ("RED", "GREEN", "BLUE")], -1)
    assert out.shape == whole.shape[:2] and np.isnan(whole).sum() == 3 * 160 * 160
    monkeypatch.setattr(compose, "PLANE_STRIP_PIXELS", 5 * out.shape[1])  # strips of 16 rows
    planes = compose.enhanced_planes(out, tmp_path / "planes.npy")
    assert isinstance(planes, np.memmap)
    np.testing.assert_array_equal(planes, whole)
    grid = crop_wcs(out.wcs, 300, 50, 120, 90)  # (a grid showing that part of the output)
    part = compose.enhanced_within(out, grid, (90, 120))
    (x0, y0), (h, w) = part.origin, part.shape
    assert x0 <= 300 and y0 <= 50 and x0 + w >= 420 and y0 + h >= 140 and w * h < 0.1 * whole[..., 0].size
    np.testing.assert_array_equal(compose.enhanced_planes(part), whole[y0:y0 + h, x0:x0 + w])
    sky = out.wcs.pixel_to_world([x0 + 3.0], [y0 + 5.0])
    np.testing.assert_allclose(np.ravel(part.wcs.world_to_pixel(sky)), [3.0, 5.0], atol=1e-6)
    assert compose.enhanced_within(out, crop_wcs(out.wcs, 5000, 5000, 10, 10), (10, 10)) is None


def test_a_mosaic_cut_out_of_runs_outputs_is_that_part_of_their_whole_mosaic(tmp_path):
    """`mosaic OUTPUTS --cutout`: only the part of each output that the cut-out shows is read, and the mosaic is
    the pixels [section] of the mosaic of the whole outputs; an output cut short is one line naming it, nothing
    written (no folder left behind)."""
    _, _, paths = _pieces(tmp_path)
    ran = runner.invoke(app, ["run", *map(str, paths[:2]), "-o", str(tmp_path / "e"), "--format", "fits", "-q"])
    assert ran.exit_code == 0, ran.output
    outs = [str(tmp_path / "e" / f"piece{k}.enhanced.fits") for k in (0, 1)]
    r = runner.invoke(app, ["mosaic", *outs, "-o", str(tmp_path / "all"), "--format", "fits"])
    assert r.exit_code == 0, r.output
    with fits.open(outs[1]) as h:  # a centre where the two overlap
        ra, dec = WCS(h["RED"].header).all_pix2world([[40.0, 200.0]], 0)[0]
    r = runner.invoke(app, ["mosaic", *outs, "-o", str(tmp_path / "cut"), "--format", "fits", "--cutout",
                            f"{ra} {dec}", "--cutout-size", "60x40"])
    assert r.exit_code == 0, r.output
    with fits.open(tmp_path / "all" / "mosaic.mosaic.fits") as a, fits.open(tmp_path / "cut" / "mosaic.mosaic.fits") as c:
        (x0, x1), (y0, y1) = (map(int, p.split(":")) for p in c[0].header["AE_CUT"].strip("[]").split(","))
        assert c["RED"].data.shape == (y1 - y0 + 1, x1 - x0 + 1) == (40, 60)
        for plane in ("RED", "GREEN", "BLUE"):
            np.testing.assert_allclose(c[plane].data, a[plane].data[y0 - 1:y1, x0 - 1:x1], atol=2e-5)
    with fits.open(outs[1]) as h:  # cut short in the middle of its BLUE plane's data
        blue = h.fileinfo(h.index_of("BLUE"))
    short = tmp_path / "short" / "piece1.enhanced.fits"
    short.parent.mkdir()
    short.write_bytes(Path(outs[1]).read_bytes()[: blue["datLoc"] + blue["datSpan"] // 2])
    r = runner.invoke(app, ["mosaic", outs[0], str(short), "-o", str(tmp_path / "none" / "m")])
    said = " ".join(r.output.split())
    assert r.exit_code == 1 and f"{short}: " in said and "truncated" in said and "Traceback" not in said, said
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("combine", ["mean", "first", "median"])
@pytest.mark.parametrize("shared_mask", [True, False])
def test_planes_coadded_together_are_each_plane_coadded_alone(monkeypatch, combine, shared_mask):
    """A colour mosaic co-adds R, G and B in one pass (`coadd` of ``(3, H, W)`` frames: the sky mapped once for the
    three and their no-data masks, where it was mapped six times — 78 s → 38 s for two 2800² outputs); each plane
    is, to the bit, that plane co-added alone, in strips, with no-data shared by the planes (a colour output's) or
    each plane's own."""
    from astroenhance import compose
    from astroenhance.io.readers import read_frame

    data, wcs, _ = read_frame(HRC)
    rng = np.random.default_rng(5)
    cube = np.stack([data, 0.5 * data + 3.0, np.sqrt(np.abs(data))])
    if not shared_mask:
        cube[1][rng.random(data.shape) < 0.01] = np.nan
    frames = [(cube[:, :160, :150], wcs[:160, :150]), (cube[:, 70:, 90:], wcs[70:, 90:])]
    grid, shape = compose.mosaic_grid([(c[0], w) for c, w in frames], "optimal")
    monkeypatch.setattr(compose, "COADD_STRIP_PIXELS", 3 * 20 * shape[1])  # strips of 20 rows
    together, fp, _ = compose.coadd(frames, grid, shape, combine, match_background=False)
    assert together.shape == fp.shape == (3, *shape)
    for c in range(3):
        alone, fp_alone, _ = compose.coadd([(f[c], w) for f, w in frames], grid, shape, combine, False)
        np.testing.assert_array_equal(together[c], alone)
        np.testing.assert_array_equal(fp[c], fp_alone)
    assert np.isfinite(together[1]).sum() < np.isfinite(together[0]).sum() or shared_mask



@pytest.mark.parametrize("combine", ["mean", "first", "median"])
def test_a_mosaic_grid_is_kept_as_the_float32_it_is_written_in(tmp_path, monkeypatch, combine):
    """`coadd` kept its grid in float64, values and footprints (48 bytes a grid pixel for a colour mosaic: 13 GB of
    scratch for two ACS/WFC chips enhanced 4x); a colour mosaic's display values are now kept as float32 without
    footprints (12 bytes), a science mosaic's values and footprint as the big-endian float32 its FITS holds (8
    bytes, no second copy to write). Each strip is still combined in float64: every pixel is the float64 co-add
    rounded once, and the scratch files hold no more than that."""
    from astroenhance import compose
    from astroenhance.io.readers import read_frame

    data, wcs, _ = read_frame(HRC)
    cube = np.stack([data, 0.5 * data + 3.0, np.sqrt(np.abs(data))])
    frames = [(cube[:, :160, :150], wcs[:160, :150]), (cube[:, 70:, 90:], wcs[70:, 90:])]
    grid, shape = compose.mosaic_grid([(c[0], w) for c, w in frames], "optimal")
    monkeypatch.setattr(compose, "COADD_STRIP_PIXELS", 3 * 20 * shape[1])  # strips of 20 rows
    wide, _, _ = compose.coadd(frames, grid, shape, combine, False)
    rgb, none, _ = compose.coadd(frames, grid, shape, combine, False, tmp_path / "rgb", np.float32, footprint=False)
    assert none is None and rgb.dtype == np.float32
    np.testing.assert_array_equal(rgb, wide.astype(np.float32))
    assert sum(p.stat().st_size for p in tmp_path.glob("rgb*")) < 12 * shape[0] * shape[1] + 4096
    grey = [(c[0], w) for c, w in frames]
    wide, fp_wide, offsets = compose.coadd(grey, grid, shape, combine)
    science, fp, again = compose.coadd(grey, grid, shape, combine, True, tmp_path / "grey", ">f4")
    assert science.dtype == fp.dtype == np.dtype(">f4")
    np.testing.assert_array_equal(science, wide.astype(np.float32))
    np.testing.assert_array_equal(fp, fp_wide)
    np.testing.assert_array_equal(offsets, again)
    assert np.shares_memory(compose._big_endian_float32(science, tmp_path / "copy.npy"), science)  # (no copy)
    assert not (tmp_path / "copy.npy").exists()

@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 3), st.integers(1, 200), st.randoms())
@settings(max_examples=60, deadline=None)
def test_whether_a_mosaic_has_data_is_found_in_strips(h, w, finite, strip, rnd):
    """A science mosaic of no data is refused; whether it has any was ``np.isfinite(grid).any()``, a boolean copy of
    the whole grid (275 MB for two ACS/WFC chips' grid). `has_data` looks in strips: the same answer for any grid,
    strip height and placement of its few finite pixels, and no whole-grid copy."""
    import tracemalloc

    from astroenhance import compose

    a = np.full((h, w), np.nan, np.float32)
    for _ in range(finite):
        a[rnd.randrange(h), rnd.randrange(w)] = rnd.choice([0.0, -1e30, 3.5])
    saved = compose.COADD_STRIP_PIXELS
    try:
        compose.COADD_STRIP_PIXELS = strip
        assert compose.has_data(a) == bool(np.isfinite(a).any())
        big = np.full((1000, 1000), np.nan, np.float32)
        big[-1, -1] = 1.0  # (the last strip's)
        compose.COADD_STRIP_PIXELS = 10_000
        tracemalloc.start()
        assert compose.has_data(big) and not compose.has_data(big[:-1])
        assert tracemalloc.get_traced_memory()[1] < 100_000  # (the grid's boolean: 1 MB)
    finally:
        tracemalloc.stop()
        compose.COADD_STRIP_PIXELS = saved


def test_a_mosaic_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    """mosaic's scratch arrays are memory maps: on a full disk a page written back into their sparse file killed the
    process with SIGBUS (exit 135, no word, the scratch folder left behind; seen on a 30 MB tmpfs). Their space is
    now reserved when they are made (`scratch_array`): a full disk is one line naming the file, exit 1, before any
    work goes into it, and nothing is left."""
    import errno
    import os

    from astroenhance.errors import DiskFullError
    from astroenhance.io.writers import scratch_array

    arr = scratch_array(tmp_path / "a.npy", np.float64, (3, 50, 70))
    size = (tmp_path / "a.npy").stat()
    assert arr.shape == (3, 50, 70) and not arr.any() and size.st_size == arr.offset + arr.nbytes
    assert size.st_blocks * 512 >= arr.nbytes  # (real blocks: not a sparse file)

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
    with pytest.raises(DiskFullError, match=r"b\.npy: no space left on the device while reserving 6\.4 kB of scratch space"):
        scratch_array(tmp_path / "b.npy", np.float32, (40, 40))
    assert not (tmp_path / "b.npy").exists()
    _, _, paths = _pieces(tmp_path)
    r = runner.invoke(app, ["mosaic", *map(str, paths[:2]), "-o", str(tmp_path / "full" / "m")])
    said = " ".join(r.output.split())
    assert r.exit_code == 1 and "of scratch space there while it works (4.1 kB free)" in said, said
    assert "Traceback" not in said and not (tmp_path / "full").exists()
    # compose (no estimate first): the folder given is named, not the scratch file inside it that is gone
    r = runner.invoke(app, ["compose", *map(str, BANDS), "-o", str(tmp_path / "full" / "c")])
    said = " ".join(r.output.split())
    assert r.exit_code == 1 and f"{tmp_path / 'full' / 'c'}: no space left on the device while reserving" in said, said
    assert "nothing was left there" in said and not (tmp_path / "full").exists()
    # a disk that says it has room but refuses the space (a quota, another writer): the reservation says so
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 0, 10**12))
    r = runner.invoke(app, ["mosaic", *map(str, paths[:2]), "-o", str(tmp_path / "full" / "m")])
    said = " ".join(r.output.split())
    assert r.exit_code == 1 and "of scratch space and its disk has 1,000.0 GB free" in said and "Traceback" not in said
    assert not (tmp_path / "full" / "m").exists() or not any((tmp_path / "full" / "m").iterdir())


def test_a_science_mosaic_whose_picture_fails_leaves_no_fits_either(tmp_path, monkeypatch):
    """A science mosaic's FITS was renamed into place before its PNG was made: a disk that filled up then left the
    FITS of a command that failed (exit 1). Both are renamed together now — all or nothing, as `run` writes a
    frame's outputs — and astropy's words for a full disk ("Not enough space on disk", no errno) read as one."""
    import errno

    from astroenhance.errors import DiskFullError
    from astroenhance.io import writers

    _, _, paths = _pieces(tmp_path)
    real = writers.ImageWriter.__init__

    def full(self, final, *args, **kwargs):
        raise writers._write_error(Path(final), OSError(errno.ENOSPC, "No space left on device"),
                                   "creating the scratch image")

    monkeypatch.setattr(writers.ImageWriter, "__init__", full)
    r = runner.invoke(app, ["mosaic", *map(str, paths[:2]), "-o", str(tmp_path / "m")])
    said = " ".join(r.output.split())
    assert r.exit_code == 1 and "mosaic.mosaic.png: no space left on the device" in said, said
    assert not (tmp_path / "m").exists() or sorted(p.name for p in (tmp_path / "m").iterdir()) == []
    monkeypatch.setattr(writers.ImageWriter, "__init__", real)
    r = runner.invoke(app, ["mosaic", *map(str, paths[:2]), "-o", str(tmp_path / "m")])
    assert r.exit_code == 0 and sorted(p.name for p in (tmp_path / "m").iterdir()) == ["mosaic.mosaic.fits",
                                                                                     "mosaic.mosaic.png"]
    said = writers._write_error(tmp_path / "x.fits", OSError("Not enough space on disk: requested 1548800, "
                                                             "available 0."), "writing the mosaic")
    assert isinstance(said, DiskFullError) and "no space left on the device while writing the mosaic" in str(said)


def test_mosaic_and_compose_take_a_folder_as_run_does(tmp_path):
    """A folder given to `mosaic` or `compose` means the FITS frames in it (it was "not a readable FITS file"),
    chosen as `run` chooses them: of one exposure's files only the most calibrated (a raw and a flt of one exposure
    were the same sky weighed twice), pictures beside them noted and not used; the result is that of the frames
    named. A folder of run's outputs (their PNGs beside them) is a colour mosaic of them."""
    _, _, paths = _pieces(tmp_path)
    folder = tmp_path / "field"
    folder.mkdir()
    for k, p in enumerate(paths[:2]):
        shutil.copy(p, folder / f"x{k}_flt.fits")
    shutil.copy(paths[1], folder / "x1_raw.fits")  # (the same exposure, less calibrated)
    Image.new("RGB", (8, 8)).save(folder / "x0_preview.png")
    named = runner.invoke(app, ["mosaic", str(folder / "x0_flt.fits"), str(folder / "x1_flt.fits"), "-o",
                                str(tmp_path / "named"), "--format", "fits"])
    assert named.exit_code == 0, named.output
    found = runner.invoke(app, ["mosaic", str(folder), "-o", str(tmp_path / "found"), "--format", "fits"])
    said = " ".join(found.output.split())
    assert found.exit_code == 0, said
    assert "x1_raw.fits left out: a less calibrated product of the exposure than x1_flt.fits, which is used" in said
    assert "1 picture(s) (PNG, TIFF, JPEG) in it not used" in said
    with fits.open(tmp_path / "named" / "mosaic.mosaic.fits") as a, fits.open(tmp_path / "found" / "mosaic.mosaic.fits") as b:
        np.testing.assert_array_equal(a[0].data, b[0].data)
        assert "input 3" not in str(b[0].header["HISTORY"])  # (two inputs)
    ran = runner.invoke(app, ["run", str(folder / "x0_flt.fits"), str(folder / "x1_flt.fits"), "-o",
                              str(tmp_path / "e"), "-q"])  # (FITS and PNG beside each other)
    assert ran.exit_code == 0, ran.output
    colour = runner.invoke(app, ["mosaic", str(tmp_path / "e"), "-o", str(tmp_path / "c"), "--format", "fits"])
    assert colour.exit_code == 0, colour.output
    assert fits.getheader(tmp_path / "c" / "mosaic.mosaic.fits", "RED")["NAXIS1"] > 4 * 120
    cfht = tmp_path / "cfht"
    cfht.mkdir()
    for band in BANDS:
        shutil.copy(band, cfht / band.name)
    for args, out in (([str(b) for b in sorted(cfht.iterdir())], "by_name"), ([str(cfht)], "by_folder")):
        r = runner.invoke(app, ["compose", *args, "-o", str(tmp_path / out), "--format", "fits"])
        assert r.exit_code == 0 and ("blue-to-red" in r.output) == (out == "by_name"), r.output
    with fits.open(tmp_path / "by_name" / "CFHTLS-test.composite.fits") as a, \
            fits.open(tmp_path / "by_folder" / "CFHTLS-test.composite.fits") as b:
        for plane in ("RED", "GREEN", "BLUE"):
            np.testing.assert_array_equal(a[plane].data, b[plane].data)
    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(app, ["mosaic", str(empty), "-o", str(tmp_path / "none")])
    assert r.exit_code == 2 and "no frames to combine: no FITS file found" in " ".join(r.output.split()), r.output


@pytest.mark.parametrize("what", ["science", "outputs", "enhance"])
def test_a_mosaic_says_before_any_work_when_its_scratch_would_not_fit(tmp_path, monkeypatch, what):
    """The scratch a mosaic needs (its colour frames in files, the grid's values and footprints) is estimated from
    the frames and the grid before any work (`scratch_bytes`), at least what it allocates and not far above; with
    less free on that disk, one line says how much is needed and free, nothing is enhanced or written — a 20-frame
    `--enhance` would otherwise fail after hours."""
    import shutil as sh
    from collections import namedtuple

    from astroenhance import compose
    from astroenhance.io.writers import readable_size

    _, _, paths = _pieces(tmp_path)
    frames = [str(p) for p in paths[:2]]
    if what == "outputs":
        ran = runner.invoke(app, ["run", *frames, "-o", str(tmp_path / "e"), "--format", "fits", "-q"])
        assert ran.exit_code == 0, ran.output
        frames = [str(tmp_path / "e" / f"piece{k}.enhanced.fits") for k in (0, 1)]
    extra = ["--enhance"] if what == "enhance" else []
    estimated, allocated = [], []
    estimate, allocate = compose.scratch_bytes, compose.scratch_array
    monkeypatch.setattr(compose, "scratch_bytes", lambda *a: estimated.append(estimate(*a)) or estimated[-1])
    monkeypatch.setattr(compose, "scratch_array", lambda p, d, s: allocated.append(np.dtype(d).itemsize
                                                                                  * int(np.prod(s))) or allocate(p, d, s))
    r = runner.invoke(app, ["mosaic", *frames, "-o", str(tmp_path / "m"), "--format", "fits", *extra])
    assert r.exit_code == 0, r.output
    assert sum(allocated) <= estimated[0] <= 1.3 * sum(allocated), (estimated, sum(allocated))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(sh, "disk_usage", lambda p: usage(10**12, 10**12 - estimated[0] // 2, estimated[0] // 2))
    monkeypatch.setattr(compose, "enhance_frames", lambda *a, **k: pytest.fail("enhanced with no room"))
    r = runner.invoke(app, ["mosaic", *frames, "-o", str(tmp_path / "full" / "m"), *extra])
    said = " ".join(r.output.split())
    assert r.exit_code == 1 and f"the mosaic needs about {readable_size(estimated[0])} of scratch space" in said, said
    assert f"({readable_size(estimated[0] // 2)} free)" in said
    assert not (tmp_path / "full").exists()


def test_the_science_mosaic_is_written_from_scratch_files_not_memory(tmp_path, monkeypatch):
    """The science mosaic's FITS was written from two float32 copies of the whole grid in memory (data, FOOTPRINT:
    3.2 GB for a 400 Mpx grid); they are now scratch files filled in strips, in FITS's byte order (astropy writes and
    checksums them without a copy of its own): the same file contents, checksums that verify."""
    from astroenhance import compose

    _, _, paths = _pieces(tmp_path)
    made, convert = [], compose._big_endian_float32
    monkeypatch.setattr(compose, "_big_endian_float32", lambda a, into=None: made.append(into) or convert(a, into))
    monkeypatch.setattr(compose, "COADD_STRIP_PIXELS", 5_000)  # (strips of a few rows)
    r = runner.invoke(app, ["mosaic", *map(str, paths), "-o", str(tmp_path / "files"), "--format", "fits"])
    assert r.exit_code == 0, r.output
    assert len(made) == 2 and all(p is not None and p.suffix == ".npy" for p in made)
    monkeypatch.setattr(compose, "_big_endian_float32", lambda a, into=None: convert(a))  # (whole, in memory)
    r = runner.invoke(app, ["mosaic", *map(str, paths), "-o", str(tmp_path / "memory"), "--format", "fits"])
    assert r.exit_code == 0, r.output
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (a checksum that does not verify warns)
        with fits.open(tmp_path / "files" / "mosaic.mosaic.fits", checksum=True) as a, \
                fits.open(tmp_path / "memory" / "mosaic.mosaic.fits", checksum=True) as b:
            for x, y in zip(a, b):
                assert x.data.dtype == np.dtype(">f4")
                np.testing.assert_array_equal(x.data, y.data)
                assert x.header["DATASUM"] == y.header["DATASUM"]


def test_a_science_mosaic_writes_the_formats_asked(tmp_path):
    """`mosaic --format` was ignored by a science mosaic (FITS and a PNG preview always, `--format bogus` too): fits
    is the science mosaic, the others its display version; a format it does not know is a usage error before any
    frame is read."""
    _, _, paths = _pieces(tmp_path)
    for formats, names in (("fits", ["m.mosaic.fits"]), ("jpeg,png", ["m.mosaic.jpg", "m.mosaic.png"]),
                           (None, ["m.mosaic.fits", "m.mosaic.png"])):
        out = tmp_path / str(formats)
        r = runner.invoke(app, ["mosaic", *map(str, paths[:2]), "-o", str(out), "--name", "m",
                                *(["--format", formats] if formats else [])])
        assert r.exit_code == 0, r.output
        assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == names, formats
    r = runner.invoke(app, ["mosaic", *map(str, paths[:2]), "-o", str(tmp_path / "bad"), "--format", "fits,bmp"])
    assert r.exit_code == 2 and "--format 'fits,bmp': choose from" in r.output and not (tmp_path / "bad").exists()


def test_compose_and_mosaic_are_library_calls_that_print_nothing(tmp_path, capsys):
    """`make_composite` and `make_mosaic` are what the commands run: the same files (bit for bit in their data), the
    notes returned (and handed to ``say`` as they come), nothing printed; a bad choice is raised before any file."""
    from astroenhance import make_composite, make_mosaic
    from astroenhance.errors import SettingsError

    data, wcs, paths = _pieces(tmp_path)
    heard = []
    made = make_mosaic(paths, tmp_path / "lib", grid="first", formats=("fits",), cutout_size="60", say=heard.append)
    assert made.outputs == [tmp_path / "lib" / "mosaic.mosaic.fits"] and capsys.readouterr() == ("", "")
    assert heard == made.notes and any("grid cut to" in n for n in heard)  # (a note to hand on: the cut-out's)
    result = runner.invoke(app, ["mosaic", *map(str, paths), "-o", str(tmp_path / "cli"), "--grid", "first",
                                 "--format", "fits", "--cutout-size", "60"])
    assert result.exit_code == 0, result.output
    with fits.open(made.outputs[0]) as lib, fits.open(tmp_path / "cli" / "mosaic.mosaic.fits") as cli:
        assert [h.name for h in lib] == [h.name for h in cli]
        assert all(np.array_equal(a.data, b.data, equal_nan=True) for a, b in zip(lib, cli))
    composite = make_composite(BANDS, tmp_path / "comp", formats=("png",))
    assert [p.name for p in composite.outputs] == ["CFHTLS-test.composite.png"]
    with Image.open(composite.outputs[0]) as im:
        assert im.mode == "RGB" and im.size[::-1] == fits.getdata(BANDS[0]).shape
    with pytest.raises(SettingsError, match="--cutout: mosaic makes one mosaic"):
        make_mosaic(paths, tmp_path / "never", cutout="150.1 2.2; 150.2 2.3")
    with pytest.raises(SettingsError, match="formats 'gif': choose from"):  # (not after the co-add)
        make_mosaic(paths, tmp_path / "never", formats="gif")
    assert not (tmp_path / "never").exists()
    made = make_mosaic(paths, tmp_path / "str", grid="first", formats="png")  # "png", not ("p", "n", "g")
    assert [p.name for p in made.outputs] == ["mosaic.mosaic.png"]


def test_a_mosaic_stopped_by_sigterm_leaves_no_scratch_and_one_killed_is_cleaned_next_time(tmp_path):
    """SIGTERM (a batch system's time limit) killed `mosaic` at once, leaving its hidden scratch folder — memory-mapped
    frames, GBs for a large mosaic — in the output folder for ever (its name did not say whose it was). Now SIGTERM
    stops it as Ctrl-C does (exit 143, the scratch removed), and a scratch folder of a process that is gone (SIGKILL)
    is removed by the next mosaic or compose there; one of a process still running is left alone."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from astroenhance.io.writers import TEMP_MARKER, host_name, owner_tag

    out = tmp_path / "m"
    out.mkdir()
    dead = out / f".mosaic{TEMP_MARKER}{host_name()}~{2**22 + 12345}~1-abcd1234"  # (a pid above Linux's largest)
    live = out / f".compose{TEMP_MARKER}{owner_tag()}-efgh5678"  # (this process's: running)
    for folder in (dead, live):
        folder.mkdir()
        (folder / "frame0.npy").write_bytes(b"\0" * 64)
    proc = subprocess.Popen([sys.executable, "-m", "astroenhance.cli", "mosaic", *map(str, BANDS[:2]), "--enhance",
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.name.startswith(".mosaic") and p != dead for p in out.iterdir()):
        time.sleep(0.05)
    assert not dead.exists() and live.exists()  # (the killed one cleaned before this mosaic made its own)
    proc.send_signal(signal.SIGTERM)
    said = proc.communicate(timeout=60)[0]
    assert proc.returncode == 143 and "terminated (SIGTERM): nothing half-written is left" in said, said
    assert sorted(p.name for p in out.iterdir()) == [live.name]


@pytest.mark.parametrize("chips", [1, 2])
def test_a_frame_whose_wcs_squeezes_its_pixels_to_nothing_is_one_line_naming_it(tmp_path, chips):
    """A reference pixel far off the frame (CRPIX 1e9) puts its pixels where the TAN projection squeezes them to
    1e-5 of their size: every position finite, the grid reproject makes of them NaN (the fuzz test found it)."""
    def header(crpix1, crval1):
        w = WCS(naxis=2)
        w.wcs.ctype, w.wcs.crpix, w.wcs.crval = ["RA---TAN", "DEC--TAN"], [crpix1, 4], [crval1, 2]
        w.wcs.cdelt = [-1.4e-5, 1.4e-5]
        return w.to_header()

    data = np.random.default_rng(0).normal(10, 1, (8, 8)).astype(np.float32)
    fits.PrimaryHDU(data, header(4, 150)).writeto(tmp_path / "good.fits")
    fits.HDUList([fits.PrimaryHDU()] + [fits.ImageHDU(data, header(1e9, 0), name="SCI", ver=v + 1)
                                        for v in range(chips)]).writeto(tmp_path / "far.fits")
    for command in (["mosaic"], ["compose"]):
        result = CliRunner().invoke(app, [*command, str(tmp_path / "good.fits"), str(tmp_path / "far.fits"), "-o",
                                          str(tmp_path / "o"), "--format", "fits"])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert result.exit_code in (1, 2) and "far.fits" in result.output and "squeezes its pixels" in result.output
        assert not (tmp_path / "o").exists() or not any((tmp_path / "o").glob("*.fits"))

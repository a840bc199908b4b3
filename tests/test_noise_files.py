"""What HST files say about their noise and bad pixels: ERR, WHT, DQ and an rms map by path (issue 15, item 3)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from astroenhance.cli import app
from astroenhance.config import DQ_NO_DATA, parse_dq_mask
from astroenhance.errors import InputError, SettingsError
from astroenhance.io.readers import open_frames
from astroenhance.io.writers import output_is_complete

from .conftest import FIXTURES

HRC = FIXTURES / "j8bt06nyq_flt_crop.fits"


def test_flt_noise_from_err_and_dq_flags_as_no_data():
    with fits.open(HRC) as h:
        sci, err, dq = (h[n].data.astype(np.float64) for n in ("SCI", "ERR", "DQ"))
    dq = dq.astype(np.int64)
    with open_frames(HRC) as [src]:
        assert src.noise_from == "ERR" and src.noise == pytest.approx(np.median(err[err > 0]), rel=1e-6)
        assert src.dq_mask == DQ_NO_DATA
        got = src.read_rows(0, src.shape[0])
    bad = (dq & DQ_NO_DATA) != 0
    assert bad.any() and ((dq != 0) & ~bad).any()  # the crop has flags of both kinds (hot; saturated)
    assert np.isnan(got[bad]).all() and np.isfinite(got[~bad]).all()
    np.testing.assert_array_equal(got[~bad], sci[~bad].astype(np.float32))
    with open_frames(HRC, dq_mask=0) as [src]:
        assert np.isfinite(src.read_rows(0, src.shape[0])).all() and src.dq_mask == 0
    with open_frames(HRC, dq_mask=-1) as [src]:
        np.testing.assert_array_equal(np.isnan(src.read_rows(0, src.shape[0])), dq != 0)


def _drz(path, wht, sigma=2.0, n=64):
    rng = np.random.default_rng(1)
    sci = rng.normal(10.0, sigma, (n, n)).astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI"),
                  fits.ImageHDU(np.full((n, n), wht, np.float32), name="WHT")]).writeto(path)
    return path


def test_drz_noise_from_inverse_variance_weights_and_an_exposure_map_is_not_taken_for_one(tmp_path):
    from astroenhance import EnhanceConfig, Enhancer

    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False))
    with open_frames(_drz(tmp_path / "ivm_drz.fits", wht=1 / 2.0**2)) as [src]:
        norm = enh.fit_normalizer(src, enh.config.for_input(True))
        assert src.noise_from == "WHT" and norm.sky_noise == pytest.approx(2.0, rel=1e-6)
    with open_frames(_drz(tmp_path / "exp_drz.fits", wht=1200.0)) as [src]:  # final_wht_type=EXP: seconds
        norm = enh.fit_normalizer(src, enh.config.for_input(True))
        assert src.noise_from == "estimated" and norm.sky_noise == pytest.approx(2.0, rel=0.15)
        assert any("WHT an exposure-time map?" in n for n in src.notes)


def test_a_drizzled_frames_empty_corners_are_no_data(tmp_path):
    """Most drz/drc frames are a tilted footprint in a rectangle whose corners got no input (WHT = 0) and hold drizzle's
    fill (0 here, far below this sky of 10): those pixels are no data — NaN in every output, out of the sky and noise
    estimates.  Read as data, the fill's zero differences took the noise estimate 10x low on a real SLACS frame
    tilted by 30 degrees (docs/experiments.md, 2026-12-04)."""
    from astroenhance import EnhanceConfig, Enhancer

    n, sigma = 64, 2.0
    yy, xx = np.indices((n, n))
    inside = np.abs(yy - n / 2) + np.abs(xx - n / 2) < n * 0.6  # the footprint: a square turned by 45 degrees
    rng = np.random.default_rng(2)
    sci = np.where(inside, rng.normal(10.0, sigma, (n, n)), 0.0).astype(np.float32)
    wht = np.where(inside, 1 / sigma**2, 0.0).astype(np.float32)
    path = tmp_path / "tilted_drz.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI"), fits.ImageHDU(wht, name="WHT")]).writeto(path)
    with open_frames(path, dq_mask=0) as [src]:  # no DQ mask asked: zero weight is no data all the same
        np.testing.assert_array_equal(np.isnan(src.read_rows(0, n)), ~inside)
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, formats=("fits",)))
    [res] = enh.enhance_file(path, tmp_path / "out")
    with fits.open(res.outputs[0]) as h:
        assert h[0].header["AE_SIGSR"] == "WHT" and h[0].header["AE_SKYSG"] == pytest.approx(sigma, rel=1e-6)
        assert h[0].header["AE_VMIN"] > 0  # the display's black point from the sky, not from the fill
        empty = np.repeat(np.repeat(~inside, 4, 0), 4, 1)
        for name in ("GREEN", "FLUX", "FLUXERR"):
            np.testing.assert_array_equal(np.isnan(h[name].data), empty)


def test_companions_that_cannot_serve_say_so_and_a_frame_without_weight_names_its_wht(tmp_path):
    """An ERR of zeros (a placeholder some pipelines write), NaN or negative values, or of another shape than the
    frame, and a DQ of another shape, were passed over without a word: the noise estimated, the flags unused. Each
    now gets a note; a frame whose WHT is zero everywhere said only "the frame is all NaN/inf"."""
    from astroenhance import EnhanceConfig, Enhancer

    sci = np.random.default_rng(4).normal(10.0, 2.0, (32, 40)).astype(np.float32)

    def notes(name, *extensions):
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI"), *extensions]).writeto(tmp_path / name)
        with open_frames(tmp_path / name) as [src]:
            return src.noise_from, [n for n in src.notes if n.startswith("its ")]

    for bad in (0.0, np.nan, -1.0):
        assert notes(f"err{bad}.fits", fits.ImageHDU(np.full_like(sci, bad), name="ERR")) == (
            "", ["its ERR extension holds no positive finite value (all zero, negative or NaN): not used as the noise"])
    _, said = notes("shapes.fits", fits.ImageHDU(np.ones((10, 10), np.float32), name="ERR"),
                    fits.ImageHDU(np.zeros((32, 41), np.int16), name="DQ"))
    assert said == ["its ERR extension is 10x10 pixels and the frame 40x32: not used",
                    "its DQ extension is 41x32 pixels and the frame 40x32: not used"]
    assert notes("good.fits", fits.ImageHDU(np.full_like(sci, 2.0), name="ERR"),
                 fits.ImageHDU(np.zeros(sci.shape, np.int16), name="DQ")) == ("ERR", [])
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI"),
                  fits.ImageHDU(np.zeros_like(sci), name="WHT")]).writeto(tmp_path / "unweighted_drz.fits")
    with pytest.raises(InputError, match=r"unweighted_drz.fits: no finite pixels.*every pixel of zero weight in WHT"):
        Enhancer(EnhanceConfig(device="cpu", formats=("fits",))).enhance_file(tmp_path / "unweighted_drz.fits",
                                                                             tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@given(st.lists(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]),
                min_size=1, max_size=6))
def test_dq_mask_flags_combine(flags):
    want = 0
    for f in flags:
        want |= f
    assert parse_dq_mask(",".join(map(str, flags))) == want == parse_dq_mask("+".join(map(str, flags)))


def test_dq_mask_words_and_refusals():
    # default: each frame's instrument's (tests/test_wfpc2_dq.py)
    assert (parse_dq_mask("default"), parse_dq_mask("all"), parse_dq_mask("none"), parse_dq_mask("0x1000")) == (
        None, -1, 0, 4096)
    for bad in ("cosmic", "4,-2", "4;16"):
        with pytest.raises(SettingsError, match="--dq-mask"):
            parse_dq_mask(bad)


def test_rms_map_by_path(tmp_path):
    rms = tmp_path / "rms.fits"
    fits.PrimaryHDU(np.full((256, 256), 5.0, np.float32)).writeto(rms)
    with open_frames(HRC, noise=rms) as [src]:
        assert (src.noise, src.noise_from) == (5.0, "rms.fits")
    fits.PrimaryHDU(np.ones((10, 10), np.float32)).writeto(tmp_path / "small.fits")
    with pytest.raises(InputError, match=r"small.fits: noise map is 10x10, the frame 256x256"):
        with open_frames(HRC, noise=tmp_path / "small.fits"):
            pass
    for kind in ("noise", "weight"):  # the frame given as its own map (its pixels' median was taken as sigma)
        with pytest.raises(InputError, match=f"--{kind} names the frame itself"):
            with open_frames(HRC, **{kind: HRC}):
                pass
    # a map that is not FITS: astropy's first sentence, not its advice ("try with ignore_missing_simple=True")
    (tmp_path / "notes.fits").write_text("not a map\n")
    for kind in ("noise", "dq"):
        with pytest.raises(InputError) as err:
            with open_frames(HRC, **{kind: tmp_path / "notes.fits"}):
                pass
        said = str(err.value)
        assert "notes.fits" in said and "No SIMPLE card found" in said, said
        assert "ignore_missing_simple" not in said and "OSError" not in said, said


def test_a_compressed_map_is_read_and_a_damaged_one_named(tmp_path):
    """An rms, weight or DQ map compressed whole (``x_rms.fits.gz``) is read from a decompressed copy as the frame
    is; one whose stream is cut short or damaged is refused naming it, as an unreadable map is."""
    import gzip

    rms = np.full((256, 256), 5.0, np.float32)
    rms[:8] = 7.0
    fits.PrimaryHDU(rms).writeto(tmp_path / "rms.fits")
    packed = gzip.compress((tmp_path / "rms.fits").read_bytes())
    (tmp_path / "rms.fits.gz").write_bytes(packed)
    with open_frames(HRC, noise=tmp_path / "rms.fits.gz") as [src], open_frames(HRC, noise=tmp_path / "rms.fits") as [ref]:
        assert (src.noise, src.noise_from) == (5.0, "rms.fits.gz")
        np.testing.assert_array_equal(src.noise_rows(0, 16), ref.noise_rows(0, 16))
    (tmp_path / "cut.fits.gz").write_bytes(packed[:-8])
    for kind in ("noise", "weight", "dq"):
        with pytest.raises(InputError, match=r"cut.fits.gz: cut short: its gzip stream ends early"):
            with open_frames(HRC, **{kind: tmp_path / "cut.fits.gz"}):
                pass


def test_a_map_with_bytes_after_its_hdus_is_read_without_them(tmp_path):
    """An rms, weight or DQ map whose HDUs are followed by bytes that begin none (a block of float32 -0.1, as some
    STScI PSF grids end; astropy refuses the whole file) is read without them, as a frame is, gzipped too."""
    import gzip

    after = np.full(720, -0.1, ">f4").tobytes()
    rms = np.full((256, 256), 5.0, np.float32)
    rms[:8] = 7.0
    fits.PrimaryHDU(rms).writeto(tmp_path / "rms.fits")
    dq = np.zeros((256, 256), np.int16)
    dq[10, 20] = 4
    fits.PrimaryHDU(dq).writeto(tmp_path / "dq.fits")
    for name in ("rms", "dq"):
        whole = (tmp_path / f"{name}.fits").read_bytes()
        (tmp_path / f"{name}_after.fits").write_bytes(whole + after)
        (tmp_path / f"{name}_after.fits.gz").write_bytes(gzip.compress(whole + after))
        with pytest.raises(OSError, match="END card"):
            fits.open(tmp_path / f"{name}_after.fits", lazy_load_hdus=False)
    with open_frames(HRC, noise=tmp_path / "rms.fits") as [ref], open_frames(HRC, dq=tmp_path / "dq.fits") as [flagged]:
        want_sigma, want_rows = ref.noise_rows(0, 16), flagged.read_rows(0, 16)
    assert np.isnan(want_rows[10, 20]) and np.isfinite(want_rows[10, 21])
    for suffix in ("_after.fits", "_after.fits.gz"):
        with open_frames(HRC, noise=tmp_path / f"rms{suffix}") as [src]:
            assert src.noise == 5.0
            np.testing.assert_array_equal(src.noise_rows(0, 16), want_sigma)
        with open_frames(HRC, weight=tmp_path / f"rms{suffix}") as [src]:
            assert src.noise == pytest.approx(1 / np.sqrt(5.0))
        with open_frames(HRC, dq=tmp_path / f"dq{suffix}") as [src]:
            np.testing.assert_array_equal(src.read_rows(0, 16), want_rows)


def test_cli_records_where_the_noise_came_from(tmp_path):
    runner = CliRunner()
    rms = tmp_path / "rms.fits"
    fits.PrimaryHDU(np.full((256, 256), 5.0, np.float32)).writeto(rms)
    args = ["--no-colorize", "--no-upscale", "--format", "fits", "-q"]
    result = runner.invoke(app, ["run", str(HRC), "-o", str(tmp_path / "a"), "--dq-mask", "none", *args])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "a" / "j8bt06nyq_flt_crop.enhanced.fits") as h:
        assert h[0].header["AE_SIGSR"] == "ERR" and h[0].header["AE_DQMSK"] == 0
    result = runner.invoke(app, ["run", str(HRC), "-o", str(tmp_path / "b"), "--noise", str(rms), *args])
    with fits.open(tmp_path / "b" / "j8bt06nyq_flt_crop.enhanced.fits") as h:
        assert (h[0].header["AE_SIGSR"], h[0].header["AE_SKYSG"]) == ("rms.fits", 5.0)
        assert h[0].header["AE_SIGSH"] == hashlib.sha256(rms.read_bytes()).hexdigest()
        assert h[0].header["AE_DQMSK"] == DQ_NO_DATA
    other = tmp_path / "other_flt.fits"  # (a second frame: the same file named twice is one input)
    other.write_bytes(HRC.read_bytes())
    result = runner.invoke(app, ["run", str(HRC), str(other), "-o", str(tmp_path / "c"), "--noise", str(rms), *args])
    assert result.exit_code == 2 and "--noise" in result.output and not (tmp_path / "c").exists()
    result = runner.invoke(app, ["run", str(HRC), "-o", str(tmp_path / "d"), "--dq-mask", "cosmic", *args])
    assert result.exit_code == 2 and "--dq-mask 'cosmic'" in result.output


def test_a_frame_of_many_exact_zeros_gets_a_note_naming_the_fix(tmp_path):
    """A mosaic's science file alone, its unobserved part filled with 0: nothing says those pixels are not data, so
    they are read as data — and the note says so and how to give the weight map.  An rms map that gives them 0,
    infinity or no value makes them no data."""
    n = 48
    sci = np.random.default_rng(5).normal(10.0, 2.0, (n, n)).astype(np.float32)
    sci[:, :12] = 0.0
    fits.PrimaryHDU(sci).writeto(tmp_path / "filled.fits")
    fits.PrimaryHDU(sci[:, 12:]).writeto(tmp_path / "plain.fits")
    from astroenhance import EnhanceConfig, Enhancer

    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False))
    notes = {}
    for name in ("filled", "plain"):
        with open_frames(tmp_path / f"{name}.fits") as [src]:
            enh.fit_normalizer(src, enh.config.for_input(True))
            notes[name] = [x for x in src.notes if "exactly 0" in x]
    assert len(notes["filled"]) == 1 and "25% of the pixels are exactly 0" in notes["filled"][0]
    assert "--weight" in notes["filled"][0] and not notes["plain"]
    rms = np.full(sci.shape, 2.0, np.float32)
    rms[:, :4], rms[:, 4:8], rms[:, 8:12] = 0.0, np.inf, np.nan  # three ways of saying "not observed"
    fits.PrimaryHDU(rms).writeto(tmp_path / "filled_rms.fits")
    with open_frames(tmp_path / "filled.fits", noise=tmp_path / "filled_rms.fits") as [src]:
        got = src.read_rows(0, n)
        enh.fit_normalizer(src, enh.config.for_input(True))
        assert not [x for x in src.notes if "exactly 0" in x] and src.noise == 2.0
    assert np.isnan(got[:, :12]).all() and np.isfinite(got[:, 12:]).all()


def test_a_separate_weight_map_is_read_as_a_wht_extension(tmp_path):
    """A drizzled mosaic's SCI and WHT as two files (the usual high-level science product): `--weight` reads the
    second as a WHT extension would be read — sigma = 1/sqrt(weight), pixels of no weight no data, recorded."""
    n, sigma = 48, 2.0
    yy, xx = np.indices((n, n))
    inside = xx + yy > n // 2  # the corner below the diagonal got no exposure
    sci = np.where(inside, np.random.default_rng(4).normal(10.0, sigma, (n, n)), 0.0).astype(np.float32)
    fits.PrimaryHDU(sci).writeto(tmp_path / "mosaic_drz_sci.fits")
    fits.PrimaryHDU(np.where(inside, 1 / sigma**2, 0.0).astype(np.float32)).writeto(tmp_path / "mosaic_drz_wht.fits")
    with open_frames(tmp_path / "mosaic_drz_sci.fits", weight=tmp_path / "mosaic_drz_wht.fits") as [src]:
        assert src.noise == pytest.approx(sigma) and src.noise_from == "WHT mosaic_drz_wht.fits"
        np.testing.assert_array_equal(np.isnan(src.read_rows(0, n)), ~inside)
    runner = CliRunner()
    args = ["--no-colorize", "--format", "fits", "-q"]
    result = runner.invoke(app, ["run", str(tmp_path / "mosaic_drz_sci.fits"), "-o", str(tmp_path / "a"),
                                 "--weight", str(tmp_path / "mosaic_drz_wht.fits"), *args])
    assert result.exit_code == 0, result.output
    with fits.open(tmp_path / "a" / "mosaic_drz_sci.enhanced.fits") as h:
        assert (h[0].header["AE_SIGSR"], h[0].header["AE_SKYSG"]) == ("WHT mosaic_drz_wht.fits", pytest.approx(sigma))
        assert "mosaic_drz_wht.fits" in h["FLUXERR"].header["AE_ERRSR"]
        np.testing.assert_array_equal(np.isnan(h["FLUX"].data), np.repeat(np.repeat(~inside, 4, 0), 4, 1))
    fits.PrimaryHDU(np.ones((10, 10), np.float32)).writeto(tmp_path / "small_wht.fits")
    result = runner.invoke(app, ["run", str(tmp_path / "mosaic_drz_sci.fits"), "-o", str(tmp_path / "b"),
                                 "--weight", str(tmp_path / "small_wht.fits"), *args])
    assert result.exit_code == 1 and "small_wht.fits: weight map is 10x10, the frame 48x48" in result.output
    result = runner.invoke(app, ["run", str(tmp_path / "mosaic_drz_sci.fits"), "-o", str(tmp_path / "c"), "--weight",
                                 str(tmp_path / "mosaic_drz_wht.fits"), "--noise", str(tmp_path / "small_wht.fits"), *args])
    assert result.exit_code == 2 and "--noise and --weight" in result.output and not (tmp_path / "c").exists()


def test_one_rms_map_for_a_multichip_file_is_refused(tmp_path):
    rms = tmp_path / "rms.fits"
    fits.PrimaryHDU(np.ones((10, 10), np.float32)).writeto(rms)
    with pytest.raises(InputError, match=r"rms.fits is one rms map but the file has 2 chips \(sci1, sci2\); choose one"):
        with open_frames(FIXTURES / "2chipA.fits.gz", noise=rms):
            pass
    with open_frames(FIXTURES / "2chipA.fits.gz", "sci2", noise=rms) as [src]:
        assert src.noise_from == "rms.fits"



@settings(deadline=None)  # the first example imports scipy.signal (seconds when this file runs alone)
@given(st.integers(0, 2**31 - 1), st.floats(0.2, 0.5), st.floats(0.2, 0.5))
def test_estimated_noise_is_the_per_pixel_sigma_also_when_neighbours_correlate(seed, a, b):
    """Drizzled frames' noise is shared between neighbours: pixel-to-pixel differences then see too little of it
    (lag 1), pixels 2 apart see the per-pixel sigma; for white noise both agree."""
    from scipy.signal import fftconvolve

    from astroenhance.pipeline.finish import estimate_noise

    rng = np.random.default_rng(seed)
    white = rng.normal(0.0, 2.0, (160, 160))
    kernel = np.outer([1 - a, a], [1 - b, b])
    shared = fftconvolve(white, kernel, mode="valid") / np.sqrt((kernel**2).sum())
    assert estimate_noise(white, lag=1) == pytest.approx(2.0, rel=0.06)
    assert estimate_noise(white, lag=2) == pytest.approx(2.0, rel=0.06)
    assert estimate_noise(shared, lag=2) == pytest.approx(2.0, rel=0.06)
    assert estimate_noise(shared, lag=1) < 0.93 * 2.0


def test_run_estimates_a_drizzled_frames_noise_per_pixel(tmp_path):
    """No ERR, WHT or --noise: the sigma recorded (and used for the display's black point and the hst network) is
    the per-pixel one even where the noise is correlated."""
    from scipy.signal import fftconvolve

    from astroenhance import EnhanceConfig, Enhancer

    rng = np.random.default_rng(3)
    kernel = np.outer([0.6, 0.4], [0.6, 0.4])
    sky = 5.0 + fftconvolve(rng.normal(0.0, 0.1, (97, 97)), kernel, mode="valid") / np.sqrt((kernel**2).sum())
    path = tmp_path / "drz_like.fits"
    fits.writeto(path, sky.astype(np.float32))
    res = Enhancer(EnhanceConfig(device="cpu", colorize=False, formats=("fits",))).enhance_file(path, tmp_path / "o")
    head = fits.getheader(res[0].outputs[0])
    assert head["AE_SIGSR"] == "estimated" and head["AE_SKYSG"] == pytest.approx(0.1, rel=0.08)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 0.3))
def test_sky_is_the_sky_not_the_sources_on_it(seed, covered):
    """A field that is mostly sky, with a share ``covered`` of its pixels on sources: the clipped sky stays within
    0.25 sigma of the true sky and below the plain median, which the sources pull up."""
    from astroenhance.metrics import clipped_sky

    rng = np.random.default_rng(seed)
    n = 200 * 200
    values = rng.normal(100.0, 2.0, n)
    on = rng.random(n) < covered
    values[on] += rng.exponential(20.0, on.sum())  # sources: light above the sky only
    assert abs(clipped_sky(values, 2.0) - 100.0) < 0.5
    assert clipped_sky(values, 2.0) <= np.median(values) + 0.02  # (pure noise: the two agree)


def test_a_frame_filled_by_a_galaxy_keeps_its_halo_above_the_black_point(tmp_path):
    """A galaxy filling the frame: the plain median sits on its halo (the display's black point, 2 sigma below the
    sky, would hide nearly half of it); the clipped sky walks down the halo to where most pixels are (the isophote
    at the frame's edges)."""
    from astroenhance.config import EnhanceConfig
    from astroenhance.pipeline import Enhancer
    from astroenhance.training.telescope import sersic

    rng = np.random.default_rng(0)
    g = 5e6 * sersic((160, 160), 80.3, 79.6, 60, 3.0, 0.9, 0.3) + 5.0
    frame = g + rng.normal(0, 1.0, g.shape)
    path = tmp_path / "galaxy.fits"
    fits.PrimaryHDU(frame.astype(np.float32)).writeto(path)
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, upscale=False))
    with open_frames(path) as [src]:
        norm = enh.fit_normalizer(src, enh.config.for_input(True))
    black = (norm(frame) <= 0).mean()
    black_at_median = (frame < np.median(frame) - 2 * norm.sky_noise).mean()
    assert np.median(frame) - norm.sky > 5 * norm.sky_noise
    assert black_at_median > 0.4 and black < black_at_median / 2  # (measured: 46% and 15%, the frame's corners)


@pytest.mark.parametrize("frame, companion, kind", [
    ("x.fits", "x_rms.fits", "noise"),
    ("x.fits.gz", "X_RMS.fits", "noise"),
    ("field_drz.fits", "field_wht.fits", "weight"),
    ("field_drz_sci.fits", "field_drz_wht.fits", "weight"),
    ("goodss_f160w_orig_sci.fits", "goodss_f160w_orig_wht.fits", "weight"),
    ("lens_image.fits", "lens_noise_map.fits", "noise"),
    ("ngc_data.fits.gz", "ngc_noise_map.fits.gz", "noise"),
    ("cut-sci.fits", "cut-err.fits", "noise"),
    ("x_drz.fits", "x_drz_ivm.fits", "weight"),
])
def test_a_frames_noise_map_beside_it_is_found_by_its_name(tmp_path, frame, companion, kind):
    from astroenhance.io.companions import companion_token, find_companion

    for name in (frame, companion, "other_rms.fits", "x_psf.fits"):
        (tmp_path / name).write_bytes(b"")
    assert companion_token(tmp_path / frame) is None and companion_token(tmp_path / companion) is not None
    assert find_companion(tmp_path / frame) == (kind, tmp_path / companion)
    assert find_companion(tmp_path / companion) is None  # a map has no map


def test_a_frames_other_companions_are_found_by_their_names(tmp_path):
    from astroenhance.io.companions import other_companions

    for name in ("f_drz.fits", "f_wht.fits", "f_psf.fits", "f_drz_seg.fits", "f_exp.fits.gz", "g_psf.fits", "f_x.fits"):
        (tmp_path / name).write_bytes(b"")
    got = sorted((what, p.name) for what, p in other_companions(tmp_path / "f_drz.fits"))
    assert got == [("PSF", "f_psf.fits"), ("exposure-time map", "f_exp.fits.gz"), ("segmentation map", "f_drz_seg.fits")]
    assert other_companions(tmp_path / "f_psf.fits") == []  # a companion has none


def test_no_companion_where_the_names_do_not_match(tmp_path):
    from astroenhance.io.companions import companion_token, find_companion

    for name in ("x.fits", "xy_rms.fits", "x_psf.fits", "x.png", "x_rms.png", "x_sci_wht_psf.fits"):
        (tmp_path / name).write_bytes(b"")
    assert find_companion(tmp_path / "x.fits") is None
    assert companion_token(tmp_path / "x_psf.fits") == "psf"  # recognised, but it carries no noise
    assert companion_token(tmp_path / "x_sci_wht_psf.fits") is None  # a science frame (its WHT inside)


def test_a_folders_noise_maps_serve_their_frames_and_are_not_enhanced(tmp_path):
    """`run` on a folder: each frame's rms or weight map beside it is its noise (recorded), the map is listed as
    skipped with the frame it serves, so is the frame's PSF; a map or PSF without its frame is enhanced as a frame;
    --no-companions enhances everything as before; an unusable map is noted and the frame's own noise used."""
    from astroenhance.batch import Job, discover, pair_companions

    data = tmp_path / "in"
    data.mkdir()
    rng = np.random.default_rng(3)
    for name, shape in (("x", (40, 40)), ("y_drz", (40, 40)), ("bad", (40, 40))):
        fits.PrimaryHDU(rng.normal(10, 2, shape).astype(np.float32)).writeto(data / f"{name}.fits")
    fits.PrimaryHDU(np.full((40, 40), 3.0, np.float32)).writeto(data / "x_rms.fits")
    fits.PrimaryHDU(np.full((40, 40), 1 / 2.5**2, np.float32)).writeto(data / "y_wht.fits")
    fits.PrimaryHDU(np.full((10, 10), 3.0, np.float32)).writeto(data / "bad_rms.fits")  # not the frame's shape
    fits.PrimaryHDU(np.full((40, 40), 3.0, np.float32)).writeto(data / "lone_rms.fits")
    fits.PrimaryHDU(np.ones((9, 9), np.float32)).writeto(data / "y_psf.fits")
    fits.PrimaryHDU(np.ones((9, 9), np.float32)).writeto(data / "z_psf.fits")  # no frame z: a frame itself
    skipped = []
    jobs = pair_companions(discover([data], tmp_path / "o"), skipped)
    got = {j.path.name: (j.noise and j.noise.name, j.weight and j.weight.name) for j in jobs}
    assert got == {"x.fits": ("x_rms.fits", None), "y_drz.fits": (None, "y_wht.fits"),
                   "bad.fits": ("bad_rms.fits", None), "lone_rms.fits": (None, None), "z_psf.fits": (None, None)}
    why = {p.name: w for p, w in skipped}
    assert sorted(why) == ["bad_rms.fits", "x_rms.fits", "y_psf.fits", "y_wht.fits"]
    assert why["x_rms.fits"].startswith("the rms map of x.fits") and why["y_psf.fits"].startswith("the PSF of y_drz.fits")
    assert pair_companions([Job(data / "x.fits", tmp_path)]) == [Job(data / "x.fits", tmp_path, noise=data / "x_rms.fits")]

    runner = CliRunner()
    args = ["--no-colorize", "--no-upscale", "--format", "fits,png"]  # both outputs record the map
    result = runner.invoke(app, ["run", str(data), "-o", str(tmp_path / "a"), *args])
    assert result.exit_code == 0, result.output
    out = tmp_path / "a"
    assert sorted(p.name for p in out.glob("*.fits")) == ["bad.enhanced.fits", "lone_rms.enhanced.fits",
                                                         "x.enhanced.fits", "y_drz.enhanced.fits",
                                                         "z_psf.enhanced.fits"]
    head = {n: fits.getheader(out / f"{n}.enhanced.fits") for n in ("x", "y_drz", "bad")}
    assert (head["x"]["AE_SIGSR"], head["x"]["AE_SKYSG"]) == ("x_rms.fits", 3.0)
    assert head["x"]["AE_SIGSH"] == hashlib.sha256((data / "x_rms.fits").read_bytes()).hexdigest()
    assert head["bad"]["AE_SIGSH"] == ""  # its own noise: no file
    assert (head["y_drz"]["AE_SIGSR"], head["y_drz"]["AE_SKYSG"]) == ("WHT y_wht.fits", pytest.approx(2.5))
    assert head["bad"]["AE_SIGSR"] == "estimated"
    assert "bad_rms.fits beside it not used as its noise" in result.output and "10x10" in result.output
    report = json.loads((out / "astroenhance-report.json").read_text())
    records = {Path(r["input"]).name: r for r in report["records"]}
    assert records["x_rms.fits"]["status"] == "skipped"
    # each frame's notes are in the report too (what noise it had): an archive run can be audited afterwards
    assert any("noise from x_rms.fits beside it" in n for n in records["x.fits"]["notes"])
    assert any("bad_rms.fits beside it not used" in n for n in records["bad.fits"]["notes"])
    # --skip-existing: a frame is finished when made from the same bytes of its frame and of its noise map
    result = runner.invoke(app, ["run", str(data), "-o", str(out), "--skip-existing", *args])
    assert result.exit_code == 0 and "0 done, 9 skipped" in result.output, result.output
    old = hashlib.sha256((data / "x_rms.fits").read_bytes()).hexdigest()
    fits.PrimaryHDU(np.full((40, 40), 4.0, np.float32)).writeto(data / "x_rms.fits", overwrite=True)
    new = hashlib.sha256((data / "x_rms.fits").read_bytes()).hexdigest()
    for made in (out / "x.enhanced.fits", out / "x.enhanced.png"):  # each output records its map
        assert output_is_complete(made, None, None, old) and not output_is_complete(made, None, None, new)
        assert output_is_complete(made, None, None, None)  # (not asked)
    result = runner.invoke(app, ["run", str(data), "-o", str(out), "--skip-existing", *args])
    assert result.exit_code == 0 and "1 done, 8 skipped" in result.output, result.output
    assert fits.getheader(out / "x.enhanced.fits")["AE_SKYSG"] == 4.0
    result = runner.invoke(app, ["run", str(data), "-o", str(tmp_path / "b"), "--no-companions", *args])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "b").glob("*.fits"))) == 9
    assert fits.getheader(tmp_path / "b" / "x.enhanced.fits")["AE_SIGSR"] == "estimated"


def test_a_long_noise_map_name_is_recorded_whole_without_astropy_truncating_cards(tmp_path):
    """A map's name fills its header cards (AE_SIGSR, FLUXERR's AE_ERRSR) whole, the comments shortened to fit —
    astropy is never left to truncate a card (it warns, and cut the name before)."""
    import warnings

    from astropy.io.fits.verify import VerifyWarning

    from astroenhance.config import EnhanceConfig
    from astroenhance.pipeline import Enhancer

    name = "hlsp_frontier_hst_wfc3-60mas_abell2744_f105w_rms.fits"  # 52 characters
    fits.PrimaryHDU(np.full((256, 256), 5.0, np.float32)).writeto(tmp_path / name)
    enhancer = Enhancer(EnhanceConfig(device="cpu", colorize=False, formats=("fits",)))
    with warnings.catch_warnings():
        warnings.simplefilter("error", VerifyWarning)
        [result] = enhancer.enhance_file(HRC, tmp_path / "out", noise=tmp_path / name)
    with fits.open(result.outputs[0]) as h:
        assert h[0].header["AE_SIGSR"] == name and h["FLUXERR"].header["AE_ERRSR"] == name
        assert all(len(c.image) == 80 for c in h["FLUXERR"].header.cards)

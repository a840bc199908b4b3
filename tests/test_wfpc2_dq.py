"""WFPC2's data quality: its own DQ flags, and the ``_c1m``/``_c1f`` file that holds a calibrated exposure's DQ
beside its ``_c0m``/``_c0f`` (`io.noise.dq_flags`, `io.noise.dq_planes`, `io.companions.find_dq_companion`)."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from astroenhance.cli import app
from astroenhance.config import DQ_NO_DATA, JWST_DQ_NO_DATA, WFPC2_DQ_NO_DATA
from astroenhance.errors import DQFileError
from astroenhance.io.readers import open_frames
from astroenhance.io.writers import output_is_complete

from .conftest import FIXTURES

CUBE = FIXTURES / "hubble_wfpc2_sample.fits"  # a WFPC2 c0f: four 200x200 chips in a cube, their WCS in a table
MEF = FIXTURES / "wfpc2_raw_test0.fits"  # four 40x40 SCI extensions, INSTRUME = WFPC2
FLAGS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _flagged_frame(path: Path, dq: np.ndarray, instrument: str) -> Path:
    rng = np.random.default_rng(0)
    primary = fits.PrimaryHDU()
    primary.header["INSTRUME"] = instrument
    fits.HDUList([primary, fits.ImageHDU(rng.normal(10, 1, dq.shape).astype(np.float32), name="SCI"),
                  fits.ImageHDU(dq.astype(np.int16), name="DQ")]).writeto(path)
    return path


@FAST
@given(st.lists(st.sampled_from(FLAGS), min_size=1, max_size=4), st.integers(0, 2**16 - 1))
def test_each_instrument_reads_its_own_flags_as_no_data(tmp_path, flags, seed):
    """A pixel is no data by default exactly where its DQ holds one of its instrument's no-data flags: WFPC2's bad
    (32) and warm (512) pixels and masked chips (2048) too, its saturation (8) kept; ACS/WFC3's as before; JWST's
    DO_NOT_USE (1) only — HST's mask took its saturated (2), jump-detected (4) and warm (4096) pixels."""
    rng = np.random.default_rng(seed)
    dq = rng.choice(np.array(flags + [0]), (24, 24))
    for instrument, mask, name in (("WFPC2", WFPC2_DQ_NO_DATA, "WFPC2"), ("ACS", DQ_NO_DATA, "ACS"),
                                   ("NIRCAM", JWST_DQ_NO_DATA, "JWST")):
        path = _flagged_frame(tmp_path / f"{instrument}_{seed}_{len(flags)}.fits", dq, instrument)
        with open_frames(path) as [src]:
            got = np.isnan(src.read_rows(0, 24))
            assert src.dq_mask == mask and src.dq_flags.instrument.startswith(name)
        np.testing.assert_array_equal(got, (dq & mask) != 0)
        path.unlink()
    assert WFPC2_DQ_NO_DATA & (32 | 512 | 2048) and not WFPC2_DQ_NO_DATA & (8 | 256 | 1024)
    assert JWST_DQ_NO_DATA == 1


def test_a_wfpc2_frames_saturation_is_not_searched_for_cosmic_rays(tmp_path):
    """The cosmic-ray search leaves WFPC2's saturated pixels (8) alone as it does ACS's (256, 2048)."""
    from astroenhance.io.noise import ACS_WFC3_FLAGS, WFPC2_FLAGS

    dq = np.zeros((24, 24), np.int16)
    path = _flagged_frame(tmp_path / "w.fits", dq, "WFPC2")
    with open_frames(path) as [src]:
        assert src.dq_flags is WFPC2_FLAGS and WFPC2_FLAGS.saturated == 8
    with open_frames(_flagged_frame(tmp_path / "a.fits", dq, "ACS")) as [src]:
        assert src.dq_flags is ACS_WFC3_FLAGS and ACS_WFC3_FLAGS.saturated == 256 | 2048


@pytest.mark.parametrize("frame, dq", [
    ("u5780205r_c0f.fits", "u5780205r_c1f.fits"),
    ("u2eq0201t_c0m.fits", "u2eq0201t_c1m.fits"),
    ("U2EQ0201T_C0M.FITS", "U2EQ0201T_C1M.FITS"),
    ("u2eq0201t_c0m.fits.gz", "u2eq0201t_c1m.fits"),
])
def test_a_wfpc2_exposures_dq_file_beside_it_is_found_by_its_name(tmp_path, frame, dq):
    from astroenhance.io.companions import companion_token, find_companion, find_dq_companion

    for name in (frame, dq, "other_c1m.fits"):
        (tmp_path / name).write_bytes(b"")
    assert find_dq_companion(tmp_path / frame) == tmp_path / dq
    assert companion_token(tmp_path / dq) is not None  # not a frame, nor an evaluation truth
    assert find_dq_companion(tmp_path / dq) is None and find_companion(tmp_path / frame) is None


def test_no_dq_file_where_the_names_do_not_match(tmp_path):
    from astroenhance.io.companions import find_dq_companion

    for name in ("a_c0m.fits", "a_c1f.fits", "bc0m.fits", "bc1m.fits", "c_drz.fits", "c_c1m.fits", "d_c0m.png",
                 "d_c1m.fits"):
        (tmp_path / name).write_bytes(b"")
    assert [find_dq_companion(tmp_path / n) for n in ("a_c0m.fits", "bc0m.fits", "c_drz.fits", "d_c0m.png")] == [None] * 4


def _c1f(path: Path) -> np.ndarray:
    """A DQ cube for `CUBE`'s four chips: a bad pixel, a saturated one and one above a trap on chip 2, a
    calibration defect on chip 3."""
    dq = np.zeros((4, 200, 200), np.int16)
    dq[1, 50, 60], dq[1, 70, 80], dq[1, 90, 100], dq[2, 10, 10:20] = 32, 8, 256, 2
    fits.PrimaryHDU(dq).writeto(path)
    return dq


def test_a_dq_file_masks_each_chip_by_its_own_plane(tmp_path):
    """Chip k takes the file's plane k, also when --hdu chooses one chip; the default mask is WFPC2's, --dq-mask
    another; the frame's other pixels are read as before."""
    dq = _c1f(tmp_path / "u_c1f.fits")
    with open_frames(CUBE) as plain:
        before = [f.read_rows(0, 200) for f in plain]
    with open_frames(CUBE, dq=tmp_path / "u_c1f.fits") as frames:
        for k, f in enumerate(frames):
            got = f.read_rows(0, 200)
            flagged = (dq[k] & WFPC2_DQ_NO_DATA) != 0
            assert f.dq_mask == WFPC2_DQ_NO_DATA and f.dq_file == tmp_path / "u_c1f.fits"
            np.testing.assert_array_equal(np.isnan(got), flagged | np.isnan(before[k]))
            np.testing.assert_array_equal(got[~flagged], before[k][~flagged])
    assert ((dq[1] & WFPC2_DQ_NO_DATA) != 0).sum() == 1 and ((dq[2] & WFPC2_DQ_NO_DATA) != 0).sum() == 10
    with open_frames(CUBE, "chip2", dq=tmp_path / "u_c1f.fits", dq_mask=8) as [f]:
        got = f.read_rows(0, 200)
        assert np.isnan(got[70, 80]) and not np.isnan(got[50, 60]) and f.dq_mask == 8


def test_a_multi_extension_exposure_takes_its_dq_files_extensions_in_order(tmp_path):
    shutil.copy(MEF, tmp_path / "u2_c0m.fits")
    planes = [np.zeros((40, 40), np.int16) for _ in range(4)]
    planes[3][5, 6] = 512  # an unrepaired warm pixel on the fourth chip
    fits.HDUList([fits.PrimaryHDU()] + [fits.ImageHDU(p) for p in planes]).writeto(tmp_path / "u2_c1m.fits")
    with open_frames(tmp_path / "u2_c0m.fits", dq=tmp_path / "u2_c1m.fits") as frames:
        assert [int(np.isnan(f.read_rows(0, 40)).sum()) for f in frames] == [0, 0, 0, 1]
        assert np.isnan(frames[3].read_rows(5, 6)[0, 6])


@pytest.mark.parametrize("bad, why", [
    (np.zeros((3, 200, 200), np.int16), "3 DQ image plane(s) for a file of 4 chip(s)"),
    (np.zeros((4, 100, 200), np.int16), "DQ plane 1 is 100x200, the frame 200x200"),
    (np.zeros((4, 200, 200), np.float32), "floating-point values"),
])
def test_a_dq_file_that_cannot_serve_is_an_error_when_asked_for_and_a_note_when_found(tmp_path, bad, why):
    fits.PrimaryHDU(bad).writeto(tmp_path / "u_c1f.fits")
    with pytest.raises(DQFileError, match=re.escape(why)), open_frames(CUBE, dq=tmp_path / "u_c1f.fits"):
        pass
    with open_frames(CUBE, dq=tmp_path / "u_c1f.fits", dq_beside=True) as frames:
        assert all(f.dq_file is None and any(f"u_c1f.fits beside it not used as its DQ: {why}" in n for n in f.notes)
                   for f in frames)
    (tmp_path / "broken_c1f.fits").write_bytes(b"SIMPLE  = T" + b" " * 50)
    with pytest.raises(DQFileError, match="not a readable FITS file"), open_frames(CUBE, dq=tmp_path / "broken_c1f.fits"):
        pass


def test_run_pairs_an_exposure_with_its_dq_file_records_it_and_does_not_enhance_it(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    shutil.copy(CUBE, data / "u5780205r_c0f.fits")
    _c1f(data / "u5780205r_c1f.fits")
    runner = CliRunner()
    args = ["--no-colorize", "--format", "fits,png", "--no-clean-cosmic-rays"]
    dry = runner.invoke(app, ["run", str(data), "-o", str(tmp_path / "o"), "--dry-run", *args])
    assert dry.exit_code == 0 and "(DQ: u5780205r_c1f.fits)" in dry.output, dry.output
    assert "skip " + str(data / "u5780205r_c1f.fits") + ": the data-quality file of u5780205r_c0f.fits" in dry.output
    result = runner.invoke(app, ["run", str(data), "-o", str(tmp_path / "o"), *args])
    assert result.exit_code == 0 and "1 done, 1 skipped" in result.output, result.output
    assert sorted(p.name for p in (tmp_path / "o").glob("*.fits")) == [f"u5780205r_c0f.chip{k}.enhanced.fits"
                                                                      for k in range(1, 5)]
    assert len(list((tmp_path / "o").glob("*.png"))) == 4
    with fits.open(tmp_path / "o" / "u5780205r_c0f.chip2.enhanced.fits") as h:
        head, flux = h[0].header, h["FLUX"].data
        assert (head["AE_DQFIL"], head["AE_DQMSK"]) == ("u5780205r_c1f.fits", WFPC2_DQ_NO_DATA)
        assert head["AE_DQSHA"] == hashlib.sha256((data / "u5780205r_c1f.fits").read_bytes()).hexdigest()
        assert np.isnan(flux[200:204, 240:244]).all()  # the bad pixel: no data in FLUX
        assert np.isfinite(flux[280:284, 320:324]).all() and np.isfinite(flux[360:364, 400:404]).all()  # 8, 256 kept
    records = json.loads((tmp_path / "o" / "astroenhance-report.json").read_text())["records"]
    assert any("DQ from u5780205r_c1f.fits beside it" in n for r in records for n in r.get("notes", []))
    # --skip-existing: finished while the DQ file is the one its outputs (FITS and PNG) recorded; redone once edited
    again = runner.invoke(app, ["run", str(data), "-o", str(tmp_path / "o"), "--skip-existing", *args])
    assert again.exit_code == 0 and "0 done, 2 skipped" in again.output, again.output
    edited = fits.getdata(data / "u5780205r_c1f.fits")
    edited[0, 0, 0] = 32
    fits.PrimaryHDU(edited).writeto(data / "u5780205r_c1f.fits", overwrite=True)
    for made in (tmp_path / "o").glob("u5780205r_c0f.chip1.enhanced.*"):
        assert not output_is_complete(made, None, None, None, hashlib.sha256((data / "u5780205r_c1f.fits")
                                                                             .read_bytes()).hexdigest())
    again = runner.invoke(app, ["run", str(data), "-o", str(tmp_path / "o"), "--skip-existing", *args])
    assert again.exit_code == 0 and "1 done, 1 skipped" in again.output, again.output
    plain = runner.invoke(app, ["run", str(data), "-o", str(tmp_path / "p"), "--no-companions", *args])
    assert plain.exit_code == 0 and "2 done" in plain.output, plain.output
    assert fits.getheader(tmp_path / "p" / "u5780205r_c0f.chip2.enhanced.fits")["AE_DQFIL"] == ""


def test_a_colour_mosaic_records_the_dq_file_its_frames_were_read_with(tmp_path):
    """`mosaic --enhance` read an exposure's DQ file beside it (WFPC2's _c1f) but recorded none (AE_DQFIL and
    AE_DQSHA empty: the frames' sources did not carry it); now it records it as `run` does, with the cosmic-ray
    search's limit (AE_CRLIM) and the DQ mask."""
    data = tmp_path / "in"
    data.mkdir()
    shutil.copy(CUBE, data / "u5780205r_c0f.fits")
    _c1f(data / "u5780205r_c1f.fits")
    result = CliRunner().invoke(app, ["mosaic", str(data), "--enhance", "-o", str(tmp_path / "m"), "--format", "fits",
                                      "--hdu", "chip2"])
    assert result.exit_code == 0, result.output
    ran = CliRunner().invoke(app, ["run", str(data / "u5780205r_c0f.fits"), "--hdu", "chip2", "-o",
                                   str(tmp_path / "r"), "--format", "fits", "--dq", str(data / "u5780205r_c1f.fits")])
    assert ran.exit_code == 0, ran.output
    mos, run = (fits.getheader(tmp_path / "m" / "mosaic.mosaic.fits"),
                fits.getheader(tmp_path / "r" / "u5780205r_c0f.chip2.enhanced.fits"))
    assert (mos["AE_DQFIL"], mos["AE_DQMSK"]) == ("u5780205r_c1f.fits", WFPC2_DQ_NO_DATA)
    assert mos["AE_DQSHA"] == hashlib.sha256((data / "u5780205r_c1f.fits").read_bytes()).hexdigest()
    for key in ("AE_DQFIL", "AE_DQSHA", "AE_DQMSK", "AE_NCR", "AE_CRLIM", "AE_SIGSR"):
        assert mos[key] == run[key], key


def test_run_dq_by_path_is_checked(tmp_path):
    bad = tmp_path / "bad_c1f.fits"
    fits.PrimaryHDU(np.zeros((2, 200, 200), np.int16)).writeto(bad)
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(CUBE), "-o", str(tmp_path / "o"), "--dq", str(bad), "--no-colorize"])
    assert result.exit_code == 1 and "bad_c1f.fits: 2 DQ image plane(s) for a file of 4 chip(s)" in result.output
    assert not list((tmp_path / "o").glob("*.enhanced.*"))
    two = runner.invoke(app, ["run", str(CUBE), str(MEF), "-o", str(tmp_path / "o"), "--dq", str(bad)])
    assert two.exit_code == 2 and "one frame's data-quality file" in two.output

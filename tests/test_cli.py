"""The command line as a user meets it: outputs, provenance, exit codes, one-line errors, nothing left behind."""

import hashlib
import json
import os
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from PIL import Image
from typer.testing import CliRunner

from astroenhance.batch import check_outdir
from astroenhance.cli import app

from .conftest import COLOR, EXAMPLE, FIXTURES, HRC, REPO

runner = CliRunner()


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    before = sha(EXAMPLE)
    result = invoke("run", EXAMPLE, "-o", out, "--format", "fits,png,tiff,jpeg", "-q")
    assert sha(EXAMPLE) == before, "the input was modified"
    return result, out


def test_run_writes_every_format(example_run):
    result, out = example_run
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    stem = "abell_2744_group_of_galaxies_f105w.enhanced"
    assert names == [f"{stem}.fits", f"{stem}.jpg", f"{stem}.png", f"{stem}.tif", "astroenhance-report.json"]
    with Image.open(out / f"{stem}.png") as im:
        assert im.size == (400, 400)


def test_fits_output_layout_and_provenance(example_run):
    _, out = example_run
    with fits.open(out / "abell_2744_group_of_galaxies_f105w.enhanced.fits") as h:
        assert [x.name for x in h] == ["PRIMARY", "RED", "GREEN", "BLUE", "FLUX", "FLUXERR"]
        assert h[0].data is None
        for ext in h[1:]:
            assert ext.data.shape == (400, 400) and ext.data.dtype.kind == "f"
            assert ext.header["TELESCOP"] == "HST" or "INSTRUME" in ext.header or "FILTER" in ext.header
            assert ext.header["BUNIT"] == ("display" if ext.name not in ("FLUX", "FLUXERR") else fits.getheader(EXAMPLE)["BUNIT"])
        p = h[0].header
        for key in ("AE_VER", "AE_SRW", "AE_COW", "AE_STRCH", "AE_INTVL", "AE_VMIN", "AE_VMAX", "AE_TILE", "AE_OVLAP",
                    "AE_SCALE", "AE_FLUX", "AE_DEV", "AE_PREC", "AE_INPUT", "AE_INSHA", "AE_DATE", "AE_GATE", "AE_NOISE"):
            assert key in p, key
        assert p["AE_INSHA"] == sha(EXAMPLE)
        assert p["DATE"] + "Z" == p["AE_DATE"]  # the FITS standard's date of writing, for tools that read it
        assert len(p["AE_SRW"]) == 64 and p["AE_FLUX"] is True and p["AE_STRCH"] == "asinh"
        assert "not measurement" in str(p["COMMENT"])
        assert any("stretch" in str(c) for c in p["HISTORY"])
        w_in = WCS(fits.getheader(EXAMPLE))
        w_out = WCS(h[1].header)
        np.testing.assert_allclose(w_out.pixel_to_world_values(0, 0), w_in.pixel_to_world_values(-0.375, -0.375), atol=1e-10)


def test_png_rows_are_top_down_and_match_fits(example_run):
    _, out = example_run
    stem = out / "abell_2744_group_of_galaxies_f105w.enhanced"
    png = np.asarray(Image.open(f"{stem}.png")).astype(float) / 255
    with fits.open(f"{stem}.fits") as h:
        red = h["RED"].data
    np.testing.assert_allclose(png[::-1, :, 0], np.nan_to_num(red), atol=0.51 / 255)


def test_png_avm_gives_the_fits_wcs(example_run):
    import pyavm

    _, out = example_run
    stem = out / "abell_2744_group_of_galaxies_f105w.enhanced"
    avm = pyavm.AVM.from_image(f"{stem}.png")
    w_avm = avm.to_wcs()
    with fits.open(f"{stem}.fits") as h:
        w_fits = WCS(h["RED"].header)
    pix = np.array([[0, 0], [399, 0], [0, 399], [200, 150]], float)
    sky_a = w_avm.all_pix2world(pix, 0)
    sky_f = w_fits.all_pix2world(pix, 0)
    np.testing.assert_allclose(sky_a, sky_f, atol=1e-9)
    assert "not measurement" in str(avm.Spatial.Notes)


@pytest.mark.filterwarnings("ignore:Only PNG and JPEG files can be properly parsed")  # (pyavm, of the TIFF)
def test_pictures_say_what_was_observed_and_that_predicted_colour_is_pseudocolour(example_run, tmp_path):
    """A picture's AVM held its sky position alone: an image viewer (WorldWide Telescope, Aladin) could not tell the
    telescope, filter or exposure, nor that its colour was predicted. Now the PNG, TIFF and JPEG carry the frame's
    TELESCOP, INSTRUME, filter and wavelength, EXPTIME, and the colour assignment: Pseudocolor where the colorizer
    coloured it (said in Spectral.Notes), Grayscale where it stays grey."""
    import pyavm

    _, out = example_run
    for ext in ("png", "tif", "jpg"):
        avm = pyavm.AVM.from_image(str(out / f"abell_2744_group_of_galaxies_f105w.enhanced.{ext}"))
        assert avm.Facility == ["HST"] and avm.Instrument == ["WFC3"] and avm.Spectral.Bandpass == ["F105W"], ext
        assert avm.Spectral.CentralWavelength == [pytest.approx(1055.1047)] and avm.Spectral.Band == ["Infrared"]
        assert avm.Temporal.IntegrationTime == [pytest.approx(68952.384)]
        assert avm.Spectral.ColorAssignment == ["Pseudocolor"]
        assert "predicted" in str(avm.Spectral.Notes) and "not measured" in str(avm.Spectral.Notes)
    grey = invoke("run", EXAMPLE, "-o", tmp_path, "--format", "png", "--no-colorize", "-q")
    assert grey.exit_code == 0, grey.output
    avm = pyavm.AVM.from_image(str(tmp_path / "abell_2744_group_of_galaxies_f105w.enhanced.png"))
    assert avm.Spectral.ColorAssignment == ["Grayscale"] and avm.Spectral.Notes is None and avm.Facility == ["HST"]


def test_multichip_goes_to_one_output_per_chip(tmp_path):
    result = invoke("run", FIXTURES / "2chipA.fits.gz", "-o", tmp_path / "flagged", "--format", "fits")
    assert result.exit_code == 1  # the fixture's DQ flags every (dummy) pixel: it says so, and what to do
    assert ("no finite pixels: the frame is all NaN/inf (every pixel flagged in DQ by --dq-mask 12439: --dq-mask "
            "none reads them anyway)") in " ".join(result.output.split())
    result = invoke("run", FIXTURES / "2chipA.fits.gz", "-o", tmp_path, "--format", "fits", "--dq-mask", "none")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.fits")) == ["2chipA.sci1.enhanced.fits", "2chipA.sci2.enhanced.fits"]
    assert "lookup-table distortions (NPOL/D2IM) carried" in " ".join(result.output.split())
    # -q: only errors and the summary line, no notes
    quiet = invoke("run", FIXTURES / "2chipA.fits.gz", "-o", tmp_path / "q", "--format", "fits", "-q", "--dq-mask", "none")
    assert quiet.exit_code == 0 and "note:" not in quiet.output and len(quiet.output.strip().splitlines()) == 1


def test_hdu_all_writes_every_stamp_and_a_picture_beside_them_still_runs(tmp_path):
    stamps = [fits.PrimaryHDU(np.random.default_rng(0).normal(1, 0.1, (12, 12)).astype(np.float32))] + [
        fits.ImageHDU(np.random.default_rng(i).normal(1, 0.1, (10, 16)).astype(np.float32)) for i in (1, 2)]
    fits.HDUList(stamps).writeto(tmp_path / "stamps.fits")
    Image.open(COLOR / "heic0406a.png").convert("RGB").resize((16, 16)).save(tmp_path / "picture.png")
    result = invoke("run", tmp_path / "stamps.fits", tmp_path / "picture.png", "--hdu", "all", "-o", tmp_path / "out",
                    "--format", "fits", "--no-colorize")
    assert result.exit_code == 0, result.output
    shapes = {p.name: fits.getdata(p, "RED").shape for p in (tmp_path / "out").glob("*.fits")}
    assert shapes == {"stamps.hdu0.enhanced.fits": (48, 48), "stamps.hdu1.enhanced.fits": (40, 64),
                      "stamps.hdu2.enhanced.fits": (40, 64), "picture.enhanced.fits": (64, 64)}
    default = invoke("run", tmp_path / "stamps.fits", "-o", tmp_path / "one", "--format", "fits")
    assert "--hdu all" in default.output and [p.name for p in (tmp_path / "one").glob("*.fits")] == [
        "stamps.enhanced.fits"]
    # stamps are independent: one of 1x1 pixels and one without data are named, the others written
    odd = [fits.PrimaryHDU(np.ones((1, 1), np.float32)), fits.ImageHDU(np.full((8, 8), np.nan, np.float32)),
           fits.ImageHDU(np.random.default_rng(3).normal(1, 0.1, (12, 12)).astype(np.float32))]
    fits.HDUList(odd).writeto(tmp_path / "odd.fits")
    result = invoke("run", tmp_path / "odd.fits", "--hdu", "all", "-o", tmp_path / "odd", "--format", "fits")
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and "hdu0 not enhanced: image is 1x1 pixels" in said, said
    assert "hdu1 not enhanced: no finite pixels" in said
    assert [p.name for p in (tmp_path / "odd").glob("*.fits")] == ["odd.hdu2.enhanced.fits"]


def test_an_input_whose_output_name_would_be_too_long_is_one_line_before_any_work(tmp_path):
    """An input named 247 characters: its output's name (+ ".enhanced.fits") is over a file name's 255 bytes. It was
    "unexpected OSError: File name too long" after the whole enhancement; now one line before any work (the dry
    run too), the other inputs done; a compose/mosaic --name that long is a usage error."""
    long = tmp_path / ("b" * 247 + ".fits.gz")
    shutil.copy(EXAMPLE, long)
    shutil.copy(EXAMPLE, tmp_path / "short.fits.gz")
    result = invoke("run", long, tmp_path / "short.fits.gz", "-o", tmp_path / "out", "--format", "fits")
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "unexpected" not in said and "261 bytes" in said and "shorter name" in said
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["astroenhance-report.json", "short.enhanced.fits"]
    dry = invoke("run", long, "-o", tmp_path / "dry", "--dry-run")
    assert dry.exit_code == 1 and "261 bytes" in " ".join(dry.output.split())
    named = invoke("mosaic", EXAMPLE, "-o", tmp_path / "m", "--name", "c" * 250)
    assert named.exit_code == 2 and "give a shorter --name" in " ".join(named.output.split())


def test_bad_inputs_one_line_each_exit_1_and_nothing_left(tmp_path):
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "text.fits").write_text("hello, not a FITS file")
    (bad / "zero.fits").write_bytes(b"")
    shutil.copy(FIXTURES / "sample_mvm_drc.fits", bad / "allnan.fits")
    out = tmp_path / "out"
    result = invoke("run", bad / "text.fits", bad / "zero.fits", bad / "allnan.fits", EXAMPLE, "-o", out, "-q")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    assert any("text.fits" in e and "not a readable FITS" in e for e in errors)
    assert any("zero.fits" in e and "empty" in e for e in errors)
    assert any("allnan.fits" in e and "NaN" in e for e in errors)
    # the good file after them was still processed; the bad ones left no file, not even a temporary one
    assert sorted(p.name for p in out.iterdir()) == ["abell_2744_group_of_galaxies_f105w.enhanced.fits",
                                                     "abell_2744_group_of_galaxies_f105w.enhanced.png",
                                                     "astroenhance-report.json"]
    assert "1 done, 0 skipped, 3 failed of 4 input(s)" in result.output
    report = json.loads((out / "astroenhance-report.json").read_text())
    assert report["summary"] == {"done": 1, "skipped": 0, "failed": 3}
    by_name = {Path(r["input"]).name: r for r in report["records"]}
    assert by_name["zero.fits"]["status"] == "failed" and "empty" in by_name["zero.fits"]["error"]
    assert by_name[EXAMPLE.name]["status"] == "done" and len(by_name[EXAMPLE.name]["outputs"]) == 2


def test_failure_summary_names_each_file_once(tmp_path):
    bad = tmp_path / "text.fits"
    bad.write_text("hello, not a FITS file")
    result = invoke("run", bad, "-o", tmp_path / "out")
    assert result.exit_code == 1
    # one input: its error is said once (no summary repeating it)
    [line] = [line for line in result.output.splitlines() if "text.fits" in line]
    assert line.startswith("error: ") and line.count("text.fits") == 1 and "not a readable FITS" in line
    # a batch: each failure once as it happens, once more in the summary at the end, naming the file once
    result = invoke("run", bad, EXAMPLE, "-o", tmp_path / "out2", "--no-colorize", "--no-upscale", "--format", "png")
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if line.strip().startswith("failed:")]
    assert line.count("text.fits") == 1 and "not a readable FITS" in line


def test_a_setting_that_does_not_fit_one_file_names_that_file(tmp_path):
    """--interval range suits pictures, not FITS frames: the FITS frame fails, naming itself (the line said only
    "interval 'range' needs..."), and the picture is made."""
    png = tmp_path / "grey.png"
    Image.fromarray(np.arange(32 * 40, dtype=np.uint8).reshape(32, 40)).save(png)
    result = invoke("run", EXAMPLE, png, "-o", tmp_path / "out", "--interval", "range", "--no-colorize",
                    "--no-upscale", "--format", "png")
    assert result.exit_code == 1 and (tmp_path / "out" / "grey.enhanced.png").is_file()
    [line] = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert line.startswith(f"error: {EXAMPLE}: ") and "interval 'range'" in line


def test_unwritable_output(tmp_path):
    """/proc cannot be written in, even by root, whose `os.access` says yes: root's run failed each frame ("cannot
    create output folder", exit 1) where anyone else's was refused once before any work (exit 2); the same now for
    both."""
    target = "/proc/astroenhance-cannot-write-here"
    result = invoke("run", EXAMPLE, "-o", target, "-q")
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "Traceback" not in said, said
    assert said.count(f"{target}: cannot be an output folder (/proc, where it would be made, ") == 1, said
    assert "done" not in said
    from astroenhance.batch import not_writable

    assert not_writable(tmp_path) == "" and not any(tmp_path.iterdir())  # the probe leaves nothing behind


def test_usage_errors_exit_2(tmp_path):
    assert invoke("run", EXAMPLE, "-o", tmp_path, "--format", "gif").exit_code == 2
    assert invoke("run", EXAMPLE, "-o", tmp_path, "--interval", "percentile:0").exit_code == 2
    assert invoke("run", EXAMPLE, "-o", tmp_path, "--stretch", "cube").exit_code == 2
    assert invoke("run", EXAMPLE, "-o", tmp_path, "--tile", "64", "--overlap", "64").exit_code == 2
    small = invoke("run", EXAMPLE, "-o", tmp_path, "--tile", "24")  # (the default overlap, 16, is more than half)
    assert small.exit_code == 2 and "with --tile 24, give --overlap 12 or less" in " ".join(small.output.split())
    # tiles of 17 sharing 16 (the default overlap) advanced one pixel at a time: 289x the work
    result = invoke("run", EXAMPLE, "-o", tmp_path, "--tile", "17")
    assert result.exit_code == 2 and "--overlap <= tile / 2 (got tile=17, overlap=16)" in result.output
    assert list(tmp_path.iterdir()) == []


def test_fp16_on_cpu_refused(tmp_path):
    result = invoke("run", EXAMPLE, "-o", tmp_path, "--device", "cpu", "--precision", "fp16")
    assert result.exit_code == 1 and "fp16 is not supported on CPU" in result.output


def test_bf16_on_a_cpu_without_native_bf16_warns(tmp_path, monkeypatch):
    import torch

    from astroenhance.pipeline.device import slow_cpu_bf16

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    cpu = torch.device("cpu")
    assert "slower" in slow_cpu_bf16(cpu, "bf16")
    assert slow_cpu_bf16(cpu, "fp32") == "" and slow_cpu_bf16(torch.device("cuda"), "bf16") == ""
    # warned before any frame is read (here: none found, a usage error)
    result = invoke("run", tmp_path / "missing.fits", "-o", tmp_path / "out", "--device", "cpu", "--precision", "bf16")
    assert "warning: --precision bf16 on this CPU" in result.output
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert slow_cpu_bf16(cpu, "bf16") == ""


def test_display_image_defaults(tmp_path):
    from .conftest import COLOR

    luma = [0.2126, 0.7152, 0.0722]
    name = "stellarium_n6210"
    src = np.asarray(Image.open(COLOR / f"{name}.png").convert("RGB")).astype(float)
    # a colour image keeps its own colours by default, and says so
    result = invoke("run", COLOR / f"{name}.png", "-o", tmp_path / "kept", "--no-upscale")
    assert result.exit_code == 0
    assert (f"note: {COLOR / name}.png: colour input: its own colours kept (--colorize would replace them with "
            "predicted ones)") in " ".join(result.output.split())
    [out] = [p for p in (tmp_path / "kept").iterdir() if p.suffix == ".png"]
    assert out.name == f"{name}.enhanced.png"
    got = np.asarray(Image.open(out)).astype(float)
    assert np.abs(src - got).max() <= 1.0 + 1e-9  # every channel within one 8-bit step
    assert "colorize=False" in Image.open(out).text["Comment"]
    # --colorize replaces them (luminance kept), and says so
    result = invoke("run", COLOR / f"{name}.png", "-o", tmp_path / "new", "--no-upscale", "--colorize")
    assert ("colour input: its colours were replaced by the colorizer's prediction (--colorize)"
            in " ".join(result.output.split()))
    got = np.asarray(Image.open(tmp_path / "new" / out.name)).astype(float)
    assert np.abs(src @ luma - got @ luma).max() <= 1.0 + 1e-9  # luminance kept within one 8-bit step
    assert np.abs(src - got).mean() > 2  # the colours are the network's
    # a grey image is colorized by default, at the calibrated strength: fainter than the network's full colour, but
    # colour (a grey output's channels differ by nothing; 8-bit rounding of colour by at most 1)
    Image.fromarray(np.round(src @ luma).astype(np.uint8)).save(tmp_path / "grey.png")
    spread = {}
    for label, extra in (("default", []), ("full", ["--color-strength", "1"])):
        result = invoke("run", tmp_path / "grey.png", "-o", tmp_path / label, "--no-upscale", "-q", *extra)
        got = np.asarray(Image.open(tmp_path / label / "grey.enhanced.png")).astype(float)
        assert result.exit_code == 0
        spread[label] = np.abs(got - got.mean(axis=-1, keepdims=True)).max()
    assert 2 < spread["default"] < spread["full"]


def test_weights_tampering_refused(tmp_path):
    from .conftest import REPO

    wdir = tmp_path / "w"
    shutil.copytree(REPO / "weights", wdir)
    from astroenhance.models.weights import find_weights

    victim = wdir / find_weights(wdir, "sr", "hst").file  # the weights a default run of a FITS frame loads
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF
    victim.write_bytes(bytes(data))
    result = invoke("run", EXAMPLE, "-o", tmp_path / "o", "--weights", wdir)
    assert result.exit_code == 1 and "does not match the manifest" in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("edit, said", [
    (lambda m: m.update(weights=None), "not a weights manifest"),
    (lambda m: m.update(weights=["a"]), "not a weights manifest"),
    (lambda m: m["weights"][0].update(file="../../outside.bin"), "is not inside the weights folder"),
    (lambda m: m["weights"][0].update(file="/etc/hostname"), "is not inside the weights folder"),
    (lambda m: m["weights"][0].update(sha256=5), "sha256 must be text"),
    (lambda m: m["weights"][0].update(chroma_scale="x"), "chroma_scale 'x' is not a number"),
])
def test_a_broken_weights_manifest_is_one_line(tmp_path, edit, said):
    """A manifest that is not a list of entries, or whose values are of the wrong kind, was a Python traceback; a file
    named outside the weights folder (../, an absolute path) was read and hashed: each is now one line naming it."""
    wdir = tmp_path / "w"
    shutil.copytree(REPO / "weights", wdir)
    manifest = json.loads((wdir / "manifest.json").read_text())
    edit(manifest)
    (wdir / "manifest.json").write_text(json.dumps(manifest))
    result = invoke("run", EXAMPLE, "-o", tmp_path / "o", "--weights", wdir)
    assert result.exit_code == 1 and said in " ".join(result.output.split()), result.output
    assert not (tmp_path / "o").exists()


def test_help_teaches():
    result = invoke("run", "--help")
    assert result.exit_code == 0
    for word in ("--flux-conserving", "--sr-model", "percentile", "noise:3", "--fits-encoding", "--dq-mask",
                 "--color-strength", "--flux-plane", "not measurement"):
        assert word in result.output


def test_run_help_groups_its_options_most_used_first():
    out = invoke("run", "--help").output
    sections = [line[:-1] for line in out.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert sections == ["Arguments", "Output, models and archives", "Display and FITS layout", "HST data quality",
                        "Flux and noise finishing", "Speed and resources", "Help"]
    assert out.index("--output") < out.index("--interval") < out.index("--dq-mask") < out.index("--flux-tolerance") < (
        out.index("--tile"))


def test_help_loads_nothing_heavy():
    """`--help` answers before torch, astropy or pydantic load (the start-up target is measured by
    benchmarks/bench_startup.py; this guards what it depends on)."""
    import subprocess
    import sys

    code = ("import sys; from astroenhance.cli import app\n"
            "try:\n    app(['run', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'astropy', 'pydantic', 'reproject') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_noise_gate_switch_and_other_sr_models(tmp_path):
    """The psnr network is gated by default; --no-noise-gate lets the bare network through (a different picture,
    recorded as such); --sr-model gan and psnr-large use their own weights (recorded), and all keep the exact flux
    promise.  A FITS frame gets the hst network by default, ungated."""
    outs, notes = {}, {}
    models = {"gan": ["--sr-model", "gan"], "large": ["--sr-model", "psnr-large", "--no-noise-gate"]}
    psnr = ["--sr-model", "psnr"]
    for name, extra in {"gate": psnr, "nogate": [*psnr, "--no-noise-gate"], **models}.items():
        result = invoke("run", EXAMPLE, "-o", tmp_path / name, "--format", "fits", "--no-colorize", *extra)
        assert result.exit_code == 0, result.output
        notes[name] = result.output
        [f] = (tmp_path / name).glob("*.fits")
        with fits.open(f) as h:
            outs[name] = (h[0].header, np.stack([h[e].data for e in ("RED", "GREEN", "BLUE")]))
    assert outs["gate"][0]["AE_GATE"] is True and outs["nogate"][0]["AE_GATE"] is False
    # the share of output pixels with network detail: none passes the gate on this noisy frame (README), all without
    assert outs["gate"][0]["AE_SRDET"] == 0.0 and outs["nogate"][0]["AE_SRDET"] == 1.0
    assert "kept none of the SR network's detail" in notes["gate"] and "kept none" not in notes["nogate"]
    assert outs["gate"][0]["AE_NOISE"] > 0
    assert "gan" in outs["gan"][0]["AE_SRID"] and outs["gan"][0]["AE_SRMOD"] == "gan"
    assert outs["large"][0]["AE_SRID"] == "sr-psnr-16x64" and outs["large"][0]["AE_SRMOD"] == "psnr-large"
    assert outs["gate"][0]["AE_SRID"] == "sr-psnr-8x32"
    result = invoke("run", EXAMPLE, "-o", tmp_path / "default", "--format", "fits", "--no-colorize")
    assert result.exit_code == 0, result.output
    [f] = (tmp_path / "default").glob("*.fits")
    head = fits.getheader(f)
    assert (head["AE_SRMOD"], head["AE_SRID"], head["AE_GATE"]) == ("hst", "sr-hst-8x32", False)
    assert not np.allclose(outs["gate"][1], outs["nogate"][1])
    assert not np.allclose(outs["nogate"][1], outs["large"][1])  # (gated, both are bicubic on this noisy frame)
    from astroenhance.imaging.normalize import Normalizer
    from astroenhance.io.readers import read_frame

    from .conftest import keeps_display_promise

    data = read_frame(EXAMPLE)[0].astype(np.float64)
    for p, rgb in outs.values():  # grey output: block means of luminance, in the input's units, = the input pixel
        norm = Normalizer(p["AE_STRCH"], p["AE_INTVL"], p["AE_VMIN"], p["AE_VMAX"], p["AE_STRA"])
        ok = np.isfinite(data)
        assert ok.mean() > 0.9 and np.all(keeps_display_promise(norm, rgb[1], data, 0.0, 0.0, quantum=1e-5)[ok])


def test_low_memory_mode_runs_in_its_own_process(tmp_path):
    """--low-memory tunes the process's allocator, so it is tested in a process of its own."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "astroenhance", "run", str(EXAMPLE), "-o", str(tmp_path), "--format", "fits",
                          "--low-memory", "-q"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    [out] = tmp_path.glob("*.enhanced.fits")
    with fits.open(out) as h:
        assert h["RED"].data.shape == (400, 400)


def test_run_caps_the_convolution_kernel_cache_unless_told_otherwise(monkeypatch):
    """`run` bounds oneDNN's kernel cache (it grows with a large frame's shapes); a user's own setting wins."""
    import os

    from astroenhance.runner import ONEDNN_CACHE, bound_memory

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    bound_memory()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == ONEDNN_CACHE == "16"
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "256")
    bound_memory()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "256"


def test_report_that_cannot_be_written_is_one_error_line_and_exit_1(tmp_path, monkeypatch):
    """The outputs are written; the report is not: one error line naming the folder, exit 1, no traceback."""
    import astroenhance.batch as batch

    def refuse(outdir, records, settings, shard=None, command=""):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(batch, "write_report", refuse)
    result = invoke("run", EXAMPLE, "-o", tmp_path, "--format", "png", "--no-colorize", "--no-upscale", "-q")
    assert result.exit_code == 1
    assert f"error: {tmp_path}: cannot write the report (Permission denied)" in result.output
    assert "Traceback" not in result.output and "report" not in result.output.splitlines()[-1].split(";")[-1]
    assert (tmp_path / "abell_2744_group_of_galaxies_f105w.enhanced.png").exists()


def test_settings_errors_from_the_library_are_usage_errors_and_others_exit_1(tmp_path):
    """The one error boundary: a setting the library refuses is a usage error (2); a bad file is exit 1."""
    result = invoke("compose", EXAMPLE, "-o", tmp_path)  # one frame: a setting, not a file problem
    assert result.exit_code == 2 and "at least two filter frames" in result.output
    (tmp_path / "junk.fits").write_bytes(b"not a FITS file at all")
    result = invoke("compose", tmp_path / "junk.fits", EXAMPLE, "-o", tmp_path / "o")
    assert result.exit_code == 1 and result.output.startswith("error: ") and "junk.fits" in result.output


def test_any_file_name_is_recorded_escaped_and_no_header_text_is_cut(tmp_path):
    """A name with accents and a newline is processed, written under its real name and recorded escaped; the
    provenance HISTORY keeps every value whole (the input's sha256 included) and no word is split across cards."""
    import hashlib

    from astropy.io import fits

    src = tmp_path / "in" / "Ábell é\nß.fits.gz"
    src.parent.mkdir()
    src.write_bytes(EXAMPLE.read_bytes())
    result = invoke("run", src, "-o", tmp_path / "o", "--format", "fits", "--no-colorize", "-q")
    assert result.exit_code == 0, result.output
    out = tmp_path / "o" / "Ábell é\nß.enhanced.fits"
    h = fits.getheader(out)
    assert h["AE_INPUT"] == "\\xc1bell \\xe9\\n\\xdf.fits.gz"
    history = " ".join(str(c) for c in h["HISTORY"])
    assert hashlib.sha256(src.read_bytes()).hexdigest() in history.split()
    comments = [str(c) for c in h["COMMENT"]]
    assert " ".join(comments).startswith("Generated detail is not measurement:")
    assert " ".join(comments).endswith("use the input frame for photometry and astrometry.")


def test_missing_inputs_and_empty_folders_say_what_to_do(tmp_path):
    """A missing input: one line, exit 1, no output folder, no report.  A folder with frames only in sub-folders:
    the usage error says to add --recursive.  A shard with nothing to do exits 0."""
    result = invoke("run", tmp_path / "nope.fits", "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {tmp_path / 'nope.fits'}: no such file or folder"
    assert not (tmp_path / "out").exists()
    (tmp_path / "tree" / "night1").mkdir(parents=True)
    (tmp_path / "tree" / "night1" / "a.fits.gz").write_bytes(EXAMPLE.read_bytes())
    result = invoke("run", tmp_path / "tree", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "has sub-folders: add --recursive" in result.output
    result = invoke("run", tmp_path / "tree", "-o", tmp_path / "out", "-r", "--shard", "2/2")
    assert result.exit_code == 0 and "nothing to do for shard 2/2: 1 input(s) in all" in result.output
    result = invoke("run", tmp_path / "tree", "-o", tmp_path / "out", "-r", "--glob", "night1/*.fits.gz")
    assert result.exit_code == 2 and "matches file names, not paths" in result.output
    (tmp_path / "geis").mkdir()  # an old WFPC2 archive: GEIS header and data files, no FITS
    for name in ("u2b10101t.c0h", "u2b10101t.c0d"):
        (tmp_path / "geis" / name).write_text("x")
    result = invoke("run", tmp_path / "geis", "-o", tmp_path / "out")
    assert result.exit_code == 2 and "are HST GEIS files: convert them to FITS" in " ".join(result.output.split())
    # beside FITS frames they were passed over without a word: now each exposure is named once, and how to read it
    (tmp_path / "geis" / "frame.fits.gz").write_bytes(EXAMPLE.read_bytes())
    result = invoke("run", tmp_path / "geis", "-o", tmp_path / "out2", "--format", "fits")
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and said.count("GEIS") == 1 and "u2b10101t.c0h: an HST GEIS file" in said


def test_option_values_checked_before_any_work(tmp_path):
    for args in (["--jobs", "0"], ["--jobs", "-3"], ["--batch", "-1"], ["--log-file", tmp_path / "no" / "log.txt"],
                 ["--log-file", tmp_path]):  # (a folder as the log: a traceback)
        result = invoke("run", EXAMPLE, "-o", tmp_path / "out", *args)
        assert result.exit_code == 2 and "Traceback" not in result.output, (args, result.output)
    assert not (tmp_path / "out").exists()


def test_a_log_file_in_the_new_output_folder_is_written_there(tmp_path):
    """-o OUT --log-file OUT/run.log, OUT not made yet: refused as "folder does not exist"; run makes OUT."""
    out = tmp_path / "out"
    result = invoke("run", EXAMPLE, "-o", out, "--log-file", out / "run.log", "--format", "png", "--no-upscale")
    assert result.exit_code == 0, result.output
    assert "done" in (out / "run.log").read_text() and (out / "abell_2744_group_of_galaxies_f105w.enhanced.png").exists()


def test_report_records_the_settings_actually_used(tmp_path):
    result = invoke("run", EXAMPLE, "-o", tmp_path, "--no-colorize", "--no-upscale", "-q")
    assert result.exit_code == 0
    settings = json.loads((tmp_path / "astroenhance-report.json").read_text())["settings"]
    fits_cfg = settings["fits_inputs"]
    assert fits_cfg["stretch"] == "asinh" and fits_cfg["interval"] == "noise:3"
    assert fits_cfg["flux_conserving"] is True and fits_cfg["formats"] == ["fits", "png"]
    assert settings["image_inputs"]["stretch"] == "linear"
    assert fits_cfg["colorize"] is False and settings["image_inputs"]["colorize"] is False
    invoke("run", EXAMPLE, "-o", tmp_path / "default", "--no-upscale", "-q")
    settings = json.loads((tmp_path / "default" / "astroenhance-report.json").read_text())["settings"]
    assert settings["fits_inputs"]["colorize"] is True and settings["image_inputs"]["colorize"] == "grey images only"
    from astroenhance.models.weights import default_weights_dir, find_weights

    calibrated = find_weights(default_weights_dir(), "colorize", "default").extra["chroma_scale"]
    assert settings["fits_inputs"]["color_strength"] == calibrated < 1  # the shipped colorizer's calibrated strength
    assert None not in [v for k, v in fits_cfg.items() if k not in ("weights", "hdu")]


def test_an_output_folder_holding_the_input_folder_says_why_nothing_is_found(tmp_path):
    (tmp_path / "out" / "in").mkdir(parents=True)
    (tmp_path / "out" / "in" / "a.fits.gz").write_bytes(EXAMPLE.read_bytes())
    result = invoke("run", tmp_path / "out" / "in", "-o", tmp_path / "out")
    assert result.exit_code == 2
    assert "lie inside the output folder" in result.output and "never read as input" in result.output


def test_a_truncated_fits_is_one_plain_line(tmp_path):
    """Cut in half: one error line naming the file, the reason said once, no astropy warning leaking."""
    import numpy as np
    from astropy.io import fits

    fits.writeto(tmp_path / "full.fits", np.random.default_rng(0).random((300, 300)).astype(np.float32))
    raw = (tmp_path / "full.fits").read_bytes()
    (tmp_path / "cut.fits").write_bytes(raw[: len(raw) // 2])
    result = invoke("run", tmp_path / "cut.fits", "-o", tmp_path / "o", "--no-colorize")
    assert result.exit_code == 1
    [line] = [x for x in result.output.splitlines() if x.strip()][:1]
    assert line.startswith(f"error: {tmp_path / 'cut.fits'}: ") and line.count("could not be read") <= 1
    assert "WARNING" not in result.output and "Traceback" not in result.output


def test_a_weights_folder_with_only_the_fits_network_serves_fits_frames(tmp_path):
    """Each kind of input loads its own network only when a frame of that kind comes: a folder holding just `hst`
    enhances FITS frames (the report still says what pictures would get), and a picture then fails clearly."""
    from .conftest import REPO

    wdir = tmp_path / "w"
    wdir.mkdir()
    manifest = json.loads((REPO / "weights" / "manifest.json").read_text())
    manifest["weights"] = [e for e in manifest["weights"] if e["id"] == "sr-hst-8x32"]
    (wdir / "manifest.json").write_text(json.dumps(manifest))
    shutil.copy(REPO / "weights" / "sr-hst-8x32.safetensors", wdir)
    result = invoke("run", EXAMPLE, "-o", tmp_path / "o", "--weights", wdir, "--no-colorize", "--format", "fits")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "o" / "astroenhance-report.json").read_text())
    assert report["settings"]["fits_inputs"]["sr_model"] == "hst"
    assert report["settings"]["image_inputs"]["sr_model"] == "psnr"
    picture = tmp_path / "p.png"
    Image.fromarray(np.full((20, 20), 90, np.uint8)).save(picture)
    result = invoke("run", picture, "-o", tmp_path / "o2", "--weights", wdir, "--no-colorize")
    assert result.exit_code == 1 and "no sr weights for mode 'psnr'" in result.output and "--sr-model" in result.output
    # a grey frame's colorizer, which the folder (one retrained network's) lacks: how to go on, both ways
    result = invoke("run", EXAMPLE, "-o", tmp_path / "o3", "--weights", wdir, "--format", "fits")
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "no colorize weights" in said and "--no-colorize" in said
    from astroenhance.models.weights import default_weights_dir

    assert f"into a copy of {default_weights_dir()}" in said


def test_dry_run_lists_the_plan_and_writes_nothing(tmp_path):
    """--dry-run: each input's outputs and shape, the noise map beside it, what is skipped and why, what cannot be
    read (exit 1), and nothing written — not even the output folder; with --skip-existing, finished frames."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(EXAMPLE, src / "field.fits.gz")
    fits.PrimaryHDU(np.full((100, 100), 0.002, np.float32)).writeto(src / "field_rms.fits")
    shutil.copy(FIXTURES / "2chipA.fits.gz", src / "two.fits.gz")
    (src / "text.fits").write_text("hello, not a FITS file")
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("x", "E", array=[1.0])])]).writeto(
        src / "cat.fits")
    out = tmp_path / "out"
    result = invoke("run", src, "-o", out, "--dry-run")
    assert result.exit_code == 1 and not out.exists()
    lines = result.output.splitlines()
    assert (f"enhance {src / 'field.fits.gz'} (noise: rms map field_rms.fits) -> {out / 'field.enhanced.fits'}, "
            f"{out / 'field.enhanced.png'} (400x400)") in lines
    assert any(line.startswith(f"enhance {src / 'two.fits.gz'} -> ") and line.count(".enhanced.") == 4 for line in lines)
    assert any(line.startswith(f"skip {src / 'field_rms.fits'}: the rms map of field.fits.gz") for line in lines)
    assert any(line.startswith(f"skip {src / 'cat.fits'}: not a frame") for line in lines)
    assert any(line.startswith("error: ") and "text.fits" in line for line in lines)
    assert lines[-1] == "dry run: 2 input(s) would be enhanced (6 output file(s)), 2 skipped, 1 unreadable; nothing written"
    assert invoke("run", src / "field.fits.gz", "-o", out, "-q").exit_code == 0
    result = invoke("run", src / "field.fits.gz", src / "two.fits.gz", "-o", out, "--dry-run", "--skip-existing")
    assert result.exit_code == 0
    assert f"skip {src / 'field.fits.gz'}: outputs complete (--skip-existing)" in result.output.splitlines()
    assert result.output.splitlines()[-1].startswith("dry run: 1 input(s) would be enhanced (4 output file(s)), 1 skipped")


def test_ctrl_c_in_compose_is_one_line_and_exit_130(tmp_path, monkeypatch):
    import astroenhance.compose

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(astroenhance.compose, "composite_source", interrupted)
    shutil.copy(EXAMPLE, tmp_path / "second.fits.gz")
    result = invoke("compose", EXAMPLE, tmp_path / "second.fits.gz", "-o", tmp_path / "o")
    assert result.exit_code == 130
    assert result.output.strip().startswith("interrupted:") and len(result.output.strip().splitlines()) == 1


def test_a_log_file_that_is_an_input_is_refused(tmp_path):
    frame = tmp_path / "frame.fits.gz"
    shutil.copy(EXAMPLE, frame)
    before = frame.read_bytes()
    result = invoke("run", frame, "-o", tmp_path / "o", "--log-file", frame)
    assert result.exit_code == 2 and "is one of the inputs" in result.output
    assert frame.read_bytes() == before and not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", [["prepare", str(EXAMPLE.parent)],
                                     ["train", "sr", "--data", str(EXAMPLE.parent), "--iters", "1"],
                                     ["train", "sr-hst", "--truth", str(EXAMPLE), "--iters", "1"]])
def test_an_output_folder_that_is_a_file_is_one_usage_line(tmp_path, command):
    """(They were tracebacks: FileExistsError, NotADirectoryError.)"""
    (tmp_path / "afile").write_text("not a folder")
    result = invoke(*command, "-o", tmp_path / "afile" / "run")
    assert result.exit_code == 2 and "cannot be an output folder" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name", ["out.fits", "M31.enhanced.PNG", "b.fits.gz", "x.tiff"])
@pytest.mark.parametrize("command", [["run", str(EXAMPLE)], ["prepare", str(EXAMPLE.parent)]])
def test_a_new_output_folder_named_like_a_file_is_one_usage_line(tmp_path, command, name):
    """``-o out.fits`` made a folder named out.fits: the user meant a file and found a folder. A folder of that name
    that exists already is still used."""
    result = invoke(*command, "-o", tmp_path / name)
    assert result.exit_code == 2 and "names a folder" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
    (tmp_path / name).mkdir()
    check_outdir(tmp_path / name)  # raises nothing


def test_a_constant_frame_is_enhanced_with_a_note_that_nothing_is_there(tmp_path):
    """A blank FITS frame (every pixel one value): its display of one noise-free value shows the networks' own edge
    response as structure; the output says so (the note is in the report too)."""
    fits.writeto(tmp_path / "blank.fits", np.full((40, 48), 5.0, np.float32))
    result = invoke("run", tmp_path / "blank.fits", "-o", tmp_path / "o", "--format", "fits")
    assert result.exit_code == 0 and "every pixel with data is 5: there is nothing to enhance" in result.output
    [record] = json.loads((tmp_path / "o" / "astroenhance-report.json").read_text())["records"]
    assert any("nothing to enhance" in n for n in record["notes"])
    fits.writeto(tmp_path / "sky.fits", np.random.default_rng(0).normal(5, 1, (40, 48)).astype(np.float32))
    assert "nothing to enhance" not in invoke("run", tmp_path / "sky.fits", "-o", tmp_path / "o2").output


def test_a_pictures_avm_sky_coordinates_are_carried_onto_the_4x_grid(tmp_path):
    """A press image's AVM tags (its sky coordinates) were dropped: the outputs had no WCS. Now the FITS holds them
    rescaled to the 4x grid and the PNG's AVM repeats them; the brightest pixel of the picture lands, by the sky,
    on the output's brightest block (rows the right way up). Tags that describe another size (a crop that kept its
    original's tags) are not carried, and a note says so."""
    import pyavm

    from astroenhance.io.writers import avm_from_wcs

    with Image.open(FIXTURES.parent / "color" / "heic0406a.png") as im:
        pic = im.convert("RGB").crop((0, 0, 96, 80))
    w_in = WCS(naxis=2)
    w_in.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w_in.wcs.crval, w_in.wcs.crpix = [150.1, 2.2], [40.0, 30.0]
    w_in.wcs.cd = np.array([[-2e-5, 1e-5], [1e-5, 2e-5]])
    w_in.wcs.radesys = "ICRS"
    plain = tmp_path / "plain.png"
    pic.save(plain)
    avm_from_wcs(w_in, (80, 96)).embed(str(plain), str(tmp_path / "tagged.png"))
    result = invoke("run", tmp_path / "tagged.png", "-o", tmp_path / "out", "--format", "fits,png")
    assert result.exit_code == 0, result.output
    assert "sky coordinates from its AVM tags" in result.output
    with fits.open(tmp_path / "out" / "tagged.enhanced.fits") as h:
        w_out = WCS(h["RED"].header)
        lum = 0.2126 * h["RED"].data + 0.7152 * h["GREEN"].data + 0.0722 * h["BLUE"].data
    xo, yo = np.meshgrid(np.arange(0, 384, 37.0), np.arange(0, 320, 29.0))
    np.testing.assert_allclose(w_out.all_pix2world(xo, yo, 0),
                               w_in.all_pix2world((xo + 0.5) / 4 - 0.5, (yo + 0.5) / 4 - 0.5, 0), atol=1e-10)
    grey = np.asarray(pic, np.float64) @ [0.2126, 0.7152, 0.0722]
    r, c = np.unravel_index(np.argmax(grey), grey.shape)  # picture rows run top-down, AVM's and FITS's bottom-up
    x, y = (int(round(float(v))) for v in w_out.world_to_pixel(w_in.pixel_to_world(c, 79 - r)))
    block = lum[y - 1:y + 2, x - 1:x + 2]
    assert block.max() >= np.quantile(lum, 0.995)
    w_png = pyavm.AVM.from_image(str(tmp_path / "out" / "tagged.enhanced.png")).to_wcs()
    np.testing.assert_allclose(w_png.all_pix2world(xo, yo, 0), w_out.all_pix2world(xo, yo, 0), atol=1e-9)
    # the Python API gives the WCS of its arrays' rows as they are (a picture's: top-down)
    from astroenhance import EnhanceConfig, Enhancer, read_frame

    data, w_read, _ = read_frame(tmp_path / "tagged.png")
    np.testing.assert_allclose(w_read.all_pix2world(xo / 4, yo / 4, 0), w_in.all_pix2world(xo / 4, 79 - yo / 4, 0),
                               atol=1e-10)
    w_api = Enhancer(EnhanceConfig(device="cpu")).enhance_frame(tmp_path / "tagged.png").wcs
    np.testing.assert_allclose(w_api.all_pix2world(xo, yo, 0), w_out.all_pix2world(xo, 319 - yo, 0), atol=1e-10)
    # a JPEG's and a TIFF's tags (APP1 segment, tag 700) likewise
    import tifffile

    pic.save(tmp_path / "plain.jpg")
    avm_from_wcs(w_in, (80, 96)).embed(str(tmp_path / "plain.jpg"), str(tmp_path / "tagged_jpg.jpg"))
    xmp = avm_from_wcs(w_in, (80, 96)).to_xmp()
    tifffile.imwrite(tmp_path / "tagged_tif.tif", np.asarray(pic), photometric="rgb",
                     extratags=[(700, "B", 0, xmp.encode() if isinstance(xmp, str) else xmp, True)])
    for ext in ("jpg", "tif"):
        assert invoke("run", tmp_path / f"tagged_{ext}.{ext}", "-o", tmp_path / "out", "--format", "fits").exit_code == 0
        with fits.open(tmp_path / "out" / f"tagged_{ext}.enhanced.fits") as h:
            np.testing.assert_allclose(WCS(h["RED"].header).all_pix2world(xo, yo, 0), w_out.all_pix2world(xo, yo, 0),
                                       atol=1e-10)
    # tags of a larger picture, kept on a crop: not carried
    avm_from_wcs(w_in, (160, 192)).embed(str(plain), str(tmp_path / "stale.png"))
    result = invoke("run", tmp_path / "stale.png", "-o", tmp_path / "out2", "--format", "fits")
    assert result.exit_code == 0 and "describe a picture of 192x160" in " ".join(result.output.split())
    with fits.open(tmp_path / "out2" / "stale.enhanced.fits") as h:
        assert not WCS(h["RED"].header).has_celestial


def test_run_over_its_own_picture_outputs_skips_them(example_run, tmp_path):
    """A folder of run's outputs run again: the PNG, JPEG and TIFF were enhanced as
    colour pictures (their generated detail made 4x again), and the FITS and pictures of one frame were refused as
    writing each other's outputs, blaming the FITS that was skipped. Every output is skipped now, saying what it is;
    a picture output named on the command line is one line, nothing written."""
    _, out = example_run
    result = invoke("run", out, "-o", tmp_path / "again")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "0 done, 4 skipped, 0 failed of 4 input(s)" in said and "already written" not in said
    for ext in ("png", "jpg", "tif"):
        assert f"abell_2744_group_of_galaxies_f105w.enhanced.{ext}: not a frame: an astroenhance output (made from " \
               "abell_2744_group_of_galaxies_f105w.fits.gz" in said
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["astroenhance-report.json"]
    named = invoke("run", out / "abell_2744_group_of_galaxies_f105w.enhanced.png", "-o", tmp_path / "named")
    assert named.exit_code == 1 and "an astroenhance output" in named.output
    assert not list((tmp_path / "named").glob("*.png"))


def test_the_report_records_the_tool_the_weights_and_when(example_run):
    """A run's report held its settings only; now also the tool's version, the networks it used (id and sha256, as
    each output records them), when it ran and the command."""
    from astroenhance import __version__

    _, out = example_run
    report = json.loads((out / "astroenhance-report.json").read_text())
    assert report["settings"]["tool"] == f"astroenhance {__version__}"
    with fits.open(out / "abell_2744_group_of_galaxies_f105w.enhanced.fits") as h:
        sr, colorizer = h[0].header["AE_SRW"], h[0].header["AE_COW"]
    used = report["settings"]["weights"]
    assert used["sr_fits"].split()[1] == sr and used["colorizer"].split()[1] == colorizer
    assert used["sr_images"].startswith("sr-psnr-8x32 ")
    run = report["runs"][-1]
    assert run["utc"].endswith("Z")
    assert run["command"] == shlex.join(["astroenhance", "run", str(EXAMPLE), "--output", str(out), "--format",
                                         "fits,png,tiff,jpeg", "--quiet"])


def test_the_report_records_the_command_that_ran_not_the_processes_arguments(tmp_path, monkeypatch):
    """The report's command was `sys.argv`: where `run` is called in-process (a script, a notebook, this suite's
    runner) that is another program's arguments. Now it is the command as given — every argument, flags set or
    turned off, choices, repeated inputs, quoted for a shell; defaults left out."""
    monkeypatch.setattr(sys, "argv", ["python", "my_script.py", "--verbose"])
    src = tmp_path / "in dir" / "a frame.fits"
    src.parent.mkdir()
    with fits.open(HRC) as h:
        fits.writeto(src, h["SCI"].data[:40, :48].astype("f4"))
    out = tmp_path / "out"
    result = invoke("run", src, src, "-o", out, "--no-colorize", "--sr-model", "psnr", "--fill-holes", "0", "-q",
                    "--format", "fits")
    assert result.exit_code == 0, result.output
    command = json.loads((out / "astroenhance-report.json").read_text())["runs"][-1]["command"]
    assert shlex.split(command) == ["astroenhance", "run", str(src), str(src), "--output", str(out), "--format",
                                    "fits", "--sr-model", "psnr", "--no-colorize", "--quiet", "--fill-holes", "0"]


def test_a_file_astroenhance_did_not_write_is_never_replaced(tmp_path):
    """An output name taken by the user's own file (notes saved as x.enhanced.png, an image of theirs named like a
    mosaic) was replaced without a word; now `run`, `mosaic` and `compose` leave it as it was, write nothing and say
    so. Their own earlier outputs are made again as before."""
    src = tmp_path / "in" / "a.fits"
    src.parent.mkdir()
    shutil.copy(FIXTURES / "reference_drizzlepac_gaussian_drz_sci.fits", src)
    out = tmp_path / "out"
    assert invoke("run", src, "-o", out).exit_code == 0
    assert invoke("run", src, "-o", out).exit_code == 0  # its own outputs: made again
    mine = out / "a.enhanced.png"
    mine.write_text("my notes")
    (out / "a.enhanced.fits").unlink()
    dry = invoke("run", src, "-o", out, "--dry-run")
    assert dry.exit_code == 1 and "1 refused" in dry.output and f"{mine} exists and is not" in dry.output
    result = invoke("run", src, "-o", out)
    assert result.exit_code == 1 and "exists and is not an astroenhance output" in result.output
    assert mine.read_text() == "my notes" and not (out / "a.enhanced.fits").exists()  # nothing written
    frames = [FIXTURES.parent / "cfhtls" / f"CFHTLS-test_{b}.fits" for b in "gr"]
    for command in ("mosaic", "compose"):
        mosaic = tmp_path / command
        mosaic.mkdir()
        theirs = mosaic / f"m.{command if command == 'mosaic' else 'composite'}.png"
        theirs.write_bytes(b"not ours")
        result = invoke(command, *frames, "-o", mosaic, "--name", "m")
        assert result.exit_code == 1 and "exists and is not an astroenhance output" in result.output, result.output
        assert theirs.read_bytes() == b"not ours" and sorted(p.name for p in mosaic.iterdir()) == [theirs.name]
        theirs.unlink()
        assert invoke(command, *frames, "-o", mosaic, "--name", "m").exit_code == 0
        assert invoke(command, *frames, "-o", mosaic, "--name", "m").exit_code == 0  # its own: made again


def test_a_weights_folder_with_only_the_networks_a_run_needs_still_gets_its_report(tmp_path):
    """The report names every network a run's settings would use; a folder of one's own weights holding only the
    FITS network and the colorizer runs a FITS frame, and its report says the picture network is not there."""
    wdir = tmp_path / "w"
    wdir.mkdir()
    manifest = json.loads((REPO / "weights" / "manifest.json").read_text())
    manifest["weights"] = [e for e in manifest["weights"] if e["mode"] == "hst" or e["task"] == "colorize"]
    (wdir / "manifest.json").write_text(json.dumps(manifest))
    for e in manifest["weights"]:
        shutil.copy(REPO / "weights" / e["file"], wdir / e["file"])
    result = invoke("run", FIXTURES / "reference_drizzlepac_gaussian_drz_sci.fits", "-o", tmp_path / "o",
                    "--weights", wdir)
    assert result.exit_code == 0, result.output
    used = json.loads((tmp_path / "o" / "astroenhance-report.json").read_text())["settings"]["weights"]
    assert used["sr_fits"].startswith("sr-hst-8x32 ") and used["sr_images"] == f"none in {wdir}"


def test_a_url_given_as_an_input_says_to_download_it(tmp_path):
    """An archive URL pasted as the input said "https:/mast.stsci.edu/...: no such file" (one slash: the path's
    spelling); now it names the URL and says that astroenhance reads local files and how to fetch one."""
    url = "https://mast.stsci.edu/api/v0.1/Download/file?uri=mast:HST/product/j8bt06nyq_flt.fits"
    for args in (["run", url, "-o", tmp_path / "o"], ["compose", url, EXAMPLE, HRC, "-o", tmp_path / "c"],
                 ["check", "s3://stpubdata/hst/x_flt.fits"]):
        result = invoke(*args)
        said = " ".join(result.output.split())
        assert result.exit_code in (1, 2) and "a URL; astroenhance reads local files: download it first" in said, said
        assert (url if args[0] != "check" else "s3://stpubdata/hst/x_flt.fits") in said
    result = invoke("run", tmp_path / "nothere.fits", "-o", tmp_path / "o")
    assert result.exit_code == 1 and "nothere.fits: no such file" in result.output and "URL" not in result.output


@pytest.mark.parametrize("command", [["train", "sr", "--data", str(EXAMPLE.parent), "--crop", "32", "--batch", "2",
                                      "--val-every", "1"],
                                     ["train", "sr-hst", "--truth", str(EXAMPLE), "--crop", "16", "--batch", "2",
                                      "--val-every", "1", "--synthetic", "0"]])
def test_a_full_disk_while_training_is_one_line_and_keeps_the_checkpoint_before(tmp_path, monkeypatch, command):
    """A full disk while a checkpoint was written ended training with torch's traceback ("unexpected pos 163392 vs
    163344") and left its temporary file behind. Now it is one line naming the checkpoint, saying the one written
    before is kept (it still loads) and to continue with --resume; no temporary is left."""
    import torch

    from astroenhance.models.weights import read_checkpoint

    save, saved = torch.save, []

    def full_on_second(state, f):
        saved.append(state["step"])
        if len(saved) == 2:
            Path(f).write_bytes(b"PK\x03\x04 half")  # what a full disk leaves: a file cut short
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 163392 vs 163344")
        return save(state, f)

    monkeypatch.setattr(torch, "save", full_on_second)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
    out = tmp_path / "run"
    result = invoke(*command, "--iters", "3", "-o", out)
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in said, said
    assert (f"{out / 'ckpt.pt'}: writing the checkpoint at step 2 failed (no space left on the device); the "
            "checkpoint written before is kept: free space, then continue with --resume") in said
    assert sorted(p.name for p in out.iterdir()) == ["ckpt.pt", "ckpt.pt.sha256", "config.json", "log.csv"]
    assert read_checkpoint(out / "ckpt.pt")["step"] == 1  # (its sha256 beside it is the one it was written with)


def test_a_log_file_or_json_report_on_a_full_disk_is_one_line(tmp_path, monkeypatch):
    """`run --log-file` on a disk that filled up ended the run with a traceback (OSError from the log's flush, the
    frames after it not enhanced); `evaluate --json` likewise. Now the run goes on, saying once that the log cannot
    be written; a --json report that cannot be written is one line, exit 1, no temporary left."""
    import errno

    frames = []
    for i in range(2):
        frames.append(tmp_path / f"f{i}.fits")
        fits.writeto(frames[-1], np.random.default_rng(i).normal(10, 1, (40, 48)).astype(np.float32))
    result = invoke("run", *frames, "-o", tmp_path / "o", "--log-file", "/dev/full")  # (every write: ENOSPC)
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and "2 done, 0 skipped, 0 failed" in said and "Traceback" not in said, said
    assert said.count("--log-file /dev/full: cannot be written from here on (No space left on device)") == 1
    write_text = Path.write_text

    def full(self, *args, **kwargs):
        if self.name.endswith(".json") or ".astroenhance-tmp-" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    result = invoke("check", tmp_path / "o", "--json", tmp_path / "report.json")
    assert result.exit_code == 1 and "report.json: cannot write the report (No space left on device)" in result.output
    assert "Traceback" not in result.output and sorted(p.name for p in tmp_path.iterdir()) == ["f0.fits", "f1.fits", "o"]


def test_a_report_or_figure_in_a_read_only_folder_is_refused_before_the_work(tmp_path, monkeypatch):
    """`evaluate --figure` (or --json) into a folder that cannot be written in measured for as long as the protocol
    takes and then failed to write; `check --json` likewise after reading every output. Now refused at once."""
    import os

    import astroenhance.cli as cli

    frozen = tmp_path / "frozen"
    frozen.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: Path(p) != frozen and access(p, mode, **k))
    monkeypatch.setattr(cli, "_evaluate_hst", lambda *a, **k: pytest.fail("measured before refusing"))
    for option in ("--figure", "--json"):
        result = invoke("evaluate", "--task", "hst", "--data", EXAMPLE.parent, option, frozen / "out")
        assert result.exit_code == 2, result.output
        assert f"{option} {frozen / 'out'}: folder {frozen} cannot be written in" in " ".join(result.output.split())
    result = invoke("check", EXAMPLE, "--json", frozen / "c.json")
    assert result.exit_code == 2 and "cannot be written in" in result.output
    # a log is appended where it is: one that exists and can be written (/dev/stderr, in a folder not one's own) is
    # taken; one that does not exist yet needs its folder
    log = frozen / "run.log"
    log.write_text("earlier\n")
    result = invoke("run", EXAMPLE, "-o", tmp_path / "o", "--log-file", log)
    assert result.exit_code == 0, result.output
    assert log.read_text().startswith("earlier\n") and "1 done" in log.read_text()
    result = invoke("run", EXAMPLE, "-o", tmp_path / "o2", "--log-file", frozen / "new.log")
    assert result.exit_code == 2 and f"folder {frozen} cannot be written in" in " ".join(result.output.split())


def test_settings_from_the_environment_are_checked_and_named(tmp_path, monkeypatch):
    """ASTROENHANCE_MAX_PIXELS=abc was ignored without a word (the default limit kept); ASTROENHANCE_WEIGHTS naming
    a folder that does not exist said "<dir>/manifest.json: no weights manifest ... set ASTROENHANCE_WEIGHTS",
    though it was set. Now the first is one usage line before any work, the second names the variable."""
    monkeypatch.setenv("ASTROENHANCE_MAX_PIXELS", "abc")
    result = invoke("run", EXAMPLE, "-o", tmp_path / "o")
    assert result.exit_code == 2 and "ASTROENHANCE_MAX_PIXELS='abc': give a whole number of pixels" in result.output
    assert not (tmp_path / "o").exists()
    monkeypatch.setenv("ASTROENHANCE_MAX_PIXELS", "1_000_000")  # (as Python writes numbers: taken)
    monkeypatch.setenv("ASTROENHANCE_WEIGHTS", str(tmp_path / "nowhere"))
    result = invoke("run", EXAMPLE, "-o", tmp_path / "o")
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and (f"{tmp_path / 'nowhere'}: no such folder (ASTROENHANCE_WEIGHTS="
                                      f"{tmp_path / 'nowhere'} names it: unset it to use the shipped weights)") in said


@pytest.mark.parametrize("task", [["sr-hst", "--truth", str(EXAMPLE), "--synthetic", "0", "--crop", "16"],
                                  ["sr", "--data", str(EXAMPLE.parent), "--crop", "32"]])
def test_training_stopped_by_sigterm_keeps_a_checkpoint_at_the_step_reached(tmp_path, task):
    """SIGTERM (SLURM's time limit, before its SIGKILL) killed `train` at once: every step since the last checkpoint
    lost, no word. Now it saves the checkpoint at the step reached, says where, and exits 143; --resume goes on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import torch

    out = tmp_path / "run"
    args = [sys.executable, "-m", "astroenhance.cli", "train", *task, "--batch", "2", "--val-every", "20",
            "--iters", "200000", "-o", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 120  # (the log is flushed with the first checkpoint, at step 20: training runs)
    while time.time() < deadline and not ((out / "log.csv").exists() and
                                          len((out / "log.csv").read_text().splitlines()) > 1):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    said = proc.communicate(timeout=60)[0]
    assert proc.returncode == 143, said
    step = torch.load(out / "ckpt.pt", weights_only=True)["step"]
    assert step >= 20 and f"terminated (SIGTERM): checkpoint at step {step} kept in {out / 'ckpt.pt'}" in " ".join(
        said.split())
    assert sorted(p.name for p in out.iterdir()) == ["ckpt.pt", "ckpt.pt.sha256", "config.json", "log.csv"]
    from astroenhance.models.weights import read_checkpoint

    assert read_checkpoint(out / "ckpt.pt")["step"] == step  # (the one kept agrees with its sha256)


@pytest.mark.skipif(os.name != "posix", reason="file names as bytes (POSIX)")
def test_a_file_name_that_is_not_utf8_is_enhanced_and_recorded_escaped(tmp_path):
    """A name the file system holds in bytes that are not UTF-8 (a Latin-1 archive: b'm\\xfc.fits') stopped the whole
    run with a traceback (UnicodeEncodeError: the name's length in bytes, then the pictures' provenance text). Now
    the frame is enhanced into outputs of the same bytes, and its name is recorded escaped (\\udcfc)."""
    folder = tmp_path / "in"
    folder.mkdir()
    try:
        shutil.copy(EXAMPLE, folder / os.fsdecode(b"m\xfc.fits.gz"))
    except OSError:  # (macOS's APFS, for one, takes UTF-8 names only: no such file can be met there)
        pytest.skip("this file system takes UTF-8 file names only")
    out = tmp_path / "out"
    result = invoke("run", folder, "-o", out, "--format", "fits,png,jpeg,tiff", "-q")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    made = sorted(os.fsencode(p.name) for p in out.glob("m*"))
    assert made == [b"m\xfc.enhanced." + ext for ext in (b"fits", b"jpg", b"png", b"tif")]
    with Image.open(out / os.fsdecode(b"m\xfc.enhanced.png")) as im:
        assert "input=m\\udcfc.fits.gz;" in im.info["Comment"]
    assert fits.getval(out / os.fsdecode(b"m\xfc.enhanced.fits"), "AE_INPUT") == "m\\udcfc.fits.gz"


def test_evaluate_on_a_folder_of_the_other_kind_says_which_task_scores_it(tmp_path):
    """`evaluate --task sr` on a folder of FITS frames said only "no images in", and `--task hst` on pictures
    "no FITS frames in": each now names the task that takes what the folder holds."""
    frames, pictures = tmp_path / "frames", tmp_path / "pictures"
    frames.mkdir()
    pictures.mkdir()
    shutil.copy(EXAMPLE, frames)
    shutil.copy(next(COLOR.glob("*.png")), pictures)
    said = invoke("evaluate", "--task", "sr", "--data", frames)
    assert said.exit_code == 2 and "no images in" in said.output and "--task hst" in said.output
    said = invoke("evaluate", "--task", "hst", "--data", pictures)
    assert said.exit_code == 2 and "no FITS frames in" in said.output and "--task sr" in said.output


def test_an_export_into_a_copy_of_the_shipped_weights_is_what_run_then_uses(tmp_path):
    """The way to run one's own retrained network beside the shipped others: export it into a copy of the shipped
    folder. Its entry joined the manifest after the shipped one of the same mode, and `run` took the first: the
    shipped network, silently. The newest export of a mode now answers for it; `weights export` says so and
    `weights list` shows the earlier one unused."""
    assert invoke("train", "sr-hst", "--truth", EXAMPLE, "--crop", "16", "--batch", "2", "--iters", "1", "-o",
                  tmp_path / "run").exit_code == 0
    mine = tmp_path / "mine"
    shutil.copytree(REPO / "weights", mine)
    said = invoke("weights", "export", tmp_path / "run", "--id", "my-hst", "--weights-dir", mine)
    assert said.exit_code == 0 and "my-hst now answers --sr-model hst" in " ".join(said.output.split())
    listed = {line.split()[0]: line for line in invoke("weights", "list", "--weights", mine).output.splitlines()}
    assert "none (my-hst is hst's)" in listed["sr-hst-8x32"] and "--sr-model hst (FITS default)" in listed["my-hst"]
    assert invoke("run", EXAMPLE, "-o", tmp_path / "o", "--weights", mine, "--format", "fits").exit_code == 0
    with fits.open(tmp_path / "o" / "abell_2744_group_of_galaxies_f105w.enhanced.fits") as h:
        assert h[0].header["AE_SRID"] == "my-hst" and h[0].header["AE_COID"] == "colorizer-resenc-mnv2"

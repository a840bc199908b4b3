"""`astroenhance check`: an output's integrity (FITS checksums, PNG CRCs and pixel stream) and what it records made
it (input by sha256, weights against the installed ones)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from astroenhance.check import check_output, fits_integrity, png_integrity
from astroenhance.cli import app

DATA = Path(__file__).parent / "data"
HRC = DATA / "fits" / "j8bt06nyq_flt_crop.fits"
runner = CliRunner()


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """`run`'s FITS and PNG of a 60x50 cut-out of the HRC crop (its SCI, ERR and DQ), and the frame."""
    folder = tmp_path_factory.mktemp("check")
    frame = folder / "in" / "f_flt.fits"
    frame.parent.mkdir()
    with fits.open(HRC) as h:
        hdus = [fits.PrimaryHDU(header=h[0].header)]
        for ext in ("SCI", "ERR", "DQ"):
            hdus.append(fits.ImageHDU(h[ext].data[40:90, 50:110], h[ext].header, name=ext))
        fits.HDUList(hdus).writeto(frame)
    r = runner.invoke(app, ["run", str(frame), "-o", str(folder / "out"), "--format", "fits,png", "-q",
                            "--no-clean-cosmic-rays"])
    assert r.exit_code == 0, r.output
    return frame, folder / "out" / "f_flt.enhanced.fits", folder / "out" / "f_flt.enhanced.png"


def _said(result) -> str:
    return " ".join(result.output.split())


def test_an_intact_output_is_said_so_with_what_made_it(made):
    """Both outputs verify and name their frame, found by content among the files given, and the installed
    weights; exit 0."""
    frame, fits_out, png_out = made
    r = runner.invoke(app, ["check", str(fits_out), str(png_out), "--inputs", str(frame.parent)])
    said = _said(r)
    assert r.exit_code == 0, r.output
    assert f"ok {fits_out} (FITS: 6 HDUs, their checksums verify)" in said
    assert f"ok {png_out} (PNG: its chunks' CRCs and compressed pixels verify)" in said
    assert said.count(f"input f_flt.fits: the same bytes as {frame}") == 2
    assert said.count("sr-hst-8x32 (sha256") == 2 and "NOT the installed" not in said
    assert "checked 2 output(s): 2 intact and made from the files given" in said


def test_an_output_with_bytes_after_its_hdus_still_says_what_made_it(made, tmp_path):
    """Bytes appended after an output's HDUs (a block that begins none) are a note; its HDUs still verify and its
    provenance is read from them — `check` said "cannot be read (Header missing END card.)" and nothing else."""
    frame, fits_out, _ = made
    padded = tmp_path / "f_flt.enhanced.fits"
    padded.write_bytes(fits_out.read_bytes() + np.full(720, -0.1, ">f4").tobytes())
    said = _said(runner.invoke(app, ["check", str(padded), "--inputs", str(frame.parent)]))
    assert f"ok {padded} (FITS: 6 HDUs, their checksums verify)" in said, said
    assert "note: bytes after the last HDU that are not an HDU" in said
    assert f"input f_flt.fits: the same bytes as {frame}" in said and "sr-hst-8x32 (sha256" in said


def test_a_json_report_says_what_the_lines_say(made, tmp_path):
    """--json: per output whether it is intact and verified, its problems, the inputs it records and the file each
    is (with --inputs), its weights and whether they are the installed ones, every provenance entry; a damaged
    output's problems too. A folder for --json is a usage error before anything is read."""
    frame, fits_out, png_out = made
    bad = tmp_path / "bad.enhanced.fits"
    bad.write_bytes(fits_out.read_bytes()[:-5000])
    report = tmp_path / "report.json"
    r = runner.invoke(app, ["check", str(fits_out), str(png_out), str(bad), "--inputs", str(frame), "--json",
                            str(report), "-q"])
    assert r.exit_code == 1, r.output
    got = json.loads(report.read_text())
    assert (got["checked"], got["intact"], got["unverified"], got["failed"]) == (3, 2, 0, 1)
    ok, pic, damaged = got["outputs"]
    assert ok["ok"] and ok["verified"] and ok["kind"] == "FITS" and ok["problems"] == []
    assert {"name": "f_flt.fits", "sha256": ok["provenance"]["input_sha256"], "found": str(frame)} in ok["inputs"]
    assert {(w["id"], w["installed"]) for w in ok["weights"]} == {("sr-hst-8x32", True),
                                                                   ("colorizer-resenc-mnv2", True)}
    assert ok["provenance"]["AE_SRMOD"] == "hst" and ok["provenance"]["sr_model"] == "hst"
    assert pic["kind"] == "PNG" and pic["ok"] and pic["provenance"]["color_strength"] == "0.1"
    assert not damaged["ok"] and damaged["problems"][0].startswith("HDU 5 (FLUXERR): cut short")
    r = runner.invoke(app, ["check", str(fits_out), "--json", str(tmp_path)])
    assert r.exit_code == 2 and "is a folder" in _said(r)


@pytest.mark.parametrize("where", ["data", "header", "cut short"])
def test_a_changed_or_cut_fits_output_fails_naming_the_hdu(made, tmp_path, where):
    """One bit flipped in FLUX's data, a card's value changed in the primary header (a colour strength raised by
    hand), or the file cut short: FAILED, naming the HDU, exit 1 — and the original output still passes."""
    _, fits_out, _ = made
    bad = tmp_path / "x.enhanced.fits"
    raw = bytearray(fits_out.read_bytes())
    if where == "data":
        with fits.open(fits_out) as h:
            start = h.fileinfo(4)["datLoc"]  # FLUX
        raw[start + 1000] ^= 0x01
    elif where == "header":
        at = raw.index(b"AE_COSTR= ")
        value = raw[at:at + 80].decode()
        raw[at:at + 80] = value.replace("0.1 ", "0.9 ").encode()
    else:
        raw = raw[:len(raw) - 5000]
    bad.write_bytes(bytes(raw))
    r = runner.invoke(app, ["check", str(bad)])
    said = _said(r)
    assert r.exit_code == 1, r.output
    expected = {"data": "HDU 4 (FLUX): its data's checksum does not match",
                "header": "HDU 0 (PRIMARY): its header's checksum does not match",
                "cut short": "HDU 5 (FLUXERR): cut short"}[where]
    assert f"FAILED {bad}: {expected}" in said, said
    assert "checked 1 output(s): 0 intact, 1 with problems" in said
    assert runner.invoke(app, ["check", str(fits_out)]).exit_code == 0


def test_an_output_cut_between_two_hdus_is_cut_short_and_made_again(made, tmp_path):
    """A copy of an output that ends exactly where an HDU ends (FLUX and FLUXERR lost) verified HDU by HDU, and
    `run --skip-existing` took it as complete (RED, GREEN, BLUE whole). The primary header's NEXTEND says how many
    extensions follow: check fails it, and `output_is_complete` does not trust it."""
    from astroenhance.io.writers import output_is_complete

    frame, fits_out, _ = made
    with fits.open(fits_out) as h:
        assert h[0].header["NEXTEND"] == len(h) - 1
        end = h.fileinfo(3)["datLoc"] + h.fileinfo(3)["datSpan"]  # the end of BLUE
        shape = h["RED"].shape
    bad = tmp_path / "x.enhanced.fits"
    bad.write_bytes(fits_out.read_bytes()[:end])
    r = runner.invoke(app, ["check", str(bad)])
    assert r.exit_code == 1 and f"FAILED {bad}: cut short after HDU 3: the primary header says" in _said(r), r.output
    assert output_is_complete(fits_out, shape) and not output_is_complete(bad, shape)


def test_a_science_mosaic_cut_after_its_science_hdu_is_cut_short(made, tmp_path):
    """`mosaic`'s science FITS (the co-added data in the primary, FOOTPRINT after it) says NEXTEND too: a copy
    that lost FOOTPRINT is cut short."""
    frame, _, _ = made
    r = runner.invoke(app, ["mosaic", str(frame), "-o", str(tmp_path / "m"), "--format", "fits"])
    assert r.exit_code == 0, r.output
    (mosaic,) = (tmp_path / "m").glob("*.fits")
    with fits.open(mosaic) as h:
        assert [x.name for x in h] == ["PRIMARY", "FOOTPRINT"] and h[0].header["NEXTEND"] == 1
        end = h.fileinfo(0)["datLoc"] + h.fileinfo(0)["datSpan"]
    assert runner.invoke(app, ["check", str(mosaic)]).exit_code == 0
    bad = tmp_path / "cut.mosaic.fits"
    bad.write_bytes(mosaic.read_bytes()[:end])
    r = runner.invoke(app, ["check", str(bad)])
    assert r.exit_code == 1 and "cut short after HDU 0" in _said(r), r.output


def test_an_output_made_from_another_frame_fails(made, tmp_path):
    """--inputs given files none of which is the output's frame (the frame changed since): FAILED, naming the input
    as the output records it."""
    frame, fits_out, _ = made
    other = tmp_path / "f_flt.fits"
    with fits.open(frame) as h:
        h["SCI"].data[0, 0] += 1.0
        h.writeto(other)
    r = runner.invoke(app, ["check", str(fits_out), "--inputs", str(other)])
    assert r.exit_code == 1 and "its input f_flt.fits (sha256" in _said(r) and "is none of the files given" in _said(r)


def test_weights_other_than_the_installed_are_said(made, tmp_path):
    """An output made with weights whose sha256 is not the installed ones' (retrained, another version) is
    intact, and says so."""
    from astroenhance.models.weights import default_weights_dir

    _, fits_out, _ = made
    other = tmp_path / "weights"
    shutil.copytree(default_weights_dir(), other)
    manifest = json.loads((other / "manifest.json").read_text())
    entries = manifest["weights"] if isinstance(manifest, dict) else manifest
    for e in entries:
        if e["id"] == "sr-hst-8x32":
            e["sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    r = runner.invoke(app, ["check", str(fits_out), "--weights", str(other)])
    assert r.exit_code == 0, r.output
    assert "sr-hst-8x32 (sha256" in _said(r) and "NOT the installed weights" in _said(r)


def test_a_folder_means_the_outputs_in_it(made, tmp_path):
    """A folder: the astroenhance outputs in it and below (not the frames beside them, nor a half-written
    temporary); none at all is a usage error."""
    frame, fits_out, png_out = made
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(fits_out, folder / "sub" / fits_out.name)
    shutil.copy(png_out, folder / png_out.name)
    shutil.copy(frame, folder / frame.name)
    shutil.copy(png_out, folder / f".{png_out.name}.astroenhance-tmp-host~1~2-ab")
    r = runner.invoke(app, ["check", str(folder), "-q"])
    assert r.exit_code == 0 and "checked 2 output(s): 2 intact" in _said(r), r.output
    r = runner.invoke(app, ["check", str(frame.parent)])
    assert r.exit_code == 2 and "no astroenhance outputs to check" in _said(r)
    r = runner.invoke(app, ["check", str(frame)])  # named: checked, and not one
    assert r.exit_code == 1 and "not an astroenhance output" in _said(r)


@pytest.mark.parametrize("fmt, suffix, cut", [("jpeg", "jpg", "cannot be decoded: image file is truncated"),
                                               ("tiff", "tif", "cannot be decoded: cut short in strip 1 of 1")])
def test_a_picture_without_checksums_is_counted_apart(made, tmp_path, fmt, suffix, cut):
    """A JPEG or TIFF carries no checksum: decoded (in bounded memory: a JPEG at 1/8 scale, a TIFF by strips) and
    said so, counted as readable, not as verified intact; cut short, it fails."""
    frame, _, _ = made
    r = runner.invoke(app, ["run", str(frame), "-o", str(tmp_path / "j"), "--format", fmt, "-q"])
    assert r.exit_code == 0, r.output
    picture = tmp_path / "j" / f"f_flt.enhanced.{suffix}"
    r = runner.invoke(app, ["check", str(picture)])
    said = _said(r)
    assert r.exit_code == 0 and f"{fmt.upper()} carries no checksum: decoded, not verified" in said, said
    assert "checked 1 output(s): 0 intact, 1 readable but without checksums to verify" in said
    picture.write_bytes(picture.read_bytes()[:-3000])
    r = runner.invoke(app, ["check", str(picture)])
    assert r.exit_code == 1 and cut in _said(r), _said(r)


def test_a_mosaic_records_its_inputs_for_check(tmp_path):
    """A science mosaic and a colour mosaic of outputs name their inputs by sha256: check finds them among the files
    given (the colour mosaic: the outputs, each by content)."""
    frames = []
    with fits.open(HRC) as h:
        for k, (y0, x0) in enumerate([(0, 0), (60, 80)]):
            hdus = [fits.PrimaryHDU(header=h[0].header)]
            for ext in ("SCI", "ERR", "DQ"):
                hdr = h[ext].header.copy()
                if "CRPIX1" in hdr:
                    hdr["CRPIX1"], hdr["CRPIX2"] = hdr["CRPIX1"] - x0, hdr["CRPIX2"] - y0
                hdus.append(fits.ImageHDU(h[ext].data[y0:y0 + 80, x0:x0 + 90], hdr, name=ext))
            frames.append(tmp_path / "in" / f"p{k}_flt.fits")
            frames[-1].parent.mkdir(exist_ok=True)
            fits.HDUList(hdus).writeto(frames[-1])
    r = runner.invoke(app, ["mosaic", *map(str, frames), "-o", str(tmp_path / "sci"), "--format", "fits"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["run", *map(str, frames), "-o", str(tmp_path / "e"), "--format", "fits", "-q"])
    assert r.exit_code == 0, r.output
    outs = sorted((tmp_path / "e").glob("*.enhanced.fits"))
    r = runner.invoke(app, ["mosaic", *map(str, outs), "-o", str(tmp_path / "col"), "--format", "fits"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["check", str(tmp_path / "sci"), str(tmp_path / "col"), "--inputs", str(tmp_path / "in"),
                            "--inputs", str(tmp_path / "e")])
    said = _said(r)
    assert r.exit_code == 0, r.output
    assert "a science mosaic in the data's units" in said
    for k in (0, 1):
        assert f"input p{k}_flt.fits: the same bytes as {frames[k]}" in said
        assert f"input p{k}_flt.enhanced.fits: the same bytes as {outs[k]}" in said
    r = runner.invoke(app, ["check", str(tmp_path / "sci"), "--inputs", str(frames[0])])  # one of the two given
    assert r.exit_code == 1 and "its input p1_flt.fits" in _said(r)


def test_check_of_a_colour_mosaic_whose_frames_were_smoothed_to_psfs_of_their_own(tmp_path):
    """`check` of `mosaic --enhance` of two CFHTLS bands ended in a traceback ("could not convert string to float:
    'mixed'"): the frames' display smoothing (each to the PSF measured on its own stars) differs, and the mosaic
    records that as 'mixed'. Now it says so."""
    cfhtls = Path(__file__).parent / "data" / "cfhtls"
    r = runner.invoke(app, ["mosaic", str(cfhtls / "CFHTLS-test_g.fits"), str(cfhtls / "CFHTLS-test_r.fits"), "-o",
                            str(tmp_path), "--enhance", "--format", "fits"])
    assert r.exit_code == 0, r.output
    assert fits.getheader(tmp_path / "mosaic.mosaic.fits")["AE_PSFSM"] == "mixed"
    r = runner.invoke(app, ["check", str(tmp_path)])
    said = _said(r)
    assert r.exit_code == 0 and "Traceback" not in said, said
    assert "display smoothed where faint to each frame's own PSF: the frames' differ (HISTORY)" in said


def test_a_mosaic_of_outputs_made_with_other_settings_writes_without_astropys_warning(tmp_path):
    """`mosaic` of two `run` outputs made with other settings (here another SR network) printed astropy's
    "VerifyWarning: Card is too long, comment will be truncated": the settings that differ are recorded as 'mixed',
    and a short string's card was measured without the padding astropy gives it. Now nothing but the mosaic's own
    warning, and check describes it."""
    cfhtls = Path(__file__).parent / "data" / "cfhtls"
    for band, more in (("g", []), ("r", ["--sr-model", "psnr"])):
        r = runner.invoke(app, ["run", str(cfhtls / f"CFHTLS-test_{band}.fits"), "-o", str(tmp_path / "e"),
                                "--format", "fits", "-q", *more])
        assert r.exit_code == 0, r.output
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = runner.invoke(app, ["mosaic", *sorted(map(str, (tmp_path / "e").glob("*.fits"))), "-o",
                                str(tmp_path / "m")])
    assert r.exit_code == 0 and "Warning" not in r.output, r.output
    assert not [w for w in caught if "too long" in str(w.message)], [str(w.message) for w in caught]
    header = fits.getheader(tmp_path / "m" / "mosaic.mosaic.fits")
    assert header["AE_FLUXT"] == "mixed" and header.comments["AE_FLUXT"].startswith("FLUX: ... within")
    assert len(header.cards["AE_FLUXT"].image) == 80
    r = runner.invoke(app, ["check", str(tmp_path / "m")])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A folder of this module's own for the property tests' files (one per example, named by it): hypothesis
    gives no function-scoped ``tmp_path``, and a fixed /tmp name is shared with any other run of the suite."""
    return tmp_path_factory.mktemp("check-examples")


@given(st.lists(st.tuples(st.integers(1, 9), st.integers(1, 9), st.sampled_from(["i2", "f4", "f8", "u1"])),
                min_size=1, max_size=3), st.integers(0, 10**9), st.booleans())
@settings(max_examples=40, deadline=None)
def test_fits_checksums_are_verified_as_astropy_writes_them(scratch, shapes, where, compressed):
    """Any FITS astropy writes with checksums verifies, HDU by HDU (gzip-compressed too); any one byte of its data
    changed does not."""
    rng = np.random.default_rng(where)
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU((rng.normal(size=(h, w)) * 50).astype(d), name=f"E{k}")
                                  for k, (h, w, d) in enumerate(shapes)]
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf, checksum=True)
    raw = bytearray(buf.getvalue())
    path = scratch / (f"check-{where}.fits" + (".gz" if compressed else ""))
    try:
        path.write_bytes(gzip.compress(bytes(raw)) if compressed else bytes(raw))
        assert fits_integrity(path) == (len(hdus), [], [])
        with fits.open(io.BytesIO(bytes(raw))) as h:
            k = 1 + where % len(shapes)
            at = h.fileinfo(k)["datLoc"] + where % h[k].data.nbytes
        raw[at] ^= 1 + where % 255
        path.write_bytes(gzip.compress(bytes(raw)) if compressed else bytes(raw))
        _, problems, _ = fits_integrity(path)
        assert len(problems) == 1 and problems[0].startswith(f"HDU {k} (E{k - 1}): its data's checksum"), problems
    finally:
        path.unlink(missing_ok=True)


@given(st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=3), st.integers(0, 10**9),
       st.booleans())
@settings(max_examples=60, deadline=None)
def test_a_fits_file_cut_anywhere_inside_an_hdu_is_never_intact(scratch, shapes, where, compressed):
    """A FITS file cut short at any byte that is not the end of an HDU has a problem. Cut within the first block of
    an extension's header (the HDUs before it whole), check said nothing worse than "bytes after the last HDU"."""
    rng = np.random.default_rng(where)
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(rng.normal(size=s).astype("f4"), name=f"E{k}")
                                  for k, s in enumerate(shapes)]
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf, checksum=True)
    raw = buf.getvalue()
    with fits.open(io.BytesIO(raw)) as h:
        ends = {h.fileinfo(k)["datLoc"] + h.fileinfo(k)["datSpan"] for k in range(len(hdus))}
    cut = where % len(raw)
    if cut in ends or cut == 0:
        cut += 1
    path = scratch / (f"cut-{where}.fits" + (".gz" if compressed else ""))
    try:
        path.write_bytes(gzip.compress(raw[:cut]) if compressed else raw[:cut])
        _, problems, _ = fits_integrity(path)
        assert len(problems) == 1 and "cut short" in problems[0], (cut, problems)
    finally:
        path.unlink(missing_ok=True)


@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from(["L", "RGB", "RGBA", "I;16", "P"]), st.booleans(),
       st.integers(0, 10**9))
@settings(max_examples=40, deadline=None)
def test_png_chunks_and_pixels_are_verified(scratch, w, h, mode, text, where):
    """Any PNG Pillow writes (grey, colour, 16-bit, palette; with a text chunk or none) verifies and gives its
    text; any one byte after its signature changed, or the file cut anywhere, does not."""
    from PIL import PngImagePlugin

    rng = np.random.default_rng(where)
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65535, (h, w), dtype=np.uint16))
    else:
        im = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).convert(mode)
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("Comment", "tool=astroenhance 0.1.0; input=x.fits")
    buf = io.BytesIO()
    im.save(buf, "PNG", pnginfo=info)
    raw = bytearray(buf.getvalue())
    path = scratch / f"check-{where}.png"
    try:
        path.write_bytes(bytes(raw))
        texts, problems = png_integrity(path)
        assert problems == [] and (texts.get("Comment", "").startswith("tool=astroenhance") == text)
        changed = bytearray(raw)
        changed[8 + where % (len(raw) - 8)] ^= 1 + where % 255
        path.write_bytes(bytes(changed))
        assert png_integrity(path)[1]
        path.write_bytes(bytes(raw[:8 + where % (len(raw) - 8)]))
        assert png_integrity(path)[1]
    finally:
        path.unlink(missing_ok=True)


def test_a_png_whose_pixels_are_short_of_its_size_fails(tmp_path):
    """A PNG whose chunks are all whole and their CRCs right, but whose compressed pixels hold fewer rows than its
    header gives (a writer stopped early, then closed the file properly) fails."""
    w, h = 8, 6
    rows = b"".join(b"\0" + bytes(range(w * 3)) for _ in range(h - 1))  # one row short

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    path = tmp_path / "short.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    assert png_integrity(path)[1] == [f"its pixels are {len(rows)} bytes where its header gives {h * (1 + w * 3)}"]
    assert not check_output(path).ok


def test_a_png_chunk_whose_length_runs_past_the_file_is_cut_short_unread(tmp_path):
    """A damaged length field (4 GB for a text chunk) was read as asked, up to the file's end; it is now a file cut
    short, said with both sizes, before any of it is read."""
    buf = io.BytesIO()
    Image.new("RGB", (4, 3)).save(buf, "PNG")
    raw = bytearray(buf.getvalue())
    text = b"tEXtComment\0x"
    at = raw.index(b"IDAT") - 4
    raw[at:at] = len(text[4:]).to_bytes(4, "big") + text + zlib.crc32(text).to_bytes(4, "big")
    raw[at:at + 4] = (0xFFFFFFF0).to_bytes(4, "big")
    path = tmp_path / "long.png"
    path.write_bytes(bytes(raw))
    follow = len(raw) - (at + 8)
    assert png_integrity(path)[1] == [f"cut short in its tEXt chunk (it gives 4,294,967,280 bytes, {follow:,} follow)"]

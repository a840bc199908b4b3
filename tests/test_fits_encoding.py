"""Smaller RGB FITS: 16-bit scaled planes and tile-compressed planes read back as the float32 planes (issue 17)."""

import io

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from astroenhance import EnhanceConfig, Enhancer
from astroenhance.io.readers import open_frames
from astroenhance.io.writers import INT16_SCALE, output_is_complete, quantize, to_int16

from .conftest import FIXTURES

HRC = FIXTURES / "j8bt06nyq_flt_crop.fits"


@given(arrays(np.float64, st.integers(1, 40), elements=st.floats(0, 1) | st.just(np.nan)))
def test_int16_encoding_round_trips_within_half_a_step(v):
    i = to_int16(v).astype(np.int64)
    back = np.where(i == -32768, np.nan, 0.5 + i * INT16_SCALE)
    assert (np.isnan(back) == np.isnan(v)).all()
    ok = ~np.isnan(v)
    assert np.abs(back[ok] - v[ok]).max(initial=0) <= INT16_SCALE / 2 + 1e-12
    assert to_int16(np.array([0.0, 1.0])).tolist() == [-32767, 32767]  # the ends are exact


@given(arrays(st.sampled_from([np.float32, np.float64]), st.integers(1, 40),
              elements=st.floats(-2, 3, width=32) | st.sampled_from([np.nan, np.inf, -np.inf, 0.5 + 1e-5])))
def test_int16_encoding_is_the_defined_formula(v):
    """Any input (out of range and infinities clipped to the ends) gives exactly the documented formula's integers."""
    with np.errstate(invalid="ignore"):
        ref = np.round((np.clip(np.nan_to_num(v.astype(np.float64), nan=0.5), 0.0, 1.0) - 0.5) / INT16_SCALE)
    ref[np.isnan(v)] = -32768
    assert to_int16(v).dtype == np.dtype(">i2")
    assert to_int16(v).tolist() == ref.astype(np.int64).tolist()


@given(arrays(st.sampled_from([np.float32, np.float64]), st.integers(1, 40),
              elements=st.floats(-2, 3, width=32) | st.sampled_from([np.nan, np.inf, -np.inf, 0.5 / 255])),
       st.sampled_from([np.uint8, np.uint16]))
def test_picture_quantisation_is_the_defined_formula(v, dtype):
    """8/16-bit pictures: clipped to [0, 1], NaN black, rounded half up, in the input's own precision."""
    with np.errstate(invalid="ignore"):
        ref = (np.nan_to_num(np.clip(v, 0.0, 1.0), nan=0.0) * float(np.iinfo(dtype).max) + 0.5).astype(dtype)
    assert quantize(v, np.dtype(dtype)).dtype == dtype
    assert quantize(v, np.dtype(dtype)).tolist() == ref.tolist()


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    out = tmp_path_factory.mktemp("enc")
    paths = {}
    for enc in ("float32", "int16", "rice"):
        enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, formats=("fits",), fits_encoding=enc, tile=64))
        with open_frames(HRC) as [src]:
            [paths[enc]] = enh.write_source(src, out / enc, HRC, enh.config.for_input(True)).outputs
    return paths


def test_every_encoding_reads_back_as_the_float32_planes_with_the_wcs(encoded):
    with fits.open(encoded["float32"]) as ref:
        for enc in ("int16", "rice"):
            with fits.open(encoded[enc]) as got:
                assert [h.name for h in got] == ["PRIMARY", "RED", "GREEN", "BLUE", "FLUX", "FLUXERR"]
                for name in ("FLUX", "FLUXERR"):  # physical units: never quantised
                    np.testing.assert_array_equal(got[name].data, ref[name].data)
                assert isinstance(got[1], fits.CompImageHDU) == (enc == "rice")
                assert got[0].header["AE_INSHA"] == ref[0].header["AE_INSHA"]
                assert f"fits_encoding: {enc}" in str(got[0].header["HISTORY"])
                for name in ("RED", "GREEN", "BLUE"):
                    a, b = ref[name].data, got[name].data
                    assert b.dtype == np.float32 and (np.isnan(a) == np.isnan(b)).all()
                    assert np.nanmax(np.abs(a - b)) <= INT16_SCALE / 2 + 1e-7
                wa, wb = WCS(ref["RED"].header), WCS(got["RED"].header)
                pix = np.array([[0.0, 0.0], [511.0, 1023.0], [1023.0, 17.5]])
                np.testing.assert_allclose(wb.all_pix2world(pix, 0), wa.all_pix2world(pix, 0), rtol=0, atol=1e-12)



def test_rice_outputs_gzip_their_float_planes_at_level_1_and_put_astropy_back():
    """astropy gzips tiles at `gzip.compress`'s level 9: 4.4x slower than level 1 for a 1% smaller rice file
    (`benchmarks/bench_writers.py`). The writer sets level 1 through astropy's codec module while it compresses (the
    planes read back exact: the test above) — this fails if astropy stops calling it from there."""
    import gzip

    from astropy.io.fits.hdu.compressed import _codecs

    from astroenhance.io.writers import _gzip_level

    plane = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    made = {}
    for level in (9, 1):
        with _gzip_level(level):
            assert _codecs.gzip_compress.keywords == {"compresslevel": level}
            buffer = io.BytesIO()
            fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(plane, compression_type="GZIP_2",
                                                               quantize_level=0.0)]).writeto(buffer)
            made[level] = buffer.getvalue()
    assert _codecs.gzip_compress is gzip.compress
    assert made[1] != made[9]  # the level reached the tiles
    first, second = _gzip_level(1), _gzip_level(1)  # two writers in threads, the first done first: astropy's own back
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    assert _codecs.gzip_compress is gzip.compress
    for data in made.values():
        with fits.open(io.BytesIO(data)) as h:
            np.testing.assert_array_equal(h[1].data, plane)


def test_the_display_planes_shrink(tmp_path):
    sizes = {}
    for enc in ("float32", "int16", "rice"):  # the display planes alone: FLUX is float32 in every encoding
        enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, formats=("fits",), fits_encoding=enc, tile=64,
                                     flux_plane=False))
        with open_frames(HRC) as [src]:
            [path] = enh.write_source(src, tmp_path / enc, HRC, enh.config.for_input(True)).outputs
        sizes[enc] = path.stat().st_size
    # rice is lossless, so what it saves depends on the picture: the noise:3 display shows the sky noise (since the
    # clipped sky, also this crowded crop's: 0.71x int16; 0.69x on the shipped example; where much of a frame is
    # black, far less)
    assert sizes["rice"] < 0.8 * sizes["int16"] and sizes["int16"] < 0.55 * sizes["float32"]


def test_skip_existing_trusts_complete_encoded_outputs_only(encoded, tmp_path):
    with fits.open(encoded["int16"]) as h:
        sha, shape = h[0].header["AE_INSHA"], h["RED"].shape
    for enc, path in encoded.items():
        assert output_is_complete(path, shape, sha), enc
        cut = tmp_path / f"{enc}.fits"
        cut.write_bytes(path.read_bytes()[: path.stat().st_size - 20000])
        assert not output_is_complete(cut, shape, sha), enc


def _picture(kind: str, h: int, w: int, seed: int) -> np.ndarray:
    """An 8-bit RGB picture of random pixels, a pattern of ramps, or one flat colour."""
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "smooth":
        yy, xx = np.mgrid[:h, :w]
        return np.stack([(yy * 7 + xx * 3) % 256, (yy * xx) % 256, np.full((h, w), 200)], -1).astype(np.uint8)
    return np.full((h, w, 3), rng.integers(0, 256), np.uint8)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 23), kind=st.sampled_from(["noise", "smooth", "flat"]),
       seed=st.integers(0, 2**16), alpha=st.booleans())
def test_streamed_png_decodes_to_the_same_pixels(tmp_path_factory, h, w, kind, seed, alpha):
    """`write_png` (pieces of 5 rows compressed apart by threads, an adaptive filter per row, several IDAT chunks)
    gives a PNG that Pillow decodes to exactly the pixels written, with its text chunks, for any size across piece
    boundaries and any content; RGBA (no data transparent) as RGB."""
    from PIL import Image

    from astroenhance.io import writers

    px = _picture(kind, h, w, seed)
    if alpha:
        px = np.concatenate([px, _picture("noise", h, w, seed + 1)[..., :1]], axis=-1)
    folder = tmp_path_factory.mktemp("png")
    path = folder / "x.png"
    old = writers.PNG_IDAT, writers.PNG_PIECE
    writers.PNG_IDAT, writers.PNG_PIECE = 64, px.shape[2] * w * 5  # many IDAT chunks and pieces, small pictures too
    try:
        for threads, out in ((3, path), (1, folder / "one_thread.png")):
            writers.write_png(out, lambda a, b: px[a:b], (h, w),
                              [("Software", "astroenhance"), ("Comment", "σ = 2, generated detail")], threads=threads,
                              alpha=alpha)
    finally:
        writers.PNG_IDAT, writers.PNG_PIECE = old
    assert path.read_bytes() == (folder / "one_thread.png").read_bytes()  # the same file, however many threads
    with Image.open(path) as im:
        im.load()
        assert im.mode == ("RGBA" if alpha else "RGB") and im.size == (w, h)
        assert np.array_equal(np.asarray(im), px)
        assert im.info["Software"] == "astroenhance" and im.info["Comment"] == "σ = 2, generated detail"


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 300), w=st.integers(1, 40), kind=st.sampled_from(["noise", "smooth", "flat"]),
       seed=st.integers(0, 2**16))
def test_streamed_jpeg_is_pillows_encoding_of_the_whole_picture(tmp_path_factory, h, w, kind, seed):
    """`write_jpeg` (strips of 128 rows encoded apart by threads, joined at restart markers) gives, byte for byte,
    the JPEG Pillow makes of the whole picture with the same settings, plus the XMP segment pyavm reads: the same
    pixels decoded, the comment and the AVM packet kept, for any size across strip boundaries and any content."""
    from PIL import Image
    from pyavm import AVM

    from astroenhance.io import writers

    px = _picture(kind, h, w, seed)
    avm = AVM()
    avm.Spatial.Notes = "Generated detail is not measurement."
    xmp = avm.to_xmp()
    xmp = xmp if isinstance(xmp, bytes) else xmp.encode()
    folder = tmp_path_factory.mktemp("jpeg")
    old = writers.JPEG_STRIP
    writers.JPEG_STRIP = 3 * w * 128  # a strip per 128 rows even for a narrow picture
    try:
        for threads, name in ((3, "x.jpg"), (1, "one_thread.jpg")):
            writers.write_jpeg(folder / name, lambda a, b: px[a:b], (h, w), "σ = 2".encode(), xmp, threads=threads)
    finally:
        writers.JPEG_STRIP = old
    data = (folder / "x.jpg").read_bytes()
    assert data == (folder / "one_thread.jpg").read_bytes()
    whole = io.BytesIO()
    Image.fromarray(px).save(whole, format="JPEG", quality=95, subsampling="4:2:0", restart_marker_rows=1,
                             comment="σ = 2".encode())
    app1 = data.index(b"\xff\xe1")
    length = int.from_bytes(data[app1 + 2:app1 + 4], "big")
    assert data[app1 + 4:app1 + 33] == b"http://ns.adobe.com/xap/1.0/\0"
    assert data[:app1] + data[app1 + 2 + length:] == whole.getvalue()
    with Image.open(folder / "x.jpg") as im:
        assert im.size == (w, h) and im.info["comment"] == "σ = 2".encode()
        default = io.BytesIO()
        Image.fromarray(px).save(default, format="JPEG", quality=95)  # (what `run` wrote before: the same pixels)
        assert np.array_equal(np.asarray(im), np.asarray(Image.open(default)))
    assert AVM.from_image(str(folder / "x.jpg")).Spatial.Notes == "Generated detail is not measurement."


def test_png_filters_are_the_ones_the_png_definition_inverts():
    """Undoing each row's filter by the PNG specification gives the rows back, for rows where different filters win
    (a ramp, a row equal to the one above, noise)."""
    from astroenhance.io.writers import png_filter_rows

    rng = np.random.default_rng(0)
    rows = np.concatenate([np.tile(np.arange(0, 240, 8, dtype=np.uint8), (2, 1)),
                           rng.integers(0, 256, (3, 30), dtype=np.uint8)])
    out = png_filter_rows(rows, np.zeros(30, np.uint8))
    assert out.shape == (5, 31) and set(out[:, 0]) <= {0, 1, 2, 3, 4}
    assert out[1, 0] == 2 and not out[1, 1:].any()  # a row equal to the one above: "up", all zeros
    assert len(set(out[:, 0])) >= 2
    prior, decoded = np.zeros(30, np.int32), []
    for filt, data in zip(out[:, 0], out[:, 1:].astype(np.int32)):
        row = np.zeros(30, np.int32)
        for i in range(30):
            a, b, c = (row[i - 3] if i >= 3 else 0), prior[i], (prior[i - 3] if i >= 3 else 0)
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else (b if abs(p - b) <= abs(p - c) else c)
            row[i] = (data[i] + [0, a, b, (a + b) // 2, paeth][filt]) % 256
        decoded.append(row)
        prior = row
    assert np.array_equal(np.array(decoded), rows)


@pytest.mark.parametrize("fmt", ["png", "tiff", "jpeg"])
def test_image_writer_assembles_column_bands_in_its_scratch_file(tmp_path, monkeypatch, fmt):
    """Strips written by column bands and bottom-up blocks (as the engine writes them) land where they belong; the
    scratch file is gone after commit, and after abort nothing is left at all.  A TIFF is encoded strip by strip
    (small strips here: 5 rows, the last one 2).  The pixel with no data is transparent in the PNG and the TIFF
    (their alpha opaque everywhere else; it was black, as it still is in the JPEG, which has no alpha)."""
    import tifffile
    from PIL import Image

    from astroenhance.io import writers
    from astroenhance.io.writers import ImageWriter

    monkeypatch.setattr(writers, "TIFF_STRIP", 29 * 4 * 2 * 5 + 7)  # (RGBA, 16 bits)

    yy, xx = np.mgrid[:37, :29]
    rgb = np.stack([yy / 36, xx / 28, (yy + xx) / 64], -1)  # smooth, so that the JPEG stays close too
    rgb[3, 4] = np.nan  # no data: transparent (black in a JPEG)
    w = ImageWriter(tmp_path / f"x.{fmt}", (37, 29), fmt, provenance="test")
    for c0, c1 in ((0, 11), (11, 29)):  # two column bands, each bottom-up in blocks of 8 FITS rows
        for r0 in range(0, 37, 8):  # a block's rows run up from FITS row r0, which is image row 36 - r0
            w.write_block(r0, rgb[::-1][r0:r0 + 8, c0:c1], c0)
    out = w.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    if fmt == "tiff":
        got = tifffile.imread(out)
        with tifffile.TiffFile(out) as tif:
            assert (tif.pages[0].tags["RowsPerStrip"].value, len(tif.pages[0].dataoffsets)) == (5, 8)
            assert tif.pages[0].description == "test"
    else:
        with Image.open(out) as im:
            got = np.asarray(im)
    maxval = 65535 if fmt == "tiff" else 255
    want = np.floor(np.nan_to_num(rgb) * maxval + 0.5)  # rounded half up
    tol = 3 if fmt == "jpeg" else 0.5  # JPEG is lossy
    assert got.shape == (37, 29, 3 if fmt == "jpeg" else 4)
    assert np.abs(got[..., :3].astype(float) - want).mean() <= tol
    if fmt != "jpeg":
        assert np.abs(got[..., :3].astype(float) - want).max() <= 0.5 and not got[3, 4].any()
        alpha = np.full((37, 29), maxval)
        alpha[3, 4] = 0
        np.testing.assert_array_equal(got[..., 3], alpha)
    whole = ImageWriter(tmp_path / f"whole.{fmt}", (5, 5), fmt)  # every pixel with data: no alpha channel
    whole.write_rows(0, np.full((5, 5, 3), 0.5))
    made = whole.commit()
    assert (tifffile.imread(made) if fmt == "tiff" else np.asarray(Image.open(made))).shape == (5, 5, 3)
    made.unlink()
    aborted = ImageWriter(tmp_path / f"y.{fmt}", (5, 5), fmt)
    aborted.write_rows(0, np.ones((5, 5, 3)))
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_image_writer_refuses_a_block_outside_the_picture(tmp_path):
    from astroenhance.io.writers import ImageWriter

    w = ImageWriter(tmp_path / "x.png", (8, 8), "png")
    with pytest.raises(ValueError, match="does not fit"):
        w.write_rows(6, np.zeros((3, 8, 3)))
    with pytest.raises(ValueError, match="does not fit"):
        w.write_rows(0, np.zeros((2, 5, 3)), col0=4)
    w.abort()
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 70), st.integers(1, 90), st.sampled_from(["float32", "int16"]), st.booleans(),
       st.integers(0, 2**31))
def test_every_hdu_carries_fits_checksums_that_astropy_verifies(tmp_path_factory, h, w, encoding, flux, seed):
    """DATASUM and CHECKSUM (the FITS standard's) on every HDU, as astropy and fitsverify check them; one byte changed
    in a data unit and its checksums fail."""
    import warnings

    from astroenhance.io.writers import FITSRGBWriter

    path = tmp_path_factory.mktemp("cs") / "x.fits"
    rng = np.random.default_rng(seed)
    flux_headers = (fits.Header({"BUNIT": "e/s"}), fits.Header({"BUNIT": "e/s"})) if flux else None
    writer = FITSRGBWriter(path, (h, w), fits.Header({"AE_TEST": 1}), fits.Header(), encoding, flux_headers)
    writer.write_block(0, rng.random((h, w, 3)), 0, *(rng.normal(size=(2, h, w)) if flux else ()))
    writer.commit()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(path, checksum=True) as hdul:
            assert len(hdul) == (6 if flux else 4)
            assert all(x.verify_checksum() == 1 and x.verify_datasum() == 1 for x in hdul)
            offset = hdul.fileinfo(2)["datLoc"]  # GREEN's first data byte
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path, checksum=False) as hdul:
            assert hdul[2].verify_datasum() == 0 and hdul[2].verify_checksum() == 0
            assert hdul[1].verify_checksum() == 1


def test_a_rice_output_carries_checksums_too(tmp_path):
    """The tile-compressed layout (`--fits-encoding rice`) had no DATASUM or CHECKSUM on any HDU (`astroenhance
    check` could verify nothing); every HDU now carries both, verified by astropy and by `check`, and its planes
    are still the compressed tables they were (RICE_1 / GZIP_2), read back as the images written."""
    import warnings

    from astroenhance.check import fits_integrity
    from astroenhance.io.writers import FITSRGBWriter

    rng = np.random.default_rng(4)
    rgb, flux = rng.random((30, 40, 3)), rng.normal(size=(2, 30, 40))
    path = tmp_path / "x.fits"
    writer = FITSRGBWriter(path, (30, 40), fits.Header({"AE_TEST": 1}), fits.Header(), "rice",
                           (fits.Header({"BUNIT": "e/s"}), fits.Header({"BUNIT": "e/s"})))
    writer.write_block(0, rgb, 0, *flux)
    writer.commit()
    assert fits_integrity(path) == (6, [], [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(path, checksum=True, disable_image_compression=True) as hdul:
            assert all(x.verify_checksum() == 1 and x.verify_datasum() == 1 for x in hdul)
            assert [x.header.get("ZCMPTYPE") for x in hdul[1:]] == ["RICE_1"] * 3 + ["GZIP_2"] * 2
        with fits.open(path) as hdul:
            np.testing.assert_allclose(hdul["GREEN"].data, rgb[..., 1], atol=1 / 65534)
            np.testing.assert_array_equal(hdul["FLUX"].data, flux[0].astype(np.float32))
    assert list(tmp_path.iterdir()) == [path]  # (no temporary left)


@pytest.mark.parametrize("fmt", ["fits", "png", "tiff"])
def test_an_interrupt_while_an_output_is_made_leaves_no_temporary(tmp_path, monkeypatch, fmt):
    """Ctrl-C or SIGTERM (a parallel batch stopped: its workers get SIGTERM) landing while a writer was being made left
    its temporary file behind: the writer cleaned up on OSError only, and the caller had no writer to abort yet (a
    CI run of the Ctrl-C batch test found one)."""
    import os

    from astroenhance.io.writers import FITSRGBWriter, ImageWriter

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "posix_fallocate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        if fmt == "fits":
            FITSRGBWriter(tmp_path / "x.enhanced.fits", (8, 8), fits.Header(), fits.Header(), "int16")
        else:
            ImageWriter(tmp_path / f"x.enhanced.{fmt}", (8, 8), fmt)
    assert list(tmp_path.iterdir()) == []


@given(st.one_of(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=68),
                 st.floats(allow_nan=False, allow_infinity=False), st.integers(-10**12, 10**12), st.booleans()),
       st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=20, max_size=90))
@example("mixed", "FLUX: ... within this many input sigmas (0: exact)")  # (a colour mosaic's AE_FLUXT)
@example("0" * 45, "0000000000000000000 0")  # (cut where the comment has a space)
@settings(max_examples=300, deadline=None)
def test_a_card_keeps_as_much_of_its_comment_as_fits_without_astropys_warning(value, comment):
    """`set_card` shortens a comment to fit the card's 80 characters. It measured the card without its comment, and
    astropy pads a short string to column 30 only when a comment follows: a short string's comment was 10 characters
    too long and astropy cut it with a warning that reached the terminal (`mosaic` of outputs whose settings differ:
    'mixed' values). Now no warning; the card fits, its value is the value, and its comment is the longest start of
    the comment that fits (whole where it fits)."""
    import warnings

    from astroenhance.io.writers import set_card

    header = fits.Header()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        set_card(header, "AE_TEST", value, comment)
        image = header.cards["AE_TEST"].image
    assert header["AE_TEST"] == (value.rstrip() if isinstance(value, str) else value)
    if len(image) > 80:  # a text whose quotes, doubled, pass 68 characters: FITS's long-string cards, no comment room
        assert isinstance(value, str) and len(value.replace("'", "''")) > 68 and "CONTINUE" in image
        return
    assert len(image) == 80
    kept = header.comments["AE_TEST"]
    assert comment.startswith(kept)
    if kept != comment.rstrip() and kept:  # cut: all of the comment that fits in the card's last columns
        start = len(image.rstrip()) - len(kept)  # (a cut that ends in spaces: astropy gives the comment back without)
        assert image[start - 3:start] == " / " and comment[:80 - start].rstrip() == kept


@pytest.mark.parametrize("where", ["thread start", "last pieces"])
def test_an_interrupt_while_the_writer_thread_starts_or_drains_leaves_no_temporary(tmp_path, monkeypatch, where):
    """The frame's writer thread: an interruption (a parallel batch stopped: SIGTERM to its workers) while the thread
    started, or while the frame waited for it to write its last pieces, came out of `FileSink` with its temporaries
    still there (only the computing inside the block cleaned up; a CI run of the Ctrl-C batch test found one)."""
    import threading

    from astroenhance.pipeline.output import FileSink

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    targets = {"fits": tmp_path / "x.enhanced.fits", "png": tmp_path / "x.enhanced.png"}
    with pytest.raises(KeyboardInterrupt):
        if where == "thread start":
            monkeypatch.setattr(threading.Thread, "start", interrupted)
        with FileSink(targets, (8, 8), "lower", fits.Header(), fits.Header(), None, "", background=True) as sink:
            sink.put(0, 8, 0, np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.float32))
            monkeypatch.setattr(threading.Thread, "join", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_no_data_is_transparent_in_runs_png_and_tiff_and_black_in_its_jpeg(tmp_path):
    """A frame with an empty strip (a drizzled frame's edge) and one lone no-data pixel: its PNG and TIFF are
    transparent exactly where the FITS display planes have no data (the lone pixel is shown interpolated, a small
    hole: opaque), opaque elsewhere; the JPEG, without alpha, is black there.  No data was black in all three, as
    the darkest sky is."""
    import tifffile
    from PIL import Image
    from typer.testing import CliRunner

    from astroenhance.cli import app

    from .conftest import EXAMPLE

    with fits.open(EXAMPLE) as h:
        data = h[0].data.astype(np.float32)[:40, :48].copy()
        header = h[0].header.copy()
    data[:9] = np.nan  # the bottom 9 rows: no data
    data[25, 30] = np.nan  # a small hole
    frame = tmp_path / "edge.fits"
    fits.PrimaryHDU(data, header).writeto(frame)
    result = CliRunner().invoke(app, ["run", str(frame), "-o", str(tmp_path / "out"), "--format",
                                      "fits,png,tiff,jpeg", "--no-colorize"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    empty = np.isnan(fits.getdata(out / "edge.enhanced.fits", "RED"))[::-1]  # (pictures run top-down)
    assert empty.sum() == 9 * 4 * 48 * 4  # the strip, not the hole
    png = np.asarray(Image.open(out / "edge.enhanced.png"))
    tiff = tifffile.imread(out / "edge.enhanced.tif")
    jpeg = np.asarray(Image.open(out / "edge.enhanced.jpg"))
    for picture, opaque in ((png, 255), (tiff, 65535)):
        assert picture.shape == (160, 192, 4)
        np.testing.assert_array_equal(picture[..., 3], np.where(empty, 0, opaque))
        assert not picture[empty][:, :3].any()
    assert jpeg.shape == (160, 192, 3) and jpeg[empty].mean() < 2

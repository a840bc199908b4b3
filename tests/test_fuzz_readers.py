"""Malformed FITS headers and random bytes: the reader ends in InputError or success, never anything else."""

import io

import numpy as np
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astroenhance.errors import InputError
from astroenhance.io.readers import open_frames

from .conftest import fuzz_examples


def _read_all(path):
    try:
        with open_frames(path) as frames:
            for f in frames:
                f.read_rows(0, f.shape[0])
                f.sample(1000)
    except InputError as exc:
        assert str(path) in str(exc)


@settings(max_examples=fuzz_examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=6000))
def test_random_bytes(tmp_path, blob):
    path = tmp_path / "random.fits"
    path.write_bytes(blob)
    _read_all(path)


KEYS = ["NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "BITPIX", "BSCALE", "BZERO", "BLANK", "EXTEND", "CRPIX1", "CTYPE1",
        "CD1_1", "CDELT1", "A_ORDER", "A_2_0", "XTENSION", "END"]
VALUES = st.one_of(st.integers(-100, 100_000), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10),
                   st.booleans())


@settings(max_examples=fuzz_examples(80), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=6), st.integers(0, 3))
def test_malformed_headers(tmp_path, edits, trim):
    buf = io.BytesIO()
    fits.PrimaryHDU(np.arange(64, dtype=np.float32).reshape(8, 8)).writeto(buf)
    raw = bytearray(buf.getvalue())
    header = raw[:2880].decode("ascii")
    cards = [header[i:i + 80] for i in range(0, 2880, 80)]
    for key, value in edits:
        text = repr(value) if not isinstance(value, str) else f"'{value[:8]}'"
        card = f"{key:<8}= {text:>20}"[:80].ljust(80)
        cards.insert(1 + len(key) % 5, card)
    head = "".join(cards)[: 2880 * 2].ljust(2880 * ((len("".join(cards)) + 2879) // 2880))
    data = bytes(raw[2880:])
    blob = head.encode("ascii", "replace") + data[: len(data) - trim * 700]
    path = tmp_path / "edited.fits"
    path.write_bytes(blob)
    _read_all(path)


@settings(max_examples=fuzz_examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from([(b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"II*\x00", "tif"),
                        (b"SIMPLE  =", "png")]), st.binary(min_size=0, max_size=3000))
def test_pictures_of_random_bytes_behind_a_real_signature(tmp_path, head, blob):
    """A picture's first bytes right and the rest broken (a cut download): its AVM, provenance and kind are read from
    the headers before the pixels; each reader ends in InputError or success, never anything else."""
    magic, suffix = head
    path = tmp_path / f"broken.{suffix}"
    path.write_bytes(magic + blob)
    _read_all(path)


@settings(max_examples=fuzz_examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["minisblack", "miniswhite", "rgb", "separated", "palette"]),
       st.sampled_from([np.uint8, np.uint16]), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**32 - 1))
def test_tiffs_of_every_photometric_kind_read_as_viewers_show_them(tmp_path, kind, dtype, h, w, seed):
    """Grey TIFFs as stored (white-is-zero inverted), RGB as stored, CMYK and palette TIFFs as Pillow converts them;
    a 1x1 picture refused by name. Whatever the kind, depth and size, success or an InputError naming the file."""
    import tifffile
    from PIL import Image

    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    bands = {"rgb": 3, "separated": 4}.get(kind, 1)
    stored = rng.integers(0, top, (h, w, bands) if bands > 1 else (h, w), endpoint=True).astype(dtype)
    path = tmp_path / "t.tif"
    extra = {}
    if kind == "palette":
        stored = stored.astype(np.uint8) if dtype is np.uint8 else stored % 16
        extra["colormap"] = rng.integers(0, 65535, (3, 256 if dtype is np.uint8 else 65536), endpoint=True,
                                         dtype=np.uint16)
    tifffile.imwrite(path, stored, photometric=kind, **extra)
    try:
        with open_frames(path) as [src]:
            got = src.read_rows(0, src.shape[0])
    except InputError as exc:
        assert str(path) in str(exc)
        assert h * w < 2 or kind == "palette", exc  # (Pillow reads 8-bit palettes only)
        return
    if kind in ("minisblack", "miniswhite"):
        np.testing.assert_array_equal(got, (top - stored if kind == "miniswhite" else stored).astype(np.float32))
        return
    if kind == "rgb":
        want = stored.astype(np.float32)
    else:
        with Image.open(path) as im:
            want = np.asarray(im.convert("RGB"), np.float32)
    np.testing.assert_array_equal(got, want[..., 0] if got.ndim == 2 else want)  # (equal channels: read as grey)


@settings(max_examples=fuzz_examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["L", "LA", "RGB", "RGBA"]), st.sampled_from([1, 2, 4, 8, 16]), st.integers(1, 9),
       st.integers(1, 9), st.floats(0, 1), st.integers(0, 2**32 - 1))
def test_pngs_of_every_colour_type_and_depth_read_as_stored(tmp_path, mode, depth, h, w, clear, seed):
    """Grey, grey + alpha, RGB and RGBA PNGs at every depth PNG allows them: the values as stored, at their own depth
    (16-bit grey + alpha was read at 8 bits), fully transparent pixels no data, equal R, G and B read as grey; a 1x1
    picture or one with no opaque pixel refused by name."""
    import png

    if depth < 8 and mode != "L":
        depth = 8  # (PNG allows depths under 8 for grey alone)
    rng = np.random.default_rng(seed)
    top = 2**depth - 1
    colours = {"L": 1, "LA": 1, "RGB": 3, "RGBA": 3}[mode]
    values = rng.integers(0, top, (h, w, colours), endpoint=True).astype(np.uint16)
    alpha = np.where(rng.random((h, w)) < clear, 0, rng.integers(1, top, (h, w), endpoint=True)).astype(np.uint16)
    stored = np.dstack([values, alpha]) if mode.endswith("A") else values
    path = tmp_path / "p.png"
    png.from_array(stored.reshape(h, -1).tolist(), f"{mode};{depth}").save(path)
    try:
        with open_frames(path) as [src]:
            got = src.read_rows(0, src.shape[0])
    except InputError as exc:
        assert str(path) in str(exc)
        assert h * w < 2 or (mode.endswith("A") and not alpha.any()), exc
        return
    # (2 and 4 bits are read as 8 bits, full scale; 1 bit as 0 and 1)
    scale = 255 // top if depth in (2, 4) else 1
    want = values.astype(np.float32) * scale
    assert src.dtype_range == (0.0, float(top * scale))
    if mode.endswith("A"):
        want[alpha == 0] = np.nan
    grey = colours == 1 or (values == values[..., :1]).all()
    np.testing.assert_array_equal(got, want[..., 0] if grey else want)
    assert (src.channels == 1) == grey

"""ICC matrix/TRC profiles applied in numpy (`astroenhance.io.icc`), and pictures of every container and depth read
in sRGB from their profile (`io.readers.read_picture`)."""

import io
import struct
import zlib

import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageCms

from astroenhance.io.icc import D50, SRGB_TO_PCS, convert_to_srgb, matrix_shaper
from astroenhance.io.readers import read_picture

from .conftest import COLOR

#: Adobe RGB (1998)'s colorants adapted to D50, as its ICC profile carries them
ADOBE = [(0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446)]
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)


def _s15(v: float) -> bytes:
    return struct.pack(">i", int(round(v * 65536)))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + b"\0" * 4 + _s15(x) + _s15(y) + _s15(z)


def gamma(g: float) -> bytes:
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, int(round(g * 256)))


def table(values) -> bytes:
    return b"curv" + b"\0" * 4 + struct.pack(f">I{len(values)}H", len(values), *values)


def para(*p: float) -> bytes:
    kind = {1: 0, 3: 1, 4: 2, 5: 3, 7: 4}[len(p)]
    return b"para" + b"\0" * 4 + struct.pack(">HH", kind, 0) + b"".join(_s15(v) for v in p)


def profile(colorants, curve: bytes, extra: tuple[bytes, bytes] | None = None) -> bytes:
    """A minimal ICC v2 RGB display profile: three colorants, one tone curve for R, G and B (``extra``: a tag more)."""
    text = b"test RGB\0"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text)) + text + b"\0" * 78
    tags = [(b"desc", desc), (b"wtpt", _xyz(*D50))]
    tags += [(sig, _xyz(*c)) for sig, c in zip((b"rXYZ", b"gXYZ", b"bXYZ"), colorants)]
    tags += [(sig, curve) for sig in (b"rTRC", b"gTRC", b"bTRC")] + ([extra] if extra else [])
    start, entries, body = 128 + 4 + 12 * len(tags), b"", b""
    for sig, data in tags:
        data += b"\0" * (-len(data) % 4)
        entries += struct.pack(">4sII", sig, start + len(body), len(data))
        body += data
    header = (struct.pack(">I", start + len(body)) + b"none" + bytes([2, 0x10, 0, 0]) + b"mntrRGB XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 28 + b"".join(_s15(v) for v in D50))
    return header + b"\0" * (128 - len(header)) + struct.pack(">I", len(tags)) + entries + body


def littlecms(rgb: np.ndarray, icc: bytes) -> np.ndarray:
    """LittleCMS's sRGB of 8-bit ``rgb``, unoptimised (its optimised 8-bit pipeline resamples the transform on a grid:
    several levels off where black point compensation adds an offset)."""
    return np.asarray(ImageCms.profileToProfile(Image.fromarray(rgb), ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                                ImageCms.createProfile("sRGB"), outputMode="RGB",
                                                flags=ImageCms.Flags.NOOPTIMIZE)).astype(int)


@pytest.mark.parametrize("curve", [gamma(563 / 256), para(1.8), para(2.2, 0.9, 0.1), para(2.2, 0.9, 0.1, 0.01),
                                   para(*SRGB_CURVE), para(*SRGB_CURVE, 0.01, 0.002),
                                   table(np.round(65535 * np.linspace(0, 1, 256) ** 2.6).astype(int))],
                         ids=["gamma", "para0", "para1", "para2", "para3", "para4", "table"])
def test_a_matrix_profile_is_applied_as_littlecms_applies_it(curve):
    """Every kind of tone curve (a gamma, a table, ICC's five parametric functions, black point compensation where
    the curve does not start at 0) gives LittleCMS's sRGB within one 8-bit step, out-of-gamut colours included."""
    icc = profile(ADOBE, curve)
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    got = convert_to_srgb(rgb, matrix_shaper(icc)).astype(int)
    want = littlecms(rgb, icc)
    assert np.abs(got - want).max() <= 1 and (got != want).mean() < 0.05
    assert np.abs(want - rgb.astype(int)).max() > 40  # (the conversion matters)


@settings(max_examples=25, deadline=None)
@given(arrays(np.uint16, (5, 7, 3), elements=st.integers(0, 65535)))
def test_srgb_described_as_a_matrix_profile_converts_to_itself(rgb):
    """sRGB's own colorants and curve: every 16-bit value comes back within 1/8 of an 8-bit step (the profile's
    numbers are rounded to s15Fixed16, 1.5e-5, which near black, where sRGB's curve is steepest, moves a value up
    to ~20 16-bit steps)."""
    icc = profile(SRGB_TO_PCS.T, para(*SRGB_CURVE))
    assert np.abs(convert_to_srgb(rgb, matrix_shaper(icc)).astype(int) - rgb).max() <= 32


def test_profiles_that_are_not_matrix_profiles_are_not_read_as_one():
    """A lookup-table profile (A2B0: its tables define the conversion), a profile cut short, a grey one: None."""
    icc = profile(ADOBE, gamma(2.2))
    assert matrix_shaper(icc) is not None
    assert matrix_shaper(profile(ADOBE, gamma(2.2), (b"A2B0", b"mft2" + b"\0" * 60))) is None
    assert matrix_shaper(icc[:200]) is None
    assert matrix_shaper(icc[:16] + b"GRAY" + icc[20:]) is None


def _png16(path, rgb16: np.ndarray, icc: bytes) -> None:
    """A 16-bit RGB PNG with an iCCP chunk (pypng writes none)."""
    import png

    buf = io.BytesIO()
    png.Writer(rgb16.shape[1], rgb16.shape[0], greyscale=False, bitdepth=16).write(buf, rgb16.reshape(
        rgb16.shape[0], -1).tolist())
    data = buf.getvalue()
    body = b"ICC\0\0" + zlib.compress(icc)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    end = 8 + 25  # signature, IHDR
    path.write_bytes(data[:end] + chunk + data[end:])


def test_pictures_of_any_container_and_depth_are_read_in_srgb(tmp_path):
    """A 16-bit PNG and 8- and 16-bit TIFFs in L*-RGB (the Stellarium texture's profile) and in Adobe RGB were read
    as if they were sRGB (up to 41/255 off); each is converted now as the 8-bit PNG is, saying so, within an 8-bit
    step of LittleCMS's conversion of the 8-bit picture."""
    with Image.open(COLOR / "stellarium_n3918.png") as im:
        lstar, rgb8 = im.info["icc_profile"], np.asarray(im.convert("RGB"))
    for icc, name in ((lstar, "Lstar-RGB.icc"), (profile(ADOBE, gamma(563 / 256)), "test RGB")):
        want = littlecms(rgb8, icc)
        rgb16 = rgb8.astype(np.uint16) * 257
        _png16(tmp_path / "p16.png", rgb16, icc)
        tifffile.imwrite(tmp_path / "t8.tif", rgb8, iccprofile=icc)
        tifffile.imwrite(tmp_path / "t16.tif", rgb16, iccprofile=icc)
        Image.fromarray(rgb8).save(tmp_path / "p8.png", icc_profile=icc)
        for f, full in (("p16.png", 65535), ("t8.tif", 255), ("t16.tif", 65535), ("p8.png", 255)):
            src = read_picture(tmp_path / f)
            assert any(f"ICC profile ({name}) to sRGB" in n for n in src.notes), (f, src.notes)
            got = src.read_rows(0, src.shape[0]) / full * 255
            assert np.abs(got - want).max() <= 1.01, (name, f)
        assert np.abs(want - rgb8.astype(int)).max() > 20


def test_a_planar_tiff_and_a_tiff_with_alpha_are_converted_and_a_float_one_is_said_not_to_be(tmp_path):
    with Image.open(COLOR / "stellarium_n3918.png") as im:
        icc, rgb8 = im.info["icc_profile"], np.asarray(im.convert("RGB"))
    want = littlecms(rgb8, icc)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb8, -1, 0).copy(), iccprofile=icc, planarconfig="separate",
                     photometric="rgb")
    alpha = np.full(rgb8.shape[:2] + (1,), 255, np.uint8)
    alpha[:3] = 0
    tifffile.imwrite(tmp_path / "alpha.tif", np.concatenate([rgb8, alpha], 2), iccprofile=icc, extrasamples=[2])
    planar = read_picture(tmp_path / "planar.tif")
    assert np.abs(planar.read_rows(0, planar.shape[0]) - want).max() <= 1
    withalpha = read_picture(tmp_path / "alpha.tif").read_rows(0, planar.shape[0])
    assert np.isnan(withalpha[:3]).all() and np.abs(withalpha[3:] - want[3:]).max() <= 1
    tifffile.imwrite(tmp_path / "float.tif", rgb8.astype(np.float32) / 255, iccprofile=icc, photometric="rgb")
    src = read_picture(tmp_path / "float.tif")
    assert any("could not be applied to its float32 values" in n for n in src.notes)

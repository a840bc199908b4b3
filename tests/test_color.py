import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from astroenhance.imaging.color import (
    BT601_SHIFT,
    BT601_WEIGHTS,
    LUMA_WEIGHTS,
    hold_bt601_luma,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from astroenhance.pipeline.finish import fit_chroma_to_gamut


def test_bt709_values():
    y, c = rgb_to_ycbcr(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5]]))
    np.testing.assert_allclose(y, [0.2126, 0.0722, 0.5])
    np.testing.assert_allclose(c[0], [-0.2126 / 1.8556, 0.5])  # pure red: Cr = +0.5
    np.testing.assert_allclose(c[1], [0.5, -0.0722 / 1.5748])  # pure blue: Cb = +0.5
    np.testing.assert_allclose(c[2], [0.0, 0.0], atol=1e-15)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (20, 3), elements=st.floats(0, 1)))
def test_round_trip(rgb):
    y, c = rgb_to_ycbcr(rgb)
    np.testing.assert_allclose(ycbcr_to_rgb(y, c), rgb, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, 50, elements=st.floats(0, 1)), arrays(np.float64, (50, 2), elements=st.floats(-1, 1)))
def test_gamut_fit_keeps_luminance_and_stays_in_gamut(y, chroma):
    fitted = fit_chroma_to_gamut(y, chroma)
    rgb = ycbcr_to_rgb(y, fitted)
    assert rgb.min() >= -1e-9 and rgb.max() <= 1 + 1e-9
    np.testing.assert_allclose(rgb @ LUMA_WEIGHTS, y, atol=1e-12)
    # only shrinks towards grey, never changes hue
    assert np.all(np.linalg.norm(fitted, axis=1) <= np.linalg.norm(chroma, axis=1) + 1e-12)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, 40, elements=st.floats(0, 1)), arrays(np.float64, (40, 2), elements=st.floats(-0.5, 0.5)),
       st.floats(1e-4, 0.05))
def test_holding_the_bt601_luma_changes_the_chroma_least(y, chroma, limit):
    """Predicted chroma added to a grey picture keeps its BT.709 luma exactly; the BT.601 luma (JPEG's, Pillow's
    grey) moved with the chroma's magenta-green part, up to 1.14 levels of 255 on NASA images at the shipped
    strength. `hold_bt601_luma` keeps it within ``limit`` by the least change: the chroma moves only along that
    direction, and only where it was beyond the limit; gamut fitting afterwards only shrinks it further."""
    import torch

    held = hold_bt601_luma(torch.from_numpy(chroma.T.copy()), limit).numpy().T
    rgb = ycbcr_to_rgb(y, fit_chroma_to_gamut(y, held))
    assert np.all(np.abs(rgb @ BT601_WEIGHTS - y) <= limit + 1e-12)
    np.testing.assert_allclose(rgb @ LUMA_WEIGHTS, y, atol=1e-12)
    kept = np.abs(chroma @ BT601_SHIFT) <= limit
    np.testing.assert_array_equal(held[kept], chroma[kept])
    moved = held - chroma  # (along the one direction, and no further than the limit asks)
    direction = np.array(BT601_SHIFT) / np.hypot(*BT601_SHIFT)
    np.testing.assert_allclose(moved - np.outer(moved @ direction, direction), 0, atol=1e-12)
    after = ycbcr_to_rgb(y, held) @ BT601_WEIGHTS - y
    np.testing.assert_allclose(np.abs(after[~kept]), limit, atol=1e-12)

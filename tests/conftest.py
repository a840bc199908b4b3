"""Shared fixtures: paths to the small real data in tests/data (credits in tests/data/SOURCES.csv) and one Enhancer
with the shipped weights.  The tests need nothing outside this repository."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
FIXTURES = DATA / "fits"
COLOR = DATA / "color"
CFHT = DATA / "cfhtls"
HRC = FIXTURES / "j8bt06nyq_flt_crop.fits"  # rows 256:512, columns 192:448 of the ACS/HRC 47 Tuc frame
EXAMPLE = REPO / "examples" / "abell_2744_group_of_galaxies_f105w.fits.gz"


def pytest_configure(config):
    warnings.filterwarnings("ignore", category=UserWarning, module="astropy")


def engine_sigma(enhancer, data: np.ndarray, wcs=None):
    """The input noise sigma the engine's tolerances take for the grey frame ``data`` (no per-pixel noise): its
    noise map's, per pixel, where its depth varies (`io.noise.sky_noise_map`), else the frame's one (a number)."""
    from astroenhance.io.readers import from_array

    src = from_array(data, wcs)
    norm = enhancer.fit_normalizer(src, enhancer.config.for_input(True))
    return norm.sky_noise if src.noise_map is None else src.noise_map.sharp(None, 0, data.shape[0], 0, data.shape[1])


def display_block_levels(norm, lum: np.ndarray, scale: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 4x4 block means of a display luminance in the input's units (through the display mapping's inverse), and
    per block whether it holds pixels at the white point (light above it unseen) and whether it is all black."""
    h, w = lum.shape[0] // scale, lum.shape[1] // scale
    blocks = lambda a: a.reshape(h, scale, w, scale).swapaxes(1, 2).reshape(h, w, -1)  # noqa: E731
    lum = np.nan_to_num(lum.astype(np.float64))
    levels = blocks(norm.inverse(lum)).mean(axis=-1)
    return levels, blocks(lum).max(axis=-1) >= 1 - 1e-6, blocks(lum).max(axis=-1) <= 1e-6


def keeps_display_promise(norm, lum: np.ndarray, data: np.ndarray, sigma, tolerance: float,
                          slack: float = 1e-3) -> np.ndarray:
    """Per input pixel, whether the display block over it keeps the noise-consistent promise: its mean in the input's
    units within ``tolerance`` times the input's noise of the input pixel (``slack`` of that noise for float32
    outputs) — except that a block holding white pixels is only held below (its light above the white point is
    unseen), and an all-black block may stand above an input too far below the black point to reach."""
    levels, white, black = display_block_levels(norm, lum)
    allowed = tolerance * sigma * np.ones_like(data)
    low, high = data - allowed * (1 + slack), data + allowed * (1 + slack)
    floor = norm.inverse(np.zeros(1))[0]
    return ((levels >= low) | white) & ((levels <= high) | (black & (high <= floor)))


@pytest.fixture(scope="session")
def enhancer():
    from astroenhance.config import EnhanceConfig
    from astroenhance.pipeline import Enhancer

    return Enhancer(EnhanceConfig(device="cpu"))


@pytest.fixture(scope="session")
def hrc_crop():
    """A 96x80 crop of the ACS/HRC 47 Tuc frame (raw counts, cosmic rays), with its WCS."""
    from astroenhance.io.readers import read_frame

    data, wcs, _ = read_frame(HRC, dq_mask=0)  # the frame's rows 400:496, columns 300:380; every pixel, DQ or not
    return np.ascontiguousarray(data[144:240, 108:188]), wcs[144:240, 108:188]

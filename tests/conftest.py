"""Shared fixtures: paths to the small real data in tests/data (credits in tests/data/SOURCES.csv) and one Enhancer
with the shipped weights.  The tests need nothing outside this repository."""

from __future__ import annotations

import signal
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


def fuzz_examples(n: int) -> int:
    """A property test's ``n`` examples (the suite's own count), scaled by ``ASTROENHANCE_FUZZ_EXAMPLES`` (25 = as
    is; 1000 = 40x) for a longer search."""
    import os

    return max(1, round(n * int(os.environ.get("ASTROENHANCE_FUZZ_EXAMPLES", "25")) / 25))


def dead_pid() -> int:
    """The pid of a process that has ended (a run killed, as far as its temporaries' names can tell)."""
    import subprocess
    import sys

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    return ended.pid


def pytest_configure(config):
    warnings.filterwarnings("ignore", category=UserWarning, module="astropy")
    # Ctrl-C as a terminal gives it, however the suite was started: a shell starts a background job (`pytest &`,
    # nohup) with SIGINT ignored, Python then keeps it ignored, and so would the commands the tests start
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def engine_sigma(enhancer, data: np.ndarray, wcs=None):
    """The input noise sigma the engine's tolerances take for the grey frame ``data`` (no per-pixel noise): its
    noise map's, per pixel, where its depth varies (`io.noise.sky_noise_map`), else the frame's one (a number)."""
    from astroenhance.io.readers import from_array

    src = from_array(data, wcs)
    norm = enhancer.fit_normalizer(src, enhancer.config.for_input(True))
    return norm.sky_noise if src.noise_map is None else src.noise_map.sharp(None, 0, data.shape[0], 0, data.shape[1])


def keeps_display_promise(norm, lum: np.ndarray, data: np.ndarray, sigma, tolerance: float,
                          quantum: float = 1e-6, scale: int = 4) -> np.ndarray:
    """Per input pixel, whether the display block over it keeps the flux promise: its mean in the input's units
    (through the display mapping's inverse) within ``tolerance`` times the input's noise ``sigma`` of the input pixel
    (0: exactly), allowing each display value ``quantum`` of rounding (float32 1e-6; int16 planes 1e-5) — except that a
    block holding white pixels is only held from above (its light above the white point is unseen), and an all-black
    block may stand above an input too far below the black point to reach."""
    h, w = lum.shape[0] // scale, lum.shape[1] // scale
    d = np.nan_to_num(lum.astype(np.float64))

    def blocks(a: np.ndarray) -> np.ndarray:
        return a.reshape(h, scale, w, scale).swapaxes(1, 2).reshape(h, w, -1)

    lowest = blocks(norm.inverse(np.clip(d - quantum, 0, 1))).mean(axis=-1)
    highest = blocks(norm.inverse(np.clip(d + quantum, 0, 1))).mean(axis=-1)
    white, black = blocks(d).max(axis=-1) >= 1 - quantum, blocks(d).max(axis=-1) <= quantum
    allowed = tolerance * sigma * np.ones_like(data)
    floor = norm.inverse(np.zeros(1))[0]
    return (((highest >= data - allowed) | white)
            & ((lowest <= data + allowed) | (black & (data + allowed <= floor))))


@pytest.fixture(scope="session")
def enhancer():
    from astroenhance.config import EnhanceConfig
    from astroenhance.pipeline import Enhancer

    return Enhancer(EnhanceConfig(device="cpu"))


@pytest.fixture(scope="session")
def hrc_crop():
    """A 96x80 crop of the ACS/HRC 47 Tuc frame (raw counts, cosmic rays), with its WCS."""
    from astroenhance.io.readers import read_frame

    data, wcs, _ = read_frame(HRC, dq_mask=0, cosmic_rays=False)  # rows 400:496, columns 300:380; every pixel, DQ, hits
    return np.ascontiguousarray(data[144:240, 108:188]), wcs[144:240, 108:188]

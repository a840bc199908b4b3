"""Shared fixtures: paths to the real data in ../shared/data and one Enhancer with the shipped weights."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
FIXTURES = DATA / "fixtures" / "fits"
HST = DATA / "fits" / "hst"
COLOR = DATA / "fixtures" / "color"
EXAMPLE = REPO / "examples" / "abell_2744_group_of_galaxies_f105w.fits.gz"


def pytest_configure(config):
    warnings.filterwarnings("ignore", category=UserWarning, module="astropy")


@pytest.fixture(scope="session")
def enhancer():
    from astroenhance.config import EnhanceConfig
    from astroenhance.pipeline import Enhancer

    return Enhancer(EnhanceConfig(device="cpu"))


@pytest.fixture(scope="session")
def hrc_crop():
    """A 96x80 crop of the ACS/HRC 47 Tuc frame (raw counts, cosmic rays), with its WCS."""
    from astroenhance.io.readers import read_frame

    data, wcs, _ = read_frame(HST / "j8bt06nyq_flt.fits")
    return np.ascontiguousarray(data[400:496, 300:380]), wcs[400:496, 300:380]

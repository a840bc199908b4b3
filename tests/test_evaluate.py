"""Metrics against hand-computed values, baselines, and the evaluate command."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from astroenhance.cli import app
from astroenhance.training.evaluate import LumaChromaLUT, area_downsample, psnr, ssim

from .conftest import COLOR


def test_psnr_by_hand():
    a = np.zeros((4, 4))
    b = np.full((4, 4), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)
    assert psnr(a, a) == math.inf
    # uint8-style wraparound cannot happen: values are float64 differences
    assert psnr(np.array([0.0]), np.array([1.0])) == pytest.approx(0.0)


def test_ssim_identity_and_degradation():
    rng = np.random.default_rng(0)
    img = rng.random((32, 32))
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(img, np.clip(img + rng.normal(0, 0.2, img.shape), 0, 1)) < 0.9


def test_area_downsample_preserves_flux():
    img = np.random.default_rng(1).random((8, 12, 3))
    small = area_downsample(img, 4)
    assert small.shape == (2, 3, 3)
    assert small.sum() * 16 == pytest.approx(img.sum())


def test_lookup_table_recovers_a_luminance_colour_law():
    # images whose colour is a function of brightness: the table must learn it
    y = np.linspace(0, 1, 4096).reshape(64, 64)
    rgb = np.stack([y, y * 0.8, y * 0.5], -1)
    lut = LumaChromaLUT.fit([rgb], bins=32)
    from astroenhance.imaging.color import rgb_to_ycbcr

    yy, c = rgb_to_ycbcr(rgb)
    assert np.sqrt(((lut(yy) - c) ** 2).mean()) < 0.2 * np.sqrt((c**2).mean())


def test_evaluate_command(tmp_path):
    out = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["evaluate", "--task", "sr", "--data", str(COLOR), "--limit", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    got = json.loads(out.read_text())
    assert set(got["results"]) == {"nearest", "bicubic", "lanczos", "astroenhance"}
    assert "area" in got["protocol"]
    assert got["results"]["astroenhance"]["flux_err"] < 1e-3 < got["results"]["bicubic"]["flux_err"]

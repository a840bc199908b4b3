"""Metrics against hand-computed values, baselines, and the evaluate command."""

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from astroenhance.cli import app
from astroenhance.metrics import area_downsample, block_lattice, count_sources, groups_above, mse_8bit, psnr, ssim
from astroenhance.training.evaluate import LumaChromaLUT, evaluate_pipeline, false_sources

from .conftest import COLOR


def test_psnr_by_hand():
    a = np.zeros((4, 4))
    b = np.full((4, 4), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)
    assert psnr(a, a) == math.inf
    # uint8-style wraparound cannot happen: values are float64 differences
    assert psnr(np.array([0.0]), np.array([1.0])) == pytest.approx(0.0)
    # the paper's MSE column is in 8-bit units: PSNR = 10 log10(255^2 / MSE)
    assert mse_8bit(a, b) == pytest.approx(0.01 * 255**2)
    assert mse_8bit(np.array([0.0]), np.array([1.0])) == pytest.approx(255**2)
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / mse_8bit(a, b)))


def test_ssim_identity_and_degradation():
    rng = np.random.default_rng(0)
    img = rng.random((32, 32))
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(img, np.clip(img + rng.normal(0, 0.2, img.shape), 0, 1)) < 0.9
    # flat images: only the luminance term is left, (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1), C1 = 0.01^2
    a, b = np.full((16, 16), 0.2), np.full((16, 16), 0.4)
    assert ssim(a, b) == pytest.approx((2 * 0.2 * 0.4 + 1e-4) / (0.2**2 + 0.4**2 + 1e-4))
    # halving the contrast lowers it but keeps it positive; the negated image is anti-correlated: negative
    assert ssim(img, 1 - img) < 0 < ssim(img, img * 0.5 + 0.25) < 1


def test_area_downsample_preserves_flux():
    img = np.random.default_rng(1).random((8, 12, 3))
    small = area_downsample(img, 4)
    assert small.shape == (2, 3, 3)
    assert small.sum() * 16 == pytest.approx(img.sum())


def test_block_lattice_sees_block_steps_and_isolated_squares():
    """1 for an image without 4x4 structure; far above for blocks replicated; an isolated 4x4 square in smooth sky
    shows in the means over a mask, not in the medians."""
    rng = np.random.default_rng(0)
    smooth = rng.normal(0, 1, (64, 64))
    assert block_lattice(smooth) == pytest.approx(1.0, abs=0.15)
    blocky = np.kron(rng.normal(0, 1, (16, 16)), np.ones((4, 4))) + 0.01 * smooth
    assert block_lattice(blocky) > 20 and block_lattice(blocky.T) > 20
    square = 0.01 * smooth
    square[20:24, 28:32] += 1.0  # one block set apart
    everywhere = np.ones_like(square, bool)
    assert block_lattice(square) == pytest.approx(1.0, abs=0.15)  # the median does not see one square
    assert block_lattice(square, everywhere) > 1.5 and block_lattice(square.T, everywhere.T) > 1.5
    away = everywhere.copy()
    away[16:28, 24:36] = False  # a mask that leaves the square out sees none
    assert block_lattice(square, away) == pytest.approx(1.0, abs=0.15)


def test_lookup_table_recovers_a_luminance_colour_law():
    # images whose colour is a function of brightness: the table must learn it
    y = np.linspace(0, 1, 4096).reshape(64, 64)
    rgb = np.stack([y, y * 0.8, y * 0.5], -1)
    lut = LumaChromaLUT.fit([rgb], bins=32)
    from astroenhance.imaging.color import rgb_to_ycbcr

    yy, c = rgb_to_ycbcr(rgb)
    assert np.sqrt(((lut(yy) - c) ** 2).mean()) < 0.2 * np.sqrt((c**2).mean())


def test_evaluate_leaves_out_images_too_small_to_score_and_needs_a_positive_limit(tmp_path):
    """A thumbnail under 16 pixels a side (4 after 4x binning) was a torch traceback; now a note, and the others
    are scored. --limit counts the scored images; 0 or less is a usage error (it was a negative slice)."""
    import shutil

    from PIL import Image

    data = tmp_path / "imgs"
    data.mkdir()
    for p in sorted(COLOR.glob("*.png"))[:2]:
        shutil.copy(p, data / p.name)
    Image.fromarray(np.full((12, 40, 3), 90, np.uint8)).save(data / "aaa_thumb.png")  # sorts first
    ran = CliRunner().invoke(app, ["run", str(data / "aaa_thumb.png"), "-o", str(data), "--no-upscale", "-q"])
    assert ran.exit_code == 0, ran.output  # a run output among the images: left out, said (it was scored)
    result = CliRunner().invoke(app, ["evaluate", "--task", "sr", "--data", str(data), "--limit", "1",
                                      "--noise-frames", "0", "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 0, result.output
    assert "left out" in result.output and "aaa_thumb.png: 40x12 pixels" in result.output
    assert "aaa_thumb.enhanced.png: an astroenhance output" in " ".join(result.output.split())
    assert json.loads((tmp_path / "m.json").read_text())["images"] == 1
    (data / "aab_broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")  # named and left out; it stopped the run
    result = CliRunner().invoke(app, ["evaluate", "--task", "sr", "--data", str(data), "--noise-frames", "0"])
    assert result.exit_code == 0 and "aab_broken.png: not a readable image" in " ".join(result.output.split())
    for bad in ("0", "-3"):
        assert CliRunner().invoke(app, ["evaluate", "--task", "sr", "--data", str(data), "--limit", bad]).exit_code == 2
    # issue 18's crops: a side too small to score is refused; images smaller than the crop are said to be whole
    common = ["evaluate", "--task", "colorize", "--data", str(data), "--train-data", str(data), "--limit", "1"]
    assert CliRunner().invoke(app, [*common, "--crop", "3"]).exit_code == 2
    big = CliRunner().invoke(app, [*common, "--crop", "100000"])
    assert big.exit_code == 0 and "1 image(s) smaller than --crop 100000 scored whole" in big.output


def test_evaluate_command(tmp_path):
    out = tmp_path / "m.json"
    fig = tmp_path / "f.png"
    result = CliRunner().invoke(app, ["evaluate", "--task", "sr", "--data", str(COLOR), "--limit", "2", "--json", str(out),
                                      "--figure", str(fig), "--noise-frames", "2", "--per-image"])
    assert result.exit_code == 0, result.output
    got = json.loads(out.read_text())
    assert got["tool"].startswith("astroenhance ") and got["utc"].endswith("Z")
    # per-image values: one row per image, named, and their means are the table's
    rows = got["per_image"]
    assert len(rows) == 2 and all(r["image"] in result.output for r in rows)
    for method, metrics in got["results"].items():
        for k, v in metrics.items():
            assert np.mean([r[method][k] for r in rows]) == pytest.approx(v)
    assert set(got["results"]) == {"nearest", "bicubic", "lanczos", "astroenhance", "astroenhance_ungated"}
    assert set(got["false_sources"]) >= {"bicubic", "astroenhance", "astroenhance_ungated"}
    from PIL import Image

    with Image.open(fig) as im:
        width, height = im.size
    side = (width - 6) // 4 - 6
    assert width == 4 * (side + 6) + 6 and 32 <= side <= 192  # input | bicubic | astroenhance | original, 2 rows
    assert height > 2 * side
    assert "area" in got["protocol"]
    assert got["results"]["astroenhance"]["flux_err"] < 1e-3 < got["results"]["bicubic"]["flux_err"]
    assert got["results"]["nearest"]["flux_err"] < 1e-6  # nearest repeats each input pixel: block sums exact


def test_groups_below_the_minimum_area_are_left_out_and_the_rest_renumbered():
    img = np.zeros((20, 20))
    img[2, 2] = img[2, 3] = 1  # 2 pixels
    img[10:13, 10:12] = 1  # 6 pixels
    img[5, 15] = 1  # 1 pixel
    img[15:17, 2:5] = 1  # 6 pixels, diagonal neighbour of nothing
    lab, n = groups_above(img, 0.5)
    assert n == 4
    lab, n = groups_above(img, 0.5, min_area=5)
    assert n == 2 and set(np.unique(lab)) == {0, 1, 2}
    assert (lab > 0).sum() == 12 and lab[2, 2] == 0 and lab[5, 15] == 0
    assert groups_above(img, 0.5, min_area=7)[1] == 0


def test_count_sources_finds_planted_sources_only():
    img = np.random.default_rng(2).normal(0.1, 0.01, (64, 64))
    assert count_sources(img) <= 1
    img[10:12, 10:12] += 0.5
    img[40, 50] += 0.5
    assert count_sources(img) == 2


class _Bicubic(torch.nn.Module):
    """A "network" that is exactly bicubic interpolation (before the gate and the flux projection)."""

    def forward(self, t):
        import torch.nn.functional as F

        return F.interpolate(t, scale_factor=4, mode="bicubic", align_corners=False)


class _Sharpener(torch.nn.Module):
    """A "network" that turns every local maximum into a bright point: the hallucination the test must catch."""

    def forward(self, t):
        import torch
        import torch.nn.functional as F

        base = F.interpolate(t, scale_factor=4, mode="bicubic", align_corners=False)
        peak = (t == F.max_pool2d(t, 3, 1, 1)).float() * 0.3
        spike = torch.zeros_like(base)
        spike[..., 1::4, 1::4] = peak
        return base + spike


def test_false_source_test_flags_a_hallucinating_network_and_the_gate_stops_it():
    honest = false_sources(_Bicubic(), frames=2, size=64)
    assert honest["astroenhance_ungated"]["false_sources"] <= honest["bicubic"]["false_sources"] + 1
    bad = false_sources(_Sharpener(), frames=2, size=64)
    assert bad["astroenhance_ungated"]["false_sources"] > 20 * (bad["bicubic"]["false_sources"] + 1)
    assert bad["astroenhance"]["false_sources"] <= bad["bicubic"]["false_sources"] + 2


class _GreyColorizer(torch.nn.Module):
    """A "colorizer" that predicts no colour, with the interface `run`'s engine uses (thumbnail context)."""

    thumb_size = 16

    def global_features(self, thumb):
        return torch.zeros(thumb.shape[0], 1)

    def forward(self, t, context=None):
        return torch.zeros(t.shape[0], 2, *t.shape[-2:])


def test_pipeline_metrics_by_hand():
    rgb = np.zeros((16, 16, 3))
    rgb[..., 0] = 0.5  # pure red: chroma (Cb, Cr) known
    from astroenhance.imaging.color import rgb_to_ycbcr

    y, c = rgb_to_ycbcr(rgb)
    res = evaluate_pipeline(_Bicubic(), _GreyColorizer(), [("red", rgb)], LumaChromaLUT(np.zeros((8, 2))))
    assert res["bicubic_grey"]["chroma_rms"] == pytest.approx(np.sqrt((c**2).mean()))
    assert res["astroenhance"]["chroma_rms"] == pytest.approx(res["bicubic_grey"]["chroma_rms"])
    assert res["astroenhance"]["psnr_lum"] > 100  # flat luminance is reproduced (to float32 rounding)


def test_colorizer_metrics_per_image_and_pooled_by_hand():
    from astroenhance.imaging.color import rgb_to_ycbcr
    from astroenhance.training.evaluate import evaluate_colorizer

    red, blue = np.zeros((8, 8, 3)), np.zeros((4, 4, 3))
    red[..., 0], blue[..., 2] = 0.5, 0.25
    rows: list[dict] = []
    res = evaluate_colorizer(_GreyColorizer(), [("red", red), ("blue", blue)], LumaChromaLUT(np.zeros((8, 2))), per_image=rows)
    sq = [float((rgb_to_ycbcr(im)[1] ** 2).sum()) for im in (red, blue)]
    assert [r["image"] for r in rows] == ["red", "blue"]
    assert rows[0]["grey"]["chroma_rms"] == pytest.approx(math.sqrt(sq[0] / 128))
    assert rows[1]["astroenhance"]["chroma_rms"] == pytest.approx(math.sqrt(sq[1] / 32))
    # pooled over pixels (the big image weighs 4x), not the mean of the two
    assert res["grey"]["chroma_rms"] == pytest.approx(math.sqrt(sum(sq) / 160))


def test_evaluate_pipeline_command(tmp_path):
    out = tmp_path / "p.json"
    res = CliRunner().invoke(app, ["evaluate", "--task", "pipeline", "--data", str(COLOR), "--train-data", str(COLOR),
                                   "--limit", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert set(json.loads(out.read_text())["results"]) == {"bicubic_grey", "bicubic_lut", "astroenhance"}
    res = CliRunner().invoke(app, ["evaluate", "--task", "pipeline", "--data", str(COLOR)])
    assert res.exit_code == 2 and "--train-data" in res.output


def test_issue_18_protocol_centre_crops_bt601_per_image_mean_by_hand(tmp_path):
    """--crop N: centre crops, BT.601 chroma RMS per image, the mean over images (not pooled), and the worst excess
    over grey; a grey colorizer is exactly grey."""
    from astroenhance.imaging.color import BT601_WEIGHTS as BT601
    from astroenhance.training.evaluate import evaluate_colour_per_image

    big = np.zeros((20, 30, 3))
    big[5:15, 10:20, 0] = 200 / 255  # a red centre square, nothing around it
    small = np.zeros((6, 6, 3))
    small[..., 2] = 128 / 255
    rows: list[dict] = []
    res = evaluate_colour_per_image(_GreyColorizer(), [("big", big), ("small", small)],
                                    LumaChromaLUT(np.zeros((8, 2))), crop=10, per_image=rows)

    def rms_601(rgb):
        y = rgb @ BT601
        return math.sqrt(np.mean(np.stack([(rgb[..., 2] - y) / 1.772, (rgb[..., 0] - y) / 1.402]) ** 2))

    want = [rms_601(big[5:15, 10:20]), rms_601(small)]  # the crop holds only the red square; the small one is whole
    assert [r["grey"]["chroma_rms"] for r in rows] == pytest.approx(want, abs=2e-3)  # (8-bit grey input)
    assert res["grey"]["chroma_rms_mean"] == pytest.approx(np.mean([r["grey"]["chroma_rms"] for r in rows]))
    assert res["astroenhance"]["chroma_rms_mean"] == pytest.approx(res["grey"]["chroma_rms_mean"], abs=1e-3)
    assert res["grey"]["worst_minus_grey"] == 0 and abs(res["astroenhance"]["worst_minus_grey"]) < 2e-3
    # the luminance promise, in 8-bit steps: grey is the input itself; a table that tints a saturated red square
    # cannot keep its luma within the gamut
    assert res["grey"]["luma_change_255"] == 0 and res["astroenhance"]["luma_change_255"] <= 1
    tinted = evaluate_colour_per_image(_GreyColorizer(), [("big", big)], LumaChromaLUT(np.full((8, 2), 0.4)), crop=10)
    assert tinted["lookup_table"]["luma_change_255"] > 1
    out = tmp_path / "c.json"
    cli = CliRunner().invoke(app, ["evaluate", "--task", "colorize", "--data", str(COLOR), "--train-data", str(COLOR),
                                   "--limit", "2", "--crop", "64", "--json", str(out)])
    assert cli.exit_code == 0, cli.output
    got = json.loads(out.read_text())
    assert set(got["results"]["astroenhance"]) == {"chroma_rms_mean", "worst_minus_grey", "luma_change_255"}
    assert len(got["per_image"]) == 2 and got["results"]["astroenhance"]["luma_change_255"] <= 1


@pytest.mark.parametrize("task", ["sr", "hst"])
def test_an_unwritable_json_or_figure_path_is_refused_before_measuring(tmp_path, task):
    """A --json or --figure in a folder that does not exist, or naming a folder: a usage error at once (it was a
    traceback after the whole evaluation)."""
    for option, path in (("--json", tmp_path / "no" / "m.json"), ("--figure", tmp_path)):
        result = CliRunner().invoke(app, ["evaluate", "--task", task, "--data", str(COLOR), option, str(path)],
                                    terminal_width=300)
        assert result.exit_code == 2 and f"usage error: {option} {path}" in result.output, result.output


def test_grey_images_are_left_out_of_a_colour_evaluation_and_named(tmp_path):
    """A black-and-white picture among held-out colour images never recorded its scene's colours: `--task colorize`
    (and pipeline) leave it out with a note naming it — a grey PNG, a grey scanned as RGB (R, G, B a step or two apart)
    — and score the colour images; `--task sr` scores it (its luminance is the task)."""
    from PIL import Image

    src = sorted(p for p in COLOR.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[0]
    rgb = np.asarray(Image.open(src).convert("RGB"))
    for name in ("a_colour.png", "b_also_colour.png"):
        Image.fromarray(rgb).save(tmp_path / name)
    Image.fromarray(rgb).convert("L").save(tmp_path / "c_grey.png")
    grey = np.asarray(Image.fromarray(rgb).convert("L"), np.int16)  # scanned: R, G, B a step apart here and there
    steps = np.random.default_rng(0).integers(-1, 2, (*grey.shape, 3))
    Image.fromarray(np.clip(grey[..., None] + steps, 0, 255).astype(np.uint8)).save(tmp_path / "d_grey_scan.png")
    out = tmp_path / "c.json"
    cli = CliRunner().invoke(app, ["evaluate", "--task", "colorize", "--data", str(tmp_path), "--train-data",
                                   str(COLOR), "--crop", "64", "--per-image", "--json", str(out)], terminal_width=300)
    assert cli.exit_code == 0, cli.output
    for grey in ("c_grey.png", "d_grey_scan.png"):
        assert f"note: left out {tmp_path / grey}: a grey image, no colour to score against" in cli.output
    assert [r["image"] for r in json.loads(out.read_text())["per_image"]] == ["a_colour.png", "b_also_colour.png"]
    sr = CliRunner().invoke(app, ["evaluate", "--task", "sr", "--data", str(tmp_path), "--noise-frames", "0",
                                  "--per-image"], terminal_width=300)
    assert sr.exit_code == 0 and "grey image" not in sr.output and "d_grey_scan.png" in sr.output, sr.output

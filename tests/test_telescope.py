"""Super-resolution for real frames: the noise-normalised space, the telescope model's pairs, its trainer, and a
noise-space network through `run`'s engine (flux promise, provenance)."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st

from astroenhance.config import EnhanceConfig
from astroenhance.errors import SettingsError
from astroenhance.imaging.normalize import Normalizer
from astroenhance.metrics import area_downsample
from astroenhance.models.registry import build_model
from astroenhance.models.weights import export_weights
from astroenhance.pipeline import Enhancer
from astroenhance.pipeline.space import from_noise_space, to_noise_space
from astroenhance.training.telescope import (
    TelescopeConfig,
    TelescopeTrainer,
    Truth,
    block_edge_steps,
    drizzle_like,
    make_pair,
    moffat_psf,
    pixel_integrated_psf,
    project_within,
    sersic,
    smooth_background,
    synthetic_field,
)

from .conftest import FIXTURES, REPO, keeps_display_promise


@pytest.mark.parametrize("as_torch", [False, True])
def test_noise_space_is_exactly_invertible_and_noise_normalised(as_torch):
    rng = np.random.default_rng(0)
    x = 5.0 + np.concatenate([rng.normal(0, 0.1, 5000), [1e4, -3.0]])
    n = to_noise_space(torch.from_numpy(x) if as_torch else x, sky=5.0, sigma=0.1)
    back = from_noise_space(n, sky=5.0, sigma=0.1)
    np.testing.assert_allclose(np.asarray(back), x, rtol=1e-12, atol=1e-12)
    # near the sky it is linear in units of beta sigma: the noise has spread 1/3 whatever the frame's units
    assert np.std(np.asarray(n)[:5000]) == pytest.approx(1 / 3, rel=0.05)
    assert np.asarray(n)[-2] < 1e-3 * (1e4 - 5) / 0.3  # a bright core is compressed (logarithmic), never clipped


def test_profiles_and_fields_are_what_they_claim():
    img = sersic((101, 101), 50, 50, 8.0, 1.0, 1.0, 0.0)
    assert img.sum() == pytest.approx(1.0)
    y, x = np.mgrid[:101, :101]
    inside = img[np.hypot(x - 50, y - 50) <= 8.0].sum()
    assert inside == pytest.approx(0.5, abs=0.05)  # half the light inside r_e
    assert moffat_psf(3.0).sum() == pytest.approx(1.0)
    f1, f2 = synthetic_field(np.random.default_rng(3), 64), synthetic_field(np.random.default_rng(3), 64)
    np.testing.assert_array_equal(f1, f2)  # deterministic per seed
    assert f1.min() > -1e-9 and f1.max() > 0
    # a large galaxy, when asked for, is added on top of the same field (runs without it stay reproducible)
    seeds = range(40)
    plain = [synthetic_field(np.random.default_rng(s), 64) for s in seeds]
    big = [synthetic_field(np.random.default_rng(s), 64, big=0.5) for s in seeds]
    added = [b - p for p, b in zip(plain, big)]
    assert all(a.min() > -1e-6 for a in added)
    with_galaxy = [a for a in added if a.max() > 1e-6]
    assert 10 <= len(with_galaxy) <= 30  # about half the fields
    # extended over the crop (a halo or a core, not a point source)
    assert all((a > 0.01 * a.max()).sum() > 400 for a in with_galaxy)


def test_sharp_psfs_sample_the_core_as_a_detector_whose_pixels_match_it():
    psf = pixel_integrated_psf(1.3, 2.5)
    assert psf.shape == (15, 15) and psf.sum() == pytest.approx(1.0)
    assert psf.max() == psf[7, 7] and 0.2 < psf.max() < 0.5  # most of the light in a few pixels
    # more peaked than the sharpest PSF of the plain fields (FWHM 1.8, the steepest wings: beta 4)
    assert psf.max() > 1.2 * moffat_psf(1.8, 4.0).max()
    # the same fields, only drawn through the sharper PSF when asked (runs without it stay reproducible)
    seeds = range(30)
    plain = [synthetic_field(np.random.default_rng(s), 64) for s in seeds]
    off = [synthetic_field(np.random.default_rng(s), 64, sharp=0.0) for s in seeds]
    assert all(np.array_equal(a, b) for a, b in zip(plain, off))
    sharp = [synthetic_field(np.random.default_rng(s), 64, sharp=0.5) for s in seeds]
    changed = [not np.allclose(a, b) for a, b in zip(plain, sharp)]
    assert 5 <= sum(changed) <= 25
    for p, q, c in zip(plain, sharp, changed):
        if c:
            assert q.sum() == pytest.approx(p.sum(), rel=0.05)  # the same light, only spread less
            assert q.max() >= p.max()


def test_wide_psfs_give_inputs_sampled_as_a_drizzled_frame_samples_its_psf(monkeypatch):
    import astroenhance.training.telescope as tel

    seeds = range(30)
    plain = [synthetic_field(np.random.default_rng(s), 96) for s in seeds]
    drawn = []
    moffat = tel.moffat_psf
    monkeypatch.setattr(tel, "moffat_psf", lambda fwhm, beta=2.5, size=25: drawn.append((fwhm, size))
                        or moffat(fwhm, beta, size))
    wide = [synthetic_field(np.random.default_rng(s), 96, wide=0.5) for s in seeds]
    changed = [not np.allclose(a, b) for a, b in zip(plain, wide)]
    assert 5 <= sum(changed) <= 25
    # one Moffat per field (FWHM 1.8-4) and one more for each wide one, 1.2-3.5 pixels once binned 4x, on a grid
    # that holds its wings
    widths = [(f, n) for f, n in drawn if f > 4.0]
    assert len(drawn) == len(seeds) + sum(changed) and len(widths) == sum(changed)
    assert all(1.2 <= f / 4 <= 3.5 and n >= 6 * f - 1 and n % 2 for f, n in widths)
    for p, q, c in zip(plain, wide, changed):
        if c:  # the same sources, their light spread wider (a little of it past the crop's edges)
            assert q.sum() == pytest.approx(p.sum(), rel=0.2) and q.max() < p.max()


def test_pairs_bin_by_block_means_and_map_both_sides_alike():
    truth = synthetic_field(np.random.default_rng(4), 128)
    x, y = make_pair(truth, 0.0, 1.0, 0.0, np.random.default_rng(5))  # k = 0: no added noise
    assert x.shape == (32, 32) and y.shape == (128, 128)
    from astroenhance.pipeline.finish import estimate_noise

    sigma = max(estimate_noise(area_downsample(truth, 4), lag=2), 1e-12)  # as make_pair (and run) measure it
    np.testing.assert_allclose(from_noise_space(x.astype(np.float64), 0.0, sigma),
                               area_downsample(truth, 4), rtol=1e-4, atol=1e-9)


def test_pairs_mapped_with_the_exact_sigma_are_the_input_an_err_extension_gives_run(tmp_path):
    """``exact_sigma``: a pair is mapped with ``k * rms`` (what ERR or WHT tells `run`), so that mapping back with it
    gives the noisy input exactly; the crop's own estimate is lifted by its sources (a crowded synthetic crop), and
    the trainer uses one or the other as ``pair_sigma`` says (the same draws either way)."""
    truth = synthetic_field(np.random.default_rng(4), 96)
    k, rms = 0.5, 1.0
    lr = area_downsample(truth, 4) + np.random.default_rng(5).normal(0.0, k * rms, (24, 24))  # make_pair's draws
    maps = {e: make_pair(truth, 0.0, rms, k, np.random.default_rng(5), exact_sigma=e)[0] for e in (False, True)}
    np.testing.assert_allclose(from_noise_space(maps[True].astype(np.float64), 0.0, k * rms), lr, rtol=1e-4,
                               atol=1e-6)
    from astroenhance.pipeline.finish import estimate_noise

    assert estimate_noise(lr, lag=2) > 1.05 * k * rms  # what "measured" maps it with: this crop's sources lift it
    np.testing.assert_allclose(from_noise_space(maps[False].astype(np.float64), 0.0, estimate_noise(lr, lag=2)), lr,
                               rtol=1e-4, atol=1e-6)
    truths = [Truth("field", synthetic_field(np.random.default_rng(6), 160).astype(np.float32), 0.0, rms)]
    batches = {}
    for mode in ("measured", "exact"):
        cfg = TelescopeConfig(out=str(tmp_path / mode), iters=1, batch=3, crop=8, synthetic=0.0, pair_sigma=mode)
        batches[mode] = TelescopeTrainer(cfg, truths, truths).batch(7)[0]
    assert not torch.equal(batches["measured"], batches["exact"])
    with pytest.raises(SettingsError, match="pair-sigma"):
        TelescopeTrainer(TelescopeConfig(out=str(tmp_path / "x"), pair_sigma="guessed"), truths, truths)


def test_correlated_pairs_share_noise_between_neighbours_at_the_same_sigma():
    flat = np.full((256, 256), 10.0)
    pairs = {c: make_pair(flat, 10.0, 1.0, 2.0, np.random.default_rng(6), correlated=c) for c in (False, True)}
    for c, (x, _) in pairs.items():
        lin = from_noise_space(x.astype(np.float64), 10.0, 1.0) - 10.0  # back to linear (the sigma cancels)
        noise = lin / lin.std()
        rho = float((noise[:, 1:] * noise[:, :-1]).mean())
        assert (rho > 0.25) if c else (abs(rho) < 0.05)
    rng = np.random.default_rng(7)
    assert drizzle_like(rng.normal(0, 3.0, (300, 300)), rng).std() == pytest.approx(3.0, rel=0.03)
    again = make_pair(flat, 10.0, 1.0, 2.0, np.random.default_rng(6), correlated=True)
    np.testing.assert_array_equal(again[0], pairs[True][0])  # deterministic per seed


def test_photon_noise_doubles_the_variance_where_a_source_is_photons_sky_sigmas_bright():
    """`make_pair(photons=B)`: the input's noise variance is the sky's where there is no light and twice it where the
    light above the sky is B sky sigmas (binned); without it (or B = 0) the same everywhere, the same draws."""
    sky, k, rms, b = 10.0, 2.0, 1.0, 5.0
    truth = np.full((512, 512), sky)
    truth[:, 256:] += b * k * rms  # the right half: B sky sigmas of light in every input pixel
    x, y = make_pair(truth, sky, rms, k, np.random.default_rng(3), photons=b)
    lin = from_noise_space(x.astype(np.float64), sky, 1.0)  # (in units of the measured sigma: ratios are what count)
    dark, bright = lin[:, :64] - sky, lin[:, 64:] - sky - b * k * rms
    assert np.var(bright) / np.var(dark) == pytest.approx(2.0, rel=0.08)
    plain, _ = make_pair(truth, sky, rms, k, np.random.default_rng(3))
    lin0 = from_noise_space(plain.astype(np.float64), sky, 1.0)
    assert np.var(lin0[:, 64:] - sky - b * k * rms) / np.var(lin0[:, :64] - sky) == pytest.approx(1.0, rel=0.08)
    np.testing.assert_array_equal(make_pair(truth, sky, rms, k, np.random.default_rng(3), photons=0.0)[0], plain)


def test_training_through_the_flux_promise_keeps_blocks_within_the_tolerance_and_passes_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 6, 6) * 2
    out = (torch.randn(2, 1, 24, 24) * 2).requires_grad_()
    got = project_within(out, x, 2.0)
    resid = (F.avg_pool2d(torch.sinh(got), 4) - torch.sinh(x)) * 3  # in input sigmas (beta = 3)
    assert resid.abs().max() <= 2.0 + 1e-3
    before = (F.avg_pool2d(torch.sinh(out), 4) - torch.sinh(x)) * 3
    inside = (before.abs() <= 2.0).repeat_interleave(4, -1).repeat_interleave(4, -2)
    torch.testing.assert_close(got[inside], out[inside], atol=1e-5, rtol=1e-5)  # consistent blocks untouched
    got.sum().backward()
    assert out.grad is not None and torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.01, 1.0))
def test_block_edge_steps_see_a_4x4_pattern_and_nothing_else(seed, amplitude):
    """The edge term is zero for the truth itself, a slope's own step for a sloped difference (as at any step: no
    preference for edges), and grows with a block-constant pattern (a value per 4x4 block: the sky's lattice) in
    proportion to its amplitude."""
    g = torch.Generator().manual_seed(seed)
    truth = torch.randn(2, 1, 16, 20, generator=g)
    assert block_edge_steps(truth, truth) == 0
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(20.0), indexing="ij")
    sloped = block_edge_steps(truth + amplitude * 0.01 * (xx + 2 * yy), truth)
    torch.testing.assert_close(sloped, torch.tensor(amplitude * 0.015), rtol=1e-3, atol=1e-6)
    blocks = torch.randn(2, 1, 4, 5, generator=g).repeat_interleave(4, -2).repeat_interleave(4, -1)
    step = block_edge_steps(truth + amplitude * blocks, truth)
    assert step > 0.3 * amplitude
    torch.testing.assert_close(block_edge_steps(truth + 2 * amplitude * blocks, truth), 2 * step)


def test_the_edge_weight_trains_the_edges_it_penalises(tmp_path):
    """With ``edge_weight`` the trainer's loss is the pixel loss plus that times the edge term (the same batches, a
    different gradient); without, the models trained are identical to the pixel loss alone."""
    from astroenhance.training.hst import load_truth

    data, _ = load_truth(FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz")
    truths = [Truth("dwarf", data.astype(np.float32), float(np.median(data)), 0.01)]
    runs = {}
    for w in (0.0, 5.0):
        cfg = TelescopeConfig(out=str(tmp_path / f"w{w}"), iters=3, batch=2, crop=16, val_every=3, lr=1e-3,
                              edge_weight=w)
        t = TelescopeTrainer(cfg, truths, truths)
        last = t.run()
        runs[w] = (t, last)
    (plain, a), (edged, b) = runs[0.0], runs[5.0]
    assert b["loss"] > a["loss"]  # the edge term added to the same pixel loss
    assert any(not torch.equal(u, v) for u, v in zip(plain.model.state_dict().values(),
                                                      edged.model.state_dict().values()))


def test_the_real_loss_applies_to_the_pairs_whose_truth_is_a_real_frame():
    """`--real-loss mse` beside `--loss l1`: the real (noisy) truths' pairs learn the mean (their best constant answer
    for 0, 0, 0, 1 is 0.25), the noise-free ones the median (0); unset, every pair takes --loss."""
    from astroenhance.training.telescope import pixel_loss

    truth = torch.tensor([0.0, 0.0, 0.0, 1.0] * 2).view(8, 1, 1, 1)
    noise_free = torch.tensor([True] * 4 + [False] * 4)
    answers = torch.linspace(-0.5, 1.5, 201)
    cfg = TelescopeConfig(loss="l1", real_loss="mse")

    def best(rows):
        costs = [pixel_loss(cfg, c.expand(4, 1, 1, 1), truth[rows], noise_free[rows]) for c in answers]
        return float(answers[torch.stack(costs).argmin()])

    assert best(slice(0, 4)) == pytest.approx(0.0, abs=0.011)
    assert best(slice(4, 8)) == pytest.approx(0.25, abs=0.011)
    out = torch.randn(8, 1, 1, 1)
    want = torch.cat([(out - truth)[:4].abs(), (out - truth)[4:].square()]).mean()
    torch.testing.assert_close(pixel_loss(cfg, out, truth, noise_free), want)
    torch.testing.assert_close(pixel_loss(TelescopeConfig(loss="l1", real_loss="l1"), out, truth, noise_free),
                               pixel_loss(TelescopeConfig(loss="l1"), out, truth, noise_free))
    with pytest.raises(SettingsError, match="--real-loss 'huber'"):
        TelescopeTrainer(TelescopeConfig(real_loss="huber", synthetic=1.0, iters=1), [], [])


@pytest.mark.parametrize("loss", ["l1", "mse"])
def test_the_source_weight_keeps_a_source_the_median_would_flatten(loss):
    """One pixel whose noise-free truth is the sky (0) in 6 pairs and a faint source (1, above `SOURCE_LEVEL`) in 4:
    the plain L1's best constant answer is the sky (the median), the source-weighted one's (W = 2: 12 vs 6) the
    source. Real (not noise-free) truths and W = 0 give the plain loss exactly."""
    from astroenhance.training.telescope import SOURCE_LEVEL, pixel_loss

    truth = torch.tensor([0.0] * 6 + [1.0] * 4).view(10, 1, 1, 1)
    assert 1.0 > SOURCE_LEVEL > 0.0
    noise_free = torch.ones(10, dtype=torch.bool)
    answers = torch.linspace(-0.5, 1.5, 201)

    def best(cfg, flags):
        return float(answers[torch.stack([pixel_loss(cfg, c.expand_as(truth), truth, flags) for c in answers]).argmin()])

    plain = TelescopeConfig(loss=loss)
    weighted = TelescopeConfig(loss=loss, source_weight=2.0)
    if loss == "l1":
        assert best(plain, noise_free) == pytest.approx(0.0, abs=0.011)
        assert best(weighted, noise_free) == pytest.approx(1.0, abs=0.011)
    else:  # the mean moves from 0.4 to 12/18
        assert best(plain, noise_free) == pytest.approx(0.4, abs=0.011)
        assert best(weighted, noise_free) == pytest.approx(2 / 3, abs=0.011)
    out = torch.randn(10, 1, 1, 1)
    torch.testing.assert_close(pixel_loss(weighted, out, truth, torch.zeros(10, dtype=torch.bool)),
                               pixel_loss(plain, out, truth))
    torch.testing.assert_close(pixel_loss(weighted, out, truth), pixel_loss(plain, out, truth))


def test_train_sr_hst_source_weight_reaches_the_run_and_the_manifest(tmp_path):
    """`--source-weight` is the run's (config.json) and the exported weights' manifest records it."""
    from typer.testing import CliRunner

    from astroenhance.cli import app
    from astroenhance.training.export import export_checkpoint

    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "sr-hst", "--synthetic", "1", "--source-weight", "3", "--iters", "1",
                                   "--crop", "16", "--batch", "2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "config.json").read_text())["source_weight"] == 3.0
    info = export_checkpoint(out / "ckpt.pt", tmp_path / "w", "sr-hst-test")
    assert info.extra["degradation"]["source_weight"] == 3.0


def test_trainer_resumes_exactly_and_learns(tmp_path):
    from astroenhance.training.hst import load_truth

    data, _ = load_truth(FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz")
    truths = [Truth("dwarf", data.astype(np.float32), float(np.median(data)), 0.01)]
    cfg = TelescopeConfig(out=str(tmp_path / "a"), iters=6, batch=2, crop=16, val_every=3, synthetic=0.5, lr=1e-3)
    a = TelescopeTrainer(cfg, truths, truths)
    a.run()
    cfg_b = TelescopeConfig(**{**cfg.__dict__, "out": str(tmp_path / "b")})
    TelescopeTrainer(cfg_b, truths, truths).run(stop_after=3)  # interrupted after its step-3 checkpoint
    b = TelescopeTrainer(cfg_b, truths, truths)
    b.load(tmp_path / "b" / "ckpt.pt")
    assert b.step == 3
    b.run()
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    np.testing.assert_array_equal(a.batch(2)[0].numpy(), b.batch(2)[0].numpy())
    from astroenhance.training.export import export_checkpoint

    # started from a's weights: the run records their sha256 (config.json, checkpoint, manifest)
    c = TelescopeTrainer(TelescopeConfig(**{**cfg.__dict__, "out": str(tmp_path / "c"), "iters": 1,
                                            "init": str(tmp_path / "a" / "ckpt.pt")}), truths, truths)
    c.run()
    want = (tmp_path / "a" / "ckpt.pt.sha256").read_text().split()[0]
    assert json.loads((tmp_path / "c" / "config.json").read_text())["init_sha256"] == want
    info = export_checkpoint(tmp_path / "c" / "ckpt.pt", tmp_path / "w", "sr-hst-test")
    assert info.extra["hyperparameters"]["init_sha256"] == want


def test_gan_stage_learns_adversarially_from_noise_free_truths_only_and_resumes_exactly(tmp_path):
    """`train sr-hst --stage gan`: the discriminator sees only the synthetic (noise-free) truths — a real truth's own
    noise would be what it teaches the network to paint — and a batch without one is the pixel loss alone, the
    discriminator untouched; the run, discriminator and its optimizer included, resumes exactly."""
    from astroenhance.training.hst import load_truth

    data, _ = load_truth(FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz")
    truths = [Truth("dwarf", data.astype(np.float32), float(np.median(data)), 0.01)]
    cfg = TelescopeConfig(out=str(tmp_path / "a"), iters=4, batch=4, crop=8, val_every=2, synthetic=0.5, lr=1e-3,
                          stage="gan", feature_net="random:mobilenet_v2")
    g = TelescopeTrainer(cfg, truths, truths)
    x, y, synthetic = g.batch(0)
    assert synthetic.dtype == torch.bool and 0 < int(synthetic.sum()) < 4
    real_only = ~synthetic
    before = {k: v.clone() for k, v in g.disc.state_dict().items()}
    out = g.model(x[real_only])
    loss, parts = g.gan_losses(out, y[real_only], synthetic[real_only], cfg.lr)
    torch.testing.assert_close(loss, F.l1_loss(out, y[real_only]))
    assert set(parts) == {"pixel"} and all(torch.equal(v, g.disc.state_dict()[k]) for k, v in before.items())
    a = TelescopeTrainer(cfg, truths, truths)
    last = a.run()
    assert {"content", "adv", "d_loss", "d_real", "d_fake"} <= set(last)
    assert not all(torch.equal(v, a.disc.state_dict()[k]) for k, v in before.items())
    cfg_b = TelescopeConfig(**{**cfg.__dict__, "out": str(tmp_path / "b")})
    TelescopeTrainer(cfg_b, truths, truths).run(stop_after=2)
    b = TelescopeTrainer(cfg_b, truths, truths)
    b.load(tmp_path / "b" / "ckpt.pt")
    b.run()
    for module in ("model", "disc"):
        for (ka, va), (kb, vb) in zip(getattr(a, module).state_dict().items(), getattr(b, module).state_dict().items()):
            assert ka == kb and torch.equal(va, vb)
    with pytest.raises(SettingsError, match="not a gan-stage run"):
        TelescopeTrainer(cfg, truths, truths).load(_pretrain_checkpoint(tmp_path, truths))


def _pretrain_checkpoint(tmp_path, truths):
    t = TelescopeTrainer(TelescopeConfig(out=str(tmp_path / "p"), iters=1, batch=2, crop=8, val_every=1), truths, [])
    t.run()
    return tmp_path / "p" / "ckpt.pt"


def test_noise_space_network_through_run_keeps_the_flux_promise_and_says_so(tmp_path):
    """A noise-space network in the manifest: `run` maps a frame into its space and back, the gate is off by
    default, the output's 4x4 block means are the input's display values, and the headers say which space."""
    from astropy.io import fits

    model = build_model("srresnet-8x32")
    wdir = tmp_path / "w"
    export_weights(model, wdir, {"id": "sr-hst-test", "task": "sr", "mode": "hst", "architecture": "srresnet-8x32",
                                 "file": "sr-hst-test.safetensors", "input_space": "noise-asinh", "beta": 3.0})
    enh = Enhancer(EnhanceConfig(device="cpu", colorize=False, sr_model="hst", weights=str(wdir), formats=("fits",),
                                 fits_encoding="float32"))
    assert enh.sr_space == "noise-asinh" and enh.config.noise_gate is False
    [res] = enh.enhance_file(FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz", tmp_path / "o")
    with fits.open(res.outputs[0]) as h:
        assert h[0].header["AE_SRSPC"] == "noise-asinh" and h[0].header["AE_GATE"] is False
        assert h[0].header["AE_SKYSG"] > 0
        lum = h["GREEN"].data.astype(np.float64)
        assert h[0].header["AE_FLUX"] is True and h[0].header["AE_FLUXT"] == 2.0 and h[0].header["AE_DISPT"] == 4.0
    data = fits.getdata(FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz").astype(np.float64)
    # noise-consistent by default: every display block mean, in the input's units, within 4 sigma of the input pixel
    assert np.all(keeps_display_promise(res.normalizer, lum, data, res.normalizer.sky_noise, 4.0))
    exact = Enhancer(EnhanceConfig(device="cpu", colorize=False, sr_model="hst", weights=str(wdir), formats=("fits",),
                                   flux_tolerance=0.0))
    [res0] = exact.enhance_file(FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz", tmp_path / "exact")
    lum0 = fits.getdata(res0.outputs[0], "GREEN").astype(np.float64)
    # exact: every block's mean in the input's units is the input pixel (int16 display planes: their rounding)
    assert np.all(keeps_display_promise(res.normalizer, lum0, data, 0.0, 0.0, quantum=1e-5))
    assert not np.all(keeps_display_promise(res.normalizer, lum, data, 0.0, 0.0, quantum=1e-5))  # the default is not


def test_noise_consistent_flux_moves_only_what_noise_cannot_explain():
    from astroenhance.pipeline.finish import block_levels_within, block_means

    rng = np.random.default_rng(7)
    target = rng.uniform(0.2, 0.8, (8, 8))
    sigma = np.full((8, 8), 0.01)
    out = np.repeat(np.repeat(target, 4, 0), 4, 1) + rng.normal(0, 0.02, (32, 32))
    out[:4, :4] += 0.1  # one block far off: pulled back to the edge of the tolerance
    display = Normalizer("linear", "range", 0.0, 1.0, 1.0)  # the display is the input's units here
    fixed = block_levels_within(torch.from_numpy(out), torch.from_numpy(target - 2.0 * sigma),
                                   torch.from_numpy(target + 2.0 * sigma), 4, display).numpy()
    resid = block_means(fixed, 4) - target
    assert np.all(np.abs(resid) <= 2.0 * sigma + 1e-6)  # float32 output
    assert abs(resid[0, 0]) == pytest.approx(0.02, abs=1e-6)
    inside = np.abs(block_means(out, 4) - target) <= 2.0 * sigma
    keep = np.kron(inside, np.ones((4, 4))).astype(bool)
    np.testing.assert_allclose(fixed[keep], out[keep], atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.05]), st.booleans(), st.floats(0.5, 4.0))
def test_only_the_blocks_beyond_the_promise_are_worked_on(seed, tol, sigma_map, spread):
    """`block_levels_within` moves the blocks beyond the promise and leaves the others as they were (to float32's
    last bit): the same result as working on every block (the reference: structured correction, bounded projection and
    the display's round trip over the whole piece), with a noise map or one sigma, exact or within a tolerance."""
    from astroenhance.pipeline.finish import (
        _pool,
        block_levels_within,
        project_block_means,
        structured_block_correction,
    )

    rng = np.random.default_rng(seed)
    display = Normalizer("asinh", "noise:3", -0.2, 50.0, 0.01)
    lin = rng.gamma(1.0, 0.5, (12, 20)) + rng.normal(0, 0.1, (12, 20))
    lin[rng.integers(12), rng.integers(20)] = 80.0  # beyond the white point
    out = torch.from_numpy(np.kron(lin, np.ones((4, 4))) * rng.uniform(0.5, 1.5, (48, 80))).double()
    out = display(out).double()
    sigma = torch.from_numpy(rng.uniform(0.05, 0.2, (12, 20))) if sigma_map else 0.1
    level = torch.from_numpy(lin + rng.normal(0, spread * 0.1, lin.shape))
    low, high = level - tol * spread * sigma, level + tol * spread * sigma
    got = block_levels_within(out, low, high, 4, display, sigma)
    black, span = display.vmin, display.vmax - display.vmin
    u = (display.inverse(out) - black) / span
    current = _pool(u, 4)
    lo, hi = (low - black) / span, (high - black) / span
    white = F.max_pool2d((u >= 1.0 - 1e-9).double()[None, None], 4)[0, 0] > 0
    target = torch.minimum(torch.maximum(current, torch.where(white, -math.inf, lo)), hi).clamp(0.0, 1.0)
    u = structured_block_correction(u, target - current, 4, sigma / span).clamp(0.0, 1.0)
    want = display(black + span * project_block_means(u, target, 4).double())
    assert bool((target != current).any()) or tol > 0  # the exact promise always moves some block
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=2e-7)


def test_the_display_promise_is_kept_in_the_input_units_so_a_sharp_star_is_left_sharp():
    """A star's block in an asinh display: its display mean lies far below the display of its flux (as the truth's
    does), yet its flux is the input's — so it is not touched.  A block whose flux is short of the input by far more
    than the noise gets the light where its light is (its brightest pixel most), not as a flat pedestal; a block with
    pixels at the white point is not brightened (its light above white is unseen)."""
    from astroenhance.pipeline.finish import block_levels_within

    display = Normalizer("asinh", "noise:3", 0.0, 100.0, 0.03)
    lin = np.full((12, 4), 1.0)
    lin[1, 1] = 1.0 + 15 * 5.0  # block 0: a star of flux 5 per input pixel above a sky of 1
    lin[5, 2] = 1.0 + 15 * 2.0  # block 1: a fainter star (flux 2), but the input says 2 more (far beyond the noise)
    lin[9, 1] = 1000.0  # block 2: a star whose core is far above the white point (100)
    out = display(lin).astype(np.float64)
    level = lin.reshape(3, 4, 1, 4).mean(axis=(1, 3)) + np.array([[0.0], [2.0], [0.0]])  # block 1 short by 2
    sigma = 0.1
    fixed = block_levels_within(torch.from_numpy(out), torch.from_numpy(level - 3 * sigma),
                                   torch.from_numpy(level + 3 * sigma), 4, display).numpy()
    np.testing.assert_allclose(fixed[:4], out[:4], atol=1e-6)  # the star left as it was
    assert display(level[0, 0]) - out[:4].mean() > 0.2  # though its display mean is far below the display of its flux
    # the core at white: the display's block shows less than the input has, but the wings are not raised
    np.testing.assert_allclose(fixed[8:], out[8:], atol=1e-6)
    moved = display.inverse(fixed[4:8]) - lin[4:8]
    assert moved.sum() / 16 == pytest.approx(2.0 - 3 * sigma, rel=1e-4)  # to the edge of the tolerance
    assert moved[1, 2] > 0.9 * moved.sum()  # onto the star, not a pedestal over the block


def test_shipped_hst_model_runs_in_noise_space_with_its_defaults(tmp_path):
    from astropy.io import fits
    from typer.testing import CliRunner

    from astroenhance.cli import app

    from .conftest import EXAMPLE

    result = CliRunner().invoke(app, ["run", str(EXAMPLE), "-o", str(tmp_path), "--sr-model", "hst", "--no-colorize",
                                      "--format", "fits", "-q"])
    assert result.exit_code == 0, result.output
    [out] = tmp_path.glob("*.fits")
    h = fits.getheader(out)
    assert h["AE_SRID"] == "sr-hst-8x32" and h["AE_SRSPC"] == "noise-asinh"
    assert h["AE_GATE"] is False and h["AE_FLUX"] is True and h["AE_FLUXT"] == 2.0 and h["AE_SRDET"] == 1.0


def test_shipped_hst_model_draws_no_4x4_pattern_in_flat_sky():
    """White noise of sigma 1 in the noise space (a flat sky): the shipped `hst` network's steps across 4x4 block
    edges are as large as those inside blocks (the weights before the edge term: 1.40x, a faint checkerboard)."""
    from astroenhance.models.weights import default_weights_dir, find_weights, load_network
    from astroenhance.training.telescope import noise_space_sr

    folder = default_weights_dir()
    model = load_network(folder, find_weights(folder, "sr", "hst")).eval()
    ratios = []
    for seed in range(2):
        out = noise_space_sr(model, np.random.default_rng(seed).normal(0.0, 1.0, (96, 96)), 0.0, 1.0)
        steps = [np.abs(np.diff(out, axis=axis)) for axis in (0, 1)]
        edge = np.mean([steps[0][3::4].mean(), steps[1][:, 3::4].mean()])
        inner = np.mean([s[k::4].mean() if a == 0 else s[:, k::4].mean() for a, s in enumerate(steps) for k in range(3)])
        ratios.append(edge / inner)
    assert 0.85 < np.mean(ratios) < 1.15, ratios


def test_shipped_hst_gan_model_is_the_hst_model_s_kind_with_its_own_detail(tmp_path):
    """`--sr-model hst-gan`: the telescope network fine-tuned as SRGAN — the same noise space and defaults as `hst`
    (no gate, FLUX within 2 sigma, display within 3), its own weights recorded, and its own output."""
    from astropy.io import fits
    from typer.testing import CliRunner

    from astroenhance.cli import app
    from astroenhance.models.weights import find_weights

    from .conftest import EXAMPLE

    info = find_weights(REPO / "weights", "sr", "hst-gan")
    assert info.extra["hyperparameters"]["stage"] == "gan" and info.extra["hyperparameters"]["adv_weight"] == 1e-3
    heads, lums = {}, {}
    for model in ("hst", "hst-gan"):
        out = tmp_path / model
        result = CliRunner().invoke(app, ["run", str(EXAMPLE), "-o", str(out), "--sr-model", model, "--no-colorize",
                                          "--format", "fits", "-q"])
        assert result.exit_code == 0, result.output
        [path] = out.glob("*.fits")
        with fits.open(path) as h:
            heads[model], lums[model] = h[0].header, h["GREEN"].data.astype(np.float64)
    h = heads["hst-gan"]
    assert (h["AE_SRID"], h["AE_SRMOD"], h["AE_SRSPC"]) == ("sr-hst-gan-8x32", "hst-gan", "noise-asinh")
    assert h["AE_SRW"] == info.sha256
    assert h["AE_GATE"] is False and h["AE_FLUXT"] == 2.0 and h["AE_DISPT"] == 4.0
    assert np.abs(lums["hst-gan"] - lums["hst"]).max() > 1e-3  # its own network, not hst's again


def test_batches_made_by_workers_are_the_batches_and_a_time_limit_stops_with_a_checkpoint(tmp_path):
    """`train sr-hst --workers N` (batches made ahead in other processes, for a GPU) trains on exactly the batches made
    in-process; `--minutes` stops after that much training with a checkpoint to resume from."""
    cfg = TelescopeConfig(out=str(tmp_path / "a"), iters=4, batch=2, crop=8, val_every=100, synthetic=1.0, lr=1e-3)
    a = TelescopeTrainer(cfg, [], [])
    w = TelescopeTrainer(TelescopeConfig(**{**cfg.__dict__, "out": str(tmp_path / "w"), "workers": 2}), [], [])
    made = list(w._batches())
    assert len(made) == 4
    for step, (x, y, _) in enumerate(made):
        xa, ya, _ = a.batch(step)
        assert torch.equal(x, xa) and torch.equal(y, ya)
    w.run()
    a.run()
    for va, vw in zip(a.model.state_dict().values(), w.model.state_dict().values()):
        assert torch.equal(va, vw)
    t = TelescopeTrainer(TelescopeConfig(**{**cfg.__dict__, "out": str(tmp_path / "t"), "iters": 1000,
                                            "minutes": 1e-6}), [], [])
    t.run()
    assert 1 <= t.step < 1000 and (tmp_path / "t" / "ckpt.pt").exists()


def test_smooth_backgrounds_are_smooth_bounded_and_change_only_the_pairs_that_get_them(monkeypatch):
    """`train sr-hst --backgrounds P`: a field of a few input sigmas (offset, slope, curvature) with no structure at
    the pixel scale; off (P = 0) no field is made and no random number drawn for one, so the batches are exactly
    those of a run without the option; on, every pair gets one."""
    import astroenhance.training.telescope as telescope

    for seed in range(20):
        f = smooth_background(np.random.default_rng(seed), 64, 0.5)
        assert np.abs(f).max() <= 0.5 * (3 + 3 + 3) + 1e-12
        assert np.abs(np.diff(f, 2, axis=0)).max() <= 0.5 * 12 / 64**2 + 1e-12  # curvature only, no pixel structure
    spread = [np.ptp(smooth_background(np.random.default_rng(s), 64, 1.0)) for s in range(50)]
    assert 0.5 < np.median(spread) < 9  # a few sigma across a crop
    cfg = TelescopeConfig(out="unused", iters=1, batch=4, crop=8, synthetic=1.0)
    on = TelescopeTrainer(TelescopeConfig(**{**cfg.__dict__, "backgrounds": 1.0}), [], [])
    # a run without the option: the pairs made by hand, as `_draw` makes them when it draws nothing for a field
    rng = np.random.default_rng([cfg.seed, 3])
    plain = []
    for _ in range(cfg.batch):
        k = math.exp(rng.uniform(math.log(cfg.k_min), math.log(cfg.k_max)))  # no truths: no synthetic-share draw
        truth = np.rot90(synthetic_field(rng, cfg.crop * 4, cfg.big_galaxies), int(rng.integers(4)))
        if rng.uniform() < 0.5:
            truth = truth[:, ::-1]
        plain.append(make_pair(np.ascontiguousarray(truth), 0.0, 1.0, k, rng, correlated=rng.uniform() < cfg.correlated))
    plain = (torch.from_numpy(np.stack([p[0] for p in plain])[:, None]),
             torch.from_numpy(np.stack([p[1] for p in plain])[:, None]))
    monkeypatch.setattr(telescope, "smooth_background", lambda *a: pytest.fail("a field made with --backgrounds 0"))
    off = TelescopeTrainer(cfg, [], []).batch(3)
    assert all(torch.equal(a, b) for a, b in zip(plain, off))
    monkeypatch.undo()
    x, y, _ = on.batch(3)
    assert all(torch.equal(a, b) for a, b in zip((x, y), on.batch(3)))  # deterministic per step
    assert not torch.equal(y, plain[1])


def test_press_truths_are_de_stretched_luminance_and_replace_only_the_share_of_frame_pairs(tmp_path, monkeypatch):
    """`train sr-hst --press DIR --press-share P`: a press image's luminance from its black level (0) to white (1),
    de-stretched by an inverse asinh (monotone: a brighter pixel stays brighter; black stays 0) into noise-free truths;
    the share comes out of the frame pairs only, and without press images nothing is drawn for them."""
    from PIL import Image

    import astroenhance.training.telescope as telescope
    from astroenhance.training.telescope import load_press, press_field

    ramp = np.tile(np.linspace(0, 255, 160), (150, 1)).astype(np.uint8)
    Image.fromarray(np.stack([ramp] * 3, -1)).save(tmp_path / "ramp.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "small.jpg")  # too small for a crop: left out
    (images,) = load_press(tmp_path, min_side=64)
    assert images.shape == (150, 160) and images.min() == 0.0 and images.max() == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    for _ in range(10):
        f = press_field(rng, [images], 64)
        assert f.shape == (64, 64) and np.all(f >= 0) and f.max() <= 10**3.5
        assert np.all(np.diff(f, axis=1) >= 0) and np.ptp(f[0]) > 0  # the ramp stays a ramp
    with pytest.raises(SettingsError, match="no images"):
        load_press(tmp_path, min_side=200)
    data = np.random.default_rng(1).normal(10.0, 1.0, (96, 96)).astype(np.float32)
    truths = [Truth("frame", data, 10.0, 1.0)]
    cfg = TelescopeConfig(out="unused", iters=1, batch=8, crop=8, synthetic=0.0)
    monkeypatch.setattr(telescope, "press_field", lambda *a: pytest.fail("a press truth with --press-share 0"))
    plain = TelescopeTrainer(cfg, truths, []).batch(2)
    unused = TelescopeTrainer(TelescopeConfig(**{**cfg.__dict__, "press": str(tmp_path)}), truths, []).batch(2)
    assert all(torch.equal(a, b) for a, b in zip(plain, unused))
    monkeypatch.undo()
    on = TelescopeTrainer(TelescopeConfig(**{**cfg.__dict__, "press": str(tmp_path), "press_share": 1.0}), truths, [])
    x, y, noise_free = on.batch(2)
    assert bool(noise_free.all())  # every frame pair replaced, and counted noise-free (as synthetic) for the GAN
    assert all(torch.equal(a, b) for a, b in zip((x, y), on.batch(2)))
    monkeypatch.setattr(telescope, "press_field", lambda *a: pytest.fail("a press truth in a synthetic pair"))
    TelescopeTrainer(TelescopeConfig(**{**cfg.__dict__, "synthetic": 1.0, "press": str(tmp_path), "press_share": 1.0}),
                     truths, []).batch(2)  # the share is of the frame pairs: all synthetic, none drawn


@pytest.mark.parametrize("command, arch, message", [
    (["train", "sr-hst", "--truth", str(FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz")], "nonsense",
     "unknown architecture 'nonsense'; known: resenc-colorizer"),
    (["train", "sr-hst", "--truth", str(FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz")], "resenc-colorizer",
     "--arch resenc-colorizer: sr-hst trains a luminance SR network"),
    (["train", "sr", "--data", str(FIXTURES)], "nonsense", "unknown architecture 'nonsense'; known: resenc-colorizer"),
])
def test_a_wrong_architecture_is_one_usage_line_listing_the_right_ones(tmp_path, command, arch, message):
    from typer.testing import CliRunner

    from astroenhance.cli import app

    result = CliRunner().invoke(app, [*command, "--arch", arch, "-o", str(tmp_path / "run"), "--iters", "1"],
                                terminal_width=400)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert result.output.startswith(f"usage error: {message}")


@pytest.mark.parametrize("extra, message", [
    (["--psf", str(FIXTURES / "f105w_psf.fits.gz")], "--psf is used only with --psf-share > 0"),
    (["--press", str(FIXTURES)], "--press is used only with --press-share > 0"),
    (["--psf", str(FIXTURES / "f105w_psf.fits.gz"), "--psf-share", "0.5", "--synthetic", "0"],
     "--psf-share is a share of the synthetic fields, and --synthetic 0 draws none"),
])
def test_training_material_that_would_go_unused_is_a_usage_error(tmp_path, extra, message):
    """`train sr-hst --psf FILE` without `--psf-share` (or `--press` without `--press-share`) trained without it and
    said nothing: a run the user believed used the telescope's PSFs did not."""
    from typer.testing import CliRunner

    from astroenhance.cli import app

    result = CliRunner().invoke(app, ["train", "sr-hst", "--truth", str(FIXTURES / "abell_2744_dwarf_galaxy_f105w.fits.gz"),
                                      *extra, "-o", str(tmp_path / "run"), "--iters", "1"], terminal_width=400)
    assert result.exit_code == 2 and result.output.startswith(f"usage error: {message}"), result.output
    assert not (tmp_path / "run").exists()


def test_a_truth_in_small_units_makes_the_same_pair():
    """A truth frame in erg/s/cm²/Å (values near 1e-19) is the same truth: its pairs in noise space are the same.
    The input's sigma was floored at 1e-12 (every pixel of such a frame then within noise of the sky)."""
    from astroenhance.training.telescope import make_pair

    truth = np.random.default_rng(4).gamma(2.0, 5.0, (64, 64)) + 100.0
    pairs = [make_pair(truth * units, 100.0 * units, 3.0 * units, 1.0, np.random.default_rng(5))
             for units in (1.0, 1e-19)]
    for one, small in zip(*pairs):
        np.testing.assert_allclose(small, one, atol=1e-4)


def test_psf_models_from_files_keep_their_shape_at_the_fwhm_drawn(tmp_path):
    """`train sr-hst --psf FILE --psf-share P`: a cube of PSFs (an empirical grid) or one PSF image, each plane
    normalised; drawn at a FWHM of the truth's pixels with its rings kept; only the share of synthetic fields
    changes, and without models nothing is drawn for them (older runs repeat)."""
    import gzip

    from astropy.io import fits

    from astroenhance.training.fields import hst_psf
    from astroenhance.training.telescope import file_psf, load_psfs

    airy = hst_psf(4.0, 0.0, size=41)  # finely sampled (FWHM 8 of its pixels), out to 5 FWHM: rings and all
    cube = tmp_path / "grid.fits"
    fits.PrimaryHDU(np.stack([airy * 7.0, airy - 1e-9]).astype(np.float32)).writeto(cube)
    table = tmp_path / "table.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])]).writeto(table)
    models = load_psfs([cube])
    assert len(models) == 2 and all(m.sum() == pytest.approx(1.0) and m.min() >= 0 for m in models)
    # gzipped, with a block that begins no HDU after its data, as four of the STScI grids end: read without it
    after = tmp_path / "grid_after.fits.gz"
    after.write_bytes(gzip.compress(cube.read_bytes() + np.full(720, -0.1, ">f4").tobytes()))
    assert all(np.array_equal(a, b) for a, b in zip(load_psfs([after]), models, strict=True))
    for bad, why in ((table, "no PSF image"), (tmp_path / "nothing.fits", "not a readable FITS")):
        with pytest.raises(SettingsError, match=f"--psf {bad}: {why}"):
            load_psfs([bad])
    rng = np.random.default_rng(0)
    for _ in range(5):
        psf = file_psf(rng, models, fwhm=(3.0, 3.0), jitter=0.0)
        assert psf.shape == (41, 41) and psf.sum() == pytest.approx(1.0) and psf.max() == psf[20, 20]
        row = psf[20, 20:]
        assert 2 * np.interp(0.5, row[::-1] / row[0], np.arange(21)[::-1]) == pytest.approx(3.0, rel=0.25)
        dark = int(np.argmax(np.diff(row) > 0))  # where the profile first rises again: a Moffat never does
        assert 2 <= dark <= 6 and row[dark + 1:dark + 4].max() > 1.5 * row[dark] > 0  # a dark ring, a bright one
    # the share: fields unchanged without it, some changed with it
    seeds = range(20)
    plain = [synthetic_field(np.random.default_rng(s), 64, sharp=0.6) for s in seeds]
    assert all(np.array_equal(a, synthetic_field(np.random.default_rng(s), 64, sharp=0.6, psfs=models))
               for a, s in zip(plain, seeds))
    drawn = [synthetic_field(np.random.default_rng(s), 64, sharp=0.6, psfs=models, psf_share=0.5) for s in seeds]
    assert 3 <= sum(not np.allclose(a, b) for a, b in zip(plain, drawn)) <= 17
    with pytest.raises(SettingsError, match="--psf-share needs"):
        TelescopeTrainer(TelescopeConfig(out=str(tmp_path / "run"), iters=1, synthetic=1.0, psf_share=0.5), [], [])


@settings(max_examples=40, deadline=None)
@given(st.integers(5, 60), st.integers(5, 60), st.sampled_from(["random", "flat", "point", "blob"]),
       st.integers(0, 2**31))
@example(5, 60, "flat", 0)  # a model far wider than its short side: shrunk to nothing before
def test_any_psf_model_gives_a_normalised_psf(h, w, kind, seed):
    """Whatever a model file holds (noise, a flat plane, one hot pixel, a mis-centred blob, any aspect ratio),
    `file_psf` gives a finite non-negative PSF summing to 1, on its 41² grid."""
    from astroenhance.training.telescope import file_psf

    rng = np.random.default_rng(seed)
    if kind == "random":
        model = rng.random((h, w))
    elif kind == "flat":
        model = np.ones((h, w))
    elif kind == "point":
        model = np.zeros((h, w))
        model[rng.integers(h), rng.integers(w)] = 1.0
    else:
        y, x = np.mgrid[:h, :w]
        model = np.exp(-((x - rng.uniform(0, w)) ** 2 + (y - rng.uniform(0, h)) ** 2) / (2 * rng.uniform(0.3, 20) ** 2))
    psf = file_psf(rng, [model / model.sum()])
    assert psf.shape == (41, 41) and np.isfinite(psf).all() and psf.min() >= 0
    assert psf.sum() == pytest.approx(1.0)

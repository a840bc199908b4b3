"""Training on a tiny fixture: loss goes down, resume continues exactly, export writes a checked manifest."""

import json
from pathlib import Path

import pytest
import torch

from astroenhance.metrics import psnr
from astroenhance.models.weights import load_network, read_manifest
from astroenhance.training.export import export_checkpoint
from astroenhance.training.train import TrainConfig, Trainer, colour_loss, lr_at

from .conftest import COLOR


def cfg(tmp_path, task, **kw):
    base = dict(task=task, data=str(COLOR), out=str(tmp_path / task), arch="srresnet-8x32" if task == "sr" else "",
                iters=30, batch=4, crop=32 if task == "sr" else 64, lr=1e-3, warmup=2, val_every=10, ckpt_every=10,
                threads=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("task", ["sr", "colorize"])
def test_loss_decreases(tmp_path, task):
    trainer = Trainer(cfg(tmp_path, task, iters=40))
    losses = []
    trainer.run(lambda step, m: losses.append(m["loss"]))
    assert sum(losses[-10:]) < sum(losses[:10])
    assert (tmp_path / task / "ckpt.pt").exists() and (tmp_path / task / "log.csv").exists()


def test_resume_matches_uninterrupted_run(tmp_path):
    full = Trainer(cfg(tmp_path / "a", "sr", iters=12))
    full.run()
    half = Trainer(cfg(tmp_path / "b", "sr", iters=12))

    def interrupt(step, m):  # Ctrl-C after step 6: the trainer must keep a checkpoint of step 6
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        half.run(interrupt)
    resumed = Trainer(cfg(tmp_path / "b", "sr", iters=12))
    resumed.load(tmp_path / "b" / "sr" / "ckpt.pt")
    assert resumed.step == 6
    resumed.run()
    assert resumed.step == 12
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=k)


def test_export_writes_loadable_checked_weights(tmp_path):
    trainer = Trainer(cfg(tmp_path, "sr", iters=3))
    trainer.run()
    info = export_checkpoint(tmp_path / "sr" / "ckpt.pt", tmp_path / "w", "sr-test", metrics={"val_psnr": 1.0})
    assert info.mode == "psnr" and info.extra["iterations"] == 3 and info.extra["metrics"] == {"val_psnr": 1.0}
    # which checkpoint the weights are (the one training wrote: its sha256 beside it)
    assert info.extra["checkpoint_sha256"] == (tmp_path / "sr" / "ckpt.pt.sha256").read_text().split()[0]
    assert read_manifest(tmp_path / "w")[0].sha256 == info.sha256
    assert info.extra["exported"]["tool"].startswith("astroenhance ") and info.extra["exported"]["utc"].endswith("Z")
    model = load_network(tmp_path / "w", info, fold=False)
    torch.testing.assert_close(model.state_dict()["tail.weight"], trainer.model.state_dict()["tail.weight"])


def test_checkpoint_carries_config(tmp_path):
    trainer = Trainer(cfg(tmp_path, "colorize", iters=2))
    trainer.run()
    ck = torch.load(tmp_path / "colorize" / "ckpt.pt", weights_only=True)
    assert ck["step"] == 2 and ck["config"]["task"] == "colorize" and "optimizer" in ck
    assert json.loads((tmp_path / "colorize" / "config.json").read_text())["crop"] == 64


def test_a_checkpoint_carries_its_sha256_and_every_load_checks_it(tmp_path):
    """Checkpoints (`--resume`, `--init`, `weights export`) were read with weights_only=True but checked against
    nothing: another run's checkpoint copied over this one's loaded as if it were it. Now training writes each
    checkpoint's sha256 beside it (ckpt.pt.sha256, as sha256sum writes it) and every load checks it: a file that
    differs is one line naming it; one without the file beside it (written before) still loads."""
    import hashlib

    from typer.testing import CliRunner

    from astroenhance.cli import app
    from astroenhance.errors import WeightsError
    from astroenhance.models.weights import read_checkpoint

    Trainer(cfg(tmp_path / "a", "sr", iters=2)).run()
    Trainer(cfg(tmp_path / "b", "sr", iters=3, seed=1)).run()
    ckpt, other = tmp_path / "a" / "sr" / "ckpt.pt", tmp_path / "b" / "sr" / "ckpt.pt"
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert (tmp_path / "a" / "sr" / "ckpt.pt.sha256").read_text() == f"{digest}  ckpt.pt\n"
    assert read_checkpoint(ckpt)["step"] == 2
    ckpt.write_bytes(other.read_bytes())  # another run's checkpoint under this one's name: torch reads it happily
    assert torch.load(ckpt, weights_only=True)["step"] == 3
    with pytest.raises(WeightsError, match=f"^{ckpt}: sha256 .* differs from the {digest[:16]}"):
        read_checkpoint(ckpt)
    with pytest.raises(WeightsError, match="differs"):
        Trainer(cfg(tmp_path / "a", "sr", iters=4)).load(ckpt)
    for args in (["train", "sr", "--data", str(COLOR), "-o", str(tmp_path / "a" / "sr"), "--iters", "4", "--batch",
                  "2", "--crop", "32", "--resume"],
                 ["train", "sr", "--data", str(COLOR), "-o", str(tmp_path / "c"), "--iters", "1", "--batch", "2",
                  "--crop", "32", "--init", str(ckpt)],
                 ["weights", "export", str(ckpt), "--id", "x", "--weights-dir", str(tmp_path / "w")]):
        res = CliRunner().invoke(app, args)
        said = " ".join(res.output.split())
        assert res.exit_code in (1, 2) and "differs from the" in said and "Traceback" not in said, (args, said)
        assert said.count("\n") == 0 and not (tmp_path / "w").exists() and not (tmp_path / "c" / "ckpt.pt").exists()
    (tmp_path / "a" / "sr" / "ckpt.pt.sha256").unlink()  # nothing to check against: read as before
    assert read_checkpoint(ckpt)["step"] == 3


def test_a_run_records_the_sha256_of_the_weights_it_started_from(tmp_path):
    """`--init` was recorded by its path alone (a file that may be replaced or renamed); the run now records the
    file's sha256 in config.json, its checkpoints and the exported manifest, and a resumed `train sr` (which takes
    no --init) keeps its first start's."""
    import hashlib

    Trainer(cfg(tmp_path / "pre", "sr", iters=2)).run()
    init = tmp_path / "pre" / "sr" / "ckpt.pt"
    want = hashlib.sha256(init.read_bytes()).hexdigest()
    Trainer(cfg(tmp_path, "sr", iters=2, init=str(tmp_path / "pre" / "sr"))).run()  # (a run folder: its ckpt.pt)
    assert json.loads((tmp_path / "sr" / "config.json").read_text())["init_sha256"] == want
    resumed = Trainer(cfg(tmp_path, "sr", iters=3))
    resumed.load(tmp_path / "sr" / "ckpt.pt")
    resumed.run()
    assert resumed.cfg.init == str(tmp_path / "pre" / "sr") and resumed.cfg.init_sha256 == want
    info = export_checkpoint(tmp_path / "sr" / "ckpt.pt", tmp_path / "w", "sr-test")
    assert info.extra["hyperparameters"]["init_sha256"] == want


def test_metrics_by_hand():
    a = torch.zeros(1, 1, 2, 2)
    b = torch.full((1, 1, 2, 2), 0.1)
    assert psnr(a, b) == pytest.approx(20.0)
    assert colour_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), 2.0) == 0
    c = TrainConfig(task="sr", data="", out="", iters=100, warmup=10, lr=1.0, lr_min_factor=0.0)
    assert lr_at(0, c) == pytest.approx(0.1) and lr_at(10, c) == pytest.approx(1.0) and lr_at(100, c) == pytest.approx(0.0)


def test_train_command_and_resume_refusal(tmp_path):
    from typer.testing import CliRunner

    from astroenhance.cli import app

    run = tmp_path / "run"
    args = ["train", "sr", "--data", str(COLOR), "-o", str(run), "--iters", "3", "--batch", "2", "--crop", "32",
            "--val-every", "3"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "finished at step 3" in first.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output
    more = CliRunner().invoke(app, args[:7] + ["5"] + args[8:] + ["--resume"])
    assert more.exit_code == 0 and "resuming" in more.output and "finished at step 5" in more.output
    # a checkpoint cut short (a disk that filled) or another file under its name: one line, not a traceback
    ckpt = run / "ckpt.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    cut = CliRunner().invoke(app, args[:7] + ["6"] + args[8:] + ["--resume"])
    assert cut.exit_code == 1 and f"{ckpt}: sha256" in cut.output and "the file changed after it was written" in " ".join(
        cut.output.split()) and "Traceback" not in cut.output, cut.output
    (run / "ckpt.pt.sha256").unlink()  # no sha256 to tell: torch's refusal, still one line
    cut = CliRunner().invoke(app, args[:7] + ["6"] + args[8:] + ["--resume"])
    assert cut.exit_code == 2 and "is not a checkpoint of this run that astroenhance can read" in " ".join(
        cut.output.split()), cut.output


# ---- SRGAN stage ------------------------------------------------------------------------------------------
def gan_cfg(tmp_path, init, **kw):
    return cfg(tmp_path, "sr", stage="gan", init=str(init), feature_net="random:mobilenet_v2", crop=48, lr=1e-4,
               iters=4, val_every=2, ckpt_every=2, **kw)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    path = tmp_path_factory.mktemp("pre")
    Trainer(cfg(path, "sr", iters=3)).run()
    return path / "sr" / "ckpt.pt"


def test_gan_stage_starts_from_pretrained_and_trains_both_networks(tmp_path, pretrained):
    trainer = Trainer(gan_cfg(tmp_path, pretrained))
    start = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    ref = torch.load(pretrained, weights_only=True)["model"]
    assert all(torch.equal(start[k], ref[k]) for k in ref)  # --init loaded the pretrained generator
    d0 = {k: v.clone() for k, v in trainer.disc.state_dict().items()}
    last = trainer.run()
    for key in ("d_loss", "content", "adv", "pixel", "val_psnr"):
        assert key in last and last[key] == last[key]  # present and not NaN
    assert any(not torch.equal(start[k], v) for k, v in trainer.model.state_dict().items())
    assert any(not torch.equal(d0[k], v) for k, v in trainer.disc.state_dict().items())
    assert all(not p.requires_grad for p in trainer.perceptual.parameters())  # the feature network stays frozen
    ck = torch.load(tmp_path / "sr" / "ckpt.pt", weights_only=True)
    assert {"discriminator", "d_optimizer"} <= set(ck) and ck["config"]["stage"] == "gan"
    info = export_checkpoint(tmp_path / "sr" / "ckpt.pt", tmp_path / "w", "gan-test")
    assert info.mode == "gan" and "random:mobilenet_v2" in info.extra["feature_network"]


def test_gan_resume_matches_uninterrupted_run(tmp_path, pretrained):
    full = Trainer(gan_cfg(tmp_path / "a", pretrained))
    full.run()
    half = Trainer(gan_cfg(tmp_path / "b", pretrained))

    def interrupt(step, m):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        half.run(interrupt)
    resumed = Trainer(gan_cfg(tmp_path / "b", pretrained))
    resumed.load(tmp_path / "b" / "sr" / "ckpt.pt")
    resumed.run()
    for net in ("model", "disc"):
        for (k, a), b in zip(getattr(full, net).state_dict().items(), getattr(resumed, net).state_dict().values()):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=f"{net}.{k}")


def test_gan_needs_a_starting_generator_on_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from astroenhance.cli import app

    res = CliRunner().invoke(app, ["train", "sr", "--stage", "gan", "--data", str(COLOR), "-o", str(tmp_path / "g")])
    assert res.exit_code == 2 and "--init" in res.output
    res = CliRunner().invoke(app, ["train", "sr", "--stage", "wgan", "--data", str(COLOR), "-o", str(tmp_path / "g")])
    assert res.exit_code == 2
    for stage in ("gan", "wgan"):  # the telescope trainer alike
        res = CliRunner().invoke(app, ["train", "sr-hst", "--stage", stage, "--synthetic", "1", "-o", str(tmp_path / "h")])
        assert res.exit_code == 2 and ("--init" in res.output if stage == "gan" else "pretrain or gan" in res.output)
        assert not (tmp_path / "h").exists()


@pytest.mark.parametrize("command, option, value, want", [
    ("sr", "--iters", "0", "1 or more"), ("sr", "--batch", "0", "1 or more"), ("sr", "--crop", "63", "multiple of 4"),
    ("sr", "--lr", "-1", "above 0"), ("sr", "--val-every", "0", "1 or more"), ("sr", "--threads", "-2", "or more"),
    ("colorizer", "--crop", "8", "16 or more"), ("sr-hst", "--crop", "2", "4 or more"),
    ("sr", "--device", "cuda:7", "GPU"), ("sr-hst", "--device", "cuda", "GPU")])
def test_training_settings_that_cannot_train_are_one_usage_line(tmp_path, command, option, value, want):
    """Each was a traceback from deep in torch (a zero batch, a crop the network cannot take, a modulo by zero), or
    a run that "finished at step 0"; now a usage line naming the option, before anything is loaded or written."""
    from typer.testing import CliRunner

    from astroenhance.cli import app

    if option == "--device" and torch.cuda.is_available():
        pytest.skip("a GPU is here: cuda is a device")
    data = ["--synthetic", "1"] if command == "sr-hst" else ["--data", str(COLOR)]
    res = CliRunner().invoke(app, ["train", command, *data, "-o", str(tmp_path / "r"), option, value,
                                   "--feature-net", "random:mobilenet_v2"] if command == "colorizer" else
                             ["train", command, *data, "-o", str(tmp_path / "r"), option, value])
    assert res.exit_code == 2 and res.output.startswith("usage error: ") and option in res.output and want in res.output
    assert "Traceback" not in res.output and not (tmp_path / "r" / "ckpt.pt").exists()


def test_telescope_truths_that_cannot_train_are_one_line(tmp_path):
    """sr-hst: a truth smaller than its crops (a traceback from numpy's integers, or under 64 pixels silently
    skipped), a picture given as a truth, a truth of 2x1 pixels, k-min above k-max or 0 (tracebacks)."""
    import numpy as np
    from astropy.io import fits
    from PIL import Image
    from typer.testing import CliRunner

    from astroenhance.cli import app

    rng = np.random.default_rng(0)
    fits.writeto(tmp_path / "small.fits", rng.normal(size=(64, 64)).astype(np.float32))
    fits.writeto(tmp_path / "tiny.fits", rng.normal(size=(1, 2)).astype(np.float32))
    Image.fromarray(np.zeros((200, 200), np.uint8)).save(tmp_path / "picture.png")
    cases = [(["--truth", tmp_path / "small.fits"], 2, "64x64 pixels; its crops need 128"),
             (["--synthetic", "1", "--val", tmp_path / "small.fits"], 2, "--val"),
             (["--truth", tmp_path / "picture.png"], 2, "not a picture"),
             (["--truth", tmp_path / "tiny.fits"], 1, "needs 4 or more a side"),
             (["--synthetic", "1", "--k-min", "5", "--k-max", "1"], 2, "0 < k-min <= k-max"),
             (["--synthetic", "1", "--k-min", "0"], 2, "0 < k-min <= k-max")]
    for args, code, want in cases:
        res = CliRunner().invoke(app, ["train", "sr-hst", "-o", str(tmp_path / "r"), "--iters", "1", *map(str, args)])
        assert res.exit_code == code and want in res.output and "Traceback" not in res.output, (args, res.output)
    assert not (tmp_path / "r" / "ckpt.pt").exists()


@pytest.mark.parametrize("command", ["sr", "sr-hst"])
def test_init_weights_that_cannot_serve_are_one_usage_line(tmp_path, command):
    """--init naming no file, a file that is not weights (a FITS frame, a broken safetensors) or another network's
    weights (the colorizer's for an SR network): tracebacks from torch and safetensors before; now a usage line."""
    from typer.testing import CliRunner

    from astroenhance.cli import app

    from .conftest import EXAMPLE

    (tmp_path / "bad.safetensors").write_bytes(b"abc")
    colorizer = Path(__file__).resolve().parents[1] / "weights" / "colorizer-resenc-mnv2.safetensors"
    data = ["--synthetic", "1"] if command == "sr-hst" else ["--data", str(COLOR)]
    for init, want in ((tmp_path / "none.pt", "no such file"), (EXAMPLE, "not weights astroenhance can read"),
                       (tmp_path / "bad.safetensors", "not weights astroenhance can read"),
                       (colorizer, "do not fit srresnet-8x32")):
        res = CliRunner().invoke(app, ["train", command, *data, "-o", str(tmp_path / "r"), "--iters", "1",
                                       "--init", str(init)])
        assert res.exit_code == 2 and want in res.output and "Traceback" not in res.output, (init, res.output)


def test_precision_other_than_fp32_is_refused_on_cpu(tmp_path):
    with pytest.raises(ValueError, match="CUDA"):
        Trainer(cfg(tmp_path, "sr", precision="bf16"))


def test_pretrained_global_branch_colorizer_trains(tmp_path):
    trainer = Trainer(cfg(tmp_path, "colorize", arch="resenc-colorizer-mnv2", feature_net="random:mobilenet_v2",
                          iters=3))
    last = trainer.run()
    assert last["val_chroma_rms"] > 0
    info = export_checkpoint(tmp_path / "colorize" / "ckpt.pt", tmp_path / "w", "col-test")
    assert "global branch" in info.extra["feature_network"]
    assert load_network(tmp_path / "w", info)  # folds (MobileNetV2's conv+BN pairs) and loads


def test_torchrun_data_parallel_training(tmp_path):
    """Two processes (gloo on CPU) train one model: rank 0 alone writes the checkpoint and the log."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    # (torchrun leaves a log folder, torchelastic_*, in the temporary folder: this test's, not /tmp)
    env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(tmp_path))
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
                          "-m", "astroenhance", "train", "sr", "--data", str(COLOR), "-o", str(out), "--iters", "3",
                          "--batch", "2", "--crop", "32", "--val-every", "3"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    ck = torch.load(out / "ckpt.pt", weights_only=True)
    assert ck["step"] == 3
    rows = (out / "log.csv").read_text().splitlines()
    assert sum(1 for r in rows if r.split(",")[0] == "3" and r.split(",")[1]) == 1  # one writer
    gan = tmp_path / "gan"
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29518",
                          "-m", "astroenhance", "train", "sr", "--stage", "gan", "--init", str(out), "--feature-net",
                          "random:mobilenet_v2", "--data", str(COLOR), "-o", str(gan), "--iters", "2", "--batch", "2",
                          "--crop", "48", "--val-every", "2"], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert torch.load(gan / "ckpt.pt", weights_only=True)["step"] == 2


def test_crops_made_on_the_device_are_the_host_crops():
    """On a GPU the trainer crops from images held there; those crops must be exactly the host's (same
    rng draws, flips and turns), so where the data lives never changes what is trained."""
    import numpy as np

    from astroenhance.training.data import ImagePool

    pool = ImagePool.from_folder(COLOR, min_size=48, thumb_size=16)
    device_pool = pool.on_device("cpu")
    for step in range(5):
        host, host_thumbs = pool.crops(np.random.default_rng([3, step]), 6, 48)
        dev, dev_thumbs = device_pool.crops(np.random.default_rng([3, step]), 6, 48)
        torch.testing.assert_close(dev, torch.from_numpy(host).permute(0, 3, 1, 2), atol=1e-7, rtol=0)
        torch.testing.assert_close(dev_thumbs, torch.from_numpy(host_thumbs).permute(0, 3, 1, 2), atol=1e-7, rtol=0)


def test_ycc_network_starts_from_a_luminance_network_and_trains(tmp_path):
    """A Y Cb Cr SRResNet started from a trained luminance one is that network for luminance and bicubic for
    chroma at step 0; training it on RGB lowers its loss."""
    import torch.nn.functional as F

    lum = Trainer(cfg(tmp_path / "lum", "sr", iters=5))
    lum.run()
    ycc = Trainer(cfg(tmp_path / "ycc", "sr", arch="srresnet-8x32-ycc", iters=30,
                      init=str(tmp_path / "lum" / "sr" / "ckpt.pt")))
    x = torch.rand(2, 3, 12, 12)
    lum.model.eval(), ycc.model.eval()
    with torch.no_grad():
        out = ycc.model(x)
        torch.testing.assert_close(out[:, :1], lum.model(x[:, :1]), atol=1e-6, rtol=0)
        bic = F.interpolate(x[:, 1:], scale_factor=4, mode="bicubic", align_corners=False)
        torch.testing.assert_close(out[:, 1:], bic, atol=1e-6, rtol=0)
    ycc.model.train()
    losses = []
    ycc.run(lambda step, m: losses.append(m["loss"]))
    assert sum(losses[-10:]) < sum(losses[:10])
    assert {"val_psnr_rgb", "val_psnr_rgb_bicubic"} <= set(ycc.validate())


def test_run_refuses_a_luminance_and_chroma_network(tmp_path):
    """The Y Cb Cr experiment can be trained and exported, but `run` upscales luminance only: it must say so
    rather than feed the network the wrong number of channels."""
    from astroenhance.config import EnhanceConfig
    from astroenhance.pipeline import Enhancer

    Trainer(cfg(tmp_path, "sr", arch="srresnet-8x32-ycc", iters=1)).run()
    export_checkpoint(tmp_path / "sr" / "ckpt.pt", tmp_path / "w", "sr-ycc", metrics={})
    with pytest.raises(ValueError, match="luminance only"):
        Enhancer(EnhanceConfig(weights=str(tmp_path / "w"), colorize=False, device="cpu", sr_model="psnr"))
    from typer.testing import CliRunner

    from astroenhance.cli import app

    res = CliRunner().invoke(app, ["weights", "export", str(tmp_path / "sr"), "--id", "again", "--weights-dir",
                                   str(tmp_path / "w2"), "--eval-data", str(COLOR)])
    assert res.exit_code == 2 and "luminance SR networks" in res.output
    assert not (tmp_path / "w2").exists()


def test_frozen_backbone_stays_fixed_while_the_rest_trains(tmp_path):
    trainer = Trainer(cfg(tmp_path, "colorize", arch="resenc-colorizer-mnv2", feature_net="random:mobilenet_v2",
                          iters=2, freeze_backbone=True, thumb_jitter=0.5))
    backbone = {k: v.clone() for k, v in trainer.model.global_encoder[0].state_dict().items()}
    head = trainer.model.global_encoder[-1].weight.clone()
    trainer.run()
    after = trainer.model.global_encoder[0].state_dict()
    assert all(torch.equal(v, after[k]) for k, v in backbone.items())  # weights and BN statistics
    assert not torch.equal(head, trainer.model.global_encoder[-1].weight)
    with pytest.raises(ValueError, match="pretrained global branch"):
        Trainer(cfg(tmp_path / "conv", "colorize", arch="resenc-colorizer", freeze_backbone=True))
    # validation crops are scored with whole-image thumbnails (as `run` sees them), not jittered ones
    plain = Trainer(cfg(tmp_path / "plain", "colorize", arch="resenc-colorizer-mnv2", feature_net="random:mobilenet_v2"))
    assert torch.equal(trainer.val[1], plain.val[1])


def test_thumbnail_jitter_shows_a_window_around_the_crop():
    import numpy as np

    from astroenhance.training.data import ImagePool

    im = np.zeros((200, 300, 3), np.uint8)
    im[:, :150, 0] = 255  # left half red, right half blue
    im[:, 150:, 2] = 255
    whole = ImagePool([im], ["a"], thumb_size=16)
    jit = ImagePool([im], ["a"], thumb_size=16, thumb_jitter=0.4)
    _, th_whole = whole.crops(np.random.default_rng(1), 8, 32)
    assert all(np.allclose(t.mean(axis=(0, 1)), th_whole[0].mean(axis=(0, 1)), atol=0.02) for t in th_whole)
    crops, thumbs = jit.crops(np.random.default_rng(1), 64, 32)
    red = thumbs[..., 0].mean(axis=(1, 2))
    assert red.std() > 0.05  # windows differ in what they show
    # a window always contains its crop: a crop that is all red has a thumbnail with some red in it
    all_red = crops[..., 0].min(axis=(1, 2)) > 0.99
    assert all_red.any() and (red[all_red] > 0).all()
    again = jit.crops(np.random.default_rng(1), 64, 32)[1]
    np.testing.assert_array_equal(again, thumbs)  # the same rng draws give the same windows (resume is exact)


def test_scale_jitter_zooms_out_by_whole_factors_and_matches_the_device_pool():
    """--scale-jitter N: crops are regions 1..N times the crop side, area-averaged down (the block means of the
    region the plan names), identical on the host and on the device; N = 1 takes the crops it always took."""
    import numpy as np

    from astroenhance.training.data import ImagePool

    rng = np.random.default_rng(0)
    im = rng.integers(0, 256, (160, 200, 3), dtype=np.uint8)
    plain, jit = ImagePool([im], ["a"], thumb_size=8), ImagePool([im], ["a"], thumb_size=8, scale_jitter=4)
    crops, _ = jit.crops(np.random.default_rng(5), 40, 32)
    plan = jit._plan(np.random.default_rng(5), 40, 32)
    assert {p[-1] for p in plan} == {1, 2, 3, 4}  # min(160, 200) // 32 = 5 allows all of 1..4
    for crop, (_, y, x, flip, turns, f) in zip(crops, plan):
        region = im[y:y + 32 * f, x:x + 32 * f].astype(np.float64)
        expected = region.reshape(32, f, 32, f, 3).mean((1, 3)) / 255
        expected = np.rot90(expected[:, ::-1] if flip else expected, k=turns)
        np.testing.assert_allclose(crop, expected, atol=1e-6)
    dev, _ = jit.on_device("cpu").crops(np.random.default_rng(5), 40, 32)
    assert torch.equal(dev, torch.from_numpy(crops).permute(0, 3, 1, 2))
    # no zoom factor fits a small image: native crops; and N = 1 draws exactly what it drew before
    small = ImagePool([im[:40, :40]], ["s"], thumb_size=8, scale_jitter=4)
    assert {p[-1] for p in small._plan(np.random.default_rng(1), 20, 32)} == {1}
    # (the plan the code before --scale-jitter drew for this rng)
    assert [p[:5] for p in plain._plan(np.random.default_rng(2), 8, 32)] == [
        (0, 72, 46, False, 1), (0, 72, 43, True, 0), (0, 87, 113, True, 0), (0, 81, 158, False, 3),
        (0, 49, 66, True, 1), (0, 44, 97, False, 2), (0, 113, 131, True, 3), (0, 119, 37, False, 1)]
    assert all(p[-1] == 1 for p in plain._plan(np.random.default_rng(2), 8, 32))


def test_export_refuses_an_untrusted_checkpoint_in_one_line(tmp_path):
    import pickle

    from typer.testing import CliRunner

    from astroenhance.cli import app

    bad = tmp_path / "ckpt.pt"
    bad.write_bytes(pickle.dumps({"arch": "srresnet-8x32", "model": object()}))
    res = CliRunner().invoke(app, ["weights", "export", str(bad), "--id", "x", "--weights-dir", str(tmp_path / "w")])
    assert res.exit_code == 1
    assert res.output.startswith(f"error: {bad}: not a trusted astroenhance checkpoint")
    assert "weights_only=False" not in res.output and "Warning" not in res.output and not (tmp_path / "w").exists()
    # a run folder without its checkpoint was "not a trusted checkpoint (safe loading refused it: FileNotFoundError...)"
    (tmp_path / "run").mkdir()
    res = CliRunner().invoke(app, ["weights", "export", str(tmp_path / "run"), "--id", "x", "--weights-dir",
                                   str(tmp_path / "w")])
    said = " ".join(res.output.split())
    assert res.exit_code == 1 and said.startswith(f"error: {tmp_path / 'run' / 'ckpt.pt'}: no such checkpoint"), said


def test_distribution_colorizer_starts_from_a_regression_colorizer(tmp_path):
    """`--init` with a regression colorizer's weights: all but the output head and the luminance prior are taken,
    those start grey; the cross-entropy falls from log(K) as it trains, and the export loads with its temperature."""
    reg = Trainer(cfg(tmp_path, "colorize", arch="resenc-colorizer-mnv2", feature_net="random:mobilenet_v2", iters=2))
    reg.run()
    trainer = Trainer(cfg(tmp_path, "colorize", arch="resenc-colorizer-mnv2-bins", init=str(tmp_path / "colorize"),
                          out=str(tmp_path / "bins"), iters=25))
    start, ref = trainer.model.state_dict(), reg.model.state_dict()
    for k, v in start.items():
        if k.startswith(("head.", "prior")):
            assert v.abs().max() == 0, k
        else:
            assert torch.equal(v, ref[k]), k
    losses = []
    trainer.run(lambda step, m: losses.append(m["loss"]))
    assert losses[0] == pytest.approx(torch.log(torch.tensor(33.0)).item(), abs=0.05)
    assert sum(losses[-5:]) / 5 < losses[0] - 0.2
    info = export_checkpoint(tmp_path / "bins" / "ckpt.pt", tmp_path / "w", "col-bins")
    manifest = tmp_path / "w" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["weights"][0]["chroma_temperature"] = 1.7
    manifest.write_text(json.dumps(data))
    info = read_manifest(tmp_path / "w")[0]
    assert load_network(tmp_path / "w", info).temperature == 1.7


def test_crops_drawn_per_image_or_per_pixel():
    import numpy as np

    from astroenhance.errors import SettingsError
    from astroenhance.training.data import ImagePool

    images = [np.zeros((64, 64, 3), np.uint8), np.zeros((256, 256, 3), np.uint8)]
    by_area = ImagePool(images, ["small", "large"], thumb_size=16)
    np.testing.assert_allclose(by_area.pick_probability, [1 / 17, 16 / 17])
    by_image = ImagePool(images, ["small", "large"], thumb_size=16, sample_by="image")
    np.testing.assert_allclose(by_image.pick_probability, [0.5, 0.5])
    picks = [i for i, *_ in by_image._plan(np.random.default_rng(0), 400, 32)]
    assert 150 < picks.count(0) < 250
    with pytest.raises(SettingsError, match="sample_by"):
        ImagePool(images, ["small", "large"], thumb_size=16, sample_by="pixels")


def test_distribution_colorizer_refuses_weights_that_miss_more_than_the_head(tmp_path):
    from safetensors.torch import save_file

    from astroenhance.errors import SettingsError
    from astroenhance.models.registry import build_model

    state = build_model("resenc-colorizer-mnv2").state_dict()
    state.pop("stem.0.weight")
    save_file(state, str(tmp_path / "partial.safetensors"))
    with pytest.raises(SettingsError, match="beyond the output head"):
        Trainer(cfg(tmp_path, "colorize", arch="resenc-colorizer-mnv2-bins", init=str(tmp_path / "partial.safetensors")))


def test_export_refuses_a_name_that_leaves_the_folder_and_a_mode_run_cannot_choose(tmp_path):
    """--id names a file in the weights folder (``../x`` wrote beside it); --mode is what `run --sr-model` chooses
    by (any string was recorded); a weights folder that is a file is a usage line (a traceback)."""
    from typer.testing import CliRunner

    from astroenhance.cli import SRModel, app
    from astroenhance.config import SR_MODES

    assert {m.value for m in SRModel} == set(SR_MODES)
    Trainer(cfg(tmp_path, "sr", iters=1)).run()
    (tmp_path / "afile").write_text("")
    for args, message in ((["--id", "../evil"], "--id '../evil'"), (["--id", "x", "--mode", "sharp"], "--mode 'sharp'"),
                          (["--id", "x", "--weights-dir", str(tmp_path / "afile")], "cannot be an output folder")):
        res = CliRunner().invoke(app, ["weights", "export", str(tmp_path / "sr"), "--weights-dir",
                                       str(tmp_path / "w"), *args], terminal_width=300)
        assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "w").exists() and not (tmp_path / "evil.safetensors").exists()
    res = CliRunner().invoke(app, ["weights", "export", str(tmp_path / "sr"), "--id", "ok-1.2", "--mode", "psnr-large",
                                   "--weights-dir", str(tmp_path / "w")])
    assert res.exit_code == 0 and (tmp_path / "w" / "ok-1.2.safetensors").exists()


def test_a_training_folder_s_broken_and_small_images_are_left_out_by_name(tmp_path):
    """One truncated picture among a folder of training images stopped `train` before its first step ("not a readable
    image"), and images smaller than the crop were dropped without a word; both are named and left out now."""
    import numpy as np
    from PIL import Image

    from astroenhance.training.data import ImagePool

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (70, 80, 3)).astype(np.uint8)).save(tmp_path / "good.png")
    Image.fromarray(rng.integers(0, 255, (30, 30, 3)).astype(np.uint8)).save(tmp_path / "small.png")
    (tmp_path / "broken.png").write_bytes((tmp_path / "good.png").read_bytes()[:200])
    pool = ImagePool.from_folder(tmp_path, min_size=64, thumb_size=16)
    assert pool.names == ["good.png"]
    why = {p.name: w for p, w in pool.left_out}
    assert why == {"broken.png": "not a readable image (image file is truncated)",
                   "small.png": "30x30 pixels, under the crop's 64"}


def test_a_colorizer_is_not_trained_on_grey_images(tmp_path):
    """A colorizer trained on a folder of grey pictures (FITS frames exported to PNG, say) learned that nothing has
    colour, for as long as it was left to run (its loss ~1e-13 from the first step). Grey images are left out of
    a colorizer's data by name, and a folder of nothing else is one usage line; the super-resolution network (which
    learns the luminance) still takes them."""
    import numpy as np
    from PIL import Image
    from typer.testing import CliRunner

    from astroenhance.cli import app
    from astroenhance.errors import SettingsError
    from astroenhance.training.data import ImagePool

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 255, (140, 150)).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(np.stack([grey] * 3, axis=2)).save(tmp_path / "grey_rgb.jpg", quality=90)
    faint = np.stack([grey, grey, np.clip(grey.astype(int) + 3, 0, 255).astype(np.uint8)], axis=2)
    Image.fromarray(faint).save(tmp_path / "faint_tint.png")  # (a tint of 3 levels is colour)
    pool = ImagePool.from_folder(tmp_path, min_size=64, thumb_size=16, colour=True)
    assert pool.names == ["faint_tint.png"]
    assert {p.name: w for p, w in pool.left_out} == {n: "grey (its channels equal): no colour to learn from"
                                                      for n in ("grey.png", "grey_rgb.jpg")}
    assert ImagePool.from_folder(tmp_path, min_size=64, thumb_size=16).names == sorted(
        ["faint_tint.png", "grey.png", "grey_rgb.jpg"])
    (tmp_path / "faint_tint.png").unlink()
    with pytest.raises(SettingsError, match=r"no usable images \(>= 64 px, in colour\) under .* \(2 grey\)$"):
        ImagePool.from_folder(tmp_path, min_size=64, thumb_size=16, colour=True)
    res = CliRunner().invoke(app, ["train", "colorizer", "--data", str(tmp_path), "--iters", "1", "-o",
                                   str(tmp_path / "o"), "--feature-net", "random:mobilenet_v2"])  # (CI has none)
    assert res.exit_code == 2 and "(2 grey)" in res.output and not (tmp_path / "o" / "ckpt.pt").exists()

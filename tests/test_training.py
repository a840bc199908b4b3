"""Training on a tiny fixture: loss goes down, resume continues exactly, export writes a checked manifest."""

import json

import pytest
import torch

from astroenhance.models.weights import load_network, read_manifest
from astroenhance.training.export import export_checkpoint
from astroenhance.training.train import TrainConfig, Trainer, colour_loss, lr_at, psnr

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
    assert read_manifest(tmp_path / "w")[0].sha256 == info.sha256
    model = load_network(tmp_path / "w", info, fold=False)
    torch.testing.assert_close(model.state_dict()["tail.weight"], trainer.model.state_dict()["tail.weight"])


def test_checkpoint_carries_config(tmp_path):
    trainer = Trainer(cfg(tmp_path, "colorize", iters=2))
    trainer.run()
    ck = torch.load(tmp_path / "colorize" / "ckpt.pt", weights_only=True)
    assert ck["step"] == 2 and ck["config"]["task"] == "colorize" and "optimizer" in ck
    assert json.loads((tmp_path / "colorize" / "config.json").read_text())["crop"] == 64


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

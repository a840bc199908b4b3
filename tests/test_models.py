"""Every registered network: forward, backward, no NaN, every parameter reached; BN folding; weights loading."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from astroenhance.errors import WeightsError
from astroenhance.models.fold import fold_batchnorm
from astroenhance.models.registry import ARCHITECTURES, build_model
from astroenhance.models.srresnet import SRResNet
from astroenhance.models.weights import find_weights, load_network, read_manifest, sha256_file
from astroenhance.pipeline.finish import block_mean_shift

from .conftest import REPO


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_forward_backward_full_gradient(name):
    torch.manual_seed(0)
    model = build_model(name).train()
    with torch.no_grad():  # layers that start at zero on purpose (grey/bicubic start, gated FiLM) gate the rest
        for p in model.parameters():
            if p.abs().sum() == 0 and (p.dim() > 1 or p.numel() > 2):
                p.normal_(0, 0.01)
    c = getattr(model, "in_channels", 1)
    x = torch.rand(2, c, 24, 20)
    y = model(x)
    spec = ARCHITECTURES[name]
    assert y.shape == (2, c if spec.task == "sr" else 2, 24 * spec.scale, 20 * spec.scale)
    y.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_fold_batchnorm_same_function(name):
    torch.manual_seed(1)
    model = build_model(name)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
    model.eval()
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(1, getattr(model, "in_channels", 1), 33, 17)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-5)


def test_untrained_colorizer_is_grey():
    model = build_model("resenc-colorizer").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 40, 40)).abs().max() == 0


def test_untrained_sr_is_bicubic_and_projection_exact():
    model = SRResNet(num_blocks=1, num_features=8).eval()
    x = torch.rand(1, 1, 10, 10)
    with torch.no_grad():
        y = model(x)
    bic = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    assert (y - bic).abs().max() < 0.05
    p = block_mean_shift(y, x, 4)
    torch.testing.assert_close(torch.nn.functional.avg_pool2d(p, 4), x, atol=1e-6, rtol=0)


def test_shipped_manifest_is_complete_and_hashes_match():
    entries = read_manifest(REPO / "weights")
    tasks = {(e.task, e.mode) for e in entries}
    assert ("sr", "psnr") in tasks and ("colorize", "default") in tasks
    for e in entries:
        assert sha256_file(REPO / "weights" / e.file) == e.sha256
        for key in ("hyperparameters", "iterations", "training_data", "metrics", "licence"):
            assert key in e.extra, (e.id, key)
        assert e.extra["iterations"] > 0


def test_mismatched_hash_refused(tmp_path):
    shutil.copytree(REPO / "weights", tmp_path / "w")
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    manifest["weights"][0]["sha256"] = "0" * 64
    (tmp_path / "w" / "manifest.json").write_text(json.dumps(manifest))
    info = read_manifest(tmp_path / "w")[0]
    with pytest.raises(WeightsError, match="does not match"):
        load_network(tmp_path / "w", info)


def test_missing_mode_named(tmp_path):
    with pytest.raises(WeightsError, match="no sr weights for mode 'nope'"):
        find_weights(REPO / "weights", "sr", "nope")


def test_subpixel_tail_fusion_same_function():
    import copy

    from astroenhance.models.srresnet import fuse_subpixel_tail

    torch.manual_seed(3)
    model = build_model("srresnet-8x32").eval()
    torch.nn.init.normal_(model.tail.weight, std=0.05)
    model.upsample[-1].weight.data.uniform_(0.0, 0.5)
    fused = fuse_subpixel_tail(copy.deepcopy(model))
    x = torch.rand(1, 1, 150, 18)  # 150 input rows: upsampled in strips of 64 with halos (and the tail in its own strips)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-5)


def test_noise_estimate_and_gate():
    import numpy as np

    from astroenhance.pipeline.finish import estimate_noise, noise_gate

    rng = np.random.default_rng(0)
    noise = rng.normal(0.3, 0.05, (256, 256))
    assert estimate_noise(noise) == pytest.approx(0.05, rel=0.05)
    ramp = np.linspace(0, 1, 256)[None, :]  # smooth structure under the noise does not inflate the estimate
    assert estimate_noise(noise + ramp) == pytest.approx(0.05, rel=0.05)
    lr = torch.from_numpy(noise[None, None].astype(np.float32))
    base = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    fake = base + 0.5  # a network that adds "detail" everywhere
    out = noise_gate(fake, lr, 4, 0.05)
    assert (out - base).abs().gt(1e-6).float().mean() < 0.01  # on noise almost all detail is refused
    lr2 = lr.clone()
    lr2[0, 0, 100, 100] += 1.0  # a 20-sigma point source: its detail (and its neighbours') is kept in full
    base2 = torch.nn.functional.interpolate(lr2, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(noise_gate(base2 + 0.5, lr2, 4, 0.05)[0, 0, 400:404, 400:404], base2[0, 0, 400:404, 400:404] + 0.5)


def test_colorizer_luminance_prior_same_with_and_without_gradients():
    """Training computes the brightness -> colour curve in a GPU-friendly form; it must be the inference one."""
    from astroenhance.models.registry import build_model

    model = build_model("resenc-colorizer")
    with torch.no_grad():
        model.prior.normal_()
    lum = torch.cat([torch.rand(1, 1, 9, 9), torch.tensor([0.0, 1.0, 0.5, 1 / 31, 30 / 31]).view(1, 1, 1, 5).expand(1, 1, 9, 5)], -1)
    with torch.no_grad():
        ref = model.luminance_prior(lum)
    torch.testing.assert_close(model.luminance_prior(lum), ref, atol=1e-6, rtol=0)


def test_untrained_distribution_colorizer_is_grey():
    """A uniform distribution over values symmetric around grey has grey as its mean."""
    model = build_model("resenc-colorizer-mnv2-bins").eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 40, 40)).abs().max() < 1e-6


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-0.625, 0.625, allow_nan=False, width=32), min_size=1, max_size=16))
def test_distribution_targets_keep_the_value(values):
    """Each true value is split between its two neighbouring bins so that their mean is the value (clipped to the
    range); a distribution equal to those weights reproduces it as the colorizer's output."""
    model = build_model("resenc-colorizer-mnv2-bins")
    chroma = torch.tensor(values).view(1, 1, 1, -1).expand(1, 2, 1, len(values)).contiguous()
    lo, upper = model.bin_targets(chroma)
    assert ((upper >= 0) & (upper <= 1)).all() and (lo >= 0).all() and (lo <= model.chroma_bins - 2).all()
    c = model.centres
    mean = c[lo] * (1 - upper) + c[lo + 1] * upper
    torch.testing.assert_close(mean, chroma.clamp(-model.chroma_range, model.chroma_range), atol=1e-6, rtol=0)
    weights = torch.zeros(1, 2, model.chroma_bins, 1, len(values))
    weights.scatter_add_(2, lo[:, :, None], (1 - upper)[:, :, None])
    weights.scatter_add_(2, lo[:, :, None] + 1, upper[:, :, None])
    p = weights.clamp(min=1e-12)
    # the cross-entropy is smallest (the weights' entropy) at exactly these logits, and lower than at uniform ones
    logits = p.log().view(1, -1, 1, len(values))
    entropy = -(p * p.log()).sum(2).mean()
    torch.testing.assert_close(model.distribution_loss(logits, chroma), entropy, atol=1e-5, rtol=0)
    assert model.distribution_loss(torch.zeros_like(logits), chroma) > entropy


def test_distribution_temperature_moves_colour_toward_grey():
    torch.manual_seed(3)
    model = build_model("resenc-colorizer-mnv2-bins").eval()
    with torch.no_grad():
        model.head.bias.normal_(0, 2.0)
        lum = torch.rand(1, 1, 32, 32)
        sizes = []
        for t in (0.5, 1.0, 2.0, 8.0, 1e4):
            model.temperature = t
            sizes.append(model(lum).abs().mean().item())
    assert all(a > b for a, b in zip(sizes, sizes[1:])), sizes
    assert sizes[-1] < 1e-3


#: the entry `export_weights` writes in the export tests below
EXPORT_INFO = {"id": "sr-x", "task": "sr", "mode": "psnr", "architecture": "srresnet-8x32", "file": "sr-x.safetensors"}


def test_an_interrupted_export_leaves_the_weights_folder_as_it_was(tmp_path, monkeypatch):
    """Re-exporting weights that a folder already holds, interrupted while the file is written: the old file and
    the manifest (whose checksums name it) stay as they were and still load; no temporary is left."""
    import astroenhance.models.weights as weights_module
    from astroenhance.models.weights import export_weights

    info = EXPORT_INFO
    export_weights(build_model("srresnet-8x32"), tmp_path, info)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_save = weights_module.save_file

    def save_then_interrupt(state, filename, metadata=None):
        real_save(state, filename, metadata=metadata)
        raise KeyboardInterrupt

    monkeypatch.setattr(weights_module, "save_file", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        export_weights(build_model("srresnet-8x32"), tmp_path, info)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    load_network(tmp_path, read_manifest(tmp_path)[0])


def test_a_signal_between_the_export_renames_waits_until_weights_and_manifest_agree(tmp_path, monkeypatch):
    """Ctrl-C (or SIGTERM) arriving after the new weights file was renamed into place but before the manifest was:
    the folder was left with the new file under the old manifest's checksum, so the weights no longer loaded.
    Now the signal is held until both renames are done: it still interrupts, and the folder loads."""
    import signal

    import astroenhance.models.weights as weights_module
    from astroenhance.models.weights import export_weights

    info = EXPORT_INFO
    export_weights(build_model("srresnet-8x32"), tmp_path, info)
    real_replace, calls = os.replace, []

    def replace_then_signal(src, dst):
        real_replace(src, dst)
        calls.append(dst)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(weights_module.os, "replace", replace_then_signal)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # (a shell's background job ignores SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            export_weights(build_model("srresnet-8x32"), tmp_path, info)
    finally:
        signal.signal(signal.SIGINT, before)
    monkeypatch.undo()
    assert len(calls) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "sr-x.safetensors"]
    load_network(tmp_path, read_manifest(tmp_path)[0])


def test_an_export_whose_manifest_cannot_be_renamed_says_the_folder_needs_another(tmp_path, monkeypatch):
    """The manifest's rename failing after the weights file's succeeded (an I/O error): the message said the
    folder was "as it was", yet its weights file was the new one under the old checksum. Now it says so, and an
    export again mends it."""
    import errno

    import astroenhance.models.weights as weights_module
    from astroenhance.errors import OutputError
    from astroenhance.models.weights import export_weights

    info = EXPORT_INFO
    export_weights(build_model("srresnet-8x32"), tmp_path, info)
    real_replace, calls = os.replace, []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(weights_module.os, "replace", second_fails)
    with pytest.raises(OutputError, match="the new weights file is in place but the manifest could not be"):
        export_weights(build_model("srresnet-8x32"), tmp_path, info)
    monkeypatch.undo()
    with pytest.raises(WeightsError):
        load_network(tmp_path, read_manifest(tmp_path)[0])
    export_weights(build_model("srresnet-8x32"), tmp_path, info)
    load_network(tmp_path, read_manifest(tmp_path)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "sr-x.safetensors"]


def test_an_export_on_a_full_disk_is_one_line_and_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    """`weights export` on a full disk ended with safetensors' traceback ("SafetensorError: Error while serializing:
    I/O error: No space left on device"); now it is one line naming the file, the folder as it was."""
    from safetensors import SafetensorError
    from typer.testing import CliRunner

    import astroenhance.models.weights as weights_module
    from astroenhance.cli import app

    info = EXPORT_INFO
    weights_module.export_weights(build_model("srresnet-8x32"), tmp_path / "w", info)
    before = {p.name: p.read_bytes() for p in (tmp_path / "w").iterdir()}

    def full(state, filename, metadata=None):
        Path(filename).write_bytes(b"half")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(weights_module, "save_file", full)
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"arch": "srresnet-8x32", "model": build_model("srresnet-8x32").state_dict(), "step": 1,
                "config": {"task": "sr", "data": "images"}}, ckpt)
    result = CliRunner().invoke(app, ["weights", "export", str(ckpt), "--id", "sr-x", "--mode", "psnr",
                                      "--weights-dir", str(tmp_path / "w")])
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "Traceback" not in said, said
    assert "sr-x.safetensors: writing the weights failed (Error while serializing: I/O error: No space left" in said
    assert {p.name: p.read_bytes() for p in (tmp_path / "w").iterdir()} == before


def test_weights_list_names_what_run_uses_and_finds_a_damaged_file(tmp_path):
    """`weights list`: every network with the option that picks it and its hash checked; a file changed after its
    manifest entry, or missing, is named and the exit status is 1."""
    from typer.testing import CliRunner

    from astroenhance.cli import app

    runner = CliRunner()
    shutil.copytree(REPO / "weights", tmp_path / "w")
    result = runner.invoke(app, ["weights", "list", "--weights", str(tmp_path / "w")])
    assert result.exit_code == 0, result.output
    for e in read_manifest(tmp_path / "w"):
        line = next(row for row in result.output.splitlines() if row.startswith(e.id + " "))
        assert e.sha256[:12] in line and line.split()[-3] == "ok", line
    assert "--sr-model hst (FITS default)" in result.output
    gan = find_weights(tmp_path / "w", "sr", "gan")
    with open(tmp_path / "w" / gan.file, "ab") as fh:
        fh.write(b"\0")
    psnr = find_weights(tmp_path / "w", "sr", "psnr")
    (tmp_path / "w" / psnr.file).unlink()
    result = runner.invoke(app, ["weights", "list", "--weights", str(tmp_path / "w")])
    assert result.exit_code == 1
    assert f"{gan.file}: sha256 differs" in result.output and f"{psnr.file}: missing" in result.output

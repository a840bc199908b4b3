"""Inception Score: the network in torchvision's layout (loaded without torchvision), the score by hand, evaluate."""

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from astroenhance.cli import app
from astroenhance.errors import WeightsError
from astroenhance.metrics import inception_score
from astroenhance.models.inception import InceptionV3, load_inception
from astroenhance.training.evaluate import inception_crops, load_images

from .conftest import COLOR, EXAMPLE

# torchvision 0.29.1's Inception3(aux_logits=True).state_dict(): every key and shape, in order, dumped from its source
TORCHVISION_KEYS = json.loads((Path(__file__).parent / "data" / "inception_v3_torchvision_keys.json").read_text())


def hashed(n: int, seed: int) -> np.ndarray:
    """Pseudo-random values in [-1, 1] from a formula (no RNG state: the same with any numpy or torch)."""
    x = np.sin(np.arange(n) * 12.9898 + seed * 78.233) * 43758.5453
    return (x - np.floor(x)) * 2 - 1


def deterministic_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Well-scaled weights from `hashed`, for comparing against logits torchvision computed with them."""
    out = {}
    for i, (k, v) in enumerate(net.state_dict().items()):
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(0)
            continue
        u = hashed(v.numel(), i).reshape(tuple(v.shape))
        if k.endswith(".conv.weight") or k.endswith("fc.weight"):
            u = u * math.sqrt(6.0 / int(np.prod(v.shape[1:])))
        elif k.endswith("running_var"):
            u = 1 + 0.3 * np.abs(u)
        elif k.endswith("bn.weight"):
            u = 1 + 0.1 * u
        else:
            u = 0.1 * u
        out[k] = torch.tensor(u, dtype=torch.float32)
    return out


def test_inception_v3_has_torchvisions_names_and_shapes():
    sd = InceptionV3().state_dict()
    assert [(k, list(v.shape)) for k, v in sd.items()] == [(k, v) for k, v in TORCHVISION_KEYS.items()]


def test_inception_v3_computes_torchvisions_logits(tmp_path):
    net = InceptionV3(num_classes=10)
    # as an old torchvision file: no batch-norm step counters
    torch.save({k: v for k, v in deterministic_state(net).items() if "num_batches" not in k}, tmp_path / "inc.pth")
    loaded, sha = load_inception(tmp_path / "inc.pth")
    assert sha == hashlib.sha256((tmp_path / "inc.pth").read_bytes()).hexdigest()
    x = torch.tensor(hashed(3 * 96 * 96, 999).reshape(1, 3, 96, 96) * 0.5 + 0.5, dtype=torch.float32)
    with torch.no_grad():
        got = loaded(x)[0]
        assert (loaded(x * 0.5)[0] - got).abs().max() > 1e-2  # the logits do depend on the input
    # torchvision 0.29.1's own Inception3(num_classes=10, transform_input=True) with the same weights, fed the
    # same image ImageNet-normalized (its documented input for these weights); ours differed by 3e-7
    expected = [0.05415, 0.08023, -0.26652, -0.06303, 0.09517, 0.08608, 0.07106, 0.2584, 0.20296, -0.02952]
    torch.testing.assert_close(got, torch.tensor(expected), atol=2e-5, rtol=0)


def test_inception_weight_files_that_are_wrong_are_clear_errors(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="junk.pth: not a readable"):
        load_inception(tmp_path / "junk.pth")
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="other.pth: not Inception-v3 weights"):
        load_inception(tmp_path / "other.pth")
    state = InceptionV3(num_classes=4, aux_logits=False).state_dict()
    state["Mixed_5b.branch1x1.conv.weight"] = torch.zeros(64, 192, 3, 3)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(WeightsError, match=r"shape.pth: Mixed_5b.branch1x1.conv.weight has shape \(64, 192, 3, 3\)"):
        load_inception(tmp_path / "shape.pth")
    del state["Mixed_7c.branch_pool.bn.running_var"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(WeightsError, match="missing Mixed_7c.branch_pool.bn.running_var"):
        load_inception(tmp_path / "missing.pth")
    # a file under torchvision's name whose sha256 is not the one the name gives (a damaged or different file)
    torch.save(InceptionV3(num_classes=4, aux_logits=False).state_dict(), tmp_path / "inc.pth")
    digest = hashlib.sha256((tmp_path / "inc.pth").read_bytes()).hexdigest()
    (tmp_path / f"inception_v3_google-{digest[:8]}.pth").write_bytes((tmp_path / "inc.pth").read_bytes())
    assert load_inception(tmp_path / f"inception_v3_google-{digest[:8]}.pth")[1] == digest
    other = "0cc3c7bd" if not digest.startswith("0cc3c7bd") else "12345678"
    (tmp_path / f"inception_v3_google-{other}.pth").write_bytes((tmp_path / "inc.pth").read_bytes())
    with pytest.raises(WeightsError, match=f"inception_v3_google-{other}.pth: sha256 {digest[:16]}"):
        load_inception(tmp_path / f"inception_v3_google-{other}.pth")


def test_inception_score_by_hand():
    # two images: p1 = (1/2, 1/2), p2 = (1, 0); p(y) = (3/4, 1/4)
    kl1 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    kl2 = math.log(1 / 0.75)
    mean, std = inception_score(np.array([[0.5, 0.5], [1.0, 0.0]]), splits=1)
    assert mean == pytest.approx(math.exp((kl1 + kl2) / 2)) and std == 0
    # n confident, distinct classes: exactly n; identical predictions: exactly 1
    assert inception_score(np.eye(7), splits=1)[0] == pytest.approx(7)
    assert inception_score(np.tile([[0.2, 0.3, 0.5]], (40, 1)), splits=4) == pytest.approx((1.0, 0.0))
    # splits: 50 one-hot rows cycling over 5 classes in 5 splits of 10 -> 5 each; 25 rows give 2 splits
    # (never a split of under 10 images) of 13 and 12 rows
    assert inception_score(np.eye(5)[np.arange(50) % 5], splits=5) == pytest.approx((5.0, 0.0))
    probs = np.eye(5)[np.arange(25) % 5]
    expected = [inception_score(part, splits=1)[0] for part in (probs[:13], probs[13:])]
    assert inception_score(probs, splits=10) == pytest.approx((np.mean(expected), np.std(expected)))


def test_inception_crops_grid_and_small_images():
    img = np.random.default_rng(0).random((700, 1000, 3))
    crops = inception_crops(img, max_crops=16)
    assert crops.shape == (6, 3, 299, 299)  # 2 rows x 3 columns of non-overlapping native-resolution crops
    np.testing.assert_array_equal(crops[0], img[:299, :299].transpose(2, 0, 1).astype(np.float32))
    np.testing.assert_array_equal(crops[-1], img[-299:, -299:].transpose(2, 0, 1).astype(np.float32))
    assert inception_crops(img, max_crops=4).shape[0] <= 4
    small = inception_crops(np.full((100, 400, 3), 0.25))
    assert small.shape == (1, 3, 299, 299) and np.allclose(small, 0.25)


def test_evaluate_with_inception_weights(tmp_path):
    net = InceptionV3(num_classes=10)
    torch.save(deterministic_state(net), tmp_path / "inception.pth")
    out = tmp_path / "m.json"
    result = CliRunner().invoke(app, ["evaluate", "--task", "sr", "--data", str(COLOR), "--limit", "2", "--noise-frames",
                                      "0", "--inception", str(tmp_path / "inception.pth"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    got = json.loads(out.read_text())
    assert got["inception"]["sha256"] == hashlib.sha256((tmp_path / "inception.pth").read_bytes()).hexdigest()
    assert "Inception Score" in got["protocol"]
    # the originals' score is the network's on those images' crops (cropped to a multiple of 4, as SR is)
    net.load_state_dict(deterministic_state(net))
    probs = []
    for _, hr in load_images(COLOR, limit=2):
        crops = torch.from_numpy(inception_crops(hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]))
        with torch.no_grad():
            probs.append(torch.softmax(net.eval()(crops).double(), 1).numpy())
    probs = np.concatenate(probs)
    original = got["results"]["original"]
    assert original["inception_crops"] == len(probs)
    assert original["inception_score"] == pytest.approx(inception_score(probs)[0], rel=1e-5)
    for method in ("nearest", "bicubic", "astroenhance", "astroenhance_ungated"):
        assert got["results"][method]["inception_crops"] == len(probs)
        assert got["results"][method]["inception_score"] != original["inception_score"]
    assert "psnr_rgb" not in got["results"]["original"] and "mse_rgb" in got["results"]["bicubic"]
    bad = CliRunner().invoke(app, ["evaluate", "--task", "sr", "--data", str(COLOR), "--limit", "1", "--noise-frames",
                                   "0", "--inception", str(EXAMPLE)])
    assert bad.exit_code == 1 and "not a readable torch weights file" in bad.output
    assert len(bad.output.strip().splitlines()) == 1  # (torch's refusal of a pickle, ten lines, was printed whole)

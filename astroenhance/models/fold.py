"""Fold BatchNorm into the preceding convolution for inference (same function, fewer operations)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def _fuse(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    fused = copy.deepcopy(conv)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C,)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)
    return fused


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Return a copy of ``model`` (in eval mode) whose Conv2d->BatchNorm2d pairs are merged.

    Pairs are found inside ``nn.Sequential`` containers and as sibling attributes ``convN``/``bnN``.
    """
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for a, b in zip(names[:-1], names[1:]):
                conv, bn = module._modules[a], module._modules[b]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    module._modules[a] = _fuse(conv, bn)
                    module._modules[b] = nn.Identity()
        for name, child in list(module.named_children()):
            if name.startswith("conv") and isinstance(child, nn.Conv2d):
                bn_name = "bn" + name[4:]
                bn = getattr(module, bn_name, None)
                if isinstance(bn, nn.BatchNorm2d):
                    setattr(module, name, _fuse(child, bn))
                    setattr(module, bn_name, nn.Identity())
    return model

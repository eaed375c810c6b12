"""A convolution with an optional BatchNorm and ReLU: the unit every decode head and neck is made of.

The sub-modules are named ``conv``, ``bn`` and ``activate``, as mmcv's ConvModule names them,
so mmsegmentation's neck and head checkpoints load without renaming. As there, a convolution
followed by a norm has no bias (the norm's shift replaces it).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvNormAct(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, kernel: int, norm: bool = True, act: bool = True, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, kernel, stride=stride, padding=kernel // 2, bias=not norm)
        self.bn = nn.BatchNorm2d(out_dim) if norm else None
        self.activate = nn.ReLU(inplace=True) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.activate is not None:
            x = self.activate(x)
        return x


def init_conv_norm(module: nn.Module) -> None:
    """mmcv's ConvModule initialisation: Kaiming normal (fan_out, ReLU) convolutions, zero biases, norms 1 and 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_parameters()


def init_classifier(conv: nn.Conv2d) -> None:
    """mmseg's decode-head classifier: normal std 0.01, zero bias."""
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.zeros_(conv.bias)

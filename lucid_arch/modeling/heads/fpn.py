"""The Feature Pyramid Network neck, as mmsegmentation builds it for the PVT papers' Semantic FPN.

Each input map gets a 1x1 lateral convolution to ``channels``; from the coarsest down, every
level adds the next coarser one, upsampled (nearest neighbour) to its size; a 3x3 convolution
then smooths each level. Both convolutions keep their biases and have no norm or activation.
Levels beyond the inputs (``num_outs`` > inputs) are stride-2 max-pools of the last, as mmseg
adds them without extra convolutions. Parameter names are mmseg's (``lateral_convs.i.conv``,
``fpn_convs.i.conv``), so its checkpoints load unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.conv_norm_act import ConvNormAct
from ..spec import NeckSpec


class FPN(nn.Module):
    def __init__(self, in_channels: Sequence[int], channels: int, num_outs: int):
        super().__init__()
        self.num_outs = num_outs
        self.lateral_convs = nn.ModuleList(ConvNormAct(c, channels, 1, norm=False, act=False) for c in in_channels)
        self.fpn_convs = nn.ModuleList(ConvNormAct(channels, channels, 3, norm=False, act=False) for _ in in_channels)

    @classmethod
    def from_spec(cls, spec: NeckSpec) -> "FPN":
        return cls([lv.channels for lv in spec.inputs], spec.channels, spec.num_outs)

    def init_weights(self) -> None:
        """mmseg's: Xavier uniform convolutions, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, maps)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], mode="nearest")
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return outs

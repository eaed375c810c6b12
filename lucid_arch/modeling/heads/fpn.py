"""The Feature Pyramid Network neck, as mmsegmentation and mmdetection build it for the PVT papers.

Each map read (the encoder's from ``start_level`` on) gets a 1x1 lateral convolution to
``channels``; from the coarsest down, every level adds the next coarser one, upsampled (nearest
neighbour) to its size; a 3x3 convolution then smooths each level. Both convolutions keep their
biases and have no norm or activation. Levels beyond the maps read (``num_outs`` more) are, by
``extra_convs``: stride-2 max-pools (kernel 1) of the last level (mmseg's Semantic FPN,
Mask R-CNN's P6), or 3x3 stride-2 convolutions (RetinaNet's P6 and P7), the first on the last
encoder map read ('on_input'), its lateral ('on_lateral') or the last output ('on_output'), each
further one on the level before (after a ReLU with ``relu_before_extra_convs``). Parameter names
are mmdetection's and mmsegmentation's (``lateral_convs.i.conv``, ``fpn_convs.i.conv``, the extra
convolutions continuing ``fpn_convs``), so their checkpoints load unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.conv_norm_act import ConvNormAct
from ..spec import NeckSpec


class FPN(nn.Module):
    def __init__(self, in_channels: Sequence[int], channels: int, num_outs: int, start_level: int = 0,
                 extra_convs: str = "none", relu_before_extra_convs: bool = False, extra_in_channels: Sequence[int] = ()):
        super().__init__()
        self.num_outs = num_outs
        self.start_level = start_level
        self.extra_convs = extra_convs
        self.relu_before_extra_convs = relu_before_extra_convs
        self.lateral_convs = nn.ModuleList(ConvNormAct(c, channels, 1, norm=False, act=False) for c in in_channels)
        self.fpn_convs = nn.ModuleList(ConvNormAct(channels, channels, 3, norm=False, act=False) for _ in in_channels)
        for c in extra_in_channels:
            self.fpn_convs.append(ConvNormAct(c, channels, 3, norm=False, act=False, stride=2))

    @classmethod
    def from_spec(cls, spec: NeckSpec) -> "FPN":
        return cls([lv.channels for lv in spec.inputs], spec.channels, spec.num_outs, spec.start_level,
                   spec.extra_convs, spec.relu_before_extra_convs, spec.extra_in_channels)

    def init_weights(self) -> None:
        """mmseg's and mmdet's: Xavier uniform convolutions, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The encoder's maps (every stage) -> ``num_outs`` levels of ``channels``, finest first."""
        maps = list(maps[self.start_level:])
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, maps)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], mode="nearest")
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        if self.extra_convs == "none":
            while len(outs) < self.num_outs:
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            return outs
        source = {"on_input": maps[-1], "on_lateral": laterals[-1], "on_output": outs[-1]}[self.extra_convs]
        for conv in self.fpn_convs[len(laterals):]:
            outs.append(conv(source))
            source = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
        return outs

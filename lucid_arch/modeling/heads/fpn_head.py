"""Semantic FPN's decode head (Kirillov et al., 2019), as mmsegmentation's FPNHead.

Every level gets a *scale head*: 3x3 convolution + BatchNorm + ReLU blocks, each followed by a
2x bilinear upsampling, as many as it takes to bring the level to the first map's stride (one
block, no upsampling, for the first). The scale heads' outputs are summed (each resized to the
first's size, which absorbs odd input sizes), then channel dropout and a 1x1 classifier give the
logits at the first map's stride. Module indices and names are mmseg's
(``scale_heads.i.j.conv``/``.bn``, ``conv_seg``), so its checkpoints load unchanged.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.conv_norm_act import ConvNormAct, init_classifier, init_conv_norm
from ..spec import DecodeHeadSpec


class Upsample2x(nn.Module):
    """Doubles a map's height and width, bilinearly (a parameter-free slot in a scale head)."""

    def __init__(self, align_corners: bool):
        super().__init__()
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=(2 * x.shape[2], 2 * x.shape[3]), mode="bilinear", align_corners=self.align_corners)


def scale_head(in_dim: int, channels: int, steps: int, align_corners: bool) -> nn.Sequential:
    """``max(1, steps)`` conv blocks, each followed by a 2x upsampling when ``steps`` > 0."""
    layers: list[nn.Module] = []
    for k in range(max(1, steps)):
        layers.append(ConvNormAct(in_dim if k == 0 else channels, channels, 3))
        if steps > 0:
            layers.append(Upsample2x(align_corners))
    return nn.Sequential(*layers)


class FPNHead(nn.Module):
    def __init__(
        self,
        in_channels: Sequence[int],
        strides: Sequence[int],
        channels: int,
        num_classes: int,
        dropout: float = 0.1,
        align_corners: bool = False,
    ):
        super().__init__()
        self.align_corners = align_corners
        self.scale_heads = nn.ModuleList(
            scale_head(c, channels, round(math.log2(s / strides[0])), align_corners) for c, s in zip(in_channels, strides)
        )
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    @classmethod
    def from_spec(cls, spec: DecodeHeadSpec) -> "FPNHead":
        return cls([lv.channels for lv in spec.inputs], [lv.stride for lv in spec.inputs], spec.channels,
                   spec.num_classes, spec.dropout, spec.align_corners)

    def init_weights(self) -> None:
        init_conv_norm(self.scale_heads)
        init_classifier(self.conv_seg)

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        out = self.scale_heads[0](maps[0])
        for head, x in zip(self.scale_heads[1:], maps[1:]):
            out = out + F.interpolate(head(x), size=out.shape[2:], mode="bilinear", align_corners=self.align_corners)
        return self.conv_seg(self.dropout(out))

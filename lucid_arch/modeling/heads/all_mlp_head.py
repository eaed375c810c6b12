"""SegFormer's all-MLP decode head (Xie et al., 2021).

Each map is embedded to ``channels`` by a Linear over its tokens, bilinearly upsampled to the
first (stride-4) map's size, and the embeddings are concatenated coarsest first (c4, c3, c2,
c1, as the official code and Hugging Face's do); a 1x1 convolution without bias + BatchNorm +
ReLU fuses them, then channel dropout and a 1x1 classifier give the logits at the first map's
stride. Parameter names: ``linear_c.i.proj`` (Hugging Face's on-disk names), ``fuse.conv``/``.bn``
and ``conv_seg`` (mmseg's ConvModule and classifier); lucid_arch.weights converts the others.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.attention import map_to_tokens, tokens_to_map
from ..layers.conv_norm_act import ConvNormAct, init_classifier, init_conv_norm
from ..layers.shapes import contiguous_if_traced
from ..spec import DecodeHeadSpec


class TokenProjection(nn.Module):
    """A Linear applied to every position of a (B, C, H, W) map, giving (B, channels, H, W)."""

    def __init__(self, in_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return contiguous_if_traced(tokens_to_map(self.proj(map_to_tokens(x)), x.shape[2], x.shape[3]))


class AllMLPHead(nn.Module):
    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int,
        num_classes: int,
        dropout: float = 0.1,
        align_corners: bool = False,
    ):
        super().__init__()
        self.align_corners = align_corners
        self.linear_c = nn.ModuleList(TokenProjection(c, channels) for c in in_channels)
        self.fuse = ConvNormAct(channels * len(in_channels), channels, 1)
        self.dropout = nn.Dropout2d(dropout)
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    @classmethod
    def from_spec(cls, spec: DecodeHeadSpec) -> "AllMLPHead":
        return cls([lv.channels for lv in spec.inputs], spec.channels, spec.num_classes, spec.dropout, spec.align_corners)

    def init_weights(self) -> None:
        """Linears as the encoder's (truncated normal std 0.02, as Hugging Face's), the fuse block and classifier as mmseg's."""
        for m in self.linear_c.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        init_conv_norm(self.fuse)
        init_classifier(self.conv_seg)

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        size = maps[0].shape[2:]
        embedded = [
            F.interpolate(proj(x), size=size, mode="bilinear", align_corners=self.align_corners)
            for proj, x in zip(self.linear_c, maps)
        ]
        return self.conv_seg(self.dropout(self.fuse(torch.cat(embedded[::-1], dim=1))))

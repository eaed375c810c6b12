"""Patch embedding: a strided convolution to tokens, then LayerNorm.

PVT v1 (kernel == stride, no padding) and PVT v2 (overlapping kernel, padding kernel // 2)
differ only in geometry, which the stage spec carries; one module serves both.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbed(nn.Module):
    def __init__(self, in_dim: int, dim: int, kernel: int, stride: int, padding: int):
        super().__init__()
        self.proj = nn.Conv2d(in_dim, dim, kernel_size=kernel, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(dim)  # eps 1e-5 upstream, unlike the blocks' 1e-6

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, C, H, W) image or feature map -> (B, H'*W', dim) tokens and (H', W')."""
        x = self.proj(x)
        hw = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), hw

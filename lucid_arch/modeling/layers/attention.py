"""Spatial-reduction attention (SRA), the one attention of every PVT.

Queries come from every token; keys and values from a smaller map, so cost grows with
tokens x reduced tokens instead of tokens squared:
- ``sr_ratio > 1``: a strided convolution (kernel = stride = sr_ratio) + LayerNorm (v1, v2);
- ``linear``: a 7x7 adaptive average pool + 1x1 convolution + LayerNorm + GELU (v2 "li");
- otherwise the tokens themselves.
Attribute names follow timm's pvt_v2 so its state dicts load unchanged.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .shapes import adaptive_avg_pool2d, concrete

LINEAR_POOL_SIZE = 7


def tokens_to_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, H*W, C) -> (B, C, H, W), a channels_last view of the tokens (no copy).

    Going through (B, H, W, C) gives every dimension its true stride, so convolutions see
    channels_last input even at batch 1 (a transpose-then-reshape leaves the size-1 batch an
    arbitrary stride, and oneDNN then copies the map to NCHW: 3 ms of pvt_v2_b0's 21 ms).
    """
    return x.reshape(x.shape[0], h, w, x.shape[2]).permute(0, 3, 1, 2)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


class SpatialReductionAttention(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        sr_ratio: int = 1,
        linear: bool = False,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        proj: bool = True,
    ):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale or self.head_dim**-0.5
        self.attn_drop = attn_drop
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim) if proj else nn.Identity()
        self.proj_drop = nn.Dropout(proj_drop)
        self.pool: Optional[nn.Module] = None
        self.sr: Optional[nn.Module] = None
        if linear:
            self.pool = nn.AdaptiveAvgPool2d(LINEAR_POOL_SIZE)
            self.sr = nn.Conv2d(dim, dim, kernel_size=1)
            self.norm = nn.LayerNorm(dim)
            self.act = nn.GELU()
        elif sr_ratio > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim)

    def _keys_values_source(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        if self.sr is None:
            return x
        grid = tokens_to_map(x, h, w)
        if self.pool is not None:
            # Traced with symbolic h, w (torch.export), the pool is written as averaging matrices: see layers/shapes.py.
            pooled = self.pool(grid) if concrete(h, w) else adaptive_avg_pool2d(grid, LINEAR_POOL_SIZE)
            return self.act(self.norm(map_to_tokens(self.sr(pooled))))
        return self.norm(map_to_tokens(self.sr(grid)))

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        kv = self.kv(self._keys_values_source(x, h, w))
        k, v = kv.reshape(b, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale
        )
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))

"""One pyramid stage: [position embedding] -> blocks -> [LayerNorm], on a token sequence.

The patch embedding that opens a stage is its ``downsample`` (timm's name), except for the
first stage, whose embedding is the model's ``patch_embed``.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import tokens_to_map
from .shapes import concrete


class Stage(nn.Module):
    def __init__(
        self,
        dim: int,
        blocks: Sequence[nn.Module],
        downsample: Optional[nn.Module] = None,
        pos_embed_grid: Optional[tuple[int, int]] = None,
        num_prefix_tokens: int = 0,
        pos_drop: float = 0.0,
        norm: bool = True,
        eps: float = 1e-6,
    ):
        super().__init__()
        self.num_prefix_tokens = num_prefix_tokens
        self.pos_embed_grid = pos_embed_grid
        self.pos_embed: Optional[nn.Parameter] = None
        if pos_embed_grid is not None:
            h, w = pos_embed_grid
            self.pos_embed = nn.Parameter(torch.zeros(1, num_prefix_tokens + h * w, dim))
            self.pos_drop = nn.Dropout(pos_drop)
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(dim, eps=eps) if norm else nn.Identity()

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """The table for an (h, w) map: patch rows resized bilinearly, prefix rows kept, as upstream.

        At the table's own size it is used as is; with symbolic sizes (torch.export) the size is
        unknown, so it is always resized, which at the table's own size gives it back exactly
        (bilinear, align_corners=False, scale 1 samples every row and column at its centre).
        """
        assert self.pos_embed is not None and self.pos_embed_grid is not None
        if concrete(h, w) and (h, w) == self.pos_embed_grid:
            return self.pos_embed
        p = self.num_prefix_tokens
        prefix, table = self.pos_embed[:, :p], self.pos_embed[:, p:]
        table = F.interpolate(tokens_to_map(table, *self.pos_embed_grid), size=(h, w), mode="bilinear", align_corners=False)
        return torch.cat([prefix, table.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, x: torch.Tensor, h: int, w: int, prefix: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, h*w, C) patch tokens [+ (B, P, C) prefix tokens] -> (B, P + h*w, C)."""
        if prefix is not None:
            x = torch.cat([prefix, x], dim=1)
        if self.pos_embed is not None:
            x = self.pos_drop(x + self.position_embedding(h, w))
        for block in self.blocks:
            x = block(x, h, w)
        return self.norm(x)

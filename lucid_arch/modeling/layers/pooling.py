"""Head pooling: what the classifier reads from the last stage's tokens."""

from __future__ import annotations

import torch
from torch import nn


class MeanPool(nn.Module):
    """Mean over patch tokens (PVT v2); prefix tokens, if any, are left out."""

    def forward(self, tokens: torch.Tensor, num_prefix_tokens: int = 0) -> torch.Tensor:
        return tokens[:, num_prefix_tokens:].mean(dim=1)


class ClsTokenPool(nn.Module):
    """The class token (PVT v1)."""

    def forward(self, tokens: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
        return tokens[:, 0]

"""The block's MLP: fc1 -> [ReLU if linear] -> [depthwise 3x3 conv] -> act -> fc2.

The depthwise convolution (PVT v2) gives the MLP the local positional cue that replaces v1's
position embeddings; without it and the ReLU this is v1's plain MLP.

When autograd is off (inference), the activation runs in place on the hidden tensor, which the
MLP created itself: one fewer buffer of B x N x hidden_dim per block. On a 2-core CPU that is
5-10% of pvt_v2_b2's forward, most of it page faults of the fresh allocation.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .attention import map_to_tokens, tokens_to_map

# In-place forms of the activations the registry offers, for inference.
_IN_PLACE: dict[type[nn.Module], Callable[[nn.Module, torch.Tensor], torch.Tensor]] = {
    nn.GELU: lambda act, x: torch.ops.aten.gelu_(x, approximate=act.approximate),
    nn.ReLU: lambda act, x: F.relu_(x),
    nn.SiLU: lambda act, x: F.silu(x, inplace=True),
}


class Mlp(nn.Module):
    def __init__(
        self,
        dim: int,
        hidden_dim: int,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        dwconv: bool = True,
        relu: bool = False,
        drop: float = 0.0,
    ):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.relu = nn.ReLU() if relu else nn.Identity()
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim) if dwconv else None
        self.act = act_layer()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = self.relu(self.fc1(x))
        if self.dwconv is not None:
            x = map_to_tokens(self.dwconv(tokens_to_map(x, h, w)))
        x = self.drop(self._activate(x))
        return self.drop(self.fc2(x))

    def _activate(self, x: torch.Tensor) -> torch.Tensor:
        in_place = None if torch.is_grad_enabled() else _IN_PLACE.get(type(self.act))
        return self.act(x) if in_place is None else in_place(self.act, x)

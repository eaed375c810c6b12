"""The builder's registry: config vocabulary -> module classes.

Configs name components with plain strings; only names listed here can be built, so a config
is data and building one runs no code from it (there is no ``_target_``). The vocabularies
are declared in the schema (torch-free, for validation); a test checks both agree.
"""

from __future__ import annotations

from torch import nn

from .layers import ClsTokenPool, MeanPool

POOLS: dict[str, type[nn.Module]] = {"mean": MeanPool, "cls": ClsTokenPool}
ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}

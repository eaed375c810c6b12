"""The builder's registry: config vocabulary -> module classes.

Configs name components with plain strings; only names listed here can be built, so a config
is data and building one runs no code from it (there is no ``_target_``). The vocabularies
are declared in the schema (torch-free, for validation); a test checks both agree.
"""

from __future__ import annotations

from torch import nn

from .heads import FPN, AllMLPHead, FPNHead
from .layers import ClsTokenPool, MeanPool

POOLS: dict[str, type[nn.Module]] = {"mean": MeanPool, "cls": ClsTokenPool}
ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}
NECKS: dict[str, type[nn.Module]] = {"fpn": FPN}  # model.neck.type ('none': no neck)
DECODE_HEADS: dict[str, type[nn.Module]] = {"all_mlp": AllMLPHead, "fpn": FPNHead}  # model.decode_head.type
# model.detector.type: lucid_arch.modeling.detection.KINDS, apart because those modules import torchvision

"""Building blocks of a Pyramid Vision Transformer. They know nothing of configs or Hydra."""

from .attention import SpatialReductionAttention
from .block import Block, DropPath
from .mlp import Mlp
from .patch_embed import PatchEmbed
from .pooling import ClsTokenPool, MeanPool
from .stage import Stage

__all__ = ["Block", "ClsTokenPool", "DropPath", "MeanPool", "Mlp", "PatchEmbed", "SpatialReductionAttention", "Stage"]

"""Necks and decode heads: what turns a backbone's maps into per-pixel logits.

    fpn.py          FPN: the Feature Pyramid Network neck (mmsegmentation's)
    fpn_head.py     FPNHead: Semantic FPN's decode head (mmsegmentation's)
    all_mlp_head.py AllMLPHead: SegFormer's decode head

Each is built from sizes alone (channels, strides): like the layers, they know nothing of configs.
"""

from .all_mlp_head import AllMLPHead
from .fpn import FPN
from .fpn_head import FPNHead

__all__ = ["AllMLPHead", "FPN", "FPNHead"]

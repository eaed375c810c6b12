"""lucid-compatible entry points: ``pvt_tiny(...)`` ... ``pvt_v2_b5(...)``, ``PVT`` and ``PVT_V2``.

Code written against lucid's ``lucid.models`` keeps working: the functions and classes take
lucid's arguments (translated in :mod:`lucid_arch.modeling.lucid_args`), but every hyper-parameter comes
from ``conf/model/*.yaml``; nothing here repeats an architecture.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

import torch

from .modeling.builder import build_model, materialize, resolve_config
from .config.checks import validate_model
from .modeling.lucid_args import class_signature
from .modeling.model import PyramidVisionTransformer
from .modeling.spec import model_spec


def _entry(name: str, lucid_v2_signature: bool) -> Callable[..., PyramidVisionTransformer]:
    """A named constructor with lucid's signature; v2's also names ``in_channels``."""

    def build(**overrides: Any) -> PyramidVisionTransformer:
        return build_model(resolve_config(name, overrides), source=name)

    if lucid_v2_signature:

        def entry(img_size: int = 224, num_classes: int = 1000, in_channels: int = 3, **kwargs: Any):
            return build(img_size=img_size, num_classes=num_classes, in_channels=in_channels, **kwargs)

    else:

        def entry(img_size: int = 224, num_classes: int = 1000, **kwargs: Any):
            return build(img_size=img_size, num_classes=num_classes, **kwargs)

    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = f"``conf/model/{name}.yaml``; keyword arguments override its fields (lucid's signature)."
    return entry


pvt_tiny = _entry("pvt_tiny", lucid_v2_signature=False)
pvt_small = _entry("pvt_small", lucid_v2_signature=False)
pvt_medium = _entry("pvt_medium", lucid_v2_signature=False)
pvt_large = _entry("pvt_large", lucid_v2_signature=False)
pvt_huge = _entry("pvt_huge", lucid_v2_signature=False)

pvt_v2_b0 = _entry("pvt_v2_b0", lucid_v2_signature=True)
pvt_v2_b1 = _entry("pvt_v2_b1", lucid_v2_signature=True)
pvt_v2_b2 = _entry("pvt_v2_b2", lucid_v2_signature=True)
pvt_v2_b2_li = _entry("pvt_v2_b2_li", lucid_v2_signature=True)
pvt_v2_b3 = _entry("pvt_v2_b3", lucid_v2_signature=True)
pvt_v2_b4 = _entry("pvt_v2_b4", lucid_v2_signature=True)
pvt_v2_b5 = _entry("pvt_v2_b5", lucid_v2_signature=True)


class _LucidSignature:
    """``inspect.signature(PVT_V2)`` lists lucid's arguments; an instance's stays nn.Module's call."""

    def __get__(self, model: Any, cls: type) -> Optional[inspect.Signature]:
        return None if model is not None else class_signature(cls.base_variant)


class PVT(PyramidVisionTransformer):
    """lucid's ``PVT(img_size=..., patch_size=..., embed_dims=..., ...)``.

    Arguments left out take their values from the family's canonical member,
    ``conf/model/pvt_small.yaml``; ``patch_size`` is the first stage's patch. Positional
    arguments follow lucid's order, so calls copied from its docs or code bind as there.
    """

    base_variant = "pvt_small"
    __signature__ = _LucidSignature()

    def __init__(self, *args: Any, **kwargs: Any):
        bound = type(self).__signature__.bind(*args, **kwargs).arguments
        arguments = {**{k: v for k, v in bound.items() if k != "fields"}, **bound.get("fields", {})}
        cfg = resolve_config(self.base_variant, arguments)
        cfg["name"] = type(self).__name__
        config = validate_model(cfg, source=self.base_variant)
        with torch.device("meta"):  # as create_model: refused before allocation when too big, PVT_V2(pretrained=PATH) loaded
            super().__init__(model_spec(config))
        materialize(self, config)


class PVT_V2(PVT):
    """lucid's ``PVT_V2(...)``; defaults from ``conf/model/pvt_v2_b2.yaml``."""

    base_variant = "pvt_v2_b2"


__all__ = [
    "PVT",
    "PVT_V2",
    "pvt_huge",
    "pvt_large",
    "pvt_medium",
    "pvt_small",
    "pvt_tiny",
    "pvt_v2_b0",
    "pvt_v2_b1",
    "pvt_v2_b2",
    "pvt_v2_b2_li",
    "pvt_v2_b3",
    "pvt_v2_b4",
    "pvt_v2_b5",
]

"""Which module a spec describes: the one place that picks the model class.

A spec with a decode head is a :class:`SegmentationModel` (encoder + neck + head); any other is
the :class:`PyramidVisionTransformer` itself (a classifier, or a features_only backbone).
"""

from __future__ import annotations

from typing import Union

from .model import PyramidVisionTransformer
from .segmentation import SegmentationModel
from .spec import ModelSpec

Model = Union[PyramidVisionTransformer, SegmentationModel]


def model_from_spec(spec: ModelSpec) -> Model:
    return SegmentationModel(spec) if spec.segmentation else PyramidVisionTransformer(spec)

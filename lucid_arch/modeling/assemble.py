"""Which module a spec describes: the one place that picks the model class.

A spec with a decode head is a :class:`SegmentationModel` (encoder + neck + head); one with a
detector is a :class:`~lucid_arch.modeling.detection.DetectionModel` (encoder + FPN + a
torchvision detector; torchvision is imported only then); any other is the
:class:`PyramidVisionTransformer` itself (a classifier, or a features_only backbone).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from .model import PyramidVisionTransformer
from .segmentation import SegmentationModel
from .spec import ModelSpec

if TYPE_CHECKING:
    from .detection import DetectionModel

Model = Union[PyramidVisionTransformer, SegmentationModel, "DetectionModel"]


def model_from_spec(spec: ModelSpec) -> Model:
    if spec.detection is not None:
        from .detection import build_detector

        return build_detector(spec)
    return SegmentationModel(spec) if spec.segmentation else PyramidVisionTransformer(spec)

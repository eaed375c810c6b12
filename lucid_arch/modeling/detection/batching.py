"""torchvision's GeneralizedRCNNTransform without its normalisation and, unless asked, its resize.

Every model here is fed normalised images by the data pipeline (the run's preprocessing), so
normalising again inside would be wrong; and mmdetection sizes images in the pipeline too. What
is kept is the batching (zero-padding a list of images of any sizes to one tensor whose sides
are multiples of ``size_divisible``, as mmdetection's ``size_divisor``) and the mapping of
boxes and masks back to each input image. With ``detector.min_size`` set, torchvision's resize
runs as well (shorter side to min_size, longer at most max_size).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from ...config.schema import DetectorConfig


class ImageBatcher(GeneralizedRCNNTransform):
    def __init__(self, settings: DetectorConfig):
        super().__init__(settings.min_size or 1, settings.max_size, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0],
                         size_divisible=settings.size_divisible)
        self.resizes = settings.min_size is not None

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        if not image.is_floating_point():
            raise TypeError(
                f"a detector takes float images, normalised as the model was trained (mean/std), not {image.dtype}: "
                "convert uint8 pixels with x / 255, then (x - mean) / std (lucid_arch.runs.Preprocessing)."
            )
        return image

    def resize(self, image: torch.Tensor, target: Optional[dict[str, Any]] = None) -> tuple[torch.Tensor, Optional[dict[str, Any]]]:
        return super().resize(image, target) if self.resizes else (image, target)

    def __repr__(self) -> str:
        resize = f"resize(min_size={self.min_size[-1]}, max_size={self.max_size})" if self.resizes else "no resize"
        return f"{type(self).__name__}(pad to a multiple of {self.size_divisible}, {resize}, no normalisation)"

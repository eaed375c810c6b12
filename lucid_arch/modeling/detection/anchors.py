"""Anchors as mmdetection places them, on torchvision's AnchorGenerator.

torchvision's generator derives each level's stride from the padded image and the level's size
(``image // grid``), which is off wherever a level rounds up (an 800 px image has a 13-pixel P6:
61, not 64) and rounds every base anchor to whole pixels. Here the strides are the configured
ones (``model.anchors.strides``, the neck levels' own) and the anchors exact unless
``model.anchors.rounded``: mmdetection's anchors. The order is torchvision's and mmdetection's
alike: per location, ratio by ratio, each at every size.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList

from ..spec import DetectionSpec


class PyramidAnchors(AnchorGenerator):
    def __init__(self, sizes: Sequence[Sequence[float]], ratios: Sequence[float], strides: Sequence[int], rounded: bool = False):
        self.rounded = rounded
        super().__init__(tuple(tuple(s) for s in sizes), tuple(tuple(ratios) for _ in sizes))
        self.strides = tuple(strides)

    @classmethod
    def from_spec(cls, spec: DetectionSpec) -> "PyramidAnchors":
        return cls(spec.anchor_sizes, spec.anchors.ratios, spec.anchors.strides, spec.anchors.rounded)

    def generate_anchors(self, scales: Sequence[float], aspect_ratios: Sequence[float], dtype: torch.dtype = torch.float32,
                         device: torch.device = torch.device("cpu")) -> torch.Tensor:
        """(ratios x sizes, 4) corners about (0, 0): height/width = ratio, sqrt(height * width) = size."""
        sizes = torch.as_tensor(scales, dtype=dtype, device=device)
        heights = torch.as_tensor(aspect_ratios, dtype=dtype, device=device).sqrt()
        w = (sizes[None, :] / heights[:, None]).reshape(-1)
        h = (sizes[None, :] * heights[:, None]).reshape(-1)
        corners = torch.stack([-w, -h, w, h], dim=1) / 2
        return corners.round() if self.rounded else corners

    def forward(self, image_list: ImageList, feature_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Every level's anchors, finest first, for each image of the batch (the same for all of them)."""
        grids = [list(f.shape[-2:]) for f in feature_maps]
        device = feature_maps[0].device
        strides = [[torch.tensor(s, dtype=torch.int64, device=device)] * 2 for s in self.strides]
        self.set_cell_anchors(feature_maps[0].dtype, device)
        anchors = torch.cat(self.grid_anchors(grids, strides))
        return [anchors for _ in image_list.image_sizes]

    def __repr__(self) -> str:
        sizes = ", ".join("/".join(f"{s:g}" for s in level) for level in self.sizes)
        return (f"{type(self).__name__}(sizes=[{sizes}], ratios={list(self.aspect_ratios[0])}, strides={list(self.strides)}, "
                f"rounded={self.rounded})")

"""RoIAlign over the FPN levels, as mmdetection assigns and aligns regions, on torchvision's roi_align op.

Each region is pooled from one level, by its size: level floor(log2(sqrt(w * h) / 56)),
clamped to the levels read (mmdetection's SingleRoIExtractor, finest_scale 56: a region of
112 px reads the second level). torchvision's MultiScaleRoIAlign picks the same level from its
canonical 224-px region at level 4 when the first level has stride 4, but always pools with
``aligned=False`` and infers the scales from the image; here ``aligned`` is the config's
(``model.roi.aligned``, true in mmdetection: pixel centres at half-integers) and the scales are
the levels' own strides.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

FINEST_SCALE = 56  # mmdetection's: regions below 112 px read the first level


class PyramidRoIAlign(MultiScaleRoIAlign):
    def __init__(self, names: Sequence[str], strides: Sequence[int], output_size: int, sampling_ratio: int, aligned: bool):
        super().__init__(list(names), output_size, sampling_ratio)
        self.strides = tuple(strides)
        self.aligned = aligned

    def levels(self, boxes: torch.Tensor) -> torch.Tensor:
        """The level index each (x1, y1, x2, y2) region is pooled from."""
        scale = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=0).sqrt()
        return torch.floor(torch.log2(scale / FINEST_SCALE + 1e-6)).clamp(0, len(self.strides) - 1).to(torch.int64)

    def forward(self, x: dict[str, torch.Tensor], boxes: list[torch.Tensor], image_shapes: list[tuple[int, int]]) -> torch.Tensor:
        maps = [x[name] for name in self.featmap_names]
        rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)])
        levels = self.levels(rois[:, 1:])
        out = maps[0].new_zeros((rois.shape[0], maps[0].shape[1], *self.output_size))
        for level, (feature, stride) in enumerate(zip(maps, self.strides)):
            picked = torch.where(levels == level)[0]
            pooled = roi_align(feature, rois[picked], self.output_size, spatial_scale=1.0 / stride,
                               sampling_ratio=self.sampling_ratio, aligned=self.aligned)
            out[picked] = pooled.to(out.dtype)
        return out

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(levels={list(self.featmap_names)}, strides={list(self.strides)}, "
                f"output_size={self.output_size}, sampling_ratio={self.sampling_ratio}, aligned={self.aligned})")

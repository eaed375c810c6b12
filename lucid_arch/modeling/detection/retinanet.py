"""RetinaNet on a PVT encoder: torchvision's RetinaNet with the FPN levels of our neck.

The class is torchvision's ``RetinaNet`` (its focal-loss and L1 losses through the head's
``compute_loss``, its anchor matching and its post-processing: score threshold, top-k per level,
box decoding, clipping, class-wise NMS, detections per image), given our encoder and FPN, an
anchor generator with mmdetection's anchors and a head whose depth and width are the config's
(torchvision's fixed 4 x in_channels are the default). Classification is sigmoid, one output per
class and anchor, no background: the detector's class ids are the app's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.retinanet import RetinaNet, RetinaNetHead
from torchvision.ops.misc import Conv2dNormActivation

from ..spec import DetectionSpec, ModelSpec
from .anchors import PyramidAnchors
from .model import DetectionModel

PRIOR = 0.01  # the classifier's initial foreground probability (focal loss paper, mmdetection, torchvision)


def retinanet_head(in_channels: int, spec: DetectionSpec) -> RetinaNetHead:
    """torchvision's RetinaNetHead with ``head_convs`` 3x3 convolutions + ReLU of ``head_channels`` per subnet."""
    s, anchors = spec.settings, spec.anchors_per_location
    width = s.head_channels if s.head_convs else in_channels
    head = RetinaNetHead(width, anchors, spec.num_classes)
    for subnet in (head.classification_head, head.regression_head):
        subnet.conv = nn.Sequential(*(Conv2dNormActivation(in_channels if i == 0 else width, width, norm_layer=None)
                                      for i in range(s.head_convs)))
    return head


class RetinaNetModel(DetectionModel, RetinaNet):
    def __init__(self, spec: ModelSpec):
        nn.Module.__init__(self)  # RetinaNet's own constructor builds a default backbone transform; set its parts here
        self._build_pyramid(spec)
        d = spec.detection
        s = d.settings
        self.anchor_generator = PyramidAnchors.from_spec(d)
        self.head = retinanet_head(spec.neck.channels, d)
        self.proposal_matcher = det_utils.Matcher(s.fg_iou, s.bg_iou, allow_low_quality_matches=True)
        self.box_coder = det_utils.BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.score_thresh = s.score_threshold
        self.nms_thresh = s.nms_iou
        self.detections_per_img = s.detections_per_image
        self.topk_candidates = s.topk_candidates
        self._has_warned = False
        self._finish(spec)

    def init_head(self) -> None:
        """mmdetection's RetinaHead (and torchvision's): normal std 0.01, zero biases, the classifier's bias at the prior."""
        for m in self.head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        nn.init.constant_(self.head.classification_head.cls_logits.bias, -math.log((1 - PRIOR) / PRIOR))

    def losses(self, batch: Any, levels: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return self.compute_loss(targets, self.head(levels), self.anchor_generator(batch, levels))

    def detect(self, batch: Any, levels: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        outputs = self.head(levels)
        anchors = self.anchor_generator(batch, levels)
        per_level = [f.shape[-2] * f.shape[-1] * self.spec.detection.anchors_per_location for f in levels]
        split = {k: list(v.split(per_level, dim=1)) for k, v in outputs.items()}
        return self.postprocess_detections(split, [list(a.split(per_level)) for a in anchors], batch.image_sizes)

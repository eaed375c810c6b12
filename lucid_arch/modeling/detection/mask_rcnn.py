"""Mask R-CNN on a PVT encoder: torchvision's RegionProposalNetwork and RoIHeads over our FPN levels.

The RPN (one 3x3 convolution, an objectness logit and 4 deltas per anchor; mmdetection's 3
anchors per location) proposes regions from every level; the RoI heads pool each from one of
the encoder's levels (P2..P5, not the max-pooled P6), classify it with two shared FCs and a
(num_classes + 1)-way classifier (background first), regress its box per class, and predict
masks with a 4-conv head and a deconvolution. Sampling, losses and post-processing are
torchvision's; sizes and thresholds are the config's (mmdetection 2.x's by default).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn
from torchvision.models.detection.faster_rcnn import TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead

from ..spec import ModelSpec
from .anchors import PyramidAnchors
from .model import DetectionModel
from .predictors import BoxPredictor, MaskPredictor
from .roi_align import PyramidRoIAlign


class MaskRCNNModel(DetectionModel):
    label_offset = 1  # torchvision's RoI heads: 0 is the background

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self._build_pyramid(spec)
        d = spec.detection
        s, rpn, roi = d.settings, d.rpn, d.roi
        channels = spec.neck.channels
        self.rpn = RegionProposalNetwork(
            PyramidAnchors.from_spec(d),
            RPNHead(channels, d.anchors_per_location, conv_depth=rpn.convs),
            rpn.fg_iou,
            rpn.bg_iou,
            rpn.batch_size_per_image,
            rpn.positive_fraction,
            {"training": rpn.pre_nms_top_n_train, "testing": rpn.pre_nms_top_n_test},
            {"training": rpn.post_nms_top_n_train, "testing": rpn.post_nms_top_n_test},
            rpn.nms_iou,
            score_thresh=rpn.score_threshold,
        )
        names = [str(i) for i in range(d.roi_levels)]
        strides = [lv.stride for lv in d.levels[: d.roi_levels]]
        mask_width = roi.mask_channels if roi.mask_convs else channels
        self.roi_heads = RoIHeads(
            PyramidRoIAlign(names, strides, roi.box_pool_size, roi.sampling_ratio, roi.aligned),
            TwoMLPHead(channels * roi.box_pool_size**2, roi.fc_channels),
            BoxPredictor(roi.fc_channels, d.num_classes, roi.background_outputs),
            roi.fg_iou,
            roi.bg_iou,
            roi.batch_size_per_image,
            roi.positive_fraction,
            None,  # box coder weights (10, 10, 5, 5): mmdetection's target_stds (0.1, 0.1, 0.2, 0.2)
            s.score_threshold,
            s.nms_iou,
            s.detections_per_image,
            mask_roi_pool=PyramidRoIAlign(names, strides, roi.mask_pool_size, roi.sampling_ratio, roi.aligned),
            mask_head=MaskRCNNHeads(channels, [roi.mask_channels] * roi.mask_convs, 1),
            mask_predictor=MaskPredictor(mask_width, roi.mask_channels, d.num_classes, roi.background_outputs),
        )
        self._finish(spec)

    def init_head(self) -> None:
        """mmdetection's: RPN normal std 0.01; shared FCs Xavier uniform; predictors (see predictors.py);
        mask convolutions Kaiming normal (fan_out, ReLU); zero biases."""
        for m in self.rpn.head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)
        for fc in (self.roi_heads.box_head.fc6, self.roi_heads.box_head.fc7):
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)
        self.roi_heads.box_predictor.init_weights()
        for m in self.roi_heads.mask_head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        self.roi_heads.mask_predictor.init_weights()

    @staticmethod
    def _named(levels: list[torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
        return OrderedDict((str(i), level) for i, level in enumerate(levels))

    def losses(self, batch: Any, levels: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        features = self._named(levels)
        proposals, rpn_losses = self.rpn(batch, features, targets)
        _, roi_losses = self.roi_heads(features, proposals, batch.image_sizes, targets)
        return {**rpn_losses, **roi_losses}

    def detect(self, batch: Any, levels: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        features = self._named(levels)
        proposals, _ = self.rpn(batch, features)
        detections, _ = self.roi_heads(features, proposals, batch.image_sizes)
        return detections

"""Mask R-CNN's box and mask predictors: torchvision's, or mmdetection's without background outputs.

torchvision's FastRCNNPredictor regresses a box for every class *and* the background
((num_classes + 1) x 4 outputs) and its MaskRCNNPredictor has a mask logit for the background
too; mmdetection's Shared2FCBBoxHead and FCNMaskHead have none for the background (num_classes
x 4 and num_classes), which the PVT papers' parameter counts include. With
``model.roi.background_outputs=false`` the predictors are mmdetection's size and hand
torchvision's losses and post-processing zeros in the background's place (never read: they
index the box and mask of an object's own class, 1..num_classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import MaskRCNNPredictor


class BoxPredictor(FastRCNNPredictor):
    """(num_classes + 1)-way scores, background first; class-specific deltas, the background's zeros unless it has its own."""

    def __init__(self, in_channels: int, num_classes: int, background_outputs: bool):
        super().__init__(in_channels, num_classes + 1)
        self.background_outputs = background_outputs
        if not background_outputs:
            self.bbox_pred = nn.Linear(in_channels, num_classes * 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores, deltas = super().forward(x)
        return scores, deltas if self.background_outputs else F.pad(deltas, (4, 0))

    def init_weights(self) -> None:
        """mmdetection's: classifier normal std 0.01, regression 0.001, zero biases."""
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)


class MaskPredictor(MaskRCNNPredictor):
    """2x2 stride-2 deconvolution + ReLU + 1x1 logits per class; the background's a zero map unless it has its own."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, background_outputs: bool):
        super().__init__(in_channels, channels, num_classes + int(background_outputs))
        self.background_outputs = background_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        return logits if self.background_outputs else F.pad(logits, (0, 0, 0, 0, 1, 0))

    def init_weights(self) -> None:
        """mmdetection's FCNMaskHead (and torchvision's weights): Kaiming normal, fan_out, ReLU; zero biases."""
        for m in (self.conv5_mask, self.mask_fcn_logits):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)

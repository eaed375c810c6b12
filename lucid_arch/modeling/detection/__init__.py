"""Detectors over a PVT encoder and its FPN, built from torchvision's detection modules.

``lucid_arch.create_model("retinanet_pvt_v2_b0", num_classes=80)`` (or any ``retinanet_*`` /
``mask_rcnn_*`` variant, or a config with ``model.detector.type`` set) returns a
:class:`DetectionModel`, an ``nn.Module`` with torchvision's detection interface:

- train mode: ``model(images, targets)`` -> dict of losses. ``images``: a list of 3xHxW float
  tensors, *already normalised* (mean/std, as for every model here: the data pipeline does it),
  or one Bx3xHxW tensor; sizes may differ, the model pads a batch to ``detector.size_divisible``
  (bottom and right). ``targets``: one dict per image, ``boxes`` FloatTensor[N, 4] (x1, y1, x2,
  y2 in the image's pixels), ``labels`` Int64Tensor[N] in 0..num_classes-1, and for Mask R-CNN
  ``masks`` UInt8Tensor[N, H, W]. Loss names are torchvision's: RetinaNet ``classification``,
  ``bbox_regression``; Mask R-CNN ``loss_objectness``, ``loss_rpn_box_reg``, ``loss_classifier``,
  ``loss_box_reg``, ``loss_mask``. The total is their sum (mmdetection weighs them 1 too).
- eval mode: ``model(images)`` -> one dict per image: ``boxes`` FloatTensor[K, 4] in the input
  image's pixels, ``scores`` FloatTensor[K] (best first), ``labels`` Int64Tensor[K] in
  0..num_classes-1, and for Mask R-CNN ``masks`` FloatTensor[K, 1, H, W], each pixel's
  probability of being the object (threshold 0.5 for a binary mask, as mmdetection does).

Class ids are 0..num_classes-1 everywhere outside the model, as in COCO-style label files
renumbered from 0 and in every other task of the app; Mask R-CNN's torchvision parts number
them from 1 (0 = background) and the model shifts them on the way in and out.

The model never resizes unless ``detector.min_size`` is set, and never normalises. Parts:
``backbone`` (the PyramidVisionTransformer encoder, every stage), ``neck`` (the FPN,
mmdetection's names), then torchvision's: RetinaNet's ``head`` (RetinaNetHead) and
``anchor_generator``; Mask R-CNN's ``rpn`` (RegionProposalNetwork) and ``roi_heads`` (RoIHeads
with RoIAlign, TwoMLPHead, mask head). ``forward_features(x)`` gives the FPN levels of a Bx3xHxW
batch. ``model.spec.detection`` (a :class:`~lucid_arch.modeling.spec.DetectionSpec`) says the
kind ("retinanet" or "mask_rcnn"), the class count, the levels and every setting;
``model.spec.task`` is "detection". Where torchvision and mmdetection differ, the config decides
(see docs/detection.md).

Importing this package imports torchvision (``pip install 'lucid-arch[detection]'``); nothing
else in lucid_arch does.
"""

from __future__ import annotations

from .guard import require_torchvision

require_torchvision()

from ..spec import ModelSpec  # noqa: E402
from .mask_rcnn import MaskRCNNModel  # noqa: E402
from .model import DetectionModel  # noqa: E402
from .retinanet import RetinaNetModel  # noqa: E402

KINDS: dict[str, type[DetectionModel]] = {"retinanet": RetinaNetModel, "mask_rcnn": MaskRCNNModel}  # model.detector.type


def build_detector(spec: ModelSpec) -> DetectionModel:
    """The detector a spec describes (``spec.detection.kind``)."""
    return KINDS[spec.detection.kind](spec)


__all__ = ["DetectionModel", "MaskRCNNModel", "RetinaNetModel", "build_detector"]

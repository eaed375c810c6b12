"""Neck and detector-head key layouts of detection checkpoints, each a rename table to ours.

A detection checkpoint is an encoder under ``backbone.`` (converted by the encoder tables of
:mod:`lucid_arch.weights.layouts`: the official PVT detection repository keeps the official
names, mmdetection's own PVT its ``layers.*``), an FPN under ``neck.`` and the detector's heads.
A :class:`DetectorLayout` renames the last two: a
:class:`~lucid_arch.weights.head_layouts.HeadLayout` (neck 'fpn', no decode head) plus
``detector`` (the ``model.detector.type`` it fills) and ``background_last``: the checkpoint's box
classifier has the background as its last output (mmdetection 2.x), where ours has it first
(torchvision's).
Nothing here runs.

Our names (lucid_arch.modeling.detection): the FPN keeps mmdetection's (``neck.lateral_convs.i.conv``,
``neck.fpn_convs.i.conv``, the extra P6/P7 convolutions continuing ``fpn_convs``); the heads are
torchvision's: RetinaNet ``head.classification_head.conv.i.0`` / ``.cls_logits`` and
``head.regression_head.conv.i.0`` / ``.bbox_reg``; Mask R-CNN ``rpn.head.conv.0.0`` /
``.cls_logits`` / ``.bbox_pred``, ``roi_heads.box_head.fc6`` / ``.fc7``,
``roi_heads.box_predictor.cls_score`` / ``.bbox_pred``, ``roi_heads.mask_head.i.0``,
``roi_heads.mask_predictor.conv5_mask`` / ``.mask_fcn_logits``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .head_layouts import W, HeadLayout


@dataclass(frozen=True)
class DetectorLayout(HeadLayout):
    detector: str = "none"  # the model.detector.type it fills
    background_last: bool = False  # the box classifier's background is its last output (reordered to first)


_NECK = (rf"neck\.(?P<conv>lateral_convs|fpn_convs)\.(?P<i>\d+)\.conv\.{W}", "neck.{conv}.{i}.conv.{param}")

MMDET_RETINANET = DetectorLayout(
    neck="fpn",
    name="mmdet_retinanet",
    source="mmdetection 2.x's RetinaNet (RetinaHead: bbox_head.cls_convs, retina_cls, retina_reg), as the official "
           "PVT detection repository (whai362/PVT detection/) trains and releases it",
    signature=r"bbox_head\.retina_cls\.weight",
    detector="retinanet",
    rows=(
        _NECK,
        (rf"bbox_head\.cls_convs\.(?P<i>\d+)\.conv\.{W}", "head.classification_head.conv.{i}.0.{param}"),
        (rf"bbox_head\.reg_convs\.(?P<i>\d+)\.conv\.{W}", "head.regression_head.conv.{i}.0.{param}"),
        (rf"bbox_head\.retina_cls\.{W}", "head.classification_head.cls_logits.{param}"),
        (rf"bbox_head\.retina_reg\.{W}", "head.regression_head.bbox_reg.{param}"),
    ),
)

MMDET_MASK_RCNN = DetectorLayout(
    neck="fpn",
    name="mmdet_mask_rcnn",
    source="mmdetection 2.x's Mask R-CNN (rpn_head, roi_head.bbox_head Shared2FCBBoxHead, roi_head.mask_head "
           "FCNMaskHead), as the official PVT detection repository (whai362/PVT detection/) trains and releases it",
    signature=r"roi_head\.bbox_head\.fc_cls\.weight",
    detector="mask_rcnn",
    background_last=True,
    rows=(
        _NECK,
        (rf"rpn_head\.rpn_conv\.{W}", "rpn.head.conv.0.0.{param}"),
        (rf"rpn_head\.rpn_cls\.{W}", "rpn.head.cls_logits.{param}"),
        (rf"rpn_head\.rpn_reg\.{W}", "rpn.head.bbox_pred.{param}"),
        (rf"roi_head\.bbox_head\.shared_fcs\.0\.{W}", "roi_heads.box_head.fc6.{param}"),
        (rf"roi_head\.bbox_head\.shared_fcs\.1\.{W}", "roi_heads.box_head.fc7.{param}"),
        (rf"roi_head\.bbox_head\.fc_cls\.{W}", "roi_heads.box_predictor.cls_score.{param}"),
        (rf"roi_head\.bbox_head\.fc_reg\.{W}", "roi_heads.box_predictor.bbox_pred.{param}"),
        (rf"roi_head\.mask_head\.convs\.(?P<i>\d+)\.conv\.{W}", "roi_heads.mask_head.{i}.0.{param}"),
        (rf"roi_head\.mask_head\.upsample\.{W}", "roi_heads.mask_predictor.conv5_mask.{param}"),
        (rf"roi_head\.mask_head\.conv_logits\.{W}", "roi_heads.mask_predictor.mask_fcn_logits.{param}"),
    ),
    notes=(
        "mmdetection 2.x's box classifier puts the background last; torchvision's RoI heads read it first, so "
        "its rows were moved",
    ),
)

_OURS = ((r"(?P<key>(?:neck|head|rpn|roi_heads)\..+)", "{key}"),)

RETINANET = DetectorLayout(
    neck="fpn",
    name="retinanet",
    source="this project's RetinaNet models (retinanet_*: torchvision's head names)",
    signature=r"head\.classification_head\.cls_logits\.weight",
    detector="retinanet",
    rows=_OURS,
)

MASK_RCNN = DetectorLayout(
    neck="fpn",
    name="mask_rcnn",
    source="this project's Mask R-CNN models (mask_rcnn_*: torchvision's rpn and roi_heads names)",
    signature=r"roi_heads\.box_predictor\.cls_score\.weight",
    detector="mask_rcnn",
    rows=_OURS,
)

# Detection order: the first layout whose signature some key matches.
DETECTOR_LAYOUTS: dict[str, DetectorLayout] = {
    layout.name: layout for layout in (MMDET_RETINANET, MMDET_MASK_RCNN, RETINANET, MASK_RCNN)
}
# Top-level names of what sits beside the encoder in a detection checkpoint, ours and mmdetection's.
DETECTOR_PREFIXES = ("neck.", "head.", "rpn.", "roi_heads.", "bbox_head.", "rpn_head.", "roi_head.")

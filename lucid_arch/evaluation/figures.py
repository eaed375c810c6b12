"""A confusion matrix -> the figures mmsegmentation's test.py (or a classifier's evaluation) reports.

Segmentation, over every labelled pixel of every image (255 ignored), as mmseg's IoUMetric:
aAcc = correct / labelled; per class IoU = TP / (TP + FP + FN) and Acc = TP / labelled as that
class; mIoU and mAcc = their means over the classes where they are defined (mmseg's nanmean:
IoU over classes labelled or predicted, Acc over classes labelled). Classification: top-1 is
the confusion matrix's trace over its sum, mAcc the mean per-class accuracy (balanced accuracy),
top-5 counted apart (a confusion matrix only holds the best guess).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..report.class_table import ClassFigures
from ..training.seg_metrics import class_accuracy, class_iou, mean_accuracy, mean_iou, pixel_accuracy


def segmentation_metrics(cm: torch.Tensor, suffix: str = "") -> dict[str, float]:
    """{"aAcc", "mIoU", "mAcc"} (fractions), each key followed by ``suffix`` (e.g. " (ms+flip)")."""
    return {f"aAcc{suffix}": pixel_accuracy(cm), f"mIoU{suffix}": mean_iou(cm), f"mAcc{suffix}": mean_accuracy(cm)}


def classification_metrics(cm: torch.Tensor, top5_correct: Optional[int]) -> dict[str, float]:
    """{"top1", "top5" (with five classes or more), "mAcc"} (fractions)."""
    total = float(cm.sum())
    out = {"top1": pixel_accuracy(cm)}
    if top5_correct is not None:
        out["top5"] = top5_correct / total if total else 0.0
    out["mAcc"] = mean_accuracy(cm)
    return out


def per_class(names: Sequence[str], cm: torch.Tensor, segmentation: bool, aug: Optional[torch.Tensor] = None,
              aug_name: str = "") -> ClassFigures:
    """The per-class rows: IoU and Acc (and the augmented pair) with the labelled and predicted
    pixel counts for segmentation; Acc with image counts for a classifier."""
    unit = "pixels" if segmentation else "images"
    scores: dict[str, list[Optional[float]]] = {}
    if segmentation:
        scores["IoU"] = class_iou(cm)
    scores["Acc"] = class_accuracy(cm)
    if aug is not None:
        scores[f"IoU {aug_name}"] = class_iou(aug)
        scores[f"Acc {aug_name}"] = class_accuracy(aug)
    counts = {f"labelled {unit}": [int(v) for v in cm.sum(1).tolist()], f"predicted {unit}": [int(v) for v in cm.sum(0).tolist()]}
    return ClassFigures(names=list(names), scores=scores, counts=counts)

"""Segmentation metrics from a confusion matrix: pixel accuracy, per-class IoU and accuracy, mIoU and mAcc.

A confusion matrix (rows: label, columns: prediction) is the one thing to accumulate: it adds
up over batches and over ranks (one all-reduce), and every metric follows from it exactly --
unlike a mean of per-batch mIoUs, which depends on how the images were batched and sharded.
Pixels labelled ``ignore`` (255) are left out of it, so of every metric.
"""

from __future__ import annotations

from typing import Optional

import torch

from ..data.ignore import IGNORE


def confusion_matrix(pred: torch.Tensor, label: torch.Tensor, num_classes: int, ignore: int = IGNORE) -> torch.Tensor:
    """(K, K) int64 counts of (label, prediction) pairs over the pixels whose label is not ``ignore``.

    ``pred`` and ``label`` hold class ids of the same shape. A label outside 0 .. K-1 (other than
    ``ignore``) is an error: it would be counted in some other cell.
    """
    if pred.shape != label.shape:
        raise ValueError(f"confusion_matrix: predictions {tuple(pred.shape)} and labels {tuple(label.shape)} differ in shape.")
    keep = label != ignore
    label, pred = label[keep].long(), pred[keep].long()
    if label.numel() and (int(label.min()) < 0 or int(label.max()) >= num_classes):
        raise ValueError(f"confusion_matrix: label ids span {int(label.min())}..{int(label.max())}, outside 0..{num_classes - 1} "
                         f"(and not the ignore id {ignore}).")
    return torch.bincount(label * num_classes + pred, minlength=num_classes * num_classes).view(num_classes, num_classes)


def pixel_accuracy(cm: torch.Tensor) -> float:
    """Share of the labelled pixels predicted right (0 when none is labelled)."""
    total = float(cm.sum())
    return float(cm.diagonal().sum()) / total if total else 0.0


def class_iou(cm: torch.Tensor) -> list[Optional[float]]:
    """IoU of each class: TP / (label area + predicted area - TP); None for a class absent from
    both the labels and the predictions (its IoU is undefined, not 0)."""
    cm = cm.double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    return [float(t / u) if u > 0 else None for t, u in zip(tp.tolist(), union.tolist())]


def mean_iou(cm: torch.Tensor) -> float:
    """Mean IoU over the classes present in the labels or the predictions (mmsegmentation's nanmean).

    A class predicted but never labelled counts with IoU 0: predicting it is all false positives.
    """
    present = [v for v in class_iou(cm) if v is not None]
    return sum(present) / len(present) if present else 0.0


def class_accuracy(cm: torch.Tensor) -> list[Optional[float]]:
    """Accuracy (recall) of each class: TP / label area; None for a class never labelled.

    mmsegmentation's per-class "Acc": a class absent from the labels has no pixels to get right,
    so it is left out of the mean (its NaN), whatever was predicted.
    """
    cm = cm.double()
    area = cm.sum(1)
    return [float(t / a) if a > 0 else None for t, a in zip(cm.diagonal().tolist(), area.tolist())]


def mean_accuracy(cm: torch.Tensor) -> float:
    """Mean of the per-class accuracies over the labelled classes: mmsegmentation's mAcc."""
    present = [v for v in class_accuracy(cm) if v is not None]
    return sum(present) / len(present) if present else 0.0

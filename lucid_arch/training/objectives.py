"""What the training loop does differently for a classifier and a segmentation model, and nothing else
(a detector's objective: detection_objective.py).

The loop (loop.py) is one: data order, seeding, AdamW, schedule, clipping, bf16, DDP,
checkpoints and resume are the same for both. An objective supplies the few pieces that
differ: the loss of a batch, the running sums of an epoch (a float64 vector: it is checkpointed
as is and all-reduced by summing), the validation counts, and how both become metrics.

Segmentation's loss: cross-entropy on the logits upsampled (bilinear, ``align_corners=False``)
to the labels' size, ignoring 255, with ``task.label_smoothing`` as configured (the same key
means the same for both kinds; val loss is always unsmoothed). It is summed over the pixels and
divided by the batch's pixel count, ignored pixels included (mmsegmentation's default): every
rank then divides by the same number, so DDP's average of the ranks' gradients is the gradient
of the whole batch, as for a classifier, and a batch whose pixels are all ignored gives 0, not
NaN. Reported losses are per labelled pixel.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F

from .seg_metrics import IGNORE, class_iou, confusion_matrix, mean_iou, pixel_accuracy


class _Logits:
    """A model that maps a normalised batch to logits, scored by the objective (a detector scores itself)."""

    def prepare(self, inputs: Any, images: torch.Tensor, targets: torch.Tensor, generator: Optional[torch.Generator] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) on the device, augmented when a ``generator`` is given (loop._Inputs.pair)."""
        return inputs.pair(images, targets, generator)

    def forward(self, net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return net(x)


class Classification(_Logits):
    """One label per image: cross-entropy, top-1 accuracy."""

    metric = "val_acc"  # the headline: best epoch, sweep plot
    acc_label = "acc"

    def __init__(self, num_classes: int, label_smoothing: float):
        self.num_classes = num_classes
        self.criterion = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def zero_sums(self, device: torch.device) -> torch.Tensor:
        return torch.zeros(3, dtype=torch.float64, device=device)  # loss * n, correct, n

    def blank_target(self, size: tuple[int, int]) -> torch.Tensor:
        return torch.zeros(1, dtype=torch.long)

    def train_step(self, logits: torch.Tensor, y: torch.Tensor, weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(the loss to back-propagate, this batch's share of the epoch's sums)."""
        loss = self.criterion(logits.float(), y) * weight
        n = len(y) * weight
        sums = torch.stack([loss.detach().double() * n, (logits.argmax(1) == y).sum().double() * weight,
                            torch.tensor(n, dtype=torch.float64, device=y.device)])
        return loss, sums

    def running(self, sums: list[float]) -> tuple[float, float, float]:
        """(loss, accuracy, images) of an epoch so far."""
        loss_sum, correct, seen = sums
        return loss_sum / max(seen, 1), correct / max(seen, 1), seen

    def train_record(self, sums: list[float]) -> dict[str, Any]:
        loss, acc, _ = self.running(sums)
        return {"train_loss": loss, "train_acc": acc}

    def empty_val(self) -> dict[str, Any]:
        return {"val_loss": None, "val_acc": None}

    def eval_counts(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(loss sum, correct, images) of a validation batch; no label smoothing."""
        return torch.tensor([F.cross_entropy(logits, y, reduction="sum").item(), (logits.argmax(1) == y).sum().item(), len(y)],
                            dtype=torch.float64)

    def eval_zero(self) -> torch.Tensor:
        return torch.zeros(3, dtype=torch.float64)

    def eval_images(self, counts: torch.Tensor) -> float:
        return float(counts[2])

    def eval_record(self, counts: torch.Tensor) -> dict[str, Any]:
        loss_sum, correct, seen = counts.tolist()
        return {"val_loss": loss_sum / max(seen, 1), "val_acc": correct / max(seen, 1)}


class Segmentation(_Logits):
    """A label per pixel: per-pixel cross-entropy (see the module's docstring), pixel accuracy, mIoU."""

    metric = "val_miou"
    acc_label = "pixel acc"

    def __init__(self, num_classes: int, label_smoothing: float):
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    def zero_sums(self, device: torch.device) -> torch.Tensor:
        return torch.zeros(4, dtype=torch.float64, device=device)  # loss over labelled pixels, correct, labelled, images

    def blank_target(self, size: tuple[int, int]) -> torch.Tensor:
        return torch.full((1, *size), IGNORE, dtype=torch.uint8)

    def _logits(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from ..modeling.segmentation import upsample_logits

        return upsample_logits(logits.float(), tuple(y.shape[-2:]))

    def train_step(self, logits: torch.Tensor, y: torch.Tensor, weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self._logits(logits, y)
        loss_sum = F.cross_entropy(logits, y, ignore_index=IGNORE, reduction="sum", label_smoothing=self.label_smoothing)
        loss = loss_sum / y.numel() * weight
        labelled = y != IGNORE
        correct = ((logits.argmax(1) == y) & labelled).sum()
        sums = torch.stack([loss_sum.detach().double() * weight, correct.double() * weight, labelled.sum().double() * weight,
                            torch.tensor(len(y) * weight, dtype=torch.float64, device=y.device)])
        return loss, sums

    def running(self, sums: list[float]) -> tuple[float, float, float]:
        loss_sum, correct, labelled, images = sums
        return loss_sum / max(labelled, 1), correct / max(labelled, 1), images

    def train_record(self, sums: list[float]) -> dict[str, Any]:
        loss, acc, _ = self.running(sums)
        return {"train_loss": loss, "train_pixel_acc": acc}

    def empty_val(self) -> dict[str, Any]:
        return {"val_loss": None, "val_pixel_acc": None, "val_miou": None, "val_iou": None}

    def eval_zero(self) -> torch.Tensor:
        return torch.zeros(2 + self.num_classes**2, dtype=torch.float64)  # loss sum, images, confusion matrix

    def eval_counts(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = self._logits(logits, y)
        loss_sum = F.cross_entropy(logits, y, ignore_index=IGNORE, reduction="sum").item()
        cm = confusion_matrix(logits.argmax(1), y, self.num_classes).flatten().double().cpu()
        return torch.cat([torch.tensor([loss_sum, len(y)], dtype=torch.float64), cm])

    def eval_images(self, counts: torch.Tensor) -> float:
        return float(counts[1])

    def eval_record(self, counts: torch.Tensor) -> dict[str, Any]:
        cm = counts[2:].view(self.num_classes, self.num_classes)
        labelled = float(cm.sum())
        if labelled == 0 and float(counts[1]):
            from ..data import MaskError

            raise MaskError(f"Every pixel of the {int(counts[1])} validation label maps is {IGNORE} (ignore): there is nothing "
                               f"to score. Check the masks' values (class ids, {IGNORE} only where no class applies).")
        return {"val_loss": float(counts[0]) / max(labelled, 1), "val_pixel_acc": pixel_accuracy(cm), "val_miou": mean_iou(cm),
                "val_iou": class_iou(cm)}


def objective_for(segmentation: bool, num_classes: int, label_smoothing: float, detection: Optional[str] = None,
                  classes: Optional[list[str]] = None) -> Any:
    """The objective of a classifier, a segmentation model or (``detection``: 'retinanet', 'mask_rcnn') a detector."""
    if detection is not None:
        from .detection_objective import Detection

        return Detection(detection, list(classes) if classes is not None else [str(i) for i in range(num_classes)])
    return (Segmentation if segmentation else Classification)(num_classes, label_smoothing)


def best_record(history: list[dict[str, Any]], metric: str) -> Optional[dict[str, Any]]:
    """The epoch with the highest ``metric`` (the first of ties), None before any validation."""
    rated = [r for r in history if r.get(metric) is not None]
    return max(rated, key=lambda r: r[metric]) if rated else None

"""The evaluation loops: every image through lucid_arch.inference, every prediction into a confusion matrix.

Segmentation goes one image at a time, each at its own size (mmseg's test loader has batch 1
for the same reason): predicted at the test scale, the logits resized to the image, compared
with its own label map. With test-time augmentation asked for, each image is predicted twice --
once single-scale, once averaged over the scales and flips -- and counted in two matrices, so
both figures come from one read of the data, as mmseg's model zoo reports mIoU(SS) and
mIoU(MS+Flip) side by side. A classifier's images go in batches, cropped as in validation.

The matrices stay on the model's device (one bincount per image, no synchronisation) until the
end; what ``tick`` is told (a running mIoU or accuracy) is read at most every ``note_every`` seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data.folder import collate_skip_bad
from ..inference import SegmentOptions, classify_probs, segment_batch
from ..training.seg_metrics import confusion_matrix, mean_iou, pixel_accuracy

Tick = Callable[[int, str], None]  # (items done since the last call, a short note on the figures so far)


@dataclass
class EvalResult:
    """What a loop counted; figures.py turns the matrices into figures."""

    confusion: torch.Tensor  # (K, K) int64 on the CPU: rows label, columns prediction
    images: int  # items scored
    unreadable: int  # items skipped (named on stderr by the dataset)
    seconds: float
    confusion_aug: Optional[torch.Tensor] = None  # the augmented predictions' matrix, when asked for
    top5_correct: Optional[int] = None  # a classifier with five classes or more

    @property
    def images_per_second(self) -> float:
        return self.images / max(self.seconds, 1e-9)


def _items(dataset: Dataset, workers: int, **loader: Any) -> Iterator[Any]:
    """The dataset's items (or batches, given ``batch_size``), decoded by ``workers`` processes when asked."""
    return iter(DataLoader(dataset, num_workers=workers, persistent_workers=False, **loader))


class _Every:
    """True at most once every ``seconds`` (and at the first call)."""

    def __init__(self, seconds: float):
        self.seconds, self.last = seconds, -float("inf")

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


@torch.inference_mode()
def evaluate_segmentation(model: nn.Module, dataset: Dataset, prep: Any, num_classes: int, options: SegmentOptions,
                          aug: Optional[SegmentOptions] = None, workers: int = 0, tick: Optional[Tick] = None,
                          note_every: float = 1.0) -> EvalResult:
    """Confusion matrices of ``model`` (in eval mode, on its device) over ``dataset``'s (image, label map) items."""
    device = next(model.parameters()).device
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    cm_aug = torch.zeros_like(cm) if aug is not None else None
    images = unreadable = 0
    note, due = "", _Every(note_every)
    start = time.perf_counter()
    for done, item in enumerate(_items(dataset, workers, batch_size=None), 1):
        if item is None:
            unreadable += 1
        else:
            image, label = item
            label = label.to(device)
            pixels = image.unsqueeze(0).to(device)
            cm += confusion_matrix(segment_batch(model, pixels, prep, options)[0][0], label, num_classes)
            if cm_aug is not None:
                cm_aug += confusion_matrix(segment_batch(model, pixels, prep, aug)[0][0], label, num_classes)
            images += 1
        if tick is not None:
            if due() or done == len(dataset):
                note = f"aAcc {pixel_accuracy(cm):.1%}, mIoU {mean_iou(cm):.1%} so far" + (f"; {unreadable} unusable" if unreadable else "")
            tick(1, note)
    seconds = time.perf_counter() - start
    return EvalResult(cm.cpu(), images, unreadable, seconds, None if cm_aug is None else cm_aug.cpu())


@torch.inference_mode()
def evaluate_classification(model: nn.Module, dataset: Dataset, prep: Any, num_classes: int, batch_size: int = 32,
                            workers: int = 0, tick: Optional[Tick] = None, note_every: float = 1.0) -> EvalResult:
    """The confusion matrix and top-5 hits of a classifier over ``dataset``'s (image, label) items."""
    device = next(model.parameters()).device
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
    k = 5 if num_classes >= 5 else None
    top5 = torch.zeros((), dtype=torch.int64, device=device)
    images = seen = 0
    note, due = "", _Every(note_every)
    start = time.perf_counter()
    for batch_images, labels in _items(dataset, workers, batch_size=batch_size, collate_fn=collate_skip_bad):
        batch = min(batch_size, len(dataset) - seen)  # the items asked for; unreadable ones were dropped
        seen += batch
        if len(labels):
            probs = classify_probs(model, batch_images, prep)
            labels = labels.to(device)
            cm += confusion_matrix(probs.argmax(1), labels, num_classes)
            if k is not None:
                top5 += (probs.topk(k, dim=1).indices == labels[:, None]).any(1).sum()
            images += len(labels)
        if tick is not None:
            if due() or seen == len(dataset):
                note = f"top-1 {pixel_accuracy(cm):.1%} so far" + (f"; {seen - images} unreadable" if seen > images else "")
            tick(batch, note)
    seconds = time.perf_counter() - start
    return EvalResult(cm.cpu(), images, seen - images, seconds, top5_correct=None if k is None else int(top5))

"""task=eval for a detector: every image of a split through the model, then COCO's evaluation of them all.

The images go as training's validation sends them (the data layer letterboxes each to the test
scale, lucid_arch/data/coco.py), in batches; each image's detections are mapped back to its own
pixels and the whole split is scored by pycocotools (detection.py), box AP and, for Mask R-CNN,
mask AP, with the per-class APs mmdetection's ``classwise`` table shows. The detections are kept
in COCO's result format (what ``COCO.loadRes`` and mmdetection's ``format_only`` read and
write), each with its class name, for detections.json.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
from torch.utils.data import Dataset

Tick = Callable[[int, str], None]


class DetectionParts(Dataset):
    """Items of one or more detection datasets (a split, or train and val for ``all``), the first ``limit``.

    ``image_id`` is renumbered across the parts; :meth:`ground_truth` and :meth:`source` follow it.
    """

    def __init__(self, parts: Sequence[Dataset], limit: Optional[int] = None):
        self.parts = list(parts)
        self.index = [(p, i) for p, part in enumerate(self.parts) for i in range(len(part))][:limit]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> Any:
        part, i = self.index[k]
        item = self.parts[part][i]
        if item is None:
            return None
        image, target = item
        return image, {**target, "image_id": k}

    def ground_truth(self, k: int) -> Any:
        part, i = self.index[k]
        return self.parts[part].ground_truth(i)


@dataclass
class DetectionEvalResult:
    figures: dict[str, Any]  # box_AP ... (and mask_AP ...) as fractions or None; per_class lists apart
    per_class: dict[str, list[Optional[float]]]  # "box AP" (and "mask AP") per class
    objects: list[int]  # annotated non-crowd objects per class, in the images scored
    found: list[int]  # detections per class
    results: list[dict[str, Any]] = field(default_factory=list)  # COCO's result format
    images: int = 0
    unreadable: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.images / max(self.seconds, 1e-9)


@torch.inference_mode()
def evaluate_detection(model: torch.nn.Module, dataset: DetectionParts, prep: Any, classes: Sequence[str], masks: bool,
                       batch_size: int = 8, workers: int = 0, tick: Optional[Tick] = None, category_ids: Optional[Sequence[int]] = None
                       ) -> DetectionEvalResult:
    """COCO's figures of ``model`` (eval mode, on its device) over ``dataset``; ``category_ids``: the
    instances file's id of each class, for the results file (default: class id + 1)."""
    from types import SimpleNamespace

    from ..training.detection_objective import Detection
    from ..training.loop import _loader
    from .detection import FIGURES, coco_evaluate

    device = next(model.parameters()).device
    objective = Detection("mask_rcnn" if masks else "retinanet", list(classes))
    inputs = SimpleNamespace(data=SimpleNamespace(augment=False), device=device,
                             mean=torch.tensor(prep.mean).view(1, 3, 1, 1), std=torch.tensor(prep.std).view(1, 3, 1, 1))
    found: dict[int, dict[str, Any]] = {}
    start, seen = time.perf_counter(), 0
    for images, targets in _loader(dataset, list(range(len(dataset))), batch_size, workers):
        asked = min(batch_size, len(dataset) - seen)
        seen += asked
        if len(targets):
            x, _ = objective.prepare(inputs, images, targets)
            for target, detected in zip(targets, model(list(x))):
                found[int(target["image_id"])] = objective.to_original(detected, target, tuple(images.shape[-2:]))
        if tick is not None:
            tick(asked, f"{len(found)} images detected" + (f"; {seen - len(found)} unusable" if seen > len(found) else ""))
    seconds = time.perf_counter() - start
    ids = sorted(found)
    records = [dataset.ground_truth(i) for i in ids]
    detections = [found[i] for i in ids]
    figures: dict[str, Any] = {}
    per_class: dict[str, list[Optional[float]]] = {}
    for iou_type, prefix in (("bbox", "box"), ("segm", "mask")) if masks else (("bbox", "box"),):
        scored = coco_evaluate(records, detections, classes, iou_type) if ids else {name: None for name in FIGURES}
        figures.update({f"{prefix}_{name}": scored[name] for name in FIGURES})
        per_class[f"{prefix} AP"] = scored.get("per_class", [None] * len(classes))
    objects = [0] * len(classes)
    for record in records:
        for label, crowd in zip(record.labels, record.iscrowd):
            objects[label] += not crowd
    counts = [0] * len(classes)
    for d in detections:
        for label in d["labels"].tolist():
            counts[int(label)] += 1
    results = coco_results(records, detections, classes, category_ids)
    return DetectionEvalResult(figures, per_class, objects, counts, results, len(ids), len(dataset) - len(ids), seconds)


def coco_results(records: Sequence[Any], detections: Sequence[dict[str, Any]], classes: Sequence[str],
                 category_ids: Optional[Sequence[int]] = None) -> list[dict[str, Any]]:
    """Detections in COCO's result format (image_id and category_id as the instances file numbers them,
    bbox [x, y, width, height]), each with its ``category_name`` and, with masks, its RLE ``segmentation``."""
    out = []
    for record, found in zip(records, detections):
        masks = found.get("masks")
        for k, (box, score, label) in enumerate(zip(found["boxes"].tolist(), found["scores"].tolist(), found["labels"].tolist())):
            x0, y0, x1, y1 = box
            entry = {"image_id": record.id, "file_name": record.file_name,
                     "category_id": int(category_ids[label]) if category_ids is not None else int(label) + 1,
                     "category_name": classes[int(label)], "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                     "score": round(float(score), 5)}
            if masks is not None:
                rle = masks[k]
                entry["segmentation"] = {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")
                                         if isinstance(rle["counts"], bytes) else rle["counts"]}
            out.append(entry)
    return out

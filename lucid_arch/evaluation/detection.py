"""COCO's detection figures, by COCO's own evaluation code (pycocotools): what mmdetection reports.

Box AP (and mask AP for a model with a mask head) is ``COCOeval``'s: precision averaged over
IoU thresholds 0.50:0.05:0.95, 101 recall points, at most 100 detections per image, crowd
annotations matched as COCO matches them (a detection on a crowd is neither a hit nor a false
positive); AP50 and AP75 at one threshold; APs, APm and APl over objects of area below 32²,
32² to 96² and above 96² pixels (the annotations' ``area``: a mask's pixel count, not its box's).
A figure with nothing to measure (no object of that size, say) is None, where COCOeval prints
-1. Per class: the AP of each category (mmdetection's ``classwise=True``), None for a class with
no annotation in the images scored.

Everything is measured in the images' own pixels, as the annotations give them: a detector that
saw an image resized has its boxes and masks mapped back first (lucid_arch.inference.detect.to_original).

Ground truth comes as :class:`~lucid_arch.data.coco.ImageRecord` (boxes xyxy, contiguous labels,
crowd flags, areas, and segmentations as COCO polygons, RLE or an H x W mask tensor);
detections as one dict per image (``boxes`` xyxy, ``scores``, ``labels``, ``masks``: N x H x W
bool or uint8 at the image's own size, or a list of N COCO RLEs; optional). COCO's category ids are the labels + 1.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, Optional, Sequence

import torch

from ..extras import require

FIGURES = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # COCOeval.stats[0:6], in this order
IOU_TYPES = {"bbox": "box", "segm": "mask"}  # COCO's name -> the prefix of our metric names


def _coco():
    require("detection", "COCO's detection metrics")
    from pycocotools import mask as coco_mask
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return COCO, COCOeval, coco_mask


def _rle(segmentation: Any, height: int, width: int, coco_mask: Any) -> Any:
    """A COCO RLE of a tensor mask, polygons or RLE (with its counts as bytes, as COCOeval needs)."""
    if isinstance(segmentation, torch.Tensor):
        import numpy as np

        rle = coco_mask.encode(np.asfortranarray(segmentation.to(torch.uint8).cpu().numpy()))
        return rle
    if isinstance(segmentation, list):
        return coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    if isinstance(segmentation.get("counts"), list):
        return coco_mask.frPyObjects(segmentation, height, width)
    return {"size": segmentation["size"], "counts": segmentation["counts"].encode() if isinstance(segmentation["counts"], str)
            else segmentation["counts"]}


def _index(coco: Any, dataset: dict[str, Any]) -> Any:
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # "creating index...": COCO's prints are not ours to show
        coco.createIndex()
    return coco


def has_masks(records: Sequence[Any]) -> bool:
    """Whether every non-crowd annotation has a segmentation (mask AP needs them all)."""
    return all(s is not None for r in records for s, c in zip(r.segmentations, r.iscrowd) if not c)


def coco_evaluate(records: Sequence[Any], detections: Sequence[dict[str, Any]], classes: Sequence[str],
                  iou_type: str = "bbox") -> dict[str, Any]:
    """{"AP", "AP50", "AP75", "APs", "APm", "APl": fraction or None, "per_class": [AP or None per class]}.

    ``records[i]`` and ``detections[i]`` are image ``i``'s ground truth and predictions (see the module docstring).
    """
    COCO, COCOeval, coco_mask = _coco()
    if len(records) != len(detections):
        raise ValueError(f"coco_evaluate: {len(records)} images of ground truth but {len(detections)} of detections.")
    segm = iou_type == "segm"
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(classes)]
    images, gt, dt = [], [], []
    for i, (record, found) in enumerate(zip(records, detections)):
        images.append({"id": i, "height": record.height, "width": record.width})
        for k, (box, label) in enumerate(zip(record.boxes, record.labels)):
            x0, y0, x1, y1 = (float(v) for v in box)
            ann = {"id": len(gt) + 1, "image_id": i, "category_id": int(label) + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                   "area": float(record.areas[k]), "iscrowd": int(record.iscrowd[k])}
            if segm:
                segmentation = record.segmentations[k]
                ann["segmentation"] = (_rle(segmentation, record.height, record.width, coco_mask) if segmentation is not None
                                       else coco_mask.encode(_box_mask(box, record.height, record.width)))
            gt.append(ann)
        boxes = found["boxes"].detach().float().cpu()
        scores, labels = found["scores"].detach().float().cpu(), found["labels"].detach().cpu()
        masks = found.get("masks") if segm else None
        for k in range(len(boxes)):
            x0, y0, x1, y1 = boxes[k].tolist()
            ann = {"id": len(dt) + 1, "image_id": i, "category_id": int(labels[k]) + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                   "score": float(scores[k]), "area": max(0.0, (x1 - x0) * (y1 - y0)), "iscrowd": 0}
            if segm:
                if masks is None:
                    raise ValueError("coco_evaluate: iou_type='segm' needs each image's 'masks'.")
                ann["segmentation"] = masks[k] if isinstance(masks, list) else _rle(masks[k] > 0, record.height, record.width, coco_mask)
                ann["area"] = float(coco_mask.area(ann["segmentation"]))
            dt.append(ann)
    truth = _index(COCO(), {"images": images, "annotations": gt, "categories": categories})
    found = _index(COCO(), {"images": images, "annotations": dt, "categories": categories})
    evaluator = COCOeval(truth, found, iou_type)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    out: dict[str, Any] = {name: _figure(value) for name, value in zip(FIGURES, evaluator.stats[:6])}
    precision = evaluator.eval["precision"]  # T x R x K x A x M; area "all", 100 detections
    per_class = []
    for k in range(len(classes)):
        values = precision[:, :, k, 0, -1]
        values = values[values > -1]
        per_class.append(float(values.mean()) if values.size else None)
    out["per_class"] = per_class
    return out


def _figure(value: float) -> Optional[float]:
    return None if value < 0 else float(value)


def _box_mask(box: Sequence[float], height: int, width: int) -> Any:
    """A crowd annotation without a segmentation, scored as its box (what COCO does with a box-only file)."""
    import numpy as np

    mask = np.zeros((height, width), dtype=np.uint8, order="F")
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    mask[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = 1
    return mask


def metric_names(masks: bool) -> list[str]:
    """The figures' names as metrics, training's and evaluation's: box_AP ... (and mask_AP ...)."""
    return [f"{IOU_TYPES[t]}_{name}" for t in (("bbox", "segm") if masks else ("bbox",)) for name in FIGURES]

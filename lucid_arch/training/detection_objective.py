"""What the training loop does differently for a detector (RetinaNet, Mask R-CNN): the third objective.

The loop (loop.py) stays the one loop: data order, seeding, AdamW, schedule, clipping, bf16,
DDP, checkpoints and resume are the classifiers'. A detector differs in four places, each a
method here that objectives.py's two objectives have in their simplest form:

- ``prepare``: a batch's targets are a list of dicts (boxes, labels, and instance masks for
  Mask R-CNN), augmented with their images (lucid_arch/data/box_augment.py);
- ``forward``: the model takes the images and targets and returns its losses (torchvision's
  detection interface), not logits the objective scores;
- ``train_step``: the loss is the sum of the model's losses (torchvision weighs them as
  mmdetection does), and the epoch's sums keep each one apart, per image, for metrics.jsonl;
- ``evaluate``: validation is COCO's evaluation of the detections over the whole split
  (lucid_arch/evaluation/detection.py), not a sum of per-batch counts. Every rank detects its
  share of the images; rank 0 gathers them, scores them and tells every rank the figures.

Labels are 0..K-1 here as everywhere outside the model (lucid_arch.modeling.detection maps them to
its own convention). ``task.label_smoothing`` has no meaning for these losses and is not used.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from ..evaluation.detection import FIGURES, coco_evaluate
from ..inference.detect import to_original

# torchvision's names for each detector's losses, in the order metrics.jsonl lists them.
LOSS_NAMES = {
    "retinanet": ("classification", "bbox_regression"),
    "mask_rcnn": ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"),
}


def detection_kind(model_cfg: Any) -> Optional[str]:
    """'retinanet' or 'mask_rcnn' for a detector's config, None for any other model."""
    detector = getattr(model_cfg, "detector", None)
    kind = getattr(detector, "type", "none") if detector is not None else "none"
    return None if kind in (None, "none") else str(kind)


def val_keys(masks: bool) -> list[str]:
    """The validation figures an epoch's record holds: val_box_ap, val_box_ap50, ... (and val_mask_* with masks)."""
    return [f"val_{kind}_{name.lower()}" for kind in (("box", "mask") if masks else ("box",)) for name in FIGURES]


class Detection:
    """Boxes (and instance masks): the model's own losses; COCO box AP (and mask AP) on validation."""

    metric = "val_box_ap"  # the headline: best epoch, sweep plot
    acc_label = ""  # no running accuracy: progress shows the loss alone

    def __init__(self, kind: str, classes: list[str]):
        if kind not in LOSS_NAMES:
            raise ValueError(f"detection objective: kind={kind!r}; expected one of {', '.join(LOSS_NAMES)}.")
        self.kind = kind
        self.classes = list(classes)
        self.num_classes = len(classes)
        self.masks = kind == "mask_rcnn"
        self.loss_names = LOSS_NAMES[kind]

    # --- training -------------------------------------------------------------------------

    def zero_sums(self, device: torch.device) -> torch.Tensor:
        return torch.zeros(2 + len(self.loss_names), dtype=torch.float64, device=device)  # loss * n, n, each loss * n

    def blank_target(self, size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
        return [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
                 "masks": torch.zeros(0, *size, dtype=torch.uint8)}]

    def prepare(self, inputs: Any, images: torch.Tensor, targets: list[dict[str, Any]],
                generator: Optional[torch.Generator] = None) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """(normalised images on the device, their targets on the device, as the model takes them), augmented
        (crop and flip, as ``task.data`` says) when a ``generator`` is given."""
        from ..data.augment import to_float
        from ..data.box_augment import random_resized_crop_flip_boxes

        data = inputs.data
        if generator is not None and data.augment:
            x, targets = random_resized_crop_flip_boxes(images, targets, generator, scale=(data.min_scale, 1.0), hflip=data.hflip)
        else:
            x = to_float(images)
        keys = ("boxes", "labels", "masks") if self.masks else ("boxes", "labels")
        device = inputs.device
        moved = [{k: t[k].to(device, non_blocking=True) for k in keys if k in t} for t in targets]  # validation items lack masks
        return ((x - inputs.mean) / inputs.std).to(device, non_blocking=True), moved

    def forward(self, net: torch.nn.Module, x: torch.Tensor, y: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return net(list(x), y)

    def train_step(self, losses: dict[str, torch.Tensor], y: list[dict[str, torch.Tensor]], weight: float
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the summed losses to back-propagate, this batch's share of the epoch's sums)."""
        total = sum(value.float() for value in losses.values())
        n = len(y) * weight
        parts = [losses[name].detach().double() * n if name in losses else torch.zeros((), dtype=torch.float64, device=total.device)
                 for name in self.loss_names]
        sums = torch.stack([total.detach().double() * n, torch.tensor(n, dtype=torch.float64, device=total.device), *parts])
        return total * weight, sums

    def running(self, sums: list[float]) -> tuple[float, Optional[float], float]:
        """(loss, None: a detector has no running accuracy, images) of an epoch so far."""
        return sums[0] / max(sums[1], 1), None, sums[1]

    def train_record(self, sums: list[float]) -> dict[str, Any]:
        seen = max(sums[1], 1)
        return {"train_loss": sums[0] / seen, **{f"train_{name}": value / seen for name, value in zip(self.loss_names, sums[2:])}}

    def empty_val(self) -> dict[str, Any]:
        keys = val_keys(self.masks)
        return {"val_loss": None, **{k: None for k in keys}, "val_box_ap_class": None,
                **({"val_mask_ap_class": None} if self.masks else {}), "val_images": None}

    # --- validation -----------------------------------------------------------------------

    def evaluate(self, model: torch.nn.Module, dataset: Any, inputs: Any, env: Any, batch: int, workers: int, *,
                 loader: Any, autocast: Any, unreadable: Any) -> dict[str, Any]:
        """COCO's figures over the whole validation split, every rank detecting its share (see the module docstring).

        The loop lends its ``loader`` (dataset, order, batch, workers -> batches), its ``autocast``
        context and ``unreadable`` (dataset, split -> the error for a split of which nothing could be read)."""
        order = list(range(env.rank, len(dataset), env.world_size))
        found: dict[int, dict[str, Any]] = {}
        model.eval()
        with torch.no_grad(), autocast:
            for images, targets in loader(dataset, order, batch, workers):
                if not len(targets):
                    continue
                x, _ = self.prepare(inputs, images, targets)
                for target, detected in zip(targets, model(list(x))):
                    found[int(target["image_id"])] = self.to_original(detected, target, tuple(images.shape[-2:]))
        found = _gather(found, env)
        record, error = None, None
        if env.is_main:
            if not found and len(dataset):
                error = unreadable(dataset, "validation")
            else:
                record = self.score(dataset, found)
        record, error = _broadcast([record, error], env)
        if error is not None:  # raised on every rank, so that none waits for the others
            raise error
        return record

    def to_original(self, detected: dict[str, torch.Tensor], target: dict[str, Any], input_size: tuple[int, int]) -> dict[str, Any]:
        """One image's detections in its own pixels, compact (masks as COCO RLE) and on the CPU."""
        from ..data.coco import fitted_size

        scale = float(target.get("scale", 1.0))
        size = tuple(int(v) for v in target.get("size", input_size))
        fitted = fitted_size(size[0], size[1], input_size)[:2] if scale != 1.0 else size
        out = to_original({k: v.detach().float().cpu() if k != "labels" else v.detach().cpu() for k, v in detected.items()},
                          scale, size, fitted)
        if "masks" in out:
            out["masks"] = encode_masks(out["masks"])
        return out

    def score(self, dataset: Any, found: dict[int, dict[str, Any]]) -> dict[str, Any]:
        """The record's validation figures for the images in ``found`` (the unreadable ones are left out)."""
        ids = sorted(found)
        records = [dataset.ground_truth(i) for i in ids]
        detections = [found[i] for i in ids]
        out: dict[str, Any] = {"val_loss": None}
        for iou_type, prefix in (("bbox", "box"), ("segm", "mask")) if self.masks else (("bbox", "box"),):
            figures = coco_evaluate(records, detections, self.classes, iou_type)
            out.update({f"val_{prefix}_{name.lower()}": figures[name] for name in FIGURES})
            out[f"val_{prefix}_ap_class"] = figures["per_class"]
        out["val_images"] = len(ids)
        return out


def encode_masks(masks: torch.Tensor) -> list[dict[str, Any]]:
    """N x H x W bool masks -> COCO RLEs (small to gather across ranks, what COCOeval reads)."""
    import numpy as np

    from ..evaluation.detection import _coco

    coco_mask = _coco()[2]
    array = np.asfortranarray(masks.to(torch.uint8).numpy().transpose(1, 2, 0))
    return coco_mask.encode(array) if len(masks) else []


def _gather(found: dict[int, Any], env: Any) -> dict[int, Any]:
    """Every rank's detections on rank 0 (the other ranks get {})."""
    if not env.enabled:
        return found
    import torch.distributed as dist

    parts: list[Any] = [None] * env.world_size
    dist.all_gather_object(parts, found)
    if not env.is_main:
        return {}
    merged: dict[int, Any] = {}
    for part in parts:
        merged.update(part)
    return merged


def _broadcast(values: list[Any], env: Any) -> list[Any]:
    """Rank 0's ``values`` on every rank."""
    if env.enabled:
        import torch.distributed as dist

        dist.broadcast_object_list(values, src=0)
    return values

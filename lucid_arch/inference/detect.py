"""A detector on images of any size: letterboxed in, boxes (and masks) out in each image's own pixels.

Training saw every image resized keep-ratio to fit inside the training size and padded bottom
and right with the mean colour (lucid_arch/data/coco.py; mmdetection's ``Resize(keep_ratio)`` +
``Pad``); the run records that as ``resize: letterbox``. Prediction does the same (bilinear,
antialiased when shrinking, as PIL resizes), so images of different sizes share one batch, then
maps the detections back: boxes divided by the image's scale and clipped, masks cut to the
resized image, resized to the image's size and thresholded at 0.5 (mmdetection's rule).

A result keeps the detections the model returns above ``score_threshold`` (its own threshold,
``model.detector.score_threshold``, and ``detections_per_image`` applied first), best first, with
their class names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DetectionResult:
    """One image's detections: xyxy boxes in its own pixels, scores, class ids (0..K-1) and names."""

    boxes: torch.Tensor  # K x 4 float32
    scores: torch.Tensor  # K float32, best first
    labels: torch.Tensor  # K int64
    classes: Sequence[str]
    size: tuple[int, int]  # the image's height and width
    masks: Optional[torch.Tensor] = None  # K x H x W bool (Mask R-CNN)
    source: Optional[str] = None

    def detections(self) -> list[dict[str, Any]]:
        """[{'id', 'name', 'score', 'box': [x0, y0, x1, y1]}, ...], best first (boxes in pixels, 2 decimals)."""
        return [{"id": int(label), "name": self.classes[int(label)] if int(label) < len(self.classes) else str(int(label)),
                 "score": round(float(score), 4), "box": [round(float(v), 2) for v in box]}
                for box, score, label in zip(self.boxes, self.scores, self.labels)]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "size": list(self.size), "detections": self.detections()}


def letterbox(images: Sequence[torch.Tensor], prep: Any) -> tuple[torch.Tensor, list[float]]:
    """uint8 3 x h x w images -> (float32 N x 3 x H x W normalised at the training size, each image's scale);
    the padding is 0 once normalised (the mean colour)."""
    from ..data.coco import fitted_size
    from .preprocess import normalize

    height, width = (int(v) for v in prep.image_size)
    batch = torch.zeros(len(images), 3, height, width, device=images[0].device if images else "cpu")
    scales = []
    for i, pixels in enumerate(images):
        new_h, new_w, scale = fitted_size(int(pixels.shape[-2]), int(pixels.shape[-1]), (height, width))
        x = pixels[None].to(torch.float32)
        if (new_h, new_w) != tuple(pixels.shape[-2:]):
            shrinking = new_h < pixels.shape[-2] or new_w < pixels.shape[-1]
            x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=shrinking)
            x = x.clamp_(0, float(prep.value_range[1]))
        batch[i, :, :new_h, :new_w] = normalize(x, prep)[0]
        scales.append(scale)
    return batch, scales


def to_original(found: dict[str, torch.Tensor], scale: float, size: Sequence[int], fitted: Optional[Sequence[int]] = None
                ) -> dict[str, torch.Tensor]:
    """Detections on an image resized by ``scale`` (and padded) -> the image's own ``size`` (height, width).

    Boxes are divided by the scale and clipped; masks (N x 1 x H x W probabilities at the input's
    size, as torchvision returns them) lose the padding (``fitted``: the resized image's height
    and width), are resized bilinearly to ``size`` and thresholded at 0.5 (mmdetection's rule).
    """
    height, width = int(size[0]), int(size[1])
    out = {k: v for k, v in found.items() if k != "masks"}
    boxes = found["boxes"].float() / scale
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    out["boxes"] = boxes
    masks = found.get("masks")
    if masks is not None:
        probs = masks.float()
        if probs.dim() == 3:
            probs = probs[:, None]
        if fitted is not None:
            probs = probs[..., : int(fitted[0]), : int(fitted[1])]
        if len(probs) and tuple(probs.shape[-2:]) != (height, width):
            probs = F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)
        out["masks"] = (probs[:, 0] >= 0.5) if len(probs) else torch.zeros(0, height, width, dtype=torch.bool)
    return out


@torch.inference_mode()
def detect_batch(model: nn.Module, images: Sequence[torch.Tensor], prep: Any, classes: Sequence[str],
                 score_threshold: float = 0.0) -> list[DetectionResult]:
    """``model`` (a detector in eval mode) on uint8 3 x h x w ``images`` of any sizes, one result each."""
    from ..data.coco import fitted_size

    if not images:
        return []
    device = next(model.parameters()).device
    batch, scales = letterbox([im.to(device) for im in images], prep)
    results = []
    for pixels, scale, found in zip(images, scales, model(list(batch))):
        size = (int(pixels.shape[-2]), int(pixels.shape[-1]))
        fitted = fitted_size(size[0], size[1], tuple(prep.image_size))[:2]
        out = to_original({k: v.detach().cpu() for k, v in found.items()}, scale, size, fitted)
        keep = out["scores"] >= score_threshold
        results.append(DetectionResult(out["boxes"][keep], out["scores"][keep].float(), out["labels"][keep].long(), classes, size,
                                       out["masks"][keep] if "masks" in out else None))
    return results

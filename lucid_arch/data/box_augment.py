"""Training augmentation for detectors: the classifiers' random resized crop and flip, carried to boxes and instance masks.

The crops and flips are drawn exactly as :func:`~lucid_arch.data.augment.random_resized_crop_flip_pair`
draws them (:func:`~lucid_arch.data.augment.crop_draws`), the images go through the same sampling
grid, and so do the instance masks (``nearest``). A box then follows the crop's affine map
(x' = (x - x0) * W / w, mirrored when flipped) and is clipped to the image, as mmdetection's
RandomCrop clips; where the object has a mask the box is instead the tight box of the cropped
mask, which a clipped box overstates when the crop cuts the object (a disc cut in half keeps a
square box otherwise). Objects left under ``MIN_SIDE`` pixels wide or high are dropped, with
their labels and masks. ``scale=(1, 1)`` without flips returns every target unchanged.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F

from .augment import _crop_grid, crop_draws, to_float
from .shapes import instance_boxes

MIN_SIDE = 1.0  # pixels


def random_resized_crop_flip_boxes(
    images: torch.Tensor,
    targets: list[dict[str, Any]],
    generator: torch.Generator,
    scale: tuple[float, float] = (0.35, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    hflip: bool = True,
) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """(float32 B x 3 x H x W in [0, 1], targets with ``boxes``, ``labels`` and ``masks`` (when given) transformed)."""
    x = to_float(images)
    batch, _, height, width = x.shape
    crops, flips = crop_draws(batch, height, width, generator, scale, ratio, hflip)
    if batch == 0:
        return x, list(targets)
    grid = _crop_grid(crops, flips, height, width).to(x.device)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False).clamp_(0.0, 1.0)
    moved = [_move(t, crops[i], bool(flips[i]), height, width, grid[i : i + 1]) for i, t in enumerate(targets)]
    return out, moved


def _move(target: dict[str, Any], crop: torch.Tensor, flip: bool, height: int, width: int, grid: torch.Tensor) -> dict[str, Any]:
    x0, y0, w, h = (float(v) for v in crop)
    boxes = target["boxes"].to(torch.float64)
    sx, sy = width / w, height / h
    new = torch.stack([(boxes[:, 0] - x0) * sx, (boxes[:, 1] - y0) * sy, (boxes[:, 2] - x0) * sx, (boxes[:, 3] - y0) * sy], 1)
    if flip:
        new = torch.stack([width - new[:, 2], new[:, 1], width - new[:, 0], new[:, 3]], 1)
    new[:, 0::2] = new[:, 0::2].clamp(0, width)
    new[:, 1::2] = new[:, 1::2].clamp(0, height)
    out = dict(target)
    masks: Optional[torch.Tensor] = target.get("masks")
    if masks is not None and len(masks):
        sampled = F.grid_sample(masks[:, None].to(torch.float32), grid.expand(len(masks), -1, -1, -1).to(masks.device),
                                mode="nearest", padding_mode="zeros", align_corners=False)[:, 0]
        masks = (sampled > 0.5).to(torch.uint8)
        tight = instance_boxes(masks)
        has = masks.flatten(1).amax(1) > 0
        new = torch.where(has[:, None], tight.to(new.dtype), new)
        out["masks"] = masks
    keep = ((new[:, 2] - new[:, 0]) >= MIN_SIDE) & ((new[:, 3] - new[:, 1]) >= MIN_SIDE)
    out["boxes"] = new[keep].to(torch.float32)
    out["labels"] = target["labels"][keep]
    if masks is not None:
        out["masks"] = masks[keep]
    return out

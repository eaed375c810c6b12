"""Detections drawn on their image: a box in its class's colour, a label "name 0.93" on a tag above
it, and (Mask R-CNN) the mask blended in, as mmdetection's and torchvision's visualisers draw them.

Colours: the palette's (palette.py), shifted by one, because a detector's class 0 is an object
(a segmentation palette keeps black for background): class k is drawn in ``colour(k + 1)``.
Lowest scores are drawn first, so the best box's tag is on top where tags overlap. Numpy and
PIL only (no torch).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .palette import colour


def detection_colours(num_classes: int) -> np.ndarray:
    """uint8 num_classes x 3: class k's colour when its objects are drawn (see the module docstring)."""
    return np.array([colour(k + 1) for k in range(num_classes)], dtype=np.uint8).reshape(-1, 3)


def draw_detections(image: np.ndarray, detections: Sequence[dict[str, Any]], colours: np.ndarray,
                    masks: Any = None, opacity: float = 0.5) -> "PIL.Image.Image":  # noqa: F821
    """``image`` (H x W x 3 uint8) with ``detections`` ([{'id', 'name', 'score', 'box'}], best first) drawn;
    ``masks`` (K x H x W bool, one per detection) are blended in at ``opacity`` first."""
    from PIL import Image, ImageDraw, ImageFont

    picture = image.astype(np.float32)
    if masks is not None:
        for k in reversed(range(len(detections))):
            mask = np.asarray(masks[k], dtype=bool)
            if mask.shape == picture.shape[:2] and mask.any():
                picture[mask] = picture[mask] * (1.0 - opacity) + colours[detections[k]["id"]].astype(np.float32) * opacity
    canvas = Image.fromarray(np.clip(np.rint(picture), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    height, width = image.shape[:2]
    line = max(1, round(min(height, width) / 300))
    for found in reversed(list(detections)):
        x0, y0, x1, y1 = found["box"]
        rgb = tuple(int(v) for v in colours[found["id"]])
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=rgb, width=line)
        text = f"{found['name']} {found['score']:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tag_w, tag_h = right - left + 4, bottom - top + 4
        tag_y = y0 - tag_h if y0 - tag_h >= 0 else y0  # above the box, or inside it at the image's top edge
        tag_x = min(max(0, x0), max(0, width - tag_w))
        draw.rectangle([tag_x, tag_y, tag_x + tag_w, tag_y + tag_h], fill=rgb)
        ink = (0, 0, 0) if 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2] > 140 else (255, 255, 255)
        draw.text((tag_x + 2 - left, tag_y + 2 - top), text, fill=ink, font=font)
    return canvas

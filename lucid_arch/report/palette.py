"""Class colours, colour overlays of label maps, and a legend: what a person looks at.

The palette is PASCAL VOC's rule, generated rather than listed: class id k's bits are dealt out
in turn to red, green and blue, most significant first, so class 0 (usually background) is black,
1 dark red, 2 dark green, 3 olive, 4 dark blue, ... and any two ids below 256 differ. It is the
colouring VOC's own label PNGs, torchvision's and many viewers use, so a mask coloured here looks
familiar. Ids from 256 up (models with more classes) take colours spread around the hue circle by
the golden angle, at two brightness levels, so neighbours stay apart. The same id is always the
same colour, in every run and on every machine. Numpy and PIL only (no torch).
"""

from __future__ import annotations

import colorsys
from typing import Sequence

import numpy as np

VOC_IDS = 256
GOLDEN = 0.6180339887498949


def colour(class_id: int) -> tuple[int, int, int]:
    """The RGB colour of ``class_id`` (see the module docstring)."""
    if class_id < 0:
        raise ValueError(f"class id {class_id}: ids are 0 or more.")
    if class_id < VOC_IDS:
        rgb = [0, 0, 0]
        bits, shift = class_id, 7
        while bits:
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << shift
            bits >>= 3
            shift -= 1
        return rgb[0], rgb[1], rgb[2]
    k = class_id - VOC_IDS
    r, g, b = colorsys.hsv_to_rgb((k * GOLDEN) % 1.0, 0.65, 0.95 if k % 2 == 0 else 0.7)
    return round(r * 255), round(g * 255), round(b * 255)


def palette(num_classes: int) -> np.ndarray:
    """uint8 num_classes x 3: row k is :func:`colour` (k)."""
    return np.array([colour(k) for k in range(num_classes)], dtype=np.uint8).reshape(-1, 3)


def colourize(labels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """H x W class ids -> H x W x 3 uint8 colours; ids outside the palette (an ignore value) are black."""
    ids = np.asarray(labels)
    out = np.zeros((*ids.shape, 3), dtype=np.uint8)
    known = ids < len(colours)
    out[known] = colours[ids[known]]
    return out


def overlay(image: np.ndarray, labels: np.ndarray, colours: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """The image (H x W x 3 uint8) with each pixel's class colour laid over it: image x (1 - opacity)
    + colour x opacity, rounded (mmsegmentation's visualiser blends the same way)."""
    if image.shape[:2] != labels.shape:
        raise ValueError(f"an image of {image.shape[1]}x{image.shape[0]} px and a label map of {labels.shape[1]}x{labels.shape[0]}: they must match.")
    blend = image.astype(np.float32) * (1.0 - opacity) + colourize(labels, colours).astype(np.float32) * opacity
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def legend(names: Sequence[str], colours: np.ndarray, rows_per_column: int = 40) -> "PIL.Image.Image":  # noqa: F821
    """An image listing every class: a swatch of its colour, its id and its name, in columns."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    row_h, swatch, pad = 18, 14, 6
    labels = [f"{k}  {name}" for k, name in enumerate(names)]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max((measure.textlength(text, font=font) for text in labels), default=0)
    col_w = int(swatch + pad * 3 + text_w)
    columns = max(1, -(-len(labels) // rows_per_column))
    rows = min(len(labels), rows_per_column) or 1
    image = Image.new("RGB", (columns * col_w, rows * row_h + pad), "white")
    draw = ImageDraw.Draw(image)
    for k, text in enumerate(labels):
        x, y = (k // rows_per_column) * col_w + pad, (k % rows_per_column) * row_h + pad
        draw.rectangle([x, y, x + swatch, y + swatch - 2], fill=tuple(int(v) for v in colours[k]), outline=(80, 80, 80))
        draw.text((x + swatch + pad, y), text, fill=(0, 0, 0), font=font)
    return image

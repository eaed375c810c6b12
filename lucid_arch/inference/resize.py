"""Logits at the model's resolution -> an image's own resolution, whole or a band of rows at a time.

A 12-megapixel photo through a 150-class model is 7 GB of float32 scores at full size: more than
a laptop holds, though the label map it ends in is 12 MB. So the full-size scores are only made
whole when they are small; otherwise they are made a band of rows at a time, by the same bilinear
rule as ``F.interpolate(..., mode="bilinear", align_corners=False)`` (the rule mmsegmentation and
Hugging Face resize logits with), split into its two separable passes: rows first, picked and
blended by hand for the band, then columns with torch's linear interpolation.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

BAND_BYTES = 256 << 20  # float32 scores of one band: bounds what a huge image costs beyond its label map


def resize_logits(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, h, w) -> (N, C, H, W), bilinear, align_corners=False."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def resize_rows(logits: torch.Tensor, size: tuple[int, int], top: int, bottom: int) -> torch.Tensor:
    """Rows ``top:bottom`` of ``resize_logits(logits, size)``, without making the rest."""
    h, w = logits.shape[-2:]
    height, width = size
    if h == height:
        band = logits[..., top:bottom, :]
    else:
        y = ((torch.arange(top, bottom, device=logits.device, dtype=torch.float32) + 0.5) * (h / height) - 0.5).clamp_(min=0)
        y0 = y.floor().long().clamp_(max=h - 1)
        y1 = (y0 + 1).clamp_(max=h - 1)
        weight = (y - y0).view(-1, 1)
        band = logits[..., y0, :] * (1 - weight) + logits[..., y1, :] * weight
    if w == width:
        return band
    n, c, rows, _ = band.shape
    return F.interpolate(band.reshape(n, c * rows, w), size=width, mode="linear", align_corners=False).view(n, c, rows, width)


def bands(logits_channels: int, size: tuple[int, int], batch: int = 1) -> Iterator[tuple[int, int]]:
    """(top, bottom) row ranges whose full-size scores stay within :data:`BAND_BYTES`; one band when it all fits."""
    height, width = size
    per_row = max(1, logits_channels * width * batch * 4)
    rows = max(1, min(height, BAND_BYTES // per_row))
    for top in range(0, height, rows):
        yield top, min(height, top + rows)

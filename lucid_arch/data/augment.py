"""Training augmentation on whole batches, in torch: random resized crop and horizontal flip
(of images, and of their label maps for segmentation, through the same grid).

Per batch rather than per image in the loader, so it runs wherever the batch is (the GPU
included), costs one ``grid_sample`` instead of B PIL calls, and is reproducible from a single
``torch.Generator``: a resumed run seeds it from (seed, step) and repeats the same crops. The
random numbers are always drawn on the CPU (the generator's device), and the sampling grid
is built elementwise (the grid ``affine_grid`` would build, without its batched matmul), so
the result does not depend on thread count or BLAS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn.functional as F

_CROP_TRIES = 10


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1]; float input is returned as float32 unchanged."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 255.0
    return images.to(torch.float32)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x - mean) / std per channel (dim -3), for x in [0, 1]."""
    mean_t = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x - mean_t) / std_t


def crop_boxes(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> torch.Tensor:
    """(B, 4) float64 boxes (x0, y0, w, h) in pixels, torchvision's RandomResizedCrop rule, vectorised.

    Area fraction uniform in ``scale``, aspect w/h log-uniform in ``ratio``; of ``_CROP_TRIES``
    candidates the first that fits is used, else the whole image clamped to ``ratio``. Every
    draw has a fixed size, so the generator advances the same way whatever the images are.
    """
    if not (0.0 < scale[0] <= scale[1] <= 1.0):
        raise ValueError(f"random_resized_crop_flip: scale={tuple(scale)}; give 0 < min <= max <= 1.")
    if not (0.0 < ratio[0] <= ratio[1]):
        raise ValueError(f"random_resized_crop_flip: ratio={tuple(ratio)}; give 0 < min <= max.")
    area = float(height * width)
    u = torch.rand(batch, _CROP_TRIES, 2, generator=generator, dtype=torch.float64)
    target = area * (scale[0] + u[..., 0] * (scale[1] - scale[0]))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + u[..., 1] * (log_hi - log_lo))
    w = torch.sqrt(target * aspect)
    h = torch.sqrt(target / aspect)
    fits = (w <= width) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1)
    rows = torch.arange(batch)
    # Fallback (no candidate fits, rare): the largest box of an allowed aspect.
    whole = width / height
    if whole < ratio[0]:
        fw, fh = float(width), width / ratio[0]
    elif whole > ratio[1]:
        fw, fh = height * ratio[1], float(height)
    else:
        fw, fh = float(width), float(height)
    any_fit = fits.any(dim=1)
    w = torch.where(any_fit, w[rows, first], torch.full((batch,), fw, dtype=torch.float64))
    h = torch.where(any_fit, h[rows, first], torch.full((batch,), fh, dtype=torch.float64))
    pos = torch.rand(batch, 2, generator=generator, dtype=torch.float64)
    x0 = pos[:, 0] * (width - w)
    y0 = pos[:, 1] * (height - h)
    return torch.stack([x0, y0, w, h], dim=1)


def crop_draws(batch: int, height: int, width: int, generator: torch.Generator, scale: tuple[float, float],
               ratio: tuple[float, float], hflip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(crop boxes, flips): every random draw of a batch's augmentation, in their fixed order
    (shared by images, label maps and detection boxes, so each sees the same crops)."""
    boxes = crop_boxes(batch, height, width, generator, scale, ratio)
    flip = torch.rand(batch, generator=generator, dtype=torch.float64) < 0.5
    if not hflip:
        flip = torch.zeros_like(flip)
    return boxes, flip


def random_resized_crop_flip(
    images: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.35, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    hflip: bool = True,
) -> torch.Tensor:
    """A random crop of each image (``crop_boxes``) resized back to H x W, flipped left-right with
    probability 0.5 when ``hflip``: float32 B x 3 x H x W in [0, 1], on the images' device.

    Bilinear, ``align_corners=False``: with scale=(1, 1) and no flip it returns the input.
    """
    return random_resized_crop_flip_pair(images, None, generator, scale, ratio, hflip)[0]


def random_resized_crop_flip_pair(
    images: torch.Tensor,
    masks: Optional[torch.Tensor],
    generator: torch.Generator,
    scale: tuple[float, float] = (0.35, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
    hflip: bool = True,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """:func:`random_resized_crop_flip` of ``images`` and, through the very same sampling grid,
    of their label maps ``masks`` (B x H x W integers, or None): (images, masks as int64).

    Masks are sampled with ``nearest``: a label is copied, never averaged into another class id,
    so 255 (ignore) stays 255 and a pixel's label is the one whose pixel the image's bilinear
    sample is centred on. The random draws are the same with or without masks, so adding masks
    changes none of the images' crops.
    """
    if images.dim() != 4:
        raise ValueError(f"random_resized_crop_flip: expected B x C x H x W images, got shape {tuple(images.shape)}.")
    x = to_float(images)
    batch, _, height, width = x.shape
    if masks is not None and (masks.dim() != 3 or tuple(masks.shape) != (batch, height, width)):
        raise ValueError(f"random_resized_crop_flip: masks of shape {tuple(masks.shape)} for images of shape "
                         f"{tuple(images.shape)}; give B x H x W label maps.")
    boxes, flip = crop_draws(batch, height, width, generator, scale, ratio, hflip)
    if batch == 0:
        return x, None if masks is None else masks.long()
    grid = _crop_grid(boxes, flip, height, width).to(x.device)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False).clamp_(0.0, 1.0)
    if masks is None:
        return out, None
    labels = F.grid_sample(masks[:, None].to(torch.float32), grid.to(masks.device), mode="nearest",
                           padding_mode="border", align_corners=False)  # ids up to 2**24 are exact in float32
    return out, labels[:, 0].round().long()


def _crop_grid(boxes: torch.Tensor, flip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H, W, 2) sampling grid of the crops: the grid ``affine_grid`` would build, elementwise."""
    batch = boxes.shape[0]
    x0, y0, w, h = boxes.unbind(1)
    # affine_grid's theta for this crop: input coordinate = s * output coordinate + t (in [-1, 1]).
    sx = torch.where(flip, -w / width, w / width).to(torch.float32)
    sy = (h / height).to(torch.float32)
    tx = ((x0 + w / 2) * (2.0 / width) - 1.0).to(torch.float32)
    ty = ((y0 + h / 2) * (2.0 / height) - 1.0).to(torch.float32)
    base_x = (torch.arange(width, dtype=torch.float32) * 2.0 + 1.0) / width - 1.0  # pixel centres
    base_y = (torch.arange(height, dtype=torch.float32) * 2.0 + 1.0) / height - 1.0
    gx = (sx.view(-1, 1) * base_x + tx.view(-1, 1)).view(batch, 1, width).expand(batch, height, width)
    gy = (sy.view(-1, 1) * base_y + ty.view(-1, 1)).view(batch, height, 1).expand(batch, height, width)
    return torch.stack([gx, gy], dim=-1)

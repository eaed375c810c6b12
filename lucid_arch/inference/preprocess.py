"""Pixels -> the model's input, as a run's :class:`~lucid_arch.runs.Preprocessing` says.

Prediction must see an image exactly as training's validation saw it, or a model scores worse
in use than on paper for no visible reason. So the classifier's path reuses the data layer's own
resize (lucid_arch/data/folder.py: shorter side to S / 0.875 with PIL's bicubic, centre crop)
and the segmentation path resizes keep-ratio (mmsegmentation's test-time ``Resize(keep_ratio)``):
the shorter side becomes the training size, the whole image is kept so every pixel gets a label.
Normalisation is (x / 255 - mean) / std in float32, after resizing (both are per channel and
linear, so the order does not change the result, and resizing uint8 is the cheaper side).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..data.folder import CROP_FRACTION, _check_pixels, _resized


def to_pixels(image: Any) -> torch.Tensor:
    """Any image a user holds -> uint8 3 x H x W (RGB): a PIL image, a uint8 tensor (3 x H x W or
    H x W x 3) or a numpy array (H x W x 3 or H x W). Float pixels are refused rather than guessed at."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        import numpy as np

        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous()
    if not isinstance(image, torch.Tensor):
        image = torch.as_tensor(image)
    if image.dtype != torch.uint8:
        raise TypeError(
            f"an image tensor of dtype {image.dtype}: give uint8 pixels 0..255 (3 x H x W or H x W x 3), as an image file "
            "decodes to; normalisation is the predictor's job (it applies the run's mean and std)."
        )
    if image.dim() == 2:
        image = image.unsqueeze(0).expand(3, -1, -1)
    if image.dim() == 3 and image.shape[0] != 3 and image.shape[-1] == 3:
        image = image.permute(2, 0, 1)
    if image.dim() != 3 or image.shape[0] != 3 or min(image.shape[1:]) < 1:
        raise ValueError(f"an image of shape {tuple(image.shape)}: give 3 x H x W or H x W x 3 uint8 RGB pixels.")
    return image.contiguous()


def normalize(pixels: torch.Tensor, prep: Any) -> torch.Tensor:
    """uint8 or float pixels in the run's value range (N x 3 x H x W) -> float32 (x / max - mean) / std."""
    top = float(prep.value_range[1])
    mean = torch.tensor(prep.mean, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1) * top
    std = torch.tensor(prep.std, dtype=torch.float32, device=pixels.device).view(1, 3, 1, 1) * top
    return (pixels.to(torch.float32) - mean) / std


def keep_ratio_size(hw: Sequence[int], prep: Any, scale: float = 1.0) -> tuple[int, int]:
    """(h, w) of an image resized keep-ratio so its shorter side is the training size times ``scale``."""
    side = max(1, round(min(prep.image_size) * scale))
    new_w, new_h = _resized((int(hw[1]), int(hw[0])), side, side)
    return new_h, new_w


def check_pixel_budget(hw: Sequence[int], prep: Any, scale: float = 1.0) -> None:
    """The data layer's bound on decoded and resized pixels (data/folder.py MAX_PIXELS); ValueError past it."""
    side = max(1, round(min(prep.image_size) * scale))
    _check_pixels((int(hw[1]), int(hw[0])), side, side)


def resize_keep_ratio(pixels: torch.Tensor, prep: Any, scale: float = 1.0) -> torch.Tensor:
    """N x 3 x H x W pixels (any dtype) -> float32 N x 3 x h x w, keep-ratio as :func:`keep_ratio_size`.

    Bilinear, antialiased when shrinking (as PIL resizes, which Hugging Face's processors use)."""
    size = keep_ratio_size(pixels.shape[-2:], prep, scale)
    x = pixels.to(torch.float32)
    if tuple(x.shape[-2:]) == size:
        return x
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking).clamp_(0, float(prep.value_range[1]))


def center_crop(pixels: torch.Tensor, image_size: Sequence[int]) -> torch.Tensor:
    """uint8 3 x H x W -> 3 x S x S as validation crops (data/folder.py load_image): the shorter side
    to S / 0.875 with PIL's bicubic, then the centre. An image already S x S is returned as it is."""
    crop_h, crop_w = int(image_size[0]), int(image_size[1])
    if tuple(pixels.shape[-2:]) == (crop_h, crop_w):
        return pixels
    import numpy as np
    from PIL import Image

    cover_h, cover_w = max(crop_h, round(crop_h / CROP_FRACTION)), max(crop_w, round(crop_w / CROP_FRACTION))
    im = Image.fromarray(pixels.permute(1, 2, 0).cpu().numpy())
    new_w, new_h = _resized(im.size, cover_h, cover_w)
    im = im.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = round((new_w - crop_w) / 2), round((new_h - crop_h) / 2)
    im = im.crop((left, top, left + crop_w, top + crop_h))
    return torch.from_numpy(np.array(im, dtype=np.uint8)).permute(2, 0, 1).contiguous()

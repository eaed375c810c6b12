"""Semantic segmentation of whole images: whole or sliding-window inference, flip and multi-scale
averaging, scores and labels at each image's own resolution.

The conventions are mmsegmentation's, so figures compare with its tables:

- ``whole``: the image resized keep-ratio (shorter side = training size x scale), one forward pass;
  the logits (1/4 of the input) go straight to the image's own size with one bilinear resize, as
  Hugging Face's ``post_process_semantic_segmentation`` does.
- ``slide``: over that resized image, windows of ``crop`` every ``stride`` pixels, the last one
  flush with the edge; each window's logits resized to the window, summed where windows overlap
  and divided by how many covered each pixel (mmseg's ``slide_inference``), then to the image's size.
- test-time augmentation (mmseg's ``SegTTAModel``): each scale, and its horizontal mirror when
  ``flip``, is one pass; passes are averaged as softmax probabilities at the image's own size.

An input smaller than the model's stage geometry allows (a stage map below its sr_ratio, see
:func:`min_input_side`) is padded with the mean colour (zeros once normalised) at the bottom and
right, and the padding's logits are cut off again, so any image gets a full-size answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config.geometry import conv_out
from .preprocess import normalize, resize_keep_ratio
from .resize import BAND_BYTES, bands, resize_logits, resize_rows

MODES = ("whole", "slide")
MS_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # mmsegmentation's multi-scale test ratios


@dataclass(frozen=True)
class SegmentOptions:
    """How an image is segmented; the defaults are a single whole-image pass at the training size."""

    mode: str = "whole"
    crop: Optional[tuple[int, int]] = None  # slide: window (h, w); None: the training size
    stride: Optional[tuple[int, int]] = None  # slide: step (h, w); None: 2/3 of the window, as mmseg's configs
    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    batch_size: int = 8  # slide: windows per forward pass

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode = {self.mode!r}: choose whole or slide.")
        if not self.scales or not all(isinstance(s, (int, float)) and 0 < s <= 8 for s in self.scales):
            raise ValueError(f"scales = {list(self.scales)!r}: give ratios of the training size in (0, 8], e.g. [0.75, 1.0, 1.25].")
        for name in ("crop", "stride"):
            value = getattr(self, name)
            if value is not None and not (len(value) == 2 and all(isinstance(v, int) and v >= 1 for v in value)):
                raise ValueError(f"{name} = {value!r}: give (height, width) in pixels, each at least 1.")
        if self.batch_size < 1:
            raise ValueError(f"batch_size = {self.batch_size}: must be at least 1.")

    def window(self, prep: Any) -> tuple[tuple[int, int], tuple[int, int]]:
        """(crop, stride) of slide mode, defaults filled in from the training size."""
        crop = self.crop or (int(prep.image_size[0]), int(prep.image_size[1]))
        stride = self.stride or (max(1, crop[0] * 2 // 3), max(1, crop[1] * 2 // 3))
        return crop, stride

    @property
    def passes(self) -> int:
        return len(self.scales) * (2 if self.flip else 1)


def min_input_side(model: nn.Module) -> int:
    """The smallest image side the model runs on eagerly: every stage's map at least 1 px, and at
    least ``sr_ratio`` px where keys and values come from a strided reduction (the model's own check)."""
    from ..modeling.model import PyramidVisionTransformer

    spec = next((m.spec for m in model.modules() if isinstance(m, PyramidVisionTransformer)), None)
    if spec is None:
        return 1
    side = 1
    while True:
        size, ok = side, True
        for stage in spec.stages:
            size = conv_out(size, stage.patch)
            ok = ok and size >= (stage.sr_ratio if stage.sr_ratio > 1 and not stage.linear else 1)
        if ok:
            return side
        side += 1


def windows(size: tuple[int, int], crop: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of every slide window over an image of ``size``; windows never leave
    the image, the last of each row and column sits flush with its edge, a window wider than the image
    shrinks to it (mmseg's grid)."""
    spans = []
    for extent, c, s in zip(size, crop, stride):
        c = min(c, extent)
        count = -(-max(extent - c, 0) // s) + 1
        spans.append([(min(i * s, extent - c), min(i * s, extent - c) + c) for i in range(count)])
    return [(t, l, b, r) for t, b in spans[0] for l, r in spans[1]]


def _forward(model: nn.Module, x: torch.Tensor, min_side: int) -> torch.Tensor:
    """The model's logits for normalised ``x``; for an input under ``min_side``, padded, then resized
    to the padded size and cut back to ``x``'s (so the logits cover exactly ``x``)."""
    h, w = x.shape[-2:]
    if min(h, w) >= min_side:
        return model(x)
    padded = F.pad(x, (0, max(0, min_side - w), 0, max(0, min_side - h)))
    return resize_logits(model(padded), tuple(padded.shape[-2:]))[..., :h, :w]


def _slide(model: nn.Module, x: torch.Tensor, crop: tuple[int, int], stride: tuple[int, int], batch: int, min_side: int) -> torch.Tensor:
    n, _, h, w = x.shape
    spots = windows((h, w), crop, stride)
    jobs = [(i, spot) for i in range(n) for spot in spots]
    total: Optional[torch.Tensor] = None
    count = torch.zeros(1, 1, h, w, device=x.device)
    for t, l, b, r in spots:
        count[..., t:b, l:r] += 1
    for start in range(0, len(jobs), batch):
        chunk = jobs[start : start + batch]
        crops = torch.stack([x[i, :, t:b, l:r] for i, (t, l, b, r) in chunk])
        logits = resize_logits(_forward(model, crops, min_side), tuple(crops.shape[-2:]))
        if total is None:
            total = logits.new_zeros(n, logits.shape[1], h, w)
        for k, (i, (t, l, b, r)) in enumerate(chunk):
            total[i, :, t:b, l:r] += logits[k]
    return total / count


def pass_logits(model: nn.Module, pixels: torch.Tensor, prep: Any, options: SegmentOptions, min_side: int) -> Iterator[torch.Tensor]:
    """One (N, C, h, w) logits tensor per pass (scale, then its mirror), each covering the whole image
    at some resolution (1/4 of the resized input for whole, the resized input for slide)."""
    crop, stride = options.window(prep)
    for scale in options.scales:
        x = normalize(resize_keep_ratio(pixels, prep, scale), prep)
        for mirrored in (False, True) if options.flip else (False,):
            inp = x.flip(-1) if mirrored else x
            if options.mode == "whole":
                logits = _forward(model, inp, min_side)
            else:
                logits = _slide(model, inp, crop, stride, options.batch_size, min_side)
            yield logits.flip(-1) if mirrored else logits


@torch.inference_mode()
def segment_batch(
    model: nn.Module, pixels: torch.Tensor, prep: Any, options: SegmentOptions = SegmentOptions(), *, probs: bool = False
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(labels N x H x W long, probabilities N x C x H x W float32 or None) for uint8 N x 3 x H x W
    images of one size, at that size, on the model's device.

    Without ``probs``, a large image's full-size scores are made a band of rows at a time
    (lucid_arch/inference/resize.py), so its cost beyond the label map stays bounded."""
    device = next(model.parameters()).device
    pixels = pixels.to(device)
    size = tuple(pixels.shape[-2:])
    min_side = min_input_side(model)
    passes = pass_logits(model, pixels, prep, options, min_side)
    first = next(passes)
    n, c = first.shape[:2]
    if probs or n * c * size[0] * size[1] * 4 <= BAND_BYTES:
        total = _probabilities(first, size) if options.passes > 1 or probs else resize_logits(first, size)
        for logits in passes:
            total += _probabilities(logits, size)
        if options.passes > 1:
            total /= options.passes
        return total.argmax(1), total if probs else None
    held = [first, *passes]  # at the model's resolution: small beside the full-size scores
    if len(held) == 1:
        return labels_at(first, size), None
    labels = torch.empty(n, *size, dtype=torch.long, device=device)
    for top, bottom in bands(c, size, n):
        labels[:, top:bottom] = sum(resize_rows(logits, size, top, bottom).softmax(1) for logits in held).argmax(1)
    return labels, None


def labels_at(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """argmax of ``logits`` (N, C, h, w) resized to ``size``: N x H x W long, a band at a time when large."""
    size = (int(size[0]), int(size[1]))
    n, c = logits.shape[:2]
    if n * c * size[0] * size[1] * 4 <= BAND_BYTES:
        return resize_logits(logits, size).argmax(1)
    return torch.cat([resize_rows(logits, size, t, b).argmax(1) for t, b in bands(c, size, n)], dim=1)


def _probabilities(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return resize_logits(logits, tuple(size)).softmax(1)


def segment_probs(
    model: nn.Module,
    image: torch.Tensor,
    prep: Any,
    *,
    mode: str = "whole",
    crop: Optional[Sequence[int]] = None,
    stride: Optional[Sequence[int]] = None,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    batch_size: int = 8,
) -> torch.Tensor:
    """float32 C x H x W class probabilities for one uint8 3 x H x W image, at its own size (the
    average over passes when ``flip`` or several ``scales``; see the module docstring), on the
    model's device. Put the model in eval() mode first (its dropout would otherwise sample)."""
    options = SegmentOptions(mode=mode, crop=pair(crop), stride=pair(stride), flip=flip, scales=tuple(scales), batch_size=batch_size)
    return segment_batch(model, image.unsqueeze(0), prep, options, probs=True)[1][0]


def post_process_semantic_segmentation(logits: torch.Tensor, target_sizes: Optional[Sequence[Sequence[int]]] = None) -> list[torch.Tensor]:
    """A batch of (N, C, h, w) logits -> N label maps (H_i x W_i long), each resized bilinearly to its
    target size first (Hugging Face's function of the same name; None keeps the logits' size)."""
    if target_sizes is not None and len(target_sizes) != logits.shape[0]:
        raise ValueError(f"{len(target_sizes)} target sizes for a batch of {logits.shape[0]} logits: give one (height, width) per image.")
    return [labels_at(logits[i : i + 1], target_sizes[i] if target_sizes is not None else logits.shape[-2:])[0]
            for i in range(logits.shape[0])]


def pair(value: Optional[Sequence[int]]) -> Optional[tuple[int, int]]:
    if value is None:
        return None
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])

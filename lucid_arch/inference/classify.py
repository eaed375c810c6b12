"""Image classification: validation's preprocessing, softmax, the top k with class names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, Union

import torch
from torch import nn

from .preprocess import center_crop, normalize


@dataclass(frozen=True)
class TopK:
    """One of an image's best guesses."""

    index: int
    name: str
    score: float  # softmax probability

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "score": self.score}


def crop_batch(images: Union[torch.Tensor, Sequence[torch.Tensor]], prep: Any) -> torch.Tensor:
    """uint8 images of any sizes -> N x 3 x S x S as validation crops them (one already S x S is kept)."""
    if isinstance(images, torch.Tensor) and images.dim() == 4 and tuple(images.shape[-2:]) == tuple(prep.image_size):
        return images
    return torch.stack([center_crop(image, prep.image_size) for image in images])


@torch.inference_mode()
def classify_probs(model: nn.Module, images: Union[torch.Tensor, Sequence[torch.Tensor]], prep: Any) -> torch.Tensor:
    """float32 N x C softmax probabilities for uint8 images (an N x 3 x H x W batch or a list of 3 x H x W),
    each shorter side resized to S / 0.875 and centre-cropped to the training size S first (as training's
    validation does; images already S x S, e.g. from lucid_arch.data's ImageFolder, are used as they are).
    On the model's device; put the model in eval() mode first."""
    device = next(model.parameters()).device
    x = normalize(crop_batch(images, prep).to(device), prep)
    return model(x).float().softmax(-1)


def top_k(probs: torch.Tensor, classes: Sequence[str], k: int) -> list[list[TopK]]:
    """Per row of N x C probabilities, the ``k`` best classes (fewer when there are fewer classes), best first."""
    scores, indices = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return [
        [TopK(int(i), classes[int(i)], float(s)) for s, i in zip(row_scores.tolist(), row_indices.tolist())]
        for row_scores, row_indices in zip(scores, indices)
    ]

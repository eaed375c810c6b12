"""SegmentationModel: an encoder, an optional neck and a decode head, from one ModelSpec.

The encoder is the same PyramidVisionTransformer every variant builds, as a backbone of all its
stages; the neck and head come from the registry by the names the config gives. State-dict keys
are ``backbone.*`` (the encoder's own names), ``neck.*`` and ``decode_head.*``, the layout of
mmsegmentation's EncoderDecoder, so an encoder checkpoint of any supported layout loads into
``backbone`` (see lucid_arch.weights). ``forward`` returns logits at the first map's stride (1/4
of the input): upsample them to the labels' size for a loss or a prediction (see :func:`upsample_logits`).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .layers.conv_norm_act import init_classifier
from .layers.shapes import contiguous_if_traced
from .lucid_args import lucid_call
from .model import PyramidVisionTransformer
from .registry import DECODE_HEADS, NECKS
from .spec import ModelSpec


def upsample_logits(logits: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """(B, K, h, w) logits at the head's stride -> (B, K, H, W), bilinearly, as the references do for loss and prediction."""
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=align_corners)


class SegmentationModel(nn.Module):
    def __init__(self, spec: ModelSpec):
        super().__init__()
        assert spec.decode_head is not None, "a SegmentationModel needs a spec with a decode head"
        self.spec = spec
        self.num_classes = spec.decode_head.num_classes
        self.backbone = PyramidVisionTransformer(spec.encoder)
        self.neck: Optional[nn.Module] = NECKS[spec.neck.kind].from_spec(spec.neck) if spec.neck is not None else None
        self.decode_head = DECODE_HEADS[spec.decode_head.kind].from_spec(spec.decode_head)
        self.in_index = spec.decode_head.in_index
        self.feature_info = self.backbone.feature_info
        if not self.backbone.patch_embed.proj.weight.is_meta:  # the backbone initialised itself
            self._init_heads()

    def init_weights(self) -> None:
        """The encoder's official initialisation, then each part's own (mmseg's for necks and heads)."""
        self.backbone.init_weights()
        self._init_heads()

    def _init_heads(self) -> None:
        if self.neck is not None:
            self.neck.init_weights()
        self.decode_head.init_weights()

    def no_weight_decay(self) -> set[str]:
        return {f"backbone.{n}" for n in self.backbone.no_weight_decay()}

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's maps, every stage."""
        return [contiguous_if_traced(m) for m in self.backbone(x)]

    def forward_head(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Neck (if any) and decode head over the encoder's maps: logits at the first map's stride."""
        if self.neck is not None:
            maps = self.neck(maps)
        return self.decode_head([maps[i] for i in self.in_index])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, num_classes, H/s, W/s) logits, s the first map's stride (4 for every shipped variant)."""
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """A new 1x1 classifier for ``num_classes`` (fine-tuning on another label set)."""
        old = self.decode_head.conv_seg
        self.decode_head.conv_seg = nn.Conv2d(old.in_channels, num_classes, 1, device=old.weight.device)
        self.num_classes = num_classes
        init_classifier(self.decode_head.conv_seg)

    def __repr__(self) -> str:
        return f"{lucid_call(self.spec)}\n{super().__repr__()}"

"""DetectionModel: a PVT encoder, its FPN and a torchvision detector, from one ModelSpec.

The shared part of RetinaNet and Mask R-CNN (see the package docstring for the interface):
the encoder (``backbone``, a PyramidVisionTransformer of every stage, as the segmentation models
hold it) and the FPN (``neck``) make the levels; the input batching (``transform``) and the
mapping between the app's class ids (0..num_classes-1) and the detector's are here, so both
kinds take and give the same thing. Each kind supplies its losses and detections.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from torch import nn

from ..heads import FPN
from ..layers.shapes import contiguous_if_traced
from ..lucid_args import lucid_call
from ..model import PyramidVisionTransformer
from ..spec import ModelSpec
from .batching import ImageBatcher

Images = Union[torch.Tensor, Sequence[torch.Tensor]]
Targets = Optional[Sequence[dict[str, torch.Tensor]]]


class DetectionModel(nn.Module):
    """Base of :class:`~.retinanet.RetinaNetModel` and :class:`~.mask_rcnn.MaskRCNNModel`."""

    label_offset = 0  # the detector's id of the app's class 0 (Mask R-CNN: 1, after the background)

    def _build_pyramid(self, spec: ModelSpec) -> None:
        assert spec.detection is not None and spec.neck is not None, "a DetectionModel needs a spec with a detector and a neck"
        self.spec = spec
        self.num_classes = spec.detection.num_classes
        self.backbone = PyramidVisionTransformer(spec.encoder)
        self.neck = FPN.from_spec(spec.neck)
        self.feature_info = self.backbone.feature_info

    def _finish(self, spec: ModelSpec) -> None:
        """The batching transform (replacing torchvision's), and the parts initialised unless they are on meta."""
        self.transform = ImageBatcher(spec.detection.settings)
        if not self.backbone.patch_embed.proj.weight.is_meta:  # the backbone initialised itself
            self._init_detector()

    # --- initialisation -----------------------------------------------------------------------------
    def init_weights(self) -> None:
        """The encoder's official initialisation, the FPN's (Xavier), then the detector's (mmdetection's)."""
        self.backbone.init_weights()
        self._init_detector()

    def _init_detector(self) -> None:
        self.neck.init_weights()
        self.init_head()

    def init_head(self) -> None:  # each kind's
        raise NotImplementedError

    def no_weight_decay(self) -> set[str]:
        return {f"backbone.{n}" for n in self.backbone.no_weight_decay()}

    # --- forward --------------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The FPN's levels (B, channels, H/s, W/s), finest first, of a padded Bx3xHxW batch."""
        return self.neck([contiguous_if_traced(m) for m in self.backbone(x)])

    def forward(self, images: Images, targets: Targets = None) -> Any:
        """Train mode: a dict of losses (needs ``targets``). Eval mode: one dict of boxes, scores, labels
        (and masks) per image, in its own pixels; class ids 0..num_classes-1 both ways."""
        if self.training and targets is None:
            raise ValueError(f"{self.spec.name} is in training mode: it needs targets (boxes and labels per image) to "
                             "compute losses; call model.eval() to detect.")
        sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        batch, targets = self.transform(list(images), self._to_detector(targets))
        levels = self.forward_features(batch.tensors)
        if self.training:
            return self.losses(batch, levels, targets)
        found = self.transform.postprocess(self.detect(batch, levels), batch.image_sizes, sizes)
        if self.label_offset:
            found = [{**d, "labels": d["labels"] - self.label_offset} for d in found]
        return found

    def _to_detector(self, targets: Targets) -> Optional[list[dict[str, torch.Tensor]]]:
        if targets is None:
            return None
        out = []
        for i, t in enumerate(targets):
            boxes, labels = t["boxes"], t["labels"]
            if boxes.ndim != 2 or boxes.shape[-1] != 4 or labels.shape != boxes.shape[:1]:
                raise ValueError(f"targets[{i}]: boxes must be [N, 4] (x1, y1, x2, y2) and labels [N], "
                                 f"got {list(boxes.shape)} and {list(labels.shape)}.")
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ValueError(f"targets[{i}]: labels must be class ids 0..{self.num_classes - 1}, got "
                                 f"{int(labels.min())}..{int(labels.max())}.")
            flat = (boxes[:, 2:] <= boxes[:, :2]).any(dim=1)
            if flat.any():
                raise ValueError(f"targets[{i}]: box {boxes[flat][0].tolist()} has no area (x2 <= x1 or y2 <= y1); "
                                 "drop such boxes before training.")
            out.append({**t, "labels": labels + self.label_offset} if self.label_offset else dict(t))
        return out

    def losses(self, batch: Any, levels: list[torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def detect(self, batch: Any, levels: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{lucid_call(self.spec)}\n{super().__repr__()}"

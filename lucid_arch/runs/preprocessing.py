"""How an image becomes a model's input: what a run records so that prediction, evaluation and
exported files prepare images exactly as training's validation did.

Hugging Face keeps this in ``preprocessor_config.json`` beside the weights; a run keeps it in
``inference.json`` (:mod:`lucid_arch.runs.run_dir`). Torch-free: exporters and docs read it too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Classifier: shorter side to size / 0.875, then a centre crop (lucid_arch/data/folder.py, the ImageNet
# evaluation convention). Segmentation: the whole image, shorter side resized to the training size
# (mmsegmentation's keep-ratio resize), so every pixel gets a label. Detection ("letterbox"): the whole
# image resized keep-ratio to fit inside the training size, padded bottom and right with the mean colour
# (mmdetection's keep-ratio resize and pad), boxes mapped back to the image's own pixels.
RESIZE_POLICIES = ("center_crop", "keep_ratio", "letterbox")


@dataclass(frozen=True)
class Preprocessing:
    """Everything between an image file and the input tensor, as training's validation did it."""

    image_size: tuple[int, int]  # (height, width) the model was trained at
    mean: tuple[float, float, float] = IMAGENET_MEAN  # per channel, after scaling to [0, 1]
    std: tuple[float, float, float] = IMAGENET_STD
    resize: str = "center_crop"  # one of RESIZE_POLICIES
    color_order: str = "RGB"  # channel order of the input tensor
    value_range: tuple[int, int] = (0, 255)  # uint8 pixels, divided by 255 before (x - mean) / std
    layout: str = "NCHW"

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Preprocessing":
        """From ``to_dict``'s form; a value of the wrong shape is a ValueError naming the key."""
        def triple(key: str, default: tuple) -> tuple[float, float, float]:
            value = data.get(key, default)
            if not (isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
                raise ValueError(f"preprocessing.{key} = {value!r}: expected three numbers, one per channel")
            return tuple(float(v) for v in value)  # type: ignore[return-value]

        size = data.get("image_size")
        hw = (size, size) if isinstance(size, int) else tuple(size) if isinstance(size, (list, tuple)) else ()
        if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 16_384 for v in hw):
            raise ValueError(f"preprocessing.image_size = {size!r}: expected a side or [height, width] of positive integers")
        resize = data.get("resize", "center_crop")
        if resize not in RESIZE_POLICIES:
            raise ValueError(f"preprocessing.resize = {resize!r}: expected one of {', '.join(RESIZE_POLICIES)}")
        return cls(image_size=(int(hw[0]), int(hw[1])), mean=triple("mean", IMAGENET_MEAN), std=triple("std", IMAGENET_STD),
                   resize=resize)

    @classmethod
    def default(cls, model_cfg: Any) -> "Preprocessing":
        """For a model not trained here: ImageNet statistics at the model's own size."""
        size = model_cfg.img_size
        hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        segmentation = getattr(getattr(model_cfg, "decode_head", None), "type", "none") != "none"
        detection = getattr(getattr(model_cfg, "detector", None), "type", "none") != "none"
        return cls(image_size=hw, resize="letterbox" if detection else "keep_ratio" if segmentation else "center_crop")

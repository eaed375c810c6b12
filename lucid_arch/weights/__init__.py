"""Weights: checkpoint layouts, their conversion to ours, and loading them into a model.

    layouts.py      one rename table per encoder layout (official, timm, Hugging Face, mmdetection)
    head_layouts.py one rename table per neck/decode-head layout (Hugging Face, NVlabs, mmseg, ours)
    convert.py      detect a layout, apply its table (convert_state_dict: the encoder)
    convert_segmentation.py  a whole segmentation checkpoint: encoder + neck + decode head
    detection_layouts.py  one rename table per detector layout (mmdetection 2.x RetinaNet, Mask R-CNN, ours)
    convert_detection.py  a whole detection checkpoint: encoder + FPN + detector heads
    files.py        which file a path names; read it without running code (pickle_scan.py)
    hf_config.py    a Hugging Face directory's config.json against the model
    adapt.py        head, backbone and v1 position-table adaptations
    pretrained.py   load_pretrained: all of the above, with a report
    mismatch.py     the error for a checkpoint of another architecture

Nothing here knows the builder or the command line; the builder calls :func:`load_pretrained`.
"""

from .convert import SOURCES, Conversion, convert, convert_state_dict, detect_layout, unwrap_state_dict
from .convert_detection import (
    DETECTOR_SOURCES,
    DetectionConversion,
    DetectorLayoutError,
    convert_detection,
    convert_detection_state_dict,
    detect_detector_layout,
)
from .convert_segmentation import (
    HEAD_SOURCES,
    HeadLayoutError,
    SegmentationConversion,
    convert_segmentation,
    convert_segmentation_state_dict,
    detect_head_layout,
)
from .files import CheckpointError, read_checkpoint, resolve_checkpoint
from .pretrained import LoadReport, load_pretrained

__all__ = [
    "DETECTOR_SOURCES",
    "DetectionConversion",
    "DetectorLayoutError",
    "convert_detection",
    "convert_detection_state_dict",
    "detect_detector_layout",
    "HEAD_SOURCES",
    "SOURCES",
    "CheckpointError",
    "Conversion",
    "HeadLayoutError",
    "LoadReport",
    "SegmentationConversion",
    "convert",
    "convert_segmentation",
    "convert_segmentation_state_dict",
    "convert_state_dict",
    "detect_head_layout",
    "detect_layout",
    "load_pretrained",
    "read_checkpoint",
    "resolve_checkpoint",
    "unwrap_state_dict",
]

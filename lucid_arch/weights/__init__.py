"""Weights: checkpoint layouts, their conversion to ours, and loading them into a model.

    layouts.py      one rename table per layout (official, timm, Hugging Face, mmdetection)
    convert.py      detect a layout, apply its table (convert_state_dict)
    files.py        which file a path names; read it without running code (pickle_scan.py)
    hf_config.py    a Hugging Face directory's config.json against the model
    adapt.py        head, backbone and v1 position-table adaptations
    pretrained.py   load_pretrained: all of the above, with a report

Nothing here knows the builder or the command line; the builder calls :func:`load_pretrained`.
"""

from .convert import SOURCES, Conversion, convert, convert_state_dict, detect_layout, unwrap_state_dict
from .files import CheckpointError, read_checkpoint, resolve_checkpoint
from .pretrained import LoadReport, load_pretrained

__all__ = [
    "SOURCES",
    "CheckpointError",
    "Conversion",
    "LoadReport",
    "convert",
    "convert_state_dict",
    "detect_layout",
    "load_pretrained",
    "read_checkpoint",
    "resolve_checkpoint",
    "unwrap_state_dict",
]

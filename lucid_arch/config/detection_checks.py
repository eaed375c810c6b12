"""The detection sections of a model config (``detector``, ``anchors``, ``rpn``, ``roi``): their rules.

Types, choices and bounds of every field are checked with the other sections'
(:func:`lucid_arch.config.section_checks.section_type_problems`, bounds in
:data:`~lucid_arch.config.schema.SECTION_RANGES` and ``SECTION_FLOAT_RANGES``). What is left
ties the detector to the rest of the model: it needs the FPN neck, the anchors' strides are the
neck levels' own, a matcher's background threshold is not above its foreground one. Each rule
is one problem naming its key, reported with every other problem of the config.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

from .neck_levels import NONE, Add, level_strides, neck_level_problems


def detection_problems(cfg: Mapping[str, Any], bad: set[str], add: Add, stage_strides: Optional[Sequence[int]], kind: str) -> None:
    """Rules of a config whose ``detector.type`` is ``kind`` (not 'none'), every section whose own fields are
    valid; ``stage_strides`` None when the stage geometry is invalid."""
    detector, neck, anchors = cfg["detector"], cfg["neck"], cfg["anchors"]
    for section in ("detector", "rpn", "roi"):
        part = cfg[section]
        if section not in bad and part["bg_iou"] > part["fg_iou"]:
            add(f"{section}.bg_iou", f"{section}.bg_iou = {part['bg_iou']}: above {section}.fg_iou = {part['fg_iou']}; "
                "an anchor or proposal cannot be background at an IoU that makes it a positive.")
    if "detector" not in bad and detector["min_size"] is not None and detector["min_size"] > detector["max_size"]:
        add("detector.min_size", f"detector.min_size = {detector['min_size']}: above detector.max_size = "
            f"{detector['max_size']}; raise max_size, or min_size=null to keep the images' own size.")
    if "decode_head" in bad or "neck" in bad:
        return
    if cfg["decode_head"]["type"] != NONE:
        add("detector.type", f"detector.type = {kind!r} and decode_head.type = {cfg['decode_head']['type']!r}: a model has "
            "one head; set decode_head.type=none for a detector, or detector.type=none for a segmentation model.")
        return
    if "features_only" not in bad and cfg["features_only"]:
        return  # the encoder alone: neither neck nor detector is built
    if "num_classes" not in bad and cfg["num_classes"] < 1:
        add("num_classes", f"num_classes = {cfg['num_classes']}: a detector tells at least 1 class; set num_classes "
            "(80 for COCO), or detector.type=none.")
    if neck["type"] != "fpn":
        add("neck.type", f"neck.type = {neck['type']!r}: detector.type = {kind!r} reads the levels of a feature pyramid; "
            "set neck.type=fpn (with neck.start_level, neck.extra_convs and neck.num_outs).")
        return
    if stage_strides is None or neck_level_problems(neck, len(stage_strides), add):
        return
    strides = level_strides(cfg, stage_strides)
    if any(b != 2 * a for a, b in zip(strides, strides[1:])):
        add("neck.start_level", f"neck.start_level = {neck['start_level']}: the neck's levels have strides {strides}, "
            "but a detector's pyramid doubles its stride from level to level (anchors and RoI levels are assigned by "
            "size); use the encoder's default patch strides.")
        return
    if "anchors" in bad:
        return
    if list(anchors["strides"]) != strides:
        add("anchors.strides", f"anchors.strides = {list(anchors['strides'])}: the neck's {len(strides)} levels have "
            f"strides {strides} (from neck.start_level {neck['start_level']} and neck.num_outs); set anchors.strides={_flow(strides)}.")
    if not anchors["ratios"]:
        add("anchors.ratios", "anchors.ratios = []: anchors need at least one height-to-width ratio, e.g. [0.5, 1.0, 2.0].")
    elif len(set(anchors["ratios"])) != len(anchors["ratios"]):
        add("anchors.ratios", f"anchors.ratios = {list(anchors['ratios'])}: a ratio listed twice gives identical anchors; list each once.")
    largest = max(strides) * anchors["base_scale"] * 2 ** ((anchors["scales_per_octave"] - 1) / anchors["scales_per_octave"])
    if not math.isfinite(largest) or largest > 65_536:
        add("anchors.base_scale", f"anchors.base_scale = {anchors['base_scale']}: the largest anchor would be "
            f"{largest:,.0f} px; keep anchors within 65,536 px (RetinaNet 4, RPN 8).")


def _flow(values: Sequence[int]) -> str:
    return "[" + ",".join(map(str, values)) + "]"

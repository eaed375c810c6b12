"""A neck's levels: which encoder maps it reads and the stride of each level it outputs.

Shared by the segmentation checks (which maps a decode head may read) and the detection checks
(the strides anchors must have); torch-free.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

Add = Callable[[str, str], None]  # records one problem: (key, message)
NONE = "none"


def level_strides(cfg: Mapping[str, Any], stage_strides: Sequence[int]) -> list[int]:
    """Output stride of every map the decode head (or detector) may read: the neck's levels, else the stages."""
    neck = cfg["neck"]
    if neck["type"] == NONE:
        return list(stage_strides)
    read = list(stage_strides[neck["start_level"]:])
    outs = neck["num_outs"] or len(read)
    strides = read[:outs]
    while len(strides) < outs:  # extra levels: stride-2 max-pools of the last
        strides.append(strides[-1] * 2)
    return strides


def neck_level_problems(neck: Mapping[str, Any], stages: int, add: Add) -> bool:
    """The neck reads maps start_level.. of the encoder's ``stages`` and outputs at least as many levels; True if not."""
    if neck["start_level"] >= stages:
        add("neck.start_level", f"neck.start_level = {neck['start_level']}: the encoder has {stages} maps (0..{stages - 1}); "
            f"read from one of them.")
        return True
    read = stages - neck["start_level"]
    if neck["num_outs"] is not None and neck["num_outs"] < read:
        add("neck.num_outs", f"neck.num_outs = {neck['num_outs']}: fewer levels than the {read} encoder maps it reads "
            f"(from neck.start_level {neck['start_level']}); use at least {read}, or null for one per map.")
        return True
    return False

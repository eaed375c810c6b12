"""The dense-prediction sections of a model config, ``neck`` and ``decode_head``: types and rules.

A section is a small typed mapping (:class:`~lucid_arch.config.schema.NeckConfig`,
:class:`~lucid_arch.config.schema.DecodeHeadConfig`). Its problems are reported like every
other field's, all at once and by key path (``model.decode_head.channels``), and its values are
bounded (:data:`~lucid_arch.config.schema.SECTION_RANGES`) so a reviewed config stays cheap to
check. The rules that tie a section to the encoder (which maps exist, at which strides) need
the stage geometry, so the main checks call :func:`dense_problems` once the stages are known.
"""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, fields
from typing import Any, Callable, Mapping, Optional, Sequence

from .problems import Problem, suggest
from .detection_checks import detection_problems
from .neck_levels import NONE, Add, level_strides, neck_level_problems  # NONE: a section's type when the model has no such part
from .schema import DETECTOR_CHOICES, MAX_SECTION_LIST, SECTION_FLOAT_RANGES, SECTION_RANGES, SECTIONS, field_default



def section_defaults(cls: type) -> dict[str, Any]:
    return {f.name: field_default(f) for f in fields(cls) if field_default(f) is not MISSING}




def section_type_problems(key: str, value: Any, cls: type, type_problems: Callable) -> list[Problem]:
    """Problems of one section's mapping: unknown keys, types, choices, bounds."""
    if not isinstance(value, Mapping):
        return [Problem(key, f"{key} = {value!r}: expected a mapping of {cls.__name__}'s fields, e.g. "
                        f"{key}.type=... ({key}.type=none for no such part).")]
    hints = typing.get_type_hints(cls)
    out = [Problem(f"{key}.{k}", unknown_key_message(f"{key}.{k}", cls)) for k in value if k not in hints]
    defaults = section_defaults(cls)
    for f in fields(cls):
        v = value.get(f.name, defaults.get(f.name))
        if isinstance(v, (list, tuple)) and len(v) > MAX_SECTION_LIST:  # never walk a huge list
            out.append(Problem(f"{key}.{f.name}", f"{key}.{f.name} has {len(v):,} entries; at most {MAX_SECTION_LIST}."))
            continue
        found = type_problems(f"{key}.{f.name}", v, hints[f.name])
        out += found
        if found or v is None:
            continue
        choices = f.metadata.get("choices")
        if choices and v not in choices:
            out.append(Problem(f"{key}.{f.name}", f"{key}.{f.name} = {v!r}: must be one of {', '.join(choices)}{suggest(str(v), choices)}."))
        if f.name in SECTION_RANGES:
            low, high = SECTION_RANGES[f.name]
            for i, item in enumerate(v if isinstance(v, list) else [v]):
                if not low <= item <= high:
                    where = f"{key}.{f.name}[{i}]" if isinstance(v, list) else f"{key}.{f.name}"
                    out.append(Problem(where, f"{where} = {item}: must lie in [{low}, {high:,}]."))
        if f.name in SECTION_FLOAT_RANGES:
            out += _float_problems(f"{key}.{f.name}", v, SECTION_FLOAT_RANGES[f.name])
    return out


def _float_problems(key: str, value: Any, bounds: tuple[float, float, bool, bool]) -> list[Problem]:
    """'model.rpn.fg_iou = 1.5: must lie in (0, 1].' for each entry out of its interval (NaN included)."""
    low, high, low_in, high_in = bounds
    out = []
    for i, v in enumerate(value if isinstance(value, list) else [value]):
        inside = math.isfinite(v) and (low <= v if low_in else low < v) and (v <= high if high_in else v < high)
        if not inside:
            where = f"{key}[{i}]" if isinstance(value, list) else key
            out.append(Problem(where, f"{where} = {v}: must lie in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}."))
    return out


def unknown_key_message(key: str, cls: type) -> str:
    """'model.decode_head.chanels: unknown key, not a field of DecodeHeadConfig (did you mean channels?); ...'."""
    names = [f.name for f in fields(cls)]
    return f"{key}: unknown key, not a field of {cls.__name__}{suggest(key.rsplit('.', 1)[-1], names)}; its fields are {', '.join(names)}."


def filled(value: Any, cls: type) -> dict[str, Any]:
    """A checked section as a plain dict with the schema's defaults filled in."""
    if not isinstance(value, Mapping):  # a section dataclass from Python callers
        value = {f.name: getattr(value, f.name) for f in fields(cls)}
    out = {**section_defaults(cls), **dict(value)}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def dense_problems(cfg: Mapping[str, Any], bad: set[str], add: Add, stage_strides: Optional[Sequence[int]]) -> None:
    """Rules between the sections and the rest: what needs what, and which maps the head can read.

    ``stage_strides`` is None when the stage geometry itself is invalid (those rules are skipped).
    """
    detector = cfg["detector"]
    kind = detector.get("type", NONE) if isinstance(detector, Mapping) else None  # known even when another field is bad
    if kind not in (None, NONE) and (kind in DETECTOR_CHOICES or "detector" not in bad):
        detection_problems(cfg, bad, add, stage_strides, kind)
        return
    if any(name in bad for name in SECTIONS):
        return
    neck, head = cfg["neck"], cfg["decode_head"]
    if neck["type"] != NONE and head["type"] == NONE:
        add("neck.type", f"neck.type = {neck['type']!r} but decode_head.type = 'none': a neck only feeds a decode head or "
            "a detector; set decode_head.type or detector.type, or neck.type=none.")
        return
    if head["type"] == NONE or ("features_only" not in bad and cfg["features_only"]):
        return  # a classifier, or a backbone (features_only builds neither neck nor head)
    if "num_classes" not in bad and cfg["num_classes"] < 1:
        add("num_classes", f"num_classes = {cfg['num_classes']}: a decode head predicts at least 1 class per pixel; "
            "set num_classes (150 for ADE20K), or decode_head.type=none for a backbone.")
    if stage_strides is None:
        return
    if neck["type"] != NONE and neck_level_problems(neck, len(stage_strides), add):
        return
    strides = level_strides(cfg, stage_strides)
    reads = "neck level" if neck["type"] != NONE else "stage"
    index = head["in_index"]
    if index is not None:
        if not index:
            add("decode_head.in_index", "decode_head.in_index = []: the head reads at least one map; null reads all of them.")
            return
        for i, v in enumerate(index):
            if v >= len(strides):
                add(f"decode_head.in_index[{i}]", f"decode_head.in_index[{i}] = {v}: there are {len(strides)} maps "
                    f"({reads}s 0..{len(strides) - 1}) to read.")
                return
        if list(index) != sorted(set(index)):
            add("decode_head.in_index", f"decode_head.in_index = {list(index)}: list each map once, in increasing stride "
                "(the first is the one the logits come out at).")
            return
    picked = [strides[i] for i in (index if index is not None else range(len(strides)))]
    if head["type"] == "fpn":
        for i, s in enumerate(picked[1:], start=1):
            ratio = s / picked[0]
            if ratio < 1 or ratio != 2 ** round(math.log2(ratio)):
                add("decode_head.type", f"decode_head.type = 'fpn': its scale heads upsample by 2 until a map reaches the "
                    f"first's stride {picked[0]}, but map {i} has stride {s}; read maps whose strides are the first's "
                    "times a power of 2 (decode_head.in_index), or use type=all_mlp.")
                return

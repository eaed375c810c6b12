"""Checkpoint key layouts -> this project's (timm's) layout.

Supported sources, detected from the keys:
- ``timm``: timm's ``pvt_v2`` (identical to ours; returned as is);
- ``official_v2``: whai362/PVT ``pvt_v2.py`` (``patch_embed1``, ``block1.0``, ``norm1``,
  ``mlp.dwconv.dwconv``);
- ``official_v1``: whai362/PVT ``pvt.py`` (as v2 plus ``pos_embed1``, ``cls_token`` and one
  final ``norm``).
Wrappers that trainers add (``{"model": ...}``, ``{"state_dict": ...}``, ``module.``
prefixes from DistributedDataParallel, ``_orig_mod.`` from ``torch.compile``) are removed
first. Pure key renaming: tensors are not copied.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

SOURCES = ("auto", "timm", "official_v1", "official_v2")

_OFFICIAL = re.compile(r"^(patch_embed|block|norm|pos_embed)(\d+)(.*)$")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile (either order)


def unwrap_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The state dict inside a trainer's checkpoint: wrapper dicts and module prefixes removed."""
    for key in ("model", "state_dict", "model_state_dict"):
        inner = state_dict.get(key)
        if isinstance(inner, Mapping) and not any(hasattr(v, "shape") for v in state_dict.values()):
            state_dict = inner
            break
    sd = dict(state_dict)
    while sd and (prefix := next((p for p in _WRAPPER_PREFIXES if all(k.startswith(p) for k in sd)), None)):
        sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def detect_layout(state_dict: Mapping[str, Any]) -> str:
    keys = set(state_dict)
    if any(k.startswith("stages.") for k in keys) and "patch_embed.proj.weight" in keys:
        return "timm"
    if "patch_embed1.proj.weight" in keys:
        return "official_v1" if "pos_embed1" in keys else "official_v2"
    sample = ", ".join(sorted(keys)[:5])
    raise ValueError(
        f"convert_state_dict: cannot tell the checkpoint layout from its keys ({sample}, ...); "
        f"expected timm's (patch_embed.*, stages.*) or the official PVT code's (patch_embed1.*, block1.*). "
        f"Pass source= one of {', '.join(SOURCES[1:])} if you know it."
    )


def _official_key(key: str, num_stages: int, v1: bool) -> str:
    if key == "cls_token" or key.startswith("head."):
        return key
    if v1 and key.startswith("norm."):  # v1's single final norm closes the last stage
        return f"stages.{num_stages - 1}.{key}"
    m = _OFFICIAL.match(key)
    if not m:
        raise ValueError(f"convert_state_dict: unexpected key {key!r} in an official PVT checkpoint.")
    kind, stage, rest = m.group(1), int(m.group(2)) - 1, m.group(3)
    if kind == "patch_embed":
        return f"patch_embed{rest}" if stage == 0 else f"stages.{stage}.downsample{rest}"
    if kind == "block":
        return f"stages.{stage}.blocks{rest}".replace(".mlp.dwconv.dwconv.", ".mlp.dwconv.")
    if kind == "pos_embed":
        return f"stages.{stage}.pos_embed{rest}"
    return f"stages.{stage}.norm{rest}"  # v2's per-stage norm{i}


def convert_state_dict(state_dict: Mapping[str, Any], source: str = "auto") -> dict[str, Any]:
    """Rename a PVT checkpoint's keys to this project's layout; ``source`` is detected by default."""
    if source not in SOURCES:
        raise ValueError(f"convert_state_dict: source={source!r} is not one of {', '.join(SOURCES)}.")
    sd = unwrap_state_dict(state_dict)
    layout = detect_layout(sd) if source == "auto" else source
    if layout == "timm":
        return sd
    num_stages = max(int(m.group(2)) for k in sd if (m := _OFFICIAL.match(k)))
    return {_official_key(k, num_stages, layout == "official_v1"): v for k, v in sd.items()}

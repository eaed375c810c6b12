"""Checkpoint key layouts -> this project's (timm's): detect the layout, apply its rename table.

The tables live in :mod:`lucid_arch.weights.layouts`. Wrappers that trainers add
(``{"model": ...}``, ``{"state_dict": ...}``, ``module.`` from DistributedDataParallel,
``_orig_mod.`` from ``torch.compile``) are removed first. An encoder-decoder's checkpoint
(mmsegmentation's or mmdetection's, or one of this project's segmentation models) holds the
encoder under ``backbone.``: that part is converted and the rest (neck, heads) reported as not
the encoder; :mod:`lucid_arch.weights.convert_segmentation` converts the rest too. Renaming
does not copy tensors, except where another codebase splits or packs the attention projections
differently (see the layouts' conventions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

from .layouts import LAYOUTS, Layout

SOURCES = ("auto", *LAYOUTS)

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile (either order)
_ONE_BASED = ("stage1", "block1")
_MLP_WEIGHT = re.compile(r".*\.mlp\.fc[12]\.weight")
ENCODER_PREFIX = "backbone."  # an encoder-decoder's encoder (mmseg's / mmdet's, and our SegmentationModel)
NOT_ENCODER = ("neck.", "decode_head.", "auxiliary_head.")  # what sits beside the encoder when it is not under backbone.


@dataclass(frozen=True)
class Conversion:
    """A state dict in our names, the layout it came from and the keys that were not the encoder's."""

    state_dict: dict[str, Any]
    layout: Layout
    ignored: tuple[str, ...] = ()


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


def split_encoder(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(the encoder's keys, the names of the others): an encoder-decoder's ``backbone.*`` with the
    prefix removed, else every key but a neck's and decode heads' (Hugging Face's segmenter)."""
    if any(k.startswith(ENCODER_PREFIX) for k in state_dict):
        encoder = {k[len(ENCODER_PREFIX):]: v for k, v in state_dict.items() if k.startswith(ENCODER_PREFIX)}
        return encoder, [k for k in state_dict if not k.startswith(ENCODER_PREFIX)]
    others = [k for k in state_dict if k.startswith(NOT_ENCODER)]
    return {k: v for k, v in state_dict.items() if not k.startswith(NOT_ENCODER)}, others


def first_match(layouts: Mapping[str, Any], keys: Iterable[str]) -> Optional[str]:
    """The name of the first of ``layouts`` (each with a ``signature``, a whole-key pattern) some key matches."""
    keys = list(keys)
    for name, layout in layouts.items():
        signature = re.compile(layout.signature)
        if any(signature.fullmatch(k) for k in keys):
            return name
    return None


def split_beside(state_dict: Mapping[str, Any], source: str, prefixes: tuple[str, ...]) -> tuple[dict[str, Any], Conversion, list[str]]:
    """(the unwrapped state dict, its encoder's conversion, the keys beside the encoder under ``prefixes``):
    an encoder-decoder's or detector's checkpoint taken apart; the encoder's ``ignored`` no longer lists those keys."""
    sd = unwrap_state_dict(state_dict)
    encoder = convert(sd, source)
    beside = [k for k in encoder.ignored if k.startswith(prefixes)]
    rest = tuple(k for k in encoder.ignored if k not in beside)
    return sd, Conversion(encoder.state_dict, encoder.layout, rest), beside


def rename_beside(layout: Any, keys: list[str], sd: Mapping[str, Any], error: type[ValueError], who: str) -> tuple[dict[str, Any], list[str]]:
    """(``keys`` renamed by a head or detector ``layout``'s table, the keys its ``ignored`` drops); a key its
    table does not know raises ``error``, its message starting with ``who``."""
    unused = [k for k in keys if any(re.fullmatch(p, k) for p in layout.ignored)]
    renamed = {}
    for key in keys:
        if key in unused:
            continue
        try:
            renamed[_rename(layout, key)] = sd[key]
        except ValueError as err:
            raise error(f"{who}: {str(err).split(': ', 1)[-1]}") from None
    return renamed, unused


def detect_layout(state_dict: Mapping[str, Any]) -> str:
    """The name of the first layout whose signature key the state dict's encoder holds (see :func:`split_encoder`)."""
    encoder, _ = split_encoder(state_dict)
    found = first_match(LAYOUTS, encoder)
    if found is not None:
        return found
    sample = ", ".join(sorted(state_dict)[:5])
    raise ValueError(
        f"convert_state_dict: cannot tell the checkpoint layout from its keys ({sample}, ...); expected one of: "
        + "; ".join(f"{name} ({layout.source})" for name, layout in LAYOUTS.items())
        + f". Pass source= one of {', '.join(SOURCES[1:])} if you know it."
    )


def convert(state_dict: Mapping[str, Any], source: str = "auto") -> Conversion:
    """Rename a PVT checkpoint's encoder keys to this project's layout, reporting what is not the encoder."""
    if source not in SOURCES:
        raise ValueError(f"convert_state_dict: source={source!r} is not one of {', '.join(SOURCES)}.")
    sd, outside = split_encoder(unwrap_state_dict(state_dict))
    layout = LAYOUTS[detect_layout(sd) if source == "auto" else source]
    ignored = outside + [k for k in sd if any(re.fullmatch(p, k) for p in layout.ignored)]
    renamed: dict[str, Any] = {}
    closing: list[tuple[str, Any]] = []  # keys naming {last}: known once every stage is seen
    stages: set[int] = set()
    for key, value in sd.items():
        if key in ignored:
            continue
        ours = _rename(layout, key.removeprefix(layout.prefix) if layout.prefix else key)
        if "{last}" in ours:
            closing.append((ours, value))
            continue
        renamed[ours] = value
        if m := re.match(r"stages\.(\d+)\.", ours):
            stages.add(int(m.group(1)))
    for ours, value in closing:
        renamed[ours.replace("{last}", str(max(stages, default=0)))] = value
    return Conversion(_our_structure(renamed), layout, tuple(ignored))


def convert_state_dict(state_dict: Mapping[str, Any], source: str = "auto") -> dict[str, Any]:
    """Rename a PVT checkpoint's encoder keys to this project's layout; ``source`` is detected by default.

    A segmentation or detection checkpoint gives its encoder alone (see
    :func:`lucid_arch.weights.convert_segmentation.convert_segmentation_state_dict` for the whole model).
    """
    return convert(state_dict, source).state_dict


def _rename(layout: Layout, key: str) -> str:
    for pattern, template in layout.rows:
        m = re.fullmatch(pattern, key)
        if m is None:
            continue
        groups = dict(m.groupdict())
        for name in _ONE_BASED:
            if name in groups:
                groups[name[:-1]] = str(int(groups.pop(name)) - 1)
        if "part" in groups:
            if groups["part"] not in layout.parts:
                break  # a block sub-module this layout does not have
            groups["part"] = layout.parts[groups["part"]]
        return template.format(last="{last}", **groups)
    raise ValueError(
        f"convert_state_dict: unexpected key {key!r} in a {layout.name} checkpoint ({layout.source}); "
        "the file is another architecture, or a layout this project does not read."
    )


def _our_structure(sd: dict[str, Any]) -> dict[str, Any]:
    """Our module structure: q + one kv Linear, Linear MLPs, the first embedding at ``patch_embed``."""
    out: dict[str, Any] = {}
    for key, value in sd.items():
        if ".attn.k." in key:  # separate key and value Linears (Hugging Face): one kv, key rows first
            out[key.replace(".attn.k.", ".attn.kv.")] = _cat(value, sd[key.replace(".attn.k.", ".attn.v.")])
        elif ".attn.v." in key:
            continue
        elif ".attn.qkv." in key:  # packed q, k, v (nn.MultiheadAttention's in_proj)
            dim = value.shape[0] // 3
            out[key.replace(".attn.qkv.", ".attn.q.")] = value[:dim]
            out[key.replace(".attn.qkv.", ".attn.kv.")] = value[dim:]
        elif _MLP_WEIGHT.fullmatch(key) and len(value.shape) == 4:  # a 1x1 convolution standing for a Linear
            out[key] = value.reshape(value.shape[0], value.shape[1])
        else:
            out[key] = value
    return {("patch_embed." + k[len("stages.0.downsample."):] if k.startswith("stages.0.downsample.") else k): v
            for k, v in out.items()}


def _cat(key_part: Any, value_part: Any) -> Any:
    import torch

    return torch.cat([key_part, value_part], dim=0)

"""Whole segmentation checkpoints -> the state dict of this project's SegmentationModel.

A segmentation checkpoint is an encoder and, beside it, a neck and a decode head. The encoder
(``backbone.*`` in mmsegmentation's and NVlabs' files and ours, ``segformer.*`` in Hugging
Face's) is converted by :func:`lucid_arch.weights.convert.convert` with the encoder tables; the
``neck.*`` and ``decode_head.*`` keys by a head table (:mod:`lucid_arch.weights.head_layouts`).
The result is keyed as a SegmentationModel: ``backbone.<our encoder names>``, ``neck.*``,
``decode_head.*``. Anything else (mmseg's ``auxiliary_head``, a layout's unused tensors) is
reported as ignored. An encoder-only checkpoint (ImageNet weights) gives the ``backbone.*``
part alone. :func:`lucid_arch.weights.convert.convert_state_dict` stays the encoder's
conversion: from a segmentation checkpoint it gives the encoder in our PVT names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .convert import ENCODER_PREFIX, Conversion, first_match, rename_beside, split_beside, unwrap_state_dict
from .head_layouts import HEAD_LAYOUTS, HeadLayout

HEAD_SOURCES = ("auto", *HEAD_LAYOUTS)
HEAD_PREFIXES = ("neck.", "decode_head.")


class HeadLayoutError(ValueError):
    """The neck and decode head are none this project reads (the encoder may still be)."""


@dataclass(frozen=True)
class SegmentationConversion:
    """The encoder in our PVT names, the neck and decode head in ours, and what was ignored."""

    encoder: Conversion  # no backbone. prefix: the names of a PyramidVisionTransformer
    head: dict[str, Any]  # neck.* and decode_head.*; empty for an encoder-only checkpoint
    head_layout: Optional[HeadLayout]
    ignored: tuple[str, ...] = ()

    @property
    def state_dict(self) -> dict[str, Any]:
        return {**{ENCODER_PREFIX + k: v for k, v in self.encoder.state_dict.items()}, **self.head}


def detect_head_layout(state_dict: Mapping[str, Any]) -> Optional[str]:
    """The name of the first head layout whose signature a neck or decode-head key matches; None without such keys."""
    keys = [k for k in unwrap_state_dict(state_dict) if k.startswith(HEAD_PREFIXES)]
    if not keys:
        return None
    found = first_match(HEAD_LAYOUTS, keys)
    if found is not None:
        return found
    raise HeadLayoutError(
        f"convert_segmentation_state_dict: the neck and decode head ({', '.join(sorted(keys)[:4])}, ...) are none of "
        "the heads read here: " + "; ".join(f"{name} ({layout.source})" for name, layout in HEAD_LAYOUTS.items()
                                             if not layout.unsupported)
        + ". Load the encoder alone (convert_state_dict, or load_pretrained(..., strict=False))."
    )


def convert_segmentation(
    state_dict: Mapping[str, Any], source: str = "auto", head_source: str = "auto"
) -> SegmentationConversion:
    """Convert a segmentation checkpoint (or an encoder's) to a SegmentationModel's names.

    ``source`` is the encoder's layout (see :data:`lucid_arch.weights.convert.SOURCES`),
    ``head_source`` the neck and decode head's (:data:`HEAD_SOURCES`); both detected by default.
    Raises :class:`HeadLayoutError` for a head this project does not read.
    """
    if head_source not in HEAD_SOURCES:
        raise ValueError(
            f"convert_segmentation_state_dict: head_source={head_source!r} is not one of {', '.join(HEAD_SOURCES)}."
        )
    sd, encoder, head_keys = split_beside(state_dict, source, HEAD_PREFIXES)
    ignored = list(encoder.ignored)
    if not head_keys:
        return SegmentationConversion(encoder, {}, None, tuple(ignored))
    layout = HEAD_LAYOUTS[detect_head_layout({k: sd[k] for k in head_keys}) if head_source == "auto" else head_source]
    if layout.unsupported:
        raise HeadLayoutError(f"convert_segmentation_state_dict: {layout.unsupported}.")
    head, unused = rename_beside(layout, head_keys, sd, HeadLayoutError, "convert_segmentation_state_dict")
    return SegmentationConversion(encoder, head, layout, tuple(ignored + unused))


def convert_segmentation_state_dict(
    state_dict: Mapping[str, Any], source: str = "auto", head_source: str = "auto"
) -> dict[str, Any]:
    """A segmentation checkpoint of any supported layout, renamed to a SegmentationModel's state dict."""
    return convert_segmentation(state_dict, source, head_source).state_dict

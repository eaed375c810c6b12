"""Whole detection checkpoints -> the state dict of this project's DetectionModel.

A detection checkpoint is an encoder under ``backbone.`` (converted by
:func:`lucid_arch.weights.convert.convert` with the encoder tables: the official PVT names in
the PVT detection repository's checkpoints, mmdetection's ``layers.*`` in its own), and beside
it the FPN and the detector's heads, renamed by a table of
:mod:`lucid_arch.weights.detection_layouts`. mmdetection 2.x's box classifier has the
background last, torchvision's first: its rows are moved. The result is keyed as a
DetectionModel: ``backbone.<our encoder names>``, ``neck.*``, ``head.*`` (RetinaNet) or ``rpn.*``
and ``roi_heads.*`` (Mask R-CNN). An encoder-only checkpoint (ImageNet weights, the usual start)
gives the ``backbone.*`` part alone.

Loading adapts two differences (:func:`fit_detector_head`): a head of another class count keeps
the model's initialisation (with ``new_head``), and a model whose predictors have background
outputs (``model.roi.background_outputs=true``, torchvision's sizes) gets zeros there from a
checkpoint without them (mmdetection's), or drops them the other way.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch

from .convert import first_match, rename_beside, split_beside, unwrap_state_dict
from .convert_segmentation import SegmentationConversion
from .detection_layouts import DETECTOR_LAYOUTS, DETECTOR_PREFIXES

DETECTOR_SOURCES = ("auto", *DETECTOR_LAYOUTS)
# What depends on the class count: the outputs that keep their initialisation for another one.
CLASS_OUTPUTS = {
    "retinanet": ("head.classification_head.cls_logits.",),
    "mask_rcnn": ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits."),
}
BOX_DELTAS = "roi_heads.box_predictor.bbox_pred."
MASK_LOGITS = "roi_heads.mask_predictor.mask_fcn_logits."


class DetectorLayoutError(ValueError):
    """The neck and detector heads are none this project reads (the encoder may still be)."""


class DetectionConversion(SegmentationConversion):
    """The encoder in our PVT names, the FPN and detector heads in ours (``head``, its ``head_layout`` a
    :class:`~lucid_arch.weights.detection_layouts.DetectorLayout`), and what was ignored."""


def detect_detector_layout(state_dict: Mapping[str, Any]) -> Optional[str]:
    """The name of the first detector layout whose signature a head key matches; None without such keys."""
    keys = [k for k in unwrap_state_dict(state_dict) if k.startswith(DETECTOR_PREFIXES)]
    if not any(not k.startswith("neck.") for k in keys):
        return None
    found = first_match(DETECTOR_LAYOUTS, keys)
    if found is not None:
        return found
    raise DetectorLayoutError(
        f"convert_detection_state_dict: the detector heads ({', '.join(sorted(keys)[:4])}, ...) are none of the "
        "layouts read here: " + "; ".join(f"{name} ({layout.source})" for name, layout in DETECTOR_LAYOUTS.items())
        + ". Load the encoder alone (convert_state_dict, or load_pretrained(..., strict=False))."
    )


def convert_detection(state_dict: Mapping[str, Any], source: str = "auto", head_source: str = "auto") -> DetectionConversion:
    """Convert a detection checkpoint (or an encoder's) to a DetectionModel's names.

    ``source`` is the encoder's layout (:data:`lucid_arch.weights.convert.SOURCES`),
    ``head_source`` the neck and heads' (:data:`DETECTOR_SOURCES`); both detected by default.
    Raises :class:`DetectorLayoutError` for heads this project does not read.
    """
    if head_source not in DETECTOR_SOURCES:
        raise ValueError(f"convert_detection_state_dict: head_source={head_source!r} is not one of {', '.join(DETECTOR_SOURCES)}.")
    sd, encoder, head_keys = split_beside(state_dict, source, DETECTOR_PREFIXES)
    ignored = list(encoder.ignored)
    name = detect_detector_layout({k: sd[k] for k in head_keys}) if head_source == "auto" else head_source
    if name is None:  # an encoder, perhaps with an FPN: nothing of a detector to load
        return DetectionConversion(encoder, {}, None, tuple(ignored + head_keys))
    layout = DETECTOR_LAYOUTS[name]
    head, unused = rename_beside(layout, head_keys, sd, DetectorLayoutError, "convert_detection_state_dict")
    if layout.background_last:
        for param in ("weight", "bias"):
            key = f"roi_heads.box_predictor.cls_score.{param}"
            if key in head:
                head[key] = torch.cat([head[key][-1:], head[key][:-1]])
    return DetectionConversion(encoder, head, layout, tuple(ignored + unused))


def convert_detection_state_dict(state_dict: Mapping[str, Any], source: str = "auto", head_source: str = "auto") -> dict[str, Any]:
    """A detection checkpoint of any supported layout, renamed to a DetectionModel's state dict."""
    return convert_detection(state_dict, source, head_source).state_dict


def checkpoint_classes(head: Mapping[str, torch.Tensor]) -> Optional[int]:
    """The class count a converted detector head was trained for (background not counted); None without one."""
    cls, reg = head.get("head.classification_head.cls_logits.weight"), head.get("head.regression_head.bbox_reg.weight")
    if cls is not None and reg is not None and reg.shape[0] >= 4:
        return cls.shape[0] // (reg.shape[0] // 4)
    score = head.get("roi_heads.box_predictor.cls_score.weight")
    return score.shape[0] - 1 if score is not None else None


def fit_detector_head(head: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor], kind: str, classes: int) -> tuple[str, tuple[str, ...], list[str]]:
    """Adapt (in ``head``) what loading adapts: (why part of the model keeps its initialisation, or '';
    the key prefixes that do; notes on the background outputs made or dropped)."""
    if not head or not any(not k.startswith("neck.") for k in head):
        return (f"the checkpoint holds no {kind} heads (an encoder's{' and FPN' if head else ''}): the model's neck "
                "and detector heads keep their initialisation"), ("neck.", "head.", "rpn.", "roi_heads."), []
    theirs = checkpoint_classes(head)
    if theirs is not None and theirs != classes:
        prefixes = CLASS_OUTPUTS.get(kind, ())
        return (f"the checkpoint detects {theirs} classes, the model {classes}: {', '.join(p.rstrip('.') for p in prefixes)} "
                "keep their initialisation"), prefixes, []
    notes = []
    for prefix, rows in ((BOX_DELTAS, 4), (MASK_LOGITS, 1)):
        for param in ("weight", "bias"):
            key, mine = prefix + param, own.get(prefix + param)
            if key not in head or mine is None or head[key].shape[1:] != mine.shape[1:]:
                continue
            if mine.shape[0] == head[key].shape[0] + rows:
                head[key] = torch.cat([head[key].new_zeros((rows, *head[key].shape[1:])), head[key]])
                note = f"{prefix.rstrip('.')}: zero background outputs added (model.roi.background_outputs=true)"
            elif mine.shape[0] + rows == head[key].shape[0]:
                head[key] = head[key][rows:]
                note = f"{prefix.rstrip('.')}: the checkpoint's background outputs dropped (model.roi.background_outputs=false)"
            else:
                continue
            if note not in notes:
                notes.append(note)
    return "", (), notes

"""Initialise a model from a checkpoint: what ``model.pretrained=PATH`` does.

The file is read by :mod:`lucid_arch.weights.files` (no code from it ever runs), its layout is
detected and renamed by :mod:`lucid_arch.weights.convert` (a segmentation model's neck and
decode head by :mod:`lucid_arch.weights.convert_segmentation`), a Hugging Face directory's
``config.json`` is compared with the model (:mod:`lucid_arch.weights.hf_config`), and the
differences fine-tuning and dense prediction always meet are adapted
(:mod:`lucid_arch.weights.adapt`): the head, a backbone's missing classifier parts, v1
position tables of another grid, a decode head of another class count, an encoder-only
checkpoint for a segmentation model. A detector's FPN and heads are converted by
:mod:`lucid_arch.weights.convert_detection` (the official PVT detection repository's
mmdetection 2.x checkpoints, or ours). Anything else that does not fit means another
architecture: an error naming the offending keys with both shapes, and the shipped variant
the checkpoint matches, if any (:mod:`lucid_arch.weights.mismatch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..modeling.memory_check import weight_bytes
from ..modeling.segmentation import SegmentationModel
from .adapt import backbone_drops, decode_head_reason, fit_position_tables, head_reason, random_head_error
from .convert import ENCODER_PREFIX, Conversion, convert, detect_layout
from .convert_detection import DetectorLayoutError, convert_detection, fit_detector_head
from .convert_segmentation import HEAD_PREFIXES, HeadLayoutError, convert_segmentation
from .detection_layouts import DETECTOR_LAYOUTS, DETECTOR_PREFIXES, DetectorLayout
from .declared_size import model_budget
from .files import CheckpointError, hf_config_path, read_checkpoint, resolve_checkpoint
from .head_layouts import HeadLayout
from .hf_config import config_differences, matching_overrides
from .layouts import LAYOUTS
from .mismatch import mismatch_error

_SHOWN = 5  # offending keys named in an error


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_pretrained` did; ``str()`` is one line for a log."""

    path: str  # the weights file read
    layout: str  # the encoder's: see lucid_arch.weights.layouts.LAYOUTS (ours is timm's naming)
    loaded: int  # checkpoint tensors now in the model
    head_reinitialized: bool = False  # the classifier, or a segmentation model's neck/decode head (part), kept its init
    head_reason: str = ""  # why the model kept its own head
    resampled: tuple[str, ...] = ()  # "stages.0.pos_embed 56x56 -> 64x64"
    dropped: tuple[str, ...] = ()  # what a backbone does not have, one note per kind
    ignored: tuple[str, ...] = ()  # checkpoint keys no part of the model reads (a decode head, a neck, an auxiliary head)
    skipped: tuple[str, ...] = ()  # strict=False: keys that did not fit (model tensors keep their init)
    notes: tuple[str, ...] = ()  # what the layout's own code does differently (LayerNorm eps)
    head_layout: str = ""  # the neck and decode head's (head_layouts) or detector's (detection_layouts); "" when none was loaded

    def __str__(self) -> str:
        part = "detector" if self.head_layout in DETECTOR_LAYOUTS else "decode head"
        where = f"{self.layout} layout" + (f"; {part} {self.head_layout}" if self.head_layout else "")
        parts = [f"loaded {self.loaded} tensors from {self.path} ({where})"]
        if self.head_reinitialized:
            parts.append(f"head re-initialised: {self.head_reason}")
        if self.resampled:
            parts.append(f"position embeddings resized bilinearly: {', '.join(self.resampled)}")
        if self.dropped:
            parts.append(f"backbone: {'; '.join(self.dropped)}")
        if self.ignored:
            what = "no part of the model reads" if self.head_layout else "are not the encoder"
            parts.append(f"ignored {len(self.ignored)} tensors that {what} ({_groups(self.ignored)})")
        if self.skipped:
            parts.append(f"{len(self.skipped)} tensors did not fit and keep their initialisation (strict=False)")
        parts += self.notes
        return "; ".join(parts)


def load_pretrained(model: Any, path: Any, strict: bool = True,
                    new_head: bool = False, checkpoint: str = "last") -> LoadReport:
    """Load a checkpoint of any supported layout into ``model`` (see the module docstring).

    A segmentation model takes a whole segmentation checkpoint or an encoder's, a detector a whole
    detection checkpoint or an encoder's; a classifier or backbone takes the encoder of any. A classifier or decode head the checkpoint cannot fill
    (another class count, or none in the file) would predict at random: that is a
    :class:`CheckpointError` naming both class counts, unless ``new_head`` asks for a fresh head
    (to train it). ``strict=False`` loads what fits and leaves the rest as initialised (listed in
    the report's ``skipped``) instead of raising. ``checkpoint`` picks a training run's weights
    ('last' or 'best') when ``path`` is a run directory.
    """
    file = resolve_checkpoint(path, checkpoint)
    own = model.state_dict()
    if any(t.is_meta for t in own.values()):
        raise ValueError(
            "load_pretrained: the model is on the meta device (shapes only); build it on a real device first."
        )
    config = hf_config_path(file)
    if config is not None and (differences := config_differences(config, model.spec)):
        raise CheckpointError(
            f"pretrained weights {file.parent}: its {config.name} describes another model than this one "
            f"({model.spec.name}): {differences}. Build what the directory holds, e.g. "
            f"{matching_overrides(config, model.spec)}, or point model.pretrained at weights of this architecture."
        )
    raw = read_checkpoint(file, max_bytes=model_budget(weight_bytes(model)))  # refused before allocating when it cannot fit
    try:
        layout = detect_layout(raw)
    except ValueError:
        raise CheckpointError(
            f"pretrained weights {file}: not a PVT checkpoint: its keys ({', '.join(sorted(raw)[:_SHOWN])}, ...) match "
            f"none of the layouts read here ({', '.join(LAYOUTS)}; see lucid_arch/weights/layouts.py)."
        ) from None
    segmentation = isinstance(model, SegmentationModel)
    detection = getattr(model.spec, "detection", None) is not None
    encoder, head, head_layout, ignored, unread = _convert(file, raw, layout, segmentation, detection, strict)

    # The encoder: a classifier or backbone itself, or a segmentation model's or detector's backbone (every stage).
    dense = segmentation or detection
    target = model.backbone if dense else model
    prefix = ENCODER_PREFIX if dense else ""
    own_encoder = {k[len(prefix):]: v for k, v in own.items() if k.startswith(prefix)}
    sd = dict(encoder.state_dict)
    class_token = "cls_token" in sd or encoder.layout.class_token_row
    reason = head_reason(sd, own_encoder, target.spec.features_only)
    if reason:
        sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    dropped = backbone_drops(target, sd, own_encoder)
    resampled, rows_dropped = fit_position_tables(target, sd, own_encoder, class_token)
    dropped += rows_dropped
    fresh: tuple[str, ...] = ("head.",) if reason else ()
    checkpoint_head: dict = {}  # model keys that keep their initialisation, by design
    notes: tuple[str, ...] = ()
    if dense:
        if reason:  # an ImageNet classifier's head: nothing in a segmentation model or detector reads it
            dropped.insert(0, f"head dropped (the checkpoint's {encoder.state_dict['head.weight'].shape[0]}-class "
                              f"classifier; a {model.spec.task} model's encoder has none)")
        checkpoint_head = dict(head)
        if detection:
            spec = model.spec.detection
            reason, fresh, fitted = fit_detector_head(head, own, spec.kind, spec.num_classes)
            notes = tuple(fitted)
        else:
            reason, fresh = decode_head_reason(head, own, model.neck is not None)
        if unread:
            reason = (f"its neck and {'detector heads' if detection else 'decode head'} are not a layout read here "
                      "(strict=False): the model's keep their initialisation")
        head = {k: v for k, v in head.items() if not k.startswith(fresh)}
    full = {**{prefix + k: v for k, v in sd.items()}, **head}

    missing = [k for k in own if k not in full and not (fresh and k.startswith(fresh))]
    unexpected = [k for k in full if k not in own]
    reshaped = [k for k in full if k in own and full[k].shape != own[k].shape]
    if strict and (missing or unexpected or reshaped):
        raise mismatch_error(file, layout, model, full, own, missing, unexpected, reshaped, sd, head_layout)
    random_head = bool(reason) and (dense or "head.weight" in own_encoder)  # a head of the model's keeps its init
    if random_head and not new_head and strict:
        raise random_head_error(file, model, encoder.state_dict, checkpoint_head, segmentation)
    fits = {k: v for k, v in full.items() if k in own and v.shape == own[k].shape}
    # Every key once, strictly: the checkpoint's where it fits, the model's own (its fresh head) elsewhere.
    model.load_state_dict({k: fits.get(k, v) for k, v in own.items()}, strict=True)
    return LoadReport(
        path=str(file),
        layout=layout,
        loaded=len(fits),
        head_reinitialized=bool(reason),
        head_reason=reason,
        resampled=tuple(resampled),
        dropped=tuple(dropped),
        ignored=ignored,
        skipped=tuple(missing + unexpected + reshaped + unread),
        notes=LAYOUTS[layout].notes + (head_layout.notes if head_layout else ()) + notes,
        head_layout=head_layout.name if head_layout else "",
    )


def _convert(
    file: Any, raw: dict, layout: str, segmentation: bool, detection: bool, strict: bool
) -> tuple[Conversion, dict, Optional[HeadLayout | DetectorLayout], tuple[str, ...], list[str]]:
    """(encoder, neck + decode head or detector heads in our names, their layout, ignored keys, head keys
    not read (strict=False))."""
    try:
        if not (segmentation or detection):
            encoder = convert(raw, layout)
            return encoder, {}, None, encoder.ignored, []
        whole_model, unknown, prefixes = ((convert_detection, DetectorLayoutError, DETECTOR_PREFIXES) if detection
                                          else (convert_segmentation, HeadLayoutError, HEAD_PREFIXES))
        try:
            whole = whole_model(raw, layout)
            return whole.encoder, whole.head, whole.head_layout, whole.ignored, []
        except unknown:
            if strict:
                raise
            encoder = convert(raw, layout)
            unread = [k for k in encoder.ignored if k.startswith(prefixes)]
            return encoder, {}, None, tuple(k for k in encoder.ignored if k not in unread), unread
    except ValueError as err:
        raise CheckpointError(f"pretrained weights {file}: {_after_colon(err)}") from None


def _after_colon(err: Exception) -> str:
    return str(err).split(": ", 1)[-1]


def _groups(keys: tuple[str, ...]) -> str:
    """'decode_head: 16' -- ignored keys counted by their top-level module."""
    counts: dict[str, int] = {}
    for k in keys:
        counts[k.split(".", 1)[0]] = counts.get(k.split(".", 1)[0], 0) + 1
    return ", ".join(f"{name}: {n}" for name, n in counts.items())

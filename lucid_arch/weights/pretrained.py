"""Initialise a model from a checkpoint: what ``model.pretrained=PATH`` does.

The file is read by :mod:`lucid_arch.weights.files` (no code from it ever runs), its layout is
detected and renamed by :mod:`lucid_arch.weights.convert`, a Hugging Face directory's
``config.json`` is compared with the model (:mod:`lucid_arch.weights.hf_config`), and the
differences fine-tuning and dense prediction always meet are adapted
(:mod:`lucid_arch.weights.adapt`): the head, a backbone's missing classifier parts, v1
position tables of another grid. Anything else that does not fit means another architecture:
an error naming the offending keys with both shapes, and the shipped variant the checkpoint
matches, if any.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from ..modeling.model import PyramidVisionTransformer
from .adapt import POS_EMBED, backbone_drops, fit_position_tables, head_reason
from .convert import convert, detect_layout
from .files import CheckpointError, hf_config_path, read_checkpoint, resolve_checkpoint
from .hf_config import config_differences, matching_overrides
from .layouts import LAYOUTS

_BLOCK_NORM = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.norm1\.weight$")
_SHOWN = 5  # offending keys named in an error

@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_pretrained` did; ``str()`` is one line for a log."""

    path: str  # the weights file read
    layout: str  # see lucid_arch.weights.layouts.LAYOUTS (ours is timm's naming)
    loaded: int  # checkpoint tensors now in the model
    head_reinitialized: bool = False
    head_reason: str = ""  # why the model kept its own head
    resampled: tuple[str, ...] = ()  # "stages.0.pos_embed 56x56 -> 64x64"
    dropped: tuple[str, ...] = ()  # what a backbone does not have, one note per kind
    ignored: tuple[str, ...] = ()  # checkpoint keys that are not the encoder (a decode head, a neck)
    skipped: tuple[str, ...] = ()  # strict=False: keys that did not fit (model tensors keep their init)
    notes: tuple[str, ...] = ()  # what the layout's own code does differently (LayerNorm eps)

    def __str__(self) -> str:
        parts = [f"loaded {self.loaded} tensors from {self.path} ({self.layout} layout)"]
        if self.head_reinitialized:
            parts.append(f"head re-initialised: {self.head_reason}")
        if self.resampled:
            parts.append(f"position embeddings resized bilinearly: {', '.join(self.resampled)}")
        if self.dropped:
            parts.append(f"backbone: {'; '.join(self.dropped)}")
        if self.ignored:
            parts.append(f"ignored {len(self.ignored)} tensors that are not the encoder ({_groups(self.ignored)})")
        if self.skipped:
            parts.append(f"{len(self.skipped)} tensors did not fit and keep their initialisation (strict=False)")
        parts += self.notes
        return "; ".join(parts)


def load_pretrained(model: PyramidVisionTransformer, path: Any, strict: bool = True) -> LoadReport:
    """Load a checkpoint of any supported layout into ``model`` (see the module docstring).

    ``strict=False`` loads what fits and leaves the rest as initialised (listed in the
    report's ``skipped``) instead of raising :class:`CheckpointError`.
    """
    file = resolve_checkpoint(path)
    own = model.state_dict()
    if any(t.is_meta for t in own.values()):
        raise ValueError(
            "load_pretrained: the model is on the meta device (shapes only); build it on a real device first."
        )
    config = hf_config_path(file)
    if config is not None and (differences := config_differences(config, model.spec)):
        raise CheckpointError(
            f"pretrained weights {file.parent}: its {config.name} describes another model than this one "
            f"({model.spec.name}): {differences}. Build what the directory holds, e.g. {matching_overrides(config)}, "
            "or point model.pretrained at weights of this architecture."
        )
    raw = read_checkpoint(file)
    try:
        layout = detect_layout(raw)
    except ValueError:
        raise CheckpointError(
            f"pretrained weights {file}: not a PVT checkpoint: its keys ({', '.join(sorted(raw)[:_SHOWN])}, ...) match "
            f"none of the layouts read here ({', '.join(LAYOUTS)}; see lucid_arch/weights/layouts.py)."
        ) from None
    try:
        conversion = convert(raw, layout)
    except ValueError as err:
        raise CheckpointError(f"pretrained weights {file}: {_after_colon(err)}") from None
    sd = dict(conversion.state_dict)
    class_token = "cls_token" in sd
    reason = head_reason(sd, own, model.spec.features_only)
    if reason:
        sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    dropped = backbone_drops(model, sd, own)
    resampled, rows_dropped = fit_position_tables(model, sd, own, class_token)
    dropped += rows_dropped

    missing = [k for k in own if k not in sd and not (reason and k.startswith("head."))]
    unexpected = [k for k in sd if k not in own]
    reshaped = [k for k in sd if k in own and sd[k].shape != own[k].shape]
    if strict and (missing or unexpected or reshaped):
        raise _mismatch_error(file, layout, model, sd, own, missing, unexpected, reshaped)
    fits = {k: v for k, v in sd.items() if k in own and v.shape == own[k].shape}
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
        ignored=conversion.ignored,
        skipped=tuple(missing + unexpected + reshaped),
        notes=LAYOUTS[layout].notes,
    )


def _after_colon(err: Exception) -> str:
    return str(err).split(": ", 1)[-1]


def _groups(keys: tuple[str, ...]) -> str:
    """'decode_head: 16' -- ignored keys counted by their top-level module."""
    counts: dict[str, int] = {}
    for k in keys:
        counts[k.split(".", 1)[0]] = counts.get(k.split(".", 1)[0], 0) + 1
    return ", ".join(f"{name}: {n}" for name, n in counts.items())


# --- the error for another architecture -------------------------------------------------------


def _shape(t: torch.Tensor) -> str:
    return str(list(t.shape))


def _mismatch_error(file, layout, model, sd, own, missing, unexpected, reshaped) -> CheckpointError:
    rows = [f"{k} is {_shape(sd[k])} in the checkpoint, {_shape(own[k])} in the model" for k in reshaped]
    rows += [f"{k} {_shape(own[k])} is not in the checkpoint" for k in missing]
    rows += [f"{k} {_shape(sd[k])} is not in the model" for k in unexpected]
    if "cls_token" in own and "cls_token" not in sd:
        fix = (
            "it is a backbone checkpoint (no class token, final norm or head): build the model as one, "
            "model.features_only=true"
        )
    elif matches := _matching_variants(sd):
        fix = (
            f"it matches {' and '.join(matches)}: build that, e.g. model={matches[0]} (num_classes and img_size may "
            "differ: the head is re-initialised and position embeddings are resized)"
        )
    else:
        fix = (
            "no shipped variant matches it: set the overrides it was trained with "
            "(model.embed_dims, model.depths, ...)"
        )
    return CheckpointError(
        f"pretrained weights {file} ({layout} layout) do not fit this model ({model.spec.name}): "
        f"{len(reshaped)} tensors differ in shape, {len(missing)} are missing from the checkpoint and "
        f"{len(unexpected)} are not in the model; first: {'; '.join(rows[:_SHOWN])}. The checkpoint is another "
        f"architecture{_describe(sd)}; {fix}, or pass load_pretrained(..., strict=False) to load only what fits."
    )


def _describe(sd: Mapping[str, torch.Tensor]) -> str:
    """' (embed_dims [..], depths [..])', read from the checkpoint's block norms."""
    depths: dict[int, int] = {}
    dims: dict[int, int] = {}
    for k, v in sd.items():
        if m := _BLOCK_NORM.match(k):
            i, j = int(m.group(1)), int(m.group(2))
            depths[i] = max(depths.get(i, 0), j + 1)
            dims[i] = v.shape[0]
    if not depths or sorted(depths) != list(range(len(depths))):
        return ""
    return f" (embed_dims {[dims[i] for i in sorted(dims)]}, depths {[depths[i] for i in sorted(depths)]})"


def _signature(sd: Mapping[str, Any]) -> dict[str, tuple]:
    """Key -> shape, ignoring what loading adapts: the head, and position-table lengths."""
    return {
        k: (tuple(v.shape[::2]) if POS_EMBED.match(k) else tuple(v.shape))
        for k, v in sd.items()
        if not k.startswith("head.")
    }


def _matching_variants(sd: Mapping[str, torch.Tensor]) -> list[str]:
    """Shipped variants whose state dict the checkpoint fits (built on the meta device; error path only)."""
    from ..config.checks import validate_model
    from ..config.compose import list_models, load_config
    from ..modeling.assemble import model_from_spec
    from ..modeling.spec import model_spec

    want = _signature(sd)
    found = []
    for name in list_models():
        with torch.device("meta"):
            shapes = _signature(model_from_spec(model_spec(validate_model(load_config(name)))).state_dict())
        if shapes == want:
            found.append(name)
    return found

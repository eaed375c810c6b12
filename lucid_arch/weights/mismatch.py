"""The error for a checkpoint of another architecture: one paragraph naming keys, shapes and a fix.

The fix is what the checkpoint is, when that can be told: a backbone's (no class token), a
shipped variant's (built on the meta device to compare; error path only), a segmentation model
with another neck or decode head, or else the overrides to set.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

import torch

from .adapt import POS_EMBED
from .files import CheckpointError
from .head_layouts import HeadLayout

_BLOCK_NORM = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.norm1\.weight$")
_POS_EMBED = re.compile(r"^(?:backbone\.)?" + POS_EMBED.pattern.lstrip("^"))
_ADAPTED = ("head.", "decode_head.conv_seg.")  # what loading adapts: classifiers of another class count
_SHOWN = 5  # offending keys named in an error


def _shape(t: torch.Tensor) -> str:
    return str(list(t.shape))


def mismatch_error(
    file: Any,
    layout: str,
    model: Any,
    sd: Mapping[str, torch.Tensor],
    own: Mapping[str, torch.Tensor],
    missing: list[str],
    unexpected: list[str],
    reshaped: list[str],
    encoder: Mapping[str, torch.Tensor],
    head_layout: Optional[HeadLayout] = None,
) -> CheckpointError:
    """``sd`` in the model's names; ``encoder`` its encoder part in a PyramidVisionTransformer's names."""
    rows = [f"{k} is {_shape(sd[k])} in the checkpoint, {_shape(own[k])} in the model" for k in reshaped]
    rows += [f"{k} {_shape(own[k])} is not in the checkpoint" for k in missing]
    rows += [f"{k} {_shape(sd[k])} is not in the model" for k in unexpected]
    spec = model.spec
    from ..runs import find_run

    if find_run(file) is not None:
        fix = ("it is a training run's: without model=NAME, model.pretrained=RUN rebuilds the run's own model "
               "(in Python, create_model(RUN))")
    elif "cls_token" in own and "cls_token" not in sd:
        fix = (
            "it is a backbone checkpoint (no class token, final norm or head): build the model as one, "
            "model.features_only=true"
        )
    elif (kind := getattr(head_layout, "detector", None)) and spec.detection is not None and kind != spec.detection.kind:
        base = spec.name.removeprefix(f"{spec.detection.kind}_")
        fix = (f"its detector is {kind} ({head_layout.name} layout), the model's {spec.detection.kind}: build that, "
               f"e.g. model={kind}_{base}" if base != spec.name else f"its detector is {kind} ({head_layout.name} "
               f"layout), the model's {spec.detection.kind}: build that, model.detector.type={kind} with its settings")
    elif head_layout is not None and spec.segmentation and _kinds(head_layout) != _model_kinds(spec):
        neck, head = _kinds(head_layout)
        fix = (
            f"its neck and decode head are {neck} and {head} ({head_layout.name} layout), the model's "
            f"{' and '.join(_model_kinds(spec))}: build those, model.neck.type={neck} model.decode_head.type={head}"
        )
    elif matches := _matching_variants(sd, encoder, spec.task):
        fix = (
            f"it matches {' and '.join(matches)}: build that, e.g. model={matches[0]} (img_size may differ: position "
            "embeddings are resized; another num_classes needs model.new_head=true)"
        )
    else:
        fix = (
            "no shipped variant matches it: set the overrides it was trained with "
            "(model.embed_dims, model.depths, ...)"
        )
    return CheckpointError(
        f"pretrained weights {file} ({layout} layout) do not fit this model ({spec.name}): "
        f"{len(reshaped)} tensors differ in shape, {len(missing)} are missing from the checkpoint and "
        f"{len(unexpected)} are not in the model; first: {'; '.join(rows[:_SHOWN])}. The checkpoint is another "
        f"architecture{_describe(encoder)}; {fix}, or pass load_pretrained(..., strict=False) to load only what fits."
    )


def _kinds(layout: HeadLayout) -> tuple[str, str]:
    return layout.neck, layout.decode_head


def _model_kinds(spec: Any) -> tuple[str, str]:
    return (spec.neck.kind if spec.neck is not None else "none"), spec.decode_head.kind


def _stages(sd: Mapping[str, torch.Tensor]) -> Optional[tuple[list[int], list[int]]]:
    """(embed_dims, depths) of an encoder's stages, read from its block norms; None when they do not tell."""
    depths: dict[int, int] = {}
    dims: dict[int, int] = {}
    for k, v in sd.items():
        if m := _BLOCK_NORM.match(k):
            i, j = int(m.group(1)), int(m.group(2))
            depths[i] = max(depths.get(i, 0), j + 1)
            dims[i] = v.shape[0]
    if not depths or sorted(depths) != list(range(len(depths))):
        return None
    return [dims[i] for i in sorted(dims)], [depths[i] for i in sorted(depths)]


def _describe(sd: Mapping[str, torch.Tensor]) -> str:
    """' (embed_dims [..], depths [..])', read from the checkpoint's block norms."""
    stages = _stages(sd)
    return f" (embed_dims {stages[0]}, depths {stages[1]})" if stages else ""


def _signature(sd: Mapping[str, Any]) -> dict[str, tuple]:
    """Key -> shape, ignoring what loading adapts: classifiers, and position-table lengths."""
    return {
        k: (tuple(v.shape[::2]) if _POS_EMBED.match(k) else tuple(v.shape))
        for k, v in sd.items()
        if not k.startswith(_ADAPTED)
    }


def _matching_variants(sd: Mapping[str, torch.Tensor], encoder: Mapping[str, torch.Tensor], task: str) -> list[str]:
    """Shipped variants whose state dict the checkpoint fits (built on the meta device; error path only).

    An encoder checkpoint for a segmentation model or detector (``task``: the model's) is compared
    with the encoders of the variants of that task. Variants whose widths and depths already differ
    are not built, nor detectors unless the checkpoint or the model is one (and torchvision loads).
    """
    import importlib.util

    from ..config.checks import validate_model
    from ..config.compose import list_models, load_config
    from ..modeling.assemble import model_from_spec
    from ..modeling.spec import model_spec

    want = _signature(sd)
    heads = ("neck.", "decode_head.", "head.", "rpn.", "roi_heads.")
    encoder_only = task != "classification" and not any(k.startswith(heads) for k in want)
    detector = any(k.startswith(("rpn.", "roi_heads.", "head.classification_head.")) for k in want)
    detectors = (detector or (encoder_only and task == "detection")) and importlib.util.find_spec("torchvision") is not None
    stages = _stages(encoder)
    found = []
    for name in list_models():
        cfg = validate_model(load_config(name))
        if stages and (list(cfg.embed_dims[: len(stages[0])]), list(cfg.depths[: len(stages[1])])) != stages:
            continue
        if (cfg.detector.type != "none") != detectors:  # detectors only for a detector's checkpoint or model
            continue
        with torch.device("meta"):
            shapes = _signature(model_from_spec(model_spec(cfg)).state_dict())
        if encoder_only:
            shapes = {k: v for k, v in shapes.items() if k.startswith("backbone.")}
        if shapes == want:
            found.append(name)
    return found

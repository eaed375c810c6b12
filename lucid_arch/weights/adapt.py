"""The differences between a checkpoint and a model that loading adapts, each with a note.

- the head: another class count, or a model without one (``num_classes=0``, a backbone), keeps
  the model's own initialisation;
- a backbone (``features_only``) drops what only a classifier uses, as the official detection
  code does when it loads a classification checkpoint: the class token, its row of the last
  position table, PVT v1's final LayerNorm, the head, and stages after the last one built;
- v1 position tables of another grid are resized bilinearly (``align_corners=False``), the
  operation the official model applies on every forward at another input size, so a model
  built at that size computes what the official one computes there;
- a segmentation model's decode-head classifier (``decode_head.conv_seg``) of another class
  count keeps its initialisation, and an encoder-only checkpoint (ImageNet weights, the usual
  start) leaves the whole neck and decode head as initialised, as mmsegmentation's
  ``pretrained=`` does.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from ..modeling.layers.attention import tokens_to_map
from ..modeling.model import PyramidVisionTransformer

POS_EMBED = re.compile(r"^stages\.(\d+)\.pos_embed$")
_STAGE_KEY = re.compile(r"^stages\.(\d+)\.")


def resample_position_embedding(
    table: torch.Tensor, num_prefix_tokens: int, old_grid: tuple[int, int], new_grid: tuple[int, int]
) -> torch.Tensor:
    """(1, P + h*w, C) -> (1, P + H*W, C): patch rows resized bilinearly (align_corners=False), the P prefix rows kept.

    The same interpolation the official PVT applies at run time, computed in float32.
    """
    prefix, grid = table[:, :num_prefix_tokens], table[:, num_prefix_tokens:]
    grid = F.interpolate(tokens_to_map(grid.float(), *old_grid), size=new_grid, mode="bilinear", align_corners=False)
    return torch.cat([prefix, grid.flatten(2).transpose(1, 2).to(table.dtype)], dim=1)


def head_reason(sd: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], backbone: bool) -> str:
    """Why the checkpoint's classifier is not loaded ('' when it is)."""
    theirs, mine = sd.get("head.weight"), own.get("head.weight")
    if theirs is None and mine is None:
        return ""
    if mine is None:
        what = "a features_only backbone has no head" if backbone else "the model has no head (num_classes=0)"
        return f"{what}; the checkpoint's {theirs.shape[0]}-class head is dropped"
    if theirs is None:
        return f"the checkpoint has no classifier; the model's {mine.shape[0]}-class head keeps its initialisation"
    if theirs.shape[1:] == mine.shape[1:] and theirs.shape[0] != mine.shape[0]:
        return f"the checkpoint classifies {theirs.shape[0]} classes, the model {mine.shape[0]}"
    return ""


CONV_SEG = "decode_head.conv_seg."


def decode_head_reason(
    head: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor], has_neck: bool
) -> tuple[str, tuple[str, ...]]:
    """Why a segmentation model keeps (part of) its neck and decode head ('' when it does not),
    and the key prefixes that keep their initialisation. ``head``: the checkpoint's neck and decode head, our names."""
    if not head:
        what = "neck and decode head keep their" if has_neck else "decode head keeps its"
        return f"the checkpoint holds an encoder only: the model's {what} initialisation", ("neck.", "decode_head.")
    theirs, mine = head.get(CONV_SEG + "weight"), own.get(CONV_SEG + "weight")
    if theirs is not None and mine is not None and theirs.shape[1:] == mine.shape[1:] and theirs.shape[0] != mine.shape[0]:
        return (
            f"the checkpoint segments {theirs.shape[0]} classes, the model {mine.shape[0]}: "
            "decode_head.conv_seg keeps its initialisation",
            (CONV_SEG,),
        )
    return "", ()


def backbone_drops(model: PyramidVisionTransformer, sd: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> list[str]:
    """Remove (from ``sd``) what a backbone does not have; one note per kind. Nothing for a classifier."""
    if not model.spec.features_only:
        return []
    built = len(model.stages)
    notes = []
    unbuilt = {k: int(m.group(1)) for k in sd if (m := _STAGE_KEY.match(k)) and int(m.group(1)) >= built}
    later = sorted(set(unbuilt.values()))
    if later:
        for k in unbuilt:
            del sd[k]
        notes.append(f"stages {', '.join(map(str, later))} not built (out_indices={list(model.spec.out_indices)}): their tensors are ignored")
    if "cls_token" in sd and "cls_token" not in own:
        del sd["cls_token"]
        notes.append("cls_token dropped (a backbone has no class token)")
    last = built - 1
    final_norm = [k for k in sd if k.startswith(f"stages.{last}.norm.") and k not in own]
    if final_norm:
        for k in final_norm:
            del sd[k]
        notes.append(f"stages.{last}.norm dropped (the final LayerNorm only the classifier reads)")
    return notes


def fit_position_tables(
    model: PyramidVisionTransformer, sd: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor], class_token: bool
) -> tuple[list[str], list[str]]:
    """Fit (in ``sd``) every v1 position table to the model's grid: (resized tables, dropped rows) notes.

    ``class_token``: whether the checkpoint's last table starts with a class-token row (it had
    a ``cls_token``). A row the model does not have is dropped; a grid of another size is
    resized. A table that cannot fit is left for the mismatch error.
    """
    resized, dropped = [], []
    tables = {int(m.group(1)): k for k in sd if (m := POS_EMBED.match(k))}
    last = max(tables, default=-1)
    for i, key in sorted(tables.items()):
        if key not in own or sd[key].shape == own[key].shape or sd[key].ndim != 3:
            continue
        stage = model.stages[i]
        table, theirs_prefix, mine_prefix = sd[key], int(class_token and i == last), stage.num_prefix_tokens
        if table.shape[2] != own[key].shape[2] or theirs_prefix < mine_prefix:
            continue  # another width, or a class-token row the checkpoint cannot supply
        if table.shape[1] - theirs_prefix < 1:
            continue
        if theirs_prefix > mine_prefix:
            table = table[:, theirs_prefix - mine_prefix :]
            dropped.append(f"{key}: its class-token row dropped")
        old_grid = guess_grid(table.shape[1] - mine_prefix, stage.pos_embed_grid)
        if old_grid != tuple(stage.pos_embed_grid):
            table = resample_position_embedding(table, mine_prefix, old_grid, stage.pos_embed_grid)
            resized.append(f"{key} {_hw(old_grid)} -> {_hw(stage.pos_embed_grid)}")
        sd[key] = table
    return resized, dropped


def guess_grid(rows: int, like: tuple[int, int]) -> tuple[int, int]:
    """The (h, w) with h * w = rows whose aspect ratio is nearest ``like``'s: a square for square checkpoints."""
    target = math.log(like[0] / like[1])
    pairs = [(h, rows // h) for h in range(1, math.isqrt(rows) + 1) if rows % h == 0]
    pairs += [(w, h) for h, w in pairs]
    return min(pairs, key=lambda hw: (abs(math.log(hw[0] / hw[1]) - target), -hw[0])) if pairs else (rows, 1)


def _hw(grid: tuple[int, int]) -> str:
    return f"{grid[0]}x{grid[1]}"


def random_head_error(file: Any, model: Any, encoder_sd: Mapping[str, torch.Tensor], head: Mapping[str, torch.Tensor],
                      segmentation: bool) -> ValueError:
    """The error for a checkpoint that would leave the model's classifier or decode head at its random
    initialisation: both class counts, the setting that builds the checkpoint's model, and the key for a fresh head."""
    from ..runs import find_run
    from .files import CheckpointError

    detection = getattr(model.spec, "detection", None)
    mine = model.spec.decode_head.num_classes if segmentation else detection.num_classes if detection else model.spec.num_classes
    if detection is not None:
        from .convert_detection import checkpoint_classes

        count = checkpoint_classes(head)
        part = "detector heads" if count is None else "class outputs"
        theirs = (f"detects {count} classes" if count is not None
                  else "holds no detector heads (an encoder's)" if not head else "holds an encoder and FPN only")
    elif segmentation:
        theirs_w = head.get(CONV_SEG + "weight")
        part = "decode head" if theirs_w is not None else "neck and decode head" if model.neck is not None else "decode head"
        theirs = ("holds an encoder only (no decode head)" if theirs_w is None and not head
                  else f"segments {theirs_w.shape[0]} classes" if theirs_w is not None else "has no decode-head classifier")
        count = theirs_w.shape[0] if theirs_w is not None else None
    else:
        theirs_w = encoder_sd.get("head.weight")
        part = "classifier head"
        theirs = f"classifies {theirs_w.shape[0]} classes" if theirs_w is not None else "has no classifier (an encoder or backbone's)"
        count = theirs_w.shape[0] if theirs_w is not None else None
    builds = [f"model.num_classes={count}"] if count is not None else []
    if find_run(file) is not None:
        builds.insert(0, "it is a training run: without model=NAME, model.pretrained=RUN rebuilds the run's own model; "
                         "in Python, create_model(RUN)")
    fix = f"Build the model it holds ({'; or '.join(builds)}), or ask" if builds else "Ask"
    return CheckpointError(
        f"pretrained weights {file}: the checkpoint {theirs}, and the model ({model.spec.name}) has {mine}: loading it would leave "
        f"the model's {part} at its random initialisation, and its predictions meaningless. {fix} for a fresh head to "
        f"train with model.new_head=true (Python: new_head=True, or reset_head=True); task=train does this by itself."
    )

"""Initialise a model from a checkpoint: what ``model.pretrained=PATH`` does.

What is read:
- a ``.safetensors`` file (ours: a training run's ``model.safetensors``; timm's hub files);
- a torch ``.pth`` / ``.pt`` / ``.bin`` / ``.ckpt`` file, loaded with ``weights_only=True``: a
  pickle that needs code to load is refused, never run;
- a training run directory: its ``model.safetensors`` (the final weights), else the newest
  ``checkpoints/step_<global step>/model.safetensors``.
Key layouts are detected and renamed by :func:`lucid_arch.convert.convert_state_dict`: the
official whai362/PVT v1 and v2 code's, timm's ``pvt_v2``, and ours (timm's names), with
trainer wrappers (``{"model": ...}``, ``module.``) removed.

Two differences are adapted, because fine-tuning meets them every time:
- a classifier of another class count, or a model without one (``num_classes=0``): the
  checkpoint's head is dropped and the model keeps its freshly initialised head;
- v1 position embeddings of another grid (the model built at another ``img_size``): the patch
  rows are resampled bicubically; class-token rows are kept.
Anything else that does not fit means another architecture: an error naming the offending
keys with both shapes, and the shipped variant the checkpoint matches, if any.
"""

from __future__ import annotations

import math
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

import torch
import torch.nn.functional as F

from .convert import convert_state_dict, detect_layout, unwrap_state_dict
from .layers.attention import tokens_to_map
from .model import PyramidVisionTransformer

SAFETENSORS_SUFFIX = ".safetensors"
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
RUN_WEIGHTS = "model.safetensors"  # what a training run writes, at its root and in each step directory
_STEP_DIR = re.compile(r"^step_(\d+)$")
_POS_EMBED = re.compile(r"^stages\.(\d+)\.pos_embed$")
_BLOCK_NORM = re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.norm1\.weight$")
_SHOWN = 5  # offending keys named in an error
_ACCEPTS = (
    "a .safetensors or .pth/.pt/.bin/.ckpt file, or a training run directory holding "
    f"{RUN_WEIGHTS} or checkpoints/step_*/{RUN_WEIGHTS}"
)

PathArg = Union[str, "os.PathLike[str]"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read safely, or that does not fit the model."""


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_pretrained` did; ``str()`` is one line for a log."""

    path: str  # the weights file read
    layout: str  # official_v1, official_v2 or timm (ours is timm's naming)
    loaded: int  # checkpoint tensors now in the model
    head_reinitialized: bool = False
    head_reason: str = ""  # why the model kept its own head
    resampled: tuple[str, ...] = ()  # "stages.0.pos_embed 56x56 -> 16x16"
    skipped: tuple[str, ...] = ()  # strict=False: keys that did not fit (model tensors keep their init)

    def __str__(self) -> str:
        parts = [f"loaded {self.loaded} tensors from {self.path} ({self.layout} layout)"]
        if self.head_reinitialized:
            parts.append(f"head re-initialised: {self.head_reason}")
        if self.resampled:
            parts.append(f"position embeddings resampled: {', '.join(self.resampled)}")
        if self.skipped:
            parts.append(f"{len(self.skipped)} tensors did not fit and keep their initialisation (strict=False)")
        return "; ".join(parts)


# --- reading ---------------------------------------------------------------------------------


def resolve_checkpoint(path: PathArg) -> Path:
    """The weights file ``path`` names: the file itself, or the one a training run directory holds."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"pretrained weights {p}: no such file or directory; check model.pretrained, which takes {_ACCEPTS}."
        )
    if not p.is_dir():
        return p
    if (p / RUN_WEIGHTS).is_file():
        return p / RUN_WEIGHTS
    steps = [
        (int(m.group(1)), d / RUN_WEIGHTS)
        for d in (p / "checkpoints").glob("step_*")
        if (m := _STEP_DIR.match(d.name)) and (d / RUN_WEIGHTS).is_file()
    ]
    if steps:
        return max(steps)[1]
    raise FileNotFoundError(
        f"pretrained weights {p}: the directory holds no weights (neither {RUN_WEIGHTS} nor "
        f"checkpoints/step_*/{RUN_WEIGHTS}); point model.pretrained at the weights file itself or at a training "
        "run directory."
    )


def read_checkpoint(path: PathArg) -> dict[str, torch.Tensor]:
    """The state dict in a checkpoint file or run directory, on the CPU, trainer wrappers removed.

    Keys keep the file's layout (see :func:`lucid_arch.convert.convert_state_dict`). No code
    from the file is ever run: torch files are read with ``weights_only=True``.
    """
    file = resolve_checkpoint(path)
    suffix = file.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        raw = _read_safetensors(file)
    elif suffix in TORCH_SUFFIXES:
        raw = _read_torch(file)
    else:
        raise CheckpointError(
            f"pretrained weights {file}: unknown extension {file.suffix or '(none)'!r}; expected .safetensors, "
            f"or {'/'.join(TORCH_SUFFIXES)} for a torch.save file. Rename the file to the extension of its format."
        )
    return _state_dict(raw, file)


def _read_safetensors(file: Path) -> Any:
    from safetensors.torch import load_file

    try:
        return load_file(str(file), device="cpu")
    except OSError:
        raise
    except Exception as err:  # safetensors' own SafetensorError: bad header, truncated data
        raise CheckpointError(
            f"pretrained weights {file}: cannot be read as safetensors ({err}); the file is truncated or corrupt, "
            "or not safetensors at all. Copy or download it again."
        ) from err


def _read_torch(file: Path) -> Any:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        needs = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if needs:
            raise CheckpointError(
                f"pretrained weights {file}: refused to load: the pickle needs code to rebuild {needs.group(1)}, and "
                "pretrained weights are read with torch.load(weights_only=True), which never runs code from a file. "
                "If you trust the file, convert it once: obj = torch.load(PATH, weights_only=False), take its state "
                "dict (obj.state_dict() for a module, or the dict of tensors inside), save it with "
                "safetensors.torch.save_file(state_dict, 'weights.safetensors') and point model.pretrained there."
            ) from None
        raise _unreadable(file, err) from None
    except OSError:
        raise
    except Exception as err:  # RuntimeError from the zip reader, EOFError for an empty file
        raise _unreadable(file, err) from err


def _unreadable(file: Path, err: Exception) -> CheckpointError:
    detail = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(err))
    first_sentence = re.split(r"(?<=\.)\s", str(err).strip(), maxsplit=1)[0].rstrip(".")
    reason = detail.group(1) if detail else (first_sentence or type(err).__name__)
    return CheckpointError(
        f"pretrained weights {file}: cannot be read as a torch checkpoint ({reason}); the file is truncated or "
        "corrupt, or not a torch.save file. Copy or download it again (a safetensors file needs the .safetensors "
        "extension)."
    )


def _state_dict(raw: Any, file: Path) -> dict[str, torch.Tensor]:
    if not isinstance(raw, Mapping) or not all(isinstance(k, str) for k in raw):
        raise CheckpointError(
            f"pretrained weights {file}: holds a {type(raw).__name__}, not a state dict (parameter names mapped to "
            "tensors); save model.state_dict() instead."
        )
    sd = unwrap_state_dict(raw)
    others = [str(k) for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if others or not sd:
        what = f"its entries {', '.join(others[:_SHOWN])} are not tensors" if others else "it is empty"
        raise CheckpointError(
            f"pretrained weights {file}: not a state dict ({what}); expected parameter names mapped to tensors, "
            'optionally inside {"model": ...} or {"state_dict": ...}.'
        )
    return sd


# --- adapting and loading ---------------------------------------------------------------------


def resample_position_embedding(
    table: torch.Tensor, num_prefix_tokens: int, old_grid: tuple[int, int], new_grid: tuple[int, int]
) -> torch.Tensor:
    """(1, P + h*w, C) -> (1, P + H*W, C): patch rows resampled bicubically, the P prefix rows kept.

    Shrinking is antialiased, so a 56x56 table going to 16x16 averages rather than skips rows.
    """
    prefix, grid = table[:, :num_prefix_tokens], table[:, num_prefix_tokens:]
    shrink = new_grid[0] < old_grid[0] or new_grid[1] < old_grid[1]
    grid = F.interpolate(
        tokens_to_map(grid.float(), *old_grid), size=new_grid, mode="bicubic", align_corners=False, antialias=shrink
    )
    return torch.cat([prefix, grid.flatten(2).transpose(1, 2).to(table.dtype)], dim=1)


def _head_reason(sd: Mapping[str, torch.Tensor], own: Mapping[str, torch.Tensor]) -> str:
    """Why the checkpoint's classifier is not loaded ('' when it is)."""
    theirs, mine = sd.get("head.weight"), own.get("head.weight")
    if theirs is None and mine is None:
        return ""
    if mine is None:
        return f"the model has no head (num_classes=0); the checkpoint's {theirs.shape[0]}-class head is dropped"
    if theirs is None:
        return f"the checkpoint has no classifier; the model's {mine.shape[0]}-class head keeps its initialisation"
    if theirs.shape[1:] == mine.shape[1:] and theirs.shape[0] != mine.shape[0]:
        return f"the checkpoint classifies {theirs.shape[0]} classes, the model {mine.shape[0]}"
    return ""


def _resampled_pos_embeds(
    model: PyramidVisionTransformer, sd: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor]
) -> list[str]:
    """Resample (in ``sd``) every square v1 position table whose grid differs from the model's."""
    done = []
    for key in list(sd):
        m = _POS_EMBED.match(key)
        if not m or key not in own or sd[key].shape == own[key].shape:
            continue
        stage = model.stages[int(m.group(1))]
        table, prefix = sd[key], stage.num_prefix_tokens
        side = math.isqrt(max(table.shape[1] - prefix, 0)) if table.ndim == 3 else 0
        if side == 0 or side * side != table.shape[1] - prefix or table.shape[::2] != own[key].shape[::2]:
            continue  # not a square grid of this width: left for the mismatch error
        sd[key] = resample_position_embedding(table, prefix, (side, side), stage.pos_embed_grid)
        done.append(f"{key} {side}x{side} -> {'x'.join(map(str, stage.pos_embed_grid))}")
    return done


def load_pretrained(model: PyramidVisionTransformer, path: PathArg, strict: bool = True) -> LoadReport:
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
    sd = read_checkpoint(file)
    try:
        layout = detect_layout(sd)
    except ValueError:
        raise CheckpointError(
            f"pretrained weights {file}: not a PVT checkpoint: its keys ({', '.join(sorted(sd)[:_SHOWN])}, ...) are "
            "neither timm's and ours (patch_embed.*, stages.*) nor the official PVT code's (patch_embed1.*, block1.*)."
        ) from None
    sd = convert_state_dict(sd, source=layout)
    head_reason = _head_reason(sd, own)
    if head_reason:
        sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    resampled = _resampled_pos_embeds(model, sd, own)

    missing = [k for k in own if k not in sd and not (head_reason and k.startswith("head."))]
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
        head_reinitialized=bool(head_reason),
        head_reason=head_reason,
        resampled=tuple(resampled),
        skipped=tuple(missing + unexpected + reshaped),
    )


# --- the error for another architecture -------------------------------------------------------


def _shape(t: torch.Tensor) -> str:
    return str(list(t.shape))


def _mismatch_error(file, layout, model, sd, own, missing, unexpected, reshaped) -> CheckpointError:
    rows = [f"{k} is {_shape(sd[k])} in the checkpoint, {_shape(own[k])} in the model" for k in reshaped]
    rows += [f"{k} {_shape(own[k])} is not in the checkpoint" for k in missing]
    rows += [f"{k} {_shape(sd[k])} is not in the model" for k in unexpected]
    matches = _matching_variants(sd)
    if matches:
        fix = (
            f"it matches {' and '.join(matches)}: build that, e.g. model={matches[0]} (num_classes and img_size may "
            "differ: the head is re-initialised and position embeddings are resampled)"
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
        k: (tuple(v.shape[::2]) if _POS_EMBED.match(k) else tuple(v.shape))
        for k, v in sd.items()
        if not k.startswith("head.")
    }


def _matching_variants(sd: Mapping[str, torch.Tensor]) -> list[str]:
    """Shipped variants whose state dict the checkpoint fits (built on the meta device; error path only)."""
    from .builder import build_model
    from .config.compose import list_models, load_config

    want = _signature(sd)
    found = []
    for name in list_models():
        with torch.device("meta"):
            shapes = _signature(build_model(load_config(name)).state_dict())
        if shapes == want:
            found.append(name)
    return found

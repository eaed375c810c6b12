"""Checkpoints of a training run: what a resumed run needs to repeat an uninterrupted one.

A checkpoint is a directory ``checkpoints/step_<global step>/`` holding
- ``model.safetensors``: the weights (timm's naming; ``model.pretrained=`` loads it),
- ``config.yaml``: the resolved model and task config the weights belong to,
- ``trainer_state.pt``: optimizer moments, the step, the metrics history and the running
  sums of a half-finished epoch; plain tensors and numbers, loaded with ``weights_only=True``.
It is written under a temporary name and renamed into place, so a run killed mid-write
leaves the previous checkpoint intact, never a half-written one.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

CHECKPOINTS = "checkpoints"
WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
STATE = "trainer_state.pt"
_STEP_DIR = re.compile(r"^step_(\d+)$")

# Task keys that may differ on resume: they change how a run reports or where it runs, not
# what it computes.
RESUMABLE_CHANGES = frozenset({"resume", "progress", "log_every", "checkpoint_every", "keep_checkpoints", "device", "data.num_workers"})


def save_weights(model: nn.Module, path: Path, metadata: Optional[dict[str, str]] = None) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def save_checkpoint(run_dir: Path, step: int, model: nn.Module, state: dict[str, Any], config_yaml: str, keep: int) -> Path:
    root = run_dir / CHECKPOINTS
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp-step_{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(model, tmp / WEIGHTS, {"step": str(step)})
    (tmp / CONFIG).write_text(config_yaml)
    torch.save(state, tmp / STATE)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    found = [(int(m.group(1)), p) for p in root.glob("step_*") if (m := _STEP_DIR.match(p.name)) and (p / STATE).is_file()]
    return [p for _, p in sorted(found)]


class ResumeError(ValueError):
    """A resume that cannot continue the run it points at."""


def find_checkpoint(resume: str, run_dir: Path) -> Optional[Path]:
    """The checkpoint ``task.resume`` points at; None for 'auto' in a directory with none."""
    if resume == "auto":
        found = list_checkpoints(run_dir)
        return found[-1] if found else None
    path = Path(resume).expanduser()
    if (path / STATE).is_file():
        return path
    if not path.exists():
        raise ResumeError(f"task.resume = {resume!r}: no such file or directory; give a run directory or one of its checkpoints/step_* directories.")
    found = list_checkpoints(path)
    if not found:
        raise ResumeError(
            f"task.resume = {resume!r}: {path} holds no complete checkpoint ({CHECKPOINTS}/step_*/{STATE}); "
            "give the directory of a run that trained at least to its first checkpoint, or drop task.resume."
        )
    return found[-1]


def config_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def check_resumable(checkpoint: Path, current: dict[str, Any]) -> None:
    """Refuse to continue a run under a different model or training recipe: the result would be neither."""
    import yaml

    saved = yaml.safe_load((checkpoint / CONFIG).read_text()) or {}
    changed = [k for k in config_differences(saved, current) if k.removeprefix("task.") not in RESUMABLE_CHANGES]
    if changed:
        shown = ", ".join(f"{k} ({_get(saved, k)!r} -> {_get(current, k)!r})" for k in changed[:5])
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        raise ResumeError(
            f"task.resume: {checkpoint} was trained with a different config: {shown}{more}. Resume with the "
            f"settings in {checkpoint / CONFIG} (only {', '.join(sorted(RESUMABLE_CHANGES))} may change), or start a new run."
        )


def _get(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def load_checkpoint(checkpoint: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(checkpoint / WEIGHTS), device=str(next(model.parameters()).device)))
    state = torch.load(checkpoint / STATE, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state.pop("optimizer"))
    return state

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
from typing import Any, Callable, Optional

import torch
from torch import nn

from ..weights.files import CheckpointError, code_it_needs

CHECKPOINTS = "checkpoints"
WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
STATE = "trainer_state.pt"
_STEP_DIR = re.compile(r"^step_(\d+)$")

# Task keys that may differ on resume: they change how a run reports or where it runs, not
# what it computes.
RESUMABLE_CHANGES = frozenset(
    {"resume", "progress", "log_every", "log_seconds", "checkpoint_every", "keep_checkpoints", "device", "threads", "data.num_workers"}
)


def process_umask() -> int:
    """The process's umask, read without changing it where the OS tells (Linux), else set and restored."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save_weights(model: nn.Module, path: Path, metadata: Optional[dict[str, str]] = None) -> None:
    """Write atomically, with the permissions any new file gets (safetensors itself writes 0600,
    which would hide a run from colleagues sharing its storage)."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    os.chmod(tmp, 0o666 & ~process_umask())
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


class DamagedCheckpointError(ResumeError, CheckpointError):
    """A checkpoint whose files cannot be read back (truncated, corrupt, or pickling code).

    A CheckpointError like any unreadable weights file, and a ResumeError because the resume
    it was asked for cannot go on; the app turns either into one paragraph and exit 2.
    """

    def __init__(self, file: Path, reason: str):
        self.file, self.reason = file, reason
        super().__init__(
            f"task.resume: checkpoint file {file} is damaged ({reason}). Resume from another checkpoint of the run "
            f"(task.resume={file.parent.parent}/step_N), or remove {file.parent} so that task.resume=auto "
            f"continues from the newest intact one."
        )


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def read_checkpoint(checkpoint: Path, device: str = "cpu", max_bytes: Optional[int] = None
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(weights, trainer state) of a checkpoint, or DamagedCheckpointError naming the file that fails.

    The state is loaded with ``weights_only=True``: a file that needs code to unpickle is refused.
    Each file's declared tensor bytes are checked first against ``max_bytes`` (what a checkpoint
    of the model being resumed can hold) and the memory available: a run directory comes from
    wherever the user found it, and a deflated storage or an honest safetensors header would
    otherwise be allocated whole before anything could object.
    """
    import pickle

    from safetensors.torch import load_file

    from ..weights.declared_size import declared_excess

    for file in (checkpoint / WEIGHTS, checkpoint / STATE):
        reason = declared_excess(file, max_bytes) if file.exists() else None
        if reason:
            raise DamagedCheckpointError(file, reason)
    try:
        weights = load_file(str(checkpoint / WEIGHTS), device=device)
    except Exception as exc:  # noqa: BLE001 -- safetensors raises its own error types for a bad header
        raise DamagedCheckpointError(checkpoint / WEIGHTS, _first_line(exc)) from exc
    try:
        state = torch.load(checkpoint / STATE, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = ("it holds objects that need code to unpickle, and checkpoints are read with weights_only=True"
                  if code_it_needs(checkpoint / STATE, exc) else _first_line(exc))
        raise DamagedCheckpointError(checkpoint / STATE, reason) from exc
    except Exception as exc:  # noqa: BLE001 -- truncation surfaces as RuntimeError, EOFError, zip errors ...
        raise DamagedCheckpointError(checkpoint / STATE, _first_line(exc)) from exc
    missing = [k for k in ("step", "history", "sums", "optimizer") if not isinstance(state, dict) or k not in state]
    if missing:
        raise DamagedCheckpointError(checkpoint / STATE, f"no {', '.join(missing)} in it: not a trainer state of this project")
    return weights, state


def find_checkpoint(resume: str, run_dir: Path, warn: Callable[[str], None] = lambda _: None) -> Optional[Path]:
    """The checkpoint ``task.resume`` points at; None for 'auto' in a directory with none.

    'auto' takes the newest checkpoint that reads back whole, telling ``warn`` about each damaged
    one it passes over (a run killed while its disk filled up, say); a checkpoint named
    explicitly is used as it is, and a damaged one is an error when it is loaded.
    """
    if resume == "auto":
        found = list_checkpoints(run_dir)
        damaged = []
        for checkpoint in reversed(found):
            try:
                read_checkpoint(checkpoint)
                read_config(checkpoint)
                return checkpoint
            except DamagedCheckpointError as exc:
                damaged.append(exc)
                warn(f"{exc.file} is damaged ({exc.reason}); trying an older checkpoint")
        if damaged:
            raise ResumeError(f"task.resume=auto: every checkpoint of {run_dir} is damaged ({len(damaged)}; the newest, "
                              f"{damaged[0].file}: {damaged[0].reason}). Start the run afresh in a new directory, or remove "
                              f"{Path(run_dir) / CHECKPOINTS} to start again in this one.")
        return None
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


def config_differences(saved: dict[str, Any], current: dict[str, Any], prefix: str = "",
                       defaults: Optional[dict[str, Any]] = None) -> list[str]:
    """Dotted keys whose values differ between two nested config dicts.

    A key the saved config lacks but ``defaults`` holds is a setting added by a later version of
    lucid_arch: the checkpoint was trained as its default says, so it differs only if the current
    value is not that default.
    """
    out, defaults = [], defaults or {}
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, defaults.get(key)), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            default = defaults.get(key)
            out += config_differences(a, b, f"{prefix}{key}.", default if isinstance(default, dict) else None)
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def read_config(checkpoint: Path) -> dict[str, Any]:
    """The model and task config a checkpoint was trained with."""
    import yaml

    try:
        saved = yaml.safe_load((checkpoint / CONFIG).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DamagedCheckpointError(checkpoint / CONFIG, _first_line(exc)) from exc
    if not isinstance(saved, dict):
        raise DamagedCheckpointError(checkpoint / CONFIG, "not a mapping of model and task settings")
    return saved


def check_resumable(checkpoint: Path, current: dict[str, Any], defaults: Optional[dict[str, Any]] = None) -> None:
    """Refuse to continue a run under a different model or training recipe: the result would be neither.

    ``defaults`` (the schema's, same shape as ``current``) stand in for the settings an older
    checkpoint does not record.
    """
    saved = read_config(checkpoint)
    changed = [k for k in config_differences(saved, current, defaults=defaults) if k.removeprefix("task.") not in RESUMABLE_CHANGES]
    if changed:
        shown = ", ".join(f"{k} ({_get(saved, k, defaults)!r} -> {_get(current, k)!r})" for k in changed[:5])
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        raise ResumeError(
            f"task.resume: {checkpoint} was trained with a different config: {shown}{more}. Resume with the "
            f"settings in {checkpoint / CONFIG} (only {', '.join(sorted(RESUMABLE_CHANGES))} may change), or start a new run."
        )


def _get(tree: dict[str, Any], dotted: str, defaults: Optional[dict[str, Any]] = None) -> Any:
    """The value at ``dotted`` in ``tree``; the default's where ``tree`` does not record it."""
    for part in dotted.split("."):
        default = defaults.get(part) if isinstance(defaults, dict) else None
        tree, defaults = (tree.get(part, default) if isinstance(tree, dict) else default), default
    return tree


def load_checkpoint(checkpoint: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    from ..modeling.memory_check import weight_bytes
    from ..weights.declared_size import model_budget

    weights, state = read_checkpoint(checkpoint, device=str(next(model.parameters()).device),
                                     max_bytes=model_budget(weight_bytes(model)))
    model.load_state_dict(weights)
    optimizer.load_state_dict(state.pop("optimizer"))
    return state

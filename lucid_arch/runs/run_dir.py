"""A training run directory read back as a model: its architecture, class names, preprocessing,
weights and whether it finished.

What ``task=train`` leaves in a run directory (lucid_arch/training/loop.py):

    config.yaml              model: the ModelConfig trained; task: the TrainConfig (written at the end)
    inference.json           what using the model needs: kind, class names, preprocessing (written at the start)
    model.safetensors        the final weights;  model_best.safetensors: the best validation epoch's
    checkpoints/step_N/      model.safetensors + config.yaml + trainer_state.pt, the newest few
    summary.json, metrics.jsonl, .lock (held while it trains)

A path into a run works as well as the run itself: ``checkpoints/step_N`` or a weights file
names those weights, the run around it gives everything else. Runs written before
``inference.json`` existed are read from config.yaml and summary.json instead. Every file is read
with a size bound (a run directory may come from someone else), and nothing here imports torch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..safe_io import FileTooLarge, RefusedFile, read_bounded, write_text_atomic
from .preprocessing import Preprocessing
from .status import run_status

CONFIG = "config.yaml"
WEIGHTS = "model.safetensors"
BEST_WEIGHTS = "model_best.safetensors"
INFERENCE = "inference.json"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
IGNORE_INDEX = 255
STEP_DIR = re.compile(r"^step_(\d+)$")
MAX_TEXT_BYTES = 16 << 20  # a run's config.yaml, inference.json or summary.json: kilobytes, or 100,000 class names
KINDS = ("classification", "segmentation", "detection")


class RunError(ValueError):
    """A path that is not a usable training run; the message names the file and what to do."""


@dataclass(frozen=True)
class Run:
    root: Path
    model: dict[str, Any]  # the model config as trained (num_classes and img_size follow the data)
    task: dict[str, Any]  # the training settings ({} when only a checkpoint's config was found)
    kind: str  # one of KINDS
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    status: str  # finished, running, interrupted, failed or pruned (see lucid_arch.runs.status)
    status_note: str  # one sentence on that status, for a log
    ignore_index: int = IGNORE_INDEX
    step_dir: Optional[Path] = None  # the path named checkpoints/step_N (its weights are the ones meant)
    named_file: Optional[Path] = None  # the path named a weights file of the run

    def weights(self, checkpoint: str = "last") -> Path:
        """The weights file ``checkpoint`` ('last' or 'best') selects; a path that named weights itself wins."""
        if self.named_file is not None:
            return self.named_file
        if self.step_dir is not None:
            return self.step_dir / WEIGHTS
        if checkpoint == "best":
            best = self.root / BEST_WEIGHTS
            if best.is_file():
                return best
            raise RunError(
                f"model.checkpoint=best: run {self.root} has no {BEST_WEIGHTS} (it was trained before lucid_arch kept the best "
                f"epoch's weights, or no validation has run yet); load its last weights (model.checkpoint=last) or a "
                f"checkpoint directory ({self.root / CHECKPOINTS}/step_N)."
            )
        if checkpoint != "last":
            raise RunError(f"model.checkpoint = {checkpoint!r}: choose last or best.")
        final = self.root / WEIGHTS
        if final.is_file() and self.status != "running":
            return final
        steps = step_dirs(self.root)
        if steps:
            return steps[-1] / WEIGHTS
        raise RunError(
            f"run {self.root} holds no weights yet ({self.status_note}); neither {WEIGHTS} nor {CHECKPOINTS}/step_*/{WEIGHTS} "
            "exists. Wait for its first checkpoint (task.checkpoint_every sets how often one is written), or point "
            "model.pretrained at another run."
        )

    def describe(self, checkpoint: str = "last") -> str:
        """One line for a log: which run, which model, its classes and state, which weights."""
        names = ", ".join(self.classes[:6]) + (f", ... ({len(self.classes)})" if len(self.classes) > 6 else "")
        try:
            which = str(self.weights(checkpoint).relative_to(self.root))
        except (RunError, ValueError):
            which = "none yet"
        return (f"run {self.root}: {self.model.get('name', 'model')} ({self.kind}, {len(self.classes)} classes: {names}); "
                f"{self.status_note}; weights {which}")


def step_dirs(root: Path) -> list[Path]:
    """A run's complete checkpoint directories (those holding weights), oldest first."""
    found = [(int(m.group(1)), d) for d in (Path(root) / CHECKPOINTS).glob("step_*")
             if (m := STEP_DIR.match(d.name)) and (d / WEIGHTS).is_file()]
    return [d for _, d in sorted(found)]


def _locate(path: Path) -> tuple[Path, Optional[Path], Optional[Path]]:
    """(run root, step dir, weights file) that ``path`` names; the root is a guess for the caller to confirm."""
    if path.is_file():
        parent = path.parent
        if STEP_DIR.match(parent.name) and parent.parent.name == CHECKPOINTS:
            return parent.parent.parent, parent, path
        return parent, None, path
    if STEP_DIR.match(path.name) and path.parent.name == CHECKPOINTS:
        return path.parent.parent, path, None
    return path, None, None


def _looks_like_run(root: Path) -> bool:
    return (root / INFERENCE).is_file() or (root / CONFIG).is_file() or bool(step_dirs(root))


def find_run(path: Any) -> Optional[Run]:
    """The run ``path`` is or lies in, or None when it is not one (a plain checkpoint file, a Hugging Face directory)."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if not p.exists():
        return None
    root, step, file = _locate(p)
    if file is not None and file.suffix != ".safetensors":
        return None  # a .pth beside a config.yaml is someone else's checkpoint, not a run's weights
    if not _looks_like_run(root) or (root / "config.json").is_file():
        return None
    return read_run(p)


def read_run(path: Any) -> Run:
    """The run at ``path`` (see the module docstring), or RunError naming what is missing."""
    p = Path(path).expanduser()
    if not p.exists():
        raise RunError(f"{p}: no such file or directory; give a training run directory (the hydra.run.dir of task=train).")
    root, step, file = _locate(p)
    model, task = _model_and_task(root, step)
    info = _read_json(root / INFERENCE) if (root / INFERENCE).exists() else {}  # a FIFO there is refused by name
    kind = info.get("task") or _kind_of(model)
    if kind not in KINDS:
        raise RunError(f"{root / INFERENCE}: task = {kind!r}; expected one of {', '.join(KINDS)}. The file is damaged: "
                       f"remove it, and the run is read from {CONFIG} instead.")
    classes = _classes(root, info, model)
    try:
        prep = (Preprocessing.from_dict(info["preprocessing"]) if isinstance(info.get("preprocessing"), dict)
                else _preprocessing_from_task(task, model, kind))
    except ValueError as err:
        raise RunError(f"{root / INFERENCE}: {err}. The file is damaged: remove it, and the run is read from {CONFIG} instead.") from None
    status, note = run_status(root, _read_json(root / SUMMARY) if (root / SUMMARY).exists() else None,
                              finished=(root / WEIGHTS).is_file())
    return Run(root=root, model=model, task=task, kind=kind, classes=classes, preprocessing=prep, status=status,
               status_note=note, ignore_index=int(info.get("ignore_index", IGNORE_INDEX)), step_dir=step, named_file=file)


def run_for_model(model_cfg: Any) -> Optional[Run]:
    """The run a model config's ``pretrained`` points into, if it does."""
    return find_run(getattr(model_cfg, "pretrained", None))


def _model_and_task(root: Path, step: Optional[Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config the weights belong to: the step's own, else the run's final one, else its newest checkpoint's."""
    candidates = [step / CONFIG] if step is not None else [root / CONFIG, *[d / CONFIG for d in reversed(step_dirs(root))]]
    for file in candidates:
        if file.is_file():
            saved = _read_yaml(file)
            if not isinstance(saved.get("model"), dict):
                raise RunError(f"{file}: no 'model' mapping in it: not the config.yaml of a training run (task=train writes "
                               "model: and task: sections). Point model.pretrained at a run directory or a weights file.")
            return saved["model"], saved.get("task") if isinstance(saved.get("task"), dict) else {}
    raise RunError(
        f"{root}: not a training run: neither {CONFIG} nor {CHECKPOINTS}/step_*/{CONFIG} is there (a run writes its first "
        f"checkpoint at the end of its first epoch). Give the directory task=train wrote, or a weights file for "
        "model=NAME model.pretrained=FILE."
    )


def _classes(root: Path, info: dict[str, Any], model: dict[str, Any]) -> tuple[str, ...]:
    count = model.get("num_classes")
    names = info.get("classes")
    if names is None and (root / SUMMARY).exists():
        names = ((_read_json(root / SUMMARY).get("train") or {}).get("classes"))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        names = [str(i) for i in range(count if isinstance(count, int) else 0)]
    if isinstance(count, int) and len(names) != count:
        raise RunError(f"{root}: {len(names)} class names but the model has {count} classes (model.num_classes in {CONFIG}); "
                       f"the run's {INFERENCE} or {SUMMARY} does not belong to its weights.")
    return tuple(names)


def _kind_of(model: dict[str, Any]) -> str:
    """A run without inference.json: its kind from the model config."""
    detector = model.get("detector")
    if isinstance(detector, dict) and detector.get("type", "none") not in (None, "none"):
        return "detection"
    return "segmentation" if (model.get("decode_head") or {}).get("type", "none") != "none" else "classification"


def _preprocessing_from_task(task: dict[str, Any], model: dict[str, Any], kind: str) -> Preprocessing:
    data = task.get("data") if isinstance(task.get("data"), dict) else {}
    return Preprocessing.from_dict({
        "image_size": data.get("image_size", model.get("img_size", 224)),
        **{k: data[k] for k in ("mean", "std") if k in data},
        "resize": {"segmentation": "keep_ratio", "detection": "letterbox"}.get(kind, "center_crop"),
    })


def _read_text(file: Path) -> str:
    """The file's text, refused (never waited on) when it is a FIFO or device, and bounded in size."""
    try:
        data = read_bounded(file, MAX_TEXT_BYTES)
    except FileTooLarge:
        raise RunError(f"{file}: over {MAX_TEXT_BYTES >> 20} MiB, far more than a run writes; not read. The file is not "
                       "a run's own: remove it or point model.pretrained at another run.") from None
    except RefusedFile as err:
        raise RunError(f"{err}; a run's files are regular files: remove it or point model.pretrained at another run.") from None
    except OSError as err:
        raise RunError(f"{file}: cannot be read ({err.strerror or err}).") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise RunError(f"{file}: not UTF-8 text; not a run's own file.") from None


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(_read_text(file))
    except ValueError as err:
        if isinstance(err, RunError):
            raise
        raise RunError(f"{file}: not valid JSON ({err}); the file is damaged.") from None
    return data if isinstance(data, dict) else {}


def _read_yaml(file: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(_read_text(file))
    except yaml.YAMLError as err:
        raise RunError(f"{file}: not valid YAML ({str(err).splitlines()[0]}); the file is damaged.") from None
    if not isinstance(data, dict):
        raise RunError(f"{file}: not a mapping of model and task settings; the file is damaged.")
    return data


def write_inference_info(root: Path, kind: str, classes: list[str], preprocessing: Preprocessing) -> Path:
    """Write ``inference.json`` (whole or not at all): what using the run's model needs besides its weights."""
    info = {"format": 1, "task": kind, "classes": list(classes), "ignore_index": IGNORE_INDEX,
            "preprocessing": preprocessing.to_dict()}
    return write_text_atomic(Path(root) / INFERENCE, json.dumps(info, indent=1) + "\n")

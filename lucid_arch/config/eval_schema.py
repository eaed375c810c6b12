"""The eval task's schema: every setting of ``task=eval``, with its default and why.

``conf/task/eval.yaml`` is composed onto :class:`EvalConfig` (registered as ``task/_eval_schema``
by :mod:`lucid_arch.config.store`). Its ``data`` section has the training data's keys, with the
same names and meaning (:class:`~lucid_arch.config.train_schema.DataConfig`; its augmentation
keys aside: evaluation never augments), but every one defaults to null, "the run's own": an
evaluation of ``model.pretrained=RUN`` reads the validation split the run validated on unless
told otherwise. :func:`resolve_data` fills those nulls in. Imports neither torch nor Hydra.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from typing import Any, List, Mapping, Optional, get_type_hints

from .checks import ConfigError, Problem
from .export_schema import image_size
from .train_schema import PROGRESS, DataConfig

SPLITS = ("auto", "val", "train", "all")
MODES = ("whole", "slide")
TRAINING_ONLY = ("augment", "min_scale", "hflip")  # DataConfig keys evaluation has no use for
SOURCE_KEYS = ("dataset", "root", "masks", "num_classes", "annotations", "val_annotations", "val_root")  # which data: taken from the run together, or not at all
MAX_SCALE = 8.0


def _doc(text: str) -> dict:
    return {"help": " ".join(text.split())}


# What a data key means in evaluation, beyond what it means in training (appended to its help).
_EVAL_NOTES = {
    "dataset": ("null: the run's own data (dataset, root, masks, num_classes and the COCO files together); 'coco' when "
                "annotations are given, 'folder' when only root is."),
    "root": "null: the run's own, unless dataset, masks or num_classes is given.",
    "masks": "null: the run's own, unless dataset, root or num_classes is given.",
    "num_classes": "null: the run's own, unless dataset, root or masks is given.",
    "annotations": "null: the run's own, unless another data source key is given; 'coco' is the dataset when it is.",
    "val_annotations": "null: the run's own, unless another data source key is given.",
    "val_root": "null: the run's own, unless another data source key is given.",
    "image_size": """In evaluation: a classifier's images are centre-cropped to it, a segmentation model's
        are resized keep-ratio so that their shorter side is min(image_size) (the test scale) and scored
        at their own size. null: the size the run trained at.""",
    "num_train": "null: the run's own (split=train or all on shapes).",
    "num_val": "null: the run's own.",
    "val_fraction": "null: the run's own, so a folder without train/ and val/ splits as it did in training.",
    "seed": "null: the run's own, so shapes and a folder's drawn split are the ones it validated on.",
    "mean": "null: the run's preprocessing.",
    "std": "null: the run's preprocessing.",
    "num_workers": "null: the run's own.",
}


def _eval_data_config() -> type:
    """DataConfig's keys but the augmentation ones, each Optional with default null (the run's own)."""
    hints = get_type_hints(DataConfig)
    specs = [(f.name, Optional[hints[f.name]],
              field(default=None, metadata=_doc(f"{f.metadata['help']} {_EVAL_NOTES[f.name]}")))
             for f in fields(DataConfig) if f.name not in TRAINING_ONLY]
    cls = make_dataclass("EvalDataConfig", specs)
    cls.__module__ = __name__
    cls.__doc__ = "The data to evaluate on: task=train's data keys, each null for the run's own."
    return cls


EvalDataConfig = _eval_data_config()


@dataclass
class EvalConfig:
    """``task=eval``: score a trained model on labelled data, as mmsegmentation's test.py does."""

    name: str = field(default="eval", metadata=_doc("The task's name (conf/task/eval.yaml)."))
    data: EvalDataConfig = field(default_factory=EvalDataConfig)  # documented key by key: _EVAL_NOTES
    split: str = field(
        default="auto",
        metadata=_doc(
            """Which images: 'val', 'train', 'all' (both), or auto: val for shapes, for a folder with a
            val/ sub-folder and for the run's own data, all for any other folder (a test set)."""
        ),
    )
    mode: str = field(
        default="whole",
        metadata=_doc(
            """Segmentation: 'whole' (one pass over the resized image) or 'slide' (windows of crop
            every stride pixels, overlaps averaged: mmsegmentation's slide mode)."""
        ),
    )
    crop: Optional[Any] = field(
        default=None, metadata=_doc("mode=slide: window side or [height, width]; null: the training size.")
    )
    stride: Optional[Any] = field(
        default=None, metadata=_doc("mode=slide: step side or [height, width]; null: 2/3 of the window.")
    )
    flip: bool = field(
        default=False,
        metadata=_doc(
            """Segmentation: also score the average of each pass and its horizontal mirror (reported
            beside the single-scale figures, as mmsegmentation's aug test)."""
        ),
    )
    scales: Optional[List[float]] = field(
        default=None,
        metadata=_doc(
            """Segmentation: also score the average over these ratios of the test scale, e.g.
            [0.5,0.75,1.0,1.25,1.5,1.75] (mmsegmentation's multi-scale test); null: none."""
        ),
    )
    batch_size: int = field(
        default=32,
        metadata=_doc("Classifier: images per forward pass. Segmentation: slide windows per pass (images go one at a time, each at its own size)."),
    )
    max_images: Optional[int] = field(
        default=None, metadata=_doc("Score only the split's first N images (a quick look); null: all of them.")
    )
    confusion_plot: bool = field(
        default=True, metadata=_doc("Draw confusion.png (confusion.json with the raw counts is always written).")
    )
    device: str = field(default="auto", metadata=_doc("auto (cuda when available, else cpu), cpu, cuda or cuda:N."))
    threads: Optional[int] = field(
        default=None, metadata=_doc("CPU threads torch may use; null: torch's default (one per core).")
    )
    progress: str = field(
        default="auto",
        metadata=_doc("'bar' (a live bar), 'log' (a line every log_seconds), 'none', or auto: bar in a terminal, log otherwise."),
    )
    log_seconds: float = field(
        default=10.0, metadata=_doc("progress is 'log': seconds between progress lines (and one at the end).")
    )


def field_help(cls: type = EvalConfig, prefix: str = "") -> dict[str, str]:
    """Dotted key -> documentation, the data section's keys included (docs/eval.md's test reads it)."""
    out: dict[str, str] = {}
    for f in fields(cls):
        if f.name == "data":
            out.update(field_help(EvalDataConfig, "data."))
        elif f.metadata.get("help"):
            out[prefix + f.name] = f.metadata["help"]
    return out


def check_eval(task: Any) -> None:
    """Cross-field rules a type cannot express; raises ConfigError naming every bad key."""
    problems: list[Problem] = []

    def bad(key: str, why: str) -> None:
        value = getattr(task, key)
        problems.append(Problem(f"task.{key}", f"task.{key} = {list(value) if isinstance(value, (list, tuple)) else value!r}: {why}"))

    if task.split not in SPLITS:
        bad("split", f"choose one of {', '.join(SPLITS)}.")
    if task.mode not in MODES:
        bad("mode", f"choose one of {', '.join(MODES)}.")
    for key in ("crop", "stride"):
        value = getattr(task, key)
        if value is None:
            continue
        if task.mode != "slide":
            bad(key, "sets slide mode's windows; add task.mode=slide, or drop it.")
        elif image_size(_plain(value)) is None:
            bad(key, "give one side or [height, width], each at least 2 pixels, e.g. 512 or [512,1024].")
    if task.scales is not None and (not task.scales or not all(0 < s <= MAX_SCALE for s in task.scales)):
        bad("scales", f"give ratios of the test scale in (0, {MAX_SCALE:g}], e.g. [0.75,1.0,1.25], or null.")
    if task.batch_size < 1:
        bad("batch_size", "must be at least 1.")
    if task.max_images is not None and task.max_images < 1:
        bad("max_images", "must be at least 1, or null for every image.")
    if task.threads is not None and task.threads < 1:
        bad("threads", "must be at least 1, or null for torch's default.")
    if task.progress not in PROGRESS:
        bad("progress", f"choose one of {', '.join(PROGRESS)}.")
    if task.log_seconds < 0:
        bad("log_seconds", "must be 0 (a line per image) or more seconds.")
    if problems:
        raise ConfigError(problems, "task=eval")


def augmented(task: Any) -> Optional[str]:
    """The test-time augmentation asked for, as mmsegmentation's tables name it ('flip', 'ms', 'ms+flip'), or None."""
    multi = task.scales is not None and [float(s) for s in task.scales] != [1.0]
    name = "+".join(part for part, on in (("ms", multi), ("flip", task.flip)) if on)
    return name or None


def resolve_data(data: Any, run_data: Optional[Mapping[str, Any]], fallback: Mapping[str, Any]) -> tuple[DataConfig, bool]:
    """(the data to evaluate on, whether it is the run's own data).

    Each key is the command line's when given, else the run's (its config.yaml's task.data), else
    ``fallback`` (the preprocessing's image size, mean and std for weights not from a run), else
    DataConfig's default. The keys that say which data (SOURCE_KEYS) go together: any of them
    given, and none of the others comes from the run -- a test folder's images must never be
    paired with the training folder's masks.
    """
    run_data = dict(run_data or {})
    given = {k: v for k, v in asdict(data).items() if v is not None}
    chose_source = any(k in given for k in SOURCE_KEYS)
    values = asdict(DataConfig())
    values.update({k: v for k, v in fallback.items() if k in values})
    values.update({k: v for k, v in run_data.items() if k in values and (k not in SOURCE_KEYS or not chose_source)})
    if chose_source:
        values.update({k: None for k in SOURCE_KEYS if k != "dataset"},
                      dataset="coco" if given.get("annotations") else "folder" if given.get("root") else "shapes")
    values.update({k: _plain(v) for k, v in given.items()})
    resolved = DataConfig(**values)
    own = bool(run_data) and all(_same(getattr(resolved, k), run_data.get(k, getattr(DataConfig(), k))) for k in SOURCE_KEYS)
    return resolved, own


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return os.path.realpath(os.path.expanduser(a)) == os.path.realpath(os.path.expanduser(b))
    return a == b


def _plain(value: Any) -> Any:
    """OmegaConf lists as plain lists."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value

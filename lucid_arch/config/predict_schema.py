"""The predict task's schema: every setting of ``task=predict``, with its default and why.

``conf/task/predict.yaml`` is composed onto :class:`PredictConfig` (registered as
``task/_predict_schema`` by :mod:`lucid_arch.config.store`), so a misspelt key or a wrongly typed
value is caught before a model is built. Cross-field rules live in :func:`check_predict`; the
rules that need the model (a classifier has no slide mode) are checked by lucid_arch/cli/predict.py
against the same keys. Imports neither torch nor Hydra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from .checks import ConfigError, Problem
from .export_schema import _doc, _plain, image_size
from .export_schema import field_help as _field_help
from .train_schema import PROGRESS

MODES = ("whole", "slide")
FORMATS = ("csv", "json")
MAX_SCALE = 8.0


@dataclass
class PredictConfig:
    """``task=predict``: a trained model's predictions for a file, a folder or a glob of images."""

    name: str = field(default="predict", metadata=_doc("The task's name (conf/task/predict.yaml)."))
    input: Optional[str] = field(
        default=None,
        metadata=_doc(
            """What to predict on: an image file, a folder (every image below it, recursively,
            sorted) or a glob, quoted ('photos/**/*.jpg'). Required."""
        ),
    )
    output: Optional[str] = field(
        default=None,
        metadata=_doc(
            """Folder the predictions go to; outputs mirror the inputs' paths below it. null: the
            job's directory (a new one per run, so nothing is skipped: give a folder to resume)."""
        ),
    )
    mode: str = field(
        default="whole",
        metadata=_doc(
            """Segmentation: 'whole' (the image resized keep-ratio to the training size, one pass;
            mmsegmentation's mode='whole') or 'slide' (windows of `crop` every `stride` pixels over
            it, overlaps averaged; mode='slide')."""
        ),
    )
    crop: Optional[Any] = field(
        default=None,
        metadata=_doc("slide: the window, one side or [height, width] in pixels; null: the training size."),
    )
    stride: Optional[Any] = field(
        default=None,
        metadata=_doc("slide: the step between windows, one side or [height, width]; null: 2/3 of the window."),
    )
    flip: bool = field(
        default=False,
        metadata=_doc("Segmentation: also predict the mirrored image and average the two (test-time augmentation)."),
    )
    scales: List[float] = field(
        default_factory=lambda: [1.0],
        metadata=_doc(
            """Segmentation: ratios of the training size to predict at, averaged as probabilities at
            each image's own size; [1.0] is single-scale, mmsegmentation's multi-scale test is
            [0.5,0.75,1.0,1.25,1.5,1.75]."""
        ),
    )
    top_k: int = field(default=5, metadata=_doc("Classifier: how many best classes to list per image (at most the class count)."))
    batch_size: int = field(
        default=4,
        metadata=_doc(
            """Images per forward pass (a segmentation model batches images of one size only; in
            slide mode, windows of one image)."""
        ),
    )
    device: str = field(default="auto", metadata=_doc("auto (cuda when available, else cpu), cpu, cuda or cuda:N."))
    overlay: bool = field(
        default=True,
        metadata=_doc(
            """Segmentation: also write each image with its classes' colours laid over it (overlays/).
            Detector: also write each image with its boxes, labels and scores drawn (drawn/)."""
        ),
    )
    opacity: float = field(
        default=0.5, metadata=_doc("Overlay (a Mask R-CNN's masks too): weight of the class colour against the image, 0 to 1.")
    )
    score_threshold: float = field(
        default=0.3,
        metadata=_doc(
            """Detector: keep detections scoring at least this, in detections.json and the drawn
            pictures (mmdetection's show_score_thr); 0 keeps all the model returns (its own
            model.detector.score_threshold and detections_per_image apply first)."""
        ),
    )
    skip_existing: bool = field(
        default=True,
        metadata=_doc(
            """A rerun into the same `output` skips inputs whose outputs are already there (written
            whole or not at all), when the model and settings are the same as before."""
        ),
    )
    formats: List[str] = field(
        default_factory=lambda: list(FORMATS),
        metadata=_doc("Classifier: what to write, any of csv (predictions.csv) and json (predictions.json)."),
    )
    threads: Optional[int] = field(default=None, metadata=_doc("CPU threads for torch; null: torch's default (one per core)."))
    progress: str = field(
        default="auto",
        metadata=_doc("auto (a bar on a terminal, plain lines when piped), bar, log or none; on stderr."),
    )
    log_seconds: float = field(
        default=10.0,
        metadata=_doc("Seconds between plain progress lines (progress=log, or auto when piped); one line at the end always."),
    )


def field_help() -> dict[str, str]:
    """Key -> documentation (for docs/predict.md and the app's unknown-key hints)."""
    return _field_help(PredictConfig)


def check_predict(task: Any) -> None:
    """Cross-field rules a type cannot express; raises ConfigError naming every bad key."""
    problems: list[Problem] = []

    def bad(key: str, why: str) -> None:
        problems.append(Problem(f"task.{key}", f"task.{key} = {_plain(getattr(task, key))!r}: {why}"))

    if not task.input:
        bad("input", "give what to predict on: task.input=IMAGE, a folder, or a quoted glob such as 'photos/**/*.jpg'.")
    if task.mode not in MODES:
        bad("mode", f"choose {' or '.join(MODES)}.")
    for key, why in window_problems(task.mode, task.crop, task.stride):
        bad(key, why)
    scales = list(task.scales)
    if not scales or not all(isinstance(s, (int, float)) and 0 < s <= MAX_SCALE for s in scales) or len(set(scales)) != len(scales):
        bad("scales", f"give distinct ratios of the training size in (0, {MAX_SCALE:g}], e.g. [1.0] or [0.75,1.0,1.25].")
    for key in ("top_k", "batch_size"):
        if getattr(task, key) < 1:
            bad(key, "must be at least 1.")
    if not (task.device in ("auto", "cpu", "cuda", "mps") or _cuda_index(task.device)):
        bad("device", "choose auto, cpu, cuda, cuda:N or mps.")
    if not 0.0 <= task.score_threshold <= 1.0:
        bad("score_threshold", "must lie in [0, 1] (a detection's score).")
    if not 0.0 <= task.opacity <= 1.0:
        bad("opacity", "must lie in [0, 1] (0: the image alone, 1: the colours alone).")
    formats = list(task.formats)
    if not formats or any(f not in FORMATS for f in formats) or len(set(formats)) != len(formats):
        bad("formats", f"give one or both of {', '.join(FORMATS)}, e.g. [csv,json].")
    if task.threads is not None and task.threads < 1:
        bad("threads", "must be at least 1, or null for torch's default.")
    if task.progress not in PROGRESS:
        bad("progress", f"choose one of {', '.join(PROGRESS)}.")
    if not task.log_seconds > 0:
        bad("log_seconds", "must be a positive number of seconds.")
    if problems:
        raise ConfigError(problems, "task=predict")


def window_problems(mode: str, crop: Any, stride: Any) -> list[tuple[str, str]]:
    """(key, why) for each slide-window setting that cannot work (for task=predict and task=eval alike)."""
    out = []
    for key, value in (("crop", crop), ("stride", stride)):
        if value is None:
            continue
        if image_size(_plain(value)) is None:
            out.append((key, "give one side or [height, width] in pixels, each at least 2, e.g. 512 or [512,1024]."))
        elif mode != "slide":
            out.append((key, "only slide mode uses it: add task.mode=slide, or drop the setting."))
    return out


def _cuda_index(device: str) -> bool:
    head, _, index = device.partition(":")
    return head == "cuda" and index.isdigit()

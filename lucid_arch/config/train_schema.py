"""The training task's schema: every setting of ``task=train``, with its default and why.

``conf/task/train.yaml`` is composed onto :class:`TrainConfig` (registered as
``task/_train_schema`` by :mod:`lucid_arch.config.store`), so a misspelt key or a wrongly typed value is caught before a job
starts, exactly as for model configs. Cross-field rules live in :func:`check_train`. Like the
model schema, this module imports neither torch nor Hydra's runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, List, Optional

from .checks import ConfigError, Problem

DATASETS = ("shapes", "folder", "coco")
PRECISIONS = ("auto", "fp32", "bf16")
PROGRESS = ("auto", "bar", "log", "none")
RESUME_AUTO = "auto"


def _doc(text: str) -> dict:
    return {"help": " ".join(text.split())}


@dataclass
class DataConfig:
    """What the model learns from: the built-in shapes dataset or a folder of images."""

    dataset: str = field(
        default="shapes",
        metadata=_doc(
            """'shapes': the built-in dataset, generated from `seed` in memory (no download;
            see lucid_arch/data/shapes.py). 'folder': images under `root`, one sub-folder per class.
            'coco' (detectors): images under `root` and a COCO instances JSON, `annotations`."""
        ),
    )
    root: Optional[str] = field(
        default=None,
        metadata=_doc(
            """Image folder for dataset=folder: root/CLASS/*.jpg, or root/train/CLASS and
            root/val/CLASS for a fixed split. For a segmentation model: the images (any
            sub-folders; root/train and root/val for a fixed split), their label maps in `masks`."""
        ),
    )
    masks: Optional[str] = field(
        default=None,
        metadata=_doc(
            """dataset=folder with a segmentation model: the folder of PNG label maps (mode L or P,
            value = class id, 255 = ignore), laid out like `root`: root/a/x.jpg -> masks/a/x.png.
            Class names from masks/classes.txt (line k names id k), else `num_classes`. The
            shapes dataset has its masks built in."""
        ),
    )
    annotations: Optional[str] = field(
        default=None,
        metadata=_doc(
            """dataset=coco: the COCO instances JSON (images, annotations, categories) of the
            training images, whose file_name entries are relative to `root`. Classes are its
            categories, by name, in the order of their ids."""
        ),
    )
    val_annotations: Optional[str] = field(
        default=None,
        metadata=_doc(
            """dataset=coco: the instances JSON of a fixed validation set (images under
            `val_root`); null: `val_fraction` of the training file's images is held out."""
        ),
    )
    val_root: Optional[str] = field(
        default=None,
        metadata=_doc("dataset=coco with `val_annotations`: the folder of its images; null: `root`."),
    )
    num_classes: Optional[int] = field(
        default=None,
        metadata=_doc(
            """Classes of the folder's label maps (named 0 .. N-1) when `masks` has no
            classes.txt; null: classes.txt decides."""
        ),
    )
    image_size: Any = field(
        default=64,
        metadata=_doc(
            """Size of the images the model sees: one side (square), or [height, width]. The
            model is built at this size (its img_size is set to it), so FLOPs and v1 position
            embeddings match the data."""
        ),
    )
    num_train: int = field(default=5000, metadata=_doc("shapes: training images."))
    num_val: int = field(default=1000, metadata=_doc("shapes: validation images (drawn apart from the training ones)."))
    val_fraction: float = field(
        default=0.1,
        metadata=_doc("folder without train/ and val/ sub-folders: share of each class held out for validation."),
    )
    seed: int = field(
        default=0,
        metadata=_doc("Seed of the shapes images and of the folder's train/val split; independent of task.seed."),
    )
    augment: bool = field(
        default=True, metadata=_doc("Random resized crop and horizontal flip of training images (in torch, per batch).")
    )
    min_scale: float = field(
        default=0.35, metadata=_doc("Smallest share of an image's area a random resized crop keeps.")
    )
    hflip: bool = field(default=True, metadata=_doc("Flip training images left-right with probability 0.5."))
    mean: List[float] = field(
        default_factory=lambda: [0.485, 0.456, 0.406], metadata=_doc("Per-channel mean subtracted from pixels in [0, 1].")
    )
    std: List[float] = field(
        default_factory=lambda: [0.229, 0.224, 0.225], metadata=_doc("Per-channel std pixels are divided by.")
    )
    num_workers: int = field(
        default=0, metadata=_doc("Processes decoding images for dataset=folder (0: in the training process).")
    )


@dataclass
class OptimizerConfig:
    """AdamW. Norms, biases, position embeddings and the class token are never decayed."""

    lr: float = field(
        default=5e-4,
        metadata=_doc(
            """Peak learning rate, reached at the end of warm-up. 5e-4 is the official PVT
            recipe's rate for batch 512; on the shapes dataset 1e-3 trains b0 a little faster
            but can make larger variants (b1) collapse to one class, depending on the seed."""
        ),
    )
    weight_decay: float = field(default=0.05, metadata=_doc("Decoupled weight decay of weight matrices and kernels."))
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999], metadata=_doc("AdamW's beta1 and beta2."))
    eps: float = field(default=1e-8, metadata=_doc("AdamW's epsilon."))
    decode_head_lr_mult: float = field(
        default=10.0,
        metadata=_doc(
            """A segmentation model's neck and decode head learn at lr times this, as in SegFormer's
            and mmsegmentation's recipe; the encoder, and a classifier, at lr. On the shapes masks
            it lifts segformer_b0's default 10-epoch mIoU from 30% (at 1) to 41%. A detector learns
            at lr throughout (mmdetection's recipe): this does not apply to it."""
        ),
    )


@dataclass
class ScheduleConfig:
    """Linear warm-up, then cosine decay to ``min_lr`` at the last step; stepped every batch."""

    warmup_epochs: float = field(default=1.0, metadata=_doc("Epochs of linear warm-up from warmup_lr (fractions allowed)."))
    warmup_lr: float = field(default=1e-6, metadata=_doc("Learning rate of the first step."))
    min_lr: float = field(default=1e-5, metadata=_doc("Learning rate at the end of the cosine."))


@dataclass
class TrainConfig:
    """``task=train``: train the model on ``data`` and report validation accuracy."""

    name: str = field(default="train", metadata=_doc("The task's name (conf/task/train.yaml)."))
    seed: int = field(
        default=0,
        metadata=_doc(
            """Seed of initialisation, data order, augmentation and drop-path. Every step's
            randomness derives from (seed, step), so a resumed run repeats an uninterrupted one."""
        ),
    )
    epochs: int = field(default=10, metadata=_doc("Passes over the training set."))
    batch_size: int = field(
        default=64, metadata=_doc("Images per optimizer step, over all processes (each of N ranks takes batch_size/N).")
    )
    device: str = field(default="auto", metadata=_doc("auto (cuda when available, else cpu), cpu, cuda or cuda:N."))
    precision: str = field(
        default="auto",
        metadata=_doc(
            """bf16 (autocast; weights and optimizer stay fp32), fp32, or auto: bf16 on a GPU
            or a CPU with native bf16 (AVX512-BF16/AMX), fp32 elsewhere (and for a detector on a
            CPU, whose bf16 convolution gradients over 1x1 maps can be NaN)."""
        ),
    )
    label_smoothing: float = field(default=0.1, metadata=_doc("Label smoothing of the cross-entropy loss."))
    clip_grad_norm: Optional[float] = field(
        default=5.0, metadata=_doc("Clip the gradients' global L2 norm to this; null: no clipping.")
    )
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval_every: int = field(default=1, metadata=_doc("Validate every this many epochs (and always after the last)."))
    checkpoint_every: int = field(
        default=0,
        metadata=_doc("Also checkpoint every this many steps inside an epoch (0: at the end of each epoch only)."),
    )
    keep_checkpoints: int = field(default=2, metadata=_doc("Checkpoints kept under checkpoints/; older ones are deleted."))
    resume: Optional[str] = field(
        default=None,
        metadata=_doc(
            """Continue a run: a run directory or one of its checkpoints/step_* directories.
            'auto': this job's own directory when it holds a checkpoint (a requeued SLURM job), else
            start fresh. null: start fresh."""
        ),
    )
    progress: str = field(
        default="auto",
        metadata=_doc("'bar' (a live progress bar), 'log' (a line every log_every steps or log_seconds seconds), 'none', or auto: bar in a terminal, log otherwise."),
    )
    log_every: int = field(default=50, metadata=_doc("Steps between progress lines when progress is 'log'."))
    log_seconds: float = field(
        default=30.0,
        metadata=_doc(
            """progress is 'log': also a line once this many seconds have passed since the last one,
            whichever comes first with log_every, so a log shows a slow run is alive. 0: by steps only."""
        ),
    )
    threads: Optional[int] = field(
        default=None,
        metadata=_doc(
            """CPU threads torch may use (torch.set_num_threads). null: in a SLURM job, the CPUs SLURM
            gave the task; elsewhere torch's default, one per core, right for one training alone on a
            machine (torchrun already sets 1 per rank). Set it when processes share the cores (a
            joblib sweep with n_jobs > 1, another job): cores divided by processes, or the runs slow
            each other down oversubscribing."""
        ),
    )


def field_help(cls: type = TrainConfig, prefix: str = "") -> dict[str, str]:
    """Dotted key -> documentation, nested sections included (for docs/training.md's test and errors)."""
    out: dict[str, str] = {}
    for f in fields(cls):
        if f.metadata.get("help"):
            out[prefix + f.name] = f.metadata["help"]
        elif isinstance(f.default_factory, type):  # a nested section
            out.update(field_help(f.default_factory, f"{prefix}{f.name}."))
    return out


def check_train(task: Any) -> None:
    """Cross-field rules a type cannot express; raises ConfigError naming every bad key."""
    problems: list[Problem] = []

    def bad(key: str, why: str) -> None:
        problems.append(Problem(f"task.{key}", f"task.{key} = {_get(task, key)!r}: {why}"))

    if task.data.dataset not in DATASETS:
        bad("data.dataset", f"choose one of {', '.join(DATASETS)}.")
    if task.data.dataset == "folder" and not task.data.root:
        bad("data.root", "dataset=folder needs the image folder: task.data.root=/path/to/images.")
    if task.data.dataset == "coco" and not task.data.root:
        bad("data.root", "dataset=coco needs the image folder: task.data.root=/path/to/images.")
    if task.data.dataset == "coco" and not task.data.annotations:
        bad("data.annotations", "dataset=coco needs the instances JSON: task.data.annotations=/path/to/instances.json.")
    for key in ("annotations", "val_annotations", "val_root"):
        if getattr(task.data, key) and task.data.dataset != "coco":
            bad(f"data.{key}", "belongs to a COCO-format dataset; add task.data.dataset=coco, or drop it.")
    if task.data.val_root and not task.data.val_annotations:
        bad("data.val_root", "holds the images of task.data.val_annotations; give that file too, or drop it.")
    if task.data.dataset != "folder" and task.data.masks:
        bad("data.masks", f"label maps are read with dataset=folder; the {task.data.dataset} dataset has its own "
                          f"(drop task.data.masks, or set task.data.dataset=folder task.data.root=IMAGES).")
    if task.data.num_classes is not None and not task.data.masks:
        bad("data.num_classes", "numbers the classes of task.data.masks's label maps; set task.data.masks=DIR, or drop it "
                                "(shapes and class folders name their own classes).")
    elif task.data.num_classes is not None and not 2 <= task.data.num_classes <= 255:
        bad("data.num_classes", "give 2 to 255 classes (id 255 is ignore).")
    if task.precision not in PRECISIONS:
        bad("precision", f"choose one of {', '.join(PRECISIONS)}.")
    if task.progress not in PROGRESS:
        bad("progress", f"choose one of {', '.join(PROGRESS)}.")
    if not _is_image_size(task.data.image_size):
        bad("data.image_size", "give one side or [height, width], each at least 1 pixel, e.g. 64 or [48,96].")
    for key in ("epochs", "batch_size", "eval_every", "log_every", "keep_checkpoints", "data.num_train", "data.num_val"):
        if _get(task, key) < 1:
            bad(key, "must be at least 1.")
    if task.threads is not None and task.threads < 1:
        bad("threads", "must be at least 1, or null for torch's default.")
    if task.log_seconds < 0:
        bad("log_seconds", "must be 0 (lines by steps only) or more seconds.")
    for key in ("checkpoint_every", "data.num_workers"):
        if _get(task, key) < 0:
            bad(key, "must be 0 or more.")
    if not 0.0 < task.data.val_fraction < 1.0:
        bad("data.val_fraction", "must lie strictly between 0 and 1.")
    if not 0.0 < task.data.min_scale <= 1.0:
        bad("data.min_scale", "must lie in (0, 1].")
    if not 0.0 <= task.label_smoothing < 1.0:
        bad("label_smoothing", "must lie in [0, 1).")
    if task.clip_grad_norm is not None and task.clip_grad_norm <= 0:
        bad("clip_grad_norm", "must be positive, or null for no clipping.")
    if task.optimizer.lr <= 0:
        bad("optimizer.lr", "must be positive.")
    if not 0 < task.optimizer.decode_head_lr_mult <= 1000:
        bad("optimizer.decode_head_lr_mult", "must lie in (0, 1000].")
    if len(task.optimizer.betas) != 2 or not all(0.0 <= b < 1.0 for b in task.optimizer.betas):
        bad("optimizer.betas", "give two numbers in [0, 1), e.g. [0.9,0.999].")
    if task.schedule.warmup_epochs < 0:
        bad("schedule.warmup_epochs", "must be 0 or more.")
    if task.schedule.warmup_epochs > task.epochs:
        bad("schedule.warmup_epochs", f"is longer than the run's {task.epochs} epochs.")
    if len(task.data.mean) != 3 or len(task.data.std) != 3 or any(s <= 0 for s in task.data.std):
        bad("data.std" if len(task.data.mean) == 3 else "data.mean", "give three per-channel values (std positive).")
    if problems:
        raise ConfigError(problems, "task=train")


def _is_image_size(value: Any) -> bool:
    """One side, or [height, width]; every side a positive integer."""
    pair = isinstance(value, Sequence) and not isinstance(value, str)
    sides = list(value) if pair else [value]
    return len(sides) == (2 if pair else 1) and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sides)


def plain_image_size(value: Any) -> Any:
    """``task.data.image_size`` as a model's ``img_size``: an int, or a plain [height, width] list."""
    return [int(v) for v in value] if isinstance(value, Sequence) and not isinstance(value, str) else int(value)


def _get(task: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        task = getattr(task, part)
    return task

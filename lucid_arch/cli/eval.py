"""The ``eval`` task: score a trained model on labelled data, reported as the app's job.

This module maps ``task.*`` (typed by lucid_arch/config/eval_schema.py) onto lucid_arch.evaluation,
turns bad data and weights into the app's one-paragraph config errors (naming ``task.KEY`` or
``model.pretrained``), and writes what mmsegmentation's test.py shows and more: the per-class
table with the class names and the summary table on stdout, per_class.csv, confusion.json (raw
counts), confusion.png and, in summary.json, the figures a sweep's table compares. A detector is
scored by COCO's evaluation instead (eval_detection.py).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from ..config import ConfigError, ModelConfig, Problem
from ..config.eval_schema import augmented, check_eval, resolve_data
from ..config.train_schema import TrainConfig, check_train
from ..report.class_table import class_table, write_class_csv
from ..report.tables import Table, show
from .from_run import trained_run
from .brief_output import said_in_brief
from .jobs import Job, write_json

PER_CLASS = "per_class.csv"
CONFUSION = "confusion.json"
CONFUSION_PNG = "confusion.png"
def run(cfg: DictConfig, model_cfg: ModelConfig, job: Job) -> dict[str, Any]:
    from ..modeling.spec import is_segmentation
    from ..runs import Preprocessing

    from ..training.detection_objective import detection_kind
    from . import eval_detection

    task = OmegaConf.to_object(cfg.task)
    check_eval(task)
    trained = trained_run(model_cfg, job, "eval", "scores a trained model")
    segmentation = is_segmentation(model_cfg)
    detection = detection_kind(model_cfg)
    if detection:
        eval_detection.check_settings(task, model_cfg)
    else:
        _check_model(task, model_cfg, segmentation)
    prep = trained.preprocessing if trained else Preprocessing.default(model_cfg)
    fallback = {"image_size": list(prep.image_size), "mean": list(prep.mean), "std": list(prep.std)}
    data, own = resolve_data(task.data, (trained.task.get("data") if trained else None), fallback)
    _check_data(data, segmentation)
    if detection:
        eval_detection.check_data(data)
    size = data.image_size if isinstance(data.image_size, (list, tuple)) else [data.image_size, data.image_size]
    prep = dataclasses.replace(prep, image_size=(int(size[0]), int(size[1])), mean=tuple(data.mean), std=tuple(data.std))
    if detection:
        return _detect(task, model_cfg, job, data, own, prep, trained, detection)
    return _evaluate(task, model_cfg, job, data, own, prep, segmentation, trained)


def _device(task: Any) -> Any:
    from ..training.distributed import pick_device

    try:
        return pick_device(task.device)
    except (ValueError, RuntimeError) as error:
        raise ConfigError([Problem("task.device", f"task.device = {task.device!r}: {error}")], "task=eval") from None


def _built(model_cfg: ModelConfig, device: Any) -> Any:
    """The model with its weights, in eval mode on ``device``; bad weights are a usage error naming model.pretrained."""
    from ..modeling.builder import build_model
    from ..weights import CheckpointError

    try:
        return build_model(model_cfg).to(device).eval()
    except (CheckpointError, FileNotFoundError) as error:
        raise ConfigError([Problem("model.pretrained", str(error))], model_cfg.name) from error


def _detect(task: Any, model_cfg: ModelConfig, job: Job, data: Any, own: bool, prep: Any, trained: Any, kind: str) -> dict[str, Any]:
    """A detector's evaluation (eval_detection.py), with task.threads and task.device as for the others."""
    import torch

    from . import eval_detection

    threads = torch.get_num_threads()
    if task.threads:
        torch.set_num_threads(task.threads)
    try:
        device = _device(task)
        return eval_detection.evaluate(task, model_cfg, job, data, own, prep, trained, kind, device, _built(model_cfg, device))
    finally:
        torch.set_num_threads(threads)


def _check_model(task: Any, model_cfg: ModelConfig, segmentation: bool) -> None:
    if model_cfg.features_only:
        raise ConfigError([Problem("model.features_only", "model.features_only = true: task=eval scores a classifier or a "
                                   "segmentation model, and a backbone alone predicts no classes; evaluate a whole "
                                   "architecture (e.g. model=segformer_b0) or its training run.")], "task=eval")
    if segmentation:
        return
    asked = [key for key, value in (("mode", task.mode != "whole"), ("flip", task.flip), ("scales", task.scales is not None)) if value]
    if asked:
        raise ConfigError([Problem(f"task.{key}", f"task.{key} is segmentation's test-time setting, and {model_cfg.name} is a "
                                   f"classifier (its images are centre-cropped as in validation); drop task.{key}.") for key in asked],
                          "task=eval")


def _check_data(data: Any, segmentation: bool) -> None:
    """The data keys by training's own rules (the same keys and messages), and masks for a segmentation model only."""
    try:
        check_train(TrainConfig(data=data))
    except ConfigError as error:
        raise ConfigError(error.problems, "task=eval") from None
    if data.dataset != "folder" or segmentation == bool(data.masks):
        return
    why = ("task.data.masks is not set, and a segmentation model is scored pixel by pixel against label maps: with "
           "dataset=folder set task.data.masks=DIR, the folder of PNG label maps laid out like task.data.root "
           "(root/a/x.jpg -> masks/a/x.png; 255 = ignore)." if segmentation else
           f"task.data.masks = {data.masks!r} gives label maps, but the model is a classifier (no decode head), scored on "
           f"task.data.root's class sub-folders: drop task.data.masks.")
    raise ConfigError([Problem("task.data.masks", why)], "task=eval")


def _evaluate(task: Any, model_cfg: ModelConfig, job: Job, data: Any, own: bool, prep: Any, segmentation: bool,
              trained: Any) -> dict[str, Any]:
    import torch

    from ..data import DatasetError
    from ..evaluation import eval_set, evaluate_classification, evaluate_segmentation, resolve_split
    from ..evaluation.data import model_classes, nothing_scored
    from ..inference.segment import SegmentOptions, pair
    from ..report.ticker import Ticker

    threads = torch.get_num_threads()
    if task.threads:
        torch.set_num_threads(task.threads)
    try:
        device = _device(task)
        split = resolve_split(task.split, data, own)
        whose = f"the run {trained.root}" if trained else f"{model_cfg.name} ({model_cfg.pretrained})"
        expected = list(trained.classes) if trained else [str(i) for i in range(model_cfg.num_classes)]
        if (segmentation and data.dataset == "folder" and data.masks and data.num_classes is None
                and not (Path(data.masks).expanduser() / "classes.txt").is_file()):
            data = dataclasses.replace(data, num_classes=len(expected))  # label maps without names: the model's classes
        try:
            found = eval_set(data, segmentation, split, task.max_images)
            classes = model_classes(found, expected, _numbered(expected), whose)
        except DatasetError as error:
            raise ConfigError([Problem(error.key, str(error))], "task=eval") from error
        model = _built(model_cfg, device)
        workers = int(data.num_workers)
        aug_name = augmented(task) if segmentation else None
        with Ticker(len(found.dataset), label=f"eval {split}", unit="images", mode=task.progress, every=task.log_seconds) as ticker:
            tick = lambda n, note: ticker.advance(n, note)  # noqa: E731
            note_every = min(1.0, task.log_seconds)  # the running figures a progress line shows, at most this old
            try:
                if segmentation:
                    crop, stride = pair(task.crop), pair(task.stride)
                    single = SegmentOptions(mode=task.mode, crop=crop, stride=stride, batch_size=task.batch_size)
                    aug = (SegmentOptions(mode=task.mode, crop=crop, stride=stride, flip=task.flip, scales=tuple(task.scales or (1.0,)),
                                          batch_size=task.batch_size) if aug_name else None)
                    result = evaluate_segmentation(model, found.dataset, prep, len(classes), single, aug, workers, tick, note_every)
                else:
                    result = evaluate_classification(model, found.dataset, prep, len(classes), task.batch_size, workers, tick, note_every)
            except DatasetError as error:  # a label map with ids the classes do not cover, met while reading
                raise ConfigError([Problem(error.key, str(error))], "task=eval") from error
        if result.images == 0 or int(result.confusion.sum()) == 0:
            error = nothing_scored(found, result.images, result.unreadable)
            raise ConfigError([Problem(error.key if result.images == 0 else "task.data.masks", str(error))], "task=eval")
    finally:
        torch.set_num_threads(threads)
    return _report(task, model_cfg, job, data, found, classes, prep, segmentation, result, aug_name, trained)


def _numbered(names: list[str]) -> bool:
    return all(name == str(i) for i, name in enumerate(names))


def _report(task: Any, model_cfg: ModelConfig, job: Job, data: Any, found: Any, classes: list[str], prep: Any,
            segmentation: bool, result: Any, aug_name: Optional[str], trained: Any) -> dict[str, Any]:
    from ..evaluation import classification_metrics, per_class, segmentation_metrics
    from ..perf.analysis import analyze

    report = analyze(model_cfg)
    if segmentation:
        scores = segmentation_metrics(result.confusion)
        if result.confusion_aug is not None:
            scores.update(segmentation_metrics(result.confusion_aug, f" ({aug_name})"))
    else:
        scores = classification_metrics(result.confusion, result.top5_correct)
    metrics = {"params": report.params, "gflops": round(report.gflops, 4), **{k: round(v, 4) for k, v in scores.items()},
               "images": result.images, "eval img/s": round(result.images_per_second, 1), "eval s": round(result.seconds, 1)}
    figures = per_class(classes, result.confusion, segmentation, result.confusion_aug, aug_name or "")
    files = _write_files(task, job.output_dir, classes, figures, result, segmentation, aug_name, found.split)
    record = {
        "metrics": metrics,
        "eval": {
            "kind": "segmentation" if segmentation else "classification",
            "split": found.split,
            "data": {"dataset": data.dataset, "root": data.root, "masks": data.masks, "seed": data.seed},
            "images": result.images,
            "unreadable": result.unreadable,
            "classes": classes,
            "preprocessing": prep.to_dict(),
            **({"mode": task.mode, **_window(task, prep), "flip": task.flip,
                "scales": list(task.scales) if task.scales else None, "augmentation": aug_name} if segmentation else {}),
            "per_class": figures.to_dict(),
            "files": files,
        },
    }
    _show(model_cfg, job, record, figures, found, trained, segmentation, aug_name)
    return record


def _window(task: Any, prep: Any) -> dict[str, Any]:
    """Slide mode's crop and stride as used (defaults filled in from the training size); None in whole mode."""
    if task.mode != "slide":
        return {"crop": None, "stride": None}
    from ..inference.segment import SegmentOptions, pair

    crop, stride = SegmentOptions(mode="slide", crop=pair(task.crop), stride=pair(task.stride)).window(prep)
    return {"crop": list(crop), "stride": list(stride)}


def _write_files(task: Any, out: Path, classes: list[str], figures: Any, result: Any, segmentation: bool,
                 aug_name: Optional[str], split: str) -> dict[str, str]:
    """per_class.csv, confusion.json and (unless switched off) confusion.png in the job's directory."""
    out.mkdir(parents=True, exist_ok=True)
    write_class_csv(figures, out / PER_CLASS)
    unit = "pixels" if segmentation else "images"
    confusion = {"classes": classes, "rows": "true class (label)", "columns": "predicted class", "unit": unit,
                 "ignore_index": 255, "counts": result.confusion.tolist(), "augmentation": aug_name}
    if result.confusion_aug is not None:
        confusion["counts_augmented"] = result.confusion_aug.tolist()
    write_json(out / CONFUSION, confusion)
    files = {"per_class": PER_CLASS, "confusion": CONFUSION}
    if task.confusion_plot:
        from ..report.confusion_plot import write_confusion_png

        shown = result.confusion_aug if result.confusion_aug is not None else result.confusion
        which = aug_name if result.confusion_aug is not None else ("single-scale" if segmentation else "")
        title = (f"Confusion matrix, row-normalised ({', '.join(filter(None, [which, f'{split} split']))}): "
                 f"{int(shown.sum()):,} labelled {unit}")
        write_confusion_png(shown.tolist(), classes, out / CONFUSION_PNG, title, unit)
        files["confusion_png"] = CONFUSION_PNG
    return files


def _pct(value: Optional[float]) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def _show(model_cfg: ModelConfig, job: Job, record: dict[str, Any], figures: Any, found: Any, trained: Any, segmentation: bool,
          aug_name: Optional[str]) -> None:
    """mmseg's two tables (per class, then the summary) and notes saying what was scored, how and where it went."""
    metrics, info = record["metrics"], record["eval"]
    if segmentation:
        score = f"mIoU {metrics['mIoU']:.2%}, aAcc {metrics['aAcc']:.2%}, mAcc {metrics['mAcc']:.2%}"
        if aug_name:
            score += f"; {aug_name}: mIoU {metrics[f'mIoU ({aug_name})']:.2%}"
    else:
        score = f"top-1 {metrics['top1']:.2%}" + (f", top-5 {metrics['top5']:.2%}" if "top5" in metrics else "") + f", mAcc {metrics['mAcc']:.2%}"
    scored = f"{info['images']:,} images of {found.where} (split: {found.split})"
    if said_in_brief(job, record, f"{model_cfg.name}: {score} on {scored}"):
        return
    show(class_table(figures, "per class results:"), job.format)
    if segmentation:
        rows = [["single-scale", *(_pct(metrics[k]) for k in ("aAcc", "mIoU", "mAcc"))]]
        if aug_name:
            rows.append([aug_name, *(_pct(metrics[f"{k} ({aug_name})"]) for k in ("aAcc", "mIoU", "mAcc"))])
        columns = ["test", "aAcc (%)", "mIoU (%)", "mAcc (%)"]
    else:
        keys = [k for k in ("top1", "top5", "mAcc") if k in metrics]
        rows = [[_pct(metrics[k]) for k in keys]]
        columns = [{"top1": "top-1 (%)", "top5": "top-5 (%)", "mAcc": "mAcc (%)"}[k] for k in keys]
    unusable = f"; {info['unreadable']} unusable, named above" if info["unreadable"] else ""
    notes = [("model", f"{model_cfg.name}, " + (f"run {trained.root} ({model_cfg.checkpoint} weights)" if trained else str(model_cfg.pretrained))),
             ("data", f"{scored}{unusable} ({metrics['eval img/s']:,.1f} img/s)")]
    if segmentation:
        notes.append(("test", f"{info['mode']} mode, shorter side to {min(info['preprocessing']['image_size'])} px; scored at "
                              "each image's own size against its label map, 255 ignored"))
    else:
        notes.append(("test", f"centre crop {info['preprocessing']['image_size'][0]}x{info['preprocessing']['image_size'][1]} px, as in validation"))
    notes.append(("written to", f"{job.output_dir}: {', '.join(info['files'].values())}"))
    right = frozenset(range(1, len(columns))) if segmentation else frozenset(range(len(columns)))
    show(Table(title="Summary:", columns=columns, rows=rows, right=right, notes=notes), job.format)

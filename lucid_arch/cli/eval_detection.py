"""``task=eval`` for a detector: COCO's box AP (and mask AP) on a split, reported as mmdetection's test.py does.

eval.py hands a detector here once the data is resolved (the same ``task.data`` keys, null for the
run's own). The split's images go through lucid_arch.evaluation.detection_runner; stdout shows
the per-class AP table with the class names and the summary (AP, AP50, AP75, APs, APm, APl);
the job's directory gets per_class.csv and detections.json (every detection in COCO's result
format, with its class name), and summary.json the figures a sweep's table compares
(box_AP ..., mask_AP ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..config import ConfigError, ModelConfig, Problem
from ..report.class_table import ClassFigures, class_table, write_class_csv
from ..report.tables import Table, show
from .brief_output import said_in_brief
from .jobs import Job

PER_CLASS = "per_class.csv"
DETECTIONS = "detections.json"
SEGMENTATION_ONLY = ("mode", "flip", "scales")


def check_settings(task: Any, model_cfg: ModelConfig) -> None:
    """Segmentation's test-time settings, set for a detector: say so rather than ignore them."""
    asked = [key for key, value in (("mode", task.mode != "whole"), ("flip", task.flip), ("scales", task.scales is not None)) if value]
    if asked:
        raise ConfigError([Problem(f"task.{key}", f"task.{key} is segmentation's test-time setting, and {model_cfg.name} is a "
                                   f"detector (each image is resized to fit the test scale, task.data.image_size); drop task.{key}.")
                           for key in asked], "task=eval")


def check_data(data: Any) -> None:
    if data.dataset not in ("shapes", "coco"):
        raise ConfigError([Problem("task.data.dataset", f"task.data.dataset = {data.dataset!r}: a detector is scored against "
                                   "boxes: the built-in shapes (dataset=shapes) or a COCO-format set (task.data.dataset=coco "
                                   "task.data.root=IMAGES task.data.annotations=instances.json).")], "task=eval")


def evaluate(task: Any, model_cfg: ModelConfig, job: Job, data: Any, own: bool, prep: Any, trained: Any, kind: str,
             device: Any, model: Any) -> dict[str, Any]:
    """Score ``model`` (built, on ``device``) on ``data``'s split and report it."""
    from ..data import DatasetError, ShapesDataset
    from ..data.coco import eval_parts
    from ..evaluation import resolve_split
    from ..evaluation.data import EvalSet, model_classes
    from ..evaluation.detection_runner import DetectionParts, evaluate_detection
    from ..report.ticker import Ticker

    masks = kind == "mask_rcnn"
    split = resolve_split(task.split, data, own)
    whose = f"the run {trained.root}" if trained else f"{model_cfg.name} ({model_cfg.pretrained})"
    expected = list(trained.classes) if trained else [str(i) for i in range(model_cfg.num_classes)]
    size = data.image_size if isinstance(data.image_size, int) else tuple(int(v) for v in data.image_size)
    category_ids = None
    try:
        if data.dataset == "shapes":
            counts = {"train": int(data.num_train), "val": int(data.num_val)}
            parts = [ShapesDataset(counts[s], size, int(data.seed), s, detection=True) for s in (("train", "val") if split == "all" else (split,))]
            where, key = f"shapes (seed {data.seed})", "task.data.dataset"
        else:
            pad = [min(255, max(0, round(float(m) * 255))) for m in data.mean]
            parts = eval_parts(data, split, masks, pad)
            if not parts:
                raise DatasetError(f"The {split} split of {data.annotations} holds no image; choose another task.split.")
            category_ids = parts[0].instances.category_ids
            where, key = f"{data.root} with {data.val_annotations if split == 'val' and data.val_annotations else data.annotations}", "task.data.annotations"
        found = EvalSet(DetectionParts(parts, task.max_images), list(parts[0].classes), split, where, key, False)
        classes = model_classes(found, expected, all(name == str(i) for i, name in enumerate(expected)), whose)
    except DatasetError as error:
        raise ConfigError([Problem(getattr(error, "key", "task.data.root"), str(error))], "task=eval") from error
    with Ticker(len(found.dataset), label=f"eval {split}", unit="images", mode=task.progress, every=task.log_seconds) as ticker:
        result = evaluate_detection(model, found.dataset, prep, classes, masks, task.batch_size, int(data.num_workers),
                                    lambda n, note: ticker.advance(n, note), category_ids)
    if result.images == 0:
        raise ConfigError([Problem(key, f"Every one of the {result.unreadable} images of {where} (split: {split}) was unusable "
                                   "(each was named on stderr). Check the files and that PIL decodes them, or point the data "
                                   "settings at an intact set.")], "task=eval")
    return _report(task, model_cfg, job, data, found, classes, prep, result, trained, masks)


def _report(task: Any, model_cfg: ModelConfig, job: Job, data: Any, found: Any, classes: list[str], prep: Any, result: Any,
            trained: Any, masks: bool) -> dict[str, Any]:
    from ..evaluation.detection import metric_names
    from ..perf.analysis import analyze
    from ..safe_io import write_text_atomic

    report = analyze(model_cfg)
    figures = ClassFigures(names=classes, scores=result.per_class, counts={"objects": result.objects, "detections": result.found})
    out = Path(job.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_class_csv(figures, out / PER_CLASS)
    write_text_atomic(out / DETECTIONS, json.dumps(result.results) + "\n")
    metrics = {"params": report.params, "gflops": round(report.gflops, 4),
               **{k: None if result.figures[k] is None else round(result.figures[k], 4) for k in metric_names(masks)},
               "images": result.images, "eval img/s": round(result.images_per_second, 1), "eval s": round(result.seconds, 1)}
    record = {
        "metrics": metrics,
        "eval": {
            "kind": "detection",
            "split": found.split,
            "data": {"dataset": data.dataset, "root": data.root, "annotations": data.annotations,
                     "val_annotations": data.val_annotations, "seed": data.seed},
            "images": result.images,
            "unreadable": result.unreadable,
            "classes": classes,
            "preprocessing": prep.to_dict(),
            "detections": len(result.results),
            "per_class": figures.to_dict(),
            "files": {"per_class": PER_CLASS, "detections": DETECTIONS},
        },
    }
    _show(model_cfg, job, record, figures, found, trained, masks)
    return record


def _pct(value: Any) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _show(model_cfg: ModelConfig, job: Job, record: dict[str, Any], figures: ClassFigures, found: Any, trained: Any, masks: bool) -> None:
    metrics, info = record["metrics"], record["eval"]
    score = f"box AP {_pct(metrics['box_AP'])}, AP50 {_pct(metrics['box_AP50'])}" + (f", mask AP {_pct(metrics['mask_AP'])}" if masks else "")
    scored = f"{info['images']:,} images of {found.where} (split: {found.split})"
    if said_in_brief(job, record, f"{model_cfg.name}: {score} on {scored}"):
        return
    show(class_table(figures, "per class results (AP@[.5:.95], %):"), job.format)
    rows = [[kind, *(_pct(metrics[f"{kind}_{name}"]) for name in ("AP", "AP50", "AP75", "APs", "APm", "APl"))]
            for kind in (("box", "mask") if masks else ("box",))]
    unusable = f"; {info['unreadable']} unusable, named above" if info["unreadable"] else ""
    size = info["preprocessing"]["image_size"]
    notes = [("model", f"{model_cfg.name}, " + (f"run {trained.root} ({model_cfg.checkpoint} weights)" if trained else str(model_cfg.pretrained))),
             ("data", f"{scored}{unusable} ({metrics['eval img/s']:,.1f} img/s)"),
             ("test", f"each image resized keep-ratio to fit {size[0]}x{size[1]} px; scored at its own size by pycocotools' "
                      f"COCOeval, at most 100 detections per image"),
             ("written to", f"{job.output_dir}: {PER_CLASS}, {DETECTIONS} ({info['detections']:,} detections)")]
    columns = ["", "AP", "AP50", "AP75", "APs", "APm", "APl"]
    show(Table(title="Summary (COCO, %):", columns=columns, rows=rows, right=frozenset(range(1, 7)), notes=notes), job.format)

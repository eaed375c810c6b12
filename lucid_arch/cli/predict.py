"""The ``predict`` task: a trained model's predictions for a file, a folder or a glob.

This module maps ``task.*`` (typed by lucid_arch/config/predict_schema.py) onto the inference
core (lucid_arch/inference: a Predictor, written into a folder by to_folder.py), turns what a
user got wrong into the app's one-paragraph config errors (naming ``task.KEY`` or
``model.pretrained``), shows progress on stderr and a table on stdout, and returns what
summary.json keeps: the output folder, the counts, the settings and the class names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..config import ConfigError, ModelConfig, Problem
from ..config.export_schema import image_size
from ..config.predict_schema import PredictConfig, check_predict
from ..report.tables import Table, cell, show
from .from_run import trained_run
from .brief_output import said_in_brief
from .jobs import Job

SHOWN_ROWS = 20  # a table's rows before "... N more": the files hold them all

def run(cfg: DictConfig, model_cfg: ModelConfig, job: Job) -> dict[str, Any]:
    task = OmegaConf.to_object(cfg.task)
    check_predict(task)
    run_info = trained_run(model_cfg, job, "predict", "predicts with a trained model")
    from ..inference.inputs import InputError, list_inputs
    from ..runs import Preprocessing
    kind = run_info.kind if run_info else ("detection" if model_cfg.detector.type != "none" else
                                           "segmentation" if model_cfg.decode_head.type != "none" else "classification")
    _check_for_kind(task, kind, model_cfg)
    output = (Path(task.output).expanduser() if task.output else job.output_dir).resolve()
    try:
        sources = list_inputs(task.input)
    except InputError as error:
        raise ConfigError([Problem("task.input", str(error))], model_cfg.name) from error
    sources, inside = _outside(sources, output)
    if not sources:
        raise ConfigError([Problem("task.input", f"task.input = {task.input}: every image it names lies inside task.output "
                                   f"({output}), where predictions are written; point one of them elsewhere.")], model_cfg.name)
    predictor = _predictor(task, model_cfg, run_info, Preprocessing.default(model_cfg))
    report = _predict(task, predictor, sources, output, model_cfg, job)
    record = _record(task, report, predictor, inside)
    _show(record, report, predictor, job)
    return record


def _check_for_kind(task: Any, kind: str, model_cfg: ModelConfig) -> None:
    """Settings that only one kind of model uses, set for the other: say so rather than ignore them."""
    if kind == "detection":
        set_here = [key for key, unused in (("mode", task.mode != "whole"), ("flip", task.flip), ("scales", list(task.scales) != [1.0]),
                                             ("top_k", task.top_k != 5)) if unused]
        problems = [Problem(f"task.{key}", f"task.{key}: {model_cfg.name} is a detector, which sees each whole image resized to "
                            "fit its training size; slide mode, flip and scales are a segmentation model's, top_k a "
                            "classifier's. Drop the setting (task.score_threshold chooses which detections are kept).")
                    for key in set_here]
        if problems:
            raise ConfigError(problems, model_cfg.name)
        return
    if task.score_threshold != PredictConfig.score_threshold:
        raise ConfigError([Problem("task.score_threshold", f"task.score_threshold: {model_cfg.name} is a {kind} model, and only "
                                   "a detector's boxes have scores to keep or drop. Drop the setting.")], model_cfg.name)
    if kind != "classification":
        return
    set_here = [key for key, unused in (("mode", task.mode != "whole"), ("flip", task.flip), ("scales", list(task.scales) != [1.0]),
                                         ("overlay", not task.overlay)) if unused]
    problems = [Problem(f"task.{key}", f"task.{key}: {model_cfg.name} is a classifier, which sees one centre crop as in validation; "
                        "slide mode, flip, scales and overlays are for segmentation models. Drop the setting.") for key in set_here]
    if problems:
        raise ConfigError(problems, model_cfg.name)


def _outside(sources: list, output: Path) -> tuple[list, int]:
    """The sources not inside the output folder (a rerun must not predict on its own outputs), and how many were."""
    out = output.resolve()
    keep = [s for s in sources if out not in s.path.resolve().parents]
    return keep, len(sources) - len(keep)


def _predictor(task: Any, model_cfg: ModelConfig, run_info: Any, default_prep: Any) -> Any:
    import torch

    from ..inference import Predictor
    from ..inference.predictor import pick_device
    from ..modeling.builder import build_model
    from ..weights import CheckpointError

    if task.threads:
        torch.set_num_threads(task.threads)
    try:
        device = pick_device(task.device)
    except ValueError as error:
        raise ConfigError([Problem("task.device", f"task.{error}")], model_cfg.name) from error
    try:
        model = build_model(model_cfg)
    except (CheckpointError, FileNotFoundError) as error:
        raise ConfigError([Problem("model.pretrained", str(error))], model_cfg.name) from error
    try:
        return Predictor(
            model,
            classes=run_info.classes if run_info else None,
            preprocessing=run_info.preprocessing if run_info else default_prep,
            device=str(device),
            mode=task.mode,
            crop=image_size(task.crop) if task.crop is not None else None,
            stride=image_size(task.stride) if task.stride is not None else None,
            flip=task.flip,
            scales=list(task.scales),
            top_k=task.top_k,
            batch_size=task.batch_size,
            score_threshold=task.score_threshold,
        )
    except ValueError as error:  # the run's class names do not fit its model
        raise ConfigError([Problem("model.pretrained", str(error))], model_cfg.name) from error


def settings_of(task: Any, predictor: Any, model_cfg: ModelConfig) -> dict[str, Any]:
    """What decides the predictions, compared with a previous run's before its outputs are reused."""
    weights = Path(model_cfg.pretrained).expanduser().resolve()
    common = {"model": model_cfg.name, "weights_sha256": _sha256(weights) if weights.is_file() else str(weights),
              "classes": len(predictor.classes), "preprocessing": predictor.preprocessing.to_dict()}
    if predictor.kind == "classification":
        return {**common, "top_k": task.top_k}
    if predictor.kind == "detection":
        return {**common, "score_threshold": task.score_threshold, "drawn_opacity": task.opacity if task.overlay else None}
    crop, stride = predictor.options.window(predictor.preprocessing)
    return {**common, "mode": task.mode, "crop": list(crop) if task.mode == "slide" else None,
            "stride": list(stride) if task.mode == "slide" else None, "flip": task.flip, "scales": list(task.scales),
            "overlay_opacity": task.opacity if task.overlay else None}


def _sha256(path: Path) -> str:
    """The weights' identity: a retrained run at the same path is another model; a copied one is the same."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _predict(task: Any, predictor: Any, sources: list, output: Path, model_cfg: ModelConfig, job: Job) -> Any:
    from functools import partial

    from ..inference.to_folder import FolderOptions, StaleOutputError, predict_to_folder
    from ..report.ticker import Ticker

    progress = "none" if job.format == "json" and task.progress == "auto" else task.progress
    ticker = partial(Ticker, label="predict", unit="images", mode=progress, every=task.log_seconds)
    options = FolderOptions(output=output, overlay=task.overlay, opacity=task.opacity, skip_existing=task.skip_existing,
                            formats=tuple(task.formats))
    try:
        return predict_to_folder(predictor, sources, options, settings_of(task, predictor, model_cfg), ticker,
                                 about={"weights": str(Path(model_cfg.pretrained).expanduser().resolve())})
    except StaleOutputError as error:
        raise ConfigError([Problem(error.key, str(error))], model_cfg.name) from error


def _record(task: Any, report: Any, predictor: Any, inside: int) -> dict[str, Any]:
    seg = predictor.kind == "segmentation"
    if predictor.kind == "detection":
        files = ["detections.json"] + (["drawn/"] if task.overlay else [])
    else:
        files = (["predictions.json", "legend.png", "masks/"] + (["overlays/"] if task.overlay else []) if seg
                 else [{"csv": "predictions.csv", "json": "predictions.json"}[f] for f in task.formats])
    predict = {
        "output": str(report.output),
        "kind": predictor.kind,
        "input": str(task.input),
        "images": len(report.entries),
        "predicted": report.predicted,
        "skipped_existing": report.skipped,
        "unreadable": len(report.unreadable),
        "unreadable_files": report.unreadable,
        "inside_output": inside,
        "written": len(report.written),
        "files": files,
        "classes": list(predictor.classes),
        "preprocessing": predictor.preprocessing.to_dict(),
        "device": str(predictor.device),
    }
    if predictor.kind == "detection":
        predict["score_threshold"] = task.score_threshold
        predict["detections"] = sum(len(e["detections"]) for e in report.entries)
    elif seg:
        predict.update(mode=task.mode, flip=task.flip, scales=list(task.scales))
        if task.mode == "slide":
            crop, stride = predictor.options.window(predictor.preprocessing)
            predict.update(crop=list(crop), stride=list(stride))
    else:
        predict["top_k"] = min(task.top_k, len(predictor.classes))
    metrics = {"images": report.predicted, "skipped": report.skipped, "unreadable": len(report.unreadable),
               "img/s": round(report.images_per_second, 2)}
    return {"metrics": metrics, "predict": predict}


def _headline(record: dict[str, Any]) -> str:
    p = record["predict"]
    text = f"predict: {p['predicted']} images predicted into {p['output']}"
    if "detections" in p:
        text += f" ({p['detections']} detections)"
    if p["skipped_existing"]:
        text += f", {p['skipped_existing']} skipped (outputs already there)"
    if p["unreadable"]:
        text += f", {p['unreadable']} unreadable"
    return text


def _show(record: dict[str, Any], report: Any, predictor: Any, job: Job) -> None:
    if said_in_brief(job, record, _headline(record)):
        return
    p = record["predict"]
    notes = [("written to", p["output"])]
    if not report.written:
        notes.append(("nothing new", "every output was already there (task.skip_existing); no file was written"))
    if p["unreadable"]:
        notes.append(("unreadable", ", ".join(u["input"] for u in report.unreadable[:5]) + (" ..." if p["unreadable"] > 5 else "")))
    if p["inside_output"]:
        notes.append(("left out", f"{p['inside_output']} inputs inside the output folder"))
    table = (_class_table(report, predictor) if predictor.kind == "segmentation" else
             _detection_table(report, predictor) if predictor.kind == "detection" else _top_table(report))
    table.title, table.notes = _headline(record), notes + table.notes
    show(table, job.format)


def _class_table(report: Any, predictor: Any) -> Table:
    """Per class found: in how many images, and its share of all their pixels."""
    images, pixels, total = {}, {}, 0
    for entry in report.entries:
        area = entry["size"][0] * entry["size"][1]
        total += area
        for c in entry["classes"]:
            images[c["id"]] = images.get(c["id"], 0) + 1
            pixels[c["id"]] = pixels.get(c["id"], 0) + c["share"] * area
    order = sorted(pixels, key=lambda i: (-pixels[i], i))
    rows = [[str(i), predictor.classes[i], cell(images[i]), f"{pixels[i] / max(total, 1):.1%}"] for i in order]
    notes = [("more", f"{len(rows) - SHOWN_ROWS} more classes in predictions.json")] if len(rows) > SHOWN_ROWS else []
    return Table(title="", columns=["id", "class", "images", "pixels"], rows=rows[:SHOWN_ROWS], right=frozenset({0, 2, 3}), notes=notes)


def _detection_table(report: Any, predictor: Any) -> Table:
    """Per class detected: how many detections, in how many images, and their best score."""
    found: dict[int, list[float]] = {}
    images: dict[int, int] = {}
    for entry in report.entries:
        for c in {d["id"] for d in entry["detections"]}:
            images[c] = images.get(c, 0) + 1
        for d in entry["detections"]:
            found.setdefault(d["id"], []).append(d["score"])
    order = sorted(found, key=lambda i: (-len(found[i]), i))
    rows = [[str(i), predictor.classes[i], cell(len(found[i])), cell(images[i]), f"{max(found[i]):.3f}"] for i in order]
    notes = [("kept", f"detections scoring {predictor.score_threshold:g} or more (task.score_threshold)")]
    if len(rows) > SHOWN_ROWS:
        notes.append(("more", f"{len(rows) - SHOWN_ROWS} more classes in detections.json"))
    return Table(title="", columns=["id", "class", "detections", "images", "best score"], rows=rows[:SHOWN_ROWS],
                 right=frozenset({0, 2, 3, 4}), notes=notes)


def _top_table(report: Any) -> Table:
    rows = [[e["input"], e["top"][0]["name"], f"{e['top'][0]['score']:.3f}"] for e in report.entries]
    notes = [("more", f"{len(rows) - SHOWN_ROWS} more images in the predictions files")] if len(rows) > SHOWN_ROWS else []
    return Table(title="", columns=["image", "class", "score"], rows=rows[:SHOWN_ROWS], right=frozenset({2}), notes=notes)

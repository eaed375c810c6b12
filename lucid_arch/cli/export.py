"""The ``export`` task: lucid_arch.export_model for the job's model, reported as the app's job.

This module maps ``task.*`` (typed by lucid_arch/config/export_schema.py) onto export_model,
turns its setting errors into the app's one-paragraph config errors (naming ``task.KEY``),
prints progress on stderr and the checks as a table, and returns what summary.json keeps:
the files written (names relative to the job's directory), the dynamic ranges, every check,
the metadata both files carry (class names and preprocessing: the training run's, with
``model.pretrained=RUN``), and as sweep columns the parameters, GFLOPs and each runtime's
largest difference.
"""

from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..config import ConfigError, ModelConfig, Problem
from ..config.export_schema import check_export
from ..extras import require
from ..report.tables import Table, show
from .brief_output import said_in_brief
from .jobs import Job


def run(cfg: DictConfig, model_cfg: ModelConfig, job: Job) -> dict[str, Any]:
    task = OmegaConf.to_object(cfg.task)
    check_export(task)
    if "onnx" in task.formats:
        require("export", "task=export with task.formats including onnx")  # before the model is built
    import torch

    from ..export import ExportSettingError, VerificationError, export_model
    from ..export.detection import DetectorExportRefused
    from ..export.api import settings_from_task
    from ..export.metadata import origin_of
    from ..modeling.builder import build_model
    from ..perf.analysis import analyze
    from ..weights import CheckpointError

    if task.threads:
        torch.set_num_threads(task.threads)
    try:
        model = build_model(model_cfg)
    except (CheckpointError, FileNotFoundError) as error:
        raise ConfigError([Problem("model.pretrained", str(error))], model_cfg.name) from error
    report = analyze(model_cfg)
    cost = {"params": report.params, "gflops": round(report.gflops, 4)}
    progress = (lambda line: None) if job.format == "json" else (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        result = export_model(model, job.output_dir, progress=progress, origin=origin_of(model_cfg), **settings_from_task(task))
    except ExportSettingError as error:
        raise ConfigError([Problem(f"task.{error.key}", f"task.{error.key}: {error}")], model_cfg.name) from error
    except DetectorExportRefused as error:  # a Mask R-CNN: why its post-processing cannot be exported
        raise ConfigError([Problem(error.key, str(error))], model_cfg.name) from error
    except VerificationError as error:
        error.record = _record(error.result, cost)  # summary.json names the files and the checks that failed
        raise
    record = _record(result, cost)
    _show(result, record, job)
    return record


def _record(result: Any, cost: dict[str, Any]) -> dict[str, Any]:
    metrics = dict(cost)
    for runtime in ("onnxruntime", "torch"):
        diff = result.max_abs_diff(runtime)
        if diff is not None:
            metrics[f"{runtime} max|diff|"] = float(f"{diff:.3g}")
    metrics["export s"] = round(sum(result.seconds.values()), 1)
    return {"metrics": metrics, "export": result.to_dict()}


def _show(result: Any, record: dict[str, Any], job: Job) -> None:
    files = ", ".join(p.name for p in result.files.values())
    headline = f"{result.name}: {files}" + (f" (ONNX opset {result.opset})" if result.opset else "") + f"; {result.shapes.text()}"
    worst = max((c.max_abs_diff for c in result.checks), default=None)
    checked = f", {len(result.checks)} checks, max |diff| {worst:.2e}" if worst is not None else ", not checked"
    if said_in_brief(job, record, headline + checked):
        return
    table = Table(
        title=headline,
        columns=["runtime", "file", "input", "max |diff|", "result"],
        rows=[[c.runtime, c.file, c.input, f"{c.max_abs_diff:.2e}", "ok" if c.ok else f"> {c.atol:g}"] for c in result.checks],
        right=frozenset({3}),
        notes=[("written to", str(job.output_dir)), ("carries", _carried(result.metadata)),
               ("atol", f"{result.checks[0].atol:g} (fp32), against eager PyTorch") if result.checks else ("checks", "none (task.verify=false)")],
    )
    show(table, job.format)


def _carried(metadata: dict[str, Any]) -> str:
    """The metadata in a few words: task, classes, preprocessing, the run."""
    classes = metadata["lucid_arch.classes"]
    prep = metadata["lucid_arch.preprocessing"]
    source = metadata["lucid_arch.source"] or {}
    names = ", ".join(classes[:5]) + (", ..." if len(classes) > 5 else "")
    words = [metadata["lucid_arch.task"] + (f", {len(classes)} classes ({names})" if classes else ""),
             f"{prep['resize']} {prep['image_size'][0]}x{prep['image_size'][1]}"]
    if source.get("run"):
        words.append(f"from run {source['run']} ({source['weights']})")
    return "; ".join(words) + " (lucid_arch.* metadata)"

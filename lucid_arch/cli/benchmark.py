"""The ``benchmark`` task: lucid_arch.perf.benchmark_suite for the job's model, as the app's job.

The suite and its statistics live in the package (benchmarks/speed.py is the same suite as a
script); this module only maps ``task.*`` onto its settings, prints the table and turns the
timings into the job's metrics, so a sweep's table compares speed across architectures.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..config import ConfigError, ModelConfig, Problem
from .jobs import Job, write_json
from ..report.tables import emit

PRECISIONS = ("fp32", "bf16")
BENCHMARK_FILE = "benchmark.json"


def _settings(task: dict[str, Any], model_cfg: ModelConfig):
    import torch

    from ..perf.benchmark_suite import SpeedSettings

    problems = [Problem("task.precisions", f"task.precisions = {p!r}: choose from {', '.join(PRECISIONS)}.")
                for p in task["precisions"] if p not in PRECISIONS]
    problems += [Problem("task.batch_sizes", f"task.batch_sizes = {b!r}: batch sizes are positive integers.")
                 for b in task["batch_sizes"] if not isinstance(b, int) or b < 1]
    device = task["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        problems.append(Problem("task.device", f"task.device = {device!r}: this torch has no CUDA device; use cpu or auto."))
    if problems:
        raise ConfigError(problems, model_cfg.name)
    # task.* keys are named as SpeedSettings' fields; lists become the tuples it holds.
    given = {f.name: tuple(task[f.name]) if isinstance(task[f.name], list) else task[f.name]
             for f in fields(SpeedSettings) if f.name in task}
    return SpeedSettings(**{**given, "model": model_cfg.name, "device": device})


def metrics(timings: list[dict[str, Any]]) -> dict[str, float]:
    """Our throughput per configuration (images/s), and the speed-up over the reference where timed."""
    out: dict[str, float] = {}
    for t in timings:
        if not t["candidate"].startswith("lucid_arch"):
            continue
        which = t["candidate"].removeprefix("lucid_arch").strip()  # e.g. "inference path (bf16)"
        key = f"{t['config']} {which}".strip()
        out[f"{key} img/s"] = round(t["items_per_second"], 2)
        if t.get("speedup") is not None:
            out[f"{key} speedup"] = round(t["speedup"], 3)
    return out


def _build(build_model: Any, model_cfg: ModelConfig) -> Any:
    """The model, or a weights file that does not fit it as the app's one-paragraph usage error (exit 2)."""
    from ..weights import CheckpointError

    try:
        return build_model(model_cfg)
    except (CheckpointError, FileNotFoundError) as error:
        raise ConfigError([Problem("model.pretrained", str(error))], model_cfg.name) from error


def run(cfg: DictConfig, model_cfg: ModelConfig, job: Job) -> dict[str, Any]:
    import sys

    import torch

    from ..perf.analysis import analyze
    from ..perf.benchmark_suite import run_speed_suite, timm_reference
    from ..perf.benchmarking import format_table
    from ..modeling.builder import build_model

    if model_cfg.features_only:
        raise ConfigError([Problem("model.features_only", "model.features_only = true: task=benchmark times classifiers "
                                   "(logits, training steps, agreement with timm); set model.features_only=false.")], job.model_choice)
    task = OmegaConf.to_container(cfg.task, resolve=True)
    settings = _settings(task, model_cfg)
    if task.get("threads"):
        torch.set_num_threads(int(task["threads"]))
    references = {}
    factory = timm_reference(model_cfg.name) if task["timm"] else None
    if factory is not None:
        references["timm"] = factory
    result = run_speed_suite(settings, references, progress=lambda line: print(line, file=sys.stderr, flush=True),
                             build=lambda: _build(build_model, model_cfg))
    data = result.to_dict()
    write_json(job.output_dir / BENCHMARK_FILE, data)
    if job.format == "json":
        emit(json.dumps(data, indent=2, default=str))
    else:
        lines = [format_table(result.timings)]
        if result.agreement:
            a = result.agreement
            lines.append(f"inference path vs fp32, {a['inputs']} random images: top-1 agreement {a['top1_agreement']:.1%}, "
                         f"max |diff| {a['max_abs_diff']:.3g}, rechecked in fp32 {a['rechecked_fraction']:.1%}")
        lines += [f"note: {n}" for n in result.notes]
        if not references and task["timm"]:
            lines.append(f"note: timm is not importable here (or has no {model_cfg.name}); timed lucid_arch alone.")
        emit("\n".join(lines))
    report = analyze(model_cfg)  # the sweep plot places each job by parameters and GFLOPs
    cost = {"params": report.params, "gflops": round(report.gflops, 4)}
    return {"metrics": {**cost, **metrics(data["timings"])}, "benchmark": BENCHMARK_FILE}

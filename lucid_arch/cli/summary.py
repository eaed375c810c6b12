"""The ``summary`` task: what an architecture is and costs, per stage, at its ``img_size`` (H x W).

Everything comes from :func:`lucid_arch.analyze` on the meta device, so pvt_huge prints as
fast as b0 and nothing is allocated. The record returned here becomes the job's summary.json;
its ``metrics`` are the columns of a sweep's table.
"""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig

from ..config import ModelConfig
from ..config.provenance import defaults_chain
from .jobs import Job
from ..report.tables import Table, emit
from ..report.tables import show as show_table


def config_sources(job: Job) -> list[str]:
    """The model's defaults chain as the job composed it (its config dirs and model overrides)."""
    overrides = [o for o in job.overrides if o.lstrip("+~").startswith("model.")]
    if job.searchpath:
        overrides.append(f"hydra.searchpath=[{','.join(job.searchpath)}]")
    # Shipped files read as lucid_arch:model/...; others relative to their repository (config/paths.py).
    return defaults_chain(job.model_choice, overrides)


def summarize(model_cfg: ModelConfig, batch_size: int, sources: list[str]) -> dict[str, Any]:
    from ..perf.analysis import analyze

    report = analyze(model_cfg, batch_size=batch_size)
    out = report.to_dict()
    out["gflops"] = report.gflops
    out["sources"] = sources
    return out


def run(cfg: DictConfig, model_cfg: ModelConfig, job: Job) -> dict[str, Any]:
    sources = config_sources(job)
    summary = summarize(model_cfg, int(cfg.task.batch_size), sources)
    if job.multirun and job.format == "auto":  # one line per job; the sweep report has the table
        emit(f"job {job.num} {' '.join(job.overrides)}: {summary['params'] / 1e6:.2f} M parameters, {summary['gflops']:.3f} GFLOPs")
    else:
        show(summary, job.format)
    return {"metrics": {"params": summary["params"], "gflops": round(summary["gflops"], 4)}, "summary": summary}


def show(summary: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        emit(json.dumps(summary, indent=2))
        return
    show_table(summary_table(summary), fmt)


def _shape(shape: Any) -> str:
    return "x".join(map(str, shape))


def _part_cells(part: dict[str, Any]) -> list[str]:
    """The stage columns a neck or head fills: its (first) output map and channels."""
    out = part["output_shapes"][0]
    if len(out) < 4:  # a classifier's (batch, classes)
        return [""] * 10
    return ["x".join(map(str, out[2:])), "", str(out[1]), *[""] * 7]


def _detection_notes(s: dict[str, Any]) -> list[tuple[str, str]]:
    """A detector's levels, its anchors per level, and what its RoI heads' FLOPs assume."""
    notes = []
    for part in s["parts"]:
        shapes = ", ".join(_shape(x) for x in part["output_shapes"])
        notes.append((f"{part['label']} outputs", shapes))
        if part.get("anchors"):
            per_level = " + ".join(f"{n:,}" for n in part["anchors"])
            notes.append((f"{part['label']} anchors", f"{part['anchors_per_location']} per location: {per_level} = "
                                                       f"{sum(part['anchors']):,}"))
    if any(part["name"] == "box_head" for part in s["parts"]):
        notes.append(("RoI heads", "GFLOPs for the most regions inference keeps: the box head on every proposal "
                                   "(rpn.post_nms_top_n_test), the mask head on every detection (detector.detections_per_image)"))
    return notes


def summary_table(s: dict[str, Any]) -> Table:
    gflops = lambda flops: f"{flops / 1e9:.3f}"  # noqa: E731
    rows = [
        [
            str(st["index"]),
            _shape(st["feature_size"]),
            f"{st['tokens']:,}",
            str(st["embed_dim"]),
            str(st["num_heads"]),
            str(st["head_dim"]),
            str(st["sr_ratio"]),
            f"{st['kv_tokens']:,}",
            "yes" if st["linear"] else "no",
            f"{st['mlp_ratio']:g}",
            str(st["depth"]),
            f"{st['params']:,}",
            gflops(st["flops"]),
        ]
        for st in s["stages"]
    ]
    blank = [""] * 10
    parts = [[part["label"], *_part_cells(part), f"{part['params']:,}", gflops(part["flops"])] for part in s["parts"]]
    totals = [*parts, ["total", *blank, f"{s['params']:,}", gflops(s["flops"])]]
    batch = f", batch {s['batch_size']}" if s["batch_size"] != 1 else ""
    if s.get("out_indices") is not None:  # a backbone: its forward returns the selected maps
        picked = ", ".join(_shape(s["feature_shapes"][i]) for i in s["out_indices"])
        outputs = [(f"features (out_indices {list(s['out_indices'])})", picked)]
    else:
        outputs = [("forward_features", ", ".join(_shape(x) for x in s["feature_shapes"]))]
        if s.get("task") == "detection":
            outputs += _detection_notes(s)
        else:
            outputs += [(f"{part['name']} outputs", ", ".join(_shape(x) for x in part["output_shapes"])) for part in s["parts"][:-1]]
            outputs.append(("logits", _shape(s["logits_shape"])))
    return Table(
        title=f"{s['name']} at {_shape(s['input_size'])}{batch}: {s['params'] / 1e6:.2f} M parameters, {s['gflops']:.3f} GFLOPs",
        columns=["stage", "feature map", "tokens", "dim", "heads", "head dim", "sr", "kv tokens", "linear", "mlp ratio", "depth", "params", "GFLOPs"],
        rows=rows,
        right=frozenset({2, 3, 4, 5, 6, 7, 9, 10, 11, 12}),
        totals=totals,
        notes=[
            *outputs,
            ("GFLOPs", f"a multiply-add counts 2; attention matmuls included ({s['attention_flops'] / 1e9:.3f} of them)"),
            ("config", " -> ".join(s["sources"]) or "(not recorded)"),
        ],
    )

"""The ``train`` task: lucid_arch.training.fit for the job's model, reported as the app's job.

This module maps ``task.*`` (typed by lucid_arch/config/train_schema.py) onto the training
loop, prints the per-epoch table and returns the metrics a sweep's table compares: validation
accuracy (a segmentation model: mIoU and pixel accuracy; a detector: COCO's box AP, AP50, AP75,
APs/m/l, and mask AP for Mask R-CNN), parameters, FLOPs at the training resolution, and throughput.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf

from ..training import launch_env
from ..config import ConfigError, ModelConfig, Problem
from ..config.geometry import image_hw, size_text
from ..config.train_schema import check_train
from ..report.tables import Table, show
from . import tracking_hooks
from .brief_output import said_in_brief
from .jobs import Job


def run(cfg: DictConfig, model_cfg: ModelConfig, job: Job) -> dict[str, Any]:
    from ..perf.analysis import analyze
    from ..data import DatasetError
    from ..weights import CheckpointError
    from ..training import fit
    from ..training.checkpoint import CONFIG, WEIGHTS, ResumeError
    from ..training.run_lock import RunDirLocked
    from ..search.trial import epoch_hook

    task = OmegaConf.to_object(cfg.task)
    check_train(task)
    if task.resume is None and launch_env.requeued():  # preempted, signalled before its limit, or requeued by hand
        task = dataclasses.replace(task, resume="auto")
        print(f"lucid-arch: SLURM requeued this job; continuing the run in {job.output_dir} (task.resume=auto)", file=sys.stderr)
    hook = epoch_hook() if launch_env.rank() == 0 else None  # a search trial's reporter for its pruner; rank 0's alone
    try:
        try:
            result = fit(model_cfg, task, job.output_dir, on_epoch_end=tracking_hooks.epoch_hook(hook))  # logged, then pruned
        except BaseException:
            if hook is not None:  # a failed run's curve must not stay RUNNING in the pruning study
                hook.fail()
            raise
    except (ResumeError, DatasetError, CheckpointError, FileNotFoundError, RunDirLocked) as error:  # a path in the config: a usage error
        key = ("task.resume" if isinstance(error, ResumeError) else error.key if isinstance(error, DatasetError)
               else "hydra.run.dir" if isinstance(error, RunDirLocked) else "model.pretrained")
        raise ConfigError([Problem(key, str(error))], model_cfg.name) from error
    if hook is not None:
        hook.close(result.final.get(result.metric))
    report = analyze(result.model_config)  # at the training resolution and class count
    final, best = result.final, result.best
    if result.detection:
        scores = _detection_scores(final, best)
    else:
        scores = ({"val_miou": round(final["val_miou"], 4), "best_val_miou": round(best["val_miou"], 4),
                   "val_pixel_acc": round(final["val_pixel_acc"], 4)} if result.segmentation else
                  {"val_acc": round(final["val_acc"], 4), "best_val_acc": round(best["val_acc"], 4)})
    metrics = {
        "params": report.params,
        "gflops": round(report.gflops, 4),
        **scores,
        "train img/s": round(result.images_per_second, 1),
        "train min": round(result.train_seconds / 60, 2),
    }
    record = {
        "metrics": metrics,
        "train": {
            "dataset": task.data.dataset,
            "classes": result.classes,
            "image_size": task.data.image_size,
            "epochs": len(result.history),
            "best_epoch": best["epoch"],
            "precision": result.precision,
            "threads": result.threads,  # per process, as task.threads set it (or torch's default)
            "processes": result.world_size,
            "world_size": result.world_size,  # DDP ranks over all nodes: torchrun's processes or a SLURM job's tasks
            "launcher": launch_env.detect().source,  # single, torchrun or slurm
            "resumed_from": result.resumed_from,
            "weights": WEIGHTS,
            "config": CONFIG,
            "metrics_file": "metrics.jsonl",
        },
    }
    if result.stopped:  # a search's pruner ended it: the sweep's table says so, and why
        record.update(status="pruned", error=result.stopped)
    if launch_env.rank() == 0:  # under torchrun or srun only rank 0 reports
        _show(result, metrics, job)
    return record


def _detection_scores(final: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]:
    """COCO's figures of the last validation (box, and mask for Mask R-CNN), the best box AP beside them."""
    from ..training.detection_objective import val_keys

    keys = val_keys(final.get("val_mask_ap") is not None or "val_mask_ap" in final)
    scores = {key: None if final.get(key) is None else round(final[key], 4) for key in keys}
    scores["best_val_box_ap"] = round(best["val_box_ap"], 4)
    return scores


def _pct(value: Any) -> str:
    return "" if value is None else f"{value:.2%}"


def _loss(record: dict[str, Any]) -> str:
    return "" if record["val_loss"] is None else f"{record['val_loss']:.4f}"


def _show(result: Any, metrics: dict[str, Any], job: Job) -> None:
    if result.detection:
        score = (f"val box AP {metrics['val_box_ap']:.1%} (best {metrics['best_val_box_ap']:.1%}), AP50 {_pct(metrics['val_box_ap50'])}"
                 + (f", mask AP {_pct(metrics['val_mask_ap'])}" if "val_mask_ap" in metrics else ""))
    else:
        score = (f"val mIoU {metrics['val_miou']:.2%} (best {metrics['best_val_miou']:.2%}), pixel acc {metrics['val_pixel_acc']:.2%}"
                 if result.segmentation else f"val acc {metrics['val_acc']:.2%} (best {metrics['best_val_acc']:.2%})")
    headline = (f"{result.model_config.name}: {score}, "
                f"{metrics['params'] / 1e6:.2f} M parameters, {metrics['gflops']:.3f} GFLOPs at "
                f"{size_text(image_hw(result.model_config.img_size))} px, {metrics['train img/s']:,.0f} img/s, {metrics['train min']:.1f} min")
    if said_in_brief(job, {"metrics": metrics, "history": result.history}, headline):
        return
    if result.detection:
        masks = "val_mask_ap" in result.final
        scores = ["val box AP", "val AP50", "val AP75", *(["val mask AP"] if masks else [])]
        cells = [lambda r: _pct(r["val_box_ap"]), lambda r: _pct(r["val_box_ap50"]), lambda r: _pct(r["val_box_ap75"]),
                 *([lambda r: _pct(r["val_mask_ap"])] if masks else [])]
    elif result.segmentation:
        scores = ["train pixel acc", "val loss", "val pixel acc", "val mIoU"]
        cells = [lambda r: _pct(r["train_pixel_acc"]), _loss, lambda r: _pct(r["val_pixel_acc"]), lambda r: _pct(r["val_miou"])]
    else:
        scores = ["train acc", "val loss", "val acc"]
        cells = [lambda r: _pct(r["train_acc"]), _loss, lambda r: _pct(r["val_acc"])]
    columns = ["epoch", "lr", "train loss", *scores, "img/s", "s"]
    table = Table(
        title=headline,
        columns=columns,
        rows=[[str(r["epoch"]), f"{r['lr']:.2e}", f"{r['train_loss']:.4f}", *(cell(r) for cell in cells),
               f"{r['images_per_second']:,.0f}", f"{r['epoch_seconds']:.1f}"] for r in result.history],
        right=frozenset(range(len(columns))),
        notes=[("precision", f"{result.precision}, {result.world_size} process(es)"),
               ("weights", str(job.output_dir / "model.safetensors")),
               *([("resumed from", result.resumed_from)] if result.resumed_from else [])],
    )
    show(table, job.format)
    per_class = _class_ap_table(result) if result.detection else _class_iou_table(result)
    if per_class is not None:
        show(per_class, job.format)


def _class_ap_table(result: Any) -> Optional[Table]:
    """The last validation's box (and mask) AP per class, by name (mmdetection's classwise table)."""
    from ..report.class_table import ClassFigures, class_table

    last = next((r for r in reversed(result.history) if r.get("val_box_ap_class") is not None), None)
    if last is None or len(last["val_box_ap_class"]) != len(result.classes):
        return None
    scores = {"box AP": last["val_box_ap_class"], **({"mask AP": last["val_mask_ap_class"]} if last.get("val_mask_ap_class") else {})}
    notes = [("validation", f"epoch {last['epoch']}, box AP {last['val_box_ap']:.1%} over {last['val_images']} images (COCO's AP@[.5:.95])")]
    if None in last["val_box_ap_class"]:
        notes.append(("nan", "a class with no object in the validation split"))
    return class_table(ClassFigures(names=result.classes, scores=scores), "validation AP per class", notes=notes)


def _class_iou_table(result: Any) -> Optional[Table]:
    """The last validation's IoU per class, by name: which classes the mIoU above hides (segmentation only).

    Printed once, after the run: a row per class every epoch would drown the log."""
    from ..report.class_table import ClassFigures, class_table

    last = next((r for r in reversed(result.history) if r.get("val_iou") is not None), None)
    if last is None or len(last["val_iou"]) != len(result.classes):
        return None
    figures = ClassFigures(names=result.classes, scores={"IoU": last["val_iou"]})
    notes = [("validation", f"epoch {last['epoch']}, mIoU {last['val_miou']:.2%}")]
    if None in last["val_iou"]:
        notes.append(("nan", "a class neither labelled nor predicted in the validation split"))
    return class_table(figures, "validation IoU per class", notes=notes)

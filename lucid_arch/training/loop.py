"""The training loop: data -> model -> AdamW steps -> validation, checkpoints and metrics.

One loop for classifiers and segmentation models: what differs (the loss of a batch, the
running sums and the validation metrics) comes from an objective (objectives.py).

Every source of randomness in step ``s`` (data order, augmentation, drop-path, dropout) is
seeded from ``(task.seed, s, rank)``, and the learning rate is a function of ``s``. So the
state a checkpoint must carry is small (weights, optimizer moments, the step, running sums),
and a run resumed from any checkpoint repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

from . import launch_env
from ..config import ConfigError, ModelConfig, Problem
from ..config.geometry import image_hw
from ..config.train_schema import TrainConfig, plain_image_size
from ..data.seeds import derive_seed, generator
from . import checkpoint as ckpt
from .cross_rank_norm import cross_rank_batch_norms
from .distributed import Dist, all_reduce_sum, barrier, setup
from ..runs.preprocessing import Preprocessing
from ..safe_io import write_text_atomic
from ..runs.run_dir import BEST_WEIGHTS, write_inference_info
from .objectives import best_record, objective_for
from .optim import lr_at, make_optimizer, set_lr
from .progress import Progress, Stopwatch
from .run_lock import RunDirLocked, run_lock

METRICS_FILE = "metrics.jsonl"


class StopTraining(Exception):
    """Raised by ``fit``'s ``on_epoch_end`` to end the run after that epoch (a search's pruner, say).

    The run then ends as if that epoch were its last: weights, config and metrics are written,
    and ``TrainResult.stopped`` holds the exception's text.
    """


@dataclass
class TrainResult:
    model_config: ModelConfig  # as trained: num_classes and img_size follow the data
    classes: list[str]
    history: list[dict[str, Any]]  # one record per epoch, as in metrics.jsonl
    train_seconds: float
    images_per_second: float
    precision: str
    world_size: int
    threads: int  # torch's CPU threads per process during the run
    resumed_from: Optional[str] = None
    notes: list[str] = field(default_factory=list)
    stopped: Optional[str] = None  # why on_epoch_end ended the run early (StopTraining's text)
    metric: str = "val_acc"  # the headline validation metric: val_acc, or val_miou for a segmentation model

    @property
    def segmentation(self) -> bool:
        return self.metric == "val_miou"

    @property
    def detection(self) -> bool:
        return self.metric == "val_box_ap"

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1]

    @property
    def best(self) -> dict[str, Any]:
        return best_record(self.history, self.metric)


def resolve_precision(setting: str, device: torch.device) -> str:
    if setting != "auto":
        return setting
    from ..perf.inference import bf16_is_fast

    return "bf16" if bf16_is_fast(device) else "fp32"


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _Batches:
    """Images and labels of one rank, batch by batch, in the order ``shard_indices`` fixes."""

    def __init__(self, dataset: Any, task: TrainConfig, env: Dist, local_batch: int):
        self.dataset, self.task, self.env, self.local_batch = dataset, task, env, local_batch
        # shard_indices pads the epoch to a multiple of the world size: every rank holds ceil(n / world)
        self.steps_per_epoch = -(-len(dataset) // env.world_size) // local_batch

    def epoch(self, epoch: int, first_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        from ..data import shard_indices

        order = shard_indices(len(self.dataset), epoch, self.task.seed, self.env.rank, self.env.world_size)
        order = order[first_step * self.local_batch : self.steps_per_epoch * self.local_batch]
        yield from _loader(self.dataset, order, self.local_batch, self.task.data.num_workers)


def _loader(dataset: Any, order: list[int], batch: int, workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    from torch.utils.data import DataLoader

    from ..data.folder import collate_skip_bad

    return iter(DataLoader(dataset, batch_size=batch, sampler=order, num_workers=workers, collate_fn=collate_skip_bad,
                           persistent_workers=False, drop_last=False))


class _Inputs:
    """uint8 batches -> normalised float inputs, augmented for training with a per-step generator;
    label maps (segmentation) go through the same crop and flip as their images."""

    def __init__(self, data: Any, device: torch.device):
        self.data, self.device = data, device
        self.mean = torch.tensor(data.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(data.std).view(1, 3, 1, 1)

    def __call__(self, images: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        return self.pair(images, None, generator)[0]

    def pair(self, images: torch.Tensor, targets: Optional[torch.Tensor], generator: Optional[torch.Generator] = None
             ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(inputs, targets) on the device; targets are labels (B) or label maps (B x H x W, as int64)."""
        from ..data.augment import random_resized_crop_flip_pair, to_float

        masks = targets if targets is not None and targets.dim() == 3 else None
        if generator is not None and self.data.augment:
            x, masks = random_resized_crop_flip_pair(images, masks, generator, scale=(self.data.min_scale, 1.0), hflip=self.data.hflip)
        else:
            x = to_float(images)
        if targets is not None:
            targets = (targets if masks is None else masks).long().to(self.device, non_blocking=True)
        return ((x - self.mean) / self.std).to(self.device, non_blocking=True), targets


def evaluate(model: nn.Module, dataset: Any, inputs: _Inputs, env: Dist, precision: str, batch: int, workers: int = 0,
             objective: Any = None) -> dict[str, Any]:
    """The validation metrics over the whole set, all ranks together: val_loss (no label smoothing)
    and val_acc, or for a segmentation objective val_pixel_acc, val_miou and per-class val_iou."""
    objective = objective or objective_for(False, 0, 0.0)
    if hasattr(objective, "evaluate"):  # a detector: COCO's evaluation of the whole split (detection_objective.py)
        return objective.evaluate(model, dataset, inputs, env, batch, workers, loader=_loader, autocast=_autocast(precision, env.device),
                                  unreadable=_all_unreadable)
    order = list(range(env.rank, len(dataset), env.world_size))  # no padding: every image counted once
    counts = objective.eval_zero()
    model.eval()
    with torch.no_grad(), _autocast(precision, env.device):
        for images, targets in _loader(dataset, order, batch, workers):
            if not len(targets):
                continue
            x, y = inputs.pair(images, targets)
            counts += objective.eval_counts(model(x).float(), y)
    counts = torch.tensor(all_reduce_sum(counts.tolist(), env), dtype=torch.float64)
    if objective.eval_images(counts) == 0 and len(dataset):
        raise _all_unreadable(dataset, "validation")
    return objective.eval_record(counts)


def _all_unreadable(dataset: Any, split: str) -> Exception:
    """A split of which no image could be decoded: an error, not a run that 'succeeds' at chance."""
    from ..data import DatasetError, MaskFolder

    where = getattr(dataset, "root", "the dataset")
    if isinstance(dataset, MaskFolder):
        return DatasetError(f"Every one of the {len(dataset)} image and label-map pairs of the {split} split of {where} was "
                            f"unusable (each was named on stderr: an unreadable file, or a mask of another size than its "
                            f"image). Check the files and that PIL decodes them, or point task.data.root and task.data.masks "
                            f"at the intact set.")
    return DatasetError(f"Every one of the {len(dataset)} images of the {split} split of {where} was unreadable (each was "
                        f"named on stderr). Check the files (truncated copies? another format under an image "
                        f"extension?) and that PIL decodes them, or point task.data.root at the intact set.")


def _claim_run(task: TrainConfig, run_dir: Path, env: Dist, hold: contextlib.ExitStack) -> Optional[Path]:
    """Rank 0 locks the run directory and finds the checkpoint to resume (only it knows the directory); every rank learns both.

    A refusal (the directory locked by another run, a bad ``task.resume``) is raised on every
    rank, so none waits for the others in a collective that never comes.
    """
    found, error, kind = None, None, ""
    if env.is_main:
        try:
            hold.enter_context(run_lock(run_dir))
            if task.resume:
                found = ckpt.find_checkpoint(task.resume, run_dir, warn=lambda m: print(f"lucid-arch: {m}", file=sys.stderr))
        except (RunDirLocked, ckpt.ResumeError) as exc:
            error, kind = str(exc), type(exc).__name__
    if env.enabled:
        import torch.distributed as dist

        box = [str(found) if found else None, error, kind]
        dist.broadcast_object_list(box, src=0)
        found, error, kind = (Path(box[0]) if box[0] else None), box[1], box[2]
    if error:
        raise RunDirLocked(error) if kind == RunDirLocked.__name__ else ckpt.ResumeError(error)
    return found


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    path = run_dir / METRICS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in history))
    os.replace(tmp, path)


def fit(model_cfg: ModelConfig, task: TrainConfig, run_dir: Path,
        on_epoch_end: Optional[Callable[[dict[str, Any]], None]] = None) -> TrainResult:
    """Train ``model_cfg`` as ``task`` says, writing metrics and checkpoints into ``run_dir`` (rank 0 only, holding its lock).

    ``on_epoch_end`` is called on rank 0 with each epoch's record (as metrics.jsonl has it); it
    may raise :class:`StopTraining` to end the run there.
    """
    threads = torch.get_num_threads()
    try:
        with contextlib.ExitStack() as hold:  # the run directory's lock, until the run ends or fails
            return _fit(model_cfg, task, run_dir, hold, on_epoch_end)
    finally:
        torch.set_num_threads(threads)  # task.threads is this run's; a caller's later work keeps its own


def _stop_asked(hook: Optional[Callable[[dict[str, Any]], None]], record: dict[str, Any], env: Dist) -> Optional[str]:
    """Rank 0 asks ``hook``; every rank learns its answer, so that none is left alone in a collective.

    Anything else the hook raises (its study's storage failing, say) is raised on every rank too,
    instead of leaving the others waiting for an answer that never comes.
    """
    if hook is None:
        return None
    reason, failure = None, None
    if env.is_main:
        try:
            hook(dict(record))
        except StopTraining as stop:
            reason = str(stop) or "stopped by on_epoch_end"
        except Exception as error:  # noqa: BLE001 - re-raised below, on every rank
            failure = error
    if env.enabled:
        import torch.distributed as dist

        box = [reason, None if failure is None else f"{type(failure).__name__}: {failure}"]
        dist.broadcast_object_list(box, src=0)
        reason = box[0]
        if box[1] is not None and failure is None:
            raise RuntimeError(f"on_epoch_end failed on rank 0: {box[1]}")
    if failure is not None:
        raise failure
    return reason


def _fit(model_cfg: ModelConfig, task: TrainConfig, run_dir: Path, hold: contextlib.ExitStack,
         on_epoch_end: Optional[Callable[[dict[str, Any]], None]] = None) -> TrainResult:
    import yaml

    from ..modeling.builder import build_model
    from ..data import build_datasets, masks_mismatch
    from ..modeling.spec import is_segmentation
    from .detection_objective import detection_kind

    if model_cfg.features_only:
        raise ConfigError([Problem("model.features_only", "model.features_only = true: task=train trains a classifier or a "
                                   "segmentation model, and a backbone alone has no head to train; set model.features_only=false "
                                   "(the MiT encoders set it), or train a whole architecture (e.g. model=segformer_b0).")], "task=train")
    segmentation = is_segmentation(model_cfg)
    detection = detection_kind(model_cfg)  # None, or a detector: 'retinanet', 'mask_rcnn'
    mismatch = masks_mismatch(task.data, segmentation)
    if mismatch:
        raise ConfigError([Problem("task.data.masks", mismatch)], "task=train")
    threads = task.threads or launch_env.slurm_cpus_per_task()  # in a SLURM job: the CPUs it was given
    if threads and (task.threads or threads < torch.get_num_threads()):
        torch.set_num_threads(threads)
    env = setup(task.device)
    run_dir = Path(run_dir)
    train_set, val_set, classes = build_datasets(task.data, segmentation,
                                                 detection and ("masks" if detection == "mask_rcnn" else "boxes"))
    model_cfg = dataclasses.replace(model_cfg, num_classes=len(classes), img_size=plain_image_size(task.data.image_size))
    if task.batch_size % env.world_size:
        raise ConfigError([Problem("task.batch_size", f"task.batch_size = {task.batch_size} does not split evenly over "
                                   f"{env.world_size} processes; pick a multiple of {env.world_size}.")], "task=train")
    local_batch = task.batch_size // env.world_size
    batches = _Batches(train_set, task, env, local_batch)
    steps_per_epoch = batches.steps_per_epoch
    if steps_per_epoch == 0:
        raise ConfigError([Problem("task.batch_size", f"task.batch_size = {task.batch_size} is larger than the "
                                   f"{len(train_set)} training images; lower task.batch_size or add data.")], "task=train")
    total_steps = steps_per_epoch * task.epochs
    warmup_steps = round(task.schedule.warmup_epochs * steps_per_epoch)
    precision = resolve_precision(task.precision, env.device)
    if detection and task.precision == "auto" and env.device.type == "cpu":
        # CPU bf16 convolutions (oneDNN, torch 2.14) leave NaNs in the weight gradient of a 3x3 stride-2
        # convolution over a 1x1 map -- a detector's P7 on small images -- so a detector's auto is fp32 there.
        precision = "fp32"

    torch.manual_seed(task.seed)  # the initial weights
    # Training a head is what a fresh one is for: a checkpoint of another class count (ImageNet weights
    # for a 10-class folder) or an encoder's alone starts one here, and only here (model.new_head).
    model = build_model(dataclasses.replace(model_cfg, new_head=True) if model_cfg.pretrained else model_cfg).to(env.device)
    if env.enabled:  # a decode head's BatchNorm normalises by the whole batch, as in one process
        cross_rank_batch_norms(model)
    optimizer = make_optimizer(model, task.optimizer)
    config = {"model": dataclasses.asdict(model_cfg), "task": dataclasses.asdict(task)}
    config_yaml = yaml.safe_dump(config, sort_keys=False)

    objective = objective_for(segmentation, len(classes), task.label_smoothing, detection, classes)
    state: dict[str, Any] = {"step": 0, "history": [], "sums": objective.zero_sums(torch.device("cpu")), "train_seconds": 0.0,
                             "epoch_seconds": 0.0}
    resumed_from = None
    checkpoint = _claim_run(task, run_dir, env, hold)
    if env.is_main:  # what using the model will need, there from the first checkpoint on
        write_inference_info(run_dir, "detection" if detection else "segmentation" if segmentation else "classification", classes,
                             Preprocessing.from_dict({"image_size": list(image_hw(model_cfg.img_size)), "mean": list(task.data.mean),
                                                      "std": list(task.data.std),
                                                      "resize": "letterbox" if detection else "keep_ratio" if segmentation else "center_crop"}))
    if checkpoint is not None:
        defaults = {"model": dataclasses.asdict(ModelConfig()), "task": dataclasses.asdict(TrainConfig())}
        ckpt.check_resumable(checkpoint, config, defaults)
        state = ckpt.load_checkpoint(checkpoint, model, optimizer)
        resumed_from = str(checkpoint)

    net = nn.parallel.DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None) \
        if env.enabled else model
    inputs = _Inputs(task.data, env.device)
    progress = Progress(task.progress if env.is_main else "none", task.epochs, steps_per_epoch, task.log_every, objective.acc_label,
                        log_seconds=task.log_seconds)
    if resumed_from:
        progress.note(f"resuming from {resumed_from} at step {state['step']} of {total_steps}")

    def save(step: int) -> None:
        if env.is_main:
            payload = {**state, "step": step, "sums": sums.cpu(), "optimizer": optimizer.state_dict()}
            ckpt.save_checkpoint(run_dir, step, model, payload, config_yaml, task.keep_checkpoints)
        barrier(env)

    step = state["step"]
    history: list[dict[str, Any]] = state["history"]
    sums = state["sums"].to(env.device)  # the epoch's running sums so far, this rank (objective.zero_sums)
    clock = Stopwatch(state["train_seconds"])
    epoch_clock = Stopwatch(state["epoch_seconds"])
    stopped = None
    try:
        while step < total_steps:
            epoch, first = divmod(step, steps_per_epoch)
            progress.start_epoch(epoch, first)
            net.train()
            for images, targets in batches.epoch(epoch, first):
                with clock, epoch_clock:
                    weight = 1.0
                    if not len(targets):  # every image of this batch was unreadable (reported by path)
                        if not env.enabled:
                            step += 1
                            continue
                        # The other ranks' gradients are all-reduced with ours: join in with a blank image, weighted 0.
                        size = image_hw(model_cfg.img_size)
                        images, targets, weight = torch.zeros(1, 3, *size, dtype=torch.uint8), objective.blank_target(size), 0.0
                    torch.manual_seed(derive_seed("drop-path", task.seed, step, env.rank))  # and dropout, this step
                    x, y = objective.prepare(inputs, images, targets, generator("augment", task.seed, step, env.rank))
                    lr = lr_at(step, total_steps, warmup_steps, task.optimizer.lr, task.schedule.warmup_lr, task.schedule.min_lr)
                    set_lr(optimizer, lr)
                    with _autocast(precision, env.device):
                        logits = objective.forward(net, x, y)  # a detector: its losses
                    loss, batch_sums = objective.train_step(logits, y, weight)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if task.clip_grad_norm is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), task.clip_grad_norm)
                    optimizer.step()
                    sums += batch_sums
                step += 1
                in_epoch = step - epoch * steps_per_epoch
                if progress.due(in_epoch):
                    loss_now, acc_now, seen = objective.running(sums.tolist())
                    progress.step(epoch, in_epoch, loss_now, acc_now, lr, seen * env.world_size / max(epoch_clock.elapsed, 1e-9))
                if task.checkpoint_every and step % task.checkpoint_every == 0 and in_epoch != steps_per_epoch:
                    state.update(train_seconds=clock.elapsed, epoch_seconds=epoch_clock.elapsed, history=history)
                    save(step)
            totals = all_reduce_sum(sums.tolist(), env)
            seen = objective.running(totals)[2]
            if seen == 0:
                raise _all_unreadable(train_set, "training")
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "step": step,
                "lr": lr_at(step - 1, total_steps, warmup_steps, task.optimizer.lr, task.schedule.warmup_lr, task.schedule.min_lr),
                **objective.train_record(totals),
                "images_per_second": seen / max(epoch_clock.elapsed, 1e-9),
                "epoch_seconds": epoch_clock.elapsed,
                **objective.empty_val(),
            }
            if (epoch + 1) % task.eval_every == 0 or step == total_steps:
                record.update(evaluate(model, val_set, inputs, env, precision, 2 * local_batch, task.data.num_workers, objective))
            history.append(record)
            if env.is_main and record.get(objective.metric) is not None and best_record(history, objective.metric) is record:
                ckpt.save_weights(model, run_dir / BEST_WEIGHTS, {"model": model_cfg.name, "epoch": str(record["epoch"]),
                                                                  objective.metric: repr(record[objective.metric])})
            progress.end_epoch(record)
            sums.zero_()
            epoch_clock = Stopwatch()
            if env.is_main:
                _write_metrics(run_dir, history)
            state.update(train_seconds=clock.elapsed, epoch_seconds=0.0, history=history)
            save(step)
            if step < total_steps:  # after the last epoch there is nothing left to stop: the run is complete
                stopped = _stop_asked(on_epoch_end, record, env)
                if stopped:
                    break
        if env.is_main:
            ckpt.save_weights(model, run_dir / ckpt.WEIGHTS, {"model": model_cfg.name})
            write_text_atomic(run_dir / ckpt.CONFIG, config_yaml)
    finally:
        progress.close()
    images = sum(r["images_per_second"] * r["epoch_seconds"] for r in history)
    return TrainResult(
        model_config=model_cfg,
        classes=list(classes),
        history=history,
        train_seconds=clock.elapsed,
        images_per_second=images / max(clock.elapsed, 1e-9),
        precision=precision,
        threads=torch.get_num_threads(),
        world_size=env.world_size,
        resumed_from=resumed_from,
        stopped=stopped,
        metric=objective.metric,
    )
